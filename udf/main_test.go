package udf

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sailstream/sailstream/udf/internal/guestbuild"
)

// Shared by the package's tests: one engine with an on-disk compilation
// cache that survives test runs (keyed by module hash and wazero version),
// and every guest built once from source.
var (
	testEngine *Engine
	guests     = map[string][]byte{}
	watErr     error
)

var goGuests = []string{"speed", "geofence", "smoothing"}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx := context.Background()
	var err error
	testEngine, err = NewEngine(Config{CacheDir: filepath.Join(os.TempDir(), "sailstream-udf-test-cache")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer testEngine.Close(ctx)
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, len(goGuests))
	for _, g := range goGuests {
		wg.Go(func() {
			b, err := guestbuild.Go(ctx, filepath.Join("examples", g))
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			guests[g] = b
			mu.Unlock()
		})
	}
	wats, _ := filepath.Glob("testdata/hostile/*.wat")
	others, _ := filepath.Glob("testdata/*.wat")
	wats = append(wats, others...)
	for _, w := range wats {
		b, err := guestbuild.Wat(ctx, w)
		if err != nil {
			watErr = err
			break
		}
		mu.Lock()
		guests[strings.TrimSuffix(filepath.Base(w), ".wat")] = b
		mu.Unlock()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// guest returns a module built in TestMain.
func guest(t testing.TB, name string) []byte {
	t.Helper()
	b, ok := guests[name]
	if !ok {
		if errors.Is(watErr, exec.ErrNotFound) {
			t.Skipf("wat2wasm (Debian package wabt) is missing: %v", watErr)
		}
		t.Fatalf("guest %q was not built (%v)", name, watErr)
	}
	return b
}

// load loads a guest built in TestMain and closes it after the test.
func load(t testing.TB, name string, lim Limits) *Module {
	t.Helper()
	m, err := testEngine.Load(context.Background(), guest(t, name), lim)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}
