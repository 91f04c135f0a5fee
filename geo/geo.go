// Package geo holds the small amount of spherical geometry sailstream needs:
// great-circle distance, initial bearing, moving a point along a bearing, and
// point-in-polygon for outlines such as the shore of Zegrze lake.
//
// It uses only the standard library so a Go UDF compiled to Wasm can use it.
// Distances are on a sphere of the mean Earth radius: at the scale of a lake
// the error against the WGS 84 ellipsoid is well under 0.5%, and the same
// formula on both sides (simulator and core) is what the tests compare.
package geo

import "math"

// EarthRadiusM is the mean Earth radius in metres (IUGG).
const EarthRadiusM = 6371008.8

// KnotsPerMS converts metres per second to knots (1 kn = 1852 m/h).
const KnotsPerMS = 3600.0 / 1852.0

// Point is a WGS 84 position in degrees.
type Point struct {
	Lat, Lon float64
}

func rad(d float64) float64 { return d * math.Pi / 180 }
func deg(r float64) float64 { return r * 180 / math.Pi }

// Distance returns the haversine great-circle distance between a and b in
// metres.
func Distance(a, b Point) float64 {
	φ1, φ2 := rad(a.Lat), rad(b.Lat)
	dφ := φ2 - φ1
	dλ := rad(b.Lon - a.Lon)
	s1, s2 := math.Sin(dφ/2), math.Sin(dλ/2)
	h := s1*s1 + math.Cos(φ1)*math.Cos(φ2)*s2*s2
	return 2 * EarthRadiusM * math.Asin(math.Sqrt(math.Min(1, h)))
}

// Bearing returns the initial great-circle bearing from a to b in degrees,
// in [0, 360), clockwise from true north. It is 0 when a == b.
func Bearing(a, b Point) float64 {
	φ1, φ2 := rad(a.Lat), rad(b.Lat)
	dλ := rad(b.Lon - a.Lon)
	y := math.Sin(dλ) * math.Cos(φ2)
	x := math.Cos(φ1)*math.Sin(φ2) - math.Sin(φ1)*math.Cos(φ2)*math.Cos(dλ)
	if x == 0 && y == 0 {
		return 0
	}
	b2 := math.Mod(deg(math.Atan2(y, x))+360, 360)
	if b2 >= 360 {
		b2 = 0
	}
	return b2
}

// Destination returns the point reached from p after distM metres on the
// initial bearing bearingDeg.
func Destination(p Point, bearingDeg, distM float64) Point {
	δ := distM / EarthRadiusM
	θ := rad(bearingDeg)
	φ1, λ1 := rad(p.Lat), rad(p.Lon)
	φ2 := math.Asin(math.Sin(φ1)*math.Cos(δ) + math.Cos(φ1)*math.Sin(δ)*math.Cos(θ))
	λ2 := λ1 + math.Atan2(math.Sin(θ)*math.Sin(δ)*math.Cos(φ1), math.Cos(δ)-math.Sin(φ1)*math.Sin(φ2))
	return Point{Lat: deg(φ2), Lon: math.Mod(deg(λ2)+540, 360) - 180}
}

// Polygon is a closed ring of points (the last point may repeat the first).
// Contains treats it as planar in degrees, which is exact enough for an
// outline a few kilometres across.
type Polygon []Point

// Contains reports whether p lies inside the polygon (even-odd rule).
func (poly Polygon) Contains(p Point) bool {
	in := false
	n := len(poly)
	for i, j := 0, n-1; i < n; j, i = i, i+1 {
		a, b := poly[i], poly[j]
		if (a.Lat > p.Lat) != (b.Lat > p.Lat) &&
			p.Lon < (b.Lon-a.Lon)*(p.Lat-a.Lat)/(b.Lat-a.Lat)+a.Lon {
			in = !in
		}
	}
	return in
}
