package udftest

import (
	"context"

	"github.com/sailstream/sailstream/motion"
	"github.com/sailstream/sailstream/telemetry"
	"github.com/sailstream/sailstream/udf"
	"github.com/sailstream/sailstream/udf/examples/lastfix"
)

// NativeSpeed is the speed UDF (udf/examples/speed) as native Go: the
// reference the vectors and the benchmarks compare the guests with. Same
// motion code, same state format.
type NativeSpeed struct{}

// Process implements Processor.
func (NativeSpeed) Process(_ context.Context, state []byte, _ string, readings []telemetry.Reading) (udf.Result, error) {
	last, ok := lastfix.Decode(state)
	if len(readings) == 0 {
		return udf.Result{State: state}, nil
	}
	res := udf.Result{Outputs: make([]udf.Output, len(readings))}
	fields := make([]udf.Field, 3*len(readings))
	for i := range readings {
		r := &readings[i]
		cur := motion.Fix{TimeNs: r.Time.UnixNano(), Lat: r.Lat, Lon: r.Lon}
		var m motion.Movement
		if ok {
			m = motion.Step(last.Fix, cur)
		}
		f := fields[3*i : 3*i+3 : 3*i+3]
		f[0] = udf.Field{Name: udf.FieldDistanceM, Value: m.DistanceM}
		f[1] = udf.Field{Name: udf.FieldSpeedMS, Value: m.SpeedMS}
		f[2] = udf.Field{Name: udf.FieldCourseDeg, Value: m.CourseDeg}
		res.Outputs[i] = udf.Output{Input: i, TimeNs: cur.TimeNs, Lat: r.Lat, Lon: r.Lon, Fields: f}
		last, ok = lastfix.Last{Seq: r.Seq, Fix: cur}, true
	}
	res.State = last.Append(nil)
	return res, nil
}
