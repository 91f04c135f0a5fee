package timescale

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/telemetry"
)

func TestDecodeRecord(t *testing.T) {
	good := `{"device":"boat-1","seq":7,"time":"2026-06-01T12:00:00.123456789Z","lat":52.4,"lon":21.0,` +
		`"distance_m":3.5,"speed_ms":2,"speed_kn":3.9,"course_deg":90,"received_at":"2026-06-01T12:00:01Z",` +
		`"processed_at":"2026-06-01T12:00:01.5Z","latency_ms":500,"udf":"motion","udf_version":"v2","fields":{"battery":88}}`
	r, err := decodeRecord(&kgo.Record{Value: []byte(good), Partition: 3, Offset: 42})
	if err != nil {
		t.Fatal(err)
	}
	if r.e.Device != "boat-1" || r.e.Seq != 7 || r.e.UDFVersion != "v2" || r.partition != 3 || r.offset != 42 ||
		string(r.fields) != `{"battery":88}` {
		t.Errorf("decoded %+v", r)
	}
	if r, err := decodeRecord(&kgo.Record{Value: []byte(`{"device":"b","seq":1,"time":"2026-06-01T12:00:00Z","lat":1,"lon":2}`)}); err != nil || r.fields != nil {
		t.Errorf("no fields: %v, fields %q (want NULL)", err, r.fields)
	}

	for _, c := range []struct {
		value string
		want  error
	}{
		{`not json`, telemetry.ErrMalformed},
		{`{"device":"b","seq":"x","time":"2026-06-01T12:00:00Z"}`, telemetry.ErrMalformed},
		{`{"device":"","seq":1,"time":"2026-06-01T12:00:00Z"}`, telemetry.ErrInvalidDevice},
		{`{"device":"a b","seq":1,"time":"2026-06-01T12:00:00Z"}`, telemetry.ErrInvalidDevice},
		{`{"device":"b","seq":1}`, telemetry.ErrInvalidTime},
		{`{"device":"b","seq":18446744073709551615,"time":"2026-06-01T12:00:00Z"}`, telemetry.ErrMalformed},
		{`{"device":"b","seq":1,"time":"2026-06-01T12:00:00Z","lat":91}`, telemetry.ErrInvalidPosition},
		{`{"device":"b","seq":1,"time":"2026-06-01T12:00:00Z","fields":{"a\u0000":1}}`, telemetry.ErrMalformed},
		{`{"device":"b","seq":1,"time":"2026-06-01T12:00:00Z","udf":"x\u0000"}`, telemetry.ErrMalformed},
	} {
		if _, err := decodeRecord(&kgo.Record{Value: []byte(c.value)}); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.value, err, c.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{DatabaseURL: "postgres://u@127.0.0.1:5432/db", KafkaBrokers: []string{"127.0.0.1:9092"}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Config){
		"no database":     func(c *Config) { c.DatabaseURL = "" },
		"bad url":         func(c *Config) { c.DatabaseURL = "postgres://[::1" },
		"no brokers":      func(c *Config) { c.KafkaBrokers = nil },
		"empty broker":    func(c *Config) { c.KafkaBrokers = []string{""} },
		"batch size":      func(c *Config) { c.BatchSize = -1 },
		"batch timeout":   func(c *Config) { c.BatchTimeout = -time.Second },
		"short retention": func(c *Config) { c.Retention = time.Minute },
		"retry bounds":    func(c *Config) { c.RetryMin, c.RetryMax = time.Second, time.Millisecond },
	} {
		c := ok
		mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, c)
		}
	}
}

// TestIntegrationWriteTwice writes the same batches twice, as a
// redelivery after a crash would: the second time adds nothing, and what
// is stored is exactly what was written.
func TestIntegrationWriteTwice(t *testing.T) {
	t.Parallel()
	w, dbURL := migrated(t)
	ctx := context.Background()
	want := readings(0, 1000, 6)
	first, second := rowsOf(t, want[:600]), rowsOf(t, want[400:])
	for _, b := range [][]row{first, second, first, second} {
		if err := w.write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	checkStored(t, dbURL, want)
	if got := testutil.ToFloat64(w.m.rowsWritten); got != 1000 {
		t.Errorf("rows written metric %g, want 1000", got)
	}
	if got := testutil.ToFloat64(w.m.rowsDuplicate); got != 200+600+600 {
		t.Errorf("duplicate rows metric %g, want 1400", got)
	}
	if got := testutil.ToFloat64(w.m.batches); got != 4 {
		t.Errorf("batches metric %g, want 4", got)
	}
	if got := testutil.CollectAndCount(w.m.batchDuration); got != 1 {
		t.Errorf("batch duration histogram: %d series", got)
	}
}

// TestIntegrationWriteDuplicatesInOneBatch: a batch holding the same
// reading twice (the core redelivered it within one poll) stores it once.
func TestIntegrationWriteDuplicatesInOneBatch(t *testing.T) {
	t.Parallel()
	w, dbURL := migrated(t)
	es := readings(0, 10, 2)
	batch := rowsOf(t, append(es, es[3], es[7], es[3]))
	if err := w.write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	checkStored(t, dbURL, es)
	if got := testutil.ToFloat64(w.m.rowsDuplicate); got != 3 {
		t.Errorf("duplicate rows metric %g, want 3", got)
	}
}

// TestIntegrationWriteRejectedRow: a row the database refuses (here jsonb
// with a NUL character, which check would have caught) costs only itself,
// counted, not the batch and not a retry loop.
func TestIntegrationWriteRejectedRow(t *testing.T) {
	t.Parallel()
	w, dbURL := migrated(t)
	es := readings(0, 5, 1)
	rows := rowsOf(t, es)
	rows[2].fields = []byte(`{"bad\u0000key": 1}`)
	if err := w.write(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
	checkStored(t, dbURL, []telemetry.Enriched{es[0], es[1], es[3], es[4]})
	if got := testutil.ToFloat64(w.m.rowsRejected); got != 1 {
		t.Errorf("rejected rows metric %g, want 1", got)
	}
	if got := testutil.ToFloat64(w.m.rowsWritten); got != 4 {
		t.Errorf("rows written metric %g, want 4", got)
	}
}

func TestIntegrationTrack(t *testing.T) {
	t.Parallel()
	w, dbURL := migrated(t)
	ctx := context.Background()
	all := readings(0, 600, 3) // 200 s of three boats
	// Written out of time order, in two batches.
	batch := rowsOf(t, all)
	for i, j := 0, len(batch)-1; i < j; i, j = i+1, j-1 {
		batch[i], batch[j] = batch[j], batch[i]
	}
	if err := w.write(ctx, batch[:250]); err != nil {
		t.Fatal(err)
	}
	if err := w.write(ctx, batch[250:]); err != nil {
		t.Fatal(err)
	}
	st, err := OpenStore(dbURL, StoreOptions{MaxTrackPoints: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	from, to := epoch.Add(50*time.Second), epoch.Add(150*time.Second)
	got, err := st.Track(ctx, "boat-01", from, to)
	if err != nil {
		t.Fatal(err)
	}
	var want []telemetry.Enriched
	for _, e := range all {
		if e.Device == "boat-01" && !e.Time.Before(from) && e.Time.Before(to) {
			want = append(want, e)
		}
	}
	if len(got) != len(want) || len(want) != 100 {
		t.Fatalf("track has %d points, want %d (of 100)", len(got), len(want))
	}
	for i := range want {
		if !sameReading(want[i], got[i]) {
			t.Fatalf("point %d = %+v, want %+v", i, got[i], want[i])
		}
		if i > 0 && !got[i].Time.After(got[i-1].Time) {
			t.Fatalf("points %d and %d not in time order", i-1, i)
		}
	}
	if tr, err := st.Track(ctx, "nobody", from, to); err != nil || len(tr) != 0 {
		t.Errorf("track of an unknown device: %d points, %v", len(tr), err)
	}

	capped, err := OpenStore(dbURL, StoreOptions{MaxTrackPoints: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer capped.Close()
	if tr, err := capped.Track(ctx, "boat-01", from, to); err != nil || len(tr) != 10 || !sameReading(want[0], tr[0]) {
		t.Errorf("capped track: %d points, %v; want the first 10", len(tr), err)
	}
	st.Close()
	if _, err := st.Track(ctx, "boat-01", from, to); !errors.Is(err, ErrStoreClosed) {
		t.Errorf("Track after Close: %v", err)
	}
}

func TestStoreDatabaseDown(t *testing.T) {
	t.Parallel()
	st, err := OpenStore("postgres://postgres@127.0.0.1:1/nothing?connect_timeout=1", StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, err = st.Track(context.Background(), "boat-1", epoch, epoch.Add(time.Hour))
	if err == nil || !strings.Contains(err.Error(), "connect") {
		t.Errorf("Track with no database: %v", err)
	}
}

// TestIntegrationPrune: on plain PostgreSQL the sink deletes readings
// older than the retention, and only those.
func TestIntegrationPrune(t *testing.T) {
	t.Parallel()
	w, dbURL := migrated(t)
	ctx := context.Background()
	old := readings(0, 20, 2) // June 2026: long before now
	fresh := readings(20, 4, 2)
	for i := range fresh {
		fresh[i].Time = time.Now().Add(-time.Duration(i+1) * time.Minute)
	}
	if err := w.write(ctx, rowsOf(t, append(old, fresh...))); err != nil {
		t.Fatal(err)
	}
	n, err := w.prune(ctx, 24*time.Hour)
	if err != nil || n != int64(len(old)) {
		t.Fatalf("prune deleted %d rows (%v), want %d", n, err, len(old))
	}
	if got := count(t, connect(t, dbURL), `SELECT count(*) FROM readings`); got != len(fresh) {
		t.Errorf("%d readings left, want the %d fresh ones", got, len(fresh))
	}
}
