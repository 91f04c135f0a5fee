package timescale

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/internal/kafkatopic"
	"github.com/sailstream/sailstream/internal/testenv"
	"github.com/sailstream/sailstream/telemetry"
)

// newTopic creates a Unique topic with 6 partitions.
func newTopic(t testing.TB, cl *kgo.Client) string {
	t.Helper()
	topic := testenv.Unique("ts-enriched-")
	if err := kafkatopic.Ensure(context.Background(), cl, kafkatopic.Spec{Name: topic, Partitions: 6}); err != nil {
		t.Fatal(err)
	}
	return topic
}

func rowCount(t testing.TB, dbURL string) func() int {
	c := connect(t, dbURL)
	return func() int {
		var n int
		if err := c.QueryRow(context.Background(), `SELECT count(*) FROM readings`).Scan(&n); err != nil {
			return -1
		}
		return n
	}
}

// TestIntegrationSink runs the sink on a topic with valid and invalid
// records: every valid one lands once with its values, every invalid one
// is counted by reason. A second sink in a new consumer group reads the
// whole topic again into the same table and adds nothing.
func TestIntegrationSink(t *testing.T) {
	t.Parallel()
	brokers := testenv.KafkaBrokers(t)
	dbURL := testDB(t)
	cl := producer(t, brokers)
	topic := newTopic(t, cl)

	want := readings(0, 3000, 6)
	produce(t, cl, topic, want[:1500])
	bad := []*kgo.Record{
		{Topic: topic, Key: []byte("x"), Value: []byte("{not json")},
		{Topic: topic, Key: []byte("x"), Value: []byte(`{"device":"has space","seq":1,"time":"2026-06-01T12:00:00Z"}`)},
		{Topic: topic, Key: []byte("x"), Value: []byte(`{"device":"b","seq":1,"time":"2026-06-01T12:00:00Z","lat":123}`)},
	}
	if err := cl.ProduceSync(context.Background(), bad...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	produce(t, cl, topic, want[1500:])

	reg := prometheus.NewPedanticRegistry()
	s, _ := startSink(t, Config{
		DatabaseURL: dbURL, KafkaBrokers: brokers, Group: testenv.Unique("ts-group-"), EnrichedTopic: topic,
		BatchSize: 500, BatchTimeout: 200 * time.Millisecond, Registerer: reg, Logger: testLogger(t),
	})
	rows := rowCount(t, dbURL)
	// The invalid records sit on their own partition (key "x"), which may
	// come last.
	decodeErrors := func() int { return testutil.CollectAndCount(s.m.decodeErrors) }
	eventually(t, 2*time.Minute, func() bool { return rows() >= len(want) && decodeErrors() >= len(bad) },
		func() string {
			return fmt.Sprintf("%d rows, want %d; decode error reasons %d, want %d", rows(), len(want), decodeErrors(), len(bad))
		})
	checkStored(t, dbURL, want)
	for reason, n := range map[string]float64{telemetry.ReasonMalformed: 1, telemetry.ReasonInvalidDevice: 1, telemetry.ReasonInvalidPosition: 1} {
		if got := testutil.ToFloat64(s.m.decodeErrors.WithLabelValues(reason)); got != n {
			t.Errorf("decode errors %s = %g, want %g", reason, got, n)
		}
	}
	if got := testutil.ToFloat64(s.m.dbUp); got != 1 {
		t.Errorf("db_up = %g, want 1", got)
	}
	if n, err := testutil.GatherAndCount(reg, "sailstream_timescale_rows_written_total", "sailstream_timescale_batch_duration_seconds"); err != nil || n != 2 {
		t.Errorf("registered metrics: %d, %v", n, err)
	}

	// Everything again, through a new group: nothing new.
	again, _ := startSink(t, Config{
		DatabaseURL: dbURL, KafkaBrokers: brokers, Group: testenv.Unique("ts-group-"), EnrichedTopic: topic,
		BatchSize: 700, BatchTimeout: 200 * time.Millisecond, Logger: testLogger(t),
	})
	eventually(t, 2*time.Minute, func() bool { return testutil.ToFloat64(again.m.rowsDuplicate) >= float64(len(want)) },
		func() string {
			return fmt.Sprintf("second sink saw %g duplicates, want %d", testutil.ToFloat64(again.m.rowsDuplicate), len(want))
		})
	if got := testutil.ToFloat64(again.m.rowsWritten); got != 0 {
		t.Errorf("second sink wrote %g rows, want 0", got)
	}
	checkStored(t, dbURL, want)
}

// TestIntegrationSinkCommitsAfterWrite stops a sink once its rows are in
// the database and starts another in the same group: it resumes from the
// committed offsets, so it finds nothing to write again and the new records
// produced meanwhile land once.
func TestIntegrationSinkCommitsAfterWrite(t *testing.T) {
	t.Parallel()
	brokers := testenv.KafkaBrokers(t)
	dbURL := testDB(t)
	cl := producer(t, brokers)
	topic := newTopic(t, cl)
	group := testenv.Unique("ts-group-")
	cfg := Config{DatabaseURL: dbURL, KafkaBrokers: brokers, Group: group, EnrichedTopic: topic,
		BatchSize: 100, BatchTimeout: 100 * time.Millisecond, Logger: testLogger(t)}
	want := readings(0, 1000, 4)
	produce(t, cl, topic, want[:600])
	rows := rowCount(t, dbURL)

	_, stop := startSink(t, cfg)
	eventually(t, 2*time.Minute, func() bool { return rows() >= 600 }, func() string { return fmt.Sprintf("%d rows, want 600", rows()) })
	stop()

	produce(t, cl, topic, want[600:])
	next, _ := startSink(t, cfg)
	eventually(t, 2*time.Minute, func() bool { return rows() >= len(want) },
		func() string { return fmt.Sprintf("%d rows, want %d", rows(), len(want)) })
	checkStored(t, dbURL, want)
	if got := testutil.ToFloat64(next.m.rowsDuplicate); got != 0 {
		t.Errorf("the restarted sink rewrote %g rows: offsets were not committed after the write", got)
	}
}

// TestIntegrationSinkSurvivesDatabaseKill kills the database (SIGKILL,
// every backend) while the sink is writing, keeps producing, and brings the
// database back: the sink retries, then resumes by itself, and the table
// holds exactly the readings produced, with their values.
func TestIntegrationSinkSurvivesDatabaseKill(t *testing.T) {
	t.Parallel()
	brokers := testenv.KafkaBrokers(t)
	pg := testenv.NewPostgres(t, testenv.PostgresOptions{})
	dbURL := testenv.PostgresDatabase(t, pg.URL())
	cl := producer(t, brokers)
	topic := newTopic(t, cl)

	const n = 6000
	want := readings(0, n, 6)
	produce(t, cl, topic, want[:2000])
	s, _ := startSink(t, Config{
		DatabaseURL: dbURL, KafkaBrokers: brokers, Group: testenv.Unique("ts-group-"), EnrichedTopic: topic,
		BatchSize: 250, BatchTimeout: 100 * time.Millisecond, RetryMin: 20 * time.Millisecond, RetryMax: 500 * time.Millisecond,
		Logger: testLogger(t),
	})
	written := func() float64 { return testutil.ToFloat64(s.m.rowsWritten) }
	eventually(t, 2*time.Minute, func() bool { return written() > 0 }, func() string { return "no rows written before the kill" })

	if err := pg.Kill(); err != nil {
		t.Fatal(err)
	}
	produce(t, cl, topic, want[2000:4000])
	eventually(t, time.Minute, func() bool { return testutil.ToFloat64(s.m.retries) >= 3 },
		func() string {
			return fmt.Sprintf("%g retries while the database was down", testutil.ToFloat64(s.m.retries))
		})
	if got := testutil.ToFloat64(s.m.dbUp); got != 0 {
		t.Errorf("db_up = %g while the database is down, want 0", got)
	}
	stalled := written()
	if stalled >= n {
		t.Fatalf("all %d rows written before the database came back: the test proves nothing", n)
	}

	if err := pg.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	produce(t, cl, topic, want[4000:])
	rows := rowCount(t, dbURL)
	eventually(t, 2*time.Minute, func() bool { return rows() >= n },
		func() string { return fmt.Sprintf("%d rows after the restart, want %d", rows(), n) })
	checkStored(t, dbURL, want)
	if got := testutil.ToFloat64(s.m.dbUp); got != 1 {
		t.Errorf("db_up = %g after the database came back, want 1", got)
	}
	t.Logf("rows written before the kill and during the outage: %g; retries: %g", stalled, testutil.ToFloat64(s.m.retries))
}
