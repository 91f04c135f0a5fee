package sdk

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/sailstream/sailstream/udf/internal/abidoc"
)

// abiDumps reads the hex dumps of ABI.md's worked example.
func abiDumps(t *testing.T) map[string][]byte {
	t.Helper()
	d, err := abidoc.Dumps("../../ABI.md")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestWorkedExample: the SDK decodes ABI.md's input and, given the
// example's outputs, encodes ABI.md's output byte for byte.
func TestWorkedExample(t *testing.T) {
	d := abiDumps(t)
	var c codec
	state, b, err := c.decode(d["input"])
	if err != nil {
		t.Fatal(err)
	}
	if len(state) != 0 || b.Device != "b1" || len(b.Readings) != 2 {
		t.Fatalf("decoded state %q, batch %+v", state, b)
	}
	r0, r1 := b.Readings[0], b.Readings[1]
	if r0.Seq != 1 || r0.TimeNs != 1e9 || r0.Lat != 52 || r0.Lon != 21 || len(r0.Fields) != 1 || r0.Fields[0] != (Field{"hdg", 1.5}) {
		t.Fatalf("reading 0: %+v", r0)
	}
	if v, ok := r0.Field("hdg"); !ok || v != 1.5 {
		t.Fatalf("Field(hdg) = %v, %v", v, ok)
	}
	if r1.Seq != 2 || r1.TimeNs != 2e9 || r1.Lat != 52.05 || len(r1.Fields) != 0 {
		t.Fatalf("reading 1: %+v", r1)
	}
	o := b.Pass(1)
	o.Set("speed_ms", 1)
	o.Set("speed_ms", 2.5) // replaces
	got := c.encode([]byte("ok"), []Output{o})
	if !bytes.Equal(got, d["output"]) {
		t.Fatalf("encode differs from ABI.md:\n doc: %x\n sdk: %x", d["output"], got)
	}
}

// TestEncodeRoundTrip decodes what encode writes, with the cases its fast
// path must not get wrong: names in another order, names first seen on a
// later output, repeated names, no fields, and names and state too big for
// the buffer's first guess.
func TestEncodeRoundTrip(t *testing.T) {
	long := strings.Repeat("n", 64)
	dyn := string([]byte("speed_ms")) // same bytes as the constant, another pointer
	tests := []struct {
		name  string
		state []byte
		outs  []Output
	}{
		{"none", nil, nil},
		{"one, no fields", []byte("s"), []Output{{Input: 0, TimeNs: -5, Lat: -90, Lon: 180}}},
		{"same fields each time", nil, []Output{
			{Input: 0, Fields: []Field{{"a", 1}, {"b", 2}}},
			{Input: 1, Fields: []Field{{"a", 3}, {"b", 4}}},
		}},
		{"other order, new and repeated names", []byte{1, 2, 3}, []Output{
			{Input: 0, Fields: []Field{{"a", 1}, {"b", 2}}},
			{Input: 0, Fields: []Field{{"b", 3}, {"c", 4}, {"a", 5}}},
			{Input: 2, Fields: []Field{{"d", 6}}},
			{Input: 2, Fields: []Field{{"speed_ms", 7}, {dyn, 8}}},
		}},
		{"big names and state", bytes.Repeat([]byte{7}, 5000), []Output{
			{Input: 3, Fields: []Field{{long + "", 1}, {long[:63] + "x", math.Inf(1)}, {"z" + long[:63], -0.0}}},
		}},
	}
	var c codec
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := c.encode(tt.state, tt.outs)
			state, outs, err := decodeOutputForTest(got)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(state, tt.state) {
				t.Errorf("state %x, want %x", state, tt.state)
			}
			if len(outs) != len(tt.outs) {
				t.Fatalf("%d outputs, want %d", len(outs), len(tt.outs))
			}
			for i := range outs {
				g, w := outs[i], tt.outs[i]
				if g.Input != w.Input || g.TimeNs != w.TimeNs || g.Lat != w.Lat || g.Lon != w.Lon || len(g.Fields) != len(w.Fields) {
					t.Fatalf("output %d: %+v, want %+v", i, g, w)
				}
				for k := range g.Fields {
					if g.Fields[k].Name != w.Fields[k].Name || math.Float64bits(g.Fields[k].Value) != math.Float64bits(w.Fields[k].Value) {
						t.Fatalf("output %d field %d: %+v, want %+v", i, k, g.Fields[k], w.Fields[k])
					}
				}
			}
		})
	}
}

// decodeOutputForTest reads an ABI v1 output: the test's own reader, so the
// round trip does not trust the encoder's layout.
func decodeOutputForTest(b []byte) (state []byte, outs []Output, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = errInput
		}
	}()
	if u32(b) != abiVersion || u32(b[4:]) != 0 || u64(b[40:]) != 0 {
		return nil, nil, errInput
	}
	n, oOff, fOff, nNames, nOff := u32(b[8:]), u32(b[12:]), u32(b[20:]), u32(b[24:]), u32(b[28:])
	names := make([]string, nNames)
	seen := map[string]bool{}
	for i := range names {
		e := b[nOff+nameSize*uint32(i):]
		names[i] = string(b[u32(e) : u32(e)+u32(e[4:])])
		if seen[names[i]] {
			return nil, nil, errInput // each name once
		}
		seen[names[i]] = true
	}
	for i := uint32(0); i < n; i++ {
		e := b[oOff+outputSize*i:]
		if u32(e[4:]) != 0 {
			return nil, nil, errInput
		}
		o := Output{Input: int(u32(e)), TimeNs: int64(u64(e[8:])), Lat: math.Float64frombits(u64(e[16:])), Lon: math.Float64frombits(u64(e[24:]))}
		for j := u32(e[32:]); j < u32(e[32:])+u32(e[36:]); j++ {
			f := b[fOff+fieldSize*j:]
			o.Fields = append(o.Fields, Field{Name: names[u32(f)], Value: math.Float64frombits(u64(f[8:]))})
		}
		outs = append(outs, o)
	}
	return b[u32(b[32:]) : u32(b[32:])+u32(b[36:])], outs, nil
}

// TestDecodeReusesStrings: the second call with the same device and names
// allocates nothing for them, and a changed name is not confused with the
// old one.
func TestDecodeReusesStrings(t *testing.T) {
	d := abiDumps(t)
	in := d["input"]
	var c codec
	if _, _, err := c.decode(in); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { c.decode(in) }); n != 0 {
		t.Errorf("decode allocates %v times a call with the same strings", n)
	}
	other := bytes.Clone(in)
	copy(other[0x9a:], "hdx") // the field name "hdg"
	_, b, err := c.decode(other)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Readings[0].Fields[0].Name; got != "hdx" {
		t.Fatalf("name %q, want hdx", got)
	}
}

// TestDecodeRefuses: a malformed input is an error, never a panic.
func TestDecodeRefuses(t *testing.T) {
	good := abiDumps(t)["input"]
	tests := []struct {
		name string
		edit func(b []byte) []byte
	}{
		{"short", func(b []byte) []byte { return b[:40] }},
		{"version", func(b []byte) []byte { put32(b, 2); return b }},
		{"readings outside", func(b []byte) []byte { put32(b[4:], 1000); return b }},
		{"name outside", func(b []byte) []byte { put32(b[0x90:], 1000); return b }},
		{"field name index", func(b []byte) []byte { put32(b[0x80:], 5); return b }},
		{"reading fields outside", func(b []byte) []byte { put32(b[0x50:], 3); return b }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c codec
			if _, _, err := c.decode(tt.edit(bytes.Clone(good))); err == nil {
				t.Fatal("decoded")
			}
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	outs := make([]Output, 256)
	fields := make([]Field, 3*len(outs))
	for i := range outs {
		f := fields[3*i : 3*i+3]
		f[0], f[1], f[2] = Field{"distance_m", 1}, Field{"speed_ms", 2}, Field{"course_deg", 3}
		outs[i] = Output{Input: i, TimeNs: int64(i), Lat: 52, Lon: 21, Fields: f}
	}
	var c codec
	state := make([]byte, 36)
	for b.Loop() {
		c.encode(state, outs)
	}
}
