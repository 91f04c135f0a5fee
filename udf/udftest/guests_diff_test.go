package udftest

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sailstream/sailstream/telemetry"
	"github.com/sailstream/sailstream/udf"
)

// TestGuestSpeedRandom compares the AssemblyScript and C speed UDFs with
// native Go bit for bit on random walks all over the globe (poles,
// antimeridian, long jumps, repeated, backwards and sub-second times),
// carrying the state from batch to batch: the ten hand-written vectors
// alone would not show a last-bit difference in the ported trig.
func TestGuestSpeedRandom(t *testing.T) {
	ctx := context.Background()
	for _, g := range speedGuests {
		t.Run(g.lang, func(t *testing.T) {
			mod, err := engine.Load(ctx, buildGuest(t, g.lang, g.dir), udf.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			defer mod.Close(ctx)
			rng := rand.New(rand.NewPCG(1, 2))
			var gotState, wantState []byte
			seq := uint64(0)
			tm := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
			lat, lon := 52.46, 21.02
			readings := 0
			for batch := 0; batch < 200; batch++ {
				rs := make([]telemetry.Reading, rng.IntN(40))
				for i := range rs {
					seq++
					switch rng.IntN(6) {
					case 0: // anywhere
						lat, lon = rng.Float64()*180-90, rng.Float64()*360-180
					case 1: // a tiny step
						lat, lon = clamp(lat+rng.NormFloat64()*1e-6, 90), clamp(lon+rng.NormFloat64()*1e-6, 180)
					default: // a boat's step
						lat, lon = clamp(lat+rng.NormFloat64()*1e-4, 90), clamp(lon+rng.NormFloat64()*1e-4, 180)
					}
					switch rng.IntN(8) {
					case 0: // same time
					case 1: // backwards
						tm = tm.Add(-time.Duration(rng.Int64N(int64(time.Hour))))
					default:
						tm = tm.Add(time.Duration(rng.Int64N(int64(3 * time.Second))))
					}
					rs[i] = telemetry.Reading{Device: "boat-r", Seq: seq, Time: tm, Lat: lat, Lon: lon}
				}
				readings += len(rs)
				got, err := mod.Process(ctx, gotState, "boat-r", rs)
				if err != nil {
					t.Fatal(err)
				}
				want, err := NativeSpeed{}.Process(ctx, wantState, "boat-r", rs)
				if err != nil {
					t.Fatal(err)
				}
				if d := Diff(FromResult(got), FromResult(want)); d != "" {
					t.Fatalf("batch %d (%d readings) differs from native Go:\n%s", batch, len(rs), d)
				}
				gotState, wantState = got.State, want.State
			}
			t.Logf("%d readings identical to native Go", readings)
		})
	}
}

func clamp(v, lim float64) float64 { return max(-lim, min(lim, v)) }
