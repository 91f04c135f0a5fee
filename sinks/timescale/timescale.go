// Package timescale keeps every enriched reading in PostgreSQL, or in
// TimescaleDB when the database has the extension, so that tracks can be
// queried and aggregated after they have scrolled off the Kafka topic.
//
// The Sink consumes telemetry.enriched in a consumer group and writes in
// batches (by size and by time): each batch is copied (COPY, binary) into a
// session-local staging table, then moved into readings with one INSERT …
// ON CONFLICT (device_id, event_time, seq) DO NOTHING, in one transaction.
// Offsets are committed only after that transaction commits. A batch that
// comes back after a crash or a rebalance therefore writes nothing twice, and
// a batch whose write failed is never skipped: delivery into the table is
// effectively exactly once, built from at-least-once consumption and a
// natural key.
//
// When the database goes away the sink stalls: it keeps the batch and its
// offsets, retries with capped exponential backoff (counted in
// sailstream_timescale_write_retries_total, sailstream_timescale_db_up drops
// to 0) and resumes by itself when the database is back. Records that are
// not valid enriched readings are counted, logged with their partition and
// offset and skipped; they stay in the topic.
//
// The schema is versioned: migrations embedded in the binary are applied on
// start, in one transaction under an advisory lock, and recorded in
// schema_migrations. With TimescaleDB, readings is a hypertable with a
// compression policy and an optional retention policy, and readings_1m a
// continuous aggregate; on plain PostgreSQL readings has a BRIN index on
// time and readings_1m is a view (see migrations/).
//
// Store is the read side: tracks of one device in time order, for the web
// server's REST API.
package timescale

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/internal/kafkatopic"
	"github.com/sailstream/sailstream/telemetry"
)

// Defaults for the zero Config fields.
const (
	DefaultGroup        = "sailstream-timescale"
	DefaultBatchSize    = 5000
	DefaultBatchTimeout = time.Second
	DefaultRetryMin     = 100 * time.Millisecond
	DefaultRetryMax     = 30 * time.Second
	// pruneInterval is how often plain PostgreSQL deletes readings older
	// than Config.Retention (TimescaleDB drops whole chunks by itself).
	pruneInterval = 10 * time.Minute
)

// Config configures a Sink. Fields map to the flags of
// `sailstream sink timescale`.
type Config struct {
	// DatabaseURL is a postgres:// URL (or libpq key=value string).
	DatabaseURL string
	// KafkaBrokers are the seed brokers to consume from.
	KafkaBrokers []string
	// Group is the Kafka consumer group; default DefaultGroup.
	Group string
	// EnrichedTopic is the topic to consume; default telemetry.TopicEnriched.
	EnrichedTopic string
	// Partitions is the partition count used when the sink creates the
	// topic because it does not exist yet; default 6.
	Partitions int32
	// BatchSize is the most records written in one transaction; default
	// DefaultBatchSize.
	BatchSize int
	// BatchTimeout is the longest a record waits for its batch to fill
	// before the batch is written anyway; default DefaultBatchTimeout.
	BatchTimeout time.Duration
	// Retention drops readings older than this (a TimescaleDB retention
	// policy, or a periodic DELETE on plain PostgreSQL); 0 keeps everything.
	Retention time.Duration
	// RetryMin and RetryMax bound the exponential backoff while the
	// database is unreachable; defaults DefaultRetryMin and DefaultRetryMax.
	RetryMin, RetryMax time.Duration
	// Registerer receives the sink's metrics; nil does not register them.
	Registerer prometheus.Registerer
	// Logger receives the sink's logs; nil discards them.
	Logger *slog.Logger
}

// Validate reports a config that cannot work, after defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.DatabaseURL == "" {
		return errors.New("timescale: DatabaseURL is empty: set --pg (SAILSTREAM_PG) to a postgres:// URL")
	}
	if _, err := pgx.ParseConfig(c.DatabaseURL); err != nil {
		return fmt.Errorf("timescale: DatabaseURL: %w", err)
	}
	if len(c.KafkaBrokers) == 0 {
		return errors.New("timescale: KafkaBrokers is empty: name at least one seed broker")
	}
	for _, b := range c.KafkaBrokers {
		if b == "" {
			return errors.New("timescale: KafkaBrokers has an empty entry")
		}
	}
	switch {
	case c.BatchSize < 1:
		return fmt.Errorf("timescale: BatchSize %d: must be at least 1", c.BatchSize)
	case c.BatchTimeout < 0:
		return fmt.Errorf("timescale: BatchTimeout %s is negative", c.BatchTimeout)
	case c.Retention < 0:
		return fmt.Errorf("timescale: Retention %s is negative (0 keeps everything)", c.Retention)
	case c.Retention > 0 && c.Retention < 24*time.Hour:
		// Shorter would also cut into the continuous aggregate's refresh
		// window under TimescaleDB.
		return fmt.Errorf("timescale: Retention %s is shorter than a day (0 keeps everything)", c.Retention)
	case c.RetryMin <= 0 || c.RetryMax < c.RetryMin:
		return fmt.Errorf("timescale: retry backoff %s..%s: need 0 < RetryMin <= RetryMax", c.RetryMin, c.RetryMax)
	case c.Partitions < 0:
		return fmt.Errorf("timescale: Partitions %d is negative", c.Partitions)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.EnrichedTopic == "" {
		c.EnrichedTopic = telemetry.TopicEnriched
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.BatchTimeout == 0 {
		c.BatchTimeout = DefaultBatchTimeout
	}
	if c.RetryMin == 0 {
		c.RetryMin = DefaultRetryMin
	}
	if c.RetryMax == 0 {
		c.RetryMax = max(DefaultRetryMax, c.RetryMin)
	}
	return c
}

// Sink writes telemetry.enriched into the readings table.
type Sink struct {
	cfg     Config
	log     *slog.Logger
	m       *metrics
	w       *writer
	started atomic.Bool

	lastPrune time.Time
}

// New builds a sink; Run starts it. New does not connect to anything.
func New(cfg Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m := newMetrics()
	if cfg.Registerer != nil {
		if err := m.register(cfg.Registerer); err != nil {
			return nil, fmt.Errorf("timescale: registering metrics: %w", err)
		}
	}
	w, err := newWriter(cfg.DatabaseURL, log, m)
	if err != nil {
		return nil, err
	}
	return &Sink{cfg: cfg, log: log, m: m, w: w}, nil
}

// Run migrates the database, then consumes and writes until ctx ends. It
// waits (with backoff) for a database that is not reachable yet, and
// returns nil when ctx ends: a batch in flight then is neither written nor
// committed, so it comes back on the next start. A Sink runs once.
func (s *Sink) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("timescale: Run called twice")
	}
	defer s.w.close()

	if err := s.retry(ctx, "migrating the database", func() error {
		return s.w.migrate(ctx, s.cfg.Retention)
	}); err != nil {
		return nil // ctx ended
	}

	cl, err := kgo.NewClient(
		kgo.SeedBrokers(s.cfg.KafkaBrokers...),
		kgo.ClientID("sailstream-timescale"),
		kgo.ConsumerGroup(s.cfg.Group),
		kgo.ConsumeTopics(s.cfg.EnrichedTopic),
		// Only committed transactions: the core writes exactly once, and
		// its aborted attempts must never reach the table.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Offsets are committed by hand, after the database commit.
		kgo.DisableAutoCommit(),
	)
	if err != nil {
		return fmt.Errorf("timescale: kafka client: %w", err)
	}
	defer cl.Close()
	if err := kafkatopic.Ensure(ctx, cl, kafkatopic.Spec{Name: s.cfg.EnrichedTopic, Partitions: s.cfg.Partitions}); err != nil && ctx.Err() == nil {
		s.log.Warn("could not ensure the enriched topic; consuming anyway", "topic", s.cfg.EnrichedTopic, "err", err)
	}
	s.log.Info("timescale sink running", "topic", s.cfg.EnrichedTopic, "group", s.cfg.Group,
		"mode", s.w.mode, "batch_size", s.cfg.BatchSize, "batch_timeout", s.cfg.BatchTimeout.String())
	defer s.log.Info("timescale sink stopped", "topic", s.cfg.EnrichedTopic, "group", s.cfg.Group)

	var batch []*kgo.Record
	var batchStart time.Time
	for {
		pollCtx, cancel := ctx, context.CancelFunc(func() {})
		if len(batch) > 0 {
			pollCtx, cancel = context.WithDeadline(ctx, batchStart.Add(s.cfg.BatchTimeout))
		}
		fetches := cl.PollRecords(pollCtx, s.cfg.BatchSize-len(batch))
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return // the batch timer, not Kafka
			}
			s.m.fetchErrors.Inc()
			s.log.Warn("kafka fetch failed", "topic", topic, "partition", partition, "err", err)
		})
		if len(batch) == 0 && !fetches.Empty() {
			batchStart = time.Now()
		}
		fetches.EachRecord(func(r *kgo.Record) { batch = append(batch, r) })
		if len(batch) == 0 || (len(batch) < s.cfg.BatchSize && time.Since(batchStart) < s.cfg.BatchTimeout) {
			continue
		}
		if err := s.flush(ctx, cl, batch); err != nil {
			return nil // ctx ended before the batch was written
		}
		batch = batch[:0]
	}
}

// flush writes one batch, retrying until it is written or ctx ends, then
// commits its offsets.
func (s *Sink) flush(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) error {
	rows := make([]row, 0, len(recs))
	for _, r := range recs {
		rw, err := decodeRecord(r)
		if err != nil {
			reason := telemetry.Reason(err)
			s.m.decodeErrors.WithLabelValues(reason).Inc()
			s.log.Warn("skipping a record that is not a valid enriched reading (it stays in the topic)",
				"topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "key", string(r.Key), "reason", reason, "err", err)
			continue
		}
		rows = append(rows, rw)
	}
	if len(rows) > 0 {
		if err := s.retry(ctx, "writing a batch", func() error { return s.w.write(ctx, rows) }); err != nil {
			return err
		}
	}
	// The rows are committed in the database: commit the offsets even if
	// ctx has just ended, so a clean shutdown does not redeliver them.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := cl.CommitRecords(cctx, recs...); err != nil {
		// Not fatal: the records come back and write nothing twice.
		s.m.commitErrors.Inc()
		s.log.Warn("committing offsets failed; the batch will be redelivered (harmless: writes are idempotent)", "err", err)
	}
	s.prune(ctx)
	return nil
}

// prune deletes expired readings on plain PostgreSQL now and then.
func (s *Sink) prune(ctx context.Context) {
	if s.cfg.Retention == 0 || s.w.mode != ModePostgres || time.Since(s.lastPrune) < pruneInterval {
		return
	}
	s.lastPrune = time.Now()
	n, err := s.w.prune(ctx, s.cfg.Retention)
	if err != nil {
		s.log.Warn("deleting expired readings failed (retried later)", "retention", s.cfg.Retention, "err", err)
		return
	}
	if n > 0 {
		s.log.Info("deleted expired readings", "rows", n, "retention", s.cfg.Retention)
	}
}

// retry calls op until it succeeds or ctx ends (then it returns ctx's
// error), sleeping with capped exponential backoff and jitter in between.
func (s *Sink) retry(ctx context.Context, what string, op func() error) error {
	delay := s.cfg.RetryMin
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil {
			if attempt > 1 {
				s.log.Info("database is back", "op", what, "attempts", attempt)
			}
			s.m.dbUp.Set(1)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.m.dbUp.Set(0)
		s.m.retries.Inc()
		s.log.Warn("database unavailable; holding the batch and its offsets and retrying", "op", what,
			"attempt", attempt, "retry_in", delay, "err", err)
		// ±20% jitter so that several sinks do not retry in step.
		sleep := time.Duration(float64(delay) * (0.8 + 0.4*rand.Float64()))
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(delay*2, s.cfg.RetryMax)
	}
}

type metrics struct {
	rowsWritten   prometheus.Counter
	rowsDuplicate prometheus.Counter
	rowsRejected  prometheus.Counter
	batches       prometheus.Counter
	batchDuration prometheus.Histogram
	decodeErrors  *prometheus.CounterVec
	retries       prometheus.Counter
	dbUp          prometheus.Gauge
	commitErrors  prometheus.Counter
	fetchErrors   prometheus.Counter
}

func newMetrics() *metrics {
	return &metrics{
		rowsWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sailstream_timescale_rows_written_total",
			Help: "Readings inserted into the readings table.",
		}),
		rowsDuplicate: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sailstream_timescale_rows_duplicate_total",
			Help: "Readings already in the table (redelivered), skipped by ON CONFLICT DO NOTHING.",
		}),
		rowsRejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sailstream_timescale_rows_rejected_total",
			Help: "Readings the database refused as invalid data (logged with partition and offset; they stay in the topic).",
		}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sailstream_timescale_batches_total",
			Help: "Batches committed to the database.",
		}),
		batchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sailstream_timescale_batch_duration_seconds",
			Help:    "Time to write one batch (COPY, INSERT, COMMIT) that succeeded.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		decodeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sailstream_timescale_decode_errors_total",
			Help: "Records that are not valid enriched readings, by reason; skipped and logged with their partition and offset.",
		}, []string{"reason"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sailstream_timescale_write_retries_total",
			Help: "Failed database attempts (write or migration) that were retried after a backoff.",
		}),
		dbUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sailstream_timescale_db_up",
			Help: "1 when the last database operation succeeded, 0 while the sink is retrying.",
		}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sailstream_timescale_offset_commit_errors_total",
			Help: "Kafka offset commits that failed after a database commit (the batch is redelivered and writes nothing twice).",
		}),
		fetchErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sailstream_timescale_kafka_fetch_errors_total",
			Help: "Errors returned by Kafka fetches.",
		}),
	}
}

func (m *metrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.rowsWritten, m.rowsDuplicate, m.rowsRejected, m.batches,
		m.batchDuration, m.decodeErrors, m.retries, m.dbUp, m.commitErrors, m.fetchErrors} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
