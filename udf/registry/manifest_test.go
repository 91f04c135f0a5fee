package registry

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sailstream/sailstream/udf"
)

func TestParseManifest(t *testing.T) {
	tests := []struct {
		in   string
		ok   bool
		want func(Manifest) bool
	}{
		{`{}`, true, func(m Manifest) bool { return m.Name == "" }},
		{`{"name":"geo","version":"1.2","routes":["buoy-*"],"default":true,"limits":{"memory_mib":32,"call_timeout":"500ms","instances":2}}`, true,
			func(m Manifest) bool {
				l, _ := m.Limits.UDF()
				return m.Name == "geo" && m.Default && l.MemoryPages == 512 && l.CallTimeout == 500*time.Millisecond && l.Instances == 2
			}},
		{`{"limits":{"call_timeout":1000000}}`, true, func(m Manifest) bool { return time.Duration(m.Limits.CallTimeout) == time.Millisecond }},
		{`{"nmae":"typo"}`, false, nil},
		{`{"name":"bad name"}`, false, nil},
		{`{"routes":["["]}`, false, nil},
		{`{"routes":[""]}`, false, nil},
		{`{"limits":{"memory_mib":-1}}`, false, nil},
		{`{"limits":{"memory_mib":5000}}`, false, nil},
		{`{"limits":{"call_timeout":"soon"}}`, false, nil},
		{`not json`, false, nil},
	}
	for _, tt := range tests {
		m, err := ParseManifest([]byte(tt.in))
		if (err == nil) != tt.ok {
			t.Errorf("%s: err %v", tt.in, err)
			continue
		}
		if err != nil && !errors.Is(err, ErrBadManifest) {
			t.Errorf("%s: %v is not ErrBadManifest", tt.in, err)
		}
		if tt.want != nil && !tt.want(m) {
			t.Errorf("%s: got %+v", tt.in, m)
		}
	}
}

func TestLoadManifest(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "geo.wasm")
	m, found, err := LoadManifest(wasm)
	if err != nil || found || m.FileName != wasm {
		t.Fatalf("no manifest: %+v %v %v", m, found, err)
	}
	must(t, os.WriteFile(filepath.Join(dir, "geo.json"), []byte(`{"version":"1"}`), 0o644))
	if m, found, _ = LoadManifest(wasm); !found || m.Version != "1" {
		t.Fatalf("geo.json: %+v", m)
	}
	must(t, os.WriteFile(filepath.Join(dir, "geo.manifest.json"), []byte(`{"version":"2"}`), 0o644))
	if m, _, _ = LoadManifest(wasm); m.Version != "2" {
		t.Fatalf("geo.manifest.json comes first: %+v", m)
	}
	must(t, os.WriteFile(filepath.Join(dir, "geo.manifest.json"), []byte(`{"version":2}`), 0o644))
	if _, _, err = LoadManifest(wasm); !errors.Is(err, ErrBadManifest) {
		t.Fatalf("bad manifest: %v", err)
	}
}

func TestResolveIdentity(t *testing.T) {
	sha := Hash([]byte("x"))
	tests := []struct {
		m                   Manifest
		info                udf.Info
		file, name, version string
		err                 bool
	}{
		{Manifest{Name: "a", Version: "1"}, udf.Info{Name: "b", Version: "2"}, "c", "a", "1", false},
		{Manifest{}, udf.Info{Name: "b", Version: "2"}, "c", "b", "2", false},
		{Manifest{}, udf.Info{}, "c", "c", sha[:12], false},
		{Manifest{}, udf.Info{}, "", "", "", true},
		{Manifest{}, udf.Info{Name: "no spaces"}, "c", "", "", true},
	}
	for _, tt := range tests {
		n, v, err := resolveIdentity(tt.m, tt.info, tt.file, sha)
		if (err != nil) != tt.err || n != tt.name || v != tt.version {
			t.Errorf("%+v %+v %q: %q %q %v", tt.m, tt.info, tt.file, n, v, err)
		}
	}
	for in, want := range map[string]string{"/a/geo.wasm": "geo", "my udf.wasm": "my-udf", "_x.wasm": "x", "": ""} {
		if got := NameFromFile(in); got != want {
			t.Errorf("NameFromFile(%q) = %q, want %q", in, got, want)
		}
	}
}
