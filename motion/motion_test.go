package motion

import (
	"math"
	"testing"
	"time"

	"github.com/sailstream/sailstream/geo"
)

// TestStepMatchesTimeSub checks the property the speed UDF relies on: Step
// on Unix nanoseconds is bit-identical to Between on time.Time.Sub, the way
// the core computed motion before the move.
func TestStepMatchesTimeSub(t *testing.T) {
	base := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC).UnixNano()
	tests := []struct {
		name   string
		t0, t1 int64
		lat0   float64
		lat1   float64
		lon1   float64
	}{
		{"one second north-east", base, base + int64(time.Second), 52.46, 52.4601, 21.0201},
		{"250 ms", base, base + int64(250*time.Millisecond), 52.46, 52.46001, 21.02},
		{"same time", base, base, 52.46, 52.47, 21.02},
		{"backwards", base, base - 1, 52.46, 52.47, 21.03},
		{"standing still", base, base + 7, 52.46, 52.46, 21.02},
		{"odd nanoseconds", base + 123456789, base + 987654321987, 52.4, 52.5, 21.1},
		{"saturates up", math.MinInt64 + 5, math.MaxInt64, 52.46, 52.47, 21.02},
		{"saturates down", math.MaxInt64, math.MinInt64, 52.46, 52.47, 21.02},
		{"around zero", -1500, 2500, 52.46, 52.47, 21.02},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := geo.Point{Lat: tt.lat0, Lon: 21.02}
			b := geo.Point{Lat: tt.lat1, Lon: tt.lon1}
			want := Between(a, b, time.Unix(0, tt.t1).Sub(time.Unix(0, tt.t0)))
			got := Step(Fix{TimeNs: tt.t0, Lat: a.Lat, Lon: a.Lon}, Fix{TimeNs: tt.t1, Lat: b.Lat, Lon: b.Lon})
			if got != want {
				t.Fatalf("Step = %+v, want %+v", got, want)
			}
			if got.SpeedMS < 0 || math.IsNaN(got.SpeedMS) || math.IsInf(got.SpeedMS, 0) {
				t.Fatalf("SpeedMS = %v", got.SpeedMS)
			}
		})
	}
}

func FuzzStepMatchesTimeSub(f *testing.F) {
	f.Add(int64(0), int64(1e9), 52.46, 21.02, 52.47, 21.03)
	f.Add(int64(math.MinInt64), int64(math.MaxInt64), 0.0, 0.0, 1.0, 1.0)
	f.Fuzz(func(t *testing.T, t0, t1 int64, lat0, lon0, lat1, lon1 float64) {
		a, b := geo.Point{Lat: lat0, Lon: lon0}, geo.Point{Lat: lat1, Lon: lon1}
		want := Between(a, b, time.Unix(0, t1).Sub(time.Unix(0, t0)))
		got := Step(Fix{t0, lat0, lon0}, Fix{t1, lat1, lon1})
		if !same(got, want) {
			t.Fatalf("Step = %+v, want %+v", got, want)
		}
	})
}

func same(a, b Movement) bool {
	eq := func(x, y float64) bool {
		return math.Float64bits(x) == math.Float64bits(y) || (math.IsNaN(x) && math.IsNaN(y))
	}
	return eq(a.DistanceM, b.DistanceM) && eq(a.SpeedMS, b.SpeedMS) && eq(a.SpeedKn, b.SpeedKn) && eq(a.CourseDeg, b.CourseDeg)
}
