package guestbuild

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"testing"
)

func TestLang(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      error
	}{
		{"go", LangGo, nil},
		{"Go", LangGo, nil},
		{"as", LangAssemblyScript, nil},
		{"assemblyscript", LangAssemblyScript, nil},
		{"c", LangC, nil},
		{"rust", "", ErrLanguage},
		{"", "", ErrLanguage},
	} {
		got, err := Lang(tc.in)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("Lang(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// TestBuild builds the example speed UDF in every language; a project
// without sources fails with a message that says what is missing.
func TestBuild(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ lang, dir string }{
		{LangGo, "../../examples/speed"},
		{LangAssemblyScript, "../../examples/speed-as"},
		{LangC, "../../examples/speed-c"},
	} {
		t.Run(tc.lang, func(t *testing.T) {
			wasm, err := Build(ctx, tc.lang, tc.dir)
			if errors.Is(err, exec.ErrNotFound) {
				t.Skip(err)
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(wasm, []byte("\x00asm\x01\x00\x00\x00")) {
				t.Fatalf("not a wasm module: % x", wasm[:min(8, len(wasm))])
			}
			if _, err := Build(ctx, tc.lang, t.TempDir()); err == nil {
				t.Error("an empty directory built")
			}
		})
	}
	if _, err := Build(ctx, "cobol", "."); !errors.Is(err, ErrLanguage) {
		t.Errorf("Build(cobol) = %v, want ErrLanguage", err)
	}
}
