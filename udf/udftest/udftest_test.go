package udftest

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sailstream/sailstream/udf"
	"github.com/sailstream/sailstream/udf/internal/guestbuild"
)

var update = flag.Bool("update", false, "rewrite the expected results in ../testdata/speed from the native reference")

const speedVectors = "../testdata/speed"

var (
	engine    *udf.Engine
	speedWasm []byte
)

func TestMain(m *testing.M) {
	flag.Parse()
	ctx := context.Background()
	var err error
	if engine, err = udf.NewEngine(udf.Config{CacheDir: filepath.Join(os.TempDir(), "sailstream-udf-test-cache")}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if speedWasm, err = guestbuild.Go(ctx, "../examples/speed"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	engine.Close(ctx)
	os.Exit(code)
}

// TestUpdate regenerates the speed vectors' expected results with -update.
func TestUpdate(t *testing.T) {
	if !*update {
		t.Skip("run with -update to regenerate")
	}
	path := filepath.Join(speedVectors, "speed.json")
	files, err := Load(speedVectors)
	if err != nil {
		t.Fatal(err)
	}
	f := files[0]
	for i, c := range f.Cases {
		state := mustHex(t, c.State)
		res, err := NativeSpeed{}.Process(context.Background(), state, c.Device, c.TelemetryReadings())
		if err != nil {
			t.Fatal(err)
		}
		f.Cases[i].Want = FromResult(res)
	}
	b, _ := json.MarshalIndent(f, "", " ")
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSpeedVectors(t *testing.T) {
	ctx := context.Background()
	mod, err := engine.Load(ctx, speedWasm, udf.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer mod.Close(ctx)
	for name, p := range map[string]Processor{"native": NativeSpeed{}, "go guest": mod} {
		t.Run(name, func(t *testing.T) {
			rep, err := Run(ctx, p, speedVectors)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Cases < 10 || !rep.OK() {
				t.Fatal(rep)
			}
		})
	}
}

// TestDiffIsReadable: a wrong implementation fails with a diff that names
// the case, the output and the field.
func TestDiffIsReadable(t *testing.T) {
	rep, err := Run(context.Background(), wrongSpeed{}, speedVectors)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() {
		t.Fatal("a wrong UDF passed")
	}
	s := rep.String()
	for _, want := range []string{"--- speed / due north 0.001 degree in 10 s", "output 1 field speed_ms: got", "want"} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q:\n%s", want, s)
		}
	}
	t.Log(s)
}

// wrongSpeed is NativeSpeed off by 1% in speed.
type wrongSpeed struct{ NativeSpeed }

func (w wrongSpeed) Process(ctx context.Context, state []byte, dev string, rs []telemetryReading) (udf.Result, error) {
	res, err := w.NativeSpeed.Process(ctx, state, dev, rs)
	for _, o := range res.Outputs {
		for i := range o.Fields {
			if o.Fields[i].Name == udf.FieldSpeedMS {
				o.Fields[i].Value *= 1.01
			}
		}
	}
	return res, err
}
