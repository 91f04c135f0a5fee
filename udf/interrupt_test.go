package udf

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
)

// Hand-assembled modules: instrument is about bytes, so its tests are too.

func wasmModule(sections ...[]byte) []byte {
	b := []byte("\x00asm\x01\x00\x00\x00")
	for _, s := range sections {
		b = append(b, s...)
	}
	return b
}

func sec(id byte, body ...byte) []byte {
	return append(appendU32([]byte{id}, uint32(len(body))), body...)
}

// funcModule has one function of type () -> () with the given body
// (locals and instructions, without the final end), exported as "f".
func funcModule(extra [][]byte, body ...byte) []byte {
	code := append([]byte{0x00}, body...) // no locals
	code = append(code, 0x0b)
	secs := [][]byte{
		sec(1, 0x01, 0x60, 0x00, 0x00),      // type: () -> ()
		sec(3, 0x01, 0x00),                  // function 0: type 0
		sec(7, 0x01, 0x01, 'f', 0x00, 0x00), // export "f" = func 0
		sec(10, append(appendU32([]byte{0x01}, uint32(len(code))), code...)...),
	}
	secs = append(secs, extra...)
	slices.SortStableFunc(secs, func(a, b []byte) int { return sectionOrder[a[0]] - sectionOrder[b[0]] })
	return wasmModule(secs...)
}

func TestInstrument(t *testing.T) {
	check := func(g byte) []byte { return appendCheck(nil, indexes{fuel: uint32(g), interrupt: uint32(g) + 1}) }
	// entry is a function body's start with an entry check: no locals,
	// then the check.
	entry := func(g byte) []byte { return append([]byte{0x00}, check(g)...) }
	tests := []struct {
		name string
		in   []byte
		// want holds byte strings the output must contain (checks after
		// loops, the added global and exports).
		want [][]byte
		// wantErr: instrument refuses the module.
		wantErr bool
	}{
		{
			name: "a loop gets a check of global 0",
			in:   funcModule(nil, 0x03, 0x40, 0x0c, 0x00, 0x0b), // loop br 0 end
			want: [][]byte{append([]byte{0x03, 0x40}, check(0)...), []byte(interruptExport)},
		},
		{
			name: "straight-line code before the first loop: no entry check",
			in:   funcModule(nil, 0x41, 0x07, 0x1a, 0x02, 0x40, 0x03, 0x40, 0x0b, 0x0b), // i32.const, drop, block, loop
			want: [][]byte{append([]byte{0x00, 0x41, 0x07, 0x1a, 0x02, 0x40, 0x03, 0x40}, check(0)...)},
		},
		{
			name: "a call before any loop: an entry check",
			in:   funcModule(nil, 0x10, 0x00, 0x03, 0x40, 0x0b), // call 0 (itself), loop
			want: [][]byte{append(entry(0), 0x10, 0x00, 0x03, 0x40), append([]byte{0x03, 0x40}, check(0)...)},
		},
		{
			name: "no loop at all: an entry check",
			in:   funcModule(nil, 0x01),
			want: [][]byte{append(entry(0), 0x01, 0x0b)},
		},
		{
			name: "nested loops with a typed block each get one",
			in:   funcModule(nil, 0x03, 0x40, 0x03, 0x7f, 0x41, 0x01, 0x0b, 0x1a, 0x0b),
			want: [][]byte{append([]byte{0x03, 0x40}, check(0)...), append([]byte{0x03, 0x7f}, check(0)...)},
		},
		{
			name: "the new global follows the module's own",
			in: funcModule([][]byte{sec(6, 0x02, 0x7f, 0x01, 0x41, 0x00, 0x0b, 0x7e, 0x00, 0x42, 0x07, 0x0b)},
				0x23, 0x01, 0x1a, 0x03, 0x40, 0x0b), // global.get 1, drop, loop end
			want: [][]byte{append([]byte{0x03, 0x40}, check(2)...)},
		},
		{
			name: "imported globals count",
			in: wasmModule(
				sec(1, 0x01, 0x60, 0x00, 0x00),
				sec(2, 0x01, 0x01, 'm', 0x01, 'g', 0x03, 0x7f, 0x00), // import m.g: const i32
				sec(3, 0x01, 0x00),
				sec(10, 0x01, 0x05, 0x00, 0x03, 0x40, 0x0b, 0x0b),
			),
			want: [][]byte{append([]byte{0x03, 0x40}, check(1)...), []byte(interruptExport)},
		},
		{
			name: "the start section becomes an export",
			in:   funcModule([][]byte{sec(8, 0x00)}, 0x01),
			want: [][]byte{[]byte(startExport)},
		},
		{
			name: "instructions with immediates are skipped whole",
			// i64.const with a 10-byte LEB, f64.const holding 0x03, br_table, memory-free misc ops.
			in: funcModule(nil,
				0x42, 0x83, 0x83, 0x83, 0x83, 0x83, 0x83, 0x83, 0x83, 0x83, 0x7f, 0x1a,
				0x44, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x1a,
				0x02, 0x40, 0x41, 0x00, 0x0e, 0x01, 0x00, 0x00, 0x0b,
				0xfd, 0x0c, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x1a,
				0x03, 0x40, 0x0b),
			want: [][]byte{append([]byte{0x03, 0x40}, check(0)...)},
		},
		{name: "a global that does not exist", in: funcModule(nil, 0x23, 0x00, 0x1a), wantErr: true},
		{name: "global.set of one that does not exist", in: funcModule(nil, 0x41, 0x00, 0x24, 0x00), wantErr: true},
		{name: "unknown opcode", in: funcModule(nil, 0xff), wantErr: true},
		{name: "truncated body", in: wasmModule(
			sec(1, 0x01, 0x60, 0x00, 0x00), sec(3, 0x01, 0x00),
			sec(10, 0x01, 0x03, 0x00, 0x41, 0x80), // i32.const cut inside its LEB128
		), wantErr: true},
		{name: "not wasm", in: []byte("hello, world"), wantErr: true},
		{name: "truncated section", in: wasmModule([]byte{1, 0x05, 0x01}), wantErr: true},
		{name: "sections out of order", in: wasmModule(sec(3, 0x00), sec(1, 0x00)), wantErr: true},
		// Counts wazero would allocate before reading: refused, or a few
		// bytes would cost the host gigabytes.
		{name: "2^31 exports in 5 bytes", in: wasmModule(sec(7, 0xff, 0xff, 0xff, 0xff, 0x07)), wantErr: true},
		{name: "2^32-1 locals", in: wasmModule(
			sec(1, 0x01, 0x60, 0x00, 0x00), sec(3, 0x01, 0x00),
			sec(10, 0x01, 0x08, 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x7f, 0x0b),
		), wantErr: true},
		{name: "2^32-1 parameters", in: wasmModule(sec(1, 0x01, 0x60, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00)), wantErr: true},
		{name: "a table of 2^27 entries", in: wasmModule(sec(4, 0x01, 0x70, 0x00, 0x80, 0x80, 0x80, 0x40)), wantErr: true},
		{name: "2^31 function names", in: wasmModule(sec(0, append(appendName(nil, "name"), 0x01, 0x05, 0xff, 0xff, 0xff, 0xff, 0x07)...)), wantErr: true},
		{name: "2^31 local names", in: wasmModule(sec(0, append(appendName(nil, "name"), 0x02, 0x07, 0x01, 0x00, 0xff, 0xff, 0xff, 0xff, 0x07)...)), wantErr: true},
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := instrument(tt.in)
			if tt.wantErr {
				t.Log(err)
				if err == nil || !errors.Is(err, errInstrument) {
					t.Fatalf("error %v, want errInstrument", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !bytes.Contains(out, w) {
					t.Errorf("output does not contain % x", w)
				}
			}
			if _, err := rt.CompileModule(ctx, tt.in); err != nil {
				t.Fatalf("the test's own module is invalid: %v", err)
			}
			c, err := rt.CompileModule(ctx, out)
			if err != nil {
				t.Fatalf("instrumented module does not compile: %v", err)
			}
			if _, ok := c.ExportedFunctions()[startExport]; ok != bytes.Contains(tt.in, []byte{8, 1, 0}) {
				t.Errorf("start function exported: %v, want it exported only when the module has a start section", ok)
			}
			if !bytes.Contains(out, []byte(interruptExport)) {
				t.Errorf("no %s export", interruptExport)
			}
		})
	}
}

// TestStartFunctionRuns loads a guest that only works if its start function
// ran (instrument moves it to an export the host calls).
func TestStartFunctionRuns(t *testing.T) {
	m := load(t, "start", Limits{})
	if _, err := m.Process(context.Background(), nil, "boat-1", track(2, 1)); err != nil {
		t.Fatal(err)
	}
}

// TestStartLoopTimesOut: a start function that never returns fails the
// load within the deadline instead of hanging it.
func TestStartLoopTimesOut(t *testing.T) {
	start := time.Now()
	m, err := testEngine.Load(context.Background(), guest(t, "startloop"), Limits{CallTimeout: 100 * time.Millisecond})
	if err == nil {
		m.Close(context.Background())
		t.Fatal("loaded")
	}
	if !errors.Is(err, ErrInvalidModule) || !contains(err.Error(), "did not return within") {
		t.Fatalf("error %v, want ErrInvalidModule with a timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
}

// TestCloseInterruptsACall: Close stops a call that is running (here, in
// an infinite loop with a long deadline) rather than leaving it to burn a
// CPU until its deadline.
func TestCloseInterruptsACall(t *testing.T) {
	m, err := testEngine.Load(context.Background(), guest(t, "loop"), Limits{CallTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := m.Process(context.Background(), nil, "boat-1", track(6, 10)) // seq 13 loops
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond)
	m.Close(context.Background())
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("error %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call still runs 10 s after Close")
	}
}

// TestDeadlineIsPerCall: the reused timer does not fire into a later call.
// Many short calls under a short deadline, each well within it, all pass;
// then an infinite loop still times out.
func TestDeadlineIsPerCall(t *testing.T) {
	// Calls that each finish well within the deadline keep succeeding
	// long after the deadline would have passed had it been cumulative.
	// (The deadline is generous so a loaded machine cannot push one quick
	// call over it.)
	m := load(t, "loop", Limits{CallTimeout: 250 * time.Millisecond, Instances: 1})
	ctx := context.Background()
	deadline := time.Now().Add(1200 * time.Millisecond)
	n := 0
	for time.Now().Before(deadline) {
		if _, err := m.Process(ctx, nil, "boat-1", track(3, 1)); err != nil {
			t.Fatalf("call %d: %v", n, err)
		}
		n++
	}
	_, err := m.Process(ctx, nil, "boat-1", track(6, 10))
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("error %v, want ErrTimeout", err)
	}
	if _, err := m.Process(ctx, nil, "boat-1", track(3, 1)); err != nil {
		t.Fatalf("after the timeout: %v", err)
	}
	t.Logf("%d calls", n)
}

func FuzzInstrument(f *testing.F) {
	f.Add(funcModule(nil, 0x03, 0x40, 0x0c, 0x00, 0x0b))
	f.Add(funcModule([][]byte{sec(8, 0x00)}, 0x01))
	f.Add(funcModule(nil, 0xfc, 0x0a, 0x00, 0x00))
	for _, g := range []string{"loop", "trap", "grow", "start"} {
		if b, ok := guests[g]; ok {
			f.Add(b)
		}
	}
	ctx := context.Background()
	// The interpreter validates like the compiler, and quicker.
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	f.Cleanup(func() { rt.Close(ctx) })
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := instrument(in) // must not panic
		if err != nil {
			return
		}
		// A valid module stays valid: instrument decoded every
		// instruction where the validator did.
		if c, err := rt.CompileModule(ctx, in); err == nil {
			c.Close(ctx)
			c, err := rt.CompileModule(ctx, out)
			if err != nil {
				t.Fatalf("valid module, invalid after instrument: %v", err)
			}
			c.Close(ctx)
		}
	})
}

// BenchmarkInstrument: the rewrite Load adds, on the 2 MB Go speed module.
func BenchmarkInstrument(b *testing.B) {
	wasm := guest(b, "speed")
	b.SetBytes(int64(len(wasm)))
	for b.Loop() {
		if _, err := instrument(wasm); err != nil {
			b.Fatal(err)
		}
	}
}
