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

// encodeInput lays out one batch as ABI v1 input. Field names are sorted per
// reading so the same batch always gives the same bytes.
func encodeInput(dst []byte, state []byte, device string, readings []telemetry.Reading) []byte {
	nFields := 0
	for i := range readings {
		nFields += len(readings[i].Fields)
	}
	var names []string
	var nameIdx map[string]uint32
	if nFields > 0 {
		nameIdx = make(map[string]uint32)
		for i := range readings {
			for k := range readings[i].Fields {
				if _, ok := nameIdx[k]; !ok {
					nameIdx[k] = uint32(len(names))
					names = append(names, k)
				}
			}
		}
		// Indices follow sorted order so the bytes do not depend on map
		// iteration order.
		slices.Sort(names)
		for i, k := range names {
			nameIdx[k] = uint32(i)
		}
	}
	namesBytes := len(device)
	for _, k := range names {
		namesBytes += len(k)
	}
	readingsOff := headerSize
	fieldsOff := readingsOff + readingSize*len(readings)
	namesOff := fieldsOff + fieldSize*nFields
	stringsOff := namesOff + nameSize*len(names)
	stateOff := align8(stringsOff + namesBytes)
	total := stateOff + len(state)

	b := slices.Grow(dst[:0], total)[:total]
	clear(b)
	le := binary.LittleEndian
	le.PutUint32(b[0:], ABIVersion)
	le.PutUint32(b[4:], uint32(len(readings)))
	le.PutUint32(b[8:], uint32(readingsOff))
	le.PutUint32(b[12:], uint32(nFields))
	le.PutUint32(b[16:], uint32(fieldsOff))
	le.PutUint32(b[20:], uint32(len(names)))
	le.PutUint32(b[24:], uint32(namesOff))
	le.PutUint32(b[28:], uint32(stateOff))
	le.PutUint32(b[32:], uint32(len(state)))
	le.PutUint32(b[36:], uint32(stringsOff))
	le.PutUint32(b[40:], uint32(len(device)))
	s := stringsOff + copy(b[stringsOff:], device)
	for i, k := range names {
		e := namesOff + nameSize*i
		le.PutUint32(b[e:], uint32(s))
		le.PutUint32(b[e+4:], uint32(len(k)))
		s += copy(b[s:], k)
	}
	copy(b[stateOff:], state)

	f := 0
	var keys []string
	for i := range readings {
		r := &readings[i]
		o := readingsOff + readingSize*i
		le.PutUint64(b[o:], r.Seq)
		le.PutUint64(b[o+8:], uint64(r.Time.UnixNano()))
		le.PutUint64(b[o+16:], math.Float64bits(r.Lat))
		le.PutUint64(b[o+24:], math.Float64bits(r.Lon))
		le.PutUint32(b[o+32:], uint32(f))
		le.PutUint32(b[o+36:], uint32(len(r.Fields)))
		if len(r.Fields) == 0 {
			continue
		}
		keys = keys[:0]
		for k := range r.Fields {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			e := fieldsOff + fieldSize*f
			le.PutUint32(b[e:], nameIdx[k])
			le.PutUint64(b[e+8:], math.Float64bits(r.Fields[k]))
			f++
		}
	}
	return b
}

func align8(n int) int { return (n + 7) &^ 7 }

// outputLimits bounds what decodeOutput accepts.
type outputLimits struct {
	maxState   int
	maxOutputs int
}

// decodeOutput checks and copies out an ABI v1 output buffer. b is
// untrusted: every count, offset and length is checked before use, and
// nothing returned aliases b. times holds the batch's event times in Unix
// nanoseconds (for the count and as defaults).
func decodeOutput(b []byte, nReadings int, lim outputLimits) (Result, error) {
	var res Result
	le := binary.LittleEndian
	if len(b) < headerSize {
		return res, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrMalformedOutput, len(b), headerSize)
	}
	if v := le.Uint32(b[0:]); v != ABIVersion {
		return res, fmt.Errorf("%w: output header says ABI version %d, want %d", ErrMalformedOutput, v, ABIVersion)
	}
	switch status := le.Uint32(b[4:]); status {
	case statusOK:
	case statusError:
		msg, err := section(b, le.Uint32(b[40:]), le.Uint32(b[44:]), 1)
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

	nOut := le.Uint32(b[8:])
	if uint64(nOut) > uint64(lim.maxOutputs) {
		return res, fmt.Errorf("%w: %d outputs, more than the limit of %d for this batch", ErrMalformedOutput, nOut, lim.maxOutputs)
	}
	outs, err := section(b, le.Uint32(b[12:]), nOut, outputSize)
	if err != nil {
		return res, fmt.Errorf("%w: outputs: %v", ErrMalformedOutput, err)
	}
	nFields := le.Uint32(b[16:])
	fields, err := section(b, le.Uint32(b[20:]), nFields, fieldSize)
	if err != nil {
		return res, fmt.Errorf("%w: fields: %v", ErrMalformedOutput, err)
	}
	nNames := le.Uint32(b[24:])
	nameTab, err := section(b, le.Uint32(b[28:]), nNames, nameSize)
	if err != nil {
		return res, fmt.Errorf("%w: names: %v", ErrMalformedOutput, err)
	}
	stateLen := le.Uint32(b[36:])
	if uint64(stateLen) > uint64(lim.maxState) {
		return res, fmt.Errorf("%w: state of %d bytes, more than the limit of %d", ErrMalformedOutput, stateLen, lim.maxState)
	}
	state, err := section(b, le.Uint32(b[32:]), stateLen, 1)
	if err != nil {
		return res, fmt.Errorf("%w: state: %v", ErrMalformedOutput, err)
	}

	names := make([]string, nNames)
	for i := range names {
		e := nameTab[nameSize*i:]
		nb, err := section(b, le.Uint32(e), le.Uint32(e[4:]), 1)
		if err != nil {
			return res, fmt.Errorf("%w: name %d: %v", ErrMalformedOutput, i, err)
		}
		if names[i], err = fieldName(nb); err != nil {
			return res, fmt.Errorf("%w: name %d: %v", ErrMalformedOutput, i, err)
		}
	}

	if len(state) > 0 {
		res.State = append([]byte(nil), state...)
	}
	if nOut == 0 {
		return res, nil
	}
	res.Outputs = make([]Output, nOut)
	var all []Field
	if nFields > 0 {
		all = make([]Field, 0, nFields)
	}
	prev := uint32(0)
	for i := range res.Outputs {
		o := outs[outputSize*i:]
		in := le.Uint32(o)
		if uint64(in) >= uint64(nReadings) {
			return Result{}, fmt.Errorf("%w: output %d refers to input %d of a batch of %d", ErrMalformedOutput, i, in, nReadings)
		}
		if in < prev {
			return Result{}, fmt.Errorf("%w: output %d refers to input %d after input %d (outputs must follow input order)", ErrMalformedOutput, i, in, prev)
		}
		prev = in
		if flags := le.Uint32(o[4:]); flags != 0 {
			return Result{}, fmt.Errorf("%w: output %d has flags %#x, want 0", ErrMalformedOutput, i, flags)
		}
		lat := math.Float64frombits(le.Uint64(o[16:]))
		lon := math.Float64frombits(le.Uint64(o[24:]))
		if !(lat >= -90 && lat <= 90) || !(lon >= -180 && lon <= 180) {
			return Result{}, fmt.Errorf("%w: output %d has position (%v, %v) outside WGS 84 range", ErrMalformedOutput, i, lat, lon)
		}
		fStart, fCount := le.Uint32(o[32:]), le.Uint32(o[36:])
		if uint64(fStart)+uint64(fCount) > uint64(nFields) {
			return Result{}, fmt.Errorf("%w: output %d fields [%d, %d+%d) beyond the %d fields", ErrMalformedOutput, i, fStart, fStart, fCount, nFields)
		}
		start := len(all)
		for j := fStart; j < fStart+fCount; j++ {
			if len(all) == cap(all) {
				// Overlapping ranges can name more fields than the table
				// holds; bound the total all the same.
				return Result{}, fmt.Errorf("%w: outputs name more than the %d fields in the table", ErrMalformedOutput, nFields)
			}
			e := fields[fieldSize*j:]
			ni := le.Uint32(e)
			if uint64(ni) >= uint64(nNames) {
				return Result{}, fmt.Errorf("%w: field %d names %d of %d names", ErrMalformedOutput, j, ni, nNames)
			}
			v := math.Float64frombits(le.Uint64(e[8:]))
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return Result{}, fmt.Errorf("%w: field %q of output %d is %v", ErrMalformedOutput, names[ni], i, v)
			}
			all = append(all, Field{Name: names[ni], Value: v})
		}
		res.Outputs[i] = Output{
			Input:  int(in),
			TimeNs: int64(le.Uint64(o[8:])),
			Lat:    lat,
			Lon:    lon,
			Fields: all[start:len(all):len(all)],
		}
	}
	return res, nil
}

// section returns b[off : off+count*size] or an error when it does not fit.
func section(b []byte, off, count uint32, size int) ([]byte, error) {
	n := uint64(count) * uint64(size)
	end := uint64(off) + n
	if end > uint64(len(b)) {
		return nil, fmt.Errorf("[%d, %d) outside the %d-byte output", off, end, len(b))
	}
	return b[off:end], nil
}

// fieldName checks a field name: 1–64 bytes of [A-Za-z0-9_.-]. The common
// names come back as constants so decoding them does not allocate.
func fieldName(b []byte) (string, error) {
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
	return string(b), nil
}
