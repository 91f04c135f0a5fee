package sdk

import (
	"errors"
	"math"
	"strconv"
	"unsafe"
)

// ABI v1 layout; see udf/ABI.md.
const (
	abiVersion  = 1
	headerSize  = 48
	readingSize = 40
	outputSize  = 40
	fieldSize   = 16
	nameSize    = 8
)

// codec holds the buffers one instance reuses from call to call. Nothing in
// it is state: every call starts from the input alone.
type codec struct {
	readings []Reading
	fields   []Field
	names    []string // the input's field names, kept from call to call
	device   string
	out      []byte
	outNames []string
}

// errInput reports a host input that breaks the ABI.
var errInput = errors.New("malformed input")

// The SDK avoids fmt and encoding/json: they would double the size of every
// module, and the host compiles about 2 MB a second.
func inputErr(what string) error { return errors.New(errInput.Error() + ": " + what) }

// decode parses an ABI v1 input. The returned state aliases in.
func (c *codec) decode(in []byte) (state []byte, b Batch, err error) {
	if len(in) < headerSize || u32(in) != abiVersion {
		return nil, b, inputErr("header")
	}
	sect := func(off, count uint32, size int) ([]byte, error) {
		end := uint64(off) + uint64(count)*uint64(size)
		if end > uint64(len(in)) {
			return nil, inputErr("section outside the input")
		}
		return in[off:end], nil
	}
	nR, nF, nN := u32(in[4:]), u32(in[12:]), u32(in[20:])
	rs, err := sect(u32(in[8:]), nR, readingSize)
	if err != nil {
		return nil, b, err
	}
	fs, err := sect(u32(in[16:]), nF, fieldSize)
	if err != nil {
		return nil, b, err
	}
	ns, err := sect(u32(in[24:]), nN, nameSize)
	if err != nil {
		return nil, b, err
	}
	if state, err = sect(u32(in[28:]), u32(in[32:]), 1); err != nil {
		return nil, b, err
	}
	dev, err := sect(u32(in[36:]), u32(in[40:]), 1)
	if err != nil {
		return nil, b, err
	}
	// Strings are copied out of the input (a UDF may keep them), but the
	// previous call's are reused when the bytes are the same, which they
	// usually are: no garbage per call.
	if string(dev) != c.device {
		c.device = string(dev)
	}
	b.Device = c.device

	for i := uint32(0); i < nN; i++ {
		e := ns[nameSize*i:]
		nb, err := sect(u32(e), u32(e[4:]), 1)
		if err != nil {
			return nil, b, err
		}
		if int(i) == len(c.names) {
			c.names = append(c.names, string(nb))
		} else if string(nb) != c.names[i] {
			c.names[i] = string(nb)
		}
	}
	c.names = c.names[:nN]
	c.fields = c.fields[:0]
	for i := uint32(0); i < nF; i++ {
		e := fs[fieldSize*i:]
		ni := u32(e)
		if ni >= nN {
			return nil, b, inputErr("field name index out of range")
		}
		c.fields = append(c.fields, Field{Name: c.names[ni], Value: math.Float64frombits(u64(e[8:]))})
	}
	c.readings = c.readings[:0]
	for i := uint32(0); i < nR; i++ {
		r := rs[readingSize*i:]
		start, n := u32(r[32:]), u32(r[36:])
		if uint64(start)+uint64(n) > uint64(nF) {
			return nil, b, inputErr("reading " + strconv.Itoa(int(i)) + ": fields out of range")
		}
		c.readings = append(c.readings, Reading{
			Seq:    u64(r),
			TimeNs: int64(u64(r[8:])),
			Lat:    math.Float64frombits(u64(r[16:])),
			Lon:    math.Float64frombits(u64(r[24:])),
			Fields: c.fields[start : start+n : start+n],
		})
	}
	b.Readings = c.readings
	return state, b, nil
}

// encode lays out an ABI v1 output (status 0) in the codec's buffer.
//
// It is the hot path of every call, and Go's Wasm output is slow enough
// that its shape matters: one pass over the fields, writing each output and
// its fields as it goes, with names interned on the fly (the name table and
// strings come after the fields, so they are written last). A map lookup
// (hashing the name in portable Go) would cost more than all the rest of a
// field; for the usual UDF, which sets the same fields in the same order on
// every output, finding a name's index is one comparison of string
// pointers.
func (c *codec) encode(state []byte, outs []Output) []byte {
	nF := 0
	for i := range outs {
		nF += len(outs[i].Fields)
	}
	outsOff := headerSize
	fieldsOff := outsOff + outputSize*len(outs)
	namesOff := fieldsOff + fieldSize*nF
	// Room for the fixed part and a guess at the rest (grown below if the
	// names or state do not fit).
	if need := namesOff + 256 + len(state); cap(c.out) < need {
		c.out = make([]byte, need, need+need/4)
	}
	b := c.out[:namesOff]
	ob := b[outsOff:fieldsOff]
	fb := b[fieldsOff:namesOff]
	c.outNames = c.outNames[:0]
	f := 0
	for i := range outs {
		o := &outs[i]
		e := ob[outputSize*i : outputSize*i+outputSize]
		put32(e, uint32(o.Input))
		put32(e[4:], 0)
		put64(e[8:], uint64(o.TimeNs))
		put64(e[16:], math.Float64bits(o.Lat))
		put64(e[24:], math.Float64bits(o.Lon))
		put32(e[32:], uint32(f))
		put32(e[36:], uint32(len(o.Fields)))
		for k := range o.Fields {
			fl := &o.Fields[k]
			// Fast path: the name the field at this position had on the
			// first output.
			ni := uint32(k)
			if k >= len(c.outNames) || !sameString(c.outNames[k], fl.Name) {
				ni = c.nameIndex(fl.Name)
			}
			p := fb[fieldSize*f : fieldSize*f+fieldSize]
			put32(p, ni)
			put32(p[4:], 0)
			put64(p[8:], math.Float64bits(fl.Value))
			f++
		}
	}

	strOff := namesOff + nameSize*len(c.outNames)
	stateOff := strOff
	for _, n := range c.outNames {
		stateOff += len(n)
	}
	total := stateOff + len(state)
	if cap(c.out) < total {
		grown := make([]byte, total, total+total/4)
		copy(grown, b)
		c.out = grown
	}
	b = c.out[:total]
	s := strOff
	for i, n := range c.outNames {
		e := b[namesOff+nameSize*i:]
		put32(e, uint32(s))
		put32(e[4:], uint32(len(n)))
		s += copy(b[s:], n)
	}
	copy(b[stateOff:], state)
	put32(b[0:], abiVersion)
	put32(b[4:], 0)
	put32(b[8:], uint32(len(outs)))
	put32(b[12:], uint32(outsOff))
	put32(b[16:], uint32(nF))
	put32(b[20:], uint32(fieldsOff))
	put32(b[24:], uint32(len(c.outNames)))
	put32(b[28:], uint32(namesOff))
	put32(b[32:], uint32(stateOff))
	put32(b[36:], uint32(len(state)))
	put64(b[40:], 0) // message_off, message_len
	return b
}

// nameIndex returns the index of name in c.outNames, adding it when it is
// new.
func (c *codec) nameIndex(name string) uint32 {
	for i, n := range c.outNames {
		if sameString(n, name) {
			return uint32(i)
		}
	}
	c.outNames = append(c.outNames, name)
	return uint32(len(c.outNames) - 1)
}

// sameString is a == b, without the call into the runtime when both are
// the same constant (the usual case for a field name).
func sameString(a, b string) bool {
	return len(a) == len(b) && (unsafe.StringData(a) == unsafe.StringData(b) || a == b)
}

// encodeError lays out an ABI v1 output with status 1 and msg.
func (c *codec) encodeError(msg string) []byte {
	total := headerSize + len(msg)
	if cap(c.out) < total {
		c.out = make([]byte, total)
	}
	b := c.out[:total]
	clear(b[:headerSize])
	put32(b[0:], abiVersion)
	put32(b[4:], 1)
	put32(b[40:], headerSize)
	put32(b[44:], uint32(len(msg)))
	copy(b[headerSize:], msg)
	return b
}

// handle runs f on one input and returns the output bytes. A panic in f
// becomes a status-1 output rather than a trap, so the instance survives.
func (c *codec) handle(f Func, in []byte) (out []byte) {
	if f == nil {
		return c.encodeError("sdk: no UDF registered (call sdk.Register in an init function)")
	}
	state, b, err := c.decode(in)
	if err != nil {
		return c.encodeError("sdk: " + err.Error())
	}
	defer func() {
		arena.on = false
		if p := recover(); p != nil {
			msg := "panic"
			switch p := p.(type) {
			case error:
				msg += ": " + p.Error()
			case string:
				msg += ": " + p
			}
			out = c.encodeError(msg)
		}
	}()
	arena.reset()
	arena.on = true
	newState, outs, err := f(state, b)
	if err != nil {
		return c.encodeError(err.Error())
	}
	return c.encode(newState, outs)
}

// infoJSON is what sailstream_v1_info returns.
func infoJSON(i Info) []byte {
	return []byte(`{"name":` + strconv.Quote(i.Name) + `,"version":` + strconv.Quote(i.Version) + `}`)
}
