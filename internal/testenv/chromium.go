package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// EnvChromium names the Chromium binary the browser tests drive (through
// playwright-core, which downloads no browser of its own). Unset, they use
// DefaultChromium, Debian's chromium package.
const EnvChromium = "SAILSTREAM_CHROMIUM"

// DefaultChromium is where Debian's chromium package puts the browser.
const DefaultChromium = "/usr/bin/chromium"

// ChromiumPath returns the Chromium binary for a browser test: $SAILSTREAM_CHROMIUM
// or DefaultChromium. Unlike the services it is not started by the test bed,
// only looked for: the test is skipped when it is missing, unless
// SAILSTREAM_TEST_REQUIRE_SERVICES=1, which fails it instead.
func ChromiumPath(t testing.TB) string {
	t.Helper()
	p := os.Getenv(EnvChromium)
	if p == "" {
		p = DefaultChromium
	}
	found, err := exec.LookPath(p)
	if err != nil {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("Chromium is required but %s is not usable (%v): install Debian's chromium package (scripts/install-deps.sh) or set %s", p, err, EnvChromium)
		}
		t.Skipf("Chromium not found at %s (%v): install Debian's chromium package or set %s", p, err, EnvChromium)
	}
	return found
}
