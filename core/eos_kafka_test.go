package core

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/internal/kafkatopic"
	"github.com/sailstream/sailstream/internal/testenv"
	"github.com/sailstream/sailstream/telemetry"
)

// eosReading is reading seq (from 1) of device number dev, one a second on
// a track that accelerates north, so a speed computed from the wrong
// previous position (state lost or stale after a restart) is wrong.
func eosReading(dev int, seq uint64) telemetry.Reading {
	at := time.Duration(seq) * time.Second
	s := at.Seconds()
	name := fmt.Sprintf("boat-%02d", dev)
	r := from(reading(name, seq, t0, 52.40+0.005*float64(dev), 21.02), 0, 10*s+s*s, at)
	r.Seq = seq
	return r
}

// eosStream is the raw stream: every device's readings by seq, with
// neighbouring seqs of some devices swapped (reordered within the bound)
// and some readings sent twice (QoS 1 redelivery, a few readings later).
func eosStream(devs int, seqs uint64) (stream []telemetry.Reading, dups int) {
	for seq := uint64(1); seq <= seqs; seq++ {
		for d := range devs {
			s := seq
			if (d+int(seq))%5 == 0 && seq < seqs {
				s = seq + 1 // swapped with the next
			} else if (d+int(seq-1))%5 == 0 && seq > 1 {
				s = seq - 1
			}
			stream = append(stream, eosReading(d, s))
			if seq > 3 && (d*7+int(seq))%23 == 0 {
				stream = append(stream, eosReading(d, seq-3))
				dups++
			}
		}
	}
	return stream, dups
}

// TestIntegrationExactlyOnceRestart stops an exactly-once processor
// mid-stream, twice, and starts another in the same group each time:
// enriched (read_committed) must hold every on-time reading exactly once,
// per device in event-time order, with the speed, course and distance
// computed from the previous position (restored from the state
// changelog, reorder buffer and dedup window included); the redelivered
// readings are recognised as duplicates across the restarts.
func TestIntegrationExactlyOnceRestart(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	t.Parallel()
	runExactlyOnce(t, brokers, false)
}

// TestIntegrationExactlyOnceScale runs three instances, adds a fourth
// mid-stream and then stops one of the first three (each a rebalance:
// state of moved partitions restored by the new owner, kept partitions
// keep theirs): the same assertions as TestIntegrationExactlyOnceRestart.
func TestIntegrationExactlyOnceScale(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	t.Parallel()
	runExactlyOnce(t, brokers, true)
}

func runExactlyOnce(t *testing.T, brokers []string, scale bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	u := newUDFTopics("core-eos-")
	u.Topics.State = u.id + ".state"

	const devs, seqs = 12, 150
	stream, dups := eosStream(devs, seqs)

	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	parts := int32(3)
	if scale {
		parts = 6 // four instances at most
	}
	if err := kafkatopic.Ensure(ctx, prod, kafkatopic.Spec{Name: u.Raw, Partitions: parts}); err != nil {
		t.Fatal(err)
	}
	produce := func(rs []telemetry.Reading) {
		t.Helper()
		var recs []*kgo.Record
		for _, r := range rs {
			b, err := telemetry.Encode(r)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, &kgo.Record{Topic: u.Raw, Key: []byte(r.Device), Value: b})
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cfg := u.config(brokers, nil)
	cfg.Guarantee = GuaranteeExactlyOnce
	cfg.Partitions = parts
	cfg.Now = func() time.Time { return t0.Add(time.Hour) }
	cfg.MaxOutOfOrder = new(2 * time.Second)
	cfg.IdleTimeout = time.Second
	if scale {
		// A rebalance stops the flow for a few seconds: a partition idle
		// for longer releases its reorder buffer, and the other half of
		// a reordered pair arriving after it is then rightly late. Not
		// what this test is about.
		cfg.IdleTimeout = 8 * time.Second
	}

	enrichedSoFar := func() int {
		adm := kadm.NewClient(prod)
		offs, err := adm.ListCommittedOffsets(ctx, u.Enriched) // read_committed end
		if err != nil {
			return 0
		}
		n := 0
		offs.Each(func(o kadm.ListedOffset) { n += int(o.Offset) })
		return n
	}
	// produceHalves produces a chunk in two halves, the second once the
	// first has brought output: whatever happens next happens mid-stream.
	produceHalves := func(chunk []telemetry.Reading) {
		half := len(chunk) / 2
		produce(chunk[:half])
		before := enrichedSoFar()
		waitFor(ctx, t, "some output", func() error {
			if enrichedSoFar() <= before {
				return fmt.Errorf("no new enriched output")
			}
			return nil
		})
		produce(chunk[half:])
	}
	startNth := func(i int) func() {
		c := cfg
		c.Registerer = prometheus.NewRegistry()
		c.TransactionalID = fmt.Sprintf("%s-core-%d", u.id, i)
		if c.Logger != nil {
			c.Logger = c.Logger.With("instance", i)
		}
		_, stop := startProcessor(t, c)
		t.Cleanup(stop)
		return stop
	}
	chunks := [][]telemetry.Reading{stream[:len(stream)/3], stream[len(stream)/3 : 2*len(stream)/3], stream[2*len(stream)/3:]}
	if scale {
		// Three instances; a fourth joins mid-stream; then one of the
		// first three leaves mid-stream.
		stops := []func(){startNth(0), startNth(1), startNth(2)}
		produceHalves(chunks[0])
		startNth(3)
		produceHalves(chunks[1])
		stops[1]()
		produceHalves(chunks[2])
	} else {
		// One instance at a time, each stopped while readings are still
		// arriving and replaced by the next.
		for i, chunk := range chunks {
			stop := startNth(0)
			produceHalves(chunk)
			if i < len(chunks)-1 {
				stop()
			}
		}
	}

	want := map[string][]telemetry.Reading{}
	for d := range devs {
		for seq := uint64(1); seq <= seqs; seq++ {
			r := eosReading(d, seq)
			want[r.Device] = append(want[r.Device], r)
		}
	}
	got := collect(ctx, t, brokers, map[string]int{u.Enriched: devs * seqs, u.Late: dups, u.DLQ: 0})

	checkOrderedMotion(t, want, got[u.Enriched], "each once, in event-time order")
	for _, r := range got[u.Late] {
		if reason := headerValue(r, telemetry.HeaderReason); reason != telemetry.ReasonDuplicate {
			t.Errorf("late record %s: reason %q, want %q", r.Key, reason, telemetry.ReasonDuplicate)
		}
	}
}
