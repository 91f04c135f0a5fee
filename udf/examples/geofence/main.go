// Command geofence is an example UDF: the speed UDF's motion fields, plus
// outside_lake = 1 for a reading outside the outline of Zegrze lake (package
// lake) and 0 inside, so the map can flag a boat that left the water (or a
// tracker that lost its fix). State: the device's last reading (lastfix),
// so it swaps with the speed UDF in both directions.
//
// Build:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o geofence.wasm .
package main

import (
	"github.com/sailstream/sailstream/geo"
	"github.com/sailstream/sailstream/lake"
	"github.com/sailstream/sailstream/motion"
	"github.com/sailstream/sailstream/udf/examples/lastfix"
	sdk "github.com/sailstream/sailstream/udf/sdk/go"
)

func init() { sdk.Register(sdk.Info{Name: "geofence", Version: "1.0.0"}, geofence) }

func main() {}

// outs is scratch reused by the next call (the SDK encodes it before then).
var outs []sdk.Output

func geofence(st []byte, b sdk.Batch) ([]byte, []sdk.Output, error) {
	outline := lake.Zegrze()
	last, ok := lastfix.Decode(st)
	outs = outs[:0]
	for i, r := range b.Readings {
		cur := motion.Fix{TimeNs: r.TimeNs, Lat: r.Lat, Lon: r.Lon}
		var m motion.Movement
		if ok {
			m = motion.Step(last.Fix, cur)
		}
		outside := 0.0
		if !outline.Contains(geo.Point{Lat: r.Lat, Lon: r.Lon}) {
			outside = 1
		}
		o := b.Pass(i)
		o.Set("distance_m", m.DistanceM)
		o.Set("speed_ms", m.SpeedMS)
		o.Set("course_deg", m.CourseDeg)
		o.Set("outside_lake", outside)
		outs = append(outs, o)
		last, ok = lastfix.Last{Seq: r.Seq, Fix: cur}, true
	}
	if !ok {
		return st, nil, nil
	}
	return last.Append(nil), outs, nil
}
