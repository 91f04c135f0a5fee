package guestbuild

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
)

// The guest languages Build knows.
const (
	LangGo             = "go"
	LangAssemblyScript = "assemblyscript"
	LangC              = "c"
)

// Languages lists the guest languages, for usage messages.
var Languages = []string{LangGo, LangAssemblyScript, LangC}

// ErrLanguage is returned for a language Build does not know.
var ErrLanguage = errors.New("guestbuild: unknown language (want go, assemblyscript or c)")

// Lang normalises a language name: "as" and "ts" mean AssemblyScript.
func Lang(s string) (string, error) {
	switch strings.ToLower(s) {
	case "go", "golang":
		return LangGo, nil
	case "assemblyscript", "as", "ts":
		return LangAssemblyScript, nil
	case "c":
		return LangC, nil
	}
	return "", fmt.Errorf("%w: %q", ErrLanguage, s)
}

// CFlags are the flags every C guest is built with: a WASI reactor (no
// main; the host calls _initialize), -O3 (a few percent faster than -O2 on
// the speed UDF; it never reassociates floating point without -ffast-math,
// which must stay off), memcpy as the memory.copy instruction rather than a
// loop in libc, no fused multiply-add (results must match Go's bit for
// bit), and no debug or name sections. -mnontrapping-fptoint, -msimd128,
// -flto and -fno-math-errno measured no faster (udf/udftest
// BenchmarkGuestSpeed).
var CFlags = []string{"--target=wasm32-wasi", "-mexec-model=reactor", "-O3", "-mbulk-memory", "-ffp-contract=off", "-Wall", "-Wl,--strip-all"}

// ASFlags are the flags every AssemblyScript guest is built with: the stub
// runtime (no GC: the SDK reuses its buffers), no assertions, and abort
// calls turned into traps so the module imports nothing.
var ASFlags = []string{"--runtime", "stub", "-O3", "--noAssert", "--use", "abort="}

// Build builds the UDF project in dir for lang (go, assemblyscript or c)
// and returns the module's bytes:
//
//   - go: the package in dir, as Go does;
//   - assemblyscript: the entry file assembly/index.ts or index.ts, with the
//     asc of $SAILSTREAM_ASC, of node_modules/.bin in dir or a parent, of
//     the repository's udf/sdk/assemblyscript, or on $PATH;
//   - c: every *.c file in dir, with $SAILSTREAM_CLANG, clang or clang-14.
//
// The error wraps exec.ErrNotFound when the toolchain is missing.
func Build(ctx context.Context, lang, dir string) ([]byte, error) {
	l, err := Lang(lang)
	if err != nil {
		return nil, err
	}
	switch l {
	case LangGo:
		return Go(ctx, dir)
	case LangAssemblyScript:
		return AssemblyScript(ctx, dir)
	default:
		return C(ctx, dir)
	}
}

// C builds every *.c file in dir into one module.
func C(ctx context.Context, dir string) ([]byte, error) {
	srcs, err := filepath.Glob(filepath.Join(dir, "*.c"))
	if err != nil {
		return nil, err
	}
	if len(srcs) == 0 {
		return nil, fmt.Errorf("guestbuild: no *.c files in %s", dir)
	}
	slices.Sort(srcs)
	for i, s := range srcs {
		srcs[i] = filepath.Base(s) // the compiler runs in dir
	}
	cc, err := findTool("SAILSTREAM_CLANG", "clang", "clang-14")
	if err != nil {
		return nil, fmt.Errorf("guestbuild: clang (Debian packages clang, lld, wasi-libc, libclang-rt-14-dev-wasm32): %w", err)
	}
	return run(ctx, dir, func(out string) *exec.Cmd {
		args := append(append(slices.Clone(CFlags), "-I", ".", "-o", out), srcs...)
		return exec.CommandContext(ctx, cc, args...)
	})
}

// AssemblyScript builds the AssemblyScript project in dir.
func AssemblyScript(ctx context.Context, dir string) ([]byte, error) {
	entry := ""
	for _, e := range []string{filepath.Join("assembly", "index.ts"), "index.ts"} {
		if _, err := os.Stat(filepath.Join(dir, e)); err == nil {
			entry = e
			break
		}
	}
	if entry == "" {
		return nil, fmt.Errorf("guestbuild: no assembly/index.ts or index.ts in %s", dir)
	}
	asc, err := findASC(dir)
	if err != nil {
		return nil, err
	}
	return run(ctx, dir, func(out string) *exec.Cmd {
		args := append([]string{entry, "-o", out}, ASFlags...)
		return exec.CommandContext(ctx, asc, args...)
	})
}

// findASC looks for the AssemblyScript compiler.
func findASC(dir string) (string, error) {
	if p := os.Getenv("SAILSTREAM_ASC"); p != "" {
		return p, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	var roots []string
	for d := abs; ; d = filepath.Dir(d) {
		roots = append(roots, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	// The repository's own SDK, for the examples and tests in the tree.
	if _, file, _, ok := runtime.Caller(0); ok {
		roots = append(roots, filepath.Join(filepath.Dir(file), "..", "..", "sdk", "assemblyscript"))
	}
	for _, r := range roots {
		p := filepath.Join(r, "node_modules", ".bin", "asc")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("asc")
	if err != nil {
		return "", fmt.Errorf("guestbuild: asc not found (run npm ci in the project or in udf/sdk/assemblyscript, or set SAILSTREAM_ASC): %w", err)
	}
	return p, nil
}

// findTool returns $env or the first of names on $PATH.
func findTool(env string, names ...string) (string, error) {
	if p := os.Getenv(env); p != "" {
		return p, nil
	}
	var err error
	for _, n := range names {
		var p string
		if p, err = exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", err
}

// run runs the command mk makes for an output path in a temporary
// directory, in dir, and returns what it wrote there.
func run(ctx context.Context, dir string, mk func(out string) *exec.Cmd) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "guestbuild-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "guest.wasm")
	cmd := mk(out)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("guestbuild: %s in %s: %w: %s", filepath.Base(cmd.Path), dir, err, stderr.Bytes())
	}
	return os.ReadFile(out)
}
