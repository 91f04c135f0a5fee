// Package guestbuild builds UDF modules from source for tests and for the
// staleness check of the embedded default UDF: tests never trust a .wasm
// they did not just build.
package guestbuild

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// GoFlags are the flags every Go guest is built with; -trimpath makes the
// output independent of where the tree is checked out.
var GoFlags = []string{"-buildmode=c-shared", "-trimpath"}

// Go builds the Go guest in the package directory dir and returns the
// module's bytes.
func Go(ctx context.Context, dir string) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "guestbuild-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "guest.wasm")
	args := append(append([]string{"build"}, GoFlags...), "-o", out, ".")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("guestbuild: go build in %s: %v: %s", dir, err, stderr.Bytes())
	}
	return os.ReadFile(out)
}

// Wat assembles a .wat file with wat2wasm (Debian package wabt). The error
// wraps exec.ErrNotFound when wat2wasm is missing.
func Wat(ctx context.Context, path string) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "guestbuild-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "guest.wasm")
	cmd := exec.CommandContext(ctx, "wat2wasm", "-o", out, path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("guestbuild: wat2wasm %s: %w: %s", path, err, stderr.Bytes())
	}
	return os.ReadFile(out)
}
