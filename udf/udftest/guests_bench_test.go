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

// BenchmarkGuestSpeed compares the cost per reading of the speed UDF as
// AssemblyScript and C guests (whole host round trip: encode, copy in,
// call, decode) with the same logic as native Go producing the same Result,
// and with the Go guest, in one run. Target: AssemblyScript and C within
// 1.5x of native at batch >= 256.
//
//	go test ./udf/udftest -run '^$' -bench GuestSpeed
func BenchmarkGuestSpeed(b *testing.B) {
	ctx := context.Background()
	impls := []struct {
		name string
		p    Processor
	}{{"native", NativeSpeed{}}}
	for _, g := range append([]struct{ lang, dir string }{{"go", "../examples/speed"}}, speedGuests...) {
		wasm := speedWasm
		if g.lang != "go" {
			wasm = buildGuest(b, g.lang, g.dir)
		}
		mod, err := engine.Load(ctx, wasm, udf.Limits{Instances: 1})
		if err != nil {
			b.Fatal(err)
		}
		defer mod.Close(ctx)
		impls = append(impls, struct {
			name string
			p    Processor
		}{g.lang + "-guest", mod})
	}
	for _, size := range []int{1, 16, 256, 1024} {
		rs := make([]telemetry.Reading, size)
		p := geo.Point{Lat: 52.46, Lon: 21.02}
		t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
		for i := range rs {
			rs[i] = telemetry.Reading{Device: "boat-1", Seq: uint64(i), Time: t0.Add(time.Duration(i) * time.Second), Lat: p.Lat, Lon: p.Lon}
			p = geo.Destination(p, float64(i%360), 4)
		}
		for _, impl := range impls {
			b.Run(fmt.Sprintf("%s/batch=%d", impl.name, size), func(b *testing.B) {
				var state []byte
				for b.Loop() {
					res, err := impl.p.Process(ctx, state, "boat-1", rs)
					if err != nil {
						b.Fatal(err)
					}
					state = res.State
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/reading")
			})
		}
	}
}
