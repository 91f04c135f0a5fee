package udf

import (
	"errors"
	"fmt"
)

// Deadlines without wazero's CloseOnContextDone.
//
// wazero can stop a guest when a context ends (RuntimeConfig
// WithCloseOnContextDone), but it does so by leaving the compiled code for Go
// at the head of every loop iteration to check whether the module was
// closed. Go's Wasm output opens every function with a loop (its resumption
// trampoline), so a Go guest paid that exit on nearly every function call:
// the speed UDF ran 6x slower with it than without (6,300 against 1,000 ns a
// reading at batch 256).
//
// Those exits did two jobs, and both must still be done:
//
//   - End a call whose deadline passed (or whose context ended, or whose
//     module was closed).
//   - Give Go a safe point: Go cannot preempt a goroutine that runs compiled
//     Wasm, so a guest that never leaves it holds up every stop-the-world of
//     the garbage collector, and with it the whole process, timers included
//     (TestLoopUnderGC).
//
// So Load rewrites each module before compiling it (instrument). It adds two
// mutable i32 globals, fuel and interrupt (exported as fuelExport and
// interruptExport), and at the head of every loop, and at the entry of every
// function that does not reach a loop first, this check:
//
//	global.get $fuel
//	i32.const 1
//	i32.sub
//	global.set $fuel
//	global.get $fuel        ;; compiled without a load: the value just set
//	i32.const 1
//	i32.lt_s
//	if                      ;; every fuelPerExit checks:
//	  i32.const 0
//	  memory.grow 0         ;;   a no-op that wazero runs in Go: a safe point
//	  drop
//	  global.get $interrupt
//	  if
//	    unreachable         ;;   the host asked the call to end
//	  end
//	  i32.const fuelPerExit
//	  global.set $fuel
//	end
//
// That is a load, a subtraction, a store and a branch per iteration in the
// compiled code, and one trip to Go every fuelPerExit iterations (tens of
// microseconds). To end a call the host sets interrupt to 1 and fuel to 0
// (instance.fire), and the guest traps at its next check (or, when its
// decrement races with the host's write, within fuelPerExit checks). The start section is moved to an
// export (startExport) so the host calls it under the deadline like any
// other call, a module without a memory gets one (memory.grow needs it), and
// modules that reference globals they do not have are refused, so a guest
// cannot reach the added ones (which would otherwise make such a module
// valid) and clear them.

const (
	// interruptExport and fuelExport are the globals instrument adds.
	interruptExport = "sailstream_host_interrupt"
	fuelExport      = "sailstream_host_fuel"
	// startExport is what instrument exports the start function as.
	startExport = "sailstream_host_start"
	// fuelPerExit is how many checks pass between two trips to Go.
	fuelPerExit = 10000
)

// errInstrument is wrapped in ErrInvalidModule by Load.
var errInstrument = errors.New("cannot instrument module")

// Section ids, and the order they must come in (data count, 12, sits
// between element and code; tag, 13, between memory and global).
const (
	secCustom = 0
	secImport = 2
	secMemory = 5
	secGlobal = 6
	secExport = 7
	secStart  = 8
	secCode   = 10
)

var sectionOrder = map[byte]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}

// instrument returns wasm with the fuel and interrupt globals and their
// exports, the checks, a memory if it had none, and the start section moved
// to startExport. wasm is untrusted: anything instrument does not understand
// makes it fail (never panic), counts wazero would trust are checked first
// (checkCounts), and the result is still validated by the compiler.
func instrument(wasm []byte) (out []byte, err error) {
	defer func() {
		// The reader checks every bound; this is a last line of defence
		// against a bug turning a bad module into a host crash.
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("%w: %v", errInstrument, p)
		}
	}()
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" || string(wasm[4:8]) != "\x01\x00\x00\x00" {
		return nil, fmt.Errorf("%w: not a WebAssembly 1.0 binary", errInstrument)
	}
	type section struct {
		id   byte
		body []byte
	}
	var secs []section
	r := reader{b: wasm, off: 8}
	last := 0
	for !r.done() {
		id := r.byte()
		n := r.u32()
		body := r.bytes(int(n))
		if r.err != nil {
			return nil, r.fail("section")
		}
		if id != secCustom {
			o, ok := sectionOrder[id]
			if !ok || o <= last {
				return nil, fmt.Errorf("%w: section %d unknown or out of order", errInstrument, id)
			}
			last = o
		}
		if err := checkCounts(id, body); err != nil {
			return nil, err
		}
		secs = append(secs, section{id, body})
	}

	// Count the globals (imported and defined) to know the new ones'
	// indexes, and the memories.
	var nGlobals, nMemories uint32
	for _, s := range secs {
		switch s.id {
		case secImport:
			g, m, err := importCounts(s.body)
			if err != nil {
				return nil, err
			}
			nGlobals += g
			nMemories += m
		case secGlobal, secMemory:
			sr := reader{b: s.body}
			n := sr.u32()
			if sr.err != nil {
				return nil, sr.fail("global or memory section")
			}
			if s.id == secGlobal {
				nGlobals += n
			} else {
				nMemories += n
			}
		}
	}
	if nGlobals >= 1<<32-2 {
		return nil, fmt.Errorf("%w: too many globals", errInstrument)
	}
	ix := indexes{fuel: nGlobals, interrupt: nGlobals + 1}

	var start []byte // the start function index, LEB128 as found
	for _, s := range secs {
		if s.id == secStart {
			start = s.body
		}
	}

	out = append(make([]byte, 0, len(wasm)+len(wasm)/16+64), wasm[:8]...)
	emit := func(id byte, body []byte) {
		out = append(out, id)
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	// mut i32 = fuelPerExit; mut i32 = 0
	newGlobals := appendSLEB(append([]byte(nil), 0x7f, 0x01, 0x41), fuelPerExit)
	newGlobals = append(newGlobals, 0x0b, 0x7f, 0x01, 0x41, 0x00, 0x0b)
	addedGlobal, addedExport, addedMemory := false, false, nMemories > 0
	exports := func(body []byte) ([]byte, error) {
		n := uint32(0)
		rest := body
		if body != nil {
			sr := reader{b: body}
			n = sr.u32()
			if sr.err != nil {
				return nil, sr.fail("export section")
			}
			rest = body[sr.off:]
		}
		add := uint32(2)
		if start != nil {
			add++
		}
		if n > 1<<32-1-add {
			return nil, fmt.Errorf("%w: too many exports", errInstrument)
		}
		b := appendU32(nil, n+add)
		b = append(b, rest...)
		b = appendName(b, fuelExport)
		b = append(b, 0x03) // global
		b = appendU32(b, ix.fuel)
		b = appendName(b, interruptExport)
		b = append(b, 0x03)
		b = appendU32(b, ix.interrupt)
		if start != nil {
			b = appendName(b, startExport)
			b = append(b, 0x00) // func
			b = append(b, start...)
		}
		return b, nil
	}
	// Sections that must come after the global (and export) section.
	flushBefore := func(id byte) error {
		if id == secCustom {
			return nil
		}
		if !addedMemory && sectionOrder[id] > sectionOrder[secMemory] {
			emit(secMemory, []byte{1, 0x00, 0x00}) // one memory, min 0 pages
			addedMemory = true
		}
		if !addedGlobal && sectionOrder[id] > sectionOrder[secGlobal] {
			emit(secGlobal, append([]byte{2}, newGlobals...))
			addedGlobal = true
		}
		if !addedExport && sectionOrder[id] > sectionOrder[secExport] {
			b, err := exports(nil)
			if err != nil {
				return err
			}
			emit(secExport, b)
			addedExport = true
		}
		return nil
	}
	for _, s := range secs {
		if err := flushBefore(s.id); err != nil {
			return nil, err
		}
		switch s.id {
		case secGlobal:
			sr := reader{b: s.body}
			n := sr.u32()
			b := appendU32(nil, n+2)
			b = append(b, s.body[sr.off:]...)
			emit(secGlobal, append(b, newGlobals...))
			addedGlobal = true
		case secExport:
			b, err := exports(s.body)
			if err != nil {
				return nil, err
			}
			emit(secExport, b)
			addedExport = true
		case secMemory:
			if !addedMemory {
				// A memory section declaring no memory: replace it with
				// ours rather than adding a second memory section.
				emit(secMemory, []byte{1, 0x00, 0x00})
				addedMemory = true
				continue
			}
			emit(s.id, s.body)
		case secStart:
			// Dropped: exported as startExport, called by the host.
		case secCode:
			b, err := instrumentCode(s.body, ix)
			if err != nil {
				return nil, err
			}
			emit(secCode, b)
		case secCustom:
			sr := reader{b: s.body}
			name := sr.bytes(int(sr.u32()))
			if len(name) > 7 && string(name[:7]) == ".debug_" {
				// DWARF addresses code offsets, which moved.
				continue
			}
			emit(s.id, s.body)
		default:
			emit(s.id, s.body)
		}
	}
	if err := flushBefore(11); err != nil { // data: after everything we add
		return nil, err
	}
	return out, nil
}

// maxLocals bounds the locals of one function (V8's limit); maxTableSize
// the initial size of a table (a Go guest's has a few thousand entries; the
// host allocates 8 bytes an entry per instance).
const (
	maxLocals    = 50000
	maxTableSize = 1 << 20
)

// checkCounts refuses counts a section's bytes cannot hold. wazero's decoder
// allocates a slice of the declared count before reading the elements, so
// a module of a few bytes declaring 2^32 exports (or locals, or names) would
// make the host allocate gigabytes and die: every vector element takes at
// least a byte, so a count above the bytes left is malformed anyway.
func checkCounts(id byte, body []byte) error {
	r := reader{b: body}
	switch id {
	case secStart, 12: // start function index, data count: not vectors
		return nil
	case secCustom:
		name := r.bytes(int(r.u32()))
		if r.err != nil || string(name) != "name" {
			return nil // wazero reads no other custom section
		}
		return checkNameCounts(r)
	}
	n := r.u32()
	if r.err != nil || uint64(n) > uint64(len(body)-r.off) {
		return fmt.Errorf("%w: section %d declares %d entries in %d bytes", errInstrument, id, n, len(body))
	}
	switch id {
	case 1: // types: 0x60, params, results
		for i := uint32(0); i < n && r.err == nil; i++ {
			if r.byte() != 0x60 {
				return nil // not a function type: wazero refuses it
			}
			for range 2 {
				m := r.u32()
				if r.err == nil && uint64(m) > uint64(len(body)-r.off) {
					return fmt.Errorf("%w: type %d declares %d values in %d bytes", errInstrument, i, m, len(body))
				}
				r.bytes(int(m))
			}
		}
		return nil
	case 4: // tables: wazero allocates the minimum size at instantiation
		for i := uint32(0); i < n && r.err == nil; i++ {
			r.byte() // reference type
			flags := r.byte()
			if min := r.u32(); r.err == nil && min > maxTableSize {
				return fmt.Errorf("%w: table %d of %d entries, limit %d", errInstrument, i, min, maxTableSize)
			}
			if flags&1 != 0 {
				r.u32() // max
			}
		}
		return nil
	case secCode:
	default:
		return nil
	}
	for i := uint32(0); i < n; i++ {
		size := r.u32()
		fr := reader{b: r.bytes(int(size))}
		if r.err != nil {
			return r.fail("code section")
		}
		groups := fr.u32()
		var locals uint64
		for j := uint32(0); j < groups && fr.err == nil; j++ {
			locals += uint64(fr.u32())
			fr.byte()
			if locals > maxLocals {
				return fmt.Errorf("%w: function %d declares more than %d locals", errInstrument, i, maxLocals)
			}
		}
	}
	return nil
}

// checkNameCounts applies checkCounts to the name section's function and
// local names (subsections 1 and 2), the ones wazero decodes.
func checkNameCounts(r reader) error {
	for !r.done() {
		id := r.byte()
		sub := reader{b: r.bytes(int(r.u32()))}
		if r.err != nil {
			return nil // wazero reports it
		}
		if id != 1 && id != 2 {
			continue
		}
		n := sub.u32()
		if sub.err == nil && uint64(n) > uint64(len(sub.b)-sub.off) {
			return fmt.Errorf("%w: name section declares %d names in %d bytes", errInstrument, n, len(sub.b))
		}
		if id != 2 {
			continue
		}
		for i := uint32(0); i < n && sub.err == nil; i++ {
			sub.u32() // function index
			m := sub.u32()
			if sub.err == nil && uint64(m) > uint64(len(sub.b)-sub.off) {
				return fmt.Errorf("%w: name section declares %d local names in %d bytes", errInstrument, m, len(sub.b))
			}
			for j := uint32(0); j < m && sub.err == nil; j++ {
				sub.u32()
				sub.bytes(int(sub.u32()))
			}
		}
	}
	return nil
}

// importCounts counts the global and memory imports of an import section.
func importCounts(body []byte) (globals, memories uint32, err error) {
	r := reader{b: body}
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		r.bytes(int(r.u32())) // module
		r.bytes(int(r.u32())) // name
		switch kind := r.byte(); kind {
		case 0x00: // func: type index
			r.u32()
		case 0x01: // table: reftype, limits
			r.byte()
			r.limits()
		case 0x02: // memory: limits
			r.limits()
			memories++
		case 0x03: // global: valtype, mutability
			r.byte()
			r.byte()
			globals++
		case 0x04: // tag: attribute, type index
			r.byte()
			r.u32()
		default:
			return 0, 0, fmt.Errorf("%w: import kind %#x", errInstrument, kind)
		}
	}
	if r.err != nil {
		return 0, 0, r.fail("import section")
	}
	return globals, memories, nil
}

// indexes are the globals instrument adds.
type indexes struct{ fuel, interrupt uint32 }

// appendCheck appends the check (see the top of this file).
func appendCheck(b []byte, ix indexes) []byte {
	f := appendU32(nil, ix.fuel)
	b = append(append(b, 0x23), f...)           // global.get $fuel
	b = append(b, 0x41, 0x01, 0x6b, 0x24)       // i32.const 1, i32.sub, global.set
	b = append(append(b, f...), 0x23)           // $fuel, global.get (no load:
	b = append(b, f...)                         // $fuel    the value just set)
	b = append(b, 0x41, 0x01, 0x48, 0x04, 0x40) // i32.const 1, i32.lt_s, if
	b = append(b, 0x41, 0x00, 0x40, 0x00, 0x1a) // i32.const 0, memory.grow 0, drop
	b = append(b, 0x23)                         // global.get $interrupt
	b = appendU32(b, ix.interrupt)
	b = append(b, 0x04, 0x40, 0x00, 0x0b, 0x41) // if, unreachable, end, i32.const
	b = appendSLEB(b, fuelPerExit)
	b = append(append(b, 0x24), f...) // global.set $fuel
	return append(b, 0x0b)            // end
}

// instrumentCode adds the checks to every function body of a code section,
// and refuses bodies that use the added globals' indexes.
func instrumentCode(body []byte, ix indexes) ([]byte, error) {
	r := reader{b: body}
	n := r.u32()
	if r.err != nil {
		return nil, r.fail("code section")
	}
	out := appendU32(make([]byte, 0, len(body)+len(body)/8), n)
	var fn []byte
	for i := uint32(0); i < n; i++ {
		size := r.u32()
		code := r.bytes(int(size))
		if r.err != nil {
			return nil, r.fail(fmt.Sprintf("function %d", i))
		}
		var err error
		if fn, err = instrumentFunc(fn[:0], code, ix); err != nil {
			return nil, fmt.Errorf("%w (function %d)", err, i)
		}
		out = appendU32(out, uint32(len(fn)))
		out = append(out, fn...)
	}
	if !r.done() {
		return nil, fmt.Errorf("%w: code section has trailing bytes", errInstrument)
	}
	return out, nil
}

// instrumentFunc copies one function body to dst with the checks: after
// every loop opcode, and at the entry unless the body reaches a loop before
// anything that could call or branch (Go's functions all do: their
// resumption loop comes first), which would make it a second check in a
// row. Recursion needs a call, so every call chain passes checks.
func instrumentFunc(dst, code []byte, ix indexes) ([]byte, error) {
	r := reader{b: code}
	nLocals := r.u32()
	for i := uint32(0); i < nLocals && r.err == nil; i++ {
		r.u32()
		r.byte()
	}
	if r.err != nil {
		return nil, r.fail("locals")
	}
	copied := r.off // code[:copied] is in dst
	dst = append(dst, code[:copied]...)
	if !loopFirst(r, ix) {
		dst = appendCheck(dst, ix)
	}
	for !r.done() {
		op, err := r.instr(ix)
		if err != nil {
			return nil, err
		}
		if op == 0x03 { // loop bt: the check opens the body
			dst = append(dst, code[copied:r.off]...)
			dst = appendCheck(dst, ix)
			copied = r.off
		}
	}
	return append(dst, code[copied:]...), nil
}

// loopFirst reports whether the code at r reaches a loop through
// straight-line instructions only (r is a copy: the caller's does not move).
func loopFirst(r reader, ix indexes) bool {
	for !r.done() {
		op, err := r.instr(ix)
		switch {
		case err != nil:
			return false
		case op == 0x03:
			return true
		case op == 0x01 || op == 0x02 || op == 0x1a || op == 0x1b || // nop, block, drop, select
			op >= 0x20 && op <= 0x24 || // local.*, global.*
			op >= 0x28 && op <= 0x3f || // loads, stores, memory.size
			op >= 0x41 && op <= 0xc4: // constants, arithmetic
		default:
			return false
		}
	}
	return false
}

// instr reads one instruction and returns its opcode. It knows the
// immediates of every opcode of the features wazero enables by default
// (WebAssembly 2.0: sign extension, saturating conversions, bulk memory,
// reference types, multi-value, SIMD) and refuses any other, and refuses
// global indexes from ix.fuel up (the added globals).
func (r *reader) instr(ix indexes) (byte, error) {
	op := r.byte()
	switch {
	case op == 0x02 || op == 0x03 || op == 0x04: // block, loop, if
		r.blockType()
	case op == 0x23 || op == 0x24: // global.get, global.set
		if idx := r.u32(); r.err == nil && idx >= ix.fuel {
			return 0, fmt.Errorf("%w: global %d does not exist", errInstrument, idx)
		}
	case op == 0x0c || op == 0x0d || op == 0x10 || op == 0x12 || // br, br_if, call, return_call
		op >= 0x20 && op <= 0x22 || op == 0x25 || op == 0x26 || // local.*, table.get/set
		op == 0xd2: // ref.func
		r.u32()
	case op == 0x11 || op == 0x13: // call_indirect, return_call_indirect
		r.u32()
		r.u32()
	case op == 0x0e: // br_table
		n := r.u32()
		for i := uint32(0); i <= n && r.err == nil; i++ {
			r.u32()
		}
	case op == 0x1c: // select t*
		n := r.u32()
		for i := uint32(0); i < n && r.err == nil; i++ {
			r.byte()
		}
	case op >= 0x28 && op <= 0x3e: // loads and stores
		r.memarg()
	case op == 0x3f || op == 0x40: // memory.size, memory.grow
		r.u32()
	case op == 0x41: // i32.const
		r.sleb(32)
	case op == 0x42: // i64.const
		r.sleb(64)
	case op == 0x43:
		r.bytes(4)
	case op == 0x44:
		r.bytes(8)
	case op == 0xd0: // ref.null t
		r.byte()
	case op == 0x00 || op == 0x01 || op == 0x05 || op == 0x0b || op == 0x0f ||
		op == 0x1a || op == 0x1b || op >= 0x45 && op <= 0xc4 || op == 0xd1:
		// No immediates.
	case op == 0xfc:
		if err := r.prefixedFC(); err != nil {
			return 0, err
		}
	case op == 0xfd:
		if err := r.prefixedSIMD(); err != nil {
			return 0, err
		}
	default:
		if r.err == nil {
			return 0, fmt.Errorf("%w: unsupported opcode %#x at byte %d", errInstrument, op, r.off-1)
		}
	}
	if r.err != nil {
		return 0, r.fail("instruction")
	}
	return op, nil
}

func (r *reader) prefixedFC() error {
	switch sub := r.u32(); {
	case sub <= 7: // saturating truncations
	case sub == 8: // memory.init data, mem
		r.u32()
		r.u32()
	case sub == 9 || sub == 13 || sub == 15 || sub == 16 || sub == 17: // data.drop, elem.drop, table.grow/size/fill
		r.u32()
	case sub == 10 || sub == 12 || sub == 14: // memory.copy, table.init, table.copy
		r.u32()
		r.u32()
	case sub == 11: // memory.fill
		r.u32()
	default:
		if r.err == nil {
			return fmt.Errorf("%w: unsupported opcode 0xfc %d", errInstrument, sub)
		}
	}
	return nil
}

func (r *reader) prefixedSIMD() error {
	switch sub := r.u32(); {
	case sub <= 11 || sub == 92 || sub == 93: // v128 loads and stores
		r.memarg()
	case sub == 12 || sub == 13: // v128.const, i8x16.shuffle
		r.bytes(16)
	case sub >= 21 && sub <= 34: // extract and replace lane
		r.byte()
	case sub >= 84 && sub <= 91: // load and store lane
		r.memarg()
		r.byte()
	case sub <= 255: // the rest have no immediates
	default:
		if r.err == nil {
			return fmt.Errorf("%w: unsupported opcode 0xfd %d", errInstrument, sub)
		}
	}
	return nil
}

// reader decodes untrusted bytes; after the first error every read returns
// zero and err stays set.
type reader struct {
	b   []byte
	off int
	err error
}

var errTruncated = errors.New("truncated or malformed")

func (r *reader) done() bool { return r.err != nil || r.off >= len(r.b) }

func (r *reader) fail(what string) error {
	return fmt.Errorf("%w: %s: %v at byte %d", errInstrument, what, r.err, r.off)
}

func (r *reader) byte() byte {
	if r.err != nil || r.off >= len(r.b) {
		r.err = errTruncated
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.b)-r.off {
		r.err = errTruncated
		return nil
	}
	b := r.b[r.off : r.off+n]
	r.off += n
	return b
}

func (r *reader) u32() uint32 {
	var v uint64
	for shift := 0; shift < 35; shift += 7 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			if v > 1<<32-1 {
				r.err = errTruncated
				return 0
			}
			return uint32(v)
		}
	}
	r.err = errTruncated
	return 0
}

// sleb skips a signed LEB128 of at most bits bits.
func (r *reader) sleb(bits int) {
	for i := 0; i < (bits+6)/7; i++ {
		if c := r.byte(); r.err != nil || c < 0x80 {
			return
		}
	}
	r.err = errTruncated
}

func (r *reader) blockType() {
	c := r.byte()
	if r.err != nil || c == 0x40 || c >= 0x6f && c <= 0x7f && c != 0x71 { // empty or a value type
		return
	}
	r.off--
	r.sleb(33) // a type index
}

func (r *reader) memarg() {
	align := r.u32()
	if align&0x40 != 0 { // multi-memory: a memory index follows
		r.u32()
	}
	r.u32() // offset
}

func (r *reader) limits() {
	switch flags := r.byte(); flags {
	case 0x00, 0x04:
		r.u32()
	case 0x01, 0x03, 0x05, 0x07:
		r.u32()
		r.u32()
	default:
		if r.err == nil {
			r.err = errTruncated
		}
	}
}

func appendU32(b []byte, v uint32) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func appendSLEB(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendName(b []byte, s string) []byte {
	return append(appendU32(b, uint32(len(s))), s...)
}
