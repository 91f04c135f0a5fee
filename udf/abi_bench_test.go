package udf

import (
	"encoding/binary"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/sailstream/sailstream/telemetry"
)

// speedOutput builds the output the speed UDF returns for a batch of n
// readings: one output per reading with distance_m, speed_ms and
// course_deg, and a 32-byte state.
func speedOutput(n int) []byte {
	le := binary.LittleEndian
	names := []string{FieldDistanceM, FieldSpeedMS, FieldCourseDeg}
	outsOff := headerSize
	fieldsOff := outsOff + outputSize*n
	namesOff := fieldsOff + fieldSize*3*n
	strOff := namesOff + nameSize*len(names)
	strLen := 0
	for _, s := range names {
		strLen += len(s)
	}
	stateOff := strOff + strLen
	b := make([]byte, stateOff+32)
	le.PutUint32(b[0:], ABIVersion)
	le.PutUint32(b[8:], uint32(n))
	le.PutUint32(b[12:], uint32(outsOff))
	le.PutUint32(b[16:], uint32(3*n))
	le.PutUint32(b[20:], uint32(fieldsOff))
	le.PutUint32(b[24:], uint32(len(names)))
	le.PutUint32(b[28:], uint32(namesOff))
	le.PutUint32(b[32:], uint32(stateOff))
	le.PutUint32(b[36:], 32)
	s := strOff
	for i, nm := range names {
		le.PutUint32(b[namesOff+nameSize*i:], uint32(s))
		le.PutUint32(b[namesOff+nameSize*i+4:], uint32(len(nm)))
		s += copy(b[s:], nm)
	}
	for i := range n {
		o := b[outsOff+outputSize*i:]
		le.PutUint32(o, uint32(i))
		le.PutUint64(o[8:], uint64(1e9*i))
		le.PutUint64(o[16:], math.Float64bits(52.46+float64(i)*1e-5))
		le.PutUint64(o[24:], math.Float64bits(21.02))
		le.PutUint32(o[32:], uint32(3*i))
		le.PutUint32(o[36:], 3)
		for j := range 3 {
			f := b[fieldsOff+fieldSize*(3*i+j):]
			le.PutUint32(f, uint32(j))
			le.PutUint64(f[8:], math.Float64bits(float64(i+j)*0.5))
		}
	}
	return b
}

func TestSpeedOutputDecodes(t *testing.T) {
	res, err := decodeOutput(speedOutput(4), 4, outputLimits{maxState: 64, maxOutputs: 64}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Outputs) != 4 || len(res.State) != 32 {
		t.Fatalf("%+v", res)
	}
	for i, o := range res.Outputs {
		want := []Field{{FieldDistanceM, float64(i) * 0.5}, {FieldSpeedMS, float64(i+1) * 0.5}, {FieldCourseDeg, float64(i+2) * 0.5}}
		if o.Input != i || o.TimeNs != int64(1e9*i) || len(o.Fields) != 3 || o.Fields[0] != want[0] || o.Fields[1] != want[1] || o.Fields[2] != want[2] {
			t.Fatalf("output %d: %+v", i, o)
		}
	}
}

// BenchmarkDecodeOutput is the host's share of a call, output side: the
// speed UDF's output for a batch.
func BenchmarkDecodeOutput(b *testing.B) {
	for _, n := range []int{1, 256, 1024} {
		buf := speedOutput(n)
		lim := outputLimits{maxState: DefaultMaxStateBytes, maxOutputs: n * DefaultMaxOutputsPerReading}
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decodeOutput(buf, n, lim, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/reading")
		})
	}
}

// BenchmarkEncodeInput is the host's share of a call, input side.
func BenchmarkEncodeInput(b *testing.B) {
	for _, n := range []int{1, 256, 1024} {
		rs := make([]telemetry.Reading, n)
		t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
		for i := range rs {
			rs[i] = telemetry.Reading{Device: "boat-1", Seq: uint64(i), Time: t0.Add(time.Duration(i) * time.Second), Lat: 52.46, Lon: 21.02}
		}
		state := make([]byte, 32)
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			var buf []byte
			for b.Loop() {
				buf = encodeInput(buf, state, "boat-1", rs)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/reading")
		})
	}
}
