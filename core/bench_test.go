package core

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/telemetry"
	"github.com/sailstream/sailstream/udf/registry"
)

// benchStream is a stream of six boats' payloads, one reading a second each,
// moving a few metres between readings, in event-time order.
func benchStream(b testing.TB, n int) (keys []string, payloads [][]byte) {
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
		st := newPartitionState(0)
		last := map[string]telemetry.Reading{}
		for i, p := range payloads {
			r, err := telemetry.Decode(keys[i], p, now)
			if err != nil {
				b.Fatal(err)
			}
			if v, _ := st.admit(r); v != accepted {
				b.Fatalf("reading %d not accepted: %d", i, v)
			}
			_ = Motion(prevOf(last, r), r)
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
// producing it: decode, event time, the builtin Wasm speed UDF (one call per
// device per poll of 6000 records), enriched JSON, metrics. Compare with
// BenchmarkHandleNative, the same work with the native motion.
func BenchmarkHandle(b *testing.B) {
	keys, payloads := benchStream(b, 6000)
	p, err := New(Config{KafkaBrokers: []string{"127.0.0.1:1"}, Engine: testEngine, Now: func() time.Time { return t0.Add(24 * time.Hour) }})
	if err != nil {
		b.Fatal(err)
	}
	tbl := testTable(b, p, registry.NewState())
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
		st := newPartitionState(0) // no reorder buffer: every reading comes out of this call
		out, err := p.handleRecords(context.Background(), tbl, st, recs, now, nil)
		if err != nil {
			b.Fatal(err)
		}
		for _, o := range out {
			if o.Topic != p.cfg.Topics.Enriched {
				b.Fatalf("record went to %s", o.Topic)
			}
		}
		n += len(recs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/reading")
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "readings/s")
}

// BenchmarkHandleNative is BenchmarkHandle with core.Motion computed natively
// in place of the Wasm UDF: the per-record path of the core before UDFs.
func BenchmarkHandleNative(b *testing.B) {
	keys, payloads := benchStream(b, 6000)
	now := t0.Add(24 * time.Hour)
	recv := t0.Add(24*time.Hour - 20*time.Millisecond)
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		st := newPartitionState(0)
		last := map[string]telemetry.Reading{}
		for i, pl := range payloads {
			r, err := telemetry.Decode(keys[i], pl, now)
			if err != nil {
				b.Fatal(err)
			}
			if v, _ := st.admit(r); v != accepted {
				b.Fatal("not accepted")
			}
			mv := Motion(prevOf(last, r), r)
			e := telemetry.Enriched{
				Device: r.Device, Seq: r.Seq, Time: r.Time.UTC(), Lat: r.Lat, Lon: r.Lon,
				DistanceM: mv.DistanceM, SpeedMS: mv.SpeedMS, SpeedKn: mv.SpeedKn, CourseDeg: mv.CourseDeg,
				ReceivedAt: recv, ProcessedAt: now, LatencyMS: 20, UDF: "speed", UDFVersion: "native", Fields: r.Fields,
			}
			if _, err := json.Marshal(e); err != nil {
				b.Fatal(err)
			}
		}
		n += len(payloads)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/reading")
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "readings/s")
}

// BenchmarkSwapPause measures what a swap costs the processing loop: at
// every batch boundary it picks up a table the router has just replaced.
func BenchmarkSwapPause(b *testing.B) {
	p, err := New(Config{KafkaBrokers: []string{"127.0.0.1:1"}, Engine: testEngine})
	if err != nil {
		b.Fatal(err)
	}
	t1 := testTable(b, p, registry.NewState())
	t2 := &table{routes: t1.routes, byName: t1.byName, fallback: t1.fallback, sig: t1.sig + "'"}
	tables := [2]*table{t1, t2}
	var pause time.Duration
	i := 0
	for b.Loop() {
		i++
		p.router.cur.Store(tables[i%2]) // the router publishes
		start := time.Now()
		t := p.acquireTable() // the loop picks it up at its next batch
		pause += time.Since(start)
		p.router.release()
		if t != tables[i%2] {
			b.Fatal("the loop did not pick up the new table")
		}
	}
	b.ReportMetric(float64(pause.Nanoseconds())/float64(b.N), "ns/swap")
}

// prevOf returns the device's previous reading from last (nil for its first)
// and makes r the device's last.
func prevOf(last map[string]telemetry.Reading, r telemetry.Reading) *telemetry.Reading {
	p, ok := last[r.Device]
	last[r.Device] = r
	if !ok {
		return nil
	}
	return &p
}
