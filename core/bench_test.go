package core

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/telemetry"
)

// benchStream is a stream of six boats' payloads, one reading a second each,
// moving a few metres between readings, in event-time order.
func benchStream(b *testing.B, n int) (keys []string, payloads [][]byte) {
	b.Helper()
	boats := make([]telemetry.Reading, 6)
	for i := range boats {
		boats[i] = reading(fmt.Sprintf("boat-%d", i+1), 0, t0, 52.46+float64(i)*0.005, 21.02+float64(i)*0.004)
	}
	for i := range n {
		k := i % len(boats)
		boats[k] = from(boats[k], float64(i*37%360), 3, time.Second)
		boats[k].Fields = map[string]float64{"battery": 0.87}
		p, err := telemetry.Encode(boats[k])
		if err != nil {
			b.Fatal(err)
		}
		keys = append(keys, boats[k].Device)
		payloads = append(payloads, p)
	}
	return keys, payloads
}

// BenchmarkDecodeMotion measures the per-reading work of the core without
// Kafka: decode and validate, the event-time check and the motion.
func BenchmarkDecodeMotion(b *testing.B) {
	keys, payloads := benchStream(b, 6000)
	now := t0.Add(24 * time.Hour)
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		// A fresh state per pass over the stream so every reading is
		// on time (the stream's event times start again).
		st := newPartitionState(DefaultMaxOutOfOrder)
		for i, p := range payloads {
			r, err := telemetry.Decode(keys[i], p, now)
			if err != nil {
				b.Fatal(err)
			}
			v, _, prev := st.admit(r)
			if v != accepted {
				b.Fatalf("reading %d not accepted: %d", i, v)
			}
			_ = Motion(prev, r)
		}
		n += len(payloads)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/reading")
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "readings/s")
}

// BenchmarkMotion measures the pure motion computation alone.
func BenchmarkMotion(b *testing.B) {
	a := reading("boat-1", 1, t0, 52.46, 21.02)
	c := from(a, 77, 4.2, time.Second)
	b.ReportAllocs()
	for b.Loop() {
		_ = Motion(&a, c)
	}
}

// BenchmarkHandle measures everything the processor does per record short of
// producing it: decode, event time, motion, enriched JSON, metrics.
func BenchmarkHandle(b *testing.B) {
	keys, payloads := benchStream(b, 6000)
	p, err := New(Config{KafkaBrokers: []string{"127.0.0.1:1"}, Now: func() time.Time { return t0.Add(24 * time.Hour) }})
	if err != nil {
		b.Fatal(err)
	}
	recv := []kgo.RecordHeader{{Key: telemetry.HeaderReceivedAt, Value: []byte(t0.Add(24*time.Hour - 20*time.Millisecond).Format(time.RFC3339Nano))}}
	recs := make([]*kgo.Record, len(payloads))
	for i := range payloads {
		recs[i] = &kgo.Record{Key: []byte(keys[i]), Value: payloads[i], Headers: recv}
	}
	now := p.cfg.Now()
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		st := newPartitionState(DefaultMaxOutOfOrder)
		for _, r := range recs {
			if out := p.handle(st, r, now); out.Topic != p.cfg.Topics.Enriched {
				b.Fatalf("record went to %s", out.Topic)
			}
		}
		n += len(recs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/reading")
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "readings/s")
}
