package motion

import (
	"math"
	"math/rand/v2"
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

// TestMovementMatchesGeo holds the fused computation to geo.Distance and
// geo.Bearing (and the speed to distance / seconds), bit for bit, on tracks like the boats' and on random
// points anywhere (including poles, the antimeridian, identical and
// antipodal points, NaN and infinities).
func TestMovementMatchesGeo(t *testing.T) {
	check := func(a, b geo.Point) {
		t.Helper()
		wantD := geo.Distance(a, b)
		wantC := 0.0
		if wantD > 0 {
			wantC = geo.Bearing(a, b)
		}
		m := movement(a, b, 250*time.Millisecond)
		if !sameBits(m.DistanceM, wantD) || !sameBits(m.CourseDeg, wantC) || !sameBits(m.SpeedMS, wantD/0.25) {
			t.Fatalf("movement(%v, %v) = %+v; geo gives %v, %v", a, b, m, wantD, wantC)
		}
	}
	p := geo.Point{Lat: 52.46, Lon: 21.02}
	for i := range 20000 {
		q := geo.Destination(p, float64(i%360)+0.37*float64(i%7), 0.5+float64(i%40))
		check(p, q)
		check(q, p)
		check(p, p)
		p = q
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		a := geo.Point{Lat: rng.Float64()*180 - 90, Lon: rng.Float64()*360 - 180}
		b := geo.Point{Lat: rng.Float64()*180 - 90, Lon: rng.Float64()*360 - 180}
		check(a, b)
		// Close pairs, where the course is most sensitive.
		check(a, geo.Point{Lat: a.Lat + (rng.Float64()-0.5)*1e-4, Lon: a.Lon + (rng.Float64()-0.5)*1e-4})
	}
	special := []float64{0, math.Copysign(0, -1), 90, -90, 180, -180, 1e-300, 1e300, math.NaN(), math.Inf(1), math.Inf(-1)}
	for _, la := range special {
		for _, lo := range special {
			check(geo.Point{Lat: la, Lon: lo}, geo.Point{Lat: 52.46, Lon: 21.02})
			check(geo.Point{Lat: 52.46, Lon: 21.02}, geo.Point{Lat: la, Lon: lo})
			check(geo.Point{Lat: la, Lon: lo}, geo.Point{Lat: lo, Lon: la})
		}
	}
}

func FuzzMovementMatchesGeo(f *testing.F) {
	f.Add(52.46, 21.02, 52.47, 21.03)
	f.Add(90.0, 0.0, -90.0, 180.0)
	f.Fuzz(func(t *testing.T, lat0, lon0, lat1, lon1 float64) {
		a, b := geo.Point{Lat: lat0, Lon: lon0}, geo.Point{Lat: lat1, Lon: lon1}
		wantD := geo.Distance(a, b)
		wantC := 0.0
		if wantD > 0 {
			wantC = geo.Bearing(a, b)
		}
		if m := movement(a, b, 0); !sameBits(m.DistanceM, wantD) || !sameBits(m.CourseDeg, wantC) || m.SpeedMS != 0 {
			t.Fatalf("movement = %+v; geo gives %v, %v", m, wantD, wantC)
		}
	})
}

func sameBits(x, y float64) bool {
	return math.Float64bits(x) == math.Float64bits(y) || (math.IsNaN(x) && math.IsNaN(y))
}
