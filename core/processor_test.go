package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/internal/kafkatopic"
	"github.com/sailstream/sailstream/telemetry"
)

func TestConfigValidate(t *testing.T) {
	ok := Config{KafkaBrokers: []string{"127.0.0.1:9092"}}
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"no brokers", func(c *Config) { c.KafkaBrokers = nil }, "no Kafka brokers"},
		{"empty broker", func(c *Config) { c.KafkaBrokers = []string{""} }, "empty Kafka broker"},
		{"negative partitions", func(c *Config) { c.Partitions = -1 }, "partitions -1"},
		{"negative out-of-order", func(c *Config) { c.MaxOutOfOrder = new(-time.Second) }, "must not be negative"},
		{"same topic twice", func(c *Config) { c.Topics.Late = telemetry.TopicDLQ }, "both"},
		{"raw equals enriched default", func(c *Config) { c.Topics.Raw = telemetry.TopicEnriched }, "both"},
		{"shadow equals dlq", func(c *Config) { c.Topics.Shadow = "x"; c.Topics.DLQ = "x" }, "both"},
		{"registry equals raw", func(c *Config) { c.Topics.Registry = telemetry.TopicRaw }, "both"},
		{"quarantine ratio 1", func(c *Config) { c.QuarantineRatio = 1 }, "quarantine ratio"},
		{"negative quarantine window", func(c *Config) { c.QuarantineWindow = -1 }, "quarantine window"},
		{"quarantine disabled", func(c *Config) { c.QuarantineAfter = -1 }, ""},
		{"exactly-once", func(c *Config) { c.Guarantee = GuaranteeExactlyOnce }, ""},
		{"unknown guarantee", func(c *Config) { c.Guarantee = "at-most-once" }, "guarantee"},
		{"state equals registry", func(c *Config) { c.Topics.State = "x"; c.Topics.Registry = "x" }, "both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mutate(&c)
			err := c.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
			if _, nerr := New(c); (nerr == nil) != (err == nil) {
				t.Fatalf("New() error %v disagrees with Validate() %v", nerr, err)
			}
		})
	}
}

func TestNewDuplicateRegisterer(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := Config{KafkaBrokers: []string{"127.0.0.1:9092"}, Registerer: reg}
	if _, err := New(cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg); err == nil {
		t.Fatal("second New with the same Registerer: want an error")
	}
}

// TestProcessorKfake runs the scenario against franz-go's in-process fake
// cluster: fast, and always available.
func TestProcessorKfake(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	runScenario(t, c.ListenAddrs(), Topics{
		Raw: "raw", Enriched: "enriched", Late: "late", DLQ: "dlq",
	}, "core-test")
}

// scenario clock: every reading's event time is around t0 and the processor
// runs at scenarioNow; the bridge received every message 250 ms before that.
var (
	scenarioNow      = t0.Add(time.Minute)
	scenarioReceived = scenarioNow.Add(-250 * time.Millisecond)
)

type rawCase struct {
	name    string
	key     string
	payload []byte
	noRecv  bool // no received_at header

	// What the processor must make of it.
	out    string // "enriched", "late" or "dlq"
	reason string // late and dlq
	lateBy string // late
	motion Movement
}

func payload(dev string, seq uint64, at time.Duration, lat, lon float64) []byte {
	r := telemetry.Reading{Device: dev, Seq: seq, Time: t0.Add(at), Lat: lat, Lon: lon, Fields: map[string]float64{"battery": 0.9}}
	b, err := telemetry.Encode(r)
	if err != nil {
		panic(err)
	}
	return b
}

// scenarioCases is one partition's worth of raw records, in order, with the
// expected result of each. Event times: boat-1 10 s ahead makes the
// watermark t0+8s.
func scenarioCases() []rawCase {
	milliDegM := 6371008.8 * math.Pi / 180 / 1000
	n1 := from(reading("boat-1", 1, t0, 52.46, 21.02), 0, 10, 2*time.Second)
	e1 := from(n1, 90, 20, 8*time.Second)
	return []rawCase{
		{name: "boat-1 first", key: "boat-1", payload: payload("boat-1", 1, 0, 52.46, 21.02), out: "enriched"},
		{name: "boat-2 first", key: "boat-2", payload: payload("boat-2", 1, time.Second, 52.47, 21.03), out: "enriched"},
		{name: "boat-1 10 m north in 2 s", key: "boat-1", payload: payload("boat-1", 2, 2*time.Second, n1.Lat, n1.Lon),
			out: "enriched", motion: Movement{DistanceM: 10, SpeedMS: 5, SpeedKn: 5 * 3600 / 1852.0, CourseDeg: 0}},
		{name: "bad JSON", key: "boat-3", payload: []byte(`{"seq":1,"time":`), out: "dlq", reason: telemetry.ReasonMalformed},
		{name: "boat-1 20 m east in 8 s", key: "boat-1", payload: payload("boat-1", 3, 10*time.Second, e1.Lat, e1.Lon),
			out: "enriched", motion: Movement{DistanceM: 20, SpeedMS: 2.5, SpeedKn: 2.5 * 3600 / 1852.0, CourseDeg: 90}},
		{name: "boat-2 behind the watermark", key: "boat-2", payload: payload("boat-2", 2, 5*time.Second, 52.47, 21.03),
			out: "late", reason: telemetry.ReasonBehindWatermark, lateBy: "3s"},
		{name: "boat-1 at the event time of its buffered reading", key: "boat-1", payload: payload("boat-1", 4, 10*time.Second, 52.46, 21.02),
			out: "late", reason: telemetry.ReasonOutOfOrder, lateBy: "0s"},
		{name: "boat-1 redelivered", key: "boat-1", payload: payload("boat-1", 3, 10*time.Second, e1.Lat, e1.Lon),
			out: "late", reason: telemetry.ReasonDuplicate, lateBy: "0s"},
		{name: "NaN latitude as a string", key: "boat-2", payload: []byte(`{"seq":3,"time":"2026-06-01T12:00:09Z","lat":"NaN","lon":21.03}`),
			out: "dlq", reason: telemetry.ReasonInvalidPosition},
		{name: "device id with +", key: "boat+1", payload: []byte(`{"seq":1,"time":"2026-06-01T12:00:09Z","lat":52.46,"lon":21.02}`),
			out: "dlq", reason: telemetry.ReasonInvalidDevice},
		{name: "device mismatch", key: "boat-1", payload: payload("boat-9", 1, 9*time.Second, 52.46, 21.02),
			out: "dlq", reason: telemetry.ReasonDeviceMismatch},
		{name: "two hours in the future", key: "boat-1", payload: payload("boat-1", 9, 2*time.Hour, 52.46, 21.02),
			out: "dlq", reason: telemetry.ReasonInvalidTime},
		{name: "70 KiB", key: "boat-1", payload: []byte(`{"seq":1,"pad":"` + strings.Repeat("x", 70<<10) + `"}`),
			out: "dlq", reason: telemetry.ReasonPayloadTooLarge},
		{name: "empty payload", key: "boat-2", payload: []byte{}, out: "dlq", reason: telemetry.ReasonMalformed},
		{name: "boat-2 0.001 degree north in 9 s, no received_at", key: "boat-2", noRecv: true,
			payload: payload("boat-2", 3, 10*time.Second, 52.471, 21.03),
			out:     "enriched", motion: Movement{DistanceM: milliDegM, SpeedMS: milliDegM / 9, SpeedKn: milliDegM / 9 * 3600 / 1852, CourseDeg: 0}},
	}
}

func rawHeaders(c rawCase) []kgo.RecordHeader {
	h := []kgo.RecordHeader{
		{Key: telemetry.HeaderMQTTTopic, Value: []byte("sailstream/devices/" + c.key + "/telemetry")},
		{Key: telemetry.HeaderFormat, Value: []byte(telemetry.FormatJSON)},
	}
	if !c.noRecv {
		h = append(h, kgo.RecordHeader{Key: telemetry.HeaderReceivedAt, Value: []byte(scenarioReceived.Format(time.RFC3339Nano))})
	}
	return append(h, kgo.RecordHeader{Key: telemetry.HeaderBridgeID, Value: []byte("bridge-test")})
}

// runScenario produces scenarioCases to a one-partition raw topic, runs a
// processor over it and checks every output record, the metrics and the
// committed offset; then restarts the processor to check that nothing is
// processed twice.
func runScenario(t *testing.T, brokers []string, topics Topics, group string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	admin, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := kafkatopic.Ensure(ctx, admin, kafkatopic.Spec{Name: topics.Raw, Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	cases := scenarioCases()
	var raw []*kgo.Record
	for _, c := range cases {
		raw = append(raw, &kgo.Record{Topic: topics.Raw, Key: []byte(c.key), Value: c.payload, Headers: rawHeaders(c)})
	}
	if err := admin.ProduceSync(ctx, raw...).FirstErr(); err != nil {
		t.Fatalf("producing raw records: %v", err)
	}

	reg := prometheus.NewRegistry()
	p, stop := startProcessor(t, Config{
		KafkaBrokers: brokers, Group: group, Topics: topics, Partitions: 1,
		Now: func() time.Time { return scenarioNow }, Registerer: reg,
	})

	var wantEnriched, wantLate, wantDLQ int
	for _, c := range cases {
		switch c.out {
		case "enriched":
			wantEnriched++
		case "late":
			wantLate++
		case "dlq":
			wantDLQ++
		}
	}
	got := collect(ctx, t, brokers, map[string]int{topics.Enriched: wantEnriched, topics.Late: wantLate, topics.DLQ: wantDLQ})
	late, dlq := got[topics.Late], got[topics.DLQ]
	// Enriched records keep each device's order; the core batches a
	// poll's readings by device, so devices do not interleave as in raw.
	enriched := map[string][]*kgo.Record{}
	for _, r := range got[topics.Enriched] {
		enriched[string(r.Key)] = append(enriched[string(r.Key)], r)
	}

	for i, c := range cases {
		switch c.out {
		case "enriched":
			checkEnriched(t, c, enriched[c.key][0])
			enriched[c.key] = enriched[c.key][1:]
		case "late":
			checkRejected(t, c, late[0], map[string]string{
				telemetry.HeaderReason: c.reason, telemetry.HeaderLateBy: c.lateBy, telemetry.HeaderStage: "core",
			})
			late = late[1:]
		case "dlq":
			checkRejected(t, c, dlq[0], map[string]string{
				telemetry.HeaderReason: c.reason, telemetry.HeaderStage: "core",
			})
			dlq = dlq[1:]
		default:
			t.Fatalf("case %d: bad out %q", i, c.out)
		}
	}

	// Metrics.
	if got, want := metricValue(t, p.m.in), float64(len(cases)); got != want {
		t.Errorf("readings_in_total = %g, want %g", got, want)
	}
	if got := metricValue(t, p.m.enriched); got != float64(wantEnriched) {
		t.Errorf("readings_enriched_total = %g, want %d", got, wantEnriched)
	}
	wantLateBy := map[string]float64{}
	wantDupBy := map[string]float64{}
	wantDLQBy := map[string]float64{}
	for _, c := range cases {
		switch {
		case c.out == "late" && c.reason == telemetry.ReasonDuplicate:
			wantDupBy[c.key]++
		case c.out == "late":
			wantLateBy[c.key]++
		case c.out == "dlq":
			wantDLQBy[c.reason]++
		}
	}
	for dev, n := range wantDupBy {
		if got := metricValue(t, p.m.duplicates.WithLabelValues(dev)); got != n {
			t.Errorf("duplicates_total{device=%q} = %g, want %g", dev, got, n)
		}
	}
	for dev, n := range wantLateBy {
		if got := metricValue(t, p.m.late.WithLabelValues(dev)); got != n {
			t.Errorf("late_total{device=%q} = %g, want %g", dev, got, n)
		}
	}
	for reason, n := range wantDLQBy {
		if got := metricValue(t, p.m.dlq.WithLabelValues(reason)); got != n {
			t.Errorf("dlq_total{reason=%q} = %g, want %g", reason, got, n)
		}
	}
	// Every enriched reading with a received_at header is observed, at
	// 250 ms.
	var hm dto.Metric
	if err := p.m.latency.Write(&hm); err != nil {
		t.Fatal(err)
	}
	if got, want := hm.GetHistogram().GetSampleCount(), uint64(wantEnriched-1); got != want {
		t.Errorf("latency histogram count = %d, want %d", got, want)
	}
	if got, want := hm.GetHistogram().GetSampleSum(), 0.25*float64(wantEnriched-1); math.Abs(got-want) > 1e-9 {
		t.Errorf("latency histogram sum = %g, want %g", got, want)
	}
	// Watermark t0+8s, clock t0+60s.
	if got := metricValue(t, p.m.watermark.WithLabelValues("0")); got != 52 {
		t.Errorf("watermark_lag_seconds{partition=0} = %g, want 52", got)
	}

	// The polled offsets are committed once the outputs are flushed.
	adm := kadm.NewClient(admin)
	waitFor(ctx, t, "committed offset", func() error {
		offs, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return err
		}
		o, ok := offs.Lookup(topics.Raw, 0)
		if !ok || o.At != int64(len(cases)) {
			return fmt.Errorf("committed %+v, want %d", o, len(cases))
		}
		return nil
	})
	stop()

	// A restarted processor resumes after the commit: only a new record
	// is processed, and it continues from boat-1's state, which the new
	// instance read back from the changelog (exactly-once, the default):
	// its motion is measured from boat-1's last reading, 10 s.
	next := rawCase{name: "boat-1 after a restart", key: "boat-1", payload: payload("boat-1", 5, 11*time.Second, 52.46, 21.02), out: "enriched"}
	var prev, cur telemetry.Reading
	if err := json.Unmarshal(cases[4].payload, &prev); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(next.payload, &cur); err != nil {
		t.Fatal(err)
	}
	if cases[4].name != "boat-1 20 m east in 8 s" {
		t.Fatalf("case 4 is %q: update the restart check", cases[4].name)
	}
	next.motion = Motion(&prev, cur)
	if err := admin.ProduceSync(ctx, &kgo.Record{Topic: topics.Raw, Key: []byte(next.key), Value: next.payload, Headers: rawHeaders(next)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	_, stop2 := startProcessor(t, Config{
		KafkaBrokers: brokers, Group: group, Topics: topics, Partitions: 1,
		Now: func() time.Time { return scenarioNow },
	})
	defer stop2()
	got = collect(ctx, t, brokers, map[string]int{topics.Enriched: wantEnriched + 1, topics.Late: wantLate, topics.DLQ: wantDLQ})
	checkEnriched(t, next, got[topics.Enriched][wantEnriched])
}

// startProcessor runs a processor until the returned stop is called, and
// fails the test unless Run returns nil promptly.
func startProcessor(t *testing.T, cfg Config) (*Processor, func()) {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	select {
	case <-p.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("processor not ready after 30s")
	}
	stopped := false
	return p, func() {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v, want nil on cancel", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("Run did not return within 20s of cancel")
		}
	}
}

// collect reads each topic from the start until it holds want[topic]
// records, then checks for a short while that no more arrive.
func collect(ctx context.Context, t *testing.T, brokers []string, want map[string]int) map[string][]*kgo.Record {
	t.Helper()
	var topics []string
	for tp := range want {
		topics = append(topics, tp)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := map[string][]*kgo.Record{}
	enough := func() bool {
		for tp, n := range want {
			if len(got[tp]) < n {
				return false
			}
		}
		return true
	}
	var settle <-chan time.Time
	for {
		pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		fs := cl.PollFetches(pctx)
		pcancel()
		fs.EachRecord(func(r *kgo.Record) { got[r.Topic] = append(got[r.Topic], r) })
		fs.EachError(func(tp string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				t.Logf("collect: fetch %s/%d: %v", tp, p, err)
			}
		})
		if ctx.Err() != nil {
			counts := map[string]int{}
			for tp := range want {
				counts[tp] = len(got[tp])
			}
			t.Fatalf("collect: got %v records, want %v", counts, want)
		}
		if enough() {
			if settle == nil {
				settle = time.After(500 * time.Millisecond)
			}
			select {
			case <-settle:
				for tp, n := range want {
					if len(got[tp]) != n {
						t.Fatalf("topic %s: %d records, want exactly %d", tp, len(got[tp]), n)
					}
				}
				return got
			default:
			}
		}
	}
}

func waitFor(ctx context.Context, t *testing.T, what string, f func() error) {
	t.Helper()
	var err error
	for ctx.Err() == nil {
		if err = f(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("waiting for %s: %v", what, err)
}

func checkEnriched(t *testing.T, c rawCase, rec *kgo.Record) {
	t.Helper()
	var in telemetry.Reading
	if err := json.Unmarshal(c.payload, &in); err != nil {
		t.Fatal(err)
	}
	if string(rec.Key) != c.key {
		t.Errorf("%s: enriched key %q, want %q", c.name, rec.Key, c.key)
	}
	var e telemetry.Enriched
	dec := json.NewDecoder(strings.NewReader(string(rec.Value)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("%s: enriched value %s: %v", c.name, rec.Value, err)
	}
	want := telemetry.Enriched{
		Device: c.key, Seq: in.Seq, Time: in.Time.UTC(), Lat: in.Lat, Lon: in.Lon,
		DistanceM: c.motion.DistanceM, SpeedMS: c.motion.SpeedMS, SpeedKn: c.motion.SpeedKn, CourseDeg: c.motion.CourseDeg,
		ReceivedAt: scenarioReceived, ProcessedAt: scenarioNow, LatencyMS: 250,
		UDF: builtinInfo.Name, UDFVersion: builtinInfo.Version, Fields: in.Fields,
	}
	if c.noRecv {
		want.ReceivedAt, want.LatencyMS = time.Time{}, 0
	}
	for _, f := range []struct {
		name      string
		got, want *float64
	}{
		{"distance_m", &e.DistanceM, &want.DistanceM},
		{"speed_ms", &e.SpeedMS, &want.SpeedMS},
		{"speed_kn", &e.SpeedKn, &want.SpeedKn},
		{"course_deg", &e.CourseDeg, &want.CourseDeg},
	} {
		diff := math.Abs(*f.got - *f.want)
		if f.name == "course_deg" {
			diff = angleDiff(*f.got, *f.want)
		}
		if diff > 1e-6*max(1, *f.want) {
			t.Errorf("%s: %s = %.9g, want %.9g", c.name, f.name, *f.got, *f.want)
		}
		*f.got = *f.want
	}
	if !reflect.DeepEqual(e, want) {
		t.Errorf("%s: enriched\n got %+v\nwant %+v", c.name, e, want)
	}
}

// checkRejected checks a late or DLQ record: the raw key and value byte-exact,
// the raw headers first and in order, then the added ones.
func checkRejected(t *testing.T, c rawCase, rec *kgo.Record, want map[string]string) {
	t.Helper()
	if string(rec.Key) != c.key {
		t.Errorf("%s: key %q, want %q", c.name, rec.Key, c.key)
	}
	if string(rec.Value) != string(c.payload) {
		t.Errorf("%s: value is not the raw payload byte-exact (%d bytes, want %d)", c.name, len(rec.Value), len(c.payload))
	}
	raw := rawHeaders(c)
	if len(rec.Headers) < len(raw) || !reflect.DeepEqual(rec.Headers[:len(raw)], raw) {
		t.Errorf("%s: headers %v do not start with the raw headers %v", c.name, rec.Headers, raw)
		return
	}
	added := map[string]string{}
	for _, h := range rec.Headers[len(raw):] {
		added[h.Key] = string(h.Value)
	}
	if added[telemetry.HeaderError] == "" {
		t.Errorf("%s: no %s header", c.name, telemetry.HeaderError)
	}
	delete(added, telemetry.HeaderError)
	if !reflect.DeepEqual(added, want) {
		t.Errorf("%s: added headers %v, want %v (plus error)", c.name, added, want)
	}
}

// metricValue reads one counter or gauge.
func metricValue(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	}
	t.Fatalf("metric %v is neither counter nor gauge", c.Desc())
	return 0
}

// angleDiff is the absolute difference of two bearings in degrees, so that
// 359.9999999 and 0 are close.
func angleDiff(a, b float64) float64 {
	d := math.Mod(math.Abs(a-b), 360)
	return math.Min(d, 360-d)
}

func TestRunTwice(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	p, stop := startProcessor(t, Config{KafkaBrokers: c.ListenAddrs(), Partitions: 1})
	defer stop()
	if err := p.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("second Run = %v, want an error", err)
	}
}

func TestRunUnreachableKafka(t *testing.T) {
	// A port nothing listens on: Run keeps waiting for Kafka, and returns
	// nil promptly once ctx ends.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p, err := New(Config{KafkaBrokers: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil after ctx ended", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of its context ending")
	}
	select {
	case <-p.Ready():
		t.Fatal("Ready closed without a broker")
	default:
	}
}

// checkOrderedMotion checks that enriched holds, per device, exactly the
// readings of want in that order, each with the distance, speed and course
// from the reading before it (what order says is the expectation, for the
// message).
func checkOrderedMotion(t *testing.T, want map[string][]telemetry.Reading, enriched []*kgo.Record, order string) {
	t.Helper()
	byDev := map[string][]telemetry.Enriched{}
	for _, e := range decodeEnriched(t, enriched) {
		byDev[e.Device] = append(byDev[e.Device], e)
	}
	for dev, rs := range want {
		gotSeqs, wantSeqs := []uint64{}, []uint64{}
		for _, e := range byDev[dev] {
			gotSeqs = append(gotSeqs, e.Seq)
		}
		for _, r := range rs {
			wantSeqs = append(wantSeqs, r.Seq)
		}
		if !slices.Equal(gotSeqs, wantSeqs) {
			t.Errorf("%s enriched seqs %v, want %v (%s)", dev, gotSeqs, wantSeqs, order)
			continue
		}
		for i, r := range rs {
			var prev *telemetry.Reading
			if i > 0 {
				prev = &rs[i-1]
			}
			m, e := Motion(prev, r), byDev[dev][i]
			if !close6(e.DistanceM, m.DistanceM) || !close6(e.SpeedMS, m.SpeedMS) || angleDiff(e.CourseDeg, m.CourseDeg) > 1e-6 {
				t.Errorf("%s/%d: distance %.6f speed %.6f course %.4f, want %.6f %.6f %.4f", dev, r.Seq,
					e.DistanceM, e.SpeedMS, e.CourseDeg, m.DistanceM, m.SpeedMS, m.CourseDeg)
			}
		}
	}
}
