package timescale

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

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

// Store reads what the Sink wrote. It is safe for concurrent use; its
// pgxpool connects on demand (so it can be created while the database is
// down) and keeps up to MaxConns connections.
type Store struct {
	pool   *pgxpool.Pool
	max    int
	closed atomic.Bool
}

// OpenStore returns a store for the database at databaseURL. It does not
// connect yet; a bad URL is the only error.
func OpenStore(databaseURL string, opts StoreOptions) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("timescale: database URL: %w", err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "sailstream-store"
	if opts.MaxConns <= 0 {
		opts.MaxConns = 4
	}
	cfg.MaxConns = int32(opts.MaxConns)
	if opts.MaxTrackPoints <= 0 {
		opts.MaxTrackPoints = DefaultMaxTrackPoints
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("timescale: connection pool: %w", err)
	}
	return &Store{pool: pool, max: opts.MaxTrackPoints}, nil
}

// ErrStoreClosed is returned by a Store after Close.
var ErrStoreClosed = errors.New("timescale: store closed")

// Track returns the readings of device with from <= event time < to, in
// time order (at most MaxTrackPoints, the earliest ones). Times come back in
// UTC at the database's microsecond precision.
func (s *Store) Track(ctx context.Context, device string, from, to time.Time) ([]telemetry.Enriched, error) {
	if s.closed.Load() {
		return nil, ErrStoreClosed
	}
	var out []telemetry.Enriched
	err := func() error {
		rows, err := s.pool.Query(ctx, `SELECT device_id, seq, event_time, lat, lon, distance_m, speed_ms, speed_kn, course_deg,
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
	}()
	if err != nil {
		return nil, fmt.Errorf("timescale: track of %s: %w", device, err)
	}
	return out, nil
}

// Close closes the pool's connections, waiting for calls in flight; later
// calls return ErrStoreClosed.
func (s *Store) Close() error {
	s.closed.Store(true)
	s.pool.Close()
	return nil
}
