package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sailstream/sailstream/udf"
	"github.com/sailstream/sailstream/udf/builtin"
	"github.com/sailstream/sailstream/udf/registry"
)

// version is one loaded UDF version as the processing loop runs it.
type version struct {
	// info is stamped on every enriched record: the UDF name the
	// deployment has and the version of its Ref.
	info udf.Info
	// key names the module version for quarantine: "<udf>@<sha256>", or
	// builtinKey.
	key string
	mod *udf.Module
}

const builtinKey = "builtin"

func (v *version) builtin() bool { return v.key == builtinKey }

// binding is what a UDF name runs: the live version and, when a shadow is
// deployed, the shadow.
type binding struct {
	live   *version
	shadow *version
}

// table is an immutable routing table. The processing loop loads the
// current one once per poll, so a poll never mixes two tables.
type table struct {
	gen      uint64
	routes   registry.Routes
	byName   map[string]*binding
	fallback *binding // the builtin speed UDF
	sig      string   // what runs, to tell a real change from a no-op
}

// resolve returns the binding that processes device.
func (t *table) resolve(device string) *binding {
	if b := t.byName[t.routes.Resolve(device)]; b != nil {
		return b
	}
	return t.fallback
}

// router turns registry snapshots into routing tables. Compiling modules
// takes seconds, so it happens on the router's goroutine; the processing
// loop only ever loads a pointer.
type router struct {
	eng *udf.Engine
	log *slog.Logger
	m   *metrics

	cur   atomic.Pointer[table]
	inUse atomic.Pointer[table] // the table the loop is processing with; nil between polls
	ready chan struct{}         // closed when the first table is published
	kick  chan struct{}         // cap 1: rebuild

	mu          sync.Mutex
	latest      *registry.State
	quarantined map[string]bool // version keys

	// Owned by the router goroutine (and by start, before it runs).
	builtin *version
	loaded  map[string]*udf.Module // loadKey → module
	broken  map[string]error       // loadKey → why Load refused it
	warned  map[string]bool
	gen     uint64
}

func newRouter(eng *udf.Engine, log *slog.Logger, m *metrics) *router {
	return &router{
		eng: eng, log: log, m: m,
		ready:       make(chan struct{}),
		kick:        make(chan struct{}, 1),
		quarantined: map[string]bool{},
		loaded:      map[string]*udf.Module{},
		broken:      map[string]error{},
		warned:      map[string]bool{},
	}
}

// loadBuiltin loads the embedded speed UDF: the route of every device until
// something is deployed, and the last resort of every fallback.
func (r *router) loadBuiltin(ctx context.Context) error {
	mod, err := r.eng.Load(ctx, builtin.Speed, udf.Limits{})
	if err != nil {
		return fmt.Errorf("core: loading the builtin speed UDF: %w", err)
	}
	r.builtin = &version{info: mod.Info(), key: builtinKey, mod: mod}
	return nil
}

// setState hands the router a new registry snapshot (the watcher's
// callback); the router goroutine compiles and swaps.
func (r *router) setState(s *registry.State) {
	r.mu.Lock()
	r.latest = s
	r.mu.Unlock()
	r.poke()
}

// quarantine stops this instance from using v; the router rebuilds the
// table without it.
func (r *router) quarantine(v *version) {
	r.mu.Lock()
	r.quarantined[v.key] = true
	r.mu.Unlock()
	r.poke()
}

func (r *router) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// run rebuilds and publishes the table on every kick until ctx ends, then
// closes every module it loaded.
func (r *router) run(ctx context.Context) {
	defer r.closeAll()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		}
		r.mu.Lock()
		st := r.latest
		q := make(map[string]bool, len(r.quarantined))
		for k := range r.quarantined {
			q[k] = true
		}
		r.mu.Unlock()
		if st == nil {
			continue
		}
		t := r.build(ctx, st, q)
		if ctx.Err() != nil {
			return
		}
		old := r.cur.Load()
		if old != nil && old.sig == t.sig && routesEqual(old.routes, t.routes) {
			continue
		}
		r.gen++
		t.gen = r.gen
		r.cur.Store(t)
		if old == nil {
			close(r.ready)
		} else {
			r.m.swaps.Inc()
		}
		r.log.Info("udf routing table published", "generation", t.gen, "table", t.sig)
		r.retire(ctx, old, t)
	}
}

// acquire returns the table to process one poll with and marks it in use,
// so the router does not close its modules meanwhile. Call release after.
func (r *router) acquire() *table {
	for {
		t := r.cur.Load()
		r.inUse.Store(t)
		if r.cur.Load() == t {
			return t
		}
	}
}

func (r *router) release() { r.inUse.Store(nil) }

// retire closes the modules old used that t does not, once the loop no
// longer processes with old.
func (r *router) retire(ctx context.Context, old, t *table) {
	keep := map[*udf.Module]bool{r.builtin.mod: true}
	for _, b := range t.byName {
		keep[b.live.mod] = true
		if b.shadow != nil {
			keep[b.shadow.mod] = true
		}
	}
	var drop []string
	for k, mod := range r.loaded {
		if !keep[mod] {
			drop = append(drop, k)
		}
	}
	if len(drop) == 0 {
		return
	}
	for old != nil && r.inUse.Load() == old && ctx.Err() == nil {
		time.Sleep(2 * time.Millisecond)
	}
	for _, k := range drop {
		r.loaded[k].Close(context.WithoutCancel(ctx))
		delete(r.loaded, k)
	}
}

func (r *router) closeAll() {
	// The processing loop has stopped before the router's ctx ends.
	ctx := context.Background()
	for k, mod := range r.loaded {
		mod.Close(ctx)
		delete(r.loaded, k)
	}
	if r.builtin != nil {
		r.builtin.mod.Close(ctx)
	}
}

// build makes the table a snapshot asks for: for every UDF a route names,
// the first of its live and previous versions that is in the registry,
// loads and is not quarantined here (else the builtin), and its shadow.
func (r *router) build(ctx context.Context, st *registry.State, q map[string]bool) *table {
	t := &table{
		routes:   st.Routes,
		byName:   map[string]*binding{},
		fallback: &binding{live: r.builtin},
	}
	names := []string{st.Routes.Default}
	for _, rule := range st.Routes.Rules {
		names = append(names, rule.UDF)
	}
	for _, name := range names {
		if _, done := t.byName[name]; done {
			continue
		}
		b := &binding{}
		d, ok := st.Deployments[name]
		if ok && d.Live != nil {
			cands := append([]registry.Ref{*d.Live}, d.Previous...)
			for i, ref := range cands {
				v, err := r.version(ctx, name, ref, st, q)
				if err != nil {
					r.warnOnce("live:"+name+"@"+ref.SHA256+"/"+ref.Version, "udf version not usable; trying the previous one",
						"udf", name, "version", ref.Version, "sha256", ref.SHA256, "err", err)
					continue
				}
				if i > 0 {
					r.warnOnce("fallback:"+v.key+"/"+ref.Version+"/"+d.Live.Version, "udf falls back to a previous version",
						"udf", name, "live", d.Live.Version, "serving", ref.Version)
				}
				b.live = v
				break
			}
		}
		if b.live == nil {
			b.live = r.builtin
			if name != registry.DefaultUDF || (ok && d.Live != nil) {
				r.warnOnce("nolive:"+name, "route names a UDF with no usable live version; the builtin speed UDF serves it",
					"udf", name, "builtin_version", r.builtin.info.Version)
			}
		}
		if ok && d.Shadow != nil {
			v, err := r.version(ctx, name, *d.Shadow, st, q)
			if err != nil {
				r.warnOnce("shadow:"+name+"@"+d.Shadow.SHA256, "shadow udf version not usable; no shadow runs",
					"udf", name, "version", d.Shadow.Version, "err", err)
			} else {
				b.shadow = v
			}
		}
		t.byName[name] = b
	}
	t.sig = signature(t)
	return t
}

var errQuarantined = errors.New("quarantined on this instance after repeated failures")

// version loads (or reuses) the module a Ref names.
func (r *router) version(ctx context.Context, name string, ref registry.Ref, st *registry.State, q map[string]bool) (*version, error) {
	key := name + "@" + ref.SHA256
	if q[key] {
		return nil, errQuarantined
	}
	lim, _ := json.Marshal(ref.Limits)
	lk := ref.SHA256 + string(lim)
	if err := r.broken[lk]; err != nil {
		return nil, err
	}
	mod := r.loaded[lk]
	if mod == nil {
		m, ok := st.Modules[ref.SHA256]
		if !ok {
			return nil, fmt.Errorf("module %s is not in the registry", ref.SHA256)
		}
		start := time.Now()
		var err error
		mod, err = r.eng.Load(ctx, m.Wasm, ref.Limits)
		if err != nil {
			if ctx.Err() == nil {
				r.broken[lk] = err
			}
			return nil, err
		}
		r.log.Info("udf compiled", "udf", name, "version", ref.Version, "sha256", ref.SHA256, "took", time.Since(start))
		r.loaded[lk] = mod
	}
	info := mod.Info()
	info.Name = name
	switch {
	case ref.Version != "":
		info.Version = ref.Version
	case info.Version == "":
		info.Version = ref.SHA256[:min(12, len(ref.SHA256))]
	}
	return &version{info: info, key: key, mod: mod}, nil
}

func (r *router) warnOnce(key, msg string, args ...any) {
	if r.warned[key] {
		return
	}
	r.warned[key] = true
	r.log.Warn(msg, args...)
}

// signature describes what a table runs, for logs and to skip no-op
// swaps.
func signature(t *table) string {
	names := make([]string, 0, len(t.byName))
	for n := range t.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	var sb strings.Builder
	for _, n := range names {
		b := t.byName[n]
		fmt.Fprintf(&sb, "%s=%s/%s[%s]", n, b.live.info.Name, b.live.info.Version, shortKey(b.live.key))
		if b.shadow != nil {
			fmt.Fprintf(&sb, "+shadow/%s[%s]", b.shadow.info.Version, shortKey(b.shadow.key))
		}
		sb.WriteString(" ")
	}
	return strings.TrimSpace(sb.String())
}

func routesEqual(a, b registry.Routes) bool {
	if a.Default != b.Default || len(a.Rules) != len(b.Rules) {
		return false
	}
	for i := range a.Rules {
		if a.Rules[i] != b.Rules[i] {
			return false
		}
	}
	return true
}

// shortKey abbreviates a version key's hash for logs.
func shortKey(k string) string {
	if i := strings.IndexByte(k, '@'); i >= 0 && len(k) > i+13 {
		return k[i+1 : i+13]
	}
	return k
}

// startUDFs loads the builtin speed UDF, then starts the router and the
// registry watcher. The returned stop ends both (closing every module) and
// closes the engine when the processor made it; call it after the
// processing loop has stopped.
func (p *Processor) startUDFs(ctx context.Context) (stop func(), err error) {
	eng := p.cfg.Engine
	ownEngine := eng == nil
	if ownEngine {
		dir := p.cfg.cacheDir()
		eng, err = udf.NewEngine(udf.Config{CacheDir: dir, Logger: p.cfg.Logger})
		if err != nil && dir != "" {
			p.cfg.Logger.Warn("udf compilation cache unusable; compiling in memory only", "dir", dir, "err", err)
			eng, err = udf.NewEngine(udf.Config{Logger: p.cfg.Logger})
		}
		if err != nil {
			return nil, fmt.Errorf("core: %w", err)
		}
	}
	r := p.router
	r.eng = eng
	if err := r.loadBuiltin(ctx); err != nil {
		if ownEngine {
			eng.Close(context.WithoutCancel(ctx))
		}
		return nil, err
	}
	w, err := registry.NewWatcher(registry.WatchConfig{
		Brokers: p.cfg.KafkaBrokers, Topic: p.cfg.Topics.Registry, Logger: p.cfg.Logger,
		OnBadRecord: func(string, error) { p.m.registryBad.Inc() },
	})
	if err != nil {
		return nil, fmt.Errorf("core: %w", err)
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { r.run(bg) })
	wg.Go(func() { _ = w.Run(bg, r.setState) })
	return func() {
		cancel()
		wg.Wait()
		if ownEngine {
			eng.Close(context.Background())
		}
	}, nil
}
