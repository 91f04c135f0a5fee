package udf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/sailstream/sailstream/telemetry"
)

// Defaults for the zero fields of Limits.
const (
	DefaultMemoryPages          = 256 // 16 MiB
	DefaultCallTimeout          = 2 * time.Second
	DefaultMaxModuleBytes       = 32 << 20
	DefaultMaxStateBytes        = 64 << 10
	DefaultMaxOutputBytes       = 8 << 20
	DefaultMaxOutputsPerReading = 16
	// DefaultInstances is capped by GOMAXPROCS.
	DefaultInstances = 4
)

// Limits bound what one module may use. Zero fields take the defaults.
type Limits struct {
	// MemoryPages caps each instance's linear memory, in 64 KiB pages.
	MemoryPages uint32 `json:"memory_pages,omitempty"`
	// CallTimeout is the deadline of one batch call.
	CallTimeout time.Duration `json:"call_timeout,omitempty"`
	// MaxModuleBytes refuses bigger .wasm files at load.
	MaxModuleBytes int `json:"max_module_bytes,omitempty"`
	// MaxStateBytes bounds the state a call may return.
	MaxStateBytes int `json:"max_state_bytes,omitempty"`
	// MaxOutputBytes bounds the output buffer a call may return.
	MaxOutputBytes int `json:"max_output_bytes,omitempty"`
	// MaxOutputsPerReading bounds the outputs of a batch to this many per
	// input reading.
	MaxOutputsPerReading int `json:"max_outputs_per_reading,omitempty"`
	// Instances is how many instances of the module may run at once (one
	// per worker); more callers wait.
	Instances int `json:"instances,omitempty"`
}

func (l Limits) withDefaults() Limits {
	if l.MemoryPages == 0 {
		l.MemoryPages = DefaultMemoryPages
	}
	if l.CallTimeout <= 0 {
		l.CallTimeout = DefaultCallTimeout
	}
	if l.MaxModuleBytes <= 0 {
		l.MaxModuleBytes = DefaultMaxModuleBytes
	}
	if l.MaxStateBytes <= 0 {
		l.MaxStateBytes = DefaultMaxStateBytes
	}
	if l.MaxOutputBytes <= 0 {
		l.MaxOutputBytes = DefaultMaxOutputBytes
	}
	if l.MaxOutputsPerReading <= 0 {
		l.MaxOutputsPerReading = DefaultMaxOutputsPerReading
	}
	if l.Instances <= 0 {
		l.Instances = min(DefaultInstances, runtime.GOMAXPROCS(0))
	}
	return l
}

// Validate reports limits that cannot work.
func (l Limits) Validate() error {
	if l.MemoryPages > 65536 {
		return fmt.Errorf("udf: memory pages %d above the Wasm maximum of 65536", l.MemoryPages)
	}
	if l.CallTimeout < 0 {
		return fmt.Errorf("udf: negative call timeout %v", l.CallTimeout)
	}
	return nil
}

// Config configures an Engine.
type Config struct {
	// CacheDir holds compiled modules across restarts, so loading a module
	// compiled before takes milliseconds instead of seconds. Empty keeps
	// the cache in memory only.
	CacheDir string
	// Logger gets load and instance events; nil discards them.
	Logger *slog.Logger
}

// Engine compiles and loads modules. It holds the compilation cache that
// all of its modules share. Safe for concurrent use.
type Engine struct {
	cache wazero.CompilationCache
	log   *slog.Logger
}

// NewEngine returns an engine with the compilation cache cfg asks for.
func NewEngine(cfg Config) (*Engine, error) {
	e := &Engine{log: cfg.Logger}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if cfg.CacheDir == "" {
		e.cache = wazero.NewCompilationCache()
	} else {
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("udf: compilation cache: %w", err)
		}
		e.cache = c
	}
	return e, nil
}

// Close releases the in-memory compilation cache. Close the engine's
// modules first.
func (e *Engine) Close(ctx context.Context) error { return e.cache.Close(ctx) }

// versionedExport matches ABI exports of any version, to tell a module of
// another ABI version from one that is no UDF at all.
var versionedExport = regexp.MustCompile(`^sailstream_v([0-9]+)_`)

// Load compiles wasm (from the cache when it was compiled before), checks
// its exports and ABI version, and starts one instance to read its info.
// Compiling a large module takes seconds: call Load off the hot path.
func (e *Engine) Load(ctx context.Context, wasm []byte, lim Limits) (*Module, error) {
	if err := lim.Validate(); err != nil {
		return nil, err
	}
	lim = lim.withDefaults()
	if len(wasm) > lim.MaxModuleBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrModuleTooLarge, len(wasm), lim.MaxModuleBytes)
	}
	start := time.Now()
	// Deadlines and the garbage collector's safe points come from the
	// checks instrument adds (interrupt.go), not from
	// WithCloseOnContextDone, which costs a Go guest 6x.
	code, err := instrument(wasm)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidModule, err)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().
		WithCompilationCache(e.cache).
		WithMemoryLimitPages(lim.MemoryPages))
	m := &Module{rt: rt, lim: lim, log: e.log, live: make(map[*instance]struct{})}
	fail := func(err error) (*Module, error) {
		rt.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	compiled, err := rt.CompileModule(ctx, code)
	if err != nil {
		return fail(fmt.Errorf("%w: compile: %v", ErrInvalidModule, err))
	}
	if err := checkExports(compiled); err != nil {
		return fail(err)
	}
	// WASI without capabilities: what a language runtime needs to start
	// (Go's imports it), with no files, arguments, environment or network,
	// a fake clock and a deterministic random source (wazero's defaults).
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		return fail(fmt.Errorf("udf: instantiate WASI: %w", err))
	}
	m.compiled = compiled
	m.pool = newPool(lim.Instances)

	inst, err := m.instantiate(ctx)
	if err != nil {
		return fail(err)
	}
	if err := m.readInfo(ctx, inst, len(wasm)); err != nil {
		m.closeInstance(ctx, inst)
		return fail(err)
	}
	m.pool.sem <- struct{}{}
	m.pool.put(inst)
	e.log.Info("udf loaded", "name", m.info.Name, "version", m.info.Version, "bytes", len(wasm), "took", time.Since(start))
	return m, nil
}

// checkExports refuses a module without the ABI v1 exports, with a message
// that names what is missing.
func checkExports(c wazero.CompiledModule) error {
	fns := c.ExportedFunctions()
	for name := range fns {
		if m := versionedExport.FindStringSubmatch(name); m != nil && m[1] != strconv.Itoa(ABIVersion) {
			if _, ok := fns[exportProcess]; !ok {
				return fmt.Errorf("%w: module exports %s, an ABI v%s function; this host speaks ABI v%d (see udf/ABI.md)", ErrABIVersion, name, m[1], ABIVersion)
			}
		}
	}
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	want := []struct {
		name    string
		params  []api.ValueType
		results []api.ValueType
	}{
		{exportABIVersion, nil, []api.ValueType{i32}},
		{exportAlloc, []api.ValueType{i32}, []api.ValueType{i32}},
		{exportProcess, []api.ValueType{i32, i32}, []api.ValueType{i64}},
	}
	for _, w := range want {
		f, ok := fns[w.name]
		if !ok {
			return fmt.Errorf("%w: %s is not exported (a sailstream UDF exports %s, %s and %s; see udf/ABI.md)", ErrMissingExport, w.name, exportABIVersion, exportAlloc, exportProcess)
		}
		if !sameTypes(f.ParamTypes(), w.params) || !sameTypes(f.ResultTypes(), w.results) {
			return fmt.Errorf("%w: %s has signature %s -> %s, want %s -> %s", ErrMissingExport, w.name,
				typeNames(f.ParamTypes()), typeNames(f.ResultTypes()), typeNames(w.params), typeNames(w.results))
		}
	}
	if f, ok := fns[exportInfo]; ok && (len(f.ParamTypes()) != 0 || !sameTypes(f.ResultTypes(), []api.ValueType{i64})) {
		return fmt.Errorf("%w: %s has signature %s -> %s, want () -> (i64)", ErrMissingExport, exportInfo, typeNames(f.ParamTypes()), typeNames(f.ResultTypes()))
	}
	if _, ok := c.ExportedMemories()[exportMemory]; !ok {
		return fmt.Errorf("%w: no memory exported as %q", ErrMissingExport, exportMemory)
	}
	return nil
}

func sameTypes(a, b []api.ValueType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func typeNames(ts []api.ValueType) string {
	s := "("
	for i, t := range ts {
		if i > 0 {
			s += ", "
		}
		s += api.ValueTypeName(t)
	}
	return s + ")"
}

// readInfo checks the ABI version the module reports and reads its
// optional name and version.
func (m *Module) readInfo(ctx context.Context, inst *instance, size int) error {
	inst.arm(ctx, m.lim.CallTimeout)
	defer inst.disarm()
	v, err := inst.mod.ExportedFunction(exportABIVersion).Call(ctx)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalidModule, exportABIVersion, err)
	}
	if got := int32(v[0]); got != ABIVersion {
		return fmt.Errorf("%w: module reports ABI version %d; this host speaks ABI v%d (see udf/ABI.md)", ErrABIVersion, got, ABIVersion)
	}
	m.info = Info{ABI: ABIVersion, Size: size}
	f := inst.mod.ExportedFunction(exportInfo)
	if f == nil {
		return nil
	}
	r, err := f.Call(ctx)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalidModule, exportInfo, err)
	}
	ptr, n := uint32(r[0]>>32), uint32(r[0])
	if n > 4096 {
		return fmt.Errorf("%w: %s returned %d bytes, limit 4096", ErrInvalidModule, exportInfo, n)
	}
	b, ok := inst.mem.Read(ptr, n)
	if !ok {
		return fmt.Errorf("%w: %s returned [%d, +%d) outside memory", ErrInvalidModule, exportInfo, ptr, n)
	}
	var meta struct{ Name, Version string }
	if err := json.Unmarshal(b, &meta); err != nil {
		return fmt.Errorf("%w: %s: not a JSON object with name and version: %v", ErrInvalidModule, exportInfo, err)
	}
	m.info.Name, m.info.Version = meta.Name, meta.Version
	return nil
}

// Module is a compiled, validated UDF with a pool of instances. Process may
// be called from many goroutines; each call takes an instance of its own.
type Module struct {
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	lim      Limits
	log      *slog.Logger
	info     Info
	pool     *pool
	closed   atomic.Bool

	mu   sync.Mutex
	live map[*instance]struct{} // to interrupt running calls on Close
}

// Info describes the module.
func (m *Module) Info() Info { return m.info }

// Limits returns the module's limits, defaults filled in.
func (m *Module) Limits() Limits { return m.lim }

// Close stops every instance and frees the compiled code. Calls still
// running fail; calls after Close return ErrClosed.
func (m *Module) Close(ctx context.Context) error {
	if m.closed.Swap(true) {
		return nil
	}
	m.pool.close()
	m.mu.Lock()
	for in := range m.live {
		in.setInterrupt(1)
	}
	m.mu.Unlock()
	return m.rt.Close(ctx)
}

// Process runs the UDF on one batch: readings of one device, in event-time
// order, and the device's state from the previous call (nil for none). On
// error the state is unchanged; a *CallError means the guest failed on this
// batch (use Isolate to find the readings it fails on), any other error
// that ctx ended or the module was closed.
func (m *Module) Process(ctx context.Context, state []byte, device string, readings []telemetry.Reading) (Result, error) {
	if m.closed.Load() {
		return Result{}, ErrClosed
	}
	inst, err := m.pool.get(ctx, m)
	if err != nil {
		return Result{}, err
	}
	res, err := inst.call(ctx, m, state, device, readings)
	if err != nil {
		var ce *CallError
		if errors.As(err, &ce) && ce.Kind == ErrGuest {
			// The guest returned normally: its instance is sound.
			m.pool.put(inst)
		} else {
			m.pool.discard(ctx, m, inst)
		}
		return Result{}, err
	}
	m.pool.put(inst)
	return res, nil
}

// ReadingError is a reading Isolate could not process.
type ReadingError struct {
	// Index is the reading's index in the batch.
	Index int
	Err   error
}

// Isolate runs a batch that failed as a whole reading by reading, carrying
// the state from one reading to the next, so that only the readings the
// guest fails on are lost (to the dead-letter queue): it returns the merged
// result of the others (Output.Input indexes the whole batch) and one
// ReadingError per failed reading, whose state change is skipped. The error
// is not nil only when ctx ended or the module was closed.
func (m *Module) Isolate(ctx context.Context, state []byte, device string, readings []telemetry.Reading) (Result, []ReadingError, error) {
	res := Result{State: state}
	var failed []ReadingError
	for i := range readings {
		r, err := m.Process(ctx, res.State, device, readings[i:i+1])
		if err != nil {
			var ce *CallError
			if !errors.As(err, &ce) {
				return Result{}, nil, err
			}
			failed = append(failed, ReadingError{Index: i, Err: err})
			continue
		}
		for _, o := range r.Outputs {
			o.Input = i
			res.Outputs = append(res.Outputs, o)
		}
		res.State = r.State
	}
	return res, failed, nil
}

// instance is one instantiation of the module. It runs one call at a time
// and is discarded after any failure.
type instance struct {
	mod     api.Module
	mem     api.Memory
	alloc   api.Function
	process api.Function
	stderr  *tailBuffer
	stack   [2]uint64
	enc     inputEncoder // scratch space of the batches' encoding
	names   nameCache    // the field names the guest's outputs use

	// The interrupt (interrupt.go): arm makes fireFn set it when the
	// call's deadline passes (timer, reused from call to call) or its
	// context ends (stopCtx); disarm waits for a fireFn that started.
	interrupt api.MutableGlobal
	fuel      api.MutableGlobal
	imu       sync.Mutex // serialises the host's writes to both
	fireFn    func()
	timer     *time.Timer
	stopCtx   func() bool
	firing    sync.WaitGroup
	fired     atomic.Bool
}

var instanceSeq atomic.Uint64

func (m *Module) instantiate(ctx context.Context) (*instance, error) {
	stderr := &tailBuffer{max: 1024}
	// No start functions: instrument turned the start section into an
	// export, and it and _initialize run below with the interrupt armed.
	cfg := wazero.NewModuleConfig().
		WithName(""). // anonymous: many instances of one module
		WithStartFunctions().
		WithStderr(stderr)
	failed := func(err error) error {
		msg := err.Error()
		if s := stderr.String(); s != "" {
			msg += " (guest stderr: " + s + ")"
		}
		return fmt.Errorf("%w: instantiate: %s", ErrInvalidModule, msg)
	}
	mod, err := m.rt.InstantiateModule(ctx, m.compiled, cfg)
	if err != nil {
		return nil, failed(err)
	}
	interrupt, ok1 := mod.ExportedGlobal(interruptExport).(api.MutableGlobal)
	fuel, ok2 := mod.ExportedGlobal(fuelExport).(api.MutableGlobal)
	if !ok1 || !ok2 {
		mod.Close(context.WithoutCancel(ctx))
		return nil, failed(errors.New("no interrupt globals (instrument failed)"))
	}
	in := &instance{
		mod:       mod,
		mem:       mod.ExportedMemory(exportMemory),
		alloc:     mod.ExportedFunction(exportAlloc),
		process:   mod.ExportedFunction(exportProcess),
		stderr:    stderr,
		interrupt: interrupt,
		fuel:      fuel,
	}
	in.fireFn = in.fire
	in.timer = time.AfterFunc(time.Hour, in.fireFn)
	in.timer.Stop()
	for _, name := range []string{startExport, "_initialize"} {
		f := mod.ExportedFunction(name)
		if f == nil {
			continue
		}
		in.arm(ctx, m.lim.CallTimeout)
		_, err := f.Call(ctx)
		if fired := in.disarm(); err != nil {
			mod.Close(context.WithoutCancel(ctx))
			if fired {
				err = fmt.Errorf("%s did not return within %v: %w", name, m.lim.CallTimeout, err)
			}
			return nil, failed(err)
		}
	}
	instanceSeq.Add(1)
	m.mu.Lock()
	m.live[in] = struct{}{}
	closed := m.closed.Load()
	m.mu.Unlock()
	if closed {
		// Close ran while this instance started: it did not see it.
		in.setInterrupt(1)
	}
	return in, nil
}

// closeInstance closes an instance and forgets it.
func (m *Module) closeInstance(ctx context.Context, in *instance) {
	m.mu.Lock()
	delete(m.live, in)
	m.mu.Unlock()
	in.mod.Close(context.WithoutCancel(ctx))
}

// arm makes the guest trap at its next check (interrupt.go) once timeout
// has passed or ctx ends. Every arm needs a disarm before the next. It costs a
// timer reset per call, plus a context.AfterFunc when ctx can end.
func (in *instance) arm(ctx context.Context, timeout time.Duration) {
	in.firing.Add(1)
	in.timer.Reset(timeout)
	if ctx.Done() != nil {
		in.firing.Add(1)
		in.stopCtx = context.AfterFunc(ctx, in.fireFn)
	}
}

func (in *instance) fire() {
	defer in.firing.Done()
	in.fired.Store(true)
	in.setInterrupt(1)
}

// disarm ends what arm started and reports whether the interrupt fired. A
// call that returned normally all the same leaves a sound instance: the
// interrupt is cleared for the next call.
func (in *instance) disarm() (fired bool) {
	if in.timer.Stop() {
		in.firing.Done()
	}
	if in.stopCtx != nil {
		if in.stopCtx() {
			in.firing.Done()
		}
		in.stopCtx = nil
	}
	in.firing.Wait()
	if !in.fired.Load() {
		return false
	}
	in.fired.Store(false)
	in.setInterrupt(0)
	return true
}

// setInterrupt sets the interrupt global; setting it to 1 also empties the
// fuel, so that the guest looks at it at its next check.
func (in *instance) setInterrupt(v uint64) {
	in.imu.Lock()
	in.interrupt.Set(v)
	if v != 0 {
		in.fuel.Set(0)
	}
	in.imu.Unlock()
}

// call encodes one batch, makes its alloc and process calls under the
// module's deadline and decodes the output.
func (in *instance) call(ctx context.Context, m *Module, state []byte, device string, readings []telemetry.Reading) (Result, error) {
	nReadings := len(readings)
	size := in.enc.measure(state, device, readings)
	in.arm(ctx, m.lim.CallTimeout)
	in.stack[0] = uint64(size)
	if err := in.alloc.CallWithStack(ctx, in.stack[:]); err != nil {
		return Result{}, in.failure(ctx, m, err, in.disarm())
	}
	ptr := uint32(in.stack[0])
	// The input is encoded in place, in the guest's memory: the view is
	// valid until the guest runs again (only it can grow its memory).
	dst, ok := in.mem.Read(ptr, uint32(size))
	if ptr == 0 || !ok || uint64(size) > math.MaxUint32 {
		in.disarm()
		return Result{}, &CallError{Kind: ErrMalformedOutput, Err: fmt.Errorf("%s(%d) returned %d, outside the %d-byte memory", exportAlloc, size, ptr, in.mem.Size())}
	}
	in.enc.write(dst, state, device, readings)
	in.stack[0], in.stack[1] = uint64(ptr), uint64(size)
	err := in.process.CallWithStack(ctx, in.stack[:])
	if fired := in.disarm(); err != nil {
		return Result{}, in.failure(ctx, m, err, fired)
	}
	outPtr, outLen := uint32(in.stack[0]>>32), uint32(in.stack[0])
	if uint64(outLen) > uint64(m.lim.MaxOutputBytes) {
		return Result{}, &CallError{Kind: ErrMalformedOutput, Err: fmt.Errorf("%w: %d bytes, limit %d", ErrMalformedOutput, outLen, m.lim.MaxOutputBytes)}
	}
	out, ok := in.mem.Read(outPtr, outLen)
	if !ok {
		return Result{}, &CallError{Kind: ErrMalformedOutput, Err: fmt.Errorf("%w: [%d, +%d) outside the %d-byte memory", ErrMalformedOutput, outPtr, outLen, in.mem.Size())}
	}
	res, err := decodeOutput(out, nReadings, outputLimits{maxState: m.lim.MaxStateBytes, maxOutputs: max(1, nReadings) * m.lim.MaxOutputsPerReading}, &in.names)
	if err != nil {
		kind := ErrMalformedOutput
		if errors.Is(err, ErrGuest) {
			kind = ErrGuest
		}
		return Result{}, &CallError{Kind: kind, Err: err}
	}
	return res, nil
}

// failure classifies the error of a guest call. ctx is the caller's: when
// it ended, the failure is not the guest's.
func (in *instance) failure(ctx context.Context, m *Module, err error, fired bool) error {
	if ctx.Err() != nil {
		return fmt.Errorf("udf: call abandoned: %w", ctx.Err())
	}
	if m.closed.Load() {
		return ErrClosed
	}
	ce := &CallError{Kind: ErrTrap, Err: err, Stderr: in.stderr.String()}
	if fired {
		ce.Kind = ErrTimeout
		ce.Err = fmt.Errorf("no result within %v: %w", m.lim.CallTimeout, err)
	} else if limit := uint64(m.lim.MemoryPages) * 65536; uint64(in.mem.Size())+4<<20 > limit || containsOOM(ce.Stderr) {
		// Go's allocator grows the heap in 4 MiB steps: an instance that
		// failed within one step of its limit ran out of memory.
		ce.Kind = ErrMemoryLimit
		ce.Err = fmt.Errorf("memory at %d of %d bytes: %w", in.mem.Size(), limit, err)
	}
	return ce
}

func containsOOM(s string) bool {
	for _, needle := range []string{"out of memory", "runtime: cannot allocate memory"} {
		if len(s) >= len(needle) {
			for i := 0; i+len(needle) <= len(s); i++ {
				if s[i:i+len(needle)] == needle {
					return true
				}
			}
		}
	}
	return false
}

// pool hands out instances: idle ones first, a new one while fewer than its
// size are alive, else it waits.
type pool struct {
	idle chan *instance
	sem  chan struct{} // one token per live instance
	done chan struct{}
	once sync.Once
}

func newPool(size int) *pool {
	return &pool{idle: make(chan *instance, size), sem: make(chan struct{}, size), done: make(chan struct{})}
}

func (p *pool) get(ctx context.Context, m *Module) (*instance, error) {
	select {
	case in := <-p.idle:
		return in, nil
	default:
	}
	select {
	case in := <-p.idle:
		return in, nil
	case p.sem <- struct{}{}:
		in, err := m.instantiate(ctx)
		if err != nil {
			<-p.sem
			if ctx.Err() != nil {
				return nil, fmt.Errorf("udf: call abandoned: %w", ctx.Err())
			}
			return nil, &CallError{Kind: ErrTrap, Err: err}
		}
		m.log.Debug("udf instance started", "name", m.info.Name)
		return in, nil
	case <-p.done:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, fmt.Errorf("udf: waiting for an instance: %w", ctx.Err())
	}
}

func (p *pool) put(in *instance) { p.idle <- in }

func (p *pool) discard(ctx context.Context, m *Module, in *instance) {
	m.closeInstance(ctx, in)
	<-p.sem
}

func (p *pool) close() { p.once.Do(func() { close(p.done) }) }

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
