package core

import (
	"github.com/sailstream/sailstream/geo"
	"github.com/sailstream/sailstream/motion"
	"github.com/sailstream/sailstream/telemetry"
)

// Movement is a device's motion between two of its readings. It is
// motion.Movement: the logic moved to package motion so the default `speed`
// UDF (udf/examples/speed) runs the very same code in Wasm.
type Movement = motion.Movement

// Motion computes the movement of a device from its previous accepted
// reading prev (nil for the device's first reading, which gives zeros) to
// cur. It is pure: no clock, no I/O, same input same output. When cur is not
// later than prev the distance and course are still computed but the speed
// is 0 rather than a division by zero or a negative time.
func Motion(prev *telemetry.Reading, cur telemetry.Reading) Movement {
	if prev == nil {
		return Movement{}
	}
	return motion.Between(geo.Point{Lat: prev.Lat, Lon: prev.Lon}, geo.Point{Lat: cur.Lat, Lon: cur.Lon}, cur.Time.Sub(prev.Time))
}
