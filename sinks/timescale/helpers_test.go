package timescale

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/internal/testenv"
	"github.com/sailstream/sailstream/telemetry"
)

// testDB returns the URL of a fresh database on the test bed's server.
func testDB(t testing.TB) string {
	t.Helper()
	return testenv.PostgresDatabase(t, testenv.PostgresURL(t))
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

func connect(t testing.TB, dbURL string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func count(t testing.TB, c *pgx.Conn, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := c.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// migrated returns a writer on a fresh, migrated database.
func migrated(t testing.TB) (*writer, string) {
	t.Helper()
	dbURL := testDB(t)
	w, err := newWriter(dbURL, testLogger(t), newMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.close)
	if err := w.migrate(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	return w, dbURL
}

var epoch = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// reading is the i-th reading of a made-up fleet of devices boats, one
// reading per device per second; every value is derived from i so a test
// can check what came back.
func reading(i, boats int) telemetry.Enriched {
	dev, n := i%boats, i/boats
	t := epoch.Add(time.Duration(n)*time.Second + time.Duration(dev)*time.Millisecond + 123456*time.Nanosecond)
	e := telemetry.Enriched{
		Device:      fmt.Sprintf("boat-%02d", dev),
		Seq:         uint64(n + 1),
		Time:        t,
		Lat:         52.43 + float64(i)*1e-6,
		Lon:         21.03 - float64(i)*1e-6,
		DistanceM:   float64(i % 17),
		SpeedMS:     float64(i%13) / 2,
		SpeedKn:     float64(i%13) / 2 * 1.943844,
		CourseDeg:   math.Mod(float64(i)*7, 360),
		ReceivedAt:  t.Add(40 * time.Millisecond),
		ProcessedAt: t.Add(55 * time.Millisecond),
		LatencyMS:   15,
		UDF:         "motion",
		UDFVersion:  "v1",
	}
	if i%3 == 0 {
		e.Fields = map[string]float64{"battery": float64(i % 100), "heel": -3.5}
	}
	return e
}

func rowsOf(t testing.TB, es []telemetry.Enriched) []row {
	t.Helper()
	rows := make([]row, len(es))
	for i, e := range es {
		rows[i] = row{e: e, partition: int32(i % 6), offset: int64(i)}
		if err := rows[i].check(); err != nil {
			t.Fatal(err)
		}
	}
	return rows
}

func readings(from, n, boats int) []telemetry.Enriched {
	out := make([]telemetry.Enriched, n)
	for i := range out {
		out[i] = reading(from+i, boats)
	}
	return out
}

// stored reads every row back as the sink wrote it, keyed by device/seq.
func stored(t testing.TB, dbURL string) map[string]telemetry.Enriched {
	t.Helper()
	st, err := OpenStore(dbURL, StoreOptions{MaxTrackPoints: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := connect(t, dbURL)
	rows, err := c.Query(context.Background(), `SELECT DISTINCT device_id FROM readings`)
	if err != nil {
		t.Fatal(err)
	}
	devices, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]telemetry.Enriched{}
	for _, d := range devices {
		tr, err := st.Track(context.Background(), d, time.Time{}, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range tr {
			out[fmt.Sprintf("%s/%d", e.Device, e.Seq)] = e
		}
	}
	return out
}

// sameReading compares a reading with what the database gave back (times
// at microsecond precision).
func sameReading(want, got telemetry.Enriched) bool {
	us := func(t time.Time) time.Time { return t.Truncate(time.Microsecond).UTC() }
	want.Time, want.ReceivedAt, want.ProcessedAt = us(want.Time), us(want.ReceivedAt), us(want.ProcessedAt)
	a, _ := json.Marshal(want)
	b, _ := json.Marshal(got)
	return string(a) == string(b)
}

// checkStored asserts the table holds exactly want.
func checkStored(t testing.TB, dbURL string, want []telemetry.Enriched) {
	t.Helper()
	got := stored(t, dbURL)
	if len(got) != len(want) {
		t.Errorf("table holds %d readings, want %d", len(got), len(want))
	}
	bad := 0
	for _, w := range want {
		g, ok := got[fmt.Sprintf("%s/%d", w.Device, w.Seq)]
		if !ok || !sameReading(w, g) {
			if bad++; bad <= 3 {
				t.Errorf("reading %s/%d: stored %+v (found %v), want %+v", w.Device, w.Seq, g, ok, w)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d readings missing or wrong", bad, len(want))
	}
}

// produce writes es to topic as the core does: key device, value JSON.
func produce(t testing.TB, cl *kgo.Client, topic string, es []telemetry.Enriched) {
	t.Helper()
	recs := make([]*kgo.Record, len(es))
	for i, e := range es {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(e.Device), Value: b}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func producer(t testing.TB, brokers []string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// eventually polls cond every 50ms until it holds, failing the test with
// what() after timeout. The timeout only bounds a hang; it asserts no
// speed.
func eventually(t testing.TB, timeout time.Duration, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, what())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startSink runs a sink until stop is called or the test ends; stop
// waits for Run to return and fails the test if it returned an error.
func startSink(t testing.TB, cfg Config) (s *Sink, stop func()) {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("Run did not return 30s after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return s, stop
}
