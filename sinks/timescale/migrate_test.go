package timescale

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
)

func TestLoadMigrations(t *testing.T) {
	if latestVersion < 3 {
		t.Fatalf("latestVersion = %d, want at least 3 (readings, time index, readings_1m)", latestVersion)
	}
	for i, m := range migrations {
		if m.version != i+1 {
			t.Errorf("migrations[%d] is version %d", i, m.version)
		}
		for _, mode := range []Mode{ModePostgres, ModeTimescale} {
			if strings.TrimSpace(m.sql[mode]) == "" {
				t.Errorf("migration %d has no SQL for %s", m.version, mode)
			}
		}
	}
	if !strings.Contains(migrations[1].sql[ModeTimescale], "create_hypertable") ||
		!strings.Contains(migrations[1].sql[ModePostgres], "brin") {
		t.Error("migration 2 should make a hypertable under TimescaleDB and a BRIN index on PostgreSQL")
	}

	bad := map[string]fstest.MapFS{
		"gap":          {"migrations/0001_a.sql": {}, "migrations/0003_c.sql": {}},
		"one mode":     {"migrations/0001_a.postgres.sql": {}},
		"bad name":     {"migrations/1_a.sql": {}},
		"unknown mode": {"migrations/0001_a.mysql.sql": {}},
		"duplicate":    {"migrations/0001_a.sql": {}, "migrations/0001_b.postgres.sql": {}},
	}
	for name, fsys := range bad {
		if _, err := loadMigrations(fsys); err == nil {
			t.Errorf("%s: loadMigrations accepted it", name)
		}
	}
	ok := fstest.MapFS{"migrations/0001_a.sql": {Data: []byte("x")},
		"migrations/0002_b.postgres.sql": {Data: []byte("p")}, "migrations/0002_b.timescaledb.sql": {Data: []byte("t")}}
	ms, err := loadMigrations(ok)
	if err != nil || len(ms) != 2 || ms[1].sql[ModePostgres] != "p" || ms[1].sql[ModeTimescale] != "t" || ms[0].sql[ModeTimescale] != "x" {
		t.Errorf("loadMigrations = %+v, %v", ms, err)
	}
}

// TestIntegrationMigrate applies the schema to an empty database, again to
// the same one (nothing happens), and from an older version to the latest
// with data in it.
func TestIntegrationMigrate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := testDB(t)
	c := connect(t, dbURL)
	log := testLogger(t)

	for run := 1; run <= 2; run++ {
		mode, err := migrate(ctx, c, latestVersion, log)
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if mode != ModePostgres {
			t.Fatalf("run %d: mode %s; this machine has no TimescaleDB, want %s", run, mode, ModePostgres)
		}
		if n := count(t, c, `SELECT count(*) FROM schema_migrations WHERE mode = 'postgres'`); n != latestVersion {
			t.Fatalf("run %d: %d versions recorded, want %d", run, n, latestVersion)
		}
	}
	for _, q := range []string{
		`SELECT count(*) FROM pg_indexes WHERE tablename = 'readings' AND indexdef ILIKE '%USING brin (event_time)%'`,
		`SELECT count(*) FROM pg_views WHERE viewname = 'readings_1m'`,
		`SELECT count(*) FROM pg_constraint WHERE conname = 'readings_pkey'`,
	} {
		if n := count(t, c, q); n != 1 {
			t.Errorf("%s = %d, want 1", q, n)
		}
	}

	// From version 1 (with a reading in it) to the latest.
	old := connect(t, testDB(t))
	if _, err := migrate(ctx, old, 1, log); err != nil {
		t.Fatal(err)
	}
	if n := count(t, old, `SELECT count(*) FROM pg_views WHERE viewname = 'readings_1m'`); n != 0 {
		t.Fatal("version 1 already has readings_1m: the test does not test an upgrade")
	}
	if _, err := old.Exec(ctx, `INSERT INTO readings (device_id, seq, event_time, lat, lon, speed_kn, distance_m)
VALUES ('boat-1', 1, '2026-06-01T12:00:10Z', 52.4, 21.0, 4, 10), ('boat-1', 2, '2026-06-01T12:00:40Z', 52.4, 21.0, 6, 20)`); err != nil {
		t.Fatal(err)
	}
	if _, err := migrate(ctx, old, latestVersion, log); err != nil {
		t.Fatal(err)
	}
	if n := count(t, old, `SELECT max(version) FROM schema_migrations`); n != latestVersion {
		t.Fatalf("after the upgrade at version %d, want %d", n, latestVersion)
	}
	var readings int
	var avg, top, dist float64
	if err := old.QueryRow(ctx, `SELECT readings, avg_speed_kn, max_speed_kn, distance_m FROM readings_1m WHERE device_id = 'boat-1'`).
		Scan(&readings, &avg, &top, &dist); err != nil {
		t.Fatal(err)
	}
	if readings != 2 || avg != 5 || top != 6 || dist != 30 {
		t.Errorf("readings_1m = %d readings, avg %g, max %g, distance %g; want 2, 5, 6, 30", readings, avg, top, dist)
	}
}

// TestIntegrationMigrateConcurrently starts several migrations of one empty
// database at once: the advisory lock lets one apply the schema and the
// others find it done.
func TestIntegrationMigrateConcurrently(t *testing.T) {
	t.Parallel()
	dbURL := testDB(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		c := connect(t, dbURL)
		wg.Go(func() { _, errs[i] = migrate(context.Background(), c, latestVersion, testLogger(t)) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("migration %d: %v", i, err)
		}
	}
	if n := count(t, connect(t, dbURL), `SELECT count(*) FROM schema_migrations`); n != latestVersion {
		t.Errorf("%d versions recorded, want %d", n, latestVersion)
	}
}

func TestIntegrationMigrateRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	c := connect(t, testDB(t))
	ctx := context.Background()
	if _, err := migrate(ctx, c, latestVersion, testLogger(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, `INSERT INTO schema_migrations (version, name, mode) VALUES ($1, 'future', 'postgres')`, latestVersion+1); err != nil {
		t.Fatal(err)
	}
	if _, err := migrate(ctx, c, latestVersion, testLogger(t)); !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("migrate on a newer schema: %v, want ErrSchemaTooNew", err)
	}
}
