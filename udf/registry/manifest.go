package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/sailstream/sailstream/udf"
)

// ErrBadManifest: a manifest file or field cannot be used.
var ErrBadManifest = errors.New("registry: bad manifest")

// Manifest is the optional small JSON file beside a .wasm (NAME.json or
// NAME.manifest.json next to NAME.wasm) that says how to deploy it:
//
//	{"name": "geofence", "version": "1.2.0",
//	 "routes": ["buoy-*", "boat-7"], "default": false,
//	 "limits": {"memory_mib": 32, "call_timeout": "500ms", "instances": 2}}
//
// Every field is optional. Without a name the module's sailstream_v1_info
// export names it, else the file name; without a version, the info export,
// else the first 12 hex digits of the module's SHA-256.
type Manifest struct {
	Name    string `json:"name,omitempty"`
	Version string `json:"version,omitempty"`
	// Routes are device-id patterns (path.Match syntax) routed to this UDF
	// once it is deployed; they replace any rule with the same pattern.
	Routes []string `json:"routes,omitempty"`
	// Default makes this UDF the route of every device no rule matches.
	Default bool           `json:"default,omitempty"`
	Limits  ManifestLimits `json:"limits,omitzero"`

	// FileName is the file the module came from (not part of the JSON):
	// its base name names the UDF when neither the manifest nor the
	// module's info export does.
	FileName string `json:"-"`
}

// ManifestLimits are udf.Limits in units people write. Zero fields take the
// host's defaults (16 MiB memory, 2 s per batch call, …).
type ManifestLimits struct {
	MemoryMiB            int      `json:"memory_mib,omitempty"`
	CallTimeout          Duration `json:"call_timeout,omitzero"`
	MaxStateBytes        int      `json:"max_state_bytes,omitempty"`
	MaxOutputBytes       int      `json:"max_output_bytes,omitempty"`
	MaxOutputsPerReading int      `json:"max_outputs_per_reading,omitempty"`
	Instances            int      `json:"instances,omitempty"`
}

// Duration is a time.Duration written as "500ms" or "2s" in JSON.
type Duration time.Duration

// MarshalJSON writes the duration as a string such as "1.5s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "500ms"-style strings (or a number of nanoseconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("duration: want a string such as \"500ms\": %v", err)
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// namePattern is what a UDF name may be: it is a record key, a URL path
// segment and a metric label.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// ValidName reports whether name can name a UDF: 1–64 characters of
// [A-Za-z0-9_.-], starting with a letter or digit.
func ValidName(name string) bool { return namePattern.MatchString(name) }

// Validate checks the fields that are set.
func (m Manifest) Validate() error {
	if m.Name != "" && !ValidName(m.Name) {
		return fmt.Errorf("%w: name %q: use 1-64 characters of A-Z a-z 0-9 _ . - (starting with a letter or digit)", ErrBadManifest, m.Name)
	}
	if len(m.Version) > 64 {
		return fmt.Errorf("%w: version longer than 64 characters", ErrBadManifest)
	}
	for _, p := range m.Routes {
		if p == "" {
			return fmt.Errorf("%w: empty route pattern", ErrBadManifest)
		}
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("%w: route pattern %q: %v", ErrBadManifest, p, err)
		}
	}
	if _, err := m.Limits.UDF(); err != nil {
		return err
	}
	return nil
}

// UDF converts the limits to the host's.
func (l ManifestLimits) UDF() (udf.Limits, error) {
	switch {
	case l.MemoryMiB < 0, l.MemoryMiB > 4096:
		return udf.Limits{}, fmt.Errorf("%w: limits.memory_mib %d: want 1-4096", ErrBadManifest, l.MemoryMiB)
	case l.CallTimeout < 0:
		return udf.Limits{}, fmt.Errorf("%w: negative limits.call_timeout", ErrBadManifest)
	case l.MaxStateBytes < 0, l.MaxOutputBytes < 0, l.MaxOutputsPerReading < 0, l.Instances < 0:
		return udf.Limits{}, fmt.Errorf("%w: negative limit", ErrBadManifest)
	}
	lim := udf.Limits{
		MemoryPages:          uint32(l.MemoryMiB) * 16, // 64 KiB pages
		CallTimeout:          time.Duration(l.CallTimeout),
		MaxStateBytes:        l.MaxStateBytes,
		MaxOutputBytes:       l.MaxOutputBytes,
		MaxOutputsPerReading: l.MaxOutputsPerReading,
		Instances:            l.Instances,
	}
	if err := lim.Validate(); err != nil {
		return udf.Limits{}, fmt.Errorf("%w: %v", ErrBadManifest, err)
	}
	return lim, nil
}

// ParseManifest reads a manifest; unknown fields are an error, so that a
// typo ("route" for "routes") is not silently ignored.
func ParseManifest(b []byte) (Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("%w: %v", ErrBadManifest, err)
	}
	if err := m.Validate(); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// ManifestPaths returns the manifest files that may sit beside wasmPath, in
// the order they are looked for: NAME.manifest.json, then NAME.json.
func ManifestPaths(wasmPath string) []string {
	base := strings.TrimSuffix(wasmPath, filepath.Ext(wasmPath))
	return []string{base + ".manifest.json", base + ".json"}
}

// LoadManifest reads the manifest beside wasmPath. found is false (and the
// manifest zero) when there is none. FileName is set to wasmPath either
// way, so the file name names the UDF when nothing else does.
func LoadManifest(wasmPath string) (m Manifest, found bool, err error) {
	for _, p := range ManifestPaths(wasmPath) {
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return Manifest{}, false, fmt.Errorf("registry: reading manifest: %w", err)
		}
		m, err := ParseManifest(b)
		if err != nil {
			return Manifest{}, false, fmt.Errorf("%s: %w", p, err)
		}
		m.FileName = wasmPath
		return m, true, nil
	}
	return Manifest{FileName: wasmPath}, false, nil
}

// NameFromFile is the UDF name a file name gives: its base name without
// extension, with characters a name cannot hold replaced by '-'.
func NameFromFile(p string) string {
	base := strings.TrimSuffix(filepath.Base(p), filepath.Ext(p))
	b := []byte(base)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
		if !ok {
			b[i] = '-'
		}
	}
	s := strings.TrimLeft(string(b), "_.-")
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}

// resolveIdentity picks the name and version of a module: the manifest's,
// else the module's info export's, else the fallback name (a file name)
// and the hash prefix.
func resolveIdentity(m Manifest, info udf.Info, fallbackName, sha string) (name, version string, err error) {
	name = m.Name
	if name == "" {
		name = info.Name
	}
	if name == "" {
		name = fallbackName
	}
	if !ValidName(name) {
		if name == "" {
			return "", "", fmt.Errorf("%w: the module has no name: give one in a manifest (\"name\") or export sailstream_v1_info", ErrBadManifest)
		}
		return "", "", fmt.Errorf("%w: UDF name %q: use 1-64 characters of A-Z a-z 0-9 _ . -", ErrBadManifest, name)
	}
	version = m.Version
	if version == "" {
		version = info.Version
	}
	if version == "" {
		version = sha[:12]
	}
	return name, version, nil
}
