package registry

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/sailstream/sailstream/udf"
	"github.com/sailstream/sailstream/udf/internal/guestbuild"
)

// Guests are built from source once per test binary, on first use (the
// transition tests need none), so a stale .wasm cannot hide.
var (
	guestsOnce sync.Once
	guestsErr  error
	guests     = map[string][]byte{}

	engineOnce sync.Once
	engine     *udf.Engine
	engineErr  error
)

func guest(t testing.TB, name string) []byte {
	t.Helper()
	guestsOnce.Do(func() {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, g := range []string{"speed", "geofence", "smoothing"} {
			wg.Go(func() {
				b, err := guestbuild.Go(context.Background(), filepath.Join("..", "examples", g))
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					guestsErr = err
					return
				}
				guests[g] = b
			})
		}
		wg.Wait()
	})
	if guestsErr != nil {
		t.Fatal(guestsErr)
	}
	b, ok := guests[name]
	if !ok {
		t.Fatalf("no guest %q", name)
	}
	return b
}

// testEngine shares one engine with an on-disk compilation cache (the one
// package udf's tests use), so a Go module compiles once per machine.
func testEngine(t testing.TB) *udf.Engine {
	t.Helper()
	engineOnce.Do(func() {
		engine, engineErr = udf.NewEngine(udf.Config{CacheDir: filepath.Join(os.TempDir(), "sailstream-udf-test-cache")})
	})
	if engineErr != nil {
		t.Fatal(engineErr)
	}
	return engine
}

// wat assembles a hostile module from udf/testdata/hostile.
func wat(t testing.TB, name string) []byte {
	t.Helper()
	b, err := guestbuild.Wat(context.Background(), filepath.Join("..", "testdata", "hostile", name+".wat"))
	if err != nil {
		t.Skipf("wat2wasm: %v", err)
	}
	return b
}
