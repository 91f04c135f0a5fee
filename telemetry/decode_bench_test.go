package telemetry_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/sailstream/sailstream/telemetry"
)

// benchPayloads are typical native payloads: six boats, a battery field.
func benchPayloads(b *testing.B) [][]byte {
	b.Helper()
	var out [][]byte
	for i := range 6 {
		r := telemetry.Reading{
			Device: fmt.Sprintf("boat-%d", i+1), Seq: uint64(1000 + i),
			Time: decodeNow.Add(-time.Duration(i) * time.Second),
			Lat:  52.46 + float64(i)*0.001, Lon: 21.02 + float64(i)*0.0013,
			Fields: map[string]float64{"battery": 0.87},
		}
		p, err := telemetry.Encode(r)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// BenchmarkDecode measures decoding and validating one native JSON reading.
func BenchmarkDecode(b *testing.B) {
	payloads := benchPayloads(b)
	devices := make([]string, len(payloads))
	for i := range devices {
		devices[i] = fmt.Sprintf("boat-%d", i+1)
	}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		i := n % len(payloads)
		if _, err := telemetry.Decode(devices[i], payloads[i], decodeNow); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/reading")
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "readings/s")
}

// BenchmarkEncode measures encoding one reading to native JSON.
func BenchmarkEncode(b *testing.B) {
	r := telemetry.Reading{Device: "boat-1", Seq: 1, Time: decodeNow, Lat: 52.46, Lon: 21.02, Fields: map[string]float64{"battery": 0.87}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := telemetry.Encode(r); err != nil {
			b.Fatal(err)
		}
	}
}
