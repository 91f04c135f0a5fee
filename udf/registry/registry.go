// Package registry holds the set of deployed UDFs as every core instance
// sees it: which modules exist, which version of each UDF is live, which
// runs in shadow, which came before (for rollback), and which devices are
// routed to which UDF.
//
// The set lives in one compacted Kafka topic, udf.modules, so that every
// core instance applies the same swap and a restarted core loads the current
// set by reading the topic from the start. The control plane (the watched
// directory, `sailstream udf`, the admin API) only ever writes records; the
// data plane (the core) only ever reads them, folds them into a State with
// Apply and swaps to what the State says. Three kinds of record share the
// topic, told apart by their key:
//
//	module/<sha256 hex>  the module's Wasm bytes, content-addressed and
//	                     immutable (headers name and version, for humans)
//	udf/<name>           JSON Deployment: live, shadow and previous
//	                     versions of one UDF, by module hash
//	routes               JSON Routes: device-id patterns → UDF name
//
// Modules are stored once however many deployments name them, so a
// promote or a rollback is a small JSON record, not a re-upload. A record
// with a nil value (a tombstone) deletes its key.
package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/sailstream/sailstream/udf"
)

// DefaultTopic is the compacted topic holding the registry.
const DefaultTopic = "udf.modules"

// MaxModuleRecordBytes is the max.message.bytes the registry topic is
// created with: Go-built modules are a few MiB, above Kafka's 1 MiB default.
const MaxModuleRecordBytes = 32 << 20

// Key prefixes and the routes key.
const (
	KeyModulePrefix = "module/"
	KeyUDFPrefix    = "udf/"
	KeyRoutes       = "routes"
)

// Errors.
var (
	ErrUnknownKey = errors.New("registry: unknown record key")
	ErrBadRecord  = errors.New("registry: malformed record")
)

// Module is a compiled-to-Wasm UDF, named by the SHA-256 of its bytes.
type Module struct {
	SHA256 string
	Wasm   []byte
}

// Hash returns the hex SHA-256 that names wasm.
func Hash(wasm []byte) string {
	sum := sha256.Sum256(wasm)
	return hex.EncodeToString(sum[:])
}

// Ref names one version of a UDF: the module that implements it and the
// limits it runs under.
type Ref struct {
	Version string     `json:"version"`
	SHA256  string     `json:"sha256"`
	Limits  udf.Limits `json:"limits"`
	// DeployedAt is when this version was deployed (control-plane clock).
	DeployedAt time.Time `json:"deployed_at"`
}

// Deployment is the state of one UDF name.
type Deployment struct {
	Name string `json:"name"`
	// Live is the version that produces telemetry.enriched.
	Live *Ref `json:"live,omitempty"`
	// Shadow, when set, runs on the same batches as Live; its outputs go
	// to telemetry.shadow with the comparison, never to enriched.
	Shadow *Ref `json:"shadow,omitempty"`
	// Previous holds the versions Live replaced, newest first (bounded);
	// rollback makes Previous[0] live again.
	Previous []Ref `json:"previous,omitempty"`
}

// Route binds device ids matching Pattern (path.Match syntax: *, ?, [..])
// to the UDF named UDF.
type Route struct {
	Pattern string `json:"pattern"`
	UDF     string `json:"udf"`
}

// Routes are tried in order; the first match wins. Devices no rule matches
// go to Default.
type Routes struct {
	Rules   []Route `json:"rules,omitempty"`
	Default string  `json:"default"`
}

// DefaultUDF is the route of every device before anything is deployed: the
// speed UDF embedded in the binary (package udf/builtin).
const DefaultUDF = "speed"

// State is the registry folded from the topic.
type State struct {
	Modules     map[string]Module     // by SHA-256
	Deployments map[string]Deployment // by name
	Routes      Routes
}

// NewState returns the state of an empty topic: no modules, no deployments,
// every device routed to DefaultUDF.
func NewState() *State {
	return &State{
		Modules:     map[string]Module{},
		Deployments: map[string]Deployment{},
		Routes:      Routes{Default: DefaultUDF},
	}
}

// Apply folds one record of the topic into s. A nil value deletes the key.
func (s *State) Apply(key string, value []byte) error {
	switch {
	case strings.HasPrefix(key, KeyModulePrefix):
		sha := strings.TrimPrefix(key, KeyModulePrefix)
		if value == nil {
			delete(s.Modules, sha)
			return nil
		}
		if got := Hash(value); got != sha {
			return fmt.Errorf("%w: %s holds bytes whose SHA-256 is %s", ErrBadRecord, key, got)
		}
		s.Modules[sha] = Module{SHA256: sha, Wasm: value}
	case strings.HasPrefix(key, KeyUDFPrefix):
		name := strings.TrimPrefix(key, KeyUDFPrefix)
		if value == nil {
			delete(s.Deployments, name)
			return nil
		}
		var d Deployment
		if err := json.Unmarshal(value, &d); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrBadRecord, key, err)
		}
		if d.Name != name {
			return fmt.Errorf("%w: %s names UDF %q", ErrBadRecord, key, d.Name)
		}
		s.Deployments[name] = d
	case key == KeyRoutes:
		if value == nil {
			s.Routes = Routes{Default: DefaultUDF}
			return nil
		}
		var r Routes
		if err := json.Unmarshal(value, &r); err != nil {
			return fmt.Errorf("%w: routes: %v", ErrBadRecord, err)
		}
		if err := r.Validate(); err != nil {
			return err
		}
		s.Routes = r
	default:
		return fmt.Errorf("%w: %q", ErrUnknownKey, key)
	}
	return nil
}

// Validate checks the patterns are well-formed.
func (r Routes) Validate() error {
	if r.Default == "" {
		return fmt.Errorf("%w: routes have no default UDF", ErrBadRecord)
	}
	for _, rule := range r.Rules {
		if rule.UDF == "" {
			return fmt.Errorf("%w: route %q names no UDF", ErrBadRecord, rule.Pattern)
		}
		if _, err := path.Match(rule.Pattern, ""); err != nil {
			return fmt.Errorf("%w: route pattern %q: %v", ErrBadRecord, rule.Pattern, err)
		}
	}
	return nil
}

// Resolve returns the UDF name a device is routed to.
func (r Routes) Resolve(device string) string {
	for _, rule := range r.Rules {
		if ok, _ := path.Match(rule.Pattern, device); ok {
			return rule.UDF
		}
	}
	return r.Default
}
