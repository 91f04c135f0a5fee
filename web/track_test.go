package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sailstream/sailstream/internal/testenv"
	"github.com/sailstream/sailstream/sinks/timescale"
)

// trackServer serves the REST API (never Run: no Kafka needed) with
// tracks from src.
func trackServer(t *testing.T, src TrackSource) string {
	t.Helper()
	s, err := New(Config{KafkaBrokers: []string{"127.0.0.1:1"}, Tracks: src})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		ts.Close()
		_ = s.hub.Close()
	})
	return ts.URL
}

// getTrack GETs path and decodes a Track (status 200) or an error body.
func getTrack(t *testing.T, base, path string) (int, Track, string) {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("GET %s: Content-Type %q, want JSON", path, ct)
	}
	var tr Track
	var e apiError
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &tr); err != nil {
			t.Fatalf("GET %s: %v in %s", path, err, body)
		}
	} else if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
		t.Errorf("GET %s: status %d with no JSON error: %s", path, resp.StatusCode, body)
	}
	return resp.StatusCode, tr, e.Error
}

func trackPath(device string, from, to time.Time) string {
	return fmt.Sprintf("/api/devices/%s/track?from=%s&to=%s", url.PathEscape(device),
		url.QueryEscape(from.Format(time.RFC3339Nano)), url.QueryEscape(to.Format(time.RFC3339Nano)))
}

// TestIntegrationTrackAPI serves tracks from a real PostgreSQL through the
// Timescale sink's store.
func TestIntegrationTrackAPI(t *testing.T) {
	t.Parallel()
	dbURL := testenv.PostgresDatabase(t, testenv.PostgresURL(t))
	ctx := context.Background()
	if _, err := timescale.Migrate(ctx, dbURL, nil); err != nil {
		t.Fatal(err)
	}
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	base := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	now := time.Now().UTC().Truncate(time.Microsecond)
	// Two boats, a reading a second for two minutes, inserted newest first;
	// a third boat with one reading 10 minutes ago and one 2 hours ago.
	for seq := 120; seq >= 1; seq-- {
		for _, dev := range []string{"boat-a", "boat-b"} {
			if _, err := c.Exec(ctx, `INSERT INTO readings (device_id, seq, event_time, lat, lon, speed_kn, udf) VALUES ($1, $2, $3, $4, $5, $6, 'motion')`,
				dev, seq, base.Add(time.Duration(seq)*time.Second), 52.4+float64(seq)*1e-5, 21.0, float64(seq%10)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for seq, at := range []time.Time{now.Add(-2 * time.Hour), now.Add(-10 * time.Minute)} {
		if _, err := c.Exec(ctx, `INSERT INTO readings (device_id, seq, event_time, lat, lon) VALUES ('boat-c', $1, $2, 52.4, 21.0)`, seq+1, at); err != nil {
			t.Fatal(err)
		}
	}
	store, err := timescale.OpenStore(dbURL, timescale.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	srv := trackServer(t, store)

	from, to := base.Add(30*time.Second), base.Add(90*time.Second)
	status, tr, msg := getTrack(t, srv, trackPath("boat-a", from, to))
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, msg)
	}
	if tr.Device != "boat-a" || !tr.From.Equal(from) || !tr.To.Equal(to) || len(tr.Points) != 60 {
		t.Fatalf("track %s %s..%s with %d points; want boat-a %s..%s with 60", tr.Device, tr.From, tr.To, len(tr.Points), from, to)
	}
	for i, p := range tr.Points {
		seq := uint64(30 + i)
		if p.Device != "boat-a" || p.Seq != seq || !p.Time.Equal(base.Add(time.Duration(seq)*time.Second)) ||
			p.Lat != 52.4+float64(seq)*1e-5 || p.SpeedKn != float64(seq%10) || p.UDF != "motion" {
			t.Fatalf("point %d = %+v, want boat-a seq %d in time order", i, p, seq)
		}
	}

	// Without from and to: the last hour.
	status, tr, msg = getTrack(t, srv, "/api/devices/boat-c/track")
	if status != http.StatusOK || len(tr.Points) != 1 || !tr.Points[0].Time.Equal(now.Add(-10*time.Minute)) {
		t.Errorf("default range: status %d (%s), points %+v; want only the reading of 10 minutes ago", status, msg, tr.Points)
	}
	if d := tr.To.Sub(tr.From); d != DefaultTrackWindow {
		t.Errorf("default range is %s, want %s", d, DefaultTrackWindow)
	}
	// A device with no readings: an empty array, not null.
	status, tr, _ = getTrack(t, srv, trackPath("nobody", from, to))
	if status != http.StatusOK || tr.Points == nil || len(tr.Points) != 0 {
		t.Errorf("unknown device: status %d, points %v; want 200 and []", status, tr.Points)
	}

	for _, bad := range []string{
		trackPath("boat-a", to, from),                                   // from after to
		trackPath("boat-a", from, from),                                 // empty range
		trackPath("boat-a", from, from.Add(MaxTrackWindow+time.Second)), // too long
		"/api/devices/boat-a/track?from=yesterday",
		"/api/devices/boat-a/track?to=2026-13-01T00:00:00Z",
		trackPath("bad device!", from, to),
	} {
		if status, _, msg := getTrack(t, srv, bad); status != http.StatusBadRequest {
			t.Errorf("GET %s: status %d (%s), want 400", bad, status, msg)
		}
	}
}

// TestTrackAPIWithoutDatabase: a server without a track source says so.
func TestTrackAPIWithoutDatabase(t *testing.T) {
	t.Parallel()
	status, _, msg := getTrack(t, trackServer(t, nil), "/api/devices/boat-a/track")
	if status != http.StatusNotImplemented || !strings.Contains(msg, "database") {
		t.Errorf("status %d, error %q; want 501 naming the missing database", status, msg)
	}
}

// TestTrackAPIDatabaseDown: a store whose database does not answer gives
// a 503 with the reason, not a hang or a 500.
func TestTrackAPIDatabaseDown(t *testing.T) {
	t.Parallel()
	store, err := timescale.OpenStore("postgres://postgres@127.0.0.1:1/none?connect_timeout=2", timescale.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	status, _, msg := getTrack(t, trackServer(t, store), "/api/devices/boat-a/track")
	if status != http.StatusServiceUnavailable || !strings.Contains(msg, "unavailable") {
		t.Errorf("status %d, error %q; want 503", status, msg)
	}
}

func TestTrackRange(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.FixedZone("CEST", 2*3600))
	from, to, err := trackRange("", "", now)
	if err != nil || !to.Equal(now) || to.Location() != time.UTC || to.Sub(from) != DefaultTrackWindow {
		t.Errorf("defaults: %s..%s, %v", from, to, err)
	}
	from, to, err = trackRange("2026-06-01T10:00:00+02:00", "", now)
	if err != nil || !from.Equal(time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)) || !to.Equal(now) {
		t.Errorf("from only: %s..%s, %v", from, to, err)
	}
	from, to, err = trackRange("", "2026-06-01T09:30:00.5Z", now)
	if err != nil || !to.Equal(time.Date(2026, 6, 1, 9, 30, 0, 5e8, time.UTC)) || to.Sub(from) != DefaultTrackWindow {
		t.Errorf("to only: %s..%s, %v", from, to, err)
	}
}
