package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	gws "github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sailstream/sailstream/lake"
	"github.com/sailstream/sailstream/telemetry"
)

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func reading(device string, seq uint64) telemetry.Enriched {
	return telemetry.Enriched{
		Device:    device,
		Seq:       seq,
		Time:      t0.Add(time.Duration(seq) * time.Second),
		Lat:       52.46 + float64(seq)*1e-5,
		Lon:       21.02,
		DistanceM: 2.5,
		SpeedMS:   2.5,
		SpeedKn:   2.5 * 3600 / 1852,
		CourseDeg: 45,
		UDF:       "motion",
	}
}

// newTestServer builds a server (never Run: no Kafka needed) behind an
// httptest server; readings are fed through its hub.
func newTestServer(t *testing.T, reg *prometheus.Registry) (*Server, string) {
	t.Helper()
	cfg := Config{KafkaBrokers: []string{"127.0.0.1:1"}}
	if reg != nil {
		cfg.Registerer, cfg.Gatherer = reg, reg
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		_ = s.hub.Close()
		ts.Close()
	})
	return s, ts.URL
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp, string(body)
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"defaults", Config{KafkaBrokers: []string{"k:9092"}}, ""},
		{"free port", Config{Addr: "127.0.0.1:0", KafkaBrokers: []string{"k:9092"}}, ""},
		{"no brokers", Config{}, "KafkaBrokers is empty"},
		{"empty broker", Config{KafkaBrokers: []string{""}}, "empty entry"},
		{"bad addr", Config{Addr: "8080", KafkaBrokers: []string{"k:9092"}}, "Addr"},
		{"negative tail", Config{KafkaBrokers: []string{"k:9092"}, TailRecords: -1}, "TailRecords"},
		{"negative queue", Config{KafkaBrokers: []string{"k:9092"}, WebSocketQueue: -1}, "WebSocketQueue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Validate() = %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Validate() = %v, want an error about %q", err, tt.wantErr)
			}
			if _, err := New(tt.cfg); (err == nil) != (tt.wantErr == "") {
				t.Fatalf("New() = %v", err)
			}
		})
	}
}

func TestDevicesAPI(t *testing.T) {
	s, url := newTestServer(t, nil)

	resp, body := get(t, url+"/api/devices")
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(body) != "[]" {
		t.Fatalf("empty fleet: %d %q, want 200 []", resp.StatusCode, body)
	}

	for _, e := range []telemetry.Enriched{reading("boat-2", 1), reading("boat-1", 1), reading("boat-1", 2)} {
		if err := s.Hub().Publish(e); err != nil {
			t.Fatal(err)
		}
	}
	resp, body = get(t, url+"/api/devices")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	var got []telemetry.Enriched
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
	if len(got) != 2 || got[0].Device != "boat-1" || got[0].Seq != 2 || got[1].Device != "boat-2" {
		t.Fatalf("devices = %+v, want boat-1/2 then boat-2/1", got)
	}
	if want := reading("boat-1", 2); !got[0].Time.Equal(want.Time) || got[0].SpeedKn != want.SpeedKn || got[0].CourseDeg != 45 {
		t.Errorf("boat-1 = %+v, want %+v", got[0], want)
	}
	// The wire names the map app relies on.
	var raw []map[string]any
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"device", "seq", "time", "lat", "lon", "speed_ms", "speed_kn", "course_deg", "distance_m"} {
		if _, ok := raw[0][key]; !ok {
			t.Errorf("/api/devices item lacks %q: %v", key, raw[0])
		}
	}
}

func TestWebSocketSnapshotThenStream(t *testing.T) {
	s, url := newTestServer(t, nil)
	for _, e := range []telemetry.Enriched{reading("boat-2", 1), reading("boat-1", 1)} {
		if err := s.Hub().Publish(e); err != nil {
			t.Fatal(err)
		}
	}
	c, resp, err := gws.DefaultDialer.Dial("ws"+strings.TrimPrefix(url, "http")+"/ws", nil)
	if err != nil {
		t.Fatalf("dial /ws: %v", err)
	}
	_ = resp.Body.Close()
	defer c.Close()

	read := func() telemetry.Enriched {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var e telemetry.Enriched
		if err := c.ReadJSON(&e); err != nil {
			t.Fatalf("read /ws: %v", err)
		}
		return e
	}
	for _, want := range []string{"boat-1", "boat-2"} {
		if got := read(); got.Device != want {
			t.Fatalf("snapshot: got %s, want %s", got.Device, want)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Hub().Clients() != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.Hub().Publish(reading("boat-3", 7)); err != nil {
		t.Fatal(err)
	}
	if got := read(); got.Device != "boat-3" || got.Seq != 7 {
		t.Fatalf("stream: got %s/%d, want boat-3/7", got.Device, got.Seq)
	}
}

func TestLakeGeoJSON(t *testing.T) {
	_, url := newTestServer(t, nil)
	resp, body := get(t, url+"/lake.geojson")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/geo+json" {
		t.Errorf("Content-Type %q, want application/geo+json", ct)
	}
	if body != string(lake.GeoJSON()) {
		t.Error("body differs from lake.GeoJSON()")
	}
	var fc struct {
		Type     string `json:"type"`
		Features []struct {
			Geometry struct {
				Type string `json:"type"`
			} `json:"geometry"`
		} `json:"features"`
	}
	if err := json.Unmarshal([]byte(body), &fc); err != nil {
		t.Fatal(err)
	}
	if fc.Type != "FeatureCollection" || len(fc.Features) == 0 || fc.Features[0].Geometry.Type != "Polygon" {
		t.Errorf("not a FeatureCollection with a Polygon: %+v", fc)
	}
}

func TestMetricsAndHealth(t *testing.T) {
	tests := []struct {
		name string
		reg  *prometheus.Registry
	}{
		{"private registry beside the default gatherer", nil},
		{"given registry", prometheus.NewRegistry()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, url := newTestServer(t, tt.reg)
			if err := s.Hub().Publish(reading("boat-1", 1)); err != nil {
				t.Fatal(err)
			}
			resp, body := get(t, url+"/metrics")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			for _, name := range []string{
				"sailstream_web_readings_received_total 0",
				"sailstream_web_websocket_clients 0",
				"sailstream_web_websocket_messages_sent_total 0",
				"sailstream_web_websocket_slow_consumers_total 0",
			} {
				if !strings.Contains(body, name) {
					t.Errorf("/metrics lacks %q", name)
				}
			}
			resp, body = get(t, url+"/healthz")
			if resp.StatusCode != http.StatusOK || strings.TrimSpace(body) != "ok" {
				t.Errorf("/healthz: %d %q", resp.StatusCode, body)
			}
		})
	}
}

func TestAssets(t *testing.T) {
	built := fstest.MapFS{
		"index.html": {Data: []byte(`<!doctype html><script type="module" src="app.js"></script>`)},
		"app.js":     {Data: []byte(`console.log("map")`)},
		"app.css":    {Data: []byte(`body{}`)},
	}
	tests := []struct {
		name     string
		fsys     fs.FS
		path     string
		status   int
		contains string
		ctype    string
	}{
		{"not built: /", fstest.MapFS{".gitkeep": {}}, "/", http.StatusServiceUnavailable, "run `make web`", "text/plain"},
		{"not built: app.js", fstest.MapFS{".gitkeep": {}}, "/app.js", http.StatusServiceUnavailable, "map assets not built", "text/plain"},
		{"built: /", built, "/", http.StatusOK, `src="app.js"`, "text/html"},
		{"built: app.js", built, "/app.js", http.StatusOK, "console.log", "text/javascript"},
		{"built: app.css", built, "/app.css", http.StatusOK, "body{}", "text/css"},
		{"built: missing", built, "/nope.js", http.StatusNotFound, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			assets(tt.fsys).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tt.status, rec.Body)
			}
			if !strings.Contains(rec.Body.String(), tt.contains) {
				t.Errorf("body %q lacks %q", rec.Body, tt.contains)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, tt.ctype) {
				t.Errorf("Content-Type %q, want %s", ct, tt.ctype)
			}
		})
	}
}

// The route at / serves whatever was embedded: the app after `make web`,
// the 503 before. Either way it must be one of the two.
func TestRootServesEmbeddedAppOrExplains(t *testing.T) {
	_, url := newTestServer(t, nil)
	resp, body := get(t, url+"/")
	_, err := fs.Stat(dist, "dist/index.html")
	switch {
	case err == nil:
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "app.js") {
			t.Fatalf("built app: / answered %d %q", resp.StatusCode, body)
		}
		resp, _ = get(t, url+"/app.js")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/app.js: %d", resp.StatusCode)
		}
	case errors.Is(err, fs.ErrNotExist):
		if resp.StatusCode != http.StatusServiceUnavailable || body != AssetsMissing {
			t.Fatalf("unbuilt app: / answered %d %q", resp.StatusCode, body)
		}
	default:
		t.Fatal(err)
	}
}

func TestRunTwiceAndBadAddr(t *testing.T) {
	s, err := New(Config{Addr: "127.0.0.1:-1", KafkaBrokers: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Run(ctx); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("Run on a bad port: %v", err)
	}
	if err := s.Run(ctx); err == nil {
		t.Fatal("second Run: no error")
	}
	if s.Addr() != "" {
		t.Errorf("Addr() = %q before listening", s.Addr())
	}
}

func ExampleServer() {
	s, err := New(Config{Addr: "127.0.0.1:0", KafkaBrokers: []string{"127.0.0.1:1"}}) // a broker that is down: the server still serves
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-s.Ready()
	fmt.Println(strings.HasPrefix(s.Addr(), "127.0.0.1:"))
	cancel()
	fmt.Println(<-done)
	// Output:
	// true
	// <nil>
}
