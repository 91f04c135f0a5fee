package telemetry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// MaxPayloadSize is the largest payload sailstream accepts from a device.
const MaxPayloadSize = 64 << 10

// Bounds on a sane event time: not before EarliestTime, and not more than
// MaxFutureSkew ahead of the validating clock.
var (
	EarliestTime  = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxFutureSkew = time.Hour
)

// MaxFields bounds the number of optional fields in one reading.
const MaxFields = 64

// wireReading mirrors Reading on the wire. Coordinates are decoded by hand so
// that a tracker sending "NaN" or "Infinity" as a string gets a precise error
// rather than a generic type mismatch.
type wireReading struct {
	Device *string            `json:"device"`
	Seq    *uint64            `json:"seq"`
	Time   *string            `json:"time"`
	Lat    *coordinate        `json:"lat"`
	Lon    *coordinate        `json:"lon"`
	Fields map[string]float64 `json:"fields"`
}

type coordinate float64

func (c *coordinate) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return fmt.Errorf("coordinate %q is not a number", s)
		}
		*c = coordinate(f)
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*c = coordinate(f)
	return nil
}

// Decode parses a native JSON payload published on behalf of device (the id
// taken from the MQTT topic or the Kafka key; empty when unknown) and
// validates it against now. The returned error wraps one of the Err*
// sentinels.
func Decode(device string, payload []byte, now time.Time) (Reading, error) {
	if len(payload) > MaxPayloadSize {
		return Reading{}, fmt.Errorf("%w: %d bytes, limit %d", ErrPayloadTooLarge, len(payload), MaxPayloadSize)
	}
	var w wireReading
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return Reading{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if dec.More() {
		return Reading{}, fmt.Errorf("%w: trailing data after the JSON object", ErrMalformed)
	}
	var r Reading
	switch {
	case w.Device != nil && device != "" && *w.Device != device:
		if err := ValidateDevice(*w.Device); err != nil {
			return Reading{}, err
		}
		return Reading{}, fmt.Errorf("%w: payload says %q, topic says %q", ErrDeviceMismatch, *w.Device, device)
	case w.Device != nil:
		r.Device = *w.Device
	default:
		r.Device = device
	}
	if w.Seq == nil {
		return Reading{}, fmt.Errorf("%w: missing \"seq\"", ErrMalformed)
	}
	r.Seq = *w.Seq
	if w.Time == nil {
		return Reading{}, fmt.Errorf("%w: missing \"time\"", ErrInvalidTime)
	}
	t, err := time.Parse(time.RFC3339Nano, *w.Time)
	if err != nil {
		return Reading{}, fmt.Errorf("%w: %q is not RFC 3339", ErrInvalidTime, *w.Time)
	}
	r.Time = t
	if w.Lat == nil || w.Lon == nil {
		return Reading{}, fmt.Errorf("%w: missing \"lat\" or \"lon\"", ErrInvalidPosition)
	}
	r.Lat, r.Lon = float64(*w.Lat), float64(*w.Lon)
	r.Fields = w.Fields
	return r, r.Validate(now)
}

// Encode returns the native JSON wire form of r.
func Encode(r Reading) ([]byte, error) {
	if math.IsNaN(r.Lat) || math.IsNaN(r.Lon) || math.IsInf(r.Lat, 0) || math.IsInf(r.Lon, 0) {
		return nil, fmt.Errorf("%w: coordinates must be finite to encode", ErrInvalidPosition)
	}
	r.Time = r.Time.UTC()
	return json.Marshal(r)
}

// ValidateDevice checks a device id against [A-Za-z0-9._-]{1,64}.
func ValidateDevice(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty", ErrInvalidDevice)
	}
	if len(id) > 64 {
		return fmt.Errorf("%w: %d characters, at most 64", ErrInvalidDevice, len(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %q has %q at byte %d; allowed are A-Z a-z 0-9 . _ -", ErrInvalidDevice, id, c, i)
		}
	}
	return nil
}

// Validate checks r; now is the clock the event time is judged against.
func (r Reading) Validate(now time.Time) error {
	if err := ValidateDevice(r.Device); err != nil {
		return err
	}
	if err := validateCoord("latitude", r.Lat, 90); err != nil {
		return err
	}
	if err := validateCoord("longitude", r.Lon, 180); err != nil {
		return err
	}
	if r.Time.IsZero() {
		return fmt.Errorf("%w: missing", ErrInvalidTime)
	}
	if r.Time.Before(EarliestTime) {
		return fmt.Errorf("%w: %s is before %s", ErrInvalidTime, r.Time.Format(time.RFC3339), EarliestTime.Format(time.RFC3339))
	}
	if r.Time.After(now.Add(MaxFutureSkew)) {
		return fmt.Errorf("%w: %s is more than %s in the future (device clock wrong?)", ErrInvalidTime, r.Time.Format(time.RFC3339), MaxFutureSkew)
	}
	if len(r.Fields) > MaxFields {
		return fmt.Errorf("%w: %d fields, at most %d", ErrMalformed, len(r.Fields), MaxFields)
	}
	return nil
}

func validateCoord(name string, v, limit float64) error {
	switch {
	case math.IsNaN(v):
		return fmt.Errorf("%w: %s is NaN", ErrInvalidPosition, name)
	case math.IsInf(v, 0):
		return fmt.Errorf("%w: %s is infinite", ErrInvalidPosition, name)
	case v < -limit || v > limit:
		return fmt.Errorf("%w: %s %g is outside [-%g, %g]", ErrInvalidPosition, name, v, limit, limit)
	}
	return nil
}
