package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sailstream/sailstream/internal/testenv"
)

// mapObserved is what web/e2e/map.mjs saw in the browser.
type mapObserved struct {
	Markers []struct {
		Device string  `json:"device"`
		Lat    float64 `json:"lat"`
		Lon    float64 `json:"lon"`
	} `json:"markers"`
	Rows []struct {
		Device string `json:"device"`
		Speed  string `json:"speed"`
	} `json:"rows"`
	Track       *mapTrack `json:"track"`
	ZoomedTrack *mapTrack `json:"zoomed_track"`
	NextTrack   *mapTrack `json:"next_track"`
	Cleared     bool      `json:"cleared"`
	Note        string    `json:"note"`
	Errors      []string  `json:"console_errors"`
	Offsite     struct {
		Count int      `json:"count"`
		Hosts []string `json:"hosts"`
	} `json:"offsite_requests"`
}

type mapTrack struct {
	Device   string `json:"device"`
	Points   int    `json:"points"`
	History  *int   `json:"history"` // nil: the history did not load
	Vertices int    `json:"vertices"`
	Width    int    `json:"width"`  // px on screen
	Height   int    `json:"height"` // px on screen
}

// TestIntegrationMapInChromium opens the map of `sailstream up --pg` in a real
// headless Chromium (web/e2e/map.mjs, through playwright-core): six boat
// markers on the lake, six rows with speeds in the list, and clicking
// boat-2 draws its track, loaded from PostgreSQL through the track API and
// extended live, with no error in the browser console.
func TestIntegrationMapInChromium(t *testing.T) {
	pg := testenv.PostgresURL(t)
	chromium := testenv.ChromiumPath(t)
	if testing.Short() {
		t.Skip("builds the binary and drives a browser")
	}
	node := browserTools(t)
	t.Parallel()
	db := testenv.PostgresDatabase(t, pg)
	bin := buildBinary(t)
	httpAddr, mqttAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stop := startUp(ctx, t, bin, "--http-addr", httpAddr, "--mqtt-listen", mqttAddr, "--rate", "30", "--seed", "5",
		"--admin-addr", "", "--udf-dir", "", "--archive-dir", "", "--pg", db,
		"--cache-dir", filepath.Join(os.TempDir(), "sailstream-test-wasm-cache"))
	defer stop()
	base := "http://" + httpAddr

	// Wait until the database holds some of boat-2's track, so that the
	// browser has history to load when it clicks.
	const minPoints = 5
	stored := 0
	for deadline := time.Now().Add(40 * time.Second); stored < minPoints && time.Now().Before(deadline); {
		time.Sleep(300 * time.Millisecond)
		var body struct {
			Points []json.RawMessage `json:"points"`
		}
		if resp, err := http.Get(base + "/api/devices/boat-2/track"); err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
		}
		stored = len(body.Points)
	}
	if stored < minPoints {
		t.Fatalf("/api/devices/boat-2/track has %d points after 40s, want %d before opening the browser", stored, minPoints)
	}
	minLat, minLon, maxLat, maxLon := lakeBounds(t, base)

	obs := runMapScript(ctx, t, node, chromium, base+"/", minPoints, os.Getenv("SAILSTREAM_MAP_SCREENSHOT"))

	want := []string{"boat-1", "boat-2", "boat-3", "boat-4", "boat-5", "boat-6"}
	if len(obs.Markers) != len(want) {
		t.Errorf("%d boat markers on the map, want %d: %+v", len(obs.Markers), len(want), obs.Markers)
	}
	seen := map[string]bool{}
	for _, m := range obs.Markers {
		seen[m.Device] = true
		if m.Lat < minLat || m.Lat > maxLat || m.Lon < minLon || m.Lon > maxLon {
			t.Errorf("marker of %s at %.5f,%.5f is outside the lake's bounds %.5f..%.5f, %.5f..%.5f",
				m.Device, m.Lat, m.Lon, minLat, maxLat, minLon, maxLon)
		}
	}
	speed := regexp.MustCompile(`^\d+\.\d kn$`)
	if len(obs.Rows) != len(want) {
		t.Errorf("%d rows in the list, want %d: %+v", len(obs.Rows), len(want), obs.Rows)
	}
	for i, d := range want {
		if !seen[d] {
			t.Errorf("no marker for %s", d)
		}
		if i < len(obs.Rows) && (obs.Rows[i].Device != d || !speed.MatchString(obs.Rows[i].Speed)) {
			t.Errorf("row %d is %q with speed %q, want %s with a speed in knots", i, obs.Rows[i].Device, obs.Rows[i].Speed, d)
		}
	}

	switch tr := obs.Track; {
	case tr == nil:
		t.Error("no track drawn after clicking boat-2")
	case tr.Device != "boat-2":
		t.Errorf("track drawn for %s after clicking boat-2", tr.Device)
	case tr.History == nil || *tr.History < minPoints:
		t.Errorf("track of boat-2 loaded %v points from the history API, want at least %d (the API had %d); note %q", tr.History, minPoints, stored, obs.Note)
	case tr.Points < *tr.History || tr.Points < minPoints:
		t.Errorf("track of boat-2 has %d points (%d from history), want at least %d and all of its history", tr.Points, *tr.History, minPoints)
	case tr.Vertices < 2:
		t.Errorf("track of boat-2 has %d points but its drawn line has %d vertices", tr.Points, tr.Vertices)
	}
	if z := obs.ZoomedTrack; z == nil || max(z.Width, z.Height) < 10 || z.Vertices < 2 {
		t.Errorf("zoomed in on boat-2, its track is drawn as %+v, want a line at least 10 px long", z)
	} else if obs.Track != nil && (z.Points <= obs.Track.Points || z.Device != "boat-2") {
		t.Errorf("boat-2's track did not grow with live readings: %d points, then %d", obs.Track.Points, z.Points)
	}
	if !strings.Contains(obs.Note, "boat-2") || strings.Contains(obs.Note, "database") {
		t.Errorf("history note %q, want one about boat-2's track", obs.Note)
	}
	if obs.NextTrack == nil || obs.NextTrack.Device != "boat-3" {
		t.Errorf("after selecting boat-3 in the list the track is %+v, want boat-3's", obs.NextTrack)
	}
	if !obs.Cleared {
		t.Error("selecting boat-3 again did not clear its track and selection")
	}
	if len(obs.Errors) > 0 {
		t.Errorf("browser console errors: %q", obs.Errors)
	}
	if tr := obs.Track; tr != nil && tr.History != nil {
		t.Logf("map: %d markers, %d rows, boat-2 track %d points (%d from history, %d drawn vertices); %d off-site requests answered in the browser (%v)",
			len(obs.Markers), len(obs.Rows), tr.Points, *tr.History, tr.Vertices, obs.Offsite.Count, obs.Offsite.Hosts)
	}
}

// browserTools returns node, once it has checked that web/e2e can run: node
// on PATH and playwright-core installed under web/node_modules (npm ci). A
// missing one skips the test, or fails it when services are required.
func browserTools(t *testing.T) string {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		if os.Getenv(testenv.EnvRequire) == "1" {
			t.Fatalf(format, args...)
		}
		t.Skipf(format, args...)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is needed to drive the browser: %v", err)
	}
	if _, err := os.Stat(filepath.Join("..", "..", "web", "node_modules", "playwright-core", "package.json")); err != nil {
		missing("playwright-core is not installed in web/node_modules (run `cd web && npm ci`): %v", err)
	}
	return node
}

// startUp starts `sailstream up` with args and returns a function that stops
// it with SIGINT (logging its stderr when the test failed).
func startUp(ctx context.Context, t *testing.T, bin string, args ...string) (stop func()) {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, append([]string{"up"}, args...)...)
	cmd.Env = append(os.Environ(), "SAILSTREAM_LOG_LEVEL=warn")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("stderr of sailstream up:\n%s", stderr.String())
		}
	}
}

// runMapScript runs web/e2e/map.mjs against url and decodes the JSON line it
// prints. The screenshot goes to shot when set (to look at it), to the
// test's temporary directory otherwise; either way it must be a PNG.
func runMapScript(ctx context.Context, t *testing.T, node, chromium, url string, minPoints int, shot string) mapObserved {
	t.Helper()
	// The server is up, and the map is built into the binary (make build /
	// npm run build).
	resp, err := http.Get(url)
	for deadline := time.Now().Add(30 * time.Second); err != nil && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		resp, err = http.Get(url)
	}
	if err != nil {
		t.Fatalf("the map is not served after 30s: %v", err)
	}
	if resp.Body.Close(); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: build the map first (`make build`, or `cd web && npm run build`)", url, resp.Status)
	}
	if shot == "" {
		shot = filepath.Join(t.TempDir(), "map.png")
	}
	cmd := exec.CommandContext(ctx, node, filepath.Join("..", "..", "web", "e2e", "map.mjs"), url)
	cmd.Env = append(os.Environ(),
		testenv.EnvChromium+"="+chromium,
		"SAILSTREAM_MAP_SCREENSHOT="+shot,
		fmt.Sprintf("SAILSTREAM_MAP_MIN_POINTS=%d", minPoints),
		"SAILSTREAM_MAP_TIMEOUT_MS=30000",
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node web/e2e/map.mjs: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var obs mapObserved
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &obs); err != nil {
		t.Fatalf("map.mjs printed no JSON line (%v):\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	t.Logf("map.mjs: %s", lines[len(lines)-1])
	png, err := os.ReadFile(shot)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 10_000 {
		t.Errorf("screenshot %s: %d bytes, err %v; want a PNG of the map", shot, len(png), err)
	} else {
		t.Logf("screenshot of the map with boat-2 selected: %s", shot)
	}
	return obs
}

// lakeBounds returns the bounding box of the lake outline the server serves.
func lakeBounds(t *testing.T, base string) (minLat, minLon, maxLat, maxLon float64) {
	t.Helper()
	var outline any
	getJSON(t, base+"/lake.geojson", &outline)
	minLat, minLon, maxLat, maxLon = math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for _, c := range v {
				walk(c)
			}
		case []any:
			// A GeoJSON position is [lon, lat].
			if len(v) >= 2 {
				lon, ok1 := v[0].(float64)
				lat, ok2 := v[1].(float64)
				if ok1 && ok2 {
					minLat, maxLat = math.Min(minLat, lat), math.Max(maxLat, lat)
					minLon, maxLon = math.Min(minLon, lon), math.Max(maxLon, lon)
					return
				}
			}
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(outline)
	if math.IsInf(minLat, 0) {
		t.Fatalf("%s/lake.geojson has no positions", base)
	}
	return minLat, minLon, maxLat, maxLon
}

// TestIntegrationMapInChromiumWithoutDatabase opens the map of `sailstream
// up` without --pg: the boats are there, and selecting one says that history
// needs a database instead of failing; the live line is still drawn.
func TestIntegrationMapInChromiumWithoutDatabase(t *testing.T) {
	chromium := testenv.ChromiumPath(t)
	if testing.Short() {
		t.Skip("builds the binary and drives a browser")
	}
	node := browserTools(t)
	t.Parallel()
	bin := buildBinary(t)
	httpAddr, mqttAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stop := startUp(ctx, t, bin, "--http-addr", httpAddr, "--mqtt-listen", mqttAddr, "--rate", "30", "--seed", "5",
		"--admin-addr", "", "--udf-dir", "", "--archive-dir", "",
		"--cache-dir", filepath.Join(os.TempDir(), "sailstream-test-wasm-cache"))
	defer stop()

	obs := runMapScript(ctx, t, node, chromium, "http://"+httpAddr+"/", 3, "")
	if len(obs.Markers) != 6 || len(obs.Rows) != 6 {
		t.Errorf("%d markers and %d rows, want 6 and 6", len(obs.Markers), len(obs.Rows))
	}
	if tr := obs.Track; tr == nil || tr.Device != "boat-2" || tr.History != nil || tr.Points < 3 {
		t.Errorf("boat-2's track without a database is %+v, want its live points only", tr)
	}
	if !strings.Contains(obs.Note, "history needs a database") || !strings.Contains(obs.Note, "--pg") {
		t.Errorf("note %q, want the hint that history needs a database (--pg)", obs.Note)
	}
	// Chromium itself logs the 501 answer; nothing else may fail.
	for _, e := range obs.Errors {
		if !strings.Contains(e, "501") {
			t.Errorf("browser console error: %q", e)
		}
	}
}
