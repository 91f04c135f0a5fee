package edge

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/sailstream/sailstream/geo"
	"github.com/sailstream/sailstream/lake"
	"github.com/sailstream/sailstream/telemetry"
)

var t0 = time.Date(2025, 6, 21, 12, 0, 0, 0, time.UTC)

func mustPlan(t testing.TB, cfg Config, n int) []Emission {
	t.Helper()
	plan, err := Plan(cfg, t0, n)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	if len(plan) != n {
		t.Fatalf("Plan returned %d emissions, want %d", len(plan), n)
	}
	return plan
}

// byDevice returns each device's readings in event-time order.
func byDevice(plan []Emission) map[string][]telemetry.Reading {
	m := map[string][]telemetry.Reading{}
	for _, e := range plan {
		m[e.Reading.Device] = append(m[e.Reading.Device], e.Reading)
	}
	for _, rs := range m {
		slices.SortFunc(rs, func(a, b telemetry.Reading) int { return a.Time.Compare(b.Time) })
	}
	return m
}

func TestPlanIsDeterministicBySeed(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Seed = 42
	a := mustPlan(t, cfg, 3000)
	b := mustPlan(t, cfg, 3000)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two plans with the same seed differ")
	}
	cfg.Seed = 43
	c := mustPlan(t, cfg, 3000)
	if a[0].Reading.Lat == c[0].Reading.Lat && a[0].Reading.Lon == c[0].Reading.Lon {
		t.Fatal("plans with seeds 42 and 43 start at the same position")
	}
}

func TestTracksDoNotDependOnLateness(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Seed = 7
	cfg.LateFraction = 0
	a := byDevice(mustPlan(t, cfg, 1200))
	cfg.LateFraction = 0.5
	cfg.LateMin, cfg.LateMax = time.Second, 9*time.Second
	b := byDevice(mustPlan(t, cfg, 1200))
	for dev, ra := range a {
		rb := b[dev]
		for i := range ra {
			if ra[i].Lat != rb[i].Lat || ra[i].Lon != rb[i].Lon || !ra[i].Time.Equal(rb[i].Time) {
				t.Fatalf("%s reading %d differs when only the late settings change: %+v vs %+v", dev, i, ra[i], rb[i])
			}
		}
	}
}

func TestPlanRateAndRoundRobin(t *testing.T) {
	tests := []struct {
		devices int
		rate    float64
	}{
		{6, 10}, {3, 500}, {1, 1}, {10, 3}, {6, 0.5},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d devices at %g per s", tt.devices, tt.rate), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Devices, cfg.Rate, cfg.LateFraction = tt.devices, tt.rate, 0
			n := 600
			plan := mustPlan(t, cfg, n)
			for i, e := range plan {
				want := t0.Add(time.Duration(math.Round(float64(i) / tt.rate * 1e9)))
				if !e.Reading.Time.Equal(want) || !e.PublishAt.Equal(want) {
					t.Fatalf("reading %d at %s published %s, want both %s", i, e.Reading.Time, e.PublishAt, want)
				}
				if dev := fmt.Sprintf("boat-%d", i%tt.devices+1); e.Reading.Device != dev {
					t.Fatalf("reading %d from %s, want %s (boats in turn)", i, e.Reading.Device, dev)
				}
				if e.Topic != "sailstream/devices/"+e.Reading.Device+"/telemetry" {
					t.Fatalf("topic %q", e.Topic)
				}
			}
			// Whole-run rate: n readings over (n-1)/rate seconds.
			span := plan[n-1].Reading.Time.Sub(plan[0].Reading.Time).Seconds()
			if got := float64(n-1) / span; math.Abs(got-tt.rate)/tt.rate > 1e-6 {
				t.Fatalf("rate %g readings/s, want %g", got, tt.rate)
			}
			for dev, rs := range byDevice(plan) {
				for i := 1; i < len(rs); i++ {
					gap := rs[i].Time.Sub(rs[i-1].Time).Seconds()
					if want := float64(tt.devices) / tt.rate; math.Abs(gap-want) > 1e-6 {
						t.Fatalf("%s: %gs between readings, want %g", dev, gap, want)
					}
				}
			}
		})
	}
}

func TestPlanLateFraction(t *testing.T) {
	tests := []struct {
		fraction float64
	}{
		{0}, {0.05}, {0.2}, {1},
	}
	const n = 5000
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.fraction), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Seed = 99
			cfg.LateFraction = tt.fraction
			late := 0
			for _, e := range mustPlan(t, cfg, n) {
				if e.Late {
					late++
				}
			}
			// Binomial: allow 4 standard deviations.
			mean := n * tt.fraction
			sd := math.Sqrt(n * tt.fraction * (1 - tt.fraction))
			if math.Abs(float64(late)-mean) > 4*sd+0.5 {
				t.Fatalf("%d late of %d, want %g ± %g", late, n, mean, 4*sd)
			}
		})
	}
}

func TestLateReadingsKeepEventTimeAndArriveLater(t *testing.T) {
	cfg := DefaultConfig() // 5%, 2–5 s
	cfg.Seed = 3
	const n = 4000
	plan := mustPlan(t, cfg, n)
	seen := map[string]bool{}
	late := 0
	var minDelay, maxDelay time.Duration = time.Hour, 0
	var maxEvent time.Time // latest event time published so far
	for i, e := range plan {
		if i > 0 && plan[i-1].Reading.Time.After(maxEvent) {
			maxEvent = plan[i-1].Reading.Time
		}
		key := fmt.Sprintf("%s/%d", e.Reading.Device, e.Reading.Seq)
		if seen[key] {
			t.Fatalf("%s emitted twice", key)
		}
		seen[key] = true
		if i > 0 && e.PublishAt.Before(plan[i-1].PublishAt) {
			t.Fatalf("emission %d published at %s, before emission %d at %s: plan not sorted by PublishAt", i, e.PublishAt, i-1, plan[i-1].PublishAt)
		}
		delay := e.PublishAt.Sub(e.Reading.Time)
		if !e.Late {
			if delay != 0 {
				t.Fatalf("on-time %s published %s after its event time", key, delay)
			}
			continue
		}
		late++
		if delay < 2*time.Second || delay > 5*time.Second {
			t.Fatalf("late %s held back %s, want 2s–5s", key, delay)
		}
		minDelay, maxDelay = min(minDelay, delay), max(maxDelay, delay)
		// It really is out of order: readings with later event times were
		// published before it.
		if !maxEvent.After(e.Reading.Time) {
			t.Fatalf("late %s (event %s) published after readings up to %s only: not out of order", key, e.Reading.Time, maxEvent)
		}
	}
	if late == 0 {
		t.Fatal("no late readings in 4000 at 5%")
	}
	if maxDelay-minDelay < 2*time.Second {
		t.Errorf("late delays span only %s–%s: not spread over 2s–5s", minDelay, maxDelay)
	}
	// The last readings' late copies are flushed too: every reading 0..n-1
	// is in the plan.
	if len(seen) != n {
		t.Fatalf("%d distinct readings, want %d", len(seen), n)
	}
}

func TestSeqPerDeviceIncreasesFromOne(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Seed = 11
	plan := mustPlan(t, cfg, 3000)
	devices := byDevice(plan)
	if len(devices) != 6 {
		t.Fatalf("%d devices, want 6", len(devices))
	}
	for i := 1; i <= 6; i++ {
		rs := devices[fmt.Sprintf("boat-%d", i)]
		if len(rs) != 500 {
			t.Fatalf("boat-%d has %d readings, want 500", i, len(rs))
		}
		for j, r := range rs {
			if r.Seq != uint64(j+1) {
				t.Fatalf("boat-%d reading %d has seq %d, want %d", i, j, r.Seq, j+1)
			}
		}
	}
	// On-time readings are published in seq order per device.
	last := map[string]uint64{}
	for _, e := range plan {
		if e.Late {
			continue
		}
		if e.Reading.Seq <= last[e.Reading.Device] {
			t.Fatalf("%s seq %d published after seq %d", e.Reading.Device, e.Reading.Seq, last[e.Reading.Device])
		}
		last[e.Reading.Device] = e.Reading.Seq
	}
}

func TestBoatsStayOnTheLakeOverALongRun(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Seed = 2025
	cfg.LateFraction = 0
	n := 60000 // 100 minutes at 10/s: every boat meets the shore many times
	if testing.Short() {
		n = 6000
	}
	plan := mustPlan(t, cfg, n)
	w := newWater(lake.Zegrze())
	reversals := 0
	for dev, rs := range byDevice(plan) {
		for i, r := range rs {
			p := geo.Point{Lat: r.Lat, Lon: r.Lon}
			if !w.ring.Contains(p) {
				t.Fatalf("%s seq %d at %v is off the lake", dev, r.Seq, p)
			}
			if i == 0 {
				continue
			}
			prev := geo.Point{Lat: rs[i-1].Lat, Lon: rs[i-1].Lon}
			if !w.canSail(prev, p) {
				t.Fatalf("%s seq %d: the move %v → %v crosses the shore", dev, r.Seq, prev, p)
			}
			if i >= 2 {
				c0 := rs[i-1].Fields[FieldSimCourse]
				c1 := r.Fields[FieldSimCourse]
				if d := angleDiff(c0, c1); d > 150 {
					reversals++
				}
			}
		}
	}
	if reversals == 0 {
		t.Fatal("no boat ever turned back at the shore in a long run")
	}
	t.Logf("%d reversals in %d readings", reversals, n)
}

func TestSpeedsAndCoursesAreTrue(t *testing.T) {
	tests := []struct {
		name       string
		rate       float64
		minS, maxS float64
	}{
		{"defaults", 10, 0, 0},
		{"fast readings", 500, 0, 0},
		{"slow dinghies", 10, 0.5, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Seed = 5
			cfg.Rate = tt.rate
			cfg.MinSpeed, cfg.MaxSpeed = tt.minS, tt.maxS
			c := cfg.withDefaults()
			dt := float64(c.Devices) / c.Rate
			changes := 0
			for dev, rs := range byDevice(mustPlan(t, cfg, 6000)) {
				for i := 1; i < len(rs); i++ {
					v := rs[i].Fields[FieldSimSpeed]
					if v == 0 {
						continue // wedged for one reading: allowed, rare
					}
					if v < c.MinSpeed-1e-9 || v > c.MaxSpeed+1e-9 {
						t.Fatalf("%s seq %d: speed %g m/s outside %g–%g", dev, rs[i].Seq, v, c.MinSpeed, c.MaxSpeed)
					}
					if v != rs[i-1].Fields[FieldSimSpeed] {
						changes++
					}
					a := geo.Point{Lat: rs[i-1].Lat, Lon: rs[i-1].Lon}
					b := geo.Point{Lat: rs[i].Lat, Lon: rs[i].Lon}
					got := geo.Distance(a, b) / dt
					if math.Abs(got-v) > 1e-6*v+1e-6 {
						t.Fatalf("%s seq %d: moved at %g m/s, reading says %g", dev, rs[i].Seq, got, v)
					}
					if d := angleDiff(geo.Bearing(a, b), rs[i].Fields[FieldSimCourse]); d > 1e-3 {
						t.Fatalf("%s seq %d: course %g, reading says %g", dev, rs[i].Seq, geo.Bearing(a, b), rs[i].Fields[FieldSimCourse])
					}
				}
			}
			if changes < 100 {
				t.Fatalf("speed changed only %d times in 6000 readings", changes)
			}
		})
	}
}

func TestBoatReversesAtTheShore(t *testing.T) {
	// A 1 km square; the boat is 5 m from its east shore heading east at
	// 8 m/s, one second per move: the move would land it on the bank.
	sq := square(geo.Point{Lat: 52.47, Lon: 21.04}, 1000)
	w := newWater(sq)
	east := sq[1].Lon
	start := geo.Destination(geo.Point{Lat: 52.47, Lon: east}, 270, 5)
	b := &boat{rng: rand.New(rand.NewPCG(1, 2)), pos: start, heading: 90, speed: 8}
	m := b.move(w, 1, 8, 8)
	if !m.reversed {
		t.Fatal("move towards the shore did not reverse")
	}
	if m.dist != 8 {
		t.Fatalf("covered %g m after reversing, want the full 8", m.dist)
	}
	if d := angleDiff(b.heading, 270); d > 20 {
		t.Fatalf("heading after reversal %g, want about 270", b.heading)
	}
	if b.pos.Lon >= start.Lon {
		t.Fatalf("boat at %v did not move back west of %v", b.pos, start)
	}
	if !sq.Contains(b.pos) {
		t.Fatalf("boat left the water: %v", b.pos)
	}
	// Away from the shore it keeps going the same way.
	b = &boat{rng: rand.New(rand.NewPCG(1, 2)), pos: geo.Point{Lat: 52.47, Lon: 21.04}, heading: 90, speed: 8}
	if m := b.move(w, 1, 8, 8); m.reversed || angleDiff(b.heading, 90) > 20 {
		t.Fatalf("boat in open water reversed=%v heading %g", m.reversed, b.heading)
	}
}

func TestBoatsInASmallAreaKeepTurningBack(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Area = square(geo.Point{Lat: 52.47, Lon: 21.04}, 150)
	cfg.LateFraction = 0
	plan := mustPlan(t, cfg, 6000)
	reversals := 0
	for dev, rs := range byDevice(plan) {
		for i, r := range rs {
			if !cfg.Area.Contains(geo.Point{Lat: r.Lat, Lon: r.Lon}) {
				t.Fatalf("%s seq %d left the 150 m square", dev, r.Seq)
			}
			if i > 0 && angleDiff(rs[i-1].Fields[FieldSimCourse], r.Fields[FieldSimCourse]) > 150 {
				reversals++
			}
		}
	}
	if reversals < 20 {
		t.Fatalf("only %d reversals in a 150 m square over 10 minutes", reversals)
	}
}

func TestPlanReadingsRoundTripTheWireFormat(t *testing.T) {
	cfg := DefaultConfig()
	for _, e := range mustPlan(t, cfg, 300) {
		b, err := telemetry.Encode(e.Reading)
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		got, err := telemetry.Decode(e.Reading.Device, b, t0)
		if err != nil {
			t.Fatalf("Decode %s: %v", b, err)
		}
		if got.Lat != e.Reading.Lat || got.Lon != e.Reading.Lon || got.Seq != e.Reading.Seq || !got.Time.Equal(e.Reading.Time) {
			t.Fatalf("round trip changed the reading: %+v → %+v", e.Reading, got)
		}
	}
}

func TestPlanRejectsBadConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Rate = -1
	if _, err := Plan(cfg, t0, 10); err == nil {
		t.Fatal("Plan accepted a negative rate")
	}
	if plan, err := Plan(DefaultConfig(), t0, 0); err != nil || len(plan) != 0 {
		t.Fatalf("Plan(n=0) = %d, %v; want empty", len(plan), err)
	}
}

func angleDiff(a, b float64) float64 {
	d := math.Mod(math.Abs(a-b), 360)
	return min(d, 360-d)
}

// square returns a closed ring side metres across centred on c.
func square(c geo.Point, side float64) geo.Polygon {
	n := geo.Destination(c, 0, side/2).Lat
	s := geo.Destination(c, 180, side/2).Lat
	e := geo.Destination(c, 90, side/2).Lon
	w := geo.Destination(c, 270, side/2).Lon
	return geo.Polygon{{Lat: s, Lon: w}, {Lat: s, Lon: e}, {Lat: n, Lon: e}, {Lat: n, Lon: w}, {Lat: s, Lon: w}}
}

func BenchmarkPlan(b *testing.B) {
	cfg := DefaultConfig()
	p := newPlanner(cfg.withDefaults(), t0, 0)
	b.ReportAllocs()
	for b.Loop() {
		p.next()
	}
}
