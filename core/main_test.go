package core

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sailstream/sailstream/udf"
	"github.com/sailstream/sailstream/udf/builtin"
	"github.com/sailstream/sailstream/udf/registry"
)

// Shared by the package's tests: one engine whose on-disk compilation cache
// survives test runs (wazero keys it by module hash and its own version),
// so the builtin speed UDF compiles once per machine, not once per test.
var (
	testEngine *udf.Engine
	// builtinInfo is what the embedded speed UDF stamps on its records.
	builtinInfo udf.Info
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	ctx := context.Background()
	var err error
	testEngine, err = udf.NewEngine(udf.Config{CacheDir: filepath.Join(os.TempDir(), "sailstream-core-test-cache")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer testEngine.Close(ctx)
	mod, err := testEngine.Load(ctx, builtin.Speed, udf.Limits{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	builtinInfo = mod.Info()
	mod.Close(ctx)
	return m.Run()
}

var (
	watMu    sync.Mutex
	watCache = map[string][]byte{}
)

// wat assembles a .wat file with wat2wasm once per test binary (skipping
// the test when wat2wasm, Debian package wabt, is missing). Tests build
// their modules from source, so a stale .wasm cannot hide. (The same as
// udf/internal/guestbuild.Wat, which core cannot import.)
func wat(t testing.TB, path string) []byte {
	t.Helper()
	watMu.Lock()
	defer watMu.Unlock()
	if b, ok := watCache[path]; ok {
		return b
	}
	if _, err := exec.LookPath("wat2wasm"); err != nil {
		t.Skipf("wat2wasm (Debian package wabt) is missing: %v", err)
	}
	out := filepath.Join(t.TempDir(), "guest.wasm")
	if msg, err := exec.Command("wat2wasm", "-o", out, path).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm %s: %v: %s", path, err, strings.TrimSpace(string(msg)))
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	watCache[path] = b
	return b
}

// testTable builds the routing table of st for tests that drive the
// processor without Kafka (and closes its modules after the test).
func testTable(t testing.TB, p *Processor, st *registry.State) *table {
	t.Helper()
	ctx := context.Background()
	r := p.router
	if r.eng == nil {
		r.eng = testEngine
	}
	if r.builtin == nil {
		if err := r.loadBuiltin(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.closeAll)
	}
	tbl := r.build(ctx, st, map[string]bool{})
	r.gen++
	tbl.gen = r.gen
	r.cur.Store(tbl)
	return tbl
}
