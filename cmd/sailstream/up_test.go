package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"

	"github.com/sailstream/sailstream/internal/testenv"
	"github.com/sailstream/sailstream/sinks/blob"
	"github.com/sailstream/sailstream/telemetry"
)

// buildBinary builds the sailstream binary once for the tests of this file.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sailstream")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestUp runs `sailstream up` as a user would (flags through SAILSTREAM_*
// environment variables for some of them), and checks that all six boats
// show up on /api/devices and /ws and that the metrics rise.
func TestUp(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	t.Parallel()
	bin := buildBinary(t)
	httpAddr, mqttAddr, adminAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	udfDir := filepath.Join(t.TempDir(), "udfs")
	archiveDir := filepath.Join(t.TempDir(), "archive")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	cmd := exec.CommandContext(ctx, bin, "up", "--http-addr", httpAddr, "--rate", "30", "--seed", "7",
		"--admin-addr", adminAddr, "--udf-dir", udfDir, "--archive-dir", archiveDir, "--cache-dir", filepath.Join(os.TempDir(), "sailstream-test-wasm-cache"))
	cmd.Env = append(os.Environ(), "SAILSTREAM_MQTT_LISTEN="+mqttAddr, "SAILSTREAM_LOG_LEVEL=warn")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("stderr of sailstream up:\n%s", stderr.String())
		}
	}()

	// The banner says where the map is; it must be the address we asked for.
	banner := make(chan string, 1)
	go func() {
		var all strings.Builder
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "Map") {
				banner <- all.String()
			}
		}
	}()
	select {
	case b := <-banner:
		_, port, _ := net.SplitHostPort(httpAddr)
		if !strings.Contains(b, "http://localhost:"+port+"/") {
			t.Errorf("banner does not name the map address:\n%s", b)
		}
		_, mport, _ := net.SplitHostPort(mqttAddr)
		if !strings.Contains(b, "tcp://127.0.0.1:"+mport) {
			t.Errorf("banner does not name the MQTT address (from SAILSTREAM_MQTT_LISTEN):\n%s", b)
		}
	case <-ctx.Done():
		t.Fatal("sailstream up printed no banner")
	}

	base := "http://" + httpAddr
	before := metric(t, base, "sailstream_core_readings_enriched_total")

	// A WebSocket client sees all six boats.
	ws, _, err := gws.DefaultDialer.DialContext(ctx, "ws://"+httpAddr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	wsDevices := map[string]bool{}
	_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for len(wsDevices) < 6 {
		var e telemetry.Enriched
		if err := ws.ReadJSON(&e); err != nil {
			t.Fatalf("websocket after %v devices: %v", wsDevices, err)
		}
		wsDevices[e.Device] = true
	}

	// /api/devices lists six devices with positions on the lake and speeds.
	var devices []telemetry.Enriched
	deadline := time.Now().Add(30 * time.Second)
	for {
		devices = nil
		getJSON(t, base+"/api/devices", &devices)
		if len(devices) == 6 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(devices) != 6 {
		t.Fatalf("/api/devices lists %d devices, want 6", len(devices))
	}
	for i, d := range devices {
		if want := fmt.Sprintf("boat-%d", i+1); d.Device != want {
			t.Errorf("device %d is %q, want %q", i, d.Device, want)
		}
		if d.Lat < 52.40 || d.Lat > 52.55 || d.Lon < 20.90 || d.Lon > 21.15 {
			t.Errorf("%s is at %.4f,%.4f, not on Zegrze lake", d.Device, d.Lat, d.Lon)
		}
	}

	// The counters rise.
	time.Sleep(time.Second)
	if after := metric(t, base, "sailstream_core_readings_enriched_total"); after <= before {
		t.Errorf("sailstream_core_readings_enriched_total did not rise: %v then %v", before, after)
	}
	for _, name := range []string{"sailstream_bridge_records_produced_total", "sailstream_web_readings_received_total", "sailstream_core_readings_in_total"} {
		if v := metric(t, base, name); v <= 0 {
			t.Errorf("%s = %v, want > 0", name, v)
		}
	}

	// Dropping a .wasm with a manifest into the watched directory changes
	// the processing of the routed device live, and only of that device.
	build := t.TempDir()
	wasm := filepath.Join(build, "geofence.wasm")
	if out, err := exec.Command(bin, "udf", "build", filepath.Join("..", "..", "udf", "examples", "geofence"), "-o", wasm).CombinedOutput(); err != nil {
		t.Fatalf("udf build: %v\n%s", err, out)
	}
	manifest := `{"name": "geofence", "version": "2.0.0", "routes": ["boat-1"]}`
	if err := os.WriteFile(filepath.Join(udfDir, "geofence.json"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(wasm, filepath.Join(udfDir, "geofence.wasm")); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(60 * time.Second)
	for {
		devices = nil
		getJSON(t, base+"/api/devices", &devices)
		if len(devices) == 6 && devices[0].UDF == "geofence" || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if d := devices[0]; d.UDF != "geofence" || d.UDFVersion != "2.0.0" {
		t.Fatalf("boat-1 is processed by %s %s after the deploy, want geofence 2.0.0", d.UDF, d.UDFVersion)
	} else if v, ok := d.Fields["outside_lake"]; !ok || v != 0 {
		t.Errorf("boat-1 after the deploy: outside_lake = %v (present %v), want 0 (boats stay on the lake)", v, ok)
	}
	for _, d := range devices[1:] {
		if d.UDF != "speed" {
			t.Errorf("%s is processed by %s, want speed (only boat-1 is routed to geofence)", d.Device, d.UDF)
		}
	}

	// The raw readings are archived in the local directory, in the Azure
	// Blob layout, and the archive replays.
	deadline = time.Now().Add(30 * time.Second)
	var objects []string
	for len(objects) == 0 && time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
		objects, _ = filepath.Glob(filepath.Join(archiveDir, "raw", "*", "*", "*", "*", "telemetry.raw-*-*-*.ndjson.gz"))
	}
	if len(objects) == 0 {
		t.Errorf("no archive object under %s after 30s", archiveDir)
	} else {
		store, err := blob.NewDirStore(archiveDir)
		if err != nil {
			t.Fatal(err)
		}
		boats := map[string]int{}
		_, err = blob.Read(ctx, blob.ReadConfig{Store: store, From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Hour)},
			func(r blob.Record) error {
				rd, err := telemetry.Decode(string(r.Key), r.Value, time.Now())
				if err != nil || rd.Device != string(r.Key) {
					return fmt.Errorf("archived %s/%d@%d: %q is not a reading of %q (%v)", r.Topic, r.Partition, r.Offset, r.Value, r.Key, err)
				}
				boats[rd.Device]++
				return nil
			}, nil)
		if err != nil || len(boats) == 0 {
			t.Errorf("reading the archive: %v; readings per boat %v", err, boats)
		}
	}

	// Ctrl-C stops it cleanly.
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	stopped = true
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("sailstream up exited with %v after SIGINT", err)
		}
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Error("sailstream up did not stop within 20s of SIGINT")
	}
}

// TestHelpAndEnv checks every subcommand has --help and that flags are
// documented with their environment variable.
func TestHelpAndEnv(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	t.Parallel()
	bin := buildBinary(t)
	for _, sub := range []string{"up", "edge", "bridge", "core", "web", "sink timescale", "sink blob", "replay", "version"} {
		out, err := exec.Command(bin, append(strings.Fields(sub), "--help")...).CombinedOutput()
		if err != nil {
			t.Errorf("%s --help: %v\n%s", sub, err, out)
			continue
		}
		if sub != "version" && !strings.Contains(string(out), "($SAILSTREAM_") {
			t.Errorf("%s --help does not show the SAILSTREAM_* variables:\n%s", sub, out)
		}
	}
	// A bad flag value from the environment is reported, not ignored.
	cmd := exec.Command(bin, "core")
	cmd.Env = append(os.Environ(), "SAILSTREAM_MAX_OUT_OF_ORDER=soon")
	out, err := cmd.CombinedOutput()
	if err == nil || !regexp.MustCompile(`(?i)max-out-of-order`).Match(out) {
		t.Errorf("core with SAILSTREAM_MAX_OUT_OF_ORDER=soon: err %v, output:\n%s", err, out)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// metric returns the sum of all series of a metric on /metrics.
func metric(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// TestIntegrationUpWithPG runs `sailstream up --pg` against the test bed's
// PostgreSQL: the boats' enriched readings land in the database and each
// boat's track comes back from /api/devices/{id}/track in time order.
func TestIntegrationUpWithPG(t *testing.T) {
	pg := testenv.PostgresURL(t)
	if testing.Short() {
		t.Skip("builds the binary")
	}
	t.Parallel()
	db := testenv.PostgresDatabase(t, pg)
	bin := buildBinary(t)
	httpAddr, mqttAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stop := startUp(ctx, t, bin, "--http-addr", httpAddr, "--mqtt-listen", mqttAddr, "--rate", "30", "--seed", "3",
		"--admin-addr", "", "--udf-dir", "", "--archive-dir", "", "--pg", db, "--cache-dir", filepath.Join(os.TempDir(), "sailstream-test-wasm-cache"))
	defer stop()

	base := "http://" + httpAddr
	var track []telemetry.Enriched
	deadline := time.Now().Add(60 * time.Second)
	for len(track) < 10 && time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		resp, err := http.Get(base + "/api/devices/boat-2/track")
		if err != nil {
			continue
		}
		var body struct {
			Device string               `json:"device"`
			Points []telemetry.Enriched `json:"points"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		track = body.Points
	}
	if len(track) < 10 {
		t.Fatalf("/api/devices/boat-2/track has %d points after 60s, want at least 10", len(track))
	}
	for i, p := range track {
		if p.Device != "boat-2" || p.UDF == "" {
			t.Errorf("point %d: %+v, want boat-2 with its UDF", i, p)
		}
		if i > 0 && !p.Time.After(track[i-1].Time) {
			t.Errorf("point %d at %v is not after point %d at %v", i, p.Time, i-1, track[i-1].Time)
		}
	}
	if v := metric(t, base, "sailstream_timescale_rows_written_total"); v <= 0 {
		t.Errorf("sailstream_timescale_rows_written_total = %v, want > 0", v)
	}
}
