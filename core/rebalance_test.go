package core

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/internal/kafkatopic"
	"github.com/sailstream/sailstream/telemetry"
)

// TestProcessorRebalance starts a second processor in the group of a first
// one: the first must give up a partition (dropping its state for it) and
// no reading is enriched twice or lost. With exactly-once the second
// carries on from the moved partition's state in the changelog; with
// at-least-once it starts that partition's devices from scratch.
func TestProcessorRebalance(t *testing.T) {
	for _, g := range []string{GuaranteeExactlyOnce, GuaranteeAtLeastOnce} {
		t.Run(g, func(t *testing.T) {
			t.Parallel()
			testRebalance(t, g)
		})
	}
}

func testRebalance(t *testing.T, guarantee string) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	topics := Topics{Raw: "raw", Enriched: "enriched", Late: "late", DLQ: "dlq"}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := kafkatopic.Ensure(ctx, prod, kafkatopic.Spec{Name: topics.Raw, Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	// boat-p0 lives on partition 0 and boat-p1 on partition 1.
	produce := func(seqs ...uint64) {
		t.Helper()
		var recs []*kgo.Record
		for _, seq := range seqs {
			for part := range int32(2) {
				dev := fmt.Sprintf("boat-p%d", part)
				recs = append(recs, &kgo.Record{
					Topic: topics.Raw, Partition: part, Key: []byte(dev),
					Value: payload(dev, seq, time.Duration(seq)*time.Second, 52.46+float64(seq)*0.0001, 21.02),
				})
			}
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{
		KafkaBrokers: brokers, Group: "core-rebalance", Topics: topics, Partitions: 2,
		Now: func() time.Time { return scenarioNow }, Guarantee: guarantee,
	}

	produce(1, 2, 3)
	a, stopA := startProcessor(t, cfg)
	defer stopA()
	collect(ctx, t, brokers, map[string]int{topics.Enriched: 6})
	if n := partsOf(a); n != 2 {
		t.Fatalf("first processor has state for %d partitions, want 2", n)
	}

	b, stopB := startProcessor(t, cfg)
	defer stopB()
	waitFor(ctx, t, "the first processor to drop one partition's state", func() error {
		if n := partsOf(a); n != 1 {
			return fmt.Errorf("state for %d partitions", n)
		}
		return nil
	})

	produce(4, 5)
	got := collect(ctx, t, brokers, map[string]int{topics.Enriched: 10, topics.Late: 0, topics.DLQ: 0})
	seen := map[string]bool{}
	firsts := 0
	for _, rec := range got[topics.Enriched] {
		var e telemetry.Enriched
		if err := json.Unmarshal(rec.Value, &e); err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("%s/%d", e.Device, e.Seq)
		if seen[id] {
			t.Errorf("%s enriched twice", id)
		}
		seen[id] = true
		if e.Seq > 1 && e.DistanceM == 0 {
			// The first reading an instance sees of a device when the
			// new owner of a partition starts without state.
			if e.Seq != 4 {
				t.Errorf("%s: no previous reading, want that only for the moved partition's seq 4", id)
			}
			firsts++
		}
	}
	want := 0 // the changelog carries the moved partition's state over
	if guarantee == GuaranteeAtLeastOnce {
		want = 1 // the moved partition starts from empty state
	}
	if firsts != want {
		t.Errorf("%d readings started from empty state after the rebalance, want %d", firsts, want)
	}
	if partsOf(b) != 1 {
		t.Errorf("second processor has state for %d partitions, want 1", partsOf(b))
	}
}

func partsOf(p *Processor) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.parts)
}
