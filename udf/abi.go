package udf

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"unicode/utf8"

	"github.com/sailstream/sailstream/telemetry"
)

// ABI v1, as documented in ABI.md. Everything here is little-endian; every
// offset is relative to the start of its buffer.
const (
	// ABIVersion is the version of the guest ABI this host speaks.
	ABIVersion = 1

	exportABIVersion = "sailstream_abi_version"
	exportAlloc      = "sailstream_v1_alloc"
	exportProcess    = "sailstream_v1_process"
	exportInfo       = "sailstream_v1_info"
	exportMemory     = "memory"

	headerSize  = 48
	readingSize = 40
	outputSize  = 40
	fieldSize   = 16
	nameSize    = 8

	statusOK    = 0
	statusError = 1

	// maxNameLen bounds a field name, in bytes.
	maxNameLen = 64
	// maxMessageLen bounds a guest error message kept in an error.
	maxMessageLen = 1024
)

// inputEncoder lays out batches as ABI v1 input. It keeps its scratch space
// (the name table) from one batch to the next, so an instance, which runs
// one call at a time, encodes without allocating. The zero value is ready.
type inputEncoder struct {
	names   []string
	nameIdx map[string]uint32
	keys    []string

	// The layout of the batch measured last.
	nFields, readingsOff, fieldsOff, namesOff, stringsOff, stateOff, total int
}

// measure computes the layout of a batch and returns its size in bytes.
// write then encodes that batch.
func (e *inputEncoder) measure(state []byte, device string, readings []telemetry.Reading) int {
	nFields := 0
	for i := range readings {
		nFields += len(readings[i].Fields)
	}
	e.names = e.names[:0]
	if nFields > 0 {
		if e.nameIdx == nil {
			e.nameIdx = make(map[string]uint32)
		}
		clear(e.nameIdx)
		for i := range readings {
			for k := range readings[i].Fields {
				if _, ok := e.nameIdx[k]; !ok {
					e.nameIdx[k] = uint32(len(e.names))
					e.names = append(e.names, k)
				}
			}
		}
		// Indices follow sorted order so the bytes do not depend on map
		// iteration order.
		slices.Sort(e.names)
		for i, k := range e.names {
			e.nameIdx[k] = uint32(i)
		}
	}
	namesBytes := len(device)
	for _, k := range e.names {
		namesBytes += len(k)
	}
	e.nFields = nFields
	e.readingsOff = headerSize
	e.fieldsOff = e.readingsOff + readingSize*len(readings)
	e.namesOff = e.fieldsOff + fieldSize*nFields
	e.stringsOff = e.namesOff + nameSize*len(e.names)
	e.stateOff = align8(e.stringsOff + namesBytes)
	e.total = e.stateOff + len(state)
	return e.total
}

// write encodes the batch measure measured into b, which must hold exactly
// that many bytes. It writes every byte of b (padding and reserved fields
// as zeros), so b may be memory the guest used before.
func (e *inputEncoder) write(b []byte, state []byte, device string, readings []telemetry.Reading) {
	b = b[:e.total]
	le := binary.LittleEndian
	h := b[:headerSize]
	le.PutUint32(h[0:], ABIVersion)
	le.PutUint32(h[4:], uint32(len(readings)))
	le.PutUint32(h[8:], uint32(e.readingsOff))
	le.PutUint32(h[12:], uint32(e.nFields))
	le.PutUint32(h[16:], uint32(e.fieldsOff))
	le.PutUint32(h[20:], uint32(len(e.names)))
	le.PutUint32(h[24:], uint32(e.namesOff))
	le.PutUint32(h[28:], uint32(e.stateOff))
	le.PutUint32(h[32:], uint32(len(state)))
	le.PutUint32(h[36:], uint32(e.stringsOff))
	le.PutUint32(h[40:], uint32(len(device)))
	le.PutUint32(h[44:], 0)
	s := e.stringsOff + copy(b[e.stringsOff:], device)
	for i, k := range e.names {
		n := b[e.namesOff+nameSize*i:]
		le.PutUint32(n, uint32(s))
		le.PutUint32(n[4:], uint32(len(k)))
		s += copy(b[s:], k)
	}
	clear(b[s:e.stateOff])
	copy(b[e.stateOff:], state)

	f := 0
	rs := b[e.readingsOff:e.fieldsOff]
	for i := range readings {
		r := &readings[i]
		o := rs[readingSize*i : readingSize*i+readingSize]
		le.PutUint64(o[0:], r.Seq)
		le.PutUint64(o[8:], uint64(r.Time.UnixNano()))
		le.PutUint64(o[16:], math.Float64bits(r.Lat))
		le.PutUint64(o[24:], math.Float64bits(r.Lon))
		le.PutUint32(o[32:], uint32(f))
		le.PutUint32(o[36:], uint32(len(r.Fields)))
		if len(r.Fields) == 0 {
			continue
		}
		e.keys = e.keys[:0]
		for k := range r.Fields {
			e.keys = append(e.keys, k)
		}
		slices.Sort(e.keys)
		for _, k := range e.keys {
			fb := b[e.fieldsOff+fieldSize*f : e.fieldsOff+fieldSize*f+fieldSize]
			le.PutUint32(fb[0:], e.nameIdx[k])
			le.PutUint32(fb[4:], 0)
			le.PutUint64(fb[8:], math.Float64bits(r.Fields[k]))
			f++
		}
	}
	// Keep none of the batch's strings alive in the scratch space.
	clear(e.keys)
	clear(e.names)
	e.names = e.names[:0]
	if len(e.nameIdx) > 0 {
		clear(e.nameIdx)
	}
}

// encodeInput lays out one batch as ABI v1 input in dst's space. Field names
// are sorted per reading so the same batch always gives the same bytes.
func encodeInput(dst []byte, state []byte, device string, readings []telemetry.Reading) []byte {
	var e inputEncoder
	n := e.measure(state, device, readings)
	b := slices.Grow(dst[:0], n)[:n]
	e.write(b, state, device, readings)
	return b
}

func align8(n int) int { return (n + 7) &^ 7 }

// outputLimits bounds what decodeOutput accepts.
type outputLimits struct {
	maxState   int
	maxOutputs int
}

// nameCache interns the field names a module's outputs use that are not
// among the constants fieldName knows, so names that come back call after
// call are not allocated again. It is bounded: a guest that makes up new
// names every call only costs their allocation. One per instance; the zero
// value is ready.
type nameCache struct{ m map[string]string }

const maxCachedNames = 256

func (c *nameCache) intern(b []byte) string {
	if c == nil {
		return string(b)
	}
	if s, ok := c.m[string(b)]; ok {
		return s
	}
	s := string(b)
	if c.m == nil {
		c.m = make(map[string]string)
	}
	if len(c.m) < maxCachedNames {
		c.m[s] = s
	}
	return s
}

// finiteMask selects a float64's exponent: all ones means NaN or ±Inf.
const finiteMask = 0x7ff0000000000000

// decodeOutput checks and copies out an ABI v1 output buffer. b is
// untrusted: every count, offset and length is checked before use, and
// nothing returned aliases b. nReadings is the batch's size; names, which
// may be nil, interns field names.
func decodeOutput(b []byte, nReadings int, lim outputLimits, names *nameCache) (Result, error) {
	var res Result
	le := binary.LittleEndian
	if len(b) < headerSize {
		return res, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrMalformedOutput, len(b), headerSize)
	}
	h := b[:headerSize]
	if v := le.Uint32(h[0:]); v != ABIVersion {
		return res, fmt.Errorf("%w: output header says ABI version %d, want %d", ErrMalformedOutput, v, ABIVersion)
	}
	switch status := le.Uint32(h[4:]); status {
	case statusOK:
	case statusError:
		msg, err := section(b, le.Uint32(h[40:]), le.Uint32(h[44:]), 1)
		if err != nil {
			return res, fmt.Errorf("%w: error message: %v", ErrMalformedOutput, err)
		}
		if len(msg) > maxMessageLen {
			msg = msg[:maxMessageLen]
		}
		return res, fmt.Errorf("%w: %q", ErrGuest, string(msg))
	default:
		return res, fmt.Errorf("%w: status %d, want 0 or 1", ErrMalformedOutput, status)
	}

	nOut := le.Uint32(h[8:])
	if uint64(nOut) > uint64(lim.maxOutputs) {
		return res, fmt.Errorf("%w: %d outputs, more than the limit of %d for this batch", ErrMalformedOutput, nOut, lim.maxOutputs)
	}
	outs, err := section(b, le.Uint32(h[12:]), nOut, outputSize)
	if err != nil {
		return res, fmt.Errorf("%w: outputs: %v", ErrMalformedOutput, err)
	}
	nFields := le.Uint32(h[16:])
	fields, err := section(b, le.Uint32(h[20:]), nFields, fieldSize)
	if err != nil {
		return res, fmt.Errorf("%w: fields: %v", ErrMalformedOutput, err)
	}
	nNames := le.Uint32(h[24:])
	nameTab, err := section(b, le.Uint32(h[28:]), nNames, nameSize)
	if err != nil {
		return res, fmt.Errorf("%w: names: %v", ErrMalformedOutput, err)
	}
	stateLen := le.Uint32(h[36:])
	if uint64(stateLen) > uint64(lim.maxState) {
		return res, fmt.Errorf("%w: state of %d bytes, more than the limit of %d", ErrMalformedOutput, stateLen, lim.maxState)
	}
	state, err := section(b, le.Uint32(h[32:]), stateLen, 1)
	if err != nil {
		return res, fmt.Errorf("%w: state: %v", ErrMalformedOutput, err)
	}

	// The name table is checked whole; a small one stays on the stack.
	var nameBuf [16]string
	var tab []string
	if nNames <= uint32(len(nameBuf)) {
		tab = nameBuf[:nNames]
	} else {
		tab = make([]string, nNames)
	}
	for i := range tab {
		e := nameTab[nameSize*i : nameSize*i+nameSize]
		nb, err := section(b, le.Uint32(e), le.Uint32(e[4:]), 1)
		if err != nil {
			return res, fmt.Errorf("%w: name %d: %v", ErrMalformedOutput, i, err)
		}
		if tab[i], err = fieldName(nb, names); err != nil {
			return res, fmt.Errorf("%w: name %d: %v", ErrMalformedOutput, i, err)
		}
	}

	if len(state) > 0 {
		res.State = append([]byte(nil), state...)
	}
	if nOut == 0 {
		return res, nil
	}
	outputs := make([]Output, nOut)
	var all []Field
	if nFields > 0 {
		all = make([]Field, nFields)
	}
	used := uint64(0) // fields of all outputs so far, at most nFields
	prev := uint32(0)
	for i := range outputs {
		o := outs[outputSize*i : outputSize*i+outputSize]
		in := le.Uint32(o[0:])
		flags := le.Uint32(o[4:])
		lat := math.Float64frombits(le.Uint64(o[16:]))
		lon := math.Float64frombits(le.Uint64(o[24:]))
		fStart, fCount := le.Uint32(o[32:]), le.Uint32(o[36:])
		// One branch for the common case; the slow path says what is wrong.
		if uint64(in) >= uint64(nReadings) || in < prev || flags != 0 ||
			!(lat >= -90 && lat <= 90) || !(lon >= -180 && lon <= 180) ||
			uint64(fStart)+uint64(fCount) > uint64(nFields) || used+uint64(fCount) > uint64(nFields) {
			return Result{}, outputError(i, in, prev, flags, lat, lon, fStart, fCount, nFields, nReadings)
		}
		prev = in
		dst := all[used : used+uint64(fCount) : used+uint64(fCount)]
		src := fields[fieldSize*uint64(fStart) : fieldSize*(uint64(fStart)+uint64(fCount))]
		for j := range dst {
			e := src[fieldSize*j : fieldSize*j+fieldSize]
			ni := le.Uint32(e[0:])
			bits := le.Uint64(e[8:])
			if uint64(ni) >= uint64(len(tab)) || bits&finiteMask == finiteMask {
				return Result{}, fieldError(i, int(fStart)+j, ni, tab, math.Float64frombits(bits))
			}
			dst[j].Name = tab[ni]
			dst[j].Value = math.Float64frombits(bits)
		}
		used += uint64(fCount)
		op := &outputs[i]
		op.Input = int(in)
		op.TimeNs = int64(le.Uint64(o[8:]))
		op.Lat = lat
		op.Lon = lon
		if fCount > 0 {
			op.Fields = dst
		}
	}
	res.Outputs = outputs
	return res, nil
}

// outputError says what is wrong with output i, which decodeOutput refused.
func outputError(i int, in, prev, flags uint32, lat, lon float64, fStart, fCount, nFields uint32, nReadings int) error {
	switch {
	case uint64(in) >= uint64(nReadings):
		return fmt.Errorf("%w: output %d refers to input %d of a batch of %d", ErrMalformedOutput, i, in, nReadings)
	case in < prev:
		return fmt.Errorf("%w: output %d refers to input %d after input %d (outputs must follow input order)", ErrMalformedOutput, i, in, prev)
	case flags != 0:
		return fmt.Errorf("%w: output %d has flags %#x, want 0", ErrMalformedOutput, i, flags)
	case !(lat >= -90 && lat <= 90) || !(lon >= -180 && lon <= 180):
		return fmt.Errorf("%w: output %d has position (%v, %v) outside WGS 84 range", ErrMalformedOutput, i, lat, lon)
	case uint64(fStart)+uint64(fCount) > uint64(nFields):
		return fmt.Errorf("%w: output %d fields [%d, %d+%d) beyond the %d fields", ErrMalformedOutput, i, fStart, fStart, fCount, nFields)
	default:
		// Overlapping ranges can name more fields than the table holds;
		// the total is bounded all the same.
		return fmt.Errorf("%w: outputs name more than the %d fields in the table", ErrMalformedOutput, nFields)
	}
}

// fieldError says what is wrong with field j of output i.
func fieldError(i, j int, ni uint32, names []string, v float64) error {
	if uint64(ni) >= uint64(len(names)) {
		return fmt.Errorf("%w: field %d names %d of %d names", ErrMalformedOutput, j, ni, len(names))
	}
	return fmt.Errorf("%w: field %q of output %d is %v", ErrMalformedOutput, names[ni], i, v)
}

// section returns b[off : off+count*size] or an error when it does not fit.
func section(b []byte, off, count uint32, size int) ([]byte, error) {
	n := uint64(count) * uint64(size)
	end := uint64(off) + n
	if end > uint64(len(b)) {
		return nil, sectionError(off, end, len(b))
	}
	return b[off:end], nil
}

func sectionError(off uint32, end uint64, n int) error {
	return fmt.Errorf("[%d, %d) outside the %d-byte output", off, end, n)
}

// fieldName checks a field name: 1–64 bytes of [A-Za-z0-9_.-]. The common
// names come back as constants, the others through c (which may be nil), so
// decoding them does not allocate.
func fieldName(b []byte, c *nameCache) (string, error) {
	switch string(b) {
	case FieldDistanceM:
		return FieldDistanceM, nil
	case FieldSpeedMS:
		return FieldSpeedMS, nil
	case FieldSpeedKn:
		return FieldSpeedKn, nil
	case FieldCourseDeg:
		return FieldCourseDeg, nil
	}
	if len(b) == 0 || len(b) > maxNameLen {
		return "", fmt.Errorf("length %d, want 1 to %d bytes", len(b), maxNameLen)
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			if !utf8.Valid(b) {
				return "", fmt.Errorf("not UTF-8")
			}
			return "", fmt.Errorf("%q: want only letters, digits, '_', '-' and '.'", b)
		}
	}
	return c.intern(b), nil
}
