package lake

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sailstream/sailstream/geo"
)

func TestGeoJSONIsAFeatureCollectionWithOnePolygon(t *testing.T) {
	var fc struct {
		Type     string `json:"type"`
		Features []struct {
			Type       string         `json:"type"`
			Properties map[string]any `json:"properties"`
			Geometry   struct {
				Type        string         `json:"type"`
				Coordinates [][][2]float64 `json:"coordinates"`
			} `json:"geometry"`
		} `json:"features"`
	}
	if err := json.Unmarshal(GeoJSON(), &fc); err != nil {
		t.Fatalf("zegrze.geojson is not valid JSON of the expected shape: %v", err)
	}
	if fc.Type != "FeatureCollection" || len(fc.Features) != 1 {
		t.Fatalf("type %q with %d features, want a FeatureCollection with 1", fc.Type, len(fc.Features))
	}
	f := fc.Features[0]
	if f.Type != "Feature" || f.Geometry.Type != "Polygon" {
		t.Fatalf("feature %q geometry %q, want Feature/Polygon", f.Type, f.Geometry.Type)
	}
	if name, _ := f.Properties["name"].(string); !strings.Contains(name, "Zegrzy") {
		t.Errorf("properties.name = %q, want the lake's name", name)
	}
	if len(f.Geometry.Coordinates) != 1 {
		t.Errorf("%d rings, want just the exterior ring", len(f.Geometry.Coordinates))
	}
	ring := f.Geometry.Coordinates[0]
	if n := len(ring) - 1; n < 30 || n > 80 {
		t.Errorf("%d vertices, want 30–80", n)
	}
	// RFC 7946: exterior rings are counterclockwise (positive shoelace area
	// with x = lon, y = lat).
	var area2 float64
	for i := 0; i+1 < len(ring); i++ {
		area2 += ring[i][0]*ring[i+1][1] - ring[i+1][0]*ring[i][1]
	}
	if area2 <= 0 {
		t.Errorf("exterior ring is clockwise (signed area %g), RFC 7946 wants counterclockwise", area2/2)
	}
}

func TestGeoJSONReturnsACopy(t *testing.T) {
	b := GeoJSON()
	b[0] = 'X'
	if GeoJSON()[0] != '{' {
		t.Fatal("modifying the returned bytes changed the embedded file")
	}
}

func TestRingIsClosedAndSimple(t *testing.T) {
	p := Zegrze()
	if p[0] != p[len(p)-1] {
		t.Fatalf("ring not closed: first %v last %v", p[0], p[len(p)-1])
	}
	n := len(p) - 1 // edges
	for i := 0; i < n; i++ {
		if p[i] == p[i+1] {
			t.Errorf("vertex %d repeats vertex %d", i+1, i)
		}
		for j := i + 1; j < n; j++ {
			if j == i+1 || (i == 0 && j == n-1) {
				continue // adjacent edges share a vertex
			}
			if segmentsIntersect(p[i], p[i+1], p[j], p[j+1]) {
				t.Errorf("edge %d (%v–%v) crosses edge %d (%v–%v)", i, p[i], p[i+1], j, p[j], p[j+1])
			}
		}
	}
}

func TestOutlineIsWithinTheMainBasin(t *testing.T) {
	sw, ne := Bounds()
	if sw.Lat < 52.43 || ne.Lat > 52.53 || sw.Lon < 20.96 || ne.Lon > 21.09 {
		t.Errorf("bounds %v–%v outside the main basin 52.43–52.53 N, 20.96–21.09 E", sw, ne)
	}
	// Roughly the size of the real main basin (the whole reservoir with its
	// river arms is 30–33 km²).
	km2 := areaKM2(Zegrze())
	if km2 < 12 || km2 > 33 {
		t.Errorf("area %.1f km², want 12–33", km2)
	}
}

func TestContains(t *testing.T) {
	tests := []struct {
		name  string
		p     geo.Point
		water bool
	}{
		{"Zegrze triangle, between Zegrze, Rynia and Nieporęt", geo.Point{Lat: 52.458, Lon: 21.050}, true},
		{"main basin off Jadwisin", geo.Point{Lat: 52.476, Lon: 21.045}, true},
		{"main basin south of Serock", geo.Point{Lat: 52.495, Lon: 21.055}, true},
		{"western arm towards Dębe", geo.Point{Lat: 52.4715, Lon: 21.000}, true},
		{"Warsaw centre", geo.Point{Lat: 52.23, Lon: 21.01}, false},
		{"Serock town, on the bank between the Narew and Bug arms", geo.Point{Lat: 52.511, Lon: 21.062}, false},
		{"Nieporęt village", geo.Point{Lat: 52.430, Lon: 21.035}, false},
		{"Wieliszew", geo.Point{Lat: 52.450, Lon: 20.960}, false},
		{"Legionowo", geo.Point{Lat: 52.40, Lon: 20.93}, false},
		{"Pułtusk", geo.Point{Lat: 52.70, Lon: 21.08}, false},
	}
	p := Zegrze()
	for _, tt := range tests {
		if got := p.Contains(tt.p); got != tt.water {
			t.Errorf("%s %v: Contains = %v, want %v", tt.name, tt.p, got, tt.water)
		}
	}
}

func TestCentreIsOnTheWater(t *testing.T) {
	c := Centre()
	if !Zegrze().Contains(c) {
		t.Fatalf("Centre() %v is not inside the outline", c)
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"not json", `{`, "parse"},
		{"wrong type", `{"type":"Feature"}`, "FeatureCollection"},
		{"no features", `{"type":"FeatureCollection","features":[]}`, "no features"},
		{"line", `{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"LineString","coordinates":[]}}]}`, "want Polygon"},
		{"open ring", `{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Polygon","coordinates":[[[21,52],[21.1,52],[21.1,52.1],[21,52.1]]]}}]}`, "not closed"},
		{"short ring", `{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Polygon","coordinates":[[[21,52],[21.1,52],[21,52]]]}}]}`, "at least 4"},
		{"swapped lat lon out of range", `{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Polygon","coordinates":[[[21,152],[21.1,52],[21.1,52.1],[21,152]]]}}]}`, "not a valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func areaKM2(p geo.Polygon) float64 {
	c := Centre()
	var a float64
	for i := 0; i+1 < len(p); i++ {
		x0, y0 := project(c, p[i])
		x1, y1 := project(c, p[i+1])
		a += x0*y1 - x1*y0
	}
	if a < 0 {
		a = -a
	}
	return a / 2 / 1e6
}

// project maps q to metres east and north of c (equirectangular; fine at
// lake scale).
func project(c, q geo.Point) (x, y float64) {
	y = geo.Distance(c, geo.Point{Lat: q.Lat, Lon: c.Lon})
	if q.Lat < c.Lat {
		y = -y
	}
	x = geo.Distance(geo.Point{Lat: q.Lat, Lon: c.Lon}, q)
	if q.Lon < c.Lon {
		x = -x
	}
	return x, y
}

func segmentsIntersect(a, b, c, d geo.Point) bool {
	o1, o2 := orient(a, b, c), orient(a, b, d)
	o3, o4 := orient(c, d, a), orient(c, d, b)
	if o1*o2 < 0 && o3*o4 < 0 {
		return true
	}
	on := func(p, q, r geo.Point, o float64) bool { // r collinear and on pq
		return o == 0 && min(p.Lon, q.Lon) <= r.Lon && r.Lon <= max(p.Lon, q.Lon) &&
			min(p.Lat, q.Lat) <= r.Lat && r.Lat <= max(p.Lat, q.Lat)
	}
	return on(a, b, c, o1) || on(a, b, d, o2) || on(c, d, a, o3) || on(c, d, b, o4)
}

func orient(a, b, c geo.Point) float64 {
	v := (b.Lon-a.Lon)*(c.Lat-a.Lat) - (b.Lat-a.Lat)*(c.Lon-a.Lon)
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}
