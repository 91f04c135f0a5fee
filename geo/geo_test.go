package geo

import (
	"math"
	"testing"
)

func TestDistance(t *testing.T) {
	tests := []struct {
		name string
		a, b Point
		want float64 // metres
		tol  float64
	}{
		{"same point", Point{52.45, 21.0}, Point{52.45, 21.0}, 0, 1e-9},
		{"one minute of latitude is about a nautical mile", Point{52, 21}, Point{52 + 1.0/60, 21}, 1853.2, 1},
		// Warsaw Palace of Culture to Zegrze dam, measured on a map: about 27 km.
		{"Warsaw to Zegrze", Point{52.2318, 21.0060}, Point{52.4646, 21.0282}, 25950, 300},
		{"antipodes", Point{0, 0}, Point{0, 180}, math.Pi * EarthRadiusM, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Distance(tt.a, tt.b)
			if math.Abs(got-tt.want) > tt.tol {
				t.Errorf("Distance = %.2f, want %.2f ± %.2f", got, tt.want, tt.tol)
			}
		})
	}
}

func TestBearingAndDestinationRoundTrip(t *testing.T) {
	start := Point{52.47, 21.02}
	for _, b := range []float64{0, 45, 90, 135, 180, 225, 270, 315, 359.5} {
		for _, d := range []float64{1, 50, 1000} {
			end := Destination(start, b, d)
			if got := Distance(start, end); math.Abs(got-d) > 1e-6*d+1e-6 {
				t.Errorf("bearing %v dist %v: Distance back = %v", b, d, got)
			}
			got := Bearing(start, end)
			diff := math.Abs(got - b)
			if diff > 180 {
				diff = 360 - diff
			}
			if diff > 1e-3 {
				t.Errorf("bearing %v dist %v: Bearing back = %v", b, d, got)
			}
		}
	}
	if got := Bearing(start, start); got != 0 {
		t.Errorf("Bearing(p, p) = %v, want 0", got)
	}
}

func TestPolygonContains(t *testing.T) {
	square := Polygon{{0, 0}, {0, 1}, {1, 1}, {1, 0}}
	tests := []struct {
		p    Point
		want bool
	}{
		{Point{0.5, 0.5}, true},
		{Point{1.5, 0.5}, false},
		{Point{0.5, -0.1}, false},
		{Point{0.99, 0.01}, true},
	}
	for _, tt := range tests {
		if got := square.Contains(tt.p); got != tt.want {
			t.Errorf("Contains(%v) = %v, want %v", tt.p, got, tt.want)
		}
	}
	// A concave "C" shape: the notch is outside.
	c := Polygon{{0, 0}, {0, 3}, {1, 3}, {1, 1}, {2, 1}, {2, 3}, {3, 3}, {3, 0}}
	if c.Contains(Point{1.5, 2}) {
		t.Error("point in the notch of a concave polygon reported inside")
	}
	if !c.Contains(Point{0.5, 2}) {
		t.Error("point in the arm of a concave polygon reported outside")
	}
}
