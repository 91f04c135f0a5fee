//go:build unix

package testenv

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestStartPostgres(t *testing.T) {
	if _, err := PostgresBinDir(); err != nil {
		skipOrFail(t, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg, err := StartPostgres(ctx, PostgresOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir, data, pid := pg.Dir(), pg.DataDir(), pg.Pid()
	if !strings.HasPrefix(pg.URL(), "postgres://postgres@127.0.0.1:") || !listening(pg.Addr()) {
		t.Fatalf("URL %q / addr %q: not a listening 127.0.0.1 server", pg.URL(), pg.Addr())
	}
	if !alive(pid) {
		t.Fatalf("pid %d not running", pid)
	}

	// A database of its own, with a row in it.
	dbURL, err := CreateDatabase(ctx, pg.URL(), "starter_")
	if err != nil {
		t.Fatal(err)
	}
	exec := func(sql string) {
		t.Helper()
		c, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	exec("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before kill')")

	// Kill takes the server (and every backend) away at once; Restart
	// brings it back on the same address with the committed data.
	if err := pg.Kill(); err != nil {
		t.Fatal(err)
	}
	if alive(pid) || listening(pg.Addr()) {
		t.Fatalf("after Kill: pid %d alive=%v, listening=%v", pid, alive(pid), listening(pg.Addr()))
	}
	if _, err := pgx.Connect(ctx, dbURL); err == nil {
		t.Fatal("connected to a killed server")
	}
	if err := pg.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	var v string
	if err := c.QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != "before kill" {
		t.Fatalf("after Kill and Restart: got %q, %v; want the row written before", v, err)
	}
	c.Close(ctx)
	pid = pg.Pid()

	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Errorf("pid %d still alive after Stop", pid)
	}
	for _, d := range []string{dir, data} {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("Stop left %s (stat: %v)", d, err)
		}
	}
	if err := pg.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// TestNewPostgresDatabase checks the per-test helpers: a server in the
// test's own (maybe unreachable for user postgres) TempDir, and databases
// that are separate and dropped at the end.
func TestNewPostgresDatabase(t *testing.T) {
	pg := NewPostgres(t, PostgresOptions{})
	ctx := context.Background()
	var names []string
	for range 2 {
		u := PostgresDatabase(t, pg.URL())
		c, err := pgx.Connect(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, "CREATE TABLE t (x int)"); err != nil {
			t.Fatal(err)
		}
		var name string
		if err := c.QueryRow(ctx, "SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
		c.Close(ctx)
		names = append(names, name)
	}
	if names[0] == names[1] || !strings.HasPrefix(names[0], "test_") {
		t.Fatalf("databases %q: want two distinct test_* databases", names)
	}
}

func TestPostgresURLFromEnv(t *testing.T) {
	t.Setenv(EnvPostgres, "postgres://postgres@127.0.0.1:1/postgres")
	if got := PostgresURL(t); got != "postgres://postgres@127.0.0.1:1/postgres" {
		t.Fatalf("PostgresURL = %q", got)
	}
}
