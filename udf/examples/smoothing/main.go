// Command smoothing is an example UDF that corrects GPS jumps: a reading
// whose implied speed from the last accepted reading is above MaxSpeedMS is
// a jump, and is emitted at the last accepted position with gps_jump = 1 and
// jump_m = how far it jumped (so it is corrected, counted and visible, not
// lost). After MaxRejects jumps in a row the device has really moved (or the
// old fix was the bad one): the next reading is accepted wherever it is.
// Accepted readings carry the motion fields of the speed UDF.
//
// State: "smo1", the last accepted reading encoded by package lastfix, and
// the number of jumps in a row (u32 little-endian): 44 bytes. It also accepts the lastfix state of the
// speed and geofence UDFs, so a route can swap to it without losing the
// previous position.
//
// Build:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o smoothing.wasm .
package main

import (
	"github.com/sailstream/sailstream/motion"
	"github.com/sailstream/sailstream/udf/examples/lastfix"
	sdk "github.com/sailstream/sailstream/udf/sdk/go"
)

const (
	// MaxSpeedMS is the fastest plausible speed on the lake: 25 m/s, about
	// 49 knots, well above any sailboat or motorboat there.
	MaxSpeedMS = 25.0
	// MaxRejects is how many jumps in a row are corrected before the
	// position is accepted.
	MaxRejects = 3
	// minJumpM ignores jitter when two readings share a timestamp.
	minJumpM = 5.0
	tag      = "smo1"
)

func init() { sdk.Register(sdk.Info{Name: "smoothing", Version: "1.0.0"}, smoothing) }

func main() {}

func decode(st []byte) (last lastfix.Last, rejects uint32, ok bool) {
	if len(st) == 4+lastfix.Size+4 && string(st[:4]) == tag {
		last, ok = lastfix.Decode(st[4 : 4+lastfix.Size])
		return last, uint32(st[40]) | uint32(st[41])<<8 | uint32(st[42])<<16 | uint32(st[43])<<24, ok
	}
	last, ok = lastfix.Decode(st)
	return last, 0, ok
}

// outs is scratch reused by the next call (the SDK encodes it before then).
var outs []sdk.Output

func smoothing(st []byte, b sdk.Batch) ([]byte, []sdk.Output, error) {
	last, rejects, ok := decode(st)
	outs = outs[:0]
	for i, r := range b.Readings {
		cur := motion.Fix{TimeNs: r.TimeNs, Lat: r.Lat, Lon: r.Lon}
		o := b.Pass(i)
		var m motion.Movement
		if ok {
			m = motion.Step(last.Fix, cur)
			jump := m.DistanceM > minJumpM && (m.SpeedMS > MaxSpeedMS || cur.TimeNs <= last.Fix.TimeNs)
			if jump && rejects < MaxRejects {
				rejects++
				o.Lat, o.Lon = last.Fix.Lat, last.Fix.Lon
				o.Set("distance_m", 0)
				o.Set("speed_ms", 0)
				o.Set("course_deg", 0)
				o.Set("gps_jump", 1)
				o.Set("jump_m", m.DistanceM)
				outs = append(outs, o)
				continue
			}
		}
		o.Set("distance_m", m.DistanceM)
		o.Set("speed_ms", m.SpeedMS)
		o.Set("course_deg", m.CourseDeg)
		outs = append(outs, o)
		last, rejects, ok = lastfix.Last{Seq: r.Seq, Fix: cur}, 0, true
	}
	if !ok {
		return st, nil, nil
	}
	out := last.Append([]byte(tag))
	return append(out, byte(rejects), byte(rejects>>8), byte(rejects>>16), byte(rejects>>24)), outs, nil
}
