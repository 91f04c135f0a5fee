package core

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/internal/kafkatopic"
	"github.com/sailstream/sailstream/internal/testenv"
	"github.com/sailstream/sailstream/telemetry"
	"github.com/sailstream/sailstream/udf"
	"github.com/sailstream/sailstream/udf/builtin"
	"github.com/sailstream/sailstream/udf/registry"
)

// TestBuiltinMatchesMotion checks that the builtin Wasm speed UDF, run by
// the processor, gives bit for bit the numbers of the native core.Motion.
func TestBuiltinMatchesMotion(t *testing.T) {
	keys, payloads := benchStream(t, 600)
	now := t0.Add(24 * time.Hour)
	p, err := New(Config{KafkaBrokers: []string{"127.0.0.1:1"}, Engine: testEngine, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	tbl := testTable(t, p, registry.NewState())
	st := newPartitionState(0) // no reorder buffer: every reading comes out of handleRecords
	// Several polls of uneven size, so device batches span polls.
	var out []*kgo.Record
	for i := 0; i < len(payloads); {
		n := min(1+i%97, len(payloads)-i)
		var recs []*kgo.Record
		for j := i; j < i+n; j++ {
			recs = append(recs, &kgo.Record{Key: []byte(keys[j]), Value: payloads[j]})
		}
		if out, err = p.handleRecords(context.Background(), tbl, st, recs, now, out); err != nil {
			t.Fatal(err)
		}
		i += n
	}
	if len(out) != len(payloads) {
		t.Fatalf("%d records out, want %d", len(out), len(payloads))
	}
	// Native reference, device by device.
	prev := map[string]*telemetry.Reading{}
	want := map[string][]Movement{}
	for i, pl := range payloads {
		r, err := telemetry.Decode(keys[i], pl, now)
		if err != nil {
			t.Fatal(err)
		}
		want[r.Device] = append(want[r.Device], Motion(prev[r.Device], r))
		prev[r.Device] = &r
	}
	for _, rec := range out {
		var e telemetry.Enriched
		if err := json.Unmarshal(rec.Value, &e); err != nil {
			t.Fatal(err)
		}
		w := want[e.Device][0]
		want[e.Device] = want[e.Device][1:]
		got := Movement{DistanceM: e.DistanceM, SpeedMS: e.SpeedMS, SpeedKn: e.SpeedKn, CourseDeg: e.CourseDeg}
		if got != w {
			t.Fatalf("%s/%d: Wasm speed %+v, native Motion %+v", e.Device, e.Seq, got, w)
		}
		if e.UDF != builtinInfo.Name || e.UDFVersion != builtinInfo.Version {
			t.Fatalf("%s/%d: udf %s %s, want the builtin %s %s", e.Device, e.Seq, e.UDF, e.UDFVersion, builtinInfo.Name, builtinInfo.Version)
		}
	}
}

// regWriter writes registry records the way the control plane does.
type regWriter struct {
	t     testing.TB
	cl    *kgo.Client
	topic string
}

// newUDFScenario gives a UDF test its own topics, a writer of its registry
// topic and a producer, with the raw topic created with parts partitions;
// both clients close when the test ends.
func newUDFScenario(ctx context.Context, t testing.TB, brokers []string, prefix string, parts int32) (udfTopics, *regWriter, *kgo.Client) {
	t.Helper()
	u := newUDFTopics(prefix)
	reg := newRegWriter(ctx, t, brokers, u.Registry)
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	if err := kafkatopic.Ensure(ctx, prod, kafkatopic.Spec{Name: u.Raw, Partitions: parts}); err != nil {
		t.Fatal(err)
	}
	return u, reg, prod
}

func newRegWriter(ctx context.Context, t testing.TB, brokers []string, topic string) *regWriter {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerBatchMaxBytes(registry.MaxModuleRecordBytes),
		kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	if err := kafkatopic.Ensure(ctx, cl, registry.TopicSpec(topic)); err != nil {
		t.Fatal(err)
	}
	return &regWriter{t: t, cl: cl, topic: topic}
}

func (w *regWriter) put(key string, value []byte) {
	w.t.Helper()
	if err := w.cl.ProduceSync(context.Background(), &kgo.Record{Topic: w.topic, Key: []byte(key), Value: value}).FirstErr(); err != nil {
		w.t.Fatalf("registry %s: %v", key, err)
	}
}

// module stores wasm and returns its hash.
func (w *regWriter) module(wasm []byte) string {
	sha := registry.Hash(wasm)
	w.put(registry.KeyModulePrefix+sha, wasm)
	return sha
}

func (w *regWriter) deploy(d registry.Deployment) {
	b, err := json.Marshal(d)
	if err != nil {
		w.t.Fatal(err)
	}
	w.put(registry.KeyUDFPrefix+d.Name, b)
}

func (w *regWriter) routes(r registry.Routes) {
	b, err := json.Marshal(r)
	if err != nil {
		w.t.Fatal(err)
	}
	w.put(registry.KeyRoutes, b)
}

func ref(version, sha string) *registry.Ref {
	return &registry.Ref{Version: version, SHA256: sha, DeployedAt: time.Now()}
}

// waitTable waits until p's routing table contains every want substring.
func waitTable(ctx context.Context, t *testing.T, p *Processor, want ...string) {
	t.Helper()
	waitFor(ctx, t, fmt.Sprintf("routing table with %q", want), func() error {
		tb := p.router.cur.Load()
		if tb == nil {
			return fmt.Errorf("no table")
		}
		for _, w := range want {
			if !strings.Contains(tb.sig, w) {
				return fmt.Errorf("table is %q", tb.sig)
			}
		}
		return nil
	})
}

// withCustomSection returns wasm with a custom section appended: the same
// code, a different module (hash), compiled afresh.
func withCustomSection(wasm []byte, note string) []byte {
	name := "sailstream-test"
	body := append([]byte{byte(len(name))}, name...)
	body = append(body, note...)
	out := slices.Clone(wasm)
	out = append(out, 0) // custom section id
	n := len(body)
	for {
		b := byte(n & 0x7f)
		n >>= 7
		if n != 0 {
			out = append(out, b|0x80)
			continue
		}
		out = append(out, b)
		break
	}
	return append(out, body...)
}

type udfTopics struct {
	Topics
	id string
}

func newUDFTopics(prefix string) udfTopics {
	id := testenv.Unique(prefix)
	return udfTopics{Topics: Topics{
		Raw: id + ".raw", Enriched: id + ".enriched", Late: id + ".late", DLQ: id + ".dlq",
		Shadow: id + ".shadow", Registry: id + ".udf.modules", State: id + ".state",
	}, id: id}
}

func (u udfTopics) config(brokers []string, reg prometheus.Registerer) Config {
	return Config{
		KafkaBrokers: brokers, Group: u.id, Topics: u.Topics, Partitions: 3, Engine: testEngine,
		Now: func() time.Time { return t0.Add(24 * time.Hour) }, Registerer: reg, Logger: testLogger(),
	}
}

// testLogger logs to stderr when SAILSTREAM_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("SAILSTREAM_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// streamPayload is reading seq of device dev: one a second, a few metres
// apart, so every reading but a device's first has a distance.
func streamPayload(dev string, seq uint64) []byte {
	return payload(dev, seq, time.Duration(seq)*time.Second, 52.46+float64(seq)*0.00003, 21.02+float64(len(dev)%7)*0.001)
}

func produceRaw(ctx context.Context, t testing.TB, cl *kgo.Client, topic string, devs []string, seqs ...uint64) {
	t.Helper()
	var recs []*kgo.Record
	for _, seq := range seqs {
		for _, d := range devs {
			recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(d), Value: streamPayload(d, seq)})
		}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func decodeEnriched(t testing.TB, recs []*kgo.Record) []telemetry.Enriched {
	t.Helper()
	out := make([]telemetry.Enriched, len(recs))
	for i, r := range recs {
		if err := json.Unmarshal(r.Value, &out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func seqRange(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

// runHotSwap streams readings steadily through a processor and swaps the
// speed UDF three times during the stream: every reading is enriched exactly
// once, by the version live at its batch, versions in swap order on every
// partition, and the device state survives every swap.
func runHotSwap(t *testing.T, brokers []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	u, reg, prod := newUDFScenario(ctx, t, brokers, "core-swap-", 3)
	speed := reg.module(builtin.Speed)
	// A distinct module (same code, another hash): compiled while the
	// stream runs, off the hot path.
	speed3 := withCustomSection(builtin.Speed, "v3")
	p, stop := startProcessor(t, u.config(brokers, nil))
	defer stop()

	devs := []string{"boat-1", "boat-2", "boat-3", "boat-4", "boat-5", "boat-6"}
	const rounds = 240
	swaps := map[uint64]func(){
		60: func() {
			reg.deploy(registry.Deployment{Name: "speed", Live: ref("2.0.0", speed)})
			waitTable(ctx, t, p, "speed/2.0.0")
		},
		120: func() {
			sha3 := reg.module(speed3)
			reg.deploy(registry.Deployment{Name: "speed", Live: ref("3.0.0", sha3), Previous: []registry.Ref{*ref("2.0.0", speed)}})
			waitTable(ctx, t, p, "speed/3.0.0")
		},
		180: func() {
			reg.deploy(registry.Deployment{Name: "speed", Live: ref("4.0.0", speed)})
			waitTable(ctx, t, p, "speed/4.0.0")
		},
	}
	// The stream: a round of one reading per device every few ms; a swap
	// is deployed and applied while the rounds before it are processed.
	for seq := uint64(1); seq <= rounds; seq++ {
		produceRaw(ctx, t, prod, u.Raw, devs, seq)
		if f := swaps[seq]; f != nil {
			f()
		}
		time.Sleep(3 * time.Millisecond)
	}
	got := collect(ctx, t, brokers, map[string]int{u.Enriched: len(devs) * rounds, u.DLQ: 0, u.Late: 0})

	order := map[string]int{builtinInfo.Version: 0, "2.0.0": 1, "3.0.0": 2, "4.0.0": 3}
	seen := map[string]bool{}
	used := map[string]int{}
	lastByPart := map[int32]int{}
	for i, e := range decodeEnriched(t, got[u.Enriched]) {
		rec := got[u.Enriched][i]
		id := fmt.Sprintf("%s/%d", e.Device, e.Seq)
		if seen[id] {
			t.Errorf("%s enriched twice", id)
		}
		seen[id] = true
		rank, ok := order[e.UDFVersion]
		if !ok || e.UDF != "speed" {
			t.Fatalf("%s: udf %s %s, not one of the deployed versions", id, e.UDF, e.UDFVersion)
		}
		used[e.UDFVersion]++
		if rank < lastByPart[rec.Partition] {
			t.Errorf("%s on partition %d: version %s after a later version", id, rec.Partition, e.UDFVersion)
		}
		lastByPart[rec.Partition] = rank
		if e.Seq > 1 && e.DistanceM == 0 {
			t.Errorf("%s: no distance: the device state was lost in a swap", id)
		}
	}
	for v := range order {
		if used[v] == 0 {
			t.Errorf("no reading enriched by version %s (used: %v)", v, used)
		}
	}
	t.Logf("readings per version: %v", used)
	if got := metricValue(t, p.m.swaps); got != 3 {
		t.Errorf("swaps_total = %g, want 3", got)
	}
	var hm dto.Metric
	if err := p.m.swapPause.Write(&hm); err != nil {
		t.Fatal(err)
	}
	h := hm.GetHistogram()
	if h.GetSampleCount() == 0 || h.GetSampleSum()/float64(h.GetSampleCount()) > 1e-3 {
		t.Errorf("swap pause: %d samples, %g s in all; want at least one, under 1 ms each on average", h.GetSampleCount(), h.GetSampleSum())
	}
	t.Logf("swap pause: %d swaps picked up, %.0f ns on average", h.GetSampleCount(), 1e9*h.GetSampleSum()/float64(h.GetSampleCount()))
}

func TestIntegrationHotSwapKafka(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	t.Parallel()
	runHotSwap(t, brokers)
}

func TestHotSwapKfake(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	runHotSwap(t, c.ListenAddrs())
}

// TestIntegrationTwoInstancesSwapTogether runs two processors in one group
// on one registry topic: a deploy switches both.
func TestIntegrationTwoInstancesSwapTogether(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	u, reg, prod := newUDFScenario(ctx, t, brokers, "core-two-", 4)
	a, stopA := startProcessor(t, u.config(brokers, nil))
	defer stopA()
	b, stopB := startProcessor(t, u.config(brokers, nil))
	defer stopB()
	var devs []string
	for i := range 12 {
		devs = append(devs, fmt.Sprintf("boat-%d", i+1))
	}
	// Both instances process readings (the group gave each partitions).
	warm := uint64(0)
	waitFor(ctx, t, "both instances to own partitions", func() error {
		warm++
		produceRaw(ctx, t, prod, u.Raw, devs, warm)
		if partsOf(a) == 0 || partsOf(b) == 0 {
			return fmt.Errorf("partitions with state: %d and %d", partsOf(a), partsOf(b))
		}
		return nil
	})
	sha := reg.module(builtin.Speed)
	reg.deploy(registry.Deployment{Name: "speed", Live: ref("2.0.0", sha)})
	waitTable(ctx, t, a, "speed/2.0.0")
	waitTable(ctx, t, b, "speed/2.0.0")
	produceRaw(ctx, t, prod, u.Raw, devs, seqRange(1001, 1005)...)
	got := collect(ctx, t, brokers, map[string]int{u.Enriched: len(devs) * int(warm+5)})
	for _, e := range decodeEnriched(t, got[u.Enriched]) {
		if e.Seq > 1000 && e.UDFVersion != "2.0.0" {
			t.Errorf("%s/%d after the swap: version %s, want 2.0.0", e.Device, e.Seq, e.UDFVersion)
		}
	}
	na := metricValue(t, a.m.udfCalls.WithLabelValues("speed", "2.0.0"))
	nb := metricValue(t, b.m.udfCalls.WithLabelValues("speed", "2.0.0"))
	if na == 0 || nb == 0 {
		t.Errorf("batch calls of 2.0.0: %g on one instance and %g on the other, want both > 0", na, nb)
	}
}

// runShadow deploys a shadow beside the live speed UDF mid-stream, promotes
// it, deploys a failing shadow and rolls back, checking telemetry.enriched
// and telemetry.shadow at every step.
func runShadow(t *testing.T, brokers []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	u, reg, prod := newUDFScenario(ctx, t, brokers, "core-shadow-", 3)
	speed := reg.module(builtin.Speed)
	bad := reg.module(wat(t, "../udf/testdata/hostile/trap.wat"))
	v1, v2, vBad := ref("1.1.0", speed), ref("2.0.0", speed), ref("6.6.6", bad)
	// Deployed before the processor starts: it must start from the
	// registry, not from the builtin.
	reg.deploy(registry.Deployment{Name: "speed", Live: v1})
	p, stop := startProcessor(t, u.config(brokers, nil))
	defer stop()
	waitTable(ctx, t, p, "speed=speed/1.1.0")
	devs := []string{"boat-1", "boat-2", "boat-3"}
	nd := len(devs)

	type want struct{ enriched, shadow int }
	check := func(w want, seqFrom uint64, version string, f func(r ShadowRecord)) {
		t.Helper()
		got := collect(ctx, t, brokers, map[string]int{u.Enriched: w.enriched, u.Shadow: w.shadow, u.DLQ: 0, u.Late: 0})
		for _, e := range decodeEnriched(t, got[u.Enriched]) {
			if e.Seq < seqFrom {
				continue
			}
			if e.UDF != "speed" || e.UDFVersion != version {
				t.Errorf("%s/%d: %s %s, want speed %s", e.Device, e.Seq, e.UDF, e.UDFVersion, version)
			}
			if e.Seq > 1 && e.DistanceM == 0 && e.Device != "boat-13" { // boat-13's first reading is seq 13
				t.Errorf("%s/%d (%s): no distance: the live state did not continue", e.Device, e.Seq, e.UDFVersion)
			}
		}
		for _, rec := range got[u.Shadow] {
			var r ShadowRecord
			if err := json.Unmarshal(rec.Value, &r); err != nil {
				t.Fatal(err)
			}
			if r.Live != nil && r.Live.Seq >= seqFrom {
				f(r)
			}
		}
	}

	// Live only.
	produceRaw(ctx, t, prod, u.Raw, devs, seqRange(1, 5)...)
	check(want{5 * nd, 0}, 1, "1.1.0", nil)

	// Shadow 2.0.0 (the same code): it starts from the live state, so it
	// agrees from its first batch.
	reg.deploy(registry.Deployment{Name: "speed", Live: v1, Shadow: v2})
	waitTable(ctx, t, p, "speed=speed/1.1.0", "+shadow/2.0.0")
	produceRaw(ctx, t, prod, u.Raw, devs, seqRange(6, 10)...)
	check(want{10 * nd, 5 * nd}, 6, "1.1.0", func(r ShadowRecord) {
		if !r.Agree || r.Shadow == nil || r.LiveVersion != "1.1.0" || r.ShadowVersion != "2.0.0" {
			t.Errorf("shadow record %+v: want agreement of 1.1.0 and 2.0.0", r)
		}
	})
	if got := metricValue(t, p.m.shadowOutputs.WithLabelValues("speed", "true")); got != float64(5*nd) {
		t.Errorf("shadow_outputs_total{agree=true} = %g, want %d", got, 5*nd)
	}

	// Promote: the live state continues into 2.0.0.
	reg.deploy(registry.Deployment{Name: "speed", Live: v2, Previous: []registry.Ref{*v1}})
	waitTable(ctx, t, p, "speed=speed/2.0.0")
	produceRaw(ctx, t, prod, u.Raw, devs, seqRange(11, 15)...)
	check(want{15 * nd, 5 * nd}, 11, "2.0.0", nil)

	// A shadow that drops everything and traps on seq 13: it disagrees,
	// its failure is reported, the live output is untouched.
	reg.deploy(registry.Deployment{Name: "speed", Live: v2, Shadow: vBad, Previous: []registry.Ref{*v1}})
	waitTable(ctx, t, p, "speed=speed/2.0.0", "+shadow/6.6.6")
	produceRaw(ctx, t, prod, u.Raw, devs, seqRange(16, 20)...)
	poison := &kgo.Record{Topic: u.Raw, Key: []byte("boat-13"), Value: payload("boat-13", 13, 20*time.Second, 52.5, 21.05)}
	if err := prod.ProduceSync(ctx, poison).FirstErr(); err != nil {
		t.Fatal(err)
	}
	sawErr := false
	check(want{20*nd + 1, 10*nd + 1}, 13, "2.0.0", func(r ShadowRecord) {
		if r.ShadowVersion != "6.6.6" {
			return
		}
		if r.Agree || r.Shadow != nil {
			t.Errorf("shadow record %+v: a shadow that emits nothing cannot agree", r)
		}
		if r.ShadowError != "" {
			sawErr = true
			if r.Device != "boat-13" || !strings.Contains(r.ShadowError, "trap") {
				t.Errorf("shadow error on %s: %q, want boat-13's trap", r.Device, r.ShadowError)
			}
		}
	})
	if !sawErr {
		t.Error("no shadow record carries the shadow's trap")
	}
	if got := metricValue(t, p.m.udfFailures.WithLabelValues("speed", telemetry.ReasonUDFTrap)); got != 1 {
		t.Errorf("udf_failures_total{speed,udf_trap} = %g, want 1 (the shadow's)", got)
	}

	// Rollback: Previous[0] is live again, no shadow.
	reg.deploy(registry.Deployment{Name: "speed", Live: v1})
	waitTable(ctx, t, p, "speed=speed/1.1.0")
	if strings.Contains(p.router.cur.Load().sig, "shadow") {
		t.Errorf("table %q still runs a shadow after rollback", p.router.cur.Load().sig)
	}
	produceRaw(ctx, t, prod, u.Raw, devs, seqRange(21, 25)...)
	check(want{25*nd + 1, 10*nd + 1}, 21, "1.1.0", nil)
}

func TestShadowPromoteRollbackKfake(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	runShadow(t, c.ListenAddrs())
}

func TestIntegrationShadowPromoteRollbackKafka(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	t.Parallel()
	runShadow(t, brokers)
}

// runHostile deploys a hostile module live for the devices evil-*: the
// readings it fails on go to the DLQ byte-exact, the other devices are
// enriched, and after repeated failures the module is quarantined and the
// previous version serves its devices.
func runHostile(t *testing.T, brokers []string, file string, lim udf.Limits, reason string) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	u, reg, prod := newUDFScenario(ctx, t, brokers, "core-hostile-", 1)
	speed := reg.module(builtin.Speed)
	evil := reg.module(wat(t, file))
	evilRef := ref("6.6.6", evil)
	evilRef.Limits = lim
	reg.deploy(registry.Deployment{Name: "evil", Live: evilRef, Previous: []registry.Ref{*ref("1.0.0-prev", speed)}})
	reg.routes(registry.Routes{Rules: []registry.Route{{Pattern: "evil-*", UDF: "evil"}}, Default: "speed"})

	// Every evil device's first reading is poison (seq 13); boat-1 is
	// routed to the builtin and must not notice.
	evils := []string{"evil-1", "evil-2", "evil-3", "evil-4", "evil-5", "evil-6"}
	produceRaw(ctx, t, prod, u.Raw, []string{"boat-1"}, seqRange(1, 13)...)
	produceRaw(ctx, t, prod, u.Raw, evils, 13)

	cfg := u.config(brokers, nil)
	cfg.QuarantineAfter = 3
	p, stop := startProcessor(t, cfg)
	defer stop()
	waitFor(ctx, t, "quarantine", func() error {
		if q := metricValue(t, p.m.quarantined.WithLabelValues("evil", "6.6.6")); q != 1 {
			return fmt.Errorf("quarantined gauge %g", q)
		}
		if n := metricValue(t, p.m.in); n != float64(len(evils)+13) {
			return fmt.Errorf("%g readings in", n)
		}
		// The poll that triggered the quarantine is finished only when
		// every reading is either enriched or in the DLQ (a slow failure,
		// such as a timeout, keeps it going after the gauge is set).
		if n := metricValue(t, p.m.enriched) + metricValue(t, p.m.dlq.WithLabelValues(reason)); n != float64(len(evils)+13) {
			return fmt.Errorf("%g readings enriched or dead-lettered", n)
		}
		return nil
	})
	waitTable(ctx, t, p, "evil=evil/1.0.0-prev")
	nDLQ := int(metricValue(t, p.m.dlq.WithLabelValues(reason)))
	if nDLQ < cfg.QuarantineAfter || nDLQ > len(evils) {
		t.Fatalf("dlq_total{%s} = %d, want %d to %d", reason, nDLQ, cfg.QuarantineAfter, len(evils))
	}

	// After the quarantine the previous version serves evil-*.
	produceRaw(ctx, t, prod, u.Raw, evils[:3], 14)
	got := collect(ctx, t, brokers, map[string]int{u.Enriched: 13 + (len(evils) - nDLQ) + 3, u.DLQ: nDLQ, u.Late: 0})
	for _, e := range decodeEnriched(t, got[u.Enriched]) {
		switch {
		case e.Device == "boat-1":
			if e.UDF != "speed" || e.UDFVersion != builtinInfo.Version {
				t.Errorf("boat-1/%d: %s %s, want the builtin speed", e.Seq, e.UDF, e.UDFVersion)
			}
		case e.UDF != "evil" || e.UDFVersion != "1.0.0-prev":
			t.Errorf("%s/%d: %s %s, want evil 1.0.0-prev after the quarantine", e.Device, e.Seq, e.UDF, e.UDFVersion)
		}
	}
	for _, rec := range got[u.DLQ] {
		dev := string(rec.Key)
		if string(rec.Value) != string(streamPayload(dev, 13)) {
			t.Errorf("DLQ %s: value is not the raw payload byte-exact", dev)
		}
		h := map[string]string{}
		for _, kv := range rec.Headers {
			h[kv.Key] = string(kv.Value)
		}
		if h[telemetry.HeaderReason] != reason || h[telemetry.HeaderUDF] != "evil" || h[telemetry.HeaderUDFVersion] != "6.6.6" ||
			h[telemetry.HeaderStage] != "core" || h[telemetry.HeaderError] == "" {
			t.Errorf("DLQ %s: headers %v, want reason %s, udf evil 6.6.6, stage core and an error", dev, h, reason)
		}
	}
	if got := metricValue(t, p.m.udfFailures.WithLabelValues("evil", reason)); got != float64(nDLQ) {
		t.Errorf("udf_failures_total{evil,%s} = %g, want %d", reason, got, nDLQ)
	}
}

func TestHostileKfake(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	for _, tt := range []struct {
		file   string
		lim    udf.Limits
		reason string
	}{
		{"trap.wat", udf.Limits{}, telemetry.ReasonUDFTrap},
		{"loop.wat", udf.Limits{CallTimeout: 100 * time.Millisecond}, telemetry.ReasonUDFTimeout},
		{"bomb.wat", udf.Limits{}, telemetry.ReasonUDFOutput},
		{"oob.wat", udf.Limits{}, telemetry.ReasonUDFOutput},
		{"grow.wat", udf.Limits{MemoryPages: 64}, telemetry.ReasonUDFMemory},
	} {
		t.Run(tt.file, func(t *testing.T) {
			runHostile(t, c.ListenAddrs(), "../udf/testdata/hostile/"+tt.file, tt.lim, tt.reason)
		})
	}
}

func TestIntegrationHostileKafka(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	t.Parallel()
	runHostile(t, brokers, "../udf/testdata/hostile/trap.wat", udf.Limits{}, telemetry.ReasonUDFTrap)
}
