package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/edge"
	"github.com/sailstream/sailstream/internal/kafkatopic"
	"github.com/sailstream/sailstream/internal/testenv"
	"github.com/sailstream/sailstream/telemetry"
	"github.com/sailstream/sailstream/udf/registry"
)

// TestIntegrationCoreCrash is the exactly-once crash test: a fixed-seed
// fleet run of more than 10,000 readings (late ones and QoS 1 redeliveries
// among them) goes through two `sailstream core` processes, one of which
// is killed with SIGKILL and restarted (same --instance-id) every few
// seconds while the readings arrive. A reference group of one process that
// is never killed reads the same raw topic. Read with read_committed, the
// crashed group's telemetry.enriched must hold every reading of the
// reference's exactly once, with the same speed, course, distance, UDF and
// UDF fields (boat-1* run the stateful smoothing UDF), and its late topic
// the same readings as the reference's: the state restored after each
// crash (last position, UDF state, dedup window, reorder buffer) is right.
func TestIntegrationCoreCrash(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	if testing.Short() {
		t.Skip("builds the binary and runs for about a minute")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := buildBinary(t)
	id := testenv.Unique("crash-")
	raw, registryTopic := id+".raw", id+".udf"
	cacheDir := filepath.Join(os.TempDir(), "sailstream-test-wasm-cache")

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := kafkatopic.Ensure(ctx, cl, kafkatopic.Spec{Name: raw, Partitions: 6}); err != nil {
		t.Fatal(err)
	}
	deploySmoothing(ctx, t, bin, brokers, registryTopic, cacheDir)

	// The input: 10,800 readings of 12 boats, 5% of them late, and one in
	// a hundred sent again a few readings later (QoS 1 redelivery).
	const n = 10_800
	plan, err := edge.Plan(edge.Config{Devices: 12, Rate: 120, LateFraction: 0.05, Seed: 20261127},
		time.Now().Add(-2*time.Hour).Truncate(time.Second), n)
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for i, em := range plan {
		v, err := telemetry.Encode(em.Reading)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: raw, Key: []byte(em.Reading.Device), Value: v})
		if i%100 == 37 && i >= 5 {
			prev := plan[i-5].Reading
			v, _ := telemetry.Encode(prev)
			recs = append(recs, &kgo.Record{Topic: raw, Key: []byte(prev.Device), Value: v})
		}
	}

	type world struct{ group, enriched, late, dlq string }
	newWorld := func(name string) world {
		g := id + "." + name
		return world{group: g, enriched: g + ".enriched", late: g + ".late", dlq: g + ".dlq"}
	}
	ref, crash := newWorld("ref"), newWorld("crash")
	start := func(w world, instance string) *exec.Cmd {
		g := w.group
		cmd := exec.Command(bin, "core", "--kafka-brokers", strings.Join(brokers, ","), "--group", g,
			"--raw-topic", raw, "--enriched-topic", w.enriched, "--late-topic", w.late, "--dlq-topic", w.dlq,
			"--shadow-topic", g+".shadow", "--state-topic", g+".state", "--registry-topic", registryTopic,
			"--instance-id", instance, "--session-timeout", "20s",
			"--metrics-addr", "", "--admin-addr", "", "--cache-dir", cacheDir, "--log-level", "warn")
		cmd.Stderr = &prefixWriter{t: t, prefix: instance + ": "}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	var mu sync.Mutex
	running := map[string]*exec.Cmd{}
	run := func(w world, instance string) {
		mu.Lock()
		defer mu.Unlock()
		running[instance] = start(w, instance)
	}
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range running {
			_ = c.Process.Signal(syscall.SIGTERM)
		}
		for _, c := range running {
			done := make(chan struct{})
			go func() { _ = c.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				_ = c.Process.Kill()
				<-done
			}
		}
	}()
	run(ref, "ref-a")
	run(crash, "crash-a")
	run(crash, "crash-b")

	// Produce in publish order, paced over about 30 s, while a crash
	// instance is killed and restarted every 3–5 s.
	produced := make(chan error, 1)
	go func() {
		const chunk = 120
		for i := 0; i < len(recs); i += chunk {
			if err := cl.ProduceSync(ctx, recs[i:min(i+chunk, len(recs))]...).FirstErr(); err != nil {
				produced <- err
				return
			}
			time.Sleep(300 * time.Millisecond)
		}
		produced <- nil
	}()
	rng := rand.New(rand.NewPCG(1, 2))
	kills := 0
	for done := false; !done || kills < 5; {
		select {
		case err := <-produced:
			if err != nil {
				t.Fatalf("producing: %v", err)
			}
			done = true
			produced = nil
		case <-time.After(time.Duration(3000+rng.IntN(2000)) * time.Millisecond):
			victim := []string{"crash-a", "crash-b"}[kills%2]
			mu.Lock()
			c := running[victim]
			_ = c.Process.Signal(syscall.SIGKILL)
			_ = c.Wait()
			mu.Unlock()
			kills++
			t.Logf("kill %d: SIGKILLed %s (pid %d), restarting it", kills, victim, c.Process.Pid)
			run(crash, victim)
		case <-ctx.Done():
			t.Fatal("timed out while producing")
		}
	}

	// Every raw record ends up in exactly one of enriched, late or dlq
	// once the partitions go idle and release what they buffered: read
	// the three with read_committed until they hold as many readings as
	// were produced, then a little longer to catch any extra.
	type outputs struct{ enriched, late map[string]telemetry.Enriched }
	collectWorld := func(w world) outputs {
		out := outputs{map[string]telemetry.Enriched{}, map[string]telemetry.Enriched{}}
		c, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(w.enriched, w.late, w.dlq),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		n := 0
		var settle <-chan time.Time
		for {
			pctx, pcancel := context.WithTimeout(ctx, 250*time.Millisecond)
			fs := c.PollFetches(pctx)
			pcancel()
			fs.EachRecord(func(r *kgo.Record) {
				n++
				var e telemetry.Enriched
				switch r.Topic {
				case w.late:
					// Late records carry the raw payload.
					rd, err := telemetry.Decode(string(r.Key), r.Value, time.Now())
					if err != nil {
						t.Errorf("%s@%d: %v", r.Topic, r.Offset, err)
						return
					}
					out.late[fmt.Sprintf("%s/%d/%d", rd.Device, rd.Seq, rd.Time.UnixNano())] = telemetry.Enriched{Device: rd.Device, Seq: rd.Seq, Time: rd.Time}
					return
				case w.dlq:
					t.Errorf("%s: unexpected DLQ record %q", w.group, r.Value)
					return
				}
				if err := json.Unmarshal(r.Value, &e); err != nil {
					t.Errorf("%s@%d: %v", r.Topic, r.Offset, err)
					return
				}
				k := fmt.Sprintf("%s/%d/%d", e.Device, e.Seq, e.Time.UnixNano())
				if _, dup := out.enriched[k]; dup {
					t.Errorf("%s: %s enriched twice", w.group, k)
				}
				out.enriched[k] = e
			})
			switch {
			case n >= len(recs) && settle == nil:
				settle = time.After(2 * time.Second)
			case settle != nil:
				select {
				case <-settle:
					if n != len(recs) {
						t.Errorf("%s: %d outputs for %d raw records", w.group, n, len(recs))
					}
					return out
				default:
				}
			}
			if ctx.Err() != nil {
				t.Fatalf("%s: %d outputs of %d raw records before the deadline", w.group, n, len(recs))
			}
		}
	}
	refOut, crashOut := collectWorld(ref), collectWorld(crash)
	want, got := refOut.enriched, crashOut.enriched
	if len(want) < n*9/10 {
		t.Fatalf("the reference run enriched only %d of %d readings", len(want), n)
	}
	smoothed := 0
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s: enriched by the reference, missing after the crashes", k)
			continue
		}
		if w.UDF == "smoothing" {
			smoothed++
		}
		if !sameEnriched(w, g) {
			t.Errorf("%s: after the crashes\n  %+v\nwant\n  %+v", k, g, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: enriched after the crashes, not by the reference", k)
		}
	}
	wantLate, gotLate := refOut.late, crashOut.late
	for k := range wantLate {
		if _, ok := gotLate[k]; !ok {
			t.Errorf("%s: late in the reference, not after the crashes", k)
		}
	}
	if len(wantLate) != len(gotLate) {
		t.Errorf("late: %d readings after the crashes, %d in the reference", len(gotLate), len(wantLate))
	}
	if smoothed == 0 {
		t.Error("no reading went through the smoothing UDF: the stateful part is not tested")
	}
	t.Logf("%d raw records, %d enriched (%d by smoothing), %d late; %d kills", len(recs), len(want), smoothed, len(wantLate), kills)
}

// deploySmoothing builds the smoothing example and routes boat-1* to it in
// the registry topic.
func deploySmoothing(ctx context.Context, t *testing.T, bin string, brokers []string, topic, cacheDir string) {
	t.Helper()
	wasm := filepath.Join(t.TempDir(), "smoothing.wasm")
	if out, err := exec.Command(bin, "udf", "build", filepath.Join("..", "..", "udf", "examples", "smoothing"), "-o", wasm).CombinedOutput(); err != nil {
		t.Fatalf("udf build: %v\n%s", err, out)
	}
	b, err := os.ReadFile(wasm)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := registry.NewPublisher(registry.PublisherConfig{KafkaBrokers: brokers, Topic: topic, CacheDir: cacheDir})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if _, err := pub.Deploy(ctx, b, registry.Manifest{Name: "smoothing", Version: "1.0.0", Routes: []string{"boat-1*"}}); err != nil {
		t.Fatal(err)
	}
}

// sameEnriched compares what processing computed, not when it ran.
func sameEnriched(a, b telemetry.Enriched) bool {
	near := func(x, y float64) bool { return x == y || math.Abs(x-y) <= 1e-9*math.Max(1, math.Abs(x)) }
	if a.Device != b.Device || a.Seq != b.Seq || !a.Time.Equal(b.Time) || a.Lat != b.Lat || a.Lon != b.Lon ||
		!near(a.DistanceM, b.DistanceM) || !near(a.SpeedMS, b.SpeedMS) || !near(a.SpeedKn, b.SpeedKn) || !near(a.CourseDeg, b.CourseDeg) ||
		a.UDF != b.UDF || a.UDFVersion != b.UDFVersion || len(a.Fields) != len(b.Fields) {
		return false
	}
	for k, v := range a.Fields {
		if w, ok := b.Fields[k]; !ok || !near(v, w) {
			return false
		}
	}
	return true
}

// prefixWriter sends a child process's stderr to the test log, line by line.
type prefixWriter struct {
	t      *testing.T
	prefix string
	mu     sync.Mutex
	buf    []byte
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			break
		}
		w.t.Log(w.prefix + string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}
