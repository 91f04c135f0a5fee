package udftest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"sync"
	"testing"

	"github.com/sailstream/sailstream/internal/testenv"
	"github.com/sailstream/sailstream/udf"
	"github.com/sailstream/sailstream/udf/internal/guestbuild"
)

// The speed UDF in the other guest languages, built from source by the
// tests (a stale .wasm cannot hide).
var speedGuests = []struct{ lang, dir string }{
	{guestbuild.LangAssemblyScript, "../examples/speed-as"},
	{guestbuild.LangC, "../examples/speed-c"},
}

var (
	guestMu    sync.Mutex
	guestBuilt = map[string][]byte{}
)

// buildGuest builds the speed guest of lang once per test binary. A missing
// toolchain skips, unless SAILSTREAM_TEST_REQUIRE_SERVICES=1 (CI) where it
// fails.
func buildGuest(tb testing.TB, lang, dir string) []byte {
	tb.Helper()
	guestMu.Lock()
	defer guestMu.Unlock()
	if b, ok := guestBuilt[dir]; ok {
		return b
	}
	b, err := guestbuild.Build(context.Background(), lang, dir)
	if errors.Is(err, exec.ErrNotFound) {
		requireToolchains(tb, err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	guestBuilt[dir] = b
	return b
}

// TestGuestSpeedVectors: the AssemblyScript and C speed UDFs give the
// shared vectors' results bit for bit, as the Go guest and native Go do.
func TestGuestSpeedVectors(t *testing.T) {
	ctx := context.Background()
	for _, g := range speedGuests {
		t.Run(g.lang, func(t *testing.T) {
			mod, err := engine.Load(ctx, buildGuest(t, g.lang, g.dir), udf.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			defer mod.Close(ctx)
			if info := mod.Info(); info.Name != "speed" || info.Version != "1.0.0" {
				t.Errorf("info = %+v, want speed 1.0.0", info)
			}
			rep, err := Run(ctx, mod, speedVectors)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Cases < 10 || !rep.OK() {
				t.Fatal(rep)
			}
		})
	}
}

// requireToolchains skips a test whose guest toolchain is missing, or
// fails it where the test bed must be complete (CI sets
// SAILSTREAM_TEST_REQUIRE_SERVICES=1; scripts/install-deps.sh installs the
// toolchains).
func requireToolchains(tb testing.TB, err error) {
	tb.Helper()
	if os.Getenv(testenv.EnvRequire) == "1" {
		tb.Fatalf("guest toolchain missing (run scripts/install-deps.sh): %v", err)
	}
	tb.Skipf("guest toolchain missing (run scripts/install-deps.sh): %v", err)
}
