// Package motion computes how a device moved between two of its readings:
// great-circle distance, average speed over ground and initial course.
//
// It is the per-device logic of the original pipeline, kept in a leaf
// package (standard library and geo only) so that the same source runs in
// two places: natively in the core, and inside the default `speed` UDF built
// with GOOS=wasip1 GOARCH=wasm. Both must agree bit for bit, which is why
// the arithmetic lives here once and nowhere else.
package motion

import (
	"time"

	"github.com/sailstream/sailstream/geo"
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

// Fix is the part of a reading motion needs: event time in Unix
// nanoseconds and a WGS 84 position in degrees.
type Fix struct {
	TimeNs   int64
	Lat, Lon float64
}

// Between computes the movement from a to b given the event time elapsed
// between them. When dt is not positive the distance and course are still
// computed but the speed is 0 rather than a division by zero or a negative
// time.
func Between(a, b geo.Point, dt time.Duration) Movement {
	m := Movement{DistanceM: geo.Distance(a, b)}
	if m.DistanceM > 0 {
		m.CourseDeg = geo.Bearing(a, b)
	}
	if s := dt.Seconds(); s > 0 {
		m.SpeedMS = m.DistanceM / s
		m.SpeedKn = m.SpeedMS * geo.KnotsPerMS
	}
	return m
}

// Step computes the movement from the previous fix prev to cur. Times are
// subtracted the way time.Time.Sub does (saturating at the int64 range), so
// Step on Unix nanoseconds gives the same result as Between on time.Time
// values for every time Unix nanoseconds can represent.
func Step(prev, cur Fix) Movement {
	return Between(geo.Point{Lat: prev.Lat, Lon: prev.Lon}, geo.Point{Lat: cur.Lat, Lon: cur.Lon}, sub(cur.TimeNs, prev.TimeNs))
}

// sub returns a-b as a Duration, saturating like time.Time.Sub.
func sub(a, b int64) time.Duration {
	d := a - b
	switch {
	case b < 0 && d < a: // overflowed upwards
		return time.Duration(1<<63 - 1)
	case b > 0 && d > a: // overflowed downwards
		return time.Duration(-1 << 63)
	}
	return time.Duration(d)
}
