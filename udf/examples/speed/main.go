// Command speed is the default sailstream UDF: for every reading it emits
// the distance from the device's previous reading, the speed over ground and
// the course, computed by package motion, the same code the core ran before
// UDFs existed. Its state is the device's last reading (package lastfix).
//
// Build:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o speed.wasm .
package main

import (
	"github.com/sailstream/sailstream/motion"
	"github.com/sailstream/sailstream/udf/examples/lastfix"
	sdk "github.com/sailstream/sailstream/udf/sdk/go"
)

// Version is stamped on every enriched record this UDF produces.
const Version = "1.0.0"

func init() { sdk.Register(sdk.Info{Name: "speed", Version: Version}, speed) }

func main() {}

// Scratch reused by the next call; nothing in it outlives a call's result.
var (
	outs   []sdk.Output
	fields []sdk.Field
	state  []byte
)

func speed(st []byte, b sdk.Batch) ([]byte, []sdk.Output, error) {
	n := len(b.Readings)
	if n == 0 {
		return st, nil, nil
	}
	last, ok := lastfix.Decode(st)
	if cap(outs) < n {
		outs = make([]sdk.Output, n)
		fields = make([]sdk.Field, 3*n)
	}
	outs = outs[:n]
	for i := range b.Readings {
		r := &b.Readings[i]
		cur := motion.Fix{TimeNs: r.TimeNs, Lat: r.Lat, Lon: r.Lon}
		var m motion.Movement
		if ok {
			m = motion.Step(last.Fix, cur)
		}
		f := fields[3*i : 3*i+3 : 3*i+3]
		f[0] = sdk.Field{Name: "distance_m", Value: m.DistanceM}
		f[1] = sdk.Field{Name: "speed_ms", Value: m.SpeedMS}
		f[2] = sdk.Field{Name: "course_deg", Value: m.CourseDeg}
		outs[i] = sdk.Output{Input: i, TimeNs: r.TimeNs, Lat: r.Lat, Lon: r.Lon, Fields: f}
		last, ok = lastfix.Last{Seq: r.Seq, Fix: cur}, true
	}
	state = last.Append(state[:0])
	return state, outs, nil
}
