package core

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/internal/kafkatopic"
	"github.com/sailstream/sailstream/internal/testenv"
	"github.com/sailstream/sailstream/telemetry"
)

// trackReading is reading seq of dev at t0+at on a track that accelerates
// north (distance from the start 10·s + s² metres after s seconds), so a
// motion computed on misordered positions has the wrong speed and course.
func trackReading(dev string, seq uint64, at time.Duration) telemetry.Reading {
	s := at.Seconds()
	lon := 21.02
	if dev == "boat-b" {
		lon = 21.05
	}
	r := from(reading(dev, seq, t0, 52.46, lon), 0, 10*s+s*s, at)
	r.Seq = seq
	r.Fields = map[string]float64{"battery": 0.9}
	return r
}

// TestIntegrationLateData runs hand-made event times through the processor
// on the real broker: in order, reordered within the bound, beyond it,
// redelivered. Enriched must hold exactly the expected readings, per device
// in event-time order with the motion computed on the ordered positions;
// late exactly the late ones with reason and late_by; duplicates are kept in
// late with reason duplicate and counted.
func TestIntegrationLateData(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	u := newUDFTopics("core-late-")

	type arrival struct {
		dev    string
		seq    uint64
		at     time.Duration
		reason string // "" enriched
		lateBy string
	}
	ms := time.Millisecond
	arrivals := []arrival{
		{"boat-a", 1, 0, "", ""},
		{"boat-a", 2, 1000 * ms, "", ""},
		{"boat-b", 1, 500 * ms, "", ""},
		{"boat-a", 4, 3000 * ms, "", ""}, // watermark 1s
		{"boat-a", 3, 2000 * ms, "", ""}, // reordered within the bound
		{"boat-b", 3, 3000 * ms, "", ""},
		{"boat-b", 2, 1500 * ms, "", ""},                                   // reordered within the bound
		{"boat-a", 5, 6000 * ms, "", ""},                                   // watermark 4s
		{"boat-a", 2, 1000 * ms, telemetry.ReasonDuplicate, "0s"},          // QoS 1 redelivery
		{"boat-b", 9, 2000 * ms, telemetry.ReasonBehindWatermark, "2s"},    // beyond the bound
		{"boat-a", 6, 5000 * ms, "", ""},                                   // reordered within the bound
		{"boat-a", 5, 6000 * ms, telemetry.ReasonDuplicate, "0s"},          // redelivery of a buffered reading
		{"boat-a", 7, 6000 * ms, telemetry.ReasonOutOfOrder, "0s"},         // same event time as a/5, another seq
		{"boat-b", 4, 4500 * ms, "", ""},                                   // exactly within
		{"boat-a", 8, 3500 * ms, telemetry.ReasonBehindWatermark, "500ms"}, // beyond the bound
	}

	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := kafkatopic.Ensure(ctx, prod, kafkatopic.Spec{Name: u.Raw, Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	var raw []*kgo.Record
	for _, a := range arrivals {
		b, err := telemetry.Encode(trackReading(a.dev, a.seq, a.at))
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, &kgo.Record{Topic: u.Raw, Key: []byte(a.dev), Value: b})
	}
	if err := prod.ProduceSync(ctx, raw...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	cfg := u.config(brokers, reg)
	cfg.Partitions = 1
	cfg.Now = func() time.Time { return t0.Add(time.Hour) }
	cfg.MaxOutOfOrder = new(2 * time.Second)
	cfg.IdleTimeout = time.Second
	p, stop := startProcessor(t, cfg)
	defer stop()

	// Expected: each device's on-time readings in event-time order, the
	// motion from the previous one.
	want := map[string][]telemetry.Reading{}
	var wantLate []arrival
	for _, a := range arrivals {
		if a.reason != "" {
			wantLate = append(wantLate, a)
			continue
		}
		want[a.dev] = append(want[a.dev], trackReading(a.dev, a.seq, a.at))
	}
	nEnriched := 0
	for dev := range want {
		slices.SortFunc(want[dev], func(a, b telemetry.Reading) int { return a.Time.Compare(b.Time) })
		nEnriched += len(want[dev])
	}
	got := collect(ctx, t, brokers, map[string]int{u.Enriched: nEnriched, u.Late: len(wantLate), u.DLQ: 0})

	checkOrderedMotion(t, want, got[u.Enriched], "event-time order")

	type lateKey struct {
		dev, reason, lateBy string
		seq                 uint64
	}
	var gotLate, wantLateKeys []lateKey
	for _, r := range got[u.Late] {
		rd, err := telemetry.Decode(string(r.Key), r.Value, cfg.Now())
		if err != nil {
			t.Fatal(err)
		}
		gotLate = append(gotLate, lateKey{rd.Device, headerValue(r, telemetry.HeaderReason), headerValue(r, telemetry.HeaderLateBy), rd.Seq})
	}
	for _, a := range wantLate {
		wantLateKeys = append(wantLateKeys, lateKey{a.dev, a.reason, a.lateBy, a.seq})
	}
	// Rejections are produced as records arrive: the late topic keeps
	// arrival order.
	if !slices.Equal(gotLate, wantLateKeys) {
		t.Errorf("late records\n got %v\nwant %v", gotLate, wantLateKeys)
	}

	for dev, n := range map[string]float64{"boat-a": 2} {
		if got := metricValue(t, p.m.duplicates.WithLabelValues(dev)); got != n {
			t.Errorf("duplicates_total{device=%q} = %g, want %g", dev, got, n)
		}
	}
	for dev, n := range map[string]float64{"boat-a": 2, "boat-b": 1} {
		if got := metricValue(t, p.m.late.WithLabelValues(dev)); got != n {
			t.Errorf("late_total{device=%q} = %g, want %g", dev, got, n)
		}
	}
	// Once everything is released, the whole partition is committed.
	adm := kadm.NewClient(prod)
	waitFor(ctx, t, "committed offset", func() error {
		offs, err := adm.FetchOffsets(ctx, cfg.Group)
		if err != nil {
			return err
		}
		if o, ok := offs.Lookup(u.Raw, 0); !ok || o.At != int64(len(arrivals)) {
			return fmt.Errorf("committed %+v, want %d", o, len(arrivals))
		}
		return nil
	})
	if got := metricValue(t, p.m.buffered); got != 0 {
		t.Errorf("buffered_readings = %g after the release, want 0", got)
	}
}

func close6(a, b float64) bool { return a == b || (a-b)*(a-b) <= 1e-12*max(1, b*b) }

func headerValue(r *kgo.Record, k string) string {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

// TestIntegrationIdlePartition: partition 2 of the raw topic falls silent
// while partitions 0 and 1 keep streaming. Once it has been silent for the
// idle timeout it stops holding back the watermark (the others' readings
// come out while they still stream) and releases what it buffered. With an
// idle timeout longer than the run, the silent partition holds everything.
func TestIntegrationIdlePartition(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	t.Parallel()
	for _, tc := range []struct {
		name string
		idle time.Duration
		// whether the streaming partitions' output must appear while
		// they stream (else: must not)
		flows bool
	}{
		{"idle after 1s", time.Second, true},
		{"idle timeout longer than the run", time.Minute, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runIdlePartition(t, brokers, tc.idle, tc.flows)
		})
	}
}

func runIdlePartition(t *testing.T, brokers []string, idle time.Duration, flows bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	u := newUDFTopics("core-idle-")
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := kafkatopic.Ensure(ctx, prod, kafkatopic.Spec{Name: u.Raw, Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	produce := func(part int32, seq uint64) {
		t.Helper()
		dev := fmt.Sprintf("boat-p%d", part)
		b, err := telemetry.Encode(trackReading(dev, seq, time.Duration(seq)*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if err := prod.ProduceSync(ctx, &kgo.Record{Topic: u.Raw, Partition: part, Key: []byte(dev), Value: b}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cfg := u.config(brokers, nil)
	cfg.Now = func() time.Time { return t0.Add(time.Hour) }
	cfg.MaxOutOfOrder = new(2 * time.Second)
	cfg.IdleTimeout = idle
	_, stop := startProcessor(t, cfg)
	defer stop()

	// Partition 2 gets seqs 1–3 (event times 1–3 s, watermark 1 s) and
	// falls silent; partitions 0 and 1 stream one reading per device
	// every 100 ms with event time advancing 1 s per reading.
	for seq := uint64(1); seq <= 3; seq++ {
		produce(2, seq)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(u.Enriched),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := map[string][]uint64{}
	poll := func() {
		pctx, pcancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer pcancel()
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			var e telemetry.Enriched
			if err := json.Unmarshal(r.Value, &e); err != nil {
				t.Fatal(err)
			}
			seen[e.Device] = append(seen[e.Device], e.Seq)
		})
	}
	const streamFor = 40 // readings per streaming device: 4 s
	flowed := false
	for seq := uint64(1); seq <= streamFor; seq++ {
		produce(0, seq)
		produce(1, seq)
		poll()
		if len(seen["boat-p0"]) >= 10 && len(seen["boat-p1"]) >= 10 {
			flowed = true
		}
		time.Sleep(100 * time.Millisecond)
	}
	poll()
	if flowed || len(seen["boat-p0"])+len(seen["boat-p1"]) >= 20 {
		flowed = true
	}
	switch {
	case flows && !flowed:
		t.Fatalf("partitions 0 and 1 streamed for 4 s with partition 2 silent past the idle timeout, but only %d and %d readings came out meanwhile",
			len(seen["boat-p0"]), len(seen["boat-p1"]))
	case !flows:
		// Only what is at or before partition 2's watermark (1 s).
		for _, dev := range []string{"boat-p0", "boat-p1"} {
			if slices.ContainsFunc(seen[dev], func(seq uint64) bool { return seq > 1 }) {
				t.Fatalf("partition 2 is not idle yet and its watermark (1 s) holds the operator's back, yet %s came out with %v", dev, seen[dev])
			}
		}
	}
	if !flows {
		return
	}
	// Everything comes out in the end, partition 2's buffered readings
	// included, each device in order, each reading once.
	got := collect(ctx, t, brokers, map[string]int{u.Enriched: 2*streamFor + 3, u.Late: 0, u.DLQ: 0})
	byDev := map[string][]string{}
	for _, e := range decodeEnriched(t, got[u.Enriched]) {
		byDev[e.Device] = append(byDev[e.Device], fmt.Sprint(e.Seq))
	}
	for dev, n := range map[string]int{"boat-p0": streamFor, "boat-p1": streamFor, "boat-p2": 3} {
		var want []string
		for i := 1; i <= n; i++ {
			want = append(want, fmt.Sprint(i))
		}
		if g, w := strings.Join(byDev[dev], ","), strings.Join(want, ","); g != w {
			t.Errorf("%s enriched seqs %s, want %s", dev, g, w)
		}
	}
}
