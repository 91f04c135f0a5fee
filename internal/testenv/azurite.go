package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Azurite, the Azure Storage emulator, runs from the npm package pinned in
// internal/testenv/azurite/package.json, which scripts/install-deps.sh
// installs with `npm ci` into internal/testenv/azurite/node_modules. Only its
// blob service is started.
const (
	// EnvAzurite is set by the test bed to the connection string of its
	// Azurite blob service.
	EnvAzurite = "SAILSTREAM_TEST_AZURITE"
	// EnvAzuriteMain overrides where StartAzurite looks for Azurite's blob
	// entry point (dist/src/blob/main.js of the npm package).
	EnvAzuriteMain = "SAILSTREAM_AZURITE_MAIN"
)

// Azurite's well-known development account. azblob needs it spelled out in
// the connection string: it does not understand UseDevelopmentStorage=true.
const (
	AzuriteAccount = "devstoreaccount1"
	AzuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// AzuriteSaveInterval is how often Azurite writes its blob metadata (a LokiJS
// database) to disk. Blob contents are on disk when a write is acknowledged,
// but a SIGKILL (Kill) loses the metadata of writes made in the last
// interval: a test that kills Azurite and expects earlier writes to survive
// waits this long (plus a margin) after them first. Stop and Restart use
// SIGTERM, on which Azurite saves everything.
const AzuriteSaveInterval = 5 * time.Second

// AzuriteConnectionString returns the connection string of the test bed's
// Azurite blob service.
func AzuriteConnectionString(t testing.TB) string {
	t.Helper()
	return lookup(t, EnvAzurite, "Azurite")
}

// AzuriteOptions configures StartAzurite. The zero value is ready to use.
type AzuriteOptions struct {
	// Main is Azurite's blob entry point. Default: $SAILSTREAM_AZURITE_MAIN,
	// else node_modules/azurite/dist/src/blob/main.js under
	// internal/testenv/azurite of this repository.
	Main string
	// Node is the node executable. Default: node on PATH.
	Node string
	// Dir holds the data (Azurite's --location) and the log. Default: a new
	// temporary directory that Stop removes.
	Dir string
	// Port to listen on (127.0.0.1 only). Default: a free port.
	Port int
	// StartTimeout bounds the wait for the listener. Default 30s.
	StartTimeout time.Duration
}

// Azurite is a running Azurite blob service started by StartAzurite.
type Azurite struct {
	opts    AzuriteOptions
	dir     string
	ownDir  bool
	addr    string
	outFile string

	mu sync.Mutex
	p  *proc
}

// AzuriteMain returns the path of Azurite's blob entry point, or an error
// that says how to install it.
func AzuriteMain() (string, error) {
	if m := os.Getenv(EnvAzuriteMain); m != "" {
		return m, nil
	}
	var roots []string
	if _, file, _, ok := runtime.Caller(0); ok {
		roots = append(roots, filepath.Dir(file))
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				roots = append(roots, filepath.Join(d, "internal", "testenv"))
				break
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	for _, r := range roots {
		m := filepath.Join(r, "azurite", "node_modules", "azurite", "dist", "src", "blob", "main.js")
		if _, err := os.Stat(m); err == nil {
			return m, nil
		}
	}
	return "", errors.New("azurite not installed (no internal/testenv/azurite/node_modules/azurite): run `make deps` (npm ci in internal/testenv/azurite)")
}

// StartAzurite starts Azurite's blob service on 127.0.0.1 with its data in
// the options' Dir, API version checks off (azblob may be newer than the
// emulator), loose mode and no telemetry. It returns once the service
// answers HTTP; ctx bounds only the start.
func StartAzurite(ctx context.Context, opts AzuriteOptions) (*Azurite, error) {
	if opts.Main == "" {
		m, err := AzuriteMain()
		if err != nil {
			return nil, fmt.Errorf("azurite: %w", err)
		}
		opts.Main = m
	}
	if opts.Node == "" {
		n, err := exec.LookPath("node")
		if err != nil {
			return nil, fmt.Errorf("azurite: node not found on PATH: run `make deps` (apt-get install nodejs): %w", err)
		}
		opts.Node = n
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 30 * time.Second
	}
	dir, own, err := workDir(opts.Dir, "sailstream-azurite-")
	if err != nil {
		return nil, fmt.Errorf("azurite: %w", err)
	}
	a := &Azurite{opts: opts, dir: dir, ownDir: own, outFile: filepath.Join(dir, "azurite.out")}
	if err := os.MkdirAll(a.dataDir(), 0o755); err != nil {
		a.cleanup()
		return nil, fmt.Errorf("azurite: %w", err)
	}
	for i := 0; ; i++ {
		port := opts.Port
		if port == 0 {
			ps, err := freePorts(1)
			if err != nil {
				a.cleanup()
				return nil, fmt.Errorf("azurite: %w", err)
			}
			port = ps[0]
		}
		a.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		err = a.start(ctx)
		if err == nil {
			return a, nil
		}
		if opts.Port != 0 || i+1 >= attempts || !logSaysAddrInUse(a.outFile) {
			err = fmt.Errorf("%w\n%s", err, a.LogTail(30))
			a.cleanup()
			return nil, err
		}
		os.Remove(a.outFile)
	}
}

func (a *Azurite) dataDir() string { return filepath.Join(a.dir, "data") }

func (a *Azurite) start(ctx context.Context) error {
	_, port, _ := net.SplitHostPort(a.addr)
	cmd := exec.Command(a.opts.Node, a.opts.Main,
		"--blobHost", "127.0.0.1",
		"--blobPort", port,
		"--location", a.dataDir(),
		"--skipApiVersionCheck",
		"--disableTelemetry",
		"--loose",
		"--silent",
	)
	cmd.Dir = a.dir
	p, err := startProc("azurite", cmd, a.outFile)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 2 * time.Second}
	err = p.waitReady(ctx, a.opts.StartTimeout, 50*time.Millisecond, func(ctx context.Context) error {
		// Any HTTP answer (403 without a signature) means it serves.
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.BlobEndpoint()+"?comp=list", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		return resp.Body.Close()
	})
	if err != nil {
		p.kill()
		return err
	}
	a.mu.Lock()
	a.p = p
	a.mu.Unlock()
	return nil
}

// Addr returns the blob service's host:port.
func (a *Azurite) Addr() string { return a.addr }

// BlobEndpoint returns http://host:port/devstoreaccount1.
func (a *Azurite) BlobEndpoint() string { return "http://" + a.addr + "/" + AzuriteAccount }

// ConnectionString returns the connection string for the development
// account, the form SAILSTREAM_TEST_AZURITE takes.
func (a *Azurite) ConnectionString() string {
	return "DefaultEndpointsProtocol=http;AccountName=" + AzuriteAccount +
		";AccountKey=" + AzuriteKey +
		";BlobEndpoint=" + a.BlobEndpoint() + ";"
}

// Dir returns the directory with the data (data/) and the log.
func (a *Azurite) Dir() string { return a.dir }

// LogTail returns the last n lines of Azurite's stdout/stderr.
func (a *Azurite) LogTail(n int) string { return tailFiles(n, a.outFile) }

// Pid returns Azurite's process id (0 when stopped).
func (a *Azurite) Pid() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.p == nil {
		return 0
	}
	return a.p.pid()
}

// Kill stops Azurite at once with SIGKILL, keeping its data directory (see
// AzuriteSaveInterval for what a kill loses); Restart brings it back on the
// same address with the same data.
func (a *Azurite) Kill() error {
	if p := a.take(); p != nil {
		return p.kill()
	}
	return nil
}

// take returns the running process, if any, and forgets it.
func (a *Azurite) take() *proc {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.p
	a.p = nil
	return p
}

// Restart starts a stopped or killed Azurite again on the same address and
// data directory (if it is running it is stopped first, with SIGTERM).
func (a *Azurite) Restart(ctx context.Context) error {
	if err := a.stopProc(); err != nil {
		return err
	}
	return a.start(ctx)
}

func (a *Azurite) stopProc() error {
	if p := a.take(); p != nil {
		return p.stop(10 * time.Second)
	}
	return nil
}

// Stop stops Azurite (SIGTERM, then SIGKILL after 10s) and removes its
// directory if StartAzurite created it. It is safe to call more than once.
func (a *Azurite) Stop() error {
	err := a.stopProc()
	a.cleanup()
	return err
}

func (a *Azurite) cleanup() {
	if a.ownDir {
		os.RemoveAll(a.dir)
	}
}

// NewAzurite starts an Azurite blob service of the test's own (for a test
// that must stop or restart it; the shared one is AzuriteConnectionString)
// and stops it when the test ends. The test is skipped when Azurite or node
// is not installed, unless SAILSTREAM_TEST_REQUIRE_SERVICES=1.
func NewAzurite(t testing.TB, opts AzuriteOptions) *Azurite {
	t.Helper()
	if opts.Main == "" {
		if _, err := AzuriteMain(); err != nil {
			skipOrFail(t, err)
		}
	}
	if opts.Node == "" {
		if _, err := exec.LookPath("node"); err != nil {
			skipOrFail(t, fmt.Errorf("azurite: node not found on PATH: %w", err))
		}
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	return startForTest(t, func() (*Azurite, error) { return StartAzurite(context.Background(), opts) })
}
