package timescale

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/telemetry"
)

// row is one reading as it goes into the table, with the Kafka position it
// came from (for the logs when the database rejects it).
type row struct {
	e         telemetry.Enriched
	fields    []byte // e.Fields as JSON, nil when empty
	partition int32
	offset    int64
}

// columns of readings that the sink writes, in COPY order; inserted_at
// takes its default.
var columns = []string{
	"device_id", "seq", "event_time", "lat", "lon", "distance_m", "speed_ms", "speed_kn", "course_deg",
	"received_at", "processed_at", "latency_ms", "udf", "udf_version", "fields", "kafka_partition", "kafka_offset",
}

func (r *row) values() []any {
	e := &r.e
	return []any{
		e.Device, int64(e.Seq), e.Time, e.Lat, e.Lon, e.DistanceM, e.SpeedMS, e.SpeedKn, e.CourseDeg,
		nullTime(e.ReceivedAt), nullTime(e.ProcessedAt), e.LatencyMS, e.UDF, e.UDFVersion, r.fields,
		r.partition, r.offset,
	}
}

// nullTime maps the zero time (field absent) to NULL.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// decodeRecord parses and checks one telemetry.enriched record. Its errors
// wrap telemetry's sentinels, so telemetry.Reason classifies them.
func decodeRecord(r *kgo.Record) (row, error) {
	var e telemetry.Enriched
	if err := json.Unmarshal(r.Value, &e); err != nil {
		return row{}, fmt.Errorf("%w: %v", telemetry.ErrMalformed, err)
	}
	rw := row{e: e, partition: r.Partition, offset: r.Offset}
	return rw, rw.check()
}

// check rejects what the table cannot hold or what no enriched reading can
// be, and encodes the fields.
func (r *row) check() error {
	e := &r.e
	if err := telemetry.ValidateDevice(e.Device); err != nil {
		return err
	}
	if e.Time.IsZero() {
		return fmt.Errorf("%w: missing", telemetry.ErrInvalidTime)
	}
	if y := e.Time.Year(); y < 1 || y > 9999 {
		return fmt.Errorf("%w: year %d", telemetry.ErrInvalidTime, y)
	}
	if e.Seq > math.MaxInt64 {
		return fmt.Errorf("%w: seq %d does not fit a bigint", telemetry.ErrMalformed, e.Seq)
	}
	if math.Abs(e.Lat) > 90 || math.Abs(e.Lon) > 180 || math.IsNaN(e.Lat) || math.IsNaN(e.Lon) {
		return fmt.Errorf("%w: %g, %g", telemetry.ErrInvalidPosition, e.Lat, e.Lon)
	}
	for _, s := range []string{e.UDF, e.UDFVersion} {
		if strings.IndexByte(s, 0) >= 0 {
			return fmt.Errorf("%w: NUL byte in the UDF name or version", telemetry.ErrMalformed)
		}
	}
	r.fields = nil
	if len(e.Fields) > 0 {
		for k := range e.Fields {
			if strings.IndexByte(k, 0) >= 0 {
				return fmt.Errorf("%w: NUL byte in field name %q", telemetry.ErrMalformed, k)
			}
		}
		b, err := json.Marshal(e.Fields)
		if err != nil {
			return fmt.Errorf("%w: fields: %v", telemetry.ErrMalformed, err)
		}
		r.fields = b
	}
	return nil
}

// writer owns the sink's one database connection; it reconnects after the
// connection broke. It is used by one goroutine.
type writer struct {
	cfg  *pgx.ConnConfig
	log  *slog.Logger
	m    *metrics
	conn *pgx.Conn
	// staged says the session's staging table exists on conn.
	staged bool
	mode   Mode
}

func newWriter(databaseURL string, log *slog.Logger, m *metrics) (*writer, error) {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("timescale: database URL: %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	cfg.RuntimeParams["application_name"] = "sailstream-timescale"
	return &writer{cfg: cfg, log: log, m: m}, nil
}

// connect returns the open connection, or opens one.
func (w *writer) connect(ctx context.Context) (*pgx.Conn, error) {
	if w.conn != nil && !w.conn.IsClosed() {
		return w.conn, nil
	}
	c, err := pgx.ConnectConfig(ctx, w.cfg)
	if err != nil {
		return nil, fmt.Errorf("timescale: connecting to %s:%d: %w", w.cfg.Host, w.cfg.Port, err)
	}
	w.conn, w.staged = c, false
	return c, nil
}

// failed drops the connection unless err came from the server with the
// session intact (a PgError), so the next attempt starts on a fresh one.
func (w *writer) failed(err error) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) || w.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = w.conn.Close(ctx)
	w.conn = nil
}

func (w *writer) close() {
	if w.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = w.conn.Close(ctx)
		w.conn = nil
	}
}

// migrate brings the schema up to date and applies the retention setting.
func (w *writer) migrate(ctx context.Context, retention time.Duration) error {
	c, err := w.connect(ctx)
	if err != nil {
		return err
	}
	mode, err := migrate(ctx, c, latestVersion, w.log)
	if err == nil {
		err = applyRetention(ctx, c, mode, retention)
	}
	if err != nil {
		w.failed(err)
		return err
	}
	w.mode = mode
	return nil
}

const stageSQL = `CREATE TEMP TABLE readings_stage ON COMMIT DELETE ROWS AS
SELECT ` + "%s" + ` FROM readings WITH NO DATA`

// write stores rows in one transaction and records what happened in the
// metrics. When the database rejects the batch's data (an error of class
// 22 or 23, which no retry can cure), the rows are written one by one and
// the ones it rejects are logged, counted and skipped.
func (w *writer) write(ctx context.Context, rows []row) error {
	start := time.Now()
	inserted, err := w.writeBatch(ctx, rows)
	var rejected int64
	if isDataError(err) {
		inserted, rejected, err = w.writeOneByOne(ctx, rows)
	}
	if err != nil {
		w.failed(err)
		return err
	}
	w.m.batchDuration.Observe(time.Since(start).Seconds())
	w.m.batches.Inc()
	w.m.rowsWritten.Add(float64(inserted))
	w.m.rowsDuplicate.Add(float64(int64(len(rows)) - inserted - rejected))
	return nil
}

// writeBatch copies rows into the staging table and moves the new ones
// into readings, in one transaction. It returns how many were new.
func (w *writer) writeBatch(ctx context.Context, rows []row) (int64, error) {
	c, err := w.connect(ctx)
	if err != nil {
		return 0, err
	}
	if !w.staged {
		if _, err := c.Exec(ctx, fmt.Sprintf(stageSQL, strings.Join(columns, ", "))); err != nil {
			return 0, fmt.Errorf("timescale: creating the staging table: %w", err)
		}
		w.staged = true
	}
	tx, err := c.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("timescale: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	i := 0
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i == len(rows) {
			return nil, nil
		}
		i++
		return rows[i-1].values(), nil
	})
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"readings_stage"}, columns, src); err != nil {
		return 0, fmt.Errorf("timescale: copying %d rows into the staging table: %w", len(rows), err)
	}
	tag, err := tx.Exec(ctx, insertSQL)
	if err != nil {
		return 0, fmt.Errorf("timescale: inserting from the staging table: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("timescale: commit: %w", err)
	}
	return tag.RowsAffected(), nil
}

var insertSQL = fmt.Sprintf(`INSERT INTO readings (%[1]s)
SELECT %[1]s FROM readings_stage ORDER BY device_id, event_time, seq
ON CONFLICT (device_id, event_time, seq) DO NOTHING`, strings.Join(columns, ", "))

var insertOneSQL = func() string {
	ph := make([]string, len(columns))
	for i := range ph {
		ph[i] = fmt.Sprintf("$%d", i+1)
	}
	return fmt.Sprintf(`INSERT INTO readings (%s) VALUES (%s)
ON CONFLICT (device_id, event_time, seq) DO NOTHING`, strings.Join(columns, ", "), strings.Join(ph, ", "))
}()

// writeOneByOne writes each row in its own statement, skipping the rows
// the database rejects as invalid data. Only a batch that failed with a
// data error takes this slow path. It returns how many rows were new and
// how many were rejected.
func (w *writer) writeOneByOne(ctx context.Context, rows []row) (inserted, rejected int64, err error) {
	c, err := w.connect(ctx)
	if err != nil {
		return 0, 0, err
	}
	for i := range rows {
		r := &rows[i]
		tag, err := c.Exec(ctx, insertOneSQL, r.values()...)
		if isDataError(err) {
			rejected++
			w.m.rowsRejected.Inc()
			w.log.Warn("the database rejected a reading; skipping it (it stays in the topic)",
				"partition", r.partition, "offset", r.offset, "device", r.e.Device, "seq", r.e.Seq, "err", err)
			continue
		}
		if err != nil {
			return 0, 0, fmt.Errorf("timescale: inserting row by row: %w", err)
		}
		inserted += tag.RowsAffected()
	}
	return inserted, rejected, nil
}

// isDataError reports an error about the data itself (SQLSTATE class 22
// data exception or 23 integrity violation): retrying cannot cure it.
func isDataError(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "23")
}

// prune deletes readings older than retention (plain PostgreSQL).
func (w *writer) prune(ctx context.Context, retention time.Duration) (int64, error) {
	c, err := w.connect(ctx)
	if err != nil {
		return 0, err
	}
	tag, err := c.Exec(ctx, `DELETE FROM readings WHERE event_time < now() - make_interval(secs => $1)`, retention.Seconds())
	if err != nil {
		w.failed(err)
		return 0, fmt.Errorf("timescale: deleting expired readings: %w", err)
	}
	return tag.RowsAffected(), nil
}
