package udftest

import (
	"context"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// TestGoMath compares the ports of Go's math functions in the C and
// AssemblyScript SDKs (udf/sdk/c/gomath.h, udf/sdk/assemblyscript/
// assembly/gomath.ts) with package math itself, bit for bit, over special
// values, every range of magnitudes (including the Payne-Hanek reduction
// of sin and cos above 2^29) and random bit patterns: a UDF may call them
// with any argument, not only the speed UDF's.
func TestGoMath(t *testing.T) {
	ctx := context.Background()
	unary := map[string]func(float64) float64{
		"sin": math.Sin, "cos": math.Cos, "sincos_sin": math.Sin, "sincos_cos": math.Cos,
		"asin": math.Asin, "atan": math.Atan, "sqrt": math.Sqrt,
	}
	binary := map[string]func(float64, float64) float64{"atan2": math.Atan2, "min": math.Min, "mod": math.Mod}

	rng := rand.New(rand.NewPCG(3, 4))
	xs := []float64{0, math.Copysign(0, -1), 1, -1, 0.5, -0.5, 0.7, 0.66, 2.414213562373095, math.Pi, -math.Pi,
		math.Pi / 2, math.Pi / 4, 1 << 29, 1<<29 - 1, 1<<29 + 1, 1e10, 1e300, -1e300, math.MaxFloat64,
		math.SmallestNonzeroFloat64, 2.2250738585072014e-308, math.Inf(1), math.Inf(-1), math.NaN()}
	for range 3000 {
		e := rng.Float64()*80 - 40 // magnitudes 1e-40 .. 1e40
		xs = append(xs, math.Copysign(math.Pow(10, e)*rng.Float64(), rng.Float64()-0.5))
		xs = append(xs, rng.Float64()*4-2) // asin's domain and around
		if f := math.Float64frombits(rng.Uint64()); !math.IsNaN(f) {
			xs = append(xs, f)
		}
	}
	ds := []int64{0, 1, -1, 999999999, 1e9, -1e9, math.MaxInt64, math.MinInt64, int64(time.Hour)}
	for range 1000 {
		ds = append(ds, int64(rng.Uint64()), rng.Int64N(int64(10*time.Second))-int64(5*time.Second))
	}

	for _, g := range []struct{ lang, dir string }{{"assemblyscript", "testdata/gomath/as"}, {"c", "testdata/gomath/c"}} {
		t.Run(g.lang, func(t *testing.T) {
			wasm := buildGuest(t, g.lang, g.dir)
			r := wazero.NewRuntime(ctx)
			defer r.Close(ctx)
			mod, err := r.Instantiate(ctx, wasm)
			if err != nil {
				t.Fatal(err)
			}
			call := func(name string, args ...uint64) float64 {
				res, err := mod.ExportedFunction(name).Call(ctx, args...)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				return api.DecodeF64(res[0])
			}
			fails := 0
			check := func(what string, got, want float64) {
				if math.Float64bits(got) == math.Float64bits(want) || (math.IsNaN(got) && math.IsNaN(want)) {
					return
				}
				if fails++; fails <= 20 {
					t.Errorf("%s = %v (%#x), want %v (%#x)", what, got, math.Float64bits(got), want, math.Float64bits(want))
				}
			}
			for name, f := range unary {
				for _, x := range xs {
					check(name+"("+ftoa(x)+")", call(name, api.EncodeF64(x)), f(x))
				}
			}
			for name, f := range binary {
				for i, x := range xs {
					for _, y := range []float64{xs[(i*7+3)%len(xs)], 360, -1, 0, 1e-300, math.Inf(1)} {
						check(name+"("+ftoa(x)+", "+ftoa(y)+")", call(name, api.EncodeF64(x), api.EncodeF64(y)), f(x, y))
					}
				}
			}
			for _, d := range ds {
				check("seconds("+time.Duration(d).String()+")", call("seconds", api.EncodeI64(d)), time.Duration(d).Seconds())
			}
		})
	}
}

func ftoa(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
