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
	"math"
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
//
// Between and Step are thin enough to inline, so a call to either is one
// call to movement: in a Go Wasm guest every call level costs.
func Between(a, b geo.Point, dt time.Duration) Movement {
	return movement(a, b, dt)
}

// Step computes the movement from the previous fix prev to cur. Times are
// subtracted the way time.Time.Sub does (saturating at the int64 range), so
// Step on Unix nanoseconds gives the same result as Between on time.Time
// values for every time Unix nanoseconds can represent.
func Step(prev, cur Fix) Movement {
	return movement(geo.Point{Lat: prev.Lat, Lon: prev.Lon}, geo.Point{Lat: cur.Lat, Lon: cur.Lon}, sub(cur.TimeNs, prev.TimeNs))
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

// movement is Between. Its distance is
// geo.Distance(a, b) and, when that is not 0, its course geo.Bearing(a, b)
// (else 0), bit for bit: the same expressions in the same order, with the
// sines and cosines the two share computed once, math.Sincos where both of
// an angle are needed (it gives the same bits as math.Sin and math.Cos: same
// reduction, same polynomials), and two exact shortcuts (see below). Five
// trigonometric calls instead of eleven: about half off the default UDF's
// maths in a Go Wasm guest, where math is portable Go, and a third off
// natively. TestMovementMatchesGeo holds it to geo.
func movement(a, b geo.Point, dt time.Duration) (m Movement) {
	φ1, φ2 := rad(a.Lat), rad(b.Lat)
	dφ := φ2 - φ1
	dλ := rad(b.Lon - a.Lon)
	sinφ1, cosφ1 := math.Sincos(φ1)
	sinφ2, cosφ2 := math.Sincos(φ2)
	// geo.Distance
	s1, s2 := math.Sin(dφ/2), math.Sin(dλ/2)
	h := s1*s1 + cosφ1*cosφ2*s2*s2
	// The builtin min has math.Min's semantics (NaN wins, -0 < +0) and
	// compiles to one instruction.
	m.DistanceM = 2 * geo.EarthRadiusM * math.Asin(math.Sqrt(min(1, h)))
	if s := dt.Seconds(); s > 0 {
		m.SpeedMS = m.DistanceM / s
		m.SpeedKn = m.SpeedMS * geo.KnotsPerMS
	}
	if !(m.DistanceM > 0) {
		return m
	}
	// geo.Bearing
	sinDλ, cosDλ := math.Sincos(dλ)
	y := sinDλ * cosφ2
	x := cosφ1*sinφ2 - sinφ1*cosφ2*cosDλ
	if x == 0 && y == 0 {
		return m
	}
	// geo takes math.Mod(v, 360) of v = deg(atan2)+360, which is in
	// [180, 540] (or NaN): there math.Mod is v, or v-360, which is exact
	// (Sterbenz: 360 <= v <= 720), so one comparison gives the same bits.
	c := deg(math.Atan2(y, x)) + 360
	if c >= 360 {
		c -= 360
	}
	if c >= 360 {
		c = 0
	}
	m.CourseDeg = c
	return m
}

// rad and deg are geo's, operation for operation.
func rad(d float64) float64 { return d * math.Pi / 180 }
func deg(r float64) float64 { return r * 180 / math.Pi }
