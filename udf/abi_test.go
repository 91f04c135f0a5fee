package udf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"github.com/sailstream/sailstream/telemetry"
)

// out builds an output buffer for the decoder tests.
type outBuf struct{ b []byte }

func newOut() *outBuf {
	o := &outBuf{b: make([]byte, headerSize)}
	binary.LittleEndian.PutUint32(o.b, ABIVersion)
	return o
}
func (o *outBuf) set(off int, v uint32) *outBuf {
	binary.LittleEndian.PutUint32(o.b[off:], v)
	return o
}

// validOutput is one output for input 0 with field speed_ms = 2.5 and a
// 3-byte state.
func validOutput() []byte {
	le := binary.LittleEndian
	b := make([]byte, headerSize+outputSize+fieldSize+nameSize+8+3)
	le.PutUint32(b[0:], 1)
	le.PutUint32(b[8:], 1)
	le.PutUint32(b[12:], headerSize)
	le.PutUint32(b[16:], 1)
	le.PutUint32(b[20:], headerSize+outputSize)
	le.PutUint32(b[24:], 1)
	le.PutUint32(b[28:], headerSize+outputSize+fieldSize)
	str := uint32(headerSize + outputSize + fieldSize + nameSize)
	le.PutUint32(b[32:], str+8)
	le.PutUint32(b[36:], 3)
	o := b[headerSize:]
	le.PutUint64(o[8:], 1000)
	le.PutUint64(o[16:], math.Float64bits(52.46))
	le.PutUint64(o[24:], math.Float64bits(21.02))
	le.PutUint32(o[36:], 1)
	f := b[headerSize+outputSize:]
	le.PutUint64(f[8:], math.Float64bits(2.5))
	n := b[headerSize+outputSize+fieldSize:]
	le.PutUint32(n, str)
	le.PutUint32(n[4:], 8)
	copy(b[str:], "speed_ms")
	copy(b[str+8:], "abc")
	return b
}

var testLimits = outputLimits{maxState: 1024, maxOutputs: 16}

func TestDecodeOutput(t *testing.T) {
	res, err := decodeOutput(validOutput(), 1, testLimits, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(res.State) != "abc" || len(res.Outputs) != 1 {
		t.Fatalf("%+v", res)
	}
	o := res.Outputs[0]
	if o.Input != 0 || o.TimeNs != 1000 || o.Lat != 52.46 || o.Lon != 21.02 || len(o.Fields) != 1 || o.Fields[0] != (Field{"speed_ms", 2.5}) {
		t.Fatalf("%+v", o)
	}
}

func TestDecodeOutputRefuses(t *testing.T) {
	le := binary.LittleEndian
	mod := func(f func(b []byte)) []byte { b := validOutput(); f(b); return b }
	tests := []struct {
		name string
		b    []byte
		n    int
		want error
	}{
		{"short", []byte{1, 0, 0}, 1, ErrMalformedOutput},
		{"abi 2", mod(func(b []byte) { le.PutUint32(b, 2) }), 1, ErrMalformedOutput},
		{"status 7", mod(func(b []byte) { le.PutUint32(b[4:], 7) }), 1, ErrMalformedOutput},
		{"guest error", newOut().set(4, 1).set(40, 0).set(44, 4).b, 1, ErrGuest},
		{"guest error message out of bounds", newOut().set(4, 1).set(40, 40).set(44, 400).b, 1, ErrMalformedOutput},
		{"input index beyond batch", mod(func(b []byte) { le.PutUint32(b[headerSize:], 1) }), 1, ErrMalformedOutput},
		{"too many outputs", mod(func(b []byte) { le.PutUint32(b[8:], 17) }), 1, ErrMalformedOutput},
		{"outputs past the end", mod(func(b []byte) { le.PutUint32(b[8:], 2) }), 2, ErrMalformedOutput},
		{"offset overflow", mod(func(b []byte) { le.PutUint32(b[12:], math.MaxUint32) }), 1, ErrMalformedOutput},
		{"field range beyond table", mod(func(b []byte) { le.PutUint32(b[headerSize+36:], 2) }), 1, ErrMalformedOutput},
		{"name index beyond table", mod(func(b []byte) { le.PutUint32(b[headerSize+outputSize:], 1) }), 1, ErrMalformedOutput},
		{"NaN field", mod(func(b []byte) { le.PutUint64(b[headerSize+outputSize+8:], math.Float64bits(math.NaN())) }), 1, ErrMalformedOutput},
		{"latitude 91", mod(func(b []byte) { le.PutUint64(b[headerSize+16:], math.Float64bits(91)) }), 1, ErrMalformedOutput},
		{"bad name", mod(func(b []byte) { b[len(b)-4] = ' ' }), 1, ErrMalformedOutput},
		{"state too large", mod(func(b []byte) { le.PutUint32(b[36:], 2000) }), 1, ErrMalformedOutput},
		{"flags", mod(func(b []byte) { le.PutUint32(b[headerSize+4:], 1) }), 1, ErrMalformedOutput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeOutput(tt.b, tt.n, testLimits, nil)
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
		})
	}
}

// FuzzDecodeOutput: whatever a guest returns, the decoder neither panics
// nor returns anything outside the limits.
func FuzzDecodeOutput(f *testing.F) {
	f.Add(validOutput(), uint8(1))
	f.Add(newOut().b, uint8(0))
	f.Add(newOut().set(4, 1).set(40, 48).set(44, 0).b, uint8(3))
	var names nameCache // shared by the runs, as by an instance's calls
	f.Fuzz(func(t *testing.T, b []byte, n uint8) {
		res, err := decodeOutput(b, int(n), testLimits, &names)
		if err != nil {
			return
		}
		if len(res.State) > testLimits.maxState || len(res.Outputs) > testLimits.maxOutputs {
			t.Fatalf("limits exceeded: %d state bytes, %d outputs", len(res.State), len(res.Outputs))
		}
		prev := 0
		for _, o := range res.Outputs {
			if o.Input < prev || o.Input >= int(n) {
				t.Fatalf("input index %d (batch %d, previous %d)", o.Input, n, prev)
			}
			prev = o.Input
			for _, f := range o.Fields {
				if math.IsNaN(f.Value) || math.IsInf(f.Value, 0) || f.Name == "" {
					t.Fatalf("field %+v", f)
				}
			}
		}
	})
}

// TestEncodeOverwritesEverything: the host encodes the input in place, in
// guest memory that holds whatever the guest left there, so every byte
// (padding and reserved fields too) must be written.
func TestEncodeOverwritesEverything(t *testing.T) {
	rs := []telemetry.Reading{
		{Seq: 1, Time: time.Unix(1, 0), Lat: 52, Lon: 21, Fields: map[string]float64{"hdg": 1.5, "battery": 0.5}},
		{Seq: 2, Time: time.Unix(2, 0), Lat: 52.05, Lon: 21},
		{Seq: 3, Time: time.Unix(3, 0), Lat: 52.1, Lon: 21, Fields: map[string]float64{"heel": 12}},
	}
	for _, device := range []string{"b", "b1", "boat-123"} { // different padding
		want := encodeInput(nil, []byte("st"), device, rs)
		var e inputEncoder
		for range 2 { // the second time with the scratch space of the first
			n := e.measure([]byte("st"), device, rs)
			got := bytes.Repeat([]byte{0xa5}, n)
			e.write(got, []byte("st"), device, rs)
			if !bytes.Equal(got, want) {
				t.Fatalf("device %q: encoding over garbage\n got %x\nwant %x", device, got, want)
			}
		}
	}
}

// TestNameCache: names that are not constants are interned, up to a bound.
func TestNameCache(t *testing.T) {
	var c nameCache
	a, err := fieldName([]byte("heel_deg"), &c)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := fieldName([]byte("heel_deg"), &c); unsafe.StringData(a) != unsafe.StringData(b) {
		t.Fatal("second lookup allocated a new string")
	}
	for i := range 2 * maxCachedNames {
		if _, err := fieldName([]byte("n"+strconv.Itoa(i)), &c); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.m) != maxCachedNames {
		t.Fatalf("cache holds %d names, want the bound %d", len(c.m), maxCachedNames)
	}
	if _, err := fieldName([]byte("bad name"), &c); err == nil {
		t.Fatal("bad name accepted")
	}
}
