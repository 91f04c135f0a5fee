package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/udf"
)

// The control plane's state transitions are pure functions: the folded
// State and an action in, the records to publish out. The Publisher only
// reads the topic, calls one of them and produces what it returns; tests
// fold the records back with State.Apply and check the result.
//
// Semantics (docs/udf.md says the same for users):
//
//   - Deploy makes the module live. The version it replaces goes to the
//     front of Previous (at most MaxPrevious kept; a version already in
//     Previous moves to the front rather than appearing twice). Deploying
//     the live module again changes nothing (unless its version or limits
//     differ, which are then updated in place). A running shadow stays,
//     unless it is the module just deployed, which then is simply live.
//     The manifest's routes replace rules with the same patterns.
//   - Shadow sets the UDF's shadow, replacing any earlier shadow. It needs
//     something live to compare with: a deployed version, or for DefaultUDF
//     the built-in speed UDF. A manifest's routes do not apply to a shadow.
//   - Promote makes the shadow live; the old live version goes to Previous.
//   - Rollback undoes the most recent step: with a shadow running it drops
//     the shadow (live is untouched); otherwise Previous[0] becomes live and
//     the version it replaces is discarded (rolling back twice goes two
//     versions back, never ping-pongs). Rolling DefaultUDF back past its
//     first deployment deletes its record: the built-in module is live again.
//   - SetRoutes replaces the routes; every UDF they name must exist.
//
// Every transition ends by deleting (tombstoning) the module records no
// deployment refers to any more, so the topic stays as small as the set of
// versions one can still roll back to.

// MaxPrevious is how many replaced versions a Deployment keeps for rollback.
const MaxPrevious = 5

// Errors of the transitions.
var (
	// ErrUnknownUDF: no UDF of that name is deployed.
	ErrUnknownUDF = errors.New("registry: no such UDF")
	// ErrNoLive: a shadow needs a live version to run beside.
	ErrNoLive = errors.New("registry: nothing live to shadow")
	// ErrNoShadow: promote needs a shadow.
	ErrNoShadow = errors.New("registry: no shadow to promote")
	// ErrShadowIsLive: the module to shadow is the live one.
	ErrShadowIsLive = errors.New("registry: this module is already live")
	// ErrNothingToRollBack: no shadow and no previous version.
	ErrNothingToRollBack = errors.New("registry: nothing to roll back to")
)

// Record is one record to produce to the registry topic. A nil Value is a
// tombstone.
type Record struct {
	Key     string
	Value   []byte
	Headers []kgo.RecordHeader
}

// Candidate is a module that passed validation, with the identity and
// limits it is deployed under.
type Candidate struct {
	Wasm    []byte
	SHA256  string
	Name    string
	Version string
	Limits  udf.Limits
	// Routes and Default come from the manifest (see Manifest).
	Routes  []string
	Default bool
}

func (c Candidate) ref(now time.Time) *Ref {
	return &Ref{Version: c.Version, SHA256: c.SHA256, Limits: c.Limits, DeployedAt: now.UTC()}
}

// Clone returns a copy of s that shares module bytes (they are immutable)
// but nothing that Apply changes.
func (s *State) Clone() *State {
	c := &State{
		Modules:     maps.Clone(s.Modules),
		Deployments: make(map[string]Deployment, len(s.Deployments)),
		Routes:      Routes{Rules: slices.Clone(s.Routes.Rules), Default: s.Routes.Default},
	}
	for k, d := range s.Deployments {
		if d.Live != nil {
			r := *d.Live
			d.Live = &r
		}
		if d.Shadow != nil {
			r := *d.Shadow
			d.Shadow = &r
		}
		d.Previous = slices.Clone(d.Previous)
		c.Deployments[k] = d
	}
	return c
}

// PlanDeploy returns the records that make c the live version of c.Name.
// No records means nothing would change.
func PlanDeploy(s *State, c Candidate, now time.Time) ([]Record, error) {
	if err := checkCandidate(c); err != nil {
		return nil, err
	}
	old := s.Deployments[c.Name]
	d := Deployment{Name: c.Name, Live: old.Live, Shadow: old.Shadow, Previous: slices.Clone(old.Previous)}
	next := c.ref(now)
	switch {
	case d.Live == nil:
		d.Live = next
	case d.Live.SHA256 == c.SHA256:
		if d.Live.Version != c.Version || !reflect.DeepEqual(d.Live.Limits, c.Limits) {
			d.Live = next
		}
	default:
		d.Previous = pushPrevious(d.Previous, *d.Live)
		d.Live = next
	}
	d.Previous = slices.DeleteFunc(d.Previous, func(r Ref) bool { return r.SHA256 == c.SHA256 })
	if d.Shadow != nil && d.Shadow.SHA256 == c.SHA256 {
		d.Shadow = nil
	}
	routes := mergeRoutes(s.Routes, c.Name, c.Routes, c.Default)
	return plan(s, &d, c, routes)
}

// PlanShadow returns the records that run c beside the live version of
// c.Name.
func PlanShadow(s *State, c Candidate, now time.Time) ([]Record, error) {
	if err := checkCandidate(c); err != nil {
		return nil, err
	}
	old, ok := s.Deployments[c.Name]
	if (!ok || old.Live == nil) && c.Name != DefaultUDF {
		return nil, fmt.Errorf("%w: %q has no live version; deploy it first", ErrNoLive, c.Name)
	}
	if old.Live != nil && old.Live.SHA256 == c.SHA256 {
		return nil, fmt.Errorf("%w: %s version %s (%s)", ErrShadowIsLive, c.Name, old.Live.Version, short(c.SHA256))
	}
	d := Deployment{Name: c.Name, Live: old.Live, Previous: slices.Clone(old.Previous)}
	d.Shadow = c.ref(now)
	if old.Shadow != nil && old.Shadow.SHA256 == c.SHA256 &&
		old.Shadow.Version == c.Version && reflect.DeepEqual(old.Shadow.Limits, c.Limits) {
		d.Shadow = old.Shadow
	}
	return plan(s, &d, c, s.Routes)
}

// PlanPromote returns the records that make the shadow of name live.
func PlanPromote(s *State, name string, now time.Time) ([]Record, error) {
	old, ok := s.Deployments[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownUDF, name)
	}
	if old.Shadow == nil {
		return nil, fmt.Errorf("%w: %q runs no shadow (udf shadow FILE starts one)", ErrNoShadow, name)
	}
	d := Deployment{Name: name, Previous: slices.Clone(old.Previous)}
	if old.Live != nil {
		d.Previous = pushPrevious(d.Previous, *old.Live)
	}
	live := *old.Shadow
	live.DeployedAt = now.UTC()
	d.Live = &live
	d.Previous = slices.DeleteFunc(d.Previous, func(r Ref) bool { return r.SHA256 == live.SHA256 })
	return plan(s, &d, Candidate{}, s.Routes)
}

// PlanRollback returns the records that undo the last step of name (see
// the semantics above).
func PlanRollback(s *State, name string, now time.Time) ([]Record, error) {
	old, ok := s.Deployments[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownUDF, name)
	}
	d := Deployment{Name: name, Live: old.Live, Previous: slices.Clone(old.Previous)}
	switch {
	case old.Shadow != nil:
		// drop the shadow
	case len(old.Previous) > 0:
		live := old.Previous[0]
		live.DeployedAt = now.UTC()
		d.Live = &live
		d.Previous = d.Previous[1:]
	case name == DefaultUDF && old.Live != nil:
		return plan(s, nil, Candidate{}, s.Routes, name)
	default:
		return nil, fmt.Errorf("%w: %q has no shadow and no previous version", ErrNothingToRollBack, name)
	}
	return plan(s, &d, Candidate{}, s.Routes)
}

// PlanRoutes returns the records that replace the routes with r.
func PlanRoutes(s *State, r Routes) ([]Record, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	names := []string{r.Default}
	for _, rule := range r.Rules {
		names = append(names, rule.UDF)
	}
	for _, n := range names {
		if d, ok := s.Deployments[n]; n != DefaultUDF && (!ok || d.Live == nil) {
			return nil, fmt.Errorf("%w: routes name %q, which is not deployed (udf deploy it first)", ErrUnknownUDF, n)
		}
	}
	return plan(s, nil, Candidate{}, r)
}

func checkCandidate(c Candidate) error {
	if !ValidName(c.Name) {
		return fmt.Errorf("%w: UDF name %q", ErrBadManifest, c.Name)
	}
	if c.SHA256 != Hash(c.Wasm) {
		return fmt.Errorf("registry: candidate %s: SHA256 does not match its bytes", c.Name)
	}
	return nil
}

// pushPrevious puts r in front of prev, without duplicates, keeping
// MaxPrevious.
func pushPrevious(prev []Ref, r Ref) []Ref {
	prev = slices.DeleteFunc(prev, func(p Ref) bool { return p.SHA256 == r.SHA256 })
	prev = append([]Ref{r}, prev...)
	if len(prev) > MaxPrevious {
		prev = prev[:MaxPrevious]
	}
	return prev
}

// mergeRoutes binds patterns (and, when def, the default) to name: a rule
// with the same pattern is replaced in place, a new one is appended.
func mergeRoutes(r Routes, name string, patterns []string, def bool) Routes {
	out := Routes{Rules: slices.Clone(r.Rules), Default: r.Default}
	for _, p := range patterns {
		i := slices.IndexFunc(out.Rules, func(rule Route) bool { return rule.Pattern == p })
		if i >= 0 {
			out.Rules[i].UDF = name
		} else {
			out.Rules = append(out.Rules, Route{Pattern: p, UDF: name})
		}
	}
	if def {
		out.Default = name
	}
	return out
}

// plan turns the new deployment d (nil: unchanged), routes and the names
// to delete into records, in the order a reader needs them: the module
// before the deployment that names it, deletions of unreferenced modules
// last.
func plan(s *State, d *Deployment, c Candidate, routes Routes, deleteNames ...string) ([]Record, error) {
	var recs []Record
	next := s.Clone()
	if d != nil {
		if len(d.Previous) == 0 {
			d.Previous = nil
		}
		if old, ok := s.Deployments[d.Name]; ok && reflect.DeepEqual(old, *d) {
			d = nil
		}
	}
	if d != nil {
		for _, r := range refs(*d) {
			if _, ok := s.Modules[r.SHA256]; ok {
				continue
			}
			if r.SHA256 != c.SHA256 {
				return nil, fmt.Errorf("registry: %s refers to module %s, which is not in the topic", d.Name, short(r.SHA256))
			}
			recs = append(recs, Record{Key: KeyModulePrefix + c.SHA256, Value: c.Wasm, Headers: []kgo.RecordHeader{
				{Key: "name", Value: []byte(c.Name)}, {Key: "version", Value: []byte(c.Version)},
			}})
			next.Modules[c.SHA256] = Module{SHA256: c.SHA256, Wasm: c.Wasm}
		}
		b, err := json.Marshal(d)
		if err != nil {
			return nil, fmt.Errorf("registry: %w", err)
		}
		recs = append(recs, Record{Key: KeyUDFPrefix + d.Name, Value: b})
		next.Deployments[d.Name] = *d
	}
	for _, n := range deleteNames {
		if _, ok := s.Deployments[n]; ok {
			recs = append(recs, Record{Key: KeyUDFPrefix + n})
			delete(next.Deployments, n)
		}
	}
	if !reflect.DeepEqual(routes, s.Routes) && !(len(routes.Rules) == 0 && len(s.Routes.Rules) == 0 && routes.Default == s.Routes.Default) {
		if err := routes.Validate(); err != nil {
			return nil, err
		}
		b, err := json.Marshal(routes)
		if err != nil {
			return nil, fmt.Errorf("registry: %w", err)
		}
		recs = append(recs, Record{Key: KeyRoutes, Value: b})
	}
	if len(recs) == 0 {
		return nil, nil
	}
	used := map[string]bool{}
	for _, dep := range next.Deployments {
		for _, r := range refs(dep) {
			used[r.SHA256] = true
		}
	}
	var unused []string
	for sha := range next.Modules {
		if !used[sha] {
			unused = append(unused, sha)
		}
	}
	sort.Strings(unused)
	for _, sha := range unused {
		recs = append(recs, Record{Key: KeyModulePrefix + sha})
	}
	return recs, nil
}

// refs lists the versions a deployment refers to.
func refs(d Deployment) []Ref {
	var out []Ref
	if d.Live != nil {
		out = append(out, *d.Live)
	}
	if d.Shadow != nil {
		out = append(out, *d.Shadow)
	}
	return append(out, d.Previous...)
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
