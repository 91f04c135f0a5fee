package udf

import (
	"maps"
	"time"

	"github.com/sailstream/sailstream/geo"
	"github.com/sailstream/sailstream/telemetry"
)

// Names of the fields that map to the typed fields of telemetry.Enriched
// (see Output.Enriched).
const (
	FieldDistanceM = "distance_m"
	FieldSpeedMS   = "speed_ms"
	FieldSpeedKn   = "speed_kn"
	FieldCourseDeg = "course_deg"
)

// Info describes a loaded module.
type Info struct {
	// Name and Version come from the module's optional sailstream_v1_info
	// export; empty when it has none (a deploy manifest names it then).
	Name    string `json:"name"`
	Version string `json:"version"`
	// ABI is the ABI version the module speaks.
	ABI int `json:"abi"`
	// Size is the module's size in bytes.
	Size int `json:"size"`
}

// Result is what one call returned: the device's new state and the outputs,
// in input order.
type Result struct {
	State   []byte
	Outputs []Output
}

// Output is one record a UDF emitted.
type Output struct {
	// Input is the index in the batch of the reading this output derives
	// from; outputs come in non-decreasing Input order.
	Input int
	// TimeNs is the output's event time in Unix nanoseconds, Lat and Lon
	// its position: the input's unless the UDF changed them.
	TimeNs   int64
	Lat, Lon float64
	// Fields are the fields the UDF set, in the order it set them. They
	// share a backing array with the batch's other outputs: copy before
	// appending.
	Fields []Field
}

// Field is a named number a UDF sets on an output.
type Field struct {
	Name  string
	Value float64
}

// Enriched builds the enriched record for an output of the reading in (the
// batch's reading number o.Input), produced by the UDF info names.
//
// The UDF's fields named distance_m, speed_ms, speed_kn and course_deg fill
// the typed fields of the same JSON names; speed_kn, when the UDF does not
// set it, is speed_ms in knots. Every other field of the reading and of the
// UDF goes to Fields; the UDF's value wins over the reading's. The times the
// core measures (ReceivedAt, ProcessedAt, LatencyMS) are left for the
// caller.
func (o Output) Enriched(in telemetry.Reading, info Info) telemetry.Enriched {
	e := telemetry.Enriched{
		Device:     in.Device,
		Seq:        in.Seq,
		Time:       in.Time,
		Lat:        o.Lat,
		Lon:        o.Lon,
		UDF:        info.Name,
		UDFVersion: info.Version,
	}
	if o.TimeNs != in.Time.UnixNano() {
		e.Time = time.Unix(0, o.TimeNs).UTC()
	}
	if len(in.Fields) > 0 {
		e.Fields = maps.Clone(in.Fields)
	}
	knSet := false
	for _, f := range o.Fields {
		switch f.Name {
		case FieldDistanceM:
			e.DistanceM = f.Value
		case FieldSpeedMS:
			e.SpeedMS = f.Value
		case FieldSpeedKn:
			e.SpeedKn, knSet = f.Value, true
		case FieldCourseDeg:
			e.CourseDeg = f.Value
		default:
			if e.Fields == nil {
				e.Fields = make(map[string]float64, len(o.Fields))
			}
			e.Fields[f.Name] = f.Value
			continue
		}
		delete(e.Fields, f.Name)
	}
	if !knSet {
		e.SpeedKn = e.SpeedMS * geo.KnotsPerMS
	}
	if len(e.Fields) == 0 {
		e.Fields = nil
	}
	return e
}
