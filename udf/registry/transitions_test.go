package registry

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// cand makes a candidate whose bytes are a fake module (the transitions
// never look inside).
func cand(name, version string) Candidate {
	wasm := []byte("\x00asm fake " + name + " " + version)
	return Candidate{Wasm: wasm, SHA256: Hash(wasm), Name: name, Version: version}
}

// step is one action of a scenario.
type step struct {
	do      func(*State) ([]Record, error)
	wantErr error
	// check the folded state after the step (nil: nothing to check).
	check func(t *testing.T, s *State, recs []Record)
}

func deploy(c Candidate) func(*State) ([]Record, error) {
	return func(s *State) ([]Record, error) { return PlanDeploy(s, c, t0) }
}
func shadow(c Candidate) func(*State) ([]Record, error) {
	return func(s *State) ([]Record, error) { return PlanShadow(s, c, t0) }
}
func promote(n string) func(*State) ([]Record, error) {
	return func(s *State) ([]Record, error) { return PlanPromote(s, n, t0) }
}
func rollback(n string) func(*State) ([]Record, error) {
	return func(s *State) ([]Record, error) { return PlanRollback(s, n, t0) }
}
func routes(r Routes) func(*State) ([]Record, error) {
	return func(s *State) ([]Record, error) { return PlanRoutes(s, r) }
}

// fold applies recs to a copy of s, as every reader of the topic would.
func fold(t *testing.T, s *State, recs []Record) *State {
	t.Helper()
	next := s.Clone()
	for _, r := range recs {
		if err := next.Apply(r.Key, r.Value); err != nil {
			t.Fatalf("apply %s: %v", r.Key, err)
		}
	}
	return next
}

// versions describes a deployment as "live|shadow|prev1,prev2".
func versions(s *State, name string) string {
	d, ok := s.Deployments[name]
	if !ok {
		return "none"
	}
	v := func(r *Ref) string {
		if r == nil {
			return "-"
		}
		return r.Version
	}
	var prev []string
	for _, p := range d.Previous {
		prev = append(prev, p.Version)
	}
	return fmt.Sprintf("%s|%s|%s", v(d.Live), v(d.Shadow), fmt.Sprint(prev))
}

func wantVersions(name, want string) func(*testing.T, *State, []Record) {
	return func(t *testing.T, s *State, _ []Record) {
		t.Helper()
		if got := versions(s, name); got != want {
			t.Errorf("%s: got %s, want %s", name, got, want)
		}
		// Every version a deployment names has its module in the state,
		// and no module is unreferenced.
		used := map[string]bool{}
		for _, d := range s.Deployments {
			for _, r := range refs(d) {
				used[r.SHA256] = true
				if _, ok := s.Modules[r.SHA256]; !ok {
					t.Errorf("%s version %s: module %s missing", d.Name, r.Version, short(r.SHA256))
				}
			}
		}
		for sha := range s.Modules {
			if !used[sha] {
				t.Errorf("module %s is referenced by nothing but kept", short(sha))
			}
		}
	}
}

func wantRecords(n int) func(*testing.T, *State, []Record) {
	return func(t *testing.T, _ *State, recs []Record) {
		t.Helper()
		if len(recs) != n {
			var keys []string
			for _, r := range recs {
				keys = append(keys, r.Key)
			}
			t.Errorf("got %d records %v, want %d", len(recs), keys, n)
		}
	}
}

func both(fs ...func(*testing.T, *State, []Record)) func(*testing.T, *State, []Record) {
	return func(t *testing.T, s *State, r []Record) {
		t.Helper()
		for _, f := range fs {
			f(t, s, r)
		}
	}
}

func TestTransitions(t *testing.T) {
	withRoutes := cand("geo", "1")
	withRoutes.Routes = []string{"buoy-*", "boat-7"}
	withDefault := cand("geo", "2")
	withDefault.Routes = []string{"buoy-*"}
	withDefault.Default = true
	limited := cand("geo", "1")
	limited.Limits.MemoryPages = 32

	tests := []struct {
		name  string
		steps []step
	}{
		{"deploy into an empty topic publishes the module then the deployment", []step{
			{do: deploy(cand("geo", "1")), check: func(t *testing.T, s *State, recs []Record) {
				if len(recs) != 2 || recs[0].Key != KeyModulePrefix+cand("geo", "1").SHA256 || recs[1].Key != "udf/geo" {
					t.Fatalf("records %+v", recs)
				}
				wantVersions("geo", "1|-|[]")(t, s, recs)
			}},
		}},
		{"deploying the live module again publishes nothing", []step{
			{do: deploy(cand("geo", "1"))},
			{do: deploy(cand("geo", "1")), check: wantRecords(0)},
		}},
		{"deploying the live module with new limits updates it in place", []step{
			{do: deploy(cand("geo", "1"))},
			{do: deploy(limited), check: both(wantRecords(1), wantVersions("geo", "1|-|[]"), func(t *testing.T, s *State, _ []Record) {
				if s.Deployments["geo"].Live.Limits.MemoryPages != 32 {
					t.Errorf("limits not updated: %+v", s.Deployments["geo"].Live.Limits)
				}
			})},
		}},
		{"deploy pushes the old live version onto previous", []step{
			{do: deploy(cand("geo", "1"))},
			{do: deploy(cand("geo", "2")), check: wantVersions("geo", "2|-|[1]")},
			{do: deploy(cand("geo", "3")), check: wantVersions("geo", "3|-|[2 1]")},
		}},
		{"previous keeps five and the oldest module is deleted", []step{
			{do: deploy(cand("geo", "1"))},
			{do: deploy(cand("geo", "2"))},
			{do: deploy(cand("geo", "3"))},
			{do: deploy(cand("geo", "4"))},
			{do: deploy(cand("geo", "5"))},
			{do: deploy(cand("geo", "6"))},
			{do: deploy(cand("geo", "7")), check: both(wantVersions("geo", "7|-|[6 5 4 3 2]"), func(t *testing.T, _ *State, recs []Record) {
				last := recs[len(recs)-1]
				if last.Key != KeyModulePrefix+cand("geo", "1").SHA256 || last.Value != nil {
					t.Errorf("last record %s (%d bytes), want the tombstone of version 1's module", last.Key, len(last.Value))
				}
			})},
		}},
		{"redeploying an old version moves it out of previous", []step{
			{do: deploy(cand("geo", "1"))},
			{do: deploy(cand("geo", "2"))},
			{do: deploy(cand("geo", "1")), check: both(wantVersions("geo", "1|-|[2]"), func(t *testing.T, _ *State, recs []Record) {
				if recs[0].Key != "udf/geo" {
					t.Errorf("module 1 is still in the topic, yet it was published again: %s", recs[0].Key)
				}
			})},
		}},
		{"deploy merges the manifest's routes", []step{
			{do: deploy(withRoutes), check: func(t *testing.T, s *State, _ []Record) {
				want := Routes{Default: DefaultUDF, Rules: []Route{{"buoy-*", "geo"}, {"boat-7", "geo"}}}
				if !slices.Equal(s.Routes.Rules, want.Rules) || s.Routes.Default != want.Default {
					t.Errorf("routes %+v, want %+v", s.Routes, want)
				}
			}},
			{do: deploy(cand("smooth", "1"))},
			{do: deploy(func() Candidate { c := cand("smooth", "1"); c.Routes = []string{"boat-7"}; return c }()), check: func(t *testing.T, s *State, _ []Record) {
				if got := s.Routes.Resolve("boat-7"); got != "smooth" {
					t.Errorf("boat-7 routed to %s, want smooth (same pattern replaced)", got)
				}
				if len(s.Routes.Rules) != 2 {
					t.Errorf("rules %+v", s.Routes.Rules)
				}
			}},
			{do: deploy(withDefault), check: func(t *testing.T, s *State, _ []Record) {
				if s.Routes.Default != "geo" || s.Routes.Resolve("anything") != "geo" {
					t.Errorf("default %q", s.Routes.Default)
				}
			}},
		}},
		{"shadow needs something live", []step{
			{do: shadow(cand("geo", "1")), wantErr: ErrNoLive},
		}},
		{"shadow of the default UDF runs beside the built-in module", []step{
			{do: shadow(cand(DefaultUDF, "2")), check: wantVersions(DefaultUDF, "-|2|[]")},
			{do: promote(DefaultUDF), check: wantVersions(DefaultUDF, "2|-|[]")},
		}},
		{"shadow of the live module is refused", []step{
			{do: deploy(cand("geo", "1"))},
			{do: shadow(cand("geo", "1")), wantErr: ErrShadowIsLive},
		}},
		{"shadow then promote", []step{
			{do: deploy(cand("geo", "1"))},
			{do: shadow(cand("geo", "2")), check: both(wantRecords(2), wantVersions("geo", "1|2|[]"))},
			{do: shadow(cand("geo", "2")), check: wantRecords(0)},
			{do: promote("geo"), check: both(wantRecords(1), wantVersions("geo", "2|-|[1]"))},
			{do: promote("geo"), wantErr: ErrNoShadow},
		}},
		{"a new shadow replaces the old one, whose module goes", []step{
			{do: deploy(cand("geo", "1"))},
			{do: shadow(cand("geo", "2"))},
			{do: shadow(cand("geo", "3")), check: both(wantVersions("geo", "1|3|[]"), func(t *testing.T, s *State, _ []Record) {
				if _, ok := s.Modules[cand("geo", "2").SHA256]; ok {
					t.Error("the replaced shadow's module is kept")
				}
			})},
		}},
		{"shadow then rollback drops the shadow only", []step{
			{do: deploy(cand("geo", "1"))},
			{do: deploy(cand("geo", "2"))},
			{do: shadow(cand("geo", "3"))},
			{do: rollback("geo"), check: wantVersions("geo", "2|-|[1]")},
			{do: rollback("geo"), check: wantVersions("geo", "1|-|[]")},
			{do: rollback("geo"), wantErr: ErrNothingToRollBack},
		}},
		{"deploying the shadow's module ends the shadow", []step{
			{do: deploy(cand("geo", "1"))},
			{do: shadow(cand("geo", "2"))},
			{do: deploy(cand("geo", "2")), check: wantVersions("geo", "2|-|[1]")},
		}},
		{"rolling the default UDF back past its first deployment returns to the built-in", []step{
			{do: deploy(cand(DefaultUDF, "2"))},
			{do: rollback(DefaultUDF), check: both(wantVersions(DefaultUDF, "none"), func(t *testing.T, s *State, recs []Record) {
				if len(s.Modules) != 0 {
					t.Errorf("modules left: %d", len(s.Modules))
				}
				if recs[0].Key != "udf/"+DefaultUDF || recs[0].Value != nil {
					t.Errorf("first record %s, want a tombstone of udf/%s", recs[0].Key, DefaultUDF)
				}
			})},
			{do: rollback(DefaultUDF), wantErr: ErrUnknownUDF},
		}},
		{"unknown names", []step{
			{do: promote("nope"), wantErr: ErrUnknownUDF},
			{do: rollback("nope"), wantErr: ErrUnknownUDF},
			{do: routes(Routes{Default: "nope"}), wantErr: ErrUnknownUDF},
			{do: routes(Routes{Default: DefaultUDF, Rules: []Route{{"b*", "nope"}}}), wantErr: ErrUnknownUDF},
		}},
		{"routes", []step{
			{do: deploy(cand("geo", "1"))},
			{do: routes(Routes{Default: DefaultUDF, Rules: []Route{{"[", "geo"}}}), wantErr: ErrBadRecord},
			{do: routes(Routes{Default: DefaultUDF}), check: wantRecords(0)},
			{do: routes(Routes{Default: "geo", Rules: []Route{{"boat-*", DefaultUDF}}}), check: both(wantRecords(1), func(t *testing.T, s *State, _ []Record) {
				if s.Routes.Resolve("boat-1") != DefaultUDF || s.Routes.Resolve("buoy-1") != "geo" {
					t.Errorf("routes %+v", s.Routes)
				}
			})},
		}},
		{"a bad candidate is refused", []step{
			{do: deploy(Candidate{Name: "bad name", Wasm: []byte("x"), SHA256: Hash([]byte("x"))}), wantErr: ErrBadManifest},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewState()
			for i, st := range tt.steps {
				recs, err := st.do(s)
				if !errors.Is(err, st.wantErr) {
					t.Fatalf("step %d: err %v, want %v", i, err, st.wantErr)
				}
				if err != nil {
					continue
				}
				next := fold(t, s, recs)
				if st.check != nil {
					st.check(t, next, recs)
				}
				// A plan applied to the state it produces changes nothing
				// more (idempotent on replay).
				again := fold(t, next, recs)
				if versions(again, "geo") != versions(next, "geo") || len(again.Modules) != len(next.Modules) {
					t.Errorf("step %d: replaying the records changes the state", i)
				}
				s = next
			}
		})
	}
}

func TestTransitionsDoNotMutateTheirInput(t *testing.T) {
	s := NewState()
	recs, _ := PlanDeploy(s, cand("geo", "1"), t0)
	s = fold(t, s, recs)
	recs, _ = PlanShadow(s, cand("geo", "2"), t0)
	s = fold(t, s, recs)
	before := versions(s, "geo")
	for _, f := range []func(*State) ([]Record, error){deploy(cand("geo", "3")), promote("geo"), rollback("geo")} {
		if _, err := f(s); err != nil {
			t.Fatal(err)
		}
		if got := versions(s, "geo"); got != before {
			t.Fatalf("state changed by planning: %s → %s", before, got)
		}
	}
}
