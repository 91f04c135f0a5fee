package timescale

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"regexp"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Mode is what the database offers the sink.
type Mode string

// Modes.
const (
	// ModePostgres is plain PostgreSQL: readings with a BRIN index on
	// time, readings_1m a view, retention by periodic DELETE.
	ModePostgres Mode = "postgres"
	// ModeTimescale is TimescaleDB: readings a compressed hypertable,
	// readings_1m a continuous aggregate, retention a policy.
	ModeTimescale Mode = "timescaledb"
)

// migrationsFS holds the schema, one file per version and mode:
// NNNN_name.sql for both modes, or NNNN_name.postgres.sql and
// NNNN_name.timescaledb.sql. Versions only ever get added.
//
//go:embed migrations/*.sql
var migrationsFS embed.FS

type migration struct {
	version int
	name    string
	sql     map[Mode]string
}

var migrationName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+?)(?:\.(postgres|timescaledb))?\.sql$`)

// loadMigrations reads and checks the embedded migrations: versions 1..n
// without gaps, each with SQL for both modes.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	files, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	byVersion := map[int]*migration{}
	for _, f := range files {
		m := migrationName.FindStringSubmatch(path.Base(f))
		if m == nil {
			return nil, fmt.Errorf("migration %s: name is not NNNN_name[.postgres|.timescaledb].sql", f)
		}
		v, _ := strconv.Atoi(m[1])
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		mig := byVersion[v]
		if mig == nil {
			mig = &migration{version: v, name: m[2], sql: map[Mode]string{}}
			byVersion[v] = mig
		}
		modes := []Mode{ModePostgres, ModeTimescale}
		if m[3] != "" {
			modes = []Mode{Mode(m[3])}
		}
		for _, mode := range modes {
			if _, dup := mig.sql[mode]; dup {
				return nil, fmt.Errorf("migration %04d has two files for mode %s", v, mode)
			}
			mig.sql[mode] = string(b)
		}
	}
	var out []migration
	for v := 1; v <= len(byVersion); v++ {
		mig := byVersion[v]
		if mig == nil {
			return nil, fmt.Errorf("migration %04d is missing (versions must run 1..n without gaps)", v)
		}
		if len(mig.sql) != 2 {
			return nil, fmt.Errorf("migration %04d_%s lacks SQL for one mode", v, mig.name)
		}
		out = append(out, *mig)
	}
	return out, nil
}

var (
	migrations    = mustLoadMigrations()
	latestVersion = len(migrations)
)

func mustLoadMigrations() []migration {
	m, err := loadMigrations(migrationsFS)
	if err != nil {
		panic("timescale: embedded migrations: " + err.Error())
	}
	return m
}

// migrationLock is the advisory lock key that serializes migrations of
// sinks starting together ("sailstre").
const migrationLock int64 = 0x7361696c73747265

// ErrSchemaTooNew means the database was migrated by a newer sailstream.
var ErrSchemaTooNew = errors.New("database schema is newer than this sailstream")

// Migrate brings the schema of the database at databaseURL up to date, as
// the Sink does when it starts, and returns the mode it runs in. It is for
// tools and tests that need the tables without running a sink.
func Migrate(ctx context.Context, databaseURL string, log *slog.Logger) (Mode, error) {
	c, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return "", fmt.Errorf("timescale: connecting: %w", err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return migrate(ctx, c, latestVersion, log)
}

// migrate applies the migrations after the database's version up to
// target, in one transaction under an advisory lock, and records each in
// schema_migrations. The mode is chosen when the first migration runs
// (TimescaleDB when the extension is available and can be created) and
// kept from then on.
func migrate(ctx context.Context, c *pgx.Conn, target int, log *slog.Logger) (Mode, error) {
	tx, err := c.Begin(ctx)
	if err != nil {
		return "", fmt.Errorf("timescale: migrate: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
		return "", fmt.Errorf("timescale: migrate: advisory lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    mode       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
		return "", fmt.Errorf("timescale: migrate: schema_migrations: %w", err)
	}
	var current int
	var recorded *string
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0), (SELECT mode FROM schema_migrations WHERE version = 1)
FROM schema_migrations`).Scan(&current, &recorded); err != nil {
		return "", fmt.Errorf("timescale: migrate: reading schema_migrations: %w", err)
	}
	if current > latestVersion {
		return "", fmt.Errorf("timescale: %w: version %d, this binary knows up to %d: upgrade sailstream", ErrSchemaTooNew, current, latestVersion)
	}
	var mode Mode
	if recorded != nil {
		mode = Mode(*recorded)
		if mode != ModePostgres && mode != ModeTimescale {
			return "", fmt.Errorf("timescale: migrate: schema_migrations records unknown mode %q", mode)
		}
	} else if mode, err = chooseMode(ctx, tx, log); err != nil {
		return "", err
	}
	var applied []int
	for _, m := range migrations[min(current, target):target] {
		if _, err := tx.Exec(ctx, m.sql[mode]); err != nil {
			return "", fmt.Errorf("timescale: migration %04d_%s (%s): %w", m.version, m.name, mode, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, mode) VALUES ($1, $2, $3)`,
			m.version, m.name, string(mode)); err != nil {
			return "", fmt.Errorf("timescale: recording migration %04d: %w", m.version, err)
		}
		applied = append(applied, m.version)
	}
	if err := tx.Commit(ctx); err != nil {
		return "", fmt.Errorf("timescale: migrate: commit: %w", err)
	}
	log.Info("database schema up to date", "mode", mode, "version", max(current, min(target, latestVersion)),
		"applied", applied)
	return mode, nil
}

// chooseMode picks TimescaleDB when the extension is available and can be
// created (it also needs shared_preload_libraries), else plain PostgreSQL.
func chooseMode(ctx context.Context, tx pgx.Tx, log *slog.Logger) (Mode, error) {
	var available bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')`).Scan(&available); err != nil {
		return "", fmt.Errorf("timescale: migrate: checking for the timescaledb extension: %w", err)
	}
	if !available {
		log.Info("timescaledb extension not available: using plain PostgreSQL (BRIN index, readings_1m view)")
		return ModePostgres, nil
	}
	sp, err := tx.Begin(ctx) // a savepoint: a failed CREATE EXTENSION must not abort the migration
	if err != nil {
		return "", fmt.Errorf("timescale: migrate: savepoint: %w", err)
	}
	if _, err := sp.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS timescaledb`); err != nil {
		_ = sp.Rollback(ctx)
		log.Warn("timescaledb is installed but cannot be created (is it in shared_preload_libraries?): using plain PostgreSQL", "err", err)
		return ModePostgres, nil
	}
	if err := sp.Commit(ctx); err != nil {
		return "", fmt.Errorf("timescale: migrate: release savepoint: %w", err)
	}
	log.Info("timescaledb extension available: using a hypertable, compression and a continuous aggregate")
	return ModeTimescale, nil
}

// applyRetention sets the TimescaleDB retention policy from the sink's
// configuration (0 removes it); plain PostgreSQL prunes in the sink.
func applyRetention(ctx context.Context, c *pgx.Conn, mode Mode, retention time.Duration) error {
	if mode != ModeTimescale {
		return nil
	}
	if _, err := c.Exec(ctx, `SELECT remove_retention_policy('readings', if_exists => true)`); err != nil {
		return fmt.Errorf("timescale: removing the old retention policy: %w", err)
	}
	if retention == 0 {
		return nil
	}
	if _, err := c.Exec(ctx, `SELECT add_retention_policy('readings', drop_after => make_interval(secs => $1))`,
		retention.Seconds()); err != nil {
		return fmt.Errorf("timescale: adding the retention policy: %w", err)
	}
	return nil
}
