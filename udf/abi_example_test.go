package udf

import (
	"bytes"
	"testing"
	"time"

	"github.com/sailstream/sailstream/telemetry"
	"github.com/sailstream/sailstream/udf/internal/abidoc"
)

// dumps reads the hex dumps of ABI.md's worked example.
func dumps(t *testing.T) map[string][]byte {
	t.Helper()
	d, err := abidoc.Dumps("ABI.md")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestWorkedExample keeps ABI.md's byte-level example true.
func TestWorkedExample(t *testing.T) {
	d := dumps(t)
	in := encodeInput(nil, nil, "b1", []telemetry.Reading{
		{Seq: 1, Time: time.Unix(1, 0), Lat: 52, Lon: 21, Fields: map[string]float64{"hdg": 1.5}},
		{Seq: 2, Time: time.Unix(2, 0), Lat: 52.05, Lon: 21},
	})
	if !bytes.Equal(in, d["input"]) {
		t.Errorf("ABI.md input dump differs from the encoder:\n doc: %x\nhost: %x", d["input"], in)
	}
	res, err := decodeOutput(d["output"], 2, outputLimits{maxState: 100, maxOutputs: 32}, nil)
	if err != nil {
		t.Fatalf("ABI.md output dump: %v", err)
	}
	o := res.Outputs
	if string(res.State) != "ok" || len(o) != 1 || o[0].Input != 1 || o[0].TimeNs != 2e9 || o[0].Lat != 52.05 ||
		len(o[0].Fields) != 1 || o[0].Fields[0] != (Field{"speed_ms", 2.5}) {
		t.Fatalf("ABI.md output dump decodes to %+v", res)
	}
}
