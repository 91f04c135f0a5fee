package bridge

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Fast end-to-end tests: in-process mochi-mqtt broker and kfake.

func TestForwarding(t *testing.T) {
	t.Parallel()
	testForwarding(t, startMochi(t), startKfake(t).ListenAddrs())
}

func TestRedeliveryAfterRestart(t *testing.T) {
	t.Parallel()
	testRedelivery(t, startMochi(t), startKfake(t).ListenAddrs(), false)
}

func TestRunFailsFast(t *testing.T) {
	t.Parallel()
	kafka := startKfake(t).ListenAddrs()
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"MQTT broker unreachable", Config{MQTTURL: "tcp://127.0.0.1:1", KafkaBrokers: kafka}, "connecting to MQTT broker"},
		{"Kafka unreachable", Config{MQTTURL: "tcp://127.0.0.1:1", KafkaBrokers: []string{"127.0.0.1:1"}}, "is Kafka reachable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := New(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err = b.Run(ctx)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Run = %v, want an error containing %q", err, tt.wantErr)
			}
			if err := b.Run(ctx); err == nil || !strings.Contains(err.Error(), "twice") {
				t.Errorf("second Run = %v, want an error", err)
			}
		})
	}
}

func TestRunReturnsNilWhenCancelledBeforeKafka(t *testing.T) {
	t.Parallel()
	// A Kafka that accepts connections and never answers: Run waits in
	// topic creation until ctx ends.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	b, err := New(Config{MQTTURL: "tcp://127.0.0.1:1", KafkaBrokers: []string{l.Addr().String()}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- b.Run(ctx) }()
	time.Sleep(200 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Run = %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestNewRejectsSharedRegisterer(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := Config{MQTTURL: "tcp://127.0.0.1:1883", KafkaBrokers: []string{"127.0.0.1:9092"}, Registerer: reg}
	if _, err := New(cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg); err == nil {
		t.Fatal("second New with the same Registerer succeeded; metrics would be mixed")
	}
}

// A record Kafka refuses for good ends Run with an error (a supervisor
// restarts the bridge) and its MQTT message is not acknowledged: the next
// bridge on the same session gets it again.
func TestFatalProduceErrorEndsRunWithoutAck(t *testing.T) {
	t.Parallel()
	mqttURL := startMochi(t)
	kafka := startKfake(t)
	n := uniqueNames()
	r := startBridge(t, mqttURL, kafka.ListenAddrs(), n, nil)

	var refused atomic.Int32
	kafka.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		req := kreq.(*kmsg.ProduceRequest)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		refused.Add(1)
		return resp, nil, true // one-shot: later requests reach kfake
	})
	msg := message{n.prefix + "/boat-0/telemetry", goodPayload("boat-0", 1)}
	publishAll(t, publisher(t, mqttURL), []message{msg})

	select {
	case <-r.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not end on the refused record")
	}
	if err := r.stop(); err == nil || !strings.Contains(err.Error(), "Kafka refused a record") {
		t.Fatalf("Run = %v, want the produce error", err)
	}
	if refused.Load() != 1 || testutil.ToFloat64(r.b.metrics.produceErrors) != 1 || testutil.ToFloat64(r.b.metrics.produced) != 0 {
		t.Fatalf("refused %d, produce errors %v, produced %v; want 1, 1, 0", refused.Load(),
			testutil.ToFloat64(r.b.metrics.produceErrors), testutil.ToFloat64(r.b.metrics.produced))
	}

	r2 := startBridge(t, mqttURL, kafka.ListenAddrs(), n, nil)
	raw := readTopic(t, kafka.ListenAddrs(), n.raw, 1, 500*time.Millisecond)
	if len(raw) != 1 || !bytes.Equal(raw[0].Value, msg.payload) {
		t.Fatalf("raw after restart has %d records, want the refused message once", len(raw))
	}
	if got := testutil.ToFloat64(r2.b.metrics.received); got != 1 {
		t.Errorf("second bridge received %v, want the 1 redelivered message", got)
	}
}

func TestBurst(t *testing.T) {
	t.Parallel()
	testBurst(t, startMochi(t), startKfake(t).ListenAddrs(), 2000)
}

// When the broker drops the connection, the bridge reconnects, resumes its
// session (resubscribing) and goes on forwarding.
//
// The test publishes only once the bridge is back: mochi-mqtt can lose a
// message published while a session is being taken over by a reconnecting
// client (it copies the old client's queue, then stops it). Messages queued
// for a bridge that is away are covered by testRedelivery.
func TestReconnectResumesSession(t *testing.T) {
	t.Parallel()
	srv, mqttURL := startMochiServer(t)
	kafka := startKfake(t).ListenAddrs()
	n := uniqueNames()
	r := startBridge(t, mqttURL, kafka, n, nil)
	pub := publisher(t, mqttURL)
	publishAll(t, pub, []message{{n.prefix + "/boat-0/telemetry", goodPayload("boat-0", 1)}})
	readTopic(t, kafka, n.raw, 1, 0)
	eventually(t, "the first message acknowledged", func() bool { return testutil.ToFloat64(r.b.metrics.inflight) == 0 })

	cl, ok := srv.Clients.Get(n.clientID)
	if !ok {
		t.Fatalf("broker has no client %q", n.clientID)
	}
	cl.Stop(errors.New("test: dropping the bridge's connection"))
	eventually(t, "the bridge to reconnect", func() bool {
		now, ok := srv.Clients.Get(n.clientID)
		return ok && now != cl && !now.Closed()
	})
	eventually(t, "the bridge to resubscribe", func() bool {
		return testutil.ToFloat64(r.b.metrics.inflight) == 0 && r.b.connects.Load() == 2
	})
	publishAll(t, pub, []message{
		{n.prefix + "/boat-0/telemetry", goodPayload("boat-0", 2)},
		{n.prefix + "/boat-0/telemetry", goodPayload("boat-0", 3)},
	})
	raw := readTopic(t, kafka, n.raw, 3, 500*time.Millisecond)
	if len(raw) != 3 {
		t.Fatalf("raw has %d records after the reconnect, want 3", len(raw))
	}
	var got [][]byte
	for _, rec := range raw {
		got = append(got, rec.Value)
	}
	// In any order: mochi-mqtt redelivers a session's queued messages
	// sorted by creation second only (see testRedelivery).
	if want := [][]byte{goodPayload("boat-0", 1), goodPayload("boat-0", 2), goodPayload("boat-0", 3)}; !sameSet(got, want) {
		t.Errorf("raw = %q, want %q", got, want)
	}
}
