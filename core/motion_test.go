package core

import (
	"math"
	"testing"
	"time"

	"github.com/sailstream/sailstream/geo"
	"github.com/sailstream/sailstream/telemetry"
)

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func reading(dev string, seq uint64, at time.Time, lat, lon float64) telemetry.Reading {
	return telemetry.Reading{Device: dev, Seq: seq, Time: at, Lat: lat, Lon: lon}
}

// from returns the reading reached from r after distM metres on bearing,
// dt later.
func from(r telemetry.Reading, bearing, distM float64, dt time.Duration) telemetry.Reading {
	p := geo.Destination(geo.Point{Lat: r.Lat, Lon: r.Lon}, bearing, distM)
	return reading(r.Device, r.Seq+1, r.Time.Add(dt), p.Lat, p.Lon)
}

func TestMotion(t *testing.T) {
	start := reading("boat-1", 1, t0, 52.46, 21.02)
	// One thousandth of a degree of latitude on the mean-radius sphere.
	milliDegM := geo.EarthRadiusM * math.Pi / 180 / 1000

	tests := []struct {
		name string
		prev *telemetry.Reading
		cur  telemetry.Reading
		want Movement
	}{
		{
			name: "first reading gives zeros",
			prev: nil,
			cur:  start,
			want: Movement{},
		},
		{
			name: "standing still",
			prev: &start,
			cur:  reading("boat-1", 2, t0.Add(time.Second), 52.46, 21.02),
			want: Movement{},
		},
		{
			name: "due north 0.001 degree in 10 s",
			prev: &start,
			cur:  reading("boat-1", 2, t0.Add(10*time.Second), 52.461, 21.02),
			want: Movement{DistanceM: milliDegM, SpeedMS: milliDegM / 10, SpeedKn: milliDegM / 10 * 3600 / 1852, CourseDeg: 0},
		},
		{
			name: "due south",
			prev: &start,
			cur:  reading("boat-1", 2, t0.Add(10*time.Second), 52.459, 21.02),
			want: Movement{DistanceM: milliDegM, SpeedMS: milliDegM / 10, SpeedKn: milliDegM / 10 * 3600 / 1852, CourseDeg: 180},
		},
		{
			name: "one nautical mile in one hour north-east is one knot",
			prev: &start,
			cur:  from(start, 45, 1852, time.Hour),
			want: Movement{DistanceM: 1852, SpeedMS: 1852.0 / 3600, SpeedKn: 1, CourseDeg: 45},
		},
		{
			name: "south-west at 5 m/s over 250 ms",
			prev: &start,
			cur:  from(start, 225, 1.25, 250*time.Millisecond),
			want: Movement{DistanceM: 1.25, SpeedMS: 5, SpeedKn: 5 * 3600 / 1852.0, CourseDeg: 225},
		},
		{
			name: "bearing 359.5 stays below 360",
			prev: &start,
			cur:  from(start, 359.5, 100, 20*time.Second),
			want: Movement{DistanceM: 100, SpeedMS: 5, SpeedKn: 5 * 3600 / 1852.0, CourseDeg: 359.5},
		},
		{
			name: "zero dt: distance and course but no division by zero",
			prev: &start,
			cur:  from(start, 90, 30, 0),
			want: Movement{DistanceM: 30, SpeedMS: 0, SpeedKn: 0, CourseDeg: 90},
		},
		{
			name: "negative dt gives no negative speed",
			prev: &start,
			cur:  from(start, 270, 30, -time.Second),
			want: Movement{DistanceM: 30, SpeedMS: 0, SpeedKn: 0, CourseDeg: 270},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Motion(tt.prev, tt.cur)
			check := func(what string, got, want, tol float64) {
				t.Helper()
				if math.IsNaN(got) || math.IsInf(got, 0) || math.Abs(got-want) > tol {
					t.Errorf("%s = %.9g, want %.9g (±%g)", what, got, want, tol)
				}
			}
			check("DistanceM", got.DistanceM, tt.want.DistanceM, 1e-6*max(1, tt.want.DistanceM))
			check("SpeedMS", got.SpeedMS, tt.want.SpeedMS, 1e-6*max(1, tt.want.SpeedMS))
			check("SpeedKn", got.SpeedKn, tt.want.SpeedKn, 1e-6*max(1, tt.want.SpeedKn))
			if d := angleDiff(got.CourseDeg, tt.want.CourseDeg); d > 1e-6 {
				t.Errorf("CourseDeg = %.9g, want %.9g", got.CourseDeg, tt.want.CourseDeg)
			}
			if got.CourseDeg < 0 || got.CourseDeg >= 360 {
				t.Errorf("CourseDeg %g outside [0, 360)", got.CourseDeg)
			}
		})
	}
}

// TestMotionPure checks the property the Wasm UDF relies on: the same input
// gives the same output, whatever was computed before.
func TestMotionPure(t *testing.T) {
	a := reading("boat-1", 1, t0, 52.46, 21.02)
	b := from(a, 123, 42, 3*time.Second)
	want := Motion(&a, b)
	for i := 0; i < 100; i++ {
		c := from(b, float64(i*7%360), float64(i), time.Duration(i)*time.Second)
		Motion(&b, c)
		if got := Motion(&a, b); got != want {
			t.Fatalf("call %d: Motion = %+v, want %+v", i, got, want)
		}
	}
}
