package udf

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/sailstream/sailstream/geo"
	"github.com/sailstream/sailstream/motion"
	"github.com/sailstream/sailstream/telemetry"
)

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// track returns n readings of a boat sailing a gentle curve, one a second.
func track(n int, seq0 uint64) []telemetry.Reading {
	rs := make([]telemetry.Reading, n)
	p := geo.Point{Lat: 52.46, Lon: 21.02}
	for i := range rs {
		rs[i] = telemetry.Reading{Device: "boat-1", Seq: seq0 + uint64(i), Time: t0.Add(time.Duration(i) * time.Second), Lat: p.Lat, Lon: p.Lon}
		p = geo.Destination(p, float64(30+i%90), 3+float64(i%5)/2)
	}
	return rs
}

func TestSpeedMatchesNative(t *testing.T) {
	m := load(t, "speed", Limits{})
	if got := m.Info(); got.Name != "speed" || got.Version != "1.0.0" || got.ABI != 1 {
		t.Fatalf("Info = %+v", got)
	}
	rs := track(300, 1)
	rs[5].Fields = map[string]float64{"battery": 0.5, "heel": 12}
	ctx := context.Background()
	var state []byte
	// Uneven batches: state must carry across calls.
	for start, size := 0, 1; start < len(rs); start, size = start+size, size*2 {
		end := min(start+size, len(rs))
		res, err := m.Process(ctx, state, "boat-1", rs[start:end])
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Outputs) != end-start {
			t.Fatalf("batch [%d,%d): %d outputs", start, end, len(res.Outputs))
		}
		for _, o := range res.Outputs {
			i := start + o.Input
			var want motion.Movement
			if i > 0 {
				want = motion.Between(geo.Point{Lat: rs[i-1].Lat, Lon: rs[i-1].Lon}, geo.Point{Lat: rs[i].Lat, Lon: rs[i].Lon}, rs[i].Time.Sub(rs[i-1].Time))
			}
			e := o.Enriched(rs[i], m.Info())
			got := motion.Movement{DistanceM: e.DistanceM, SpeedMS: e.SpeedMS, SpeedKn: e.SpeedKn, CourseDeg: e.CourseDeg}
			if got != want {
				t.Fatalf("reading %d: %+v, want bit-identical %+v", i, got, want)
			}
			if !e.Time.Equal(rs[i].Time) || e.Lat != rs[i].Lat || e.Seq != rs[i].Seq || e.UDF != "speed" {
				t.Fatalf("reading %d: enriched %+v", i, e)
			}
			if i == 5 && (e.Fields["battery"] != 0.5 || e.Fields["heel"] != 12 || len(e.Fields) != 2) {
				t.Fatalf("reading 5 fields %v, want the reading's own", e.Fields)
			}
		}
		state = res.State
	}
}

// TestInstancesAgree is the property the design insists on: an instance
// keeps nothing between calls, so two instances given the same state and
// batch give the same result, whatever each computed before.
func TestInstancesAgree(t *testing.T) {
	m := load(t, "speed", Limits{Instances: 2})
	ctx := context.Background()
	rs := track(20, 1)
	// Hold two instances at once: the pool must create a second one.
	a, err := m.pool.get(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.pool.get(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	defer m.pool.put(a)
	defer m.pool.put(b)
	call := func(in *instance, state []byte, batch []telemetry.Reading) Result {
		t.Helper()
		res, err := in.call(ctx, m, state, "boat-1", batch)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	r1 := call(a, nil, rs[:10])
	// Instance a has seen rs[:10]; b has seen nothing. Both get the state.
	got := call(a, r1.State, rs[10:])
	want := call(b, r1.State, rs[10:])
	if !equalResults(got, want) {
		t.Fatalf("instances disagree:\n a: %+v\n b: %+v", got, want)
	}
	// And without the state both treat reading 10 as a first reading.
	if o := call(a, nil, rs[10:11]).Outputs[0]; o.Fields[1].Value != 0 {
		t.Fatalf("instance a remembered the previous reading: %+v", o)
	}
}

func equalResults(a, b Result) bool {
	if string(a.State) != string(b.State) || len(a.Outputs) != len(b.Outputs) {
		return false
	}
	for i := range a.Outputs {
		x, y := a.Outputs[i], b.Outputs[i]
		if x.Input != y.Input || x.TimeNs != y.TimeNs || x.Lat != y.Lat || x.Lon != y.Lon || len(x.Fields) != len(y.Fields) {
			return false
		}
		for j := range x.Fields {
			if x.Fields[j].Name != y.Fields[j].Name || math.Float64bits(x.Fields[j].Value) != math.Float64bits(y.Fields[j].Value) {
				return false
			}
		}
	}
	return true
}

func TestGeofence(t *testing.T) {
	m := load(t, "geofence", Limits{})
	rs := []telemetry.Reading{
		{Seq: 1, Time: t0, Lat: 52.46, Lon: 21.02},                            // on the water
		{Seq: 2, Time: t0.Add(time.Second), Lat: 52.2297, Lon: 21.0122},       // Warsaw
		{Seq: 3, Time: t0.Add(2 * time.Second), Lat: 52.46001, Lon: 21.02001}, // back
	}
	res, err := m.Process(context.Background(), nil, "boat-1", rs)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []float64{0, 1, 0} {
		e := res.Outputs[i].Enriched(rs[i], m.Info())
		if got, ok := e.Fields["outside_lake"]; !ok || got != want {
			t.Errorf("reading %d: outside_lake = %v (set %v), want %v", i, got, ok, want)
		}
	}
}

func TestSmoothing(t *testing.T) {
	m := load(t, "smoothing", Limits{})
	rs := track(8, 1)
	jump := geo.Destination(geo.Point{Lat: rs[3].Lat, Lon: rs[3].Lon}, 90, 2000)
	rs[3].Lat, rs[3].Lon = jump.Lat, jump.Lon
	res, err := m.Process(context.Background(), nil, "boat-1", rs)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Outputs) != len(rs) {
		t.Fatalf("%d outputs, want %d", len(res.Outputs), len(rs))
	}
	e := res.Outputs[3].Enriched(rs[3], m.Info())
	if e.Fields["gps_jump"] != 1 || e.Lat != rs[2].Lat || e.Lon != rs[2].Lon || e.Fields["jump_m"] < 1900 {
		t.Fatalf("jump not corrected: %+v", e)
	}
	if e4 := res.Outputs[4].Enriched(rs[4], m.Info()); e4.Fields["gps_jump"] != 0 || e4.SpeedMS > 25 || e4.SpeedMS <= 0 {
		t.Fatalf("reading after the jump: %+v", e4)
	}
}

func TestLoadRefuses(t *testing.T) {
	tests := []struct {
		name  string
		wasm  func(t *testing.T) []byte
		lim   Limits
		want  error
		words string
	}{
		{"not wasm", func(*testing.T) []byte { return []byte("hello") }, Limits{}, ErrInvalidModule, ""},
		{"missing export", func(t *testing.T) []byte { return guest(t, "noexport") }, Limits{}, ErrMissingExport, "sailstream_v1_process"},
		{"wrong ABI version reported", func(t *testing.T) []byte { return guest(t, "abi2") }, Limits{}, ErrABIVersion, "reports ABI version 2"},
		{"ABI v2 exports", func(t *testing.T) []byte { return guest(t, "v2names") }, Limits{}, ErrABIVersion, "sailstream_v2_"},
		{"too large", func(t *testing.T) []byte { return guest(t, "speed") }, Limits{MaxModuleBytes: 1 << 20}, ErrModuleTooLarge, ""},
		{"memory limit below the Go runtime's needs", func(t *testing.T) []byte { return guest(t, "speed") }, Limits{MemoryPages: 4}, ErrInvalidModule, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := testEngine.Load(context.Background(), tt.wasm(t), tt.lim)
			if err == nil {
				m.Close(context.Background())
				t.Fatal("loaded")
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			if tt.words != "" && !contains(err.Error(), tt.words) {
				t.Fatalf("error %q does not mention %q", err, tt.words)
			}
			t.Log(err)
		})
	}
}

func contains(s, sub string) bool { return len(sub) == 0 || indexOf(s, sub) >= 0 }

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// TestHostile runs each hostile module on a batch whose reading seq 13 sets
// it off: the call fails with the right kind, Isolate finds the poison
// reading and keeps the others, and the module (on a fresh instance) and
// the engine's other modules keep serving.
func TestHostile(t *testing.T) {
	speed := load(t, "speed", Limits{})
	tests := []struct {
		name string
		want error
	}{
		{"trap", ErrTrap},
		{"loop", ErrTimeout},
		{"grow", ErrMemoryLimit},
		{"oob", ErrMalformedOutput},
		{"huge", ErrMalformedOutput},
		{"bomb", ErrMalformedOutput},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Only the infinite loop should meet the deadline; the others
			// get one long enough that a loaded machine cannot turn their
			// failure into a timeout.
			timeout := 10 * time.Second
			if tt.want == ErrTimeout {
				timeout = 200 * time.Millisecond
			}
			m := load(t, tt.name, Limits{CallTimeout: timeout, Instances: 1})
			batch := track(6, 10) // seq 10..15
			start := time.Now()
			_, err := m.Process(ctx, nil, "boat-1", batch)
			var ce *CallError
			if !errors.As(err, &ce) || !errors.Is(err, tt.want) {
				t.Fatalf("error %v (%T), want a *CallError of %v", err, err, tt.want)
			}
			t.Logf("%v after %v", err, time.Since(start))

			_, failed, err := m.Isolate(ctx, []byte("s"), "boat-1", batch)
			if err != nil {
				t.Fatal(err)
			}
			if len(failed) != 1 || failed[0].Index != 3 || !errors.Is(failed[0].Err, tt.want) {
				t.Fatalf("Isolate failed = %+v, want reading 3 (seq 13) with %v", failed, tt.want)
			}
			if _, err := m.Process(ctx, nil, "boat-1", track(3, 20)); err != nil {
				t.Fatalf("module did not recover on a clean batch: %v", err)
			}
			if _, err := speed.Process(ctx, nil, "boat-1", batch); err != nil {
				t.Fatalf("another module failed afterwards: %v", err)
			}
		})
	}
}

func TestProcessAfterClose(t *testing.T) {
	m, err := testEngine.Load(context.Background(), guest(t, "trap"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	m.Close(context.Background())
	if _, err := m.Process(context.Background(), nil, "boat-1", track(1, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("error %v, want ErrClosed", err)
	}
}

func TestCanceledContextIsNotTheGuestsFault(t *testing.T) {
	m := load(t, "loop", Limits{CallTimeout: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := m.Process(ctx, nil, "boat-1", track(6, 10))
	var ce *CallError
	if err == nil || errors.As(err, &ce) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want the caller's context error, not a CallError", err)
	}
}
