package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/internal/kafkatopic"
	"github.com/sailstream/sailstream/internal/testenv"
	"github.com/sailstream/sailstream/telemetry"
)

// produce writes readings to topic, keyed by device, and waits for the acks.
func produce(t *testing.T, cl *kgo.Client, topic string, values ...[]byte) {
	t.Helper()
	var recs []*kgo.Record
	for _, v := range values {
		var e telemetry.Enriched
		_ = json.Unmarshal(v, &e)
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(e.Device), Value: v})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

func encode(t *testing.T, e telemetry.Enriched) []byte {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// startServer runs a server against brokers until the test ends.
func startServer(t *testing.T, cfg Config) (*Server, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Addr = "127.0.0.1:0"
	cfg.Registerer, cfg.Gatherer = reg, reg
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("Run ended before ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server not ready")
	}
	return s, reg
}

func counter(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
				}
				if !found {
					continue metrics
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func devices(t *testing.T, s *Server) map[string]uint64 {
	t.Helper()
	resp, err := http.Get("http://" + s.Addr() + "/api/devices")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got []telemetry.Enriched
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	out := make(map[string]uint64)
	for _, e := range got {
		out[e.Device] = e.Seq
	}
	return out
}

// checkPipeline is the shared body of the kfake and the real-Kafka tests:
// history before the server starts fills the latest table from the tail of
// the topic only; live records reach a WebSocket client; a bad record is
// counted, not fatal.
func checkPipeline(t *testing.T, brokers []string, topic string, partitions int32) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kafkatopic.Ensure(ctx, cl, kafkatopic.Spec{Name: topic, Partitions: partitions}); err != nil {
		t.Fatal(err)
	}

	// History: 3 boats x 50 readings. With a tail of 10 records per
	// partition the server must not read the whole history.
	const boats, history, tail = 3, 50, 10
	var values [][]byte
	for seq := uint64(1); seq <= history; seq++ {
		for b := 1; b <= boats; b++ {
			values = append(values, encode(t, reading(fmt.Sprintf("boat-%d", b), seq)))
		}
	}
	produce(t, cl, topic, values...)

	s, reg := startServer(t, Config{KafkaBrokers: brokers, EnrichedTopic: topic, TailRecords: tail})
	eventually(t, "latest table filled", func() bool {
		d := devices(t, s)
		return len(d) == boats && d["boat-1"] == history && d["boat-2"] == history && d["boat-3"] == history
	})
	if got := counter(t, reg, "sailstream_web_readings_received_total"); got > float64(int(partitions)*tail) {
		t.Errorf("received %v records at start, want at most %d (the tail of each partition)", got, int(partitions)*tail)
	}

	ws, resp, err := gws.DefaultDialer.Dial("ws://"+s.Addr()+"/ws", nil)
	if err != nil {
		t.Fatalf("dial /ws: %v", err)
	}
	_ = resp.Body.Close()
	defer ws.Close()
	read := func() telemetry.Enriched {
		t.Helper()
		_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
		var e telemetry.Enriched
		if err := ws.ReadJSON(&e); err != nil {
			t.Fatalf("read /ws: %v", err)
		}
		return e
	}
	for b := 1; b <= boats; b++ {
		if got := read(); got.Device != fmt.Sprintf("boat-%d", b) || got.Seq != history {
			t.Fatalf("snapshot %d: got %s/%d", b, got.Device, got.Seq)
		}
	}
	eventually(t, "client registered", func() bool { return s.Hub().Clients() == 1 })

	produce(t, cl, topic, []byte(`{"device":"boat-1",`), encode(t, reading("boat-1", history+1)))
	if got := read(); got.Device != "boat-1" || got.Seq != history+1 {
		t.Fatalf("live: got %s/%d, want boat-1/%d", got.Device, got.Seq, history+1)
	}
	eventually(t, "bad record counted", func() bool {
		return counter(t, reg, "sailstream_web_readings_invalid_total", "reason", telemetry.ReasonMalformed) == 1
	})
	resp2, err := http.Get("http://" + s.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	body, err := io.ReadAll(resp2.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp2.StatusCode != http.StatusOK || !strings.Contains(string(body), "sailstream_web_readings_received_total") {
		t.Fatalf("/metrics: %s\n%s", resp2.Status, body)
	}
}

func TestKafkaConsumptionKfake(t *testing.T) {
	const topic = "telemetry.enriched"
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	checkPipeline(t, c.ListenAddrs(), topic, 2)
}

// The server creates the topic if it does not exist yet and picks up
// readings produced later.
func TestKafkaTopicCreatedByServer(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const topic = "telemetry.enriched"
	s, reg := startServer(t, Config{KafkaBrokers: c.ListenAddrs()})
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// Wait for the server to create the topic, then produce into it.
	eventually(t, "topic created", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte("boat-9"), Value: encode(t, reading("boat-9", 1))}).FirstErr()
		return err == nil
	})
	eventually(t, "reading consumed", func() bool { return devices(t, s)["boat-9"] == 1 })
	if got := counter(t, reg, "sailstream_web_readings_received_total"); got < 1 {
		t.Errorf("received_total = %v", got)
	}
}

func TestIntegrationKafka(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	checkPipeline(t, brokers, testenv.Unique("web-enriched-"), 3)
}
