// Package scaffold writes a new UDF project, ready to build, for
// `sailstream udf init`: a pass-through UDF that adds one field, a README
// with the build command, test vectors the UDF passes, and a copy of the
// guest SDK of its language.
//
// The SDK is copied rather than referenced because a user's project lives
// outside this repository: a Go module that required
// github.com/sailstream/sailstream would need it published (or a replace
// pointing at a checkout), a C file would need an include path into the
// tree, an AssemblyScript import a relative path into it. With the SDK in
// the project, the language's own toolchain builds it anywhere, and the
// copy is always the SDK of the sailstream binary that wrote it, which
// speaks the same ABI.
package scaffold

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"

	"github.com/sailstream/sailstream/udf/internal/guestbuild"
	"github.com/sailstream/sailstream/udf/sdk"
)

// Errors.
var (
	// ErrName: a UDF name is 1-64 bytes, lowercase letters, digits, '-'
	// and '_', starting with a letter (it names the module, the Go module
	// path and the output file).
	ErrName = errors.New("scaffold: invalid UDF name (want 1-64 of [a-z0-9_-], starting with a letter)")
	// ErrExists: Init never overwrites; the directory must be new or empty.
	ErrExists = errors.New("scaffold: directory exists and is not empty")
)

//go:embed templates
var templates embed.FS

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)

// Init writes a new UDF project named name in lang (go, assemblyscript or
// c; "as" also means AssemblyScript) into dir, which must not exist or be
// empty. The project builds with guestbuild.Build(ctx, lang, dir) and
// passes the vectors in dir/testdata.
func Init(lang, name, dir string) error {
	l, err := guestbuild.Lang(lang)
	if err != nil {
		return fmt.Errorf("scaffold: %w", err)
	}
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%w: %q", ErrName, name)
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return fmt.Errorf("%w: %s", ErrExists, dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("scaffold: %w", err)
	}
	files, err := projectFiles(l, name)
	if err != nil {
		return err
	}
	for rel, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("scaffold: %w", err)
		}
		if err := os.WriteFile(p, content, 0o644); err != nil {
			return fmt.Errorf("scaffold: %w", err)
		}
	}
	return nil
}

// Build builds the UDF project in dir for lang (go, assemblyscript or c)
// and returns the module's bytes: Go with the standard toolchain
// (GOOS=wasip1 GOARCH=wasm, -buildmode=c-shared), AssemblyScript with asc
// from the project's node_modules (npm ci), C with clang for wasm32-wasi.
// It is guestbuild.Build, exported here for the CLI (guestbuild is internal
// to udf/). The error wraps exec.ErrNotFound when the toolchain is missing.
func Build(ctx context.Context, lang, dir string) ([]byte, error) {
	return guestbuild.Build(ctx, lang, dir)
}

// projectFiles returns the project's files by slash-separated path.
func projectFiles(lang, name string) (map[string][]byte, error) {
	data := struct{ Name, ASCVersion string }{Name: name}
	files := map[string][]byte{}
	var err error
	if lang == guestbuild.LangAssemblyScript {
		if data.ASCVersion, err = ascVersion(); err != nil {
			return nil, err
		}
	}
	// The language's templates: x.tmpl becomes x, with main.c named after
	// the UDF and gitignore as .gitignore.
	dir := "templates/" + lang
	ents, err := templates.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("scaffold: %w", err)
	}
	render := func(src string) ([]byte, error) {
		t, err := template.ParseFS(templates, src)
		if err != nil {
			return nil, fmt.Errorf("scaffold: %w", err)
		}
		var b bytes.Buffer
		if err := t.Execute(&b, data); err != nil {
			return nil, fmt.Errorf("scaffold: %s: %w", src, err)
		}
		return b.Bytes(), nil
	}
	for _, e := range ents {
		out := strings.TrimSuffix(e.Name(), ".tmpl")
		switch out {
		case "main.c":
			out = name + ".c"
		case "gitignore":
			out = ".gitignore"
		}
		if files[out], err = render(dir + "/" + e.Name()); err != nil {
			return nil, err
		}
	}
	if files["testdata/vectors.json"], err = render("templates/vectors.json.tmpl"); err != nil {
		return nil, err
	}

	// The SDK.
	copyGlob := func(pattern, to string, skip func(string) bool) error {
		ms, err := fs.Glob(sdk.Sources, pattern)
		if err != nil || len(ms) == 0 {
			return fmt.Errorf("scaffold: no SDK files match %s: %v", pattern, err)
		}
		for _, m := range ms {
			if skip != nil && skip(m) {
				continue
			}
			b, err := sdk.Sources.ReadFile(m)
			if err != nil {
				return fmt.Errorf("scaffold: %w", err)
			}
			files[path.Join(to, path.Base(m))] = b
		}
		return nil
	}
	switch lang {
	case guestbuild.LangGo:
		err = copyGlob("go/*.go", "sdk", func(m string) bool { return strings.HasSuffix(m, "_test.go") })
	case guestbuild.LangAssemblyScript:
		if err = copyGlob("assemblyscript/assembly/*.ts", "sdk", nil); err == nil {
			files["package-lock.json"], err = lockFile(name)
		}
	case guestbuild.LangC:
		err = copyGlob("c/*.h", "", nil)
	}
	if err != nil {
		return nil, err
	}
	return files, nil
}

// sdkPackage is the part of the AssemblyScript SDK's package.json and
// package-lock.json that the scaffold reuses.
type sdkPackage struct {
	Name            string            `json:"name"`
	DevDependencies map[string]string `json:"devDependencies"`
}

// ascVersion is the AssemblyScript compiler version the SDK pins.
func ascVersion() (string, error) {
	b, err := sdk.Sources.ReadFile("assemblyscript/package.json")
	if err != nil {
		return "", fmt.Errorf("scaffold: %w", err)
	}
	var p sdkPackage
	if err := json.Unmarshal(b, &p); err != nil || p.DevDependencies["assemblyscript"] == "" {
		return "", fmt.Errorf("scaffold: the SDK's package.json pins no assemblyscript version: %v", err)
	}
	return p.DevDependencies["assemblyscript"], nil
}

// lockFile is the SDK's package-lock.json renamed for the project, so that
// `npm ci` installs exactly the compiler the SDK was tested with.
func lockFile(name string) ([]byte, error) {
	b, err := sdk.Sources.ReadFile("assemblyscript/package-lock.json")
	if err != nil {
		return nil, fmt.Errorf("scaffold: %w", err)
	}
	pb, err := sdk.Sources.ReadFile("assemblyscript/package.json")
	if err != nil {
		return nil, fmt.Errorf("scaffold: %w", err)
	}
	var p sdkPackage
	if err := json.Unmarshal(pb, &p); err != nil {
		return nil, fmt.Errorf("scaffold: %w", err)
	}
	old, _ := json.Marshal(p.Name)
	repl, _ := json.Marshal(name)
	return bytes.ReplaceAll(b, append([]byte(`"name": `), old...), append([]byte(`"name": `), repl...)), nil
}
