package timescale

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sailstream/sailstream/telemetry"
)

// DefaultMaxTrackPoints is the most points Track returns when
// StoreOptions.MaxTrackPoints is zero: a day of one reading a second.
const DefaultMaxTrackPoints = 86_400

// StoreOptions configures OpenStore. The zero value is ready to use.
type StoreOptions struct {
	// MaxConns is the most connections the store opens at once; default 4.
	MaxConns int
	// MaxTrackPoints caps what one Track returns (the earliest points of
	// the range); default DefaultMaxTrackPoints.
	MaxTrackPoints int
}

// Store reads what the Sink wrote. It is safe for concurrent use and opens
// connections on demand (so it can be created while the database is down),
// keeping up to MaxConns of them for reuse.
type Store struct {
	cfg   *pgx.ConnConfig
	max   int
	slots chan struct{}
	idle  chan *pgx.Conn

	closed atomic.Bool
}

// OpenStore returns a store for the database at databaseURL. It does not
// connect yet; a bad URL is the only error.
func OpenStore(databaseURL string, opts StoreOptions) (*Store, error) {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("timescale: database URL: %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	cfg.RuntimeParams["application_name"] = "sailstream-store"
	if opts.MaxConns <= 0 {
		opts.MaxConns = 4
	}
	if opts.MaxTrackPoints <= 0 {
		opts.MaxTrackPoints = DefaultMaxTrackPoints
	}
	return &Store{
		cfg:   cfg,
		max:   opts.MaxTrackPoints,
		slots: make(chan struct{}, opts.MaxConns),
		idle:  make(chan *pgx.Conn, opts.MaxConns),
	}, nil
}

// ErrStoreClosed is returned by a Store after Close.
var ErrStoreClosed = errors.New("timescale: store closed")

// with runs f on a connection of the store's, which is kept for reuse
// unless f broke it.
func (s *Store) with(ctx context.Context, f func(*pgx.Conn) error) error {
	if s.closed.Load() {
		return ErrStoreClosed
	}
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.slots }()
	var c *pgx.Conn
	select {
	case c = <-s.idle:
	default:
	}
	if c == nil || c.IsClosed() {
		var err error
		if c, err = pgx.ConnectConfig(ctx, s.cfg); err != nil {
			return fmt.Errorf("timescale: connecting to %s:%d: %w", s.cfg.Host, s.cfg.Port, err)
		}
	}
	err := f(c)
	if c.IsClosed() || ctx.Err() != nil || s.closed.Load() {
		_ = c.Close(context.Background())
		return err
	}
	select {
	case s.idle <- c:
		if s.closed.Load() { // Close ran meanwhile
			s.closeIdle()
		}
	default:
		_ = c.Close(context.Background())
	}
	return err
}

// Track returns the readings of device with from <= event time < to, in
// time order (at most MaxTrackPoints, the earliest ones). Times come back in
// UTC at the database's microsecond precision.
func (s *Store) Track(ctx context.Context, device string, from, to time.Time) ([]telemetry.Enriched, error) {
	var out []telemetry.Enriched
	err := s.with(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, `SELECT device_id, seq, event_time, lat, lon, distance_m, speed_ms, speed_kn, course_deg,
       received_at, processed_at, coalesce(latency_ms, 0), udf, udf_version, fields
FROM readings
WHERE device_id = $1 AND event_time >= $2 AND event_time < $3
ORDER BY event_time, seq
LIMIT $4`, device, from, to, s.max)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (telemetry.Enriched, error) {
			var e telemetry.Enriched
			var seq int64
			var received, processed *time.Time
			err := r.Scan(&e.Device, &seq, &e.Time, &e.Lat, &e.Lon, &e.DistanceM, &e.SpeedMS, &e.SpeedKn, &e.CourseDeg,
				&received, &processed, &e.LatencyMS, &e.UDF, &e.UDFVersion, &e.Fields)
			e.Seq, e.Time = uint64(seq), e.Time.UTC()
			if received != nil {
				e.ReceivedAt = received.UTC()
			}
			if processed != nil {
				e.ProcessedAt = processed.UTC()
			}
			return e, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("timescale: track of %s: %w", device, err)
	}
	return out, nil
}

// Close closes the idle connections; calls in flight close theirs when
// they finish, and later calls return ErrStoreClosed.
func (s *Store) Close() error {
	s.closed.Store(true)
	s.closeIdle()
	return nil
}

func (s *Store) closeIdle() {
	for {
		select {
		case c := <-s.idle:
			_ = c.Close(context.Background())
		default:
			return
		}
	}
}
