package testenv

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// These probes check that the test bed's services do what the rest of the
// tests rely on: plain and transactional produce/consume on Kafka, and a
// QoS 1 burst through Mosquitto with nothing lost.

func TestKafkaProbeProduceConsume(t *testing.T) {
	brokers := KafkaBrokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := Unique("probe-")
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 3, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	const n = 100
	for i := range n {
		cl.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte("k" + strconv.Itoa(i%7)), Value: []byte(strconv.Itoa(i))}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := consume(ctx, t, cl, n)
	for i := range n {
		if !got[strconv.Itoa(i)] {
			t.Errorf("record %d not consumed", i)
		}
	}
}

func TestKafkaProbeTransactions(t *testing.T) {
	brokers := KafkaBrokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := Unique("probe-txn-")
	adm, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	if _, err := kadm.NewClient(adm).CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	p, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID(Unique("probe-txn-")),
		kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	txn := func(value string, commit bool) {
		t.Helper()
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte(value)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := p.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	txn("aborted", false)
	txn("committed", true)

	c, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := consume(ctx, t, c, 1)
	if !got["committed"] || got["aborted"] {
		t.Errorf("read_committed consumer saw %v, want only the committed record", got)
	}
}

// consume polls until n records arrived (or ctx ends) and returns the set of
// values seen.
func consume(ctx context.Context, t *testing.T, cl *kgo.Client, n int) map[string]bool {
	t.Helper()
	got := map[string]bool{}
	count := 0
	for count < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records: %v", count, n, ctx.Err())
		}
		if err := fs.Err(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got[string(r.Value)] = true
			count++
		})
	}
	return got
}

func TestMQTTProbeQoS1Burst(t *testing.T) {
	url := MQTTURL(t)
	root := Unique("probe/")
	connect := func(id string) mqtt.Client {
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(id).
			SetCleanSession(true).SetAutoReconnect(false))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("connect %s to %s: %v", id, url, tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(100) })
		return c
	}
	sub := connect(Unique("sub-"))
	const n = 5000
	var mu sync.Mutex
	seen := map[string]bool{}
	all := make(chan struct{})
	tok := sub.Subscribe(root+"/#", 1, func(_ mqtt.Client, m mqtt.Message) {
		mu.Lock()
		defer mu.Unlock()
		seen[string(m.Payload())] = true
		if len(seen) == n {
			close(all)
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}

	pub := connect(Unique("pub-"))
	toks := make([]mqtt.Token, 0, n)
	for i := range n {
		toks = append(toks, pub.Publish(fmt.Sprintf("%s/boat%d", root, i%10), 1, false, strconv.Itoa(i)))
	}
	for i, tok := range toks {
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
	}
	select {
	case <-all:
	case <-time.After(30 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("subscriber got %d of %d QoS 1 messages", len(seen), n)
	}
}
