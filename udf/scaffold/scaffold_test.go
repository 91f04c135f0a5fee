package scaffold

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sailstream/sailstream/internal/testenv"
	"github.com/sailstream/sailstream/udf"
	"github.com/sailstream/sailstream/udf/internal/guestbuild"
	"github.com/sailstream/sailstream/udf/udftest"
)

// TestInitBuildsAndPassesVectors: for every language, a scaffolded project
// in a directory outside the repository builds and passes the vectors it
// comes with, and the module is named after the project.
func TestInitBuildsAndPassesVectors(t *testing.T) {
	ctx := context.Background()
	eng, err := udf.NewEngine(udf.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(ctx)
	for _, lang := range []string{"go", "as", "c"} {
		t.Run(lang, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "proj")
			if err := Init(lang, "my-udf", dir); err != nil {
				t.Fatal(err)
			}
			wasm, err := Build(ctx, lang, dir)
			if errors.Is(err, exec.ErrNotFound) {
				if os.Getenv(testenv.EnvRequire) == "1" {
					t.Fatalf("toolchain missing (run scripts/install-deps.sh): %v", err)
				}
				t.Skipf("toolchain missing (run scripts/install-deps.sh): %v", err)
			}
			if err != nil {
				t.Fatal(err)
			}
			mod, err := eng.Load(ctx, wasm, udf.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			defer mod.Close(ctx)
			if info := mod.Info(); info.Name != "my-udf" || info.Version != "0.1.0" {
				t.Errorf("info = %+v, want my-udf 0.1.0", info)
			}
			rep, err := udftest.Run(ctx, mod, filepath.Join(dir, "testdata"))
			if err != nil {
				t.Fatal(err)
			}
			if rep.Cases != 2 || !rep.OK() {
				t.Fatal(rep)
			}
			for _, f := range []string{"README.md", ".gitignore"} {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// TestInitFiles: each language gets its SDK, and only what it needs.
func TestInitFiles(t *testing.T) {
	for _, tc := range []struct {
		lang      string
		want, not []string
	}{
		{"go", []string{"go.mod", "main.go", "sdk/sdk.go", "sdk/export_wasip1.go"}, []string{"sdk/codec_test.go", "package.json"}},
		{"assemblyscript", []string{"index.ts", "package.json", "package-lock.json", "sdk/index.ts", "sdk/exports.ts", "sdk/gomath.ts"}, []string{"go.mod"}},
		{"c", []string{"x1.c", "sailstream_udf.h", "gomath.h"}, []string{"main.c", "go.mod"}},
	} {
		t.Run(tc.lang, func(t *testing.T) {
			dir := t.TempDir()
			if err := Init(tc.lang, "x1", dir); err != nil {
				t.Fatal(err)
			}
			for _, f := range tc.want {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Errorf("missing %s: %v", f, err)
				}
			}
			for _, f := range tc.not {
				if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
					t.Errorf("unexpected %s", f)
				}
			}
		})
	}
	// The lock file names the project, so npm ci accepts it.
	dir := t.TempDir()
	if err := Init("assemblyscript", "x1", dir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytesContains(b, `"name": "x1"`) || bytesContains(b, "@sailstream/udf-sdk-assemblyscript") {
		t.Errorf("package-lock.json not renamed:\n%.300s", b)
	}
}

func bytesContains(b []byte, s string) bool { return strings.Contains(string(b), s) }

func TestInitRefuses(t *testing.T) {
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "keep.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, lang, udf, dir string
		want                 error
	}{
		{"non-empty dir", "go", "ok", full, ErrExists},
		{"unknown language", "rust", "ok", t.TempDir(), guestbuild.ErrLanguage},
		{"empty name", "c", "", t.TempDir(), ErrName},
		{"upper case", "c", "Speed", t.TempDir(), ErrName},
		{"quote", "c", `a"b`, t.TempDir(), ErrName},
		{"path", "go", "../x", t.TempDir(), ErrName},
		{"too long", "go", strings.Repeat("a", 65), t.TempDir(), ErrName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Init(tc.lang, tc.udf, tc.dir); !errors.Is(err, tc.want) {
				t.Fatalf("Init = %v, want %v", err, tc.want)
			}
		})
	}
	if b, err := os.ReadFile(filepath.Join(full, "keep.txt")); err != nil || string(b) != "mine" {
		t.Errorf("existing file touched: %q %v", b, err)
	}
}
