//go:build unix

package testenv

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvPostgres is set by the test bed to the postgres:// URL of its
// PostgreSQL server (superuser "postgres", trust authentication).
const EnvPostgres = "SAILSTREAM_TEST_POSTGRES"

// EnvPostgresBin overrides the directory StartPostgres takes initdb and
// postgres from.
const EnvPostgresBin = "SAILSTREAM_POSTGRES_BIN"

// PostgresURL returns the URL of the test bed's PostgreSQL server. Tests
// that write tables should work in a database of their own:
// PostgresDatabase(t, PostgresURL(t)).
func PostgresURL(t testing.TB) string {
	t.Helper()
	return lookup(t, EnvPostgres, "PostgreSQL")
}

// PostgresOptions configures StartPostgres. The zero value is ready to use.
type PostgresOptions struct {
	// BinDir holds initdb and postgres. Default: $SAILSTREAM_POSTGRES_BIN,
	// else the directory of initdb on PATH, else the newest
	// /usr/lib/postgresql/*/bin (Debian's packages).
	BinDir string
	// Dir holds the logs and, when the server's user can reach it, the
	// cluster (data/ and the unix socket directory sock/). Default: a new
	// temporary directory that Stop removes.
	Dir string
	// Port to listen on (127.0.0.1 only). Default: a free port.
	Port int
	// Settings are extra server settings (postgres -c name=value), added to
	// or overriding the defaults fit for tests (fsync off, ...).
	Settings map[string]string
	// StartTimeout bounds initdb and the wait for the server to accept
	// connections. Default 60s.
	StartTimeout time.Duration
}

// Postgres is a running throwaway PostgreSQL cluster started by
// StartPostgres.
type Postgres struct {
	opts    PostgresOptions
	dir     string // Dir: logs
	ownDir  bool
	root    string // holds data/ and sock/
	ownRoot bool   // root is a separate temporary directory
	cred    *syscall.Credential
	addr    string
	outFile string

	mu sync.Mutex
	p  *proc
}

// PostgresBinDir returns the directory holding initdb and postgres, or an
// error that says how to install them.
func PostgresBinDir() (string, error) {
	if d := os.Getenv(EnvPostgresBin); d != "" {
		return d, nil
	}
	if b, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(b), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return pgMajor(b) - pgMajor(a) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("initdb not found (not on PATH nor in /usr/lib/postgresql/*/bin): run `make deps` (apt-get install postgresql-15)")
}

// pgMajor is the major version in /usr/lib/postgresql/<major>/bin, or 0.
func pgMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// StartPostgres creates a throwaway cluster (initdb: superuser "postgres",
// trust authentication, UTF-8, C locale) and starts it on 127.0.0.1 with
// settings for tests: fsync and full-page writes off (a killed server keeps
// every committed transaction, only an OS crash could lose them), unix
// socket in the cluster's own directory. initdb and postgres refuse to run
// as root, so as root they run as the user "postgres". It returns once the
// server accepts connections; ctx bounds only the start.
func StartPostgres(ctx context.Context, opts PostgresOptions) (*Postgres, error) {
	if opts.BinDir == "" {
		d, err := PostgresBinDir()
		if err != nil {
			return nil, fmt.Errorf("postgres: %w", err)
		}
		opts.BinDir = d
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 60 * time.Second
	}
	pg := &Postgres{opts: opts}
	if os.Geteuid() == 0 {
		cred, err := postgresUser()
		if err != nil {
			return nil, fmt.Errorf("postgres: %w", err)
		}
		pg.cred = cred
	}
	dir, own, err := workDir(opts.Dir, "sailstream-postgres-")
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	pg.dir, pg.ownDir = dir, own
	pg.outFile = filepath.Join(dir, "postgres.log")
	if err := pg.makeRoot(); err != nil {
		pg.cleanup()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()
	if err := pg.initdb(ctx); err != nil {
		err = fmt.Errorf("%w\n%s", err, pg.LogTail(30))
		pg.cleanup()
		return nil, err
	}
	for i := 0; ; i++ {
		port := opts.Port
		if port == 0 {
			ps, err := freePorts(1)
			if err != nil {
				pg.cleanup()
				return nil, fmt.Errorf("postgres: %w", err)
			}
			port = ps[0]
		}
		pg.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		err = pg.start(ctx)
		if err == nil {
			return pg, nil
		}
		if opts.Port != 0 || i+1 >= attempts || !logSaysAddrInUse(pg.outFile) {
			err = fmt.Errorf("%w\n%s", err, pg.LogTail(30))
			pg.cleanup()
			return nil, err
		}
	}
}

// postgresUser looks up the user "postgres" that the server runs as when
// we are root.
func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, and PostgreSQL refuses root: need the user \"postgres\" (the Debian package creates it): %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("user postgres: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

// makeRoot picks the directory for data/ and sock/: Dir when the server's
// user can reach it and the socket path fits the kernel's limit (107
// bytes), else a short temporary directory of its own.
func (pg *Postgres) makeRoot() error {
	pg.root = pg.dir
	sock := filepath.Join(pg.dir, "sock", ".s.PGSQL.65535")
	if len(sock) > 100 || (pg.cred != nil && !reachable(pg.dir, pg.cred)) {
		r, err := os.MkdirTemp("", "sailstream-pg-")
		if err != nil {
			return err
		}
		if err := os.Chmod(r, 0o755); err != nil {
			os.RemoveAll(r)
			return err
		}
		pg.root, pg.ownRoot = r, true
	}
	for _, d := range []string{pg.dataDir(), pg.sockDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		if pg.cred != nil {
			if err := os.Chown(d, int(pg.cred.Uid), int(pg.cred.Gid)); err != nil {
				return err
			}
		}
	}
	return nil
}

// reachable reports whether the user cred can search dir and every
// directory above it.
func reachable(dir string, cred *syscall.Credential) bool {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for {
		fi, err := os.Stat(dir)
		if err != nil {
			return false
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return false
		}
		mode := fi.Mode().Perm()
		var bit os.FileMode = 0o001
		switch {
		case st.Uid == cred.Uid:
			bit = 0o100
		case st.Gid == cred.Gid:
			bit = 0o010
		}
		if mode&bit == 0 {
			return false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return true
		}
		dir = parent
	}
}

func (pg *Postgres) dataDir() string { return filepath.Join(pg.root, "data") }
func (pg *Postgres) sockDir() string { return filepath.Join(pg.root, "sock") }

func (pg *Postgres) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(pg.opts.BinDir, name), args...)
	cmd.Dir = pg.root
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	return cmd
}

func (pg *Postgres) initdb(ctx context.Context) error {
	cmd := pg.command("initdb", "-D", pg.dataDir(), "-U", "postgres", "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-sync")
	p, err := pg.startProc("initdb", cmd)
	if err != nil {
		return err
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		p.kill()
		return fmt.Errorf("postgres: initdb: %w", ctx.Err())
	}
	if p.waitErr != nil {
		return fmt.Errorf("postgres: initdb: %w", p.waitErr)
	}
	return nil
}

func (pg *Postgres) settings() []string {
	_, port, _ := net.SplitHostPort(pg.addr)
	s := map[string]string{
		"port":                      port,
		"listen_addresses":          "127.0.0.1",
		"unix_socket_directories":   pg.sockDir(),
		"fsync":                     "off",
		"full_page_writes":          "off",
		"max_connections":           "200",
		"logging_collector":         "off",
		"log_min_messages":          "warning",
		"log_timezone":              "UTC",
		"timezone":                  "UTC",
		"shared_buffers":            "128MB",
		"max_wal_size":              "1GB",
		"checkpoint_timeout":        "30min",
		"log_line_prefix":           "%m [%p] ",
		"max_locks_per_transaction": "256",
	}
	for k, v := range pg.opts.Settings {
		s[k] = v
	}
	var args []string
	for _, k := range slices.Sorted(maps.Keys(s)) {
		args = append(args, "-c", k+"="+s[k])
	}
	return args
}

func (pg *Postgres) start(ctx context.Context) error {
	cmd := pg.command("postgres", append([]string{"-D", pg.dataDir()}, pg.settings()...)...)
	p, err := pg.startProc("postgres", cmd)
	if err != nil {
		return err
	}
	err = p.waitReady(ctx, pg.opts.StartTimeout, 50*time.Millisecond, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, pg.URL())
		if err != nil {
			return err
		}
		defer c.Close(context.Background())
		return c.Ping(ctx)
	})
	if err != nil {
		killGroup(p)
		return err
	}
	pg.mu.Lock()
	pg.p = p
	pg.mu.Unlock()
	return nil
}

// startProc is startProc (process.go) with the process run as pg.cred:
// as root, PostgreSQL must run as another user.
func (pg *Postgres) startProc(name string, cmd *exec.Cmd) (*proc, error) {
	if pg.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.cred}
	}
	return startProc(name, cmd, pg.outFile)
}

// killGroup SIGKILLs the postmaster and its backends (its process group:
// startProc gives it one), so that a restart finds no old backend holding
// the shared memory.
func killGroup(p *proc) error {
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	return p.kill()
}

// Addr returns the server's host:port.
func (pg *Postgres) Addr() string { return pg.addr }

// URL returns the postgres:// URL of the "postgres" database as superuser
// postgres, the form SAILSTREAM_TEST_POSTGRES takes.
func (pg *Postgres) URL() string { return pg.DatabaseURL("postgres") }

// DatabaseURL returns the URL of database db on this server.
func (pg *Postgres) DatabaseURL(db string) string {
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Host: pg.addr, Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// Dir returns the directory with the server's log.
func (pg *Postgres) Dir() string { return pg.dir }

// DataDir returns the cluster's data directory.
func (pg *Postgres) DataDir() string { return pg.dataDir() }

// LogFile returns the server's log (its stdout and stderr).
func (pg *Postgres) LogFile() string { return pg.outFile }

// LogTail returns the last n lines of the server's log.
func (pg *Postgres) LogTail(n int) string { return tailFiles(n, pg.outFile) }

// Pid returns the postmaster's process id (0 when stopped).
func (pg *Postgres) Pid() int {
	pg.mu.Lock()
	defer pg.mu.Unlock()
	if pg.p == nil {
		return 0
	}
	return pg.p.pid()
}

// Kill stops the server at once with SIGKILL (the postmaster and every
// backend), keeping its data, so a test can see how clients cope with a
// database that vanishes; Restart brings it back on the same address with
// the same data (crash recovery replays the WAL).
func (pg *Postgres) Kill() error {
	p := pg.take()
	if p == nil {
		return nil
	}
	return killGroup(p)
}

// take returns the running server's process (nil when stopped) and
// forgets it.
func (pg *Postgres) take() *proc {
	pg.mu.Lock()
	defer pg.mu.Unlock()
	p := pg.p
	pg.p = nil
	return p
}

// Restart starts a stopped or killed server again on the same address and
// data directory (if it is running it is stopped first).
func (pg *Postgres) Restart(ctx context.Context) error {
	if err := pg.stopProc(); err != nil {
		return err
	}
	return pg.start(ctx)
}

// stopProc asks for a fast shutdown (SIGINT: abort transactions, disconnect
// clients, checkpoint), then SIGKILLs the group after 10s.
func (pg *Postgres) stopProc() error {
	p := pg.take()
	if p == nil {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return killGroup(p)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return killGroup(p)
	}
}

// Stop stops the server and removes the directories StartPostgres
// created. It is safe to call more than once.
func (pg *Postgres) Stop() error {
	err := pg.stopProc()
	pg.cleanup()
	return err
}

func (pg *Postgres) cleanup() {
	if pg.ownRoot {
		os.RemoveAll(pg.root)
	}
	if pg.ownDir {
		os.RemoveAll(pg.dir)
	}
}

// NewPostgres starts a PostgreSQL server of the test's own (for a test that
// must kill or restart its database; the shared one is PostgresURL) and
// stops it when the test ends. The test is skipped when PostgreSQL is not
// installed, unless SAILSTREAM_TEST_REQUIRE_SERVICES=1.
func NewPostgres(t testing.TB, opts PostgresOptions) *Postgres {
	t.Helper()
	if opts.BinDir == "" {
		if _, err := PostgresBinDir(); err != nil {
			skipOrFail(t, err)
		}
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	return startForTest(t, func() (*Postgres, error) { return StartPostgres(context.Background(), opts) })
}

// CreateDatabase creates a new database named prefix plus a random suffix
// on the server at serverURL and returns its URL.
func CreateDatabase(ctx context.Context, serverURL, prefix string) (string, error) {
	name := Unique(prefix)
	c, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return "", fmt.Errorf("postgres: connecting to %s: %w", serverURL, err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("postgres: creating database %s: %w", name, err)
	}
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", fmt.Errorf("postgres: %w", err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

// PostgresDatabase creates a database of the test's own on the server at
// serverURL (PostgresURL(t), or the URL of a NewPostgres server), so tests
// running in parallel do not share tables, and drops it when the test ends.
// It returns the database's URL.
func PostgresDatabase(t testing.TB, serverURL string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dbURL, err := CreateDatabase(ctx, serverURL, "test_")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, serverURL)
		if err != nil {
			t.Logf("dropping the test database: %v", err)
			return
		}
		defer c.Close(context.Background())
		u, _ := url.Parse(dbURL)
		name := u.Path[1:]
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Logf("dropping the test database %s: %v", name, err)
		}
	})
	return dbURL
}
