package blob

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/core"
	"github.com/sailstream/sailstream/edge"
	"github.com/sailstream/sailstream/internal/testenv"
	"github.com/sailstream/sailstream/telemetry"
)

// runCore runs a core processor on raw with output topics of its own until
// it has produced want records to enriched+late+dlq, and returns its
// enriched readings and late count.
func runCore(t *testing.T, brokers []string, raw, id string, want int) ([]telemetry.Enriched, int) {
	t.Helper()
	maxOOO := 2 * time.Second
	topics := core.Topics{Raw: raw, Enriched: id + ".enriched", Late: id + ".late", DLQ: id + ".dlq",
		Shadow: id + ".shadow", Registry: id + ".udf", State: id + ".state"}
	p, err := core.New(core.Config{
		KafkaBrokers: brokers, Group: id, Topics: topics, Partitions: 3,
		MaxOutOfOrder: &maxOOO, IdleTimeout: time.Second,
		CacheDir: filepath.Join(os.TempDir(), "sailstream-core-test-cache"),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("core Run = %v", err)
		}
	}()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topics.Enriched, topics.Late, topics.DLQ),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var enriched []telemetry.Enriched
	late, dlq := 0, 0
	deadline := time.Now().Add(2 * time.Minute)
	for len(enriched)+late+dlq < want {
		if time.Now().After(deadline) {
			t.Fatalf("core %s: %d enriched, %d late, %d dlq after 2m; want %d in all", id, len(enriched), late, dlq, want)
		}
		pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		fs := cl.PollFetches(pctx)
		pcancel()
		fs.EachRecord(func(r *kgo.Record) {
			switch r.Topic {
			case topics.Enriched:
				var e telemetry.Enriched
				if err := json.Unmarshal(r.Value, &e); err != nil {
					t.Fatalf("enriched %s: %v", r.Value, err)
				}
				enriched = append(enriched, e)
			case topics.Late:
				late++
			default:
				dlq++
			}
		})
	}
	if dlq != 0 {
		t.Errorf("core %s sent %d readings to the DLQ", id, dlq)
	}
	return enriched, late
}

// TestIntegrationRoundTrip is the archive's end-to-end promise: a fixed-seed
// fleet run through the core gives enriched readings A; the raw topic is
// archived, deleted, recreated and refilled by replay; a fresh core group
// gives B; A and B agree reading for reading except for processing time.
func TestIntegrationRoundTrip(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	t.Parallel()
	const n = 400
	start := time.Now().UTC().Add(-30 * time.Minute).Truncate(time.Second)
	plan, err := edge.Plan(edge.Config{Seed: 7, Devices: 5, Rate: 20, LateFraction: 0.05, LateMin: 300 * time.Millisecond, LateMax: 4 * time.Second}, start, n)
	if err != nil {
		t.Fatal(err)
	}
	raw := createTopic(t, brokers, 3)
	recs := make([]*kgo.Record, len(plan))
	for i, e := range plan {
		payload, err := telemetry.Encode(e.Reading)
		if err != nil {
			t.Fatal(err)
		}
		recs[i] = &kgo.Record{Key: []byte(e.Reading.Device), Value: payload, Timestamp: e.PublishAt, Headers: []kgo.RecordHeader{
			{Key: telemetry.HeaderMQTTTopic, Value: []byte(e.Topic)},
			{Key: telemetry.HeaderFormat, Value: []byte(telemetry.FormatJSON)},
			{Key: telemetry.HeaderReceivedAt, Value: []byte(e.PublishAt.UTC().Format(time.RFC3339Nano))},
			{Key: telemetry.HeaderBridgeID, Value: []byte("roundtrip")},
		}}
	}
	produce(t, brokers, raw, recs)

	store := dirStore(t)
	stop := runArchiver(t, Config{KafkaBrokers: brokers, Group: testenv.Unique("blob-g-"), Topic: raw, Store: store,
		BatchSize: 50, BatchTimeout: 300 * time.Millisecond})
	a, lateA := runCore(t, brokers, raw, testenv.Unique("rt-a-"), n)
	waitCoverage(t, store, raw, ends(recs, 3), time.Minute)
	stop()
	if len(a) < n/2 {
		t.Fatalf("only %d of %d readings enriched in run A", len(a), n)
	}

	// Delete and recreate the raw topic, then refill it from the archive.
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	if _, err := adm.DeleteTopics(ctx, raw); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := adm.CreateTopic(ctx, 3, 1, nil, raw)
		if err == nil {
			err = resp.Err
		}
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("recreating %s: %v", raw, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	sum, err := Replay(ctx, ReplayConfig{
		ReadConfig:   ReadConfig{Store: store, From: start.Add(-time.Hour), To: time.Now().Add(time.Hour), Topic: raw},
		KafkaBrokers: brokers, Target: raw,
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Records != n {
		t.Fatalf("replayed %d records, want %d", sum.Records, n)
	}
	b, lateB := runCore(t, brokers, raw, testenv.Unique("rt-b-"), n)

	if lateA != lateB || len(a) != len(b) {
		t.Fatalf("run A: %d enriched, %d late; run B: %d enriched, %d late", len(a), lateA, len(b), lateB)
	}
	byKey := func(es []telemetry.Enriched) map[string]telemetry.Enriched {
		m := map[string]telemetry.Enriched{}
		for _, e := range es {
			e.ProcessedAt, e.LatencyMS = time.Time{}, 0 // processing time differs
			k := fmt.Sprintf("%s/%d/%s", e.Device, e.Seq, e.Time.Format(time.RFC3339Nano))
			if _, dup := m[k]; dup {
				t.Fatalf("reading %s enriched twice", k)
			}
			m[k] = e
		}
		return m
	}
	ma, mb := byKey(a), byKey(b)
	for k, ea := range ma {
		eb, ok := mb[k]
		if !ok {
			t.Fatalf("reading %s enriched in run A only", k)
		}
		if !reflect.DeepEqual(ea, eb) {
			t.Fatalf("reading %s differs:\nA %+v\nB %+v", k, ea, eb)
		}
	}
	t.Logf("round trip: %d readings, %d enriched, %d late, identical", n, len(a), lateA)
}
