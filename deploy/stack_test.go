package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/internal/testenv"
	"github.com/sailstream/sailstream/sinks/blob"
	"github.com/sailstream/sailstream/telemetry"
)

// The compose stack without Docker: the sinks and the web server run as
// the real binary with their compose.yaml environment, the names of the
// compose network swapped for the test bed's services.

// freeAddr returns a 127.0.0.1 address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	return "127.0.0.1:" + closedPort(t)
}

// runService starts `sailstream <sub>` of compose service name with its
// compose environment passed through swap (compose host:port → the test
// bed's) and then override (what keeps this test apart from others: topics,
// groups, loopback listen addresses). It is stopped with SIGTERM when the
// test ends; its log is printed if the test failed.
func runService(t *testing.T, bin string, c composeFile, name string, swap *strings.Replacer, override map[string]string) {
	t.Helper()
	s := c.Services[name]
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range s.Environment {
		if _, ok := override[k]; !ok {
			env = append(env, k+"="+swap.Replace(v))
		}
	}
	for k, v := range override {
		env = append(env, k+"="+v)
	}
	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, s.Command...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("log of %s (sailstream %s):\n%s", name, subcommand(s), b)
		}
	})
}

// eventually calls check until it returns nil, or fails the test with its
// last error after a generous deadline (a bound on a hang, not a speed
// requirement).
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestIntegrationComposeKeepsEveryReading runs sink-timescale, sink-blob
// and web as compose.yaml configures them, against a PostgreSQL set up as
// the timescaledb image sets itself up (its POSTGRES_USER, POSTGRES_PASSWORD
// and POSTGRES_DB), the test bed's Azurite with the connection string of
// compose.yaml and the test bed's Kafka. Every enriched reading produced
// lands in the readings table and is served by web's track API; every raw
// record is archived in Azurite; both sinks serve /metrics.
func TestIntegrationComposeKeepsEveryReading(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	azConn := testenv.AzuriteConnectionString(t)
	bin := sailstreamBinary(t)
	c := loadCompose(t)
	ctx := context.Background()

	// The database as the timescaledb image creates it on first start.
	pg := testenv.NewPostgres(t, testenv.PostgresOptions{})
	dbEnv := c.Services["timescaledb"].Environment
	admin, err := pgx.Connect(ctx, pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	user := pgx.Identifier{dbEnv["POSTGRES_USER"]}.Sanitize()
	for _, sql := range []string{
		fmt.Sprintf("CREATE ROLE %s LOGIN SUPERUSER PASSWORD '%s'", user, strings.ReplaceAll(dbEnv["POSTGRES_PASSWORD"], "'", "''")),
		fmt.Sprintf("CREATE DATABASE %s OWNER %s", pgx.Identifier{dbEnv["POSTGRES_DB"]}.Sanitize(), user),
	} {
		if _, err := admin.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	admin.Close(ctx)

	swap := strings.NewReplacer(
		"kafka:9092", strings.Join(brokers, ","),
		"timescaledb:5432", pg.Addr(),
		"azurite:10000", blobEndpointAddr(t, azConn),
	)
	// Topics, groups and the container of this test only.
	enriched, raw := testenv.Unique("compose-enriched-"), testenv.Unique("compose-raw-")
	container := testenv.Unique("compose-")
	adm := kadm.NewClient(mustClient(t, kgo.SeedBrokers(brokers...)))
	if _, err := adm.CreateTopics(ctx, 6, 1, nil, enriched, raw); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = adm.DeleteTopics(context.Background(), enriched, raw) })

	tsMetrics, blobMetrics, webAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	runService(t, bin, c, "sink-timescale", swap, map[string]string{
		"SAILSTREAM_ENRICHED_TOPIC": enriched,
		"SAILSTREAM_GROUP":          testenv.Unique("compose-timescale-"),
		"SAILSTREAM_METRICS_ADDR":   tsMetrics,
	})
	runService(t, bin, c, "sink-blob", swap, map[string]string{
		"SAILSTREAM_RAW_TOPIC":     raw,
		"SAILSTREAM_CONTAINER":     container,
		"SAILSTREAM_GROUP":         testenv.Unique("compose-blob-"),
		"SAILSTREAM_METRICS_ADDR":  blobMetrics,
		"SAILSTREAM_BATCH_TIMEOUT": "1s", // compose keeps the 30s default
	})
	runService(t, bin, c, "web", swap, map[string]string{
		"SAILSTREAM_ENRICHED_TOPIC": enriched,
		"SAILSTREAM_HTTP_ADDR":      webAddr,
	})

	// Readings of three boats, one a second, ending a minute ago (inside
	// the track API's default window).
	const n = 60
	start := time.Now().UTC().Add(-time.Minute - n*time.Second).Truncate(time.Second)
	pr := mustClient(t, kgo.SeedBrokers(brokers...))
	var recs []*kgo.Record
	for i := range n {
		r := telemetry.Reading{Device: fmt.Sprintf("boat-%d", i%3), Seq: uint64(i/3 + 1),
			Time: start.Add(time.Duration(i) * time.Second), Lat: 52.43 + float64(i)*1e-5, Lon: 21.03}
		e := telemetry.Enriched{Device: r.Device, Seq: r.Seq, Time: r.Time, Lat: r.Lat, Lon: r.Lon,
			ReceivedAt: r.Time, ProcessedAt: r.Time}
		rv, _ := json.Marshal(r)
		ev, _ := json.Marshal(e)
		recs = append(recs,
			&kgo.Record{Topic: raw, Key: []byte(r.Device), Value: rv},
			&kgo.Record{Topic: enriched, Key: []byte(e.Device), Value: ev})
	}
	if err := pr.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// sink-timescale wrote every reading where compose's SAILSTREAM_PG
	// points, as compose's user.
	pgURL := swap.Replace(c.Services["sink-timescale"].Environment["SAILSTREAM_PG"])
	eventually(t, "readings in TimescaleDB", func() error {
		conn, err := pgx.Connect(ctx, pgURL)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		var got int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM readings").Scan(&got); err != nil {
			return err
		}
		if got != n {
			return fmt.Errorf("%d rows, want %d", got, n)
		}
		return nil
	})

	// web serves them from the same database.
	eventually(t, "track of boat-1 from web", func() error {
		q := url.Values{"from": {start.Add(-time.Second).Format(time.RFC3339)}, "to": {start.Add(n * time.Second).Format(time.RFC3339)}}
		resp, err := http.Get("http://" + webAddr + "/api/devices/boat-1/track?" + q.Encode())
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", resp.Status, body)
		}
		var tr struct {
			Points []telemetry.Enriched `json:"points"`
		}
		if err := json.Unmarshal(body, &tr); err != nil {
			return err
		}
		if len(tr.Points) != n/3 {
			return fmt.Errorf("%d points, want %d", len(tr.Points), n/3)
		}
		for _, p := range tr.Points {
			if p.Device != "boat-1" {
				return fmt.Errorf("a point of %q in the track of boat-1", p.Device)
			}
		}
		return nil
	})

	// sink-blob archived every raw record, byte for byte, in Azurite
	// through compose's connection string.
	store, err := blob.NewAzureStore(blob.AzureConfig{
		ConnectionString: swap.Replace(c.Services["sink-blob"].Environment["SAILSTREAM_AZURE_CONNECTION_STRING"]),
		Container:        container,
	})
	if err != nil {
		t.Fatal(err)
	}
	wantRaw := map[string]bool{}
	for _, r := range recs {
		if r.Topic == raw {
			wantRaw[string(r.Key)+" "+string(r.Value)] = true
		}
	}
	eventually(t, "raw records in Azurite", func() error {
		names, err := store.List(ctx, "")
		if err != nil {
			return err
		}
		got := map[string]bool{}
		for _, name := range names {
			b, err := store.Get(ctx, name)
			if err != nil {
				return err
			}
			archived, err := blob.DecodeObject(b)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			for _, a := range archived {
				got[string(a.Key)+" "+string(a.Value)] = true
			}
		}
		for k := range wantRaw {
			if !got[k] {
				return fmt.Errorf("%d of %d raw records archived in %d objects; missing %s", len(got), len(wantRaw), len(names), k)
			}
		}
		if len(got) != len(wantRaw) {
			return fmt.Errorf("%d records archived, want %d", len(got), len(wantRaw))
		}
		return nil
	})

	// Both sinks serve the /metrics Prometheus scrapes.
	for name, addr := range map[string]string{"sink-timescale": tsMetrics, "sink-blob": blobMetrics} {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Errorf("%s /metrics: %v", name, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("# TYPE ")) {
			t.Errorf("%s /metrics: %s\n%.500s", name, resp.Status, body)
		}
	}
}

func mustClient(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}
