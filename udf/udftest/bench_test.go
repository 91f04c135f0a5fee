package udftest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sailstream/sailstream/geo"
	"github.com/sailstream/sailstream/telemetry"
	"github.com/sailstream/sailstream/udf"
)

// BenchmarkSpeed compares the cost per reading of the speed UDF as a Go
// guest (whole host round trip: encode, copy in, call, decode) with the
// same logic as native Go producing the same Result. Target: the guest
// within 6x of native at batch >= 256. The guest's sub-benchmark also
// reports x-native, its ns/reading over the native one's just before it
// (wall-clock: on a busy machine, compare runs with -count).
func BenchmarkSpeed(b *testing.B) {
	ctx := context.Background()
	mod, err := engine.Load(ctx, speedWasm, udf.Limits{Instances: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer mod.Close(ctx)
	for _, size := range []int{1, 16, 256, 1024} {
		rs := make([]telemetry.Reading, size)
		p := geo.Point{Lat: 52.46, Lon: 21.02}
		t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
		for i := range rs {
			rs[i] = telemetry.Reading{Device: "boat-1", Seq: uint64(i), Time: t0.Add(time.Duration(i) * time.Second), Lat: p.Lat, Lon: p.Lon}
			p = geo.Destination(p, float64(i%360), 4)
		}
		native := 0.0
		for _, impl := range []struct {
			name string
			p    Processor
		}{{"native", NativeSpeed{}}, {"go-guest", mod}} {
			b.Run(fmt.Sprintf("%s/batch=%d", impl.name, size), func(b *testing.B) {
				var state []byte
				for b.Loop() {
					res, err := impl.p.Process(ctx, state, "boat-1", rs)
					if err != nil {
						b.Fatal(err)
					}
					state = res.State
				}
				perReading := float64(b.Elapsed().Nanoseconds()) / float64(b.N*size)
				b.ReportMetric(perReading, "ns/reading")
				if impl.name == "native" {
					native = perReading
				} else if native > 0 {
					b.ReportMetric(perReading/native, "x-native")
				}
			})
		}
	}
}
