package core

import (
	"github.com/sailstream/sailstream/geo"
	"github.com/sailstream/sailstream/telemetry"
)

// Movement is a device's motion between two of its readings.
type Movement struct {
	// DistanceM is the great-circle (haversine) distance in metres.
	DistanceM float64
	// SpeedMS and SpeedKn are the average speed over ground between the
	// two readings, which at one reading a second is the instantaneous
	// speed.
	SpeedMS float64
	SpeedKn float64
	// CourseDeg is the initial bearing from the previous position, in
	// [0, 360) clockwise from true north; 0 when the device did not move.
	CourseDeg float64
}

// Motion computes the movement of a device from its previous accepted
// reading prev (nil for the device's first reading, which gives zeros) to
// cur. It is pure: no clock, no I/O, same input same output, so it can move
// into a Wasm UDF unchanged. When cur is not later than prev the distance and
// course are still computed but the speed is 0 rather than a division by
// zero or a negative time.
func Motion(prev *telemetry.Reading, cur telemetry.Reading) Movement {
	if prev == nil {
		return Movement{}
	}
	a := geo.Point{Lat: prev.Lat, Lon: prev.Lon}
	b := geo.Point{Lat: cur.Lat, Lon: cur.Lon}
	m := Movement{DistanceM: geo.Distance(a, b)}
	if m.DistanceM > 0 {
		m.CourseDeg = geo.Bearing(a, b)
	}
	if dt := cur.Time.Sub(prev.Time).Seconds(); dt > 0 {
		m.SpeedMS = m.DistanceM / dt
		m.SpeedKn = m.SpeedMS * geo.KnotsPerMS
	}
	return m
}
