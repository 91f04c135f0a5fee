// Package udftest checks a UDF against shared test vectors: JSON files of
// cases, each an input state and batch with the expected new state and
// outputs. The same vectors check every implementation of a UDF (the Go,
// AssemblyScript and C guests and the native reference), so they must
// agree exactly: numbers are compared bit for bit.
//
// A vectors file (udf/testdata/<udf>/*.json):
//
//	{"udf": "speed", "cases": [{
//	  "name": "due north 0.001 degree in 10 s",
//	  "device": "boat-1",
//	  "state": "",                      // hex; "" for none
//	  "readings": [{"seq": 1, "time": "2026-06-01T12:00:00Z", "lat": 52.46, "lon": 21.02,
//	                "fields": {"battery": 0.5}}],
//	  "want": {"state": "66697831…", "outputs": [{"input": 0, "time": "…", "lat": 52.46,
//	           "lon": 21.02, "fields": {"distance_m": 0, "speed_ms": 0, "course_deg": 0}}]}
//	}]}
package udftest

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sailstream/sailstream/telemetry"
	"github.com/sailstream/sailstream/udf"
)

// Processor is what Run checks: *udf.Module, or a native implementation.
type Processor interface {
	Process(ctx context.Context, state []byte, device string, readings []telemetry.Reading) (udf.Result, error)
}

// File is one vectors file.
type File struct {
	UDF   string `json:"udf"`
	Cases []Case `json:"cases"`
}

// Case is one vector.
type Case struct {
	Name     string    `json:"name"`
	Device   string    `json:"device"`
	State    string    `json:"state"`
	Readings []Reading `json:"readings"`
	Want     Want      `json:"want"`
}

// Reading is an input reading.
type Reading struct {
	Seq    uint64             `json:"seq"`
	Time   time.Time          `json:"time"`
	Lat    float64            `json:"lat"`
	Lon    float64            `json:"lon"`
	Fields map[string]float64 `json:"fields,omitempty"`
}

// Want is the expected result.
type Want struct {
	State   string   `json:"state"`
	Outputs []Output `json:"outputs"`
}

// Output is an expected output.
type Output struct {
	Input  int                `json:"input"`
	Time   time.Time          `json:"time"`
	Lat    float64            `json:"lat"`
	Lon    float64            `json:"lon"`
	Fields map[string]float64 `json:"fields,omitempty"`
}

// Load reads every *.json file of dir.
func Load(dir string) ([]File, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("udftest: no *.json vectors in %s", dir)
	}
	var files []File
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("udftest: %w", err)
		}
		var f File
		if err := json.Unmarshal(b, &f); err != nil {
			return nil, fmt.Errorf("udftest: %s: %w", p, err)
		}
		files = append(files, f)
	}
	return files, nil
}

// Readings converts a case's readings to what the host takes.
func (c Case) TelemetryReadings() []telemetry.Reading {
	rs := make([]telemetry.Reading, len(c.Readings))
	for i, r := range c.Readings {
		rs[i] = telemetry.Reading{Device: c.Device, Seq: r.Seq, Time: r.Time, Lat: r.Lat, Lon: r.Lon, Fields: r.Fields}
	}
	return rs
}

// Report is the outcome of Run.
type Report struct {
	Cases  int
	Failed int
	// Diffs has one readable paragraph per failed case.
	Diffs []string
}

// OK reports whether every case passed.
func (r Report) OK() bool { return r.Failed == 0 }

func (r Report) String() string {
	s := fmt.Sprintf("%d/%d cases passed", r.Cases-r.Failed, r.Cases)
	for _, d := range r.Diffs {
		s += "\n" + d
	}
	return s
}

// Run runs every case of the vectors in dir through p. The error is for
// vectors that cannot be read; mismatches are in the report.
func Run(ctx context.Context, p Processor, dir string) (Report, error) {
	files, err := Load(dir)
	if err != nil {
		return Report{}, err
	}
	var rep Report
	for _, f := range files {
		for _, c := range f.Cases {
			rep.Cases++
			if diff := check(ctx, p, c); diff != "" {
				rep.Failed++
				rep.Diffs = append(rep.Diffs, fmt.Sprintf("--- %s / %s\n%s", f.UDF, c.Name, diff))
			}
		}
	}
	return rep, nil
}

func check(ctx context.Context, p Processor, c Case) string {
	state, err := hex.DecodeString(c.State)
	if err != nil {
		return fmt.Sprintf("    bad state hex: %v", err)
	}
	res, err := p.Process(ctx, state, c.Device, c.TelemetryReadings())
	if err != nil {
		return fmt.Sprintf("    error: %v", err)
	}
	got := FromResult(res)
	return Diff(got, c.Want)
}

// FromResult turns a result into the vectors' form, to write new vectors.
func FromResult(res udf.Result) Want {
	w := Want{State: hex.EncodeToString(res.State), Outputs: []Output{}}
	for _, o := range res.Outputs {
		out := Output{Input: o.Input, Time: time.Unix(0, o.TimeNs).UTC(), Lat: o.Lat, Lon: o.Lon}
		for _, f := range o.Fields {
			if out.Fields == nil {
				out.Fields = map[string]float64{}
			}
			out.Fields[f.Name] = f.Value
		}
		w.Outputs = append(w.Outputs, out)
	}
	return w
}

// Diff describes how got differs from want, one line per difference; ""
// when they are identical.
func Diff(got, want Want) string {
	var d []string
	add := func(format string, a ...any) { d = append(d, "    "+fmt.Sprintf(format, a...)) }
	if got.State != want.State {
		add("state: got %s, want %s", orNone(got.State), orNone(want.State))
	}
	if len(got.Outputs) != len(want.Outputs) {
		add("outputs: got %d, want %d", len(got.Outputs), len(want.Outputs))
	}
	for i := range min(len(got.Outputs), len(want.Outputs)) {
		g, w := got.Outputs[i], want.Outputs[i]
		if g.Input != w.Input {
			add("output %d input: got %d, want %d", i, g.Input, w.Input)
		}
		if !g.Time.Equal(w.Time) {
			add("output %d time: got %s, want %s", i, g.Time.Format(time.RFC3339Nano), w.Time.Format(time.RFC3339Nano))
		}
		num(add, fmt.Sprintf("output %d lat", i), g.Lat, w.Lat)
		num(add, fmt.Sprintf("output %d lon", i), g.Lon, w.Lon)
		names := slices.Sorted(func(yield func(string) bool) {
			for k := range g.Fields {
				if !yield(k) {
					return
				}
			}
			for k := range w.Fields {
				if _, ok := g.Fields[k]; !ok && !yield(k) {
					return
				}
			}
		})
		for _, k := range names {
			gv, gok := g.Fields[k]
			wv, wok := w.Fields[k]
			switch {
			case !wok:
				add("output %d field %s: got %v, want none", i, k, gv)
			case !gok:
				add("output %d field %s: missing, want %v", i, k, wv)
			default:
				num(add, fmt.Sprintf("output %d field %s", i, k), gv, wv)
			}
		}
	}
	return strings.Join(d, "\n")
}

func num(add func(string, ...any), what string, got, want float64) {
	if math.Float64bits(got) != math.Float64bits(want) {
		add("%s: got %.17g, want %.17g (differ by %.3g)", what, got, want, got-want)
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
