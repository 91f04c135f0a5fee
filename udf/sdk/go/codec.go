package sdk

import (
	"errors"
	"math"
	"strconv"
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
	names    []string
	nameIdx  map[string]uint32
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
	b.Device = string(dev)

	c.names = c.names[:0]
	for i := uint32(0); i < nN; i++ {
		e := ns[nameSize*i:]
		nb, err := sect(u32(e), u32(e[4:]), 1)
		if err != nil {
			return nil, b, err
		}
		c.names = append(c.names, string(nb))
	}
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
func (c *codec) encode(state []byte, outs []Output) []byte {
	if c.nameIdx == nil {
		c.nameIdx = make(map[string]uint32)
	}
	clear(c.nameIdx)
	c.outNames = c.outNames[:0]
	nF, strBytes := 0, 0
	for _, o := range outs {
		nF += len(o.Fields)
		for _, f := range o.Fields {
			if _, ok := c.nameIdx[f.Name]; !ok {
				c.nameIdx[f.Name] = uint32(len(c.outNames))
				c.outNames = append(c.outNames, f.Name)
				strBytes += len(f.Name)
			}
		}
	}
	outsOff := headerSize
	fieldsOff := outsOff + outputSize*len(outs)
	namesOff := fieldsOff + fieldSize*nF
	strOff := namesOff + nameSize*len(c.outNames)
	stateOff := strOff + strBytes
	total := stateOff + len(state)
	if cap(c.out) < total {
		c.out = make([]byte, total, total+total/4)
	}
	b := c.out[:total]
	clear(b[:headerSize])
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
	s := strOff
	for i, n := range c.outNames {
		e := namesOff + nameSize*i
		put32(b[e:], uint32(s))
		put32(b[e+4:], uint32(len(n)))
		s += copy(b[s:], n)
	}
	copy(b[stateOff:], state)
	f := 0
	for i, o := range outs {
		e := outsOff + outputSize*i
		put32(b[e:], uint32(o.Input))
		put32(b[e+4:], 0)
		put64(b[e+8:], uint64(o.TimeNs))
		put64(b[e+16:], math.Float64bits(o.Lat))
		put64(b[e+24:], math.Float64bits(o.Lon))
		put32(b[e+32:], uint32(f))
		put32(b[e+36:], uint32(len(o.Fields)))
		for _, fl := range o.Fields {
			p := fieldsOff + fieldSize*f
			put32(b[p:], c.nameIdx[fl.Name])
			put32(b[p+4:], 0)
			put64(b[p+8:], math.Float64bits(fl.Value))
			f++
		}
	}
	return b
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
