// Package lake ships the outline of Zegrze lake (Zalew Zegrzyński, officially
// Jezioro Zegrzyński, the reservoir on the Narew north of Warsaw) where the
// simulated fleet sails.
//
// One file, zegrze.geojson, serves both sides so they cannot disagree: the
// simulator keeps its boats inside the polygon parsed from it, and the web map
// draws the same bytes, which keeps the map meaningful when the browser has no
// tiles (offline, or behind a proxy). The outline is simplified and drawn by
// hand: the main basin from the narrows at Zegrze to Serock (the Narew arm west
// of the town, the Bug arm south of it), the wide "Zegrze triangle" between
// Zegrze, Rynia and Nieporęt, and the start of the western arm towards the dam
// at Dębe. It is good for a map and a simulation, not for navigation.
package lake

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"sync"

	"github.com/sailstream/sailstream/geo"
)

//go:embed zegrze.geojson
var zegrzeGeoJSON []byte

// GeoJSON returns the outline as a GeoJSON FeatureCollection with one Polygon
// feature (coordinates [lon, lat], exterior ring counterclockwise, RFC 7946).
// The caller gets its own copy.
func GeoJSON() []byte {
	return append([]byte(nil), zegrzeGeoJSON...)
}

var zegrze = sync.OnceValue(func() geo.Polygon {
	p, err := Parse(zegrzeGeoJSON)
	if err != nil {
		// The file is embedded and checked by the tests: a failure here is a
		// build defect, not a runtime condition.
		panic(fmt.Sprintf("lake: embedded zegrze.geojson: %v", err))
	}
	return p
})

// Zegrze returns the lake outline as a closed ring (the last point repeats the
// first). The slice is shared: do not modify it.
func Zegrze() geo.Polygon { return zegrze() }

// Centre returns the area centroid of the outline, a point on the water in the
// middle of the main basin, for centring a map.
func Centre() geo.Point { return centroid(Zegrze()) }

// Bounds returns the south-west and north-east corners of the outline's
// bounding box.
func Bounds() (sw, ne geo.Point) { return bounds(Zegrze()) }

type featureCollection struct {
	Type     string `json:"type"`
	Features []struct {
		Type     string `json:"type"`
		Geometry struct {
			Type        string        `json:"type"`
			Coordinates [][][]float64 `json:"coordinates"`
		} `json:"geometry"`
		Properties map[string]any `json:"properties"`
	} `json:"features"`
}

// Parse reads a GeoJSON FeatureCollection whose first feature is a Polygon and
// returns that polygon's exterior ring. Holes are ignored.
func Parse(data []byte) (geo.Polygon, error) {
	var fc featureCollection
	if err := json.Unmarshal(data, &fc); err != nil {
		return nil, fmt.Errorf("lake: parse GeoJSON: %w", err)
	}
	if fc.Type != "FeatureCollection" {
		return nil, fmt.Errorf("lake: GeoJSON type %q, want FeatureCollection", fc.Type)
	}
	if len(fc.Features) == 0 {
		return nil, fmt.Errorf("lake: GeoJSON has no features")
	}
	g := fc.Features[0].Geometry
	if g.Type != "Polygon" {
		return nil, fmt.Errorf("lake: first feature is a %q, want Polygon", g.Type)
	}
	if len(g.Coordinates) == 0 {
		return nil, fmt.Errorf("lake: polygon has no rings")
	}
	ring := g.Coordinates[0]
	if len(ring) < 4 {
		return nil, fmt.Errorf("lake: exterior ring has %d positions, a closed ring needs at least 4", len(ring))
	}
	poly := make(geo.Polygon, 0, len(ring))
	for i, pos := range ring {
		if len(pos) < 2 {
			return nil, fmt.Errorf("lake: position %d has %d numbers, want [lon, lat]", i, len(pos))
		}
		lon, lat := pos[0], pos[1]
		if math.IsNaN(lat) || math.IsNaN(lon) || lat < -90 || lat > 90 || lon < -180 || lon > 180 {
			return nil, fmt.Errorf("lake: position %d [%g, %g] is not a valid [lon, lat]", i, lon, lat)
		}
		poly = append(poly, geo.Point{Lat: lat, Lon: lon})
	}
	if poly[0] != poly[len(poly)-1] {
		return nil, fmt.Errorf("lake: exterior ring is not closed (first %v, last %v)", poly[0], poly[len(poly)-1])
	}
	return poly, nil
}

// centroid is the planar area centroid (shoelace) of a closed ring.
func centroid(p geo.Polygon) geo.Point {
	var a, cx, cy float64
	for i := 0; i+1 < len(p); i++ {
		x0, y0, x1, y1 := p[i].Lon, p[i].Lat, p[i+1].Lon, p[i+1].Lat
		c := x0*y1 - x1*y0
		a += c
		cx += (x0 + x1) * c
		cy += (y0 + y1) * c
	}
	if a == 0 {
		return p[0]
	}
	return geo.Point{Lat: cy / (3 * a), Lon: cx / (3 * a)}
}

func bounds(p geo.Polygon) (sw, ne geo.Point) {
	sw, ne = p[0], p[0]
	for _, q := range p[1:] {
		sw.Lat, sw.Lon = math.Min(sw.Lat, q.Lat), math.Min(sw.Lon, q.Lon)
		ne.Lat, ne.Lon = math.Max(ne.Lat, q.Lat), math.Max(ne.Lon, q.Lon)
	}
	return sw, ne
}
