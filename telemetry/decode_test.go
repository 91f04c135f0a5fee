package telemetry_test

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/sailstream/sailstream/telemetry"
)

// decodeNow is the validating clock of the decode tests.
var decodeNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// sentinels are every error Decode may wrap.
var sentinels = []error{
	telemetry.ErrPayloadTooLarge, telemetry.ErrMalformed, telemetry.ErrInvalidDevice,
	telemetry.ErrDeviceMismatch, telemetry.ErrInvalidPosition, telemetry.ErrInvalidTime,
}

// padTo pads a JSON object with trailing spaces to exactly n bytes.
func padTo(s string, n int) string { return s + strings.Repeat(" ", n-len(s)) }

type decodeCase struct {
	name    string
	device  string // topic / key device
	payload string
	wantErr error // nil: valid
	want    telemetry.Reading
}

func decodeCases() []decodeCase {
	ok := `{"seq":7,"time":"2026-06-01T11:59:59.125Z","lat":52.46,"lon":21.02}`
	okReading := telemetry.Reading{Device: "boat-1", Seq: 7, Time: time.Date(2026, 6, 1, 11, 59, 59, 125e6, time.UTC), Lat: 52.46, Lon: 21.02}
	withFields := okReading
	withFields.Fields = map[string]float64{"battery": 0.93, "heel": -4.5}
	withDev := func(dev, rest string) string { return `{"device":"` + dev + `",` + rest[1:] }
	at := func(ts string) string {
		return `{"seq":1,"time":"` + ts + `","lat":52.46,"lon":21.02}`
	}
	at1 := okReading
	at1.Seq = 1
	manyFields := `{"seq":1,"time":"2026-06-01T11:00:00Z","lat":1,"lon":1,"fields":{`
	for i := range telemetry.MaxFields + 1 {
		if i > 0 {
			manyFields += ","
		}
		manyFields += fmt.Sprintf(`"f%d":%d`, i, i)
	}
	manyFields += `}}`

	return []decodeCase{
		// Valid.
		{name: "device from the topic", device: "boat-1", payload: ok, want: okReading},
		{name: "device in payload and topic agree", device: "boat-1", payload: withDev("boat-1", ok), want: okReading},
		{name: "device only in payload", device: "", payload: withDev("boat-1", ok), want: okReading},
		{name: "fields", device: "boat-1", payload: `{"seq":7,"time":"2026-06-01T11:59:59.125Z","lat":52.46,"lon":21.02,"fields":{"battery":0.93,"heel":-4.5}}`, want: withFields},
		{name: "coordinates as strings", device: "boat-1", payload: `{"seq":7,"time":"2026-06-01T11:59:59.125Z","lat":"52.46","lon":" 21.02 "}`, want: okReading},
		{name: "time with an offset", device: "boat-1", payload: `{"seq":7,"time":"2026-06-01T13:59:59.125+02:00","lat":52.46,"lon":21.02}`, want: okReading},
		{name: "exactly the allowed future skew", device: "boat-1", payload: at(decodeNow.Add(time.Hour).Format(time.RFC3339)),
			want: telemetry.Reading{Device: "boat-1", Seq: 1, Time: decodeNow.Add(time.Hour), Lat: 52.46, Lon: 21.02}},
		{name: "exactly 2000-01-01", device: "boat-1", payload: at("2000-01-01T00:00:00Z"),
			want: telemetry.Reading{Device: "boat-1", Seq: 1, Time: telemetry.EarliestTime, Lat: 52.46, Lon: 21.02}},
		{name: "poles and antimeridian", device: "b", payload: `{"seq":0,"time":"2026-06-01T11:59:59.125Z","lat":-90,"lon":180}`,
			want: telemetry.Reading{Device: "b", Time: okReading.Time, Lat: -90, Lon: 180}},
		{name: "all device id characters", device: "Az09._-", payload: ok,
			want: telemetry.Reading{Device: "Az09._-", Seq: 7, Time: okReading.Time, Lat: 52.46, Lon: 21.02}},
		{name: "64-character device id", device: strings.Repeat("d", 64), payload: ok,
			want: telemetry.Reading{Device: strings.Repeat("d", 64), Seq: 7, Time: okReading.Time, Lat: 52.46, Lon: 21.02}},
		{name: "exactly 64 KiB", device: "boat-1", payload: padTo(ok, telemetry.MaxPayloadSize), want: okReading},

		// Size.
		{name: "64 KiB plus one byte", device: "boat-1", payload: padTo(ok, telemetry.MaxPayloadSize+1), wantErr: telemetry.ErrPayloadTooLarge},
		{name: "1 MiB", device: "boat-1", payload: padTo(ok, 1<<20), wantErr: telemetry.ErrPayloadTooLarge},

		// Malformed.
		{name: "empty", device: "boat-1", payload: ``, wantErr: telemetry.ErrMalformed},
		{name: "bad JSON", device: "boat-1", payload: `{"seq":1,"time":`, wantErr: telemetry.ErrMalformed},
		{name: "not an object", device: "boat-1", payload: `[1,2,3]`, wantErr: telemetry.ErrMalformed},
		{name: "null", device: "boat-1", payload: `null`, wantErr: telemetry.ErrMalformed},
		{name: "bare NaN", device: "boat-1", payload: `{"seq":1,"time":"2026-06-01T11:00:00Z","lat":NaN,"lon":21.02}`, wantErr: telemetry.ErrMalformed},
		{name: "coordinate string not a number", device: "boat-1", payload: `{"seq":1,"time":"2026-06-01T11:00:00Z","lat":"north","lon":21.02}`, wantErr: telemetry.ErrMalformed},
		{name: "coordinate of the wrong type", device: "boat-1", payload: `{"seq":1,"time":"2026-06-01T11:00:00Z","lat":true,"lon":21.02}`, wantErr: telemetry.ErrMalformed},
		{name: "trailing object", device: "boat-1", payload: ok + ok, wantErr: telemetry.ErrMalformed},
		{name: "trailing garbage", device: "boat-1", payload: ok + ` x`, wantErr: telemetry.ErrMalformed},
		{name: "unknown field", device: "boat-1", payload: `{"seq":1,"time":"2026-06-01T11:00:00Z","lat":1,"lon":1,"speed":3}`, wantErr: telemetry.ErrMalformed},
		{name: "missing seq", device: "boat-1", payload: `{"time":"2026-06-01T11:00:00Z","lat":1,"lon":1}`, wantErr: telemetry.ErrMalformed},
		{name: "negative seq", device: "boat-1", payload: `{"seq":-1,"time":"2026-06-01T11:00:00Z","lat":1,"lon":1}`, wantErr: telemetry.ErrMalformed},
		{name: "field not a number", device: "boat-1", payload: `{"seq":1,"time":"2026-06-01T11:00:00Z","lat":1,"lon":1,"fields":{"battery":"full"}}`, wantErr: telemetry.ErrMalformed},
		{name: "too many fields", device: "boat-1", payload: manyFields, wantErr: telemetry.ErrMalformed},

		// Position.
		{name: "NaN as a string", device: "boat-1", payload: `{"seq":1,"time":"2026-06-01T11:00:00Z","lat":"NaN","lon":21.02}`, wantErr: telemetry.ErrInvalidPosition},
		{name: "Infinity as a string", device: "boat-1", payload: `{"seq":1,"time":"2026-06-01T11:00:00Z","lat":52,"lon":"-Infinity"}`, wantErr: telemetry.ErrInvalidPosition},
		{name: "latitude above 90", device: "boat-1", payload: `{"seq":1,"time":"2026-06-01T11:00:00Z","lat":90.0001,"lon":21.02}`, wantErr: telemetry.ErrInvalidPosition},
		{name: "latitude below -90", device: "boat-1", payload: `{"seq":1,"time":"2026-06-01T11:00:00Z","lat":-91,"lon":21.02}`, wantErr: telemetry.ErrInvalidPosition},
		{name: "longitude above 180", device: "boat-1", payload: `{"seq":1,"time":"2026-06-01T11:00:00Z","lat":52,"lon":180.5}`, wantErr: telemetry.ErrInvalidPosition},
		{name: "longitude below -180", device: "boat-1", payload: `{"seq":1,"time":"2026-06-01T11:00:00Z","lat":52,"lon":-181}`, wantErr: telemetry.ErrInvalidPosition},
		{name: "huge exponent", device: "boat-1", payload: `{"seq":1,"time":"2026-06-01T11:00:00Z","lat":1e308,"lon":1}`, wantErr: telemetry.ErrInvalidPosition},
		{name: "missing lat", device: "boat-1", payload: `{"seq":1,"time":"2026-06-01T11:00:00Z","lon":21.02}`, wantErr: telemetry.ErrInvalidPosition},
		{name: "missing lon", device: "boat-1", payload: `{"seq":1,"time":"2026-06-01T11:00:00Z","lat":52}`, wantErr: telemetry.ErrInvalidPosition},

		// Time.
		{name: "missing time", device: "boat-1", payload: `{"seq":1,"lat":52,"lon":21}`, wantErr: telemetry.ErrInvalidTime},
		{name: "time not RFC 3339", device: "boat-1", payload: at("2026-06-01 11:00:00"), wantErr: telemetry.ErrInvalidTime},
		{name: "time as a number", device: "boat-1", payload: `{"seq":1,"time":1780000000,"lat":52,"lon":21}`, wantErr: telemetry.ErrMalformed},
		{name: "far future", device: "boat-1", payload: at(decodeNow.Add(time.Hour + time.Second).Format(time.RFC3339)), wantErr: telemetry.ErrInvalidTime},
		{name: "year 2100", device: "boat-1", payload: at("2100-01-01T00:00:00Z"), wantErr: telemetry.ErrInvalidTime},
		{name: "before 2000", device: "boat-1", payload: at("1999-12-31T23:59:59.999Z"), wantErr: telemetry.ErrInvalidTime},
		{name: "Unix epoch", device: "boat-1", payload: at("1970-01-01T00:00:00Z"), wantErr: telemetry.ErrInvalidTime},

		// Device ids.
		{name: "plus in topic device", device: "boat+1", payload: ok, wantErr: telemetry.ErrInvalidDevice},
		{name: "hash in topic device", device: "boat#1", payload: ok, wantErr: telemetry.ErrInvalidDevice},
		{name: "slash in topic device", device: "boat/1", payload: ok, wantErr: telemetry.ErrInvalidDevice},
		{name: "plus in payload device", device: "", payload: withDev("boat+1", ok), wantErr: telemetry.ErrInvalidDevice},
		{name: "hash in payload device", device: "", payload: withDev("#", ok), wantErr: telemetry.ErrInvalidDevice},
		{name: "slash in payload device", device: "", payload: withDev("a/b", ok), wantErr: telemetry.ErrInvalidDevice},
		{name: "bad payload device under a good topic", device: "boat-1", payload: withDev("boat/1", ok), wantErr: telemetry.ErrInvalidDevice},
		{name: "space", device: "boat 1", payload: ok, wantErr: telemetry.ErrInvalidDevice},
		{name: "non-ASCII", device: "łódź", payload: ok, wantErr: telemetry.ErrInvalidDevice},
		{name: "65 characters", device: strings.Repeat("d", 65), payload: ok, wantErr: telemetry.ErrInvalidDevice},
		{name: "no device anywhere", device: "", payload: ok, wantErr: telemetry.ErrInvalidDevice},
		{name: "empty payload device", device: "", payload: withDev("", ok), wantErr: telemetry.ErrInvalidDevice},

		// Mismatch.
		{name: "payload names another device", device: "boat-1", payload: withDev("boat-2", ok), wantErr: telemetry.ErrDeviceMismatch},
		{name: "case differs", device: "boat-1", payload: withDev("Boat-1", ok), wantErr: telemetry.ErrDeviceMismatch},
	}
}

func TestDecode(t *testing.T) {
	for _, tt := range decodeCases() {
		t.Run(tt.name, func(t *testing.T) {
			got, err := telemetry.Decode(tt.device, []byte(tt.payload), decodeNow)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Decode error = %v, want one wrapping %q", err, tt.wantErr)
				}
				for _, s := range sentinels {
					if s != tt.wantErr && errors.Is(err, s) {
						t.Errorf("error %v also wraps %q", err, s)
					}
				}
				if !strings.HasPrefix(err.Error(), tt.wantErr.Error()) {
					t.Errorf("error %q does not start with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode error = %v, want nil", err)
			}
			if !sameReading(got, tt.want) {
				t.Fatalf("Decode = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestReason(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("x: %w", telemetry.ErrPayloadTooLarge), telemetry.ReasonPayloadTooLarge},
		{fmt.Errorf("x: %w", telemetry.ErrMalformed), telemetry.ReasonMalformed},
		{fmt.Errorf("x: %w", telemetry.ErrInvalidDevice), telemetry.ReasonInvalidDevice},
		{fmt.Errorf("x: %w", telemetry.ErrDeviceMismatch), telemetry.ReasonDeviceMismatch},
		{fmt.Errorf("x: %w", telemetry.ErrInvalidPosition), telemetry.ReasonInvalidPosition},
		{fmt.Errorf("x: %w", telemetry.ErrInvalidTime), telemetry.ReasonInvalidTime},
		{fmt.Errorf("x: %w", telemetry.ErrBadTopic), telemetry.ReasonBadTopic},
		{errors.New("something else"), telemetry.ReasonOther},
	}
	for _, tt := range tests {
		if got := telemetry.Reason(tt.err); got != tt.want {
			t.Errorf("Reason(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
	// Every decode failure maps to its own reason, never "other".
	for _, tt := range decodeCases() {
		if tt.wantErr == nil {
			continue
		}
		_, err := telemetry.Decode(tt.device, []byte(tt.payload), decodeNow)
		if got := telemetry.Reason(err); got == telemetry.ReasonOther || got != telemetry.Reason(tt.wantErr) {
			t.Errorf("%s: Reason = %q, want %q", tt.name, got, telemetry.Reason(tt.wantErr))
		}
	}
}

// sameReading compares readings by instant (not location) and treats a nil
// and an empty Fields map alike, as the wire format does.
func sameReading(a, b telemetry.Reading) bool {
	return a.Device == b.Device && a.Seq == b.Seq && a.Time.Equal(b.Time) &&
		a.Lat == b.Lat && a.Lon == b.Lon && maps.Equal(a.Fields, b.Fields)
}

// FuzzDecode checks that Decode never panics and either fails with an error
// wrapping one of the sentinels or returns a Reading that validates and
// survives Encode and Decode unchanged.
func FuzzDecode(f *testing.F) {
	for _, tt := range decodeCases() {
		if len(tt.payload) <= 4096 {
			f.Add(tt.device, []byte(tt.payload))
		}
	}
	f.Fuzz(func(t *testing.T, device string, payload []byte) {
		r, err := telemetry.Decode(device, payload, decodeNow)
		if err != nil {
			for _, s := range sentinels {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("Decode(%q, %q) error %v wraps no sentinel", device, payload, err)
		}
		if err := r.Validate(decodeNow); err != nil {
			t.Fatalf("Decode accepted %q but Validate says %v", payload, err)
		}
		b, err := telemetry.Encode(r)
		if err != nil {
			t.Fatalf("Encode(%+v): %v", r, err)
		}
		r2, err := telemetry.Decode(r.Device, b, decodeNow)
		if err != nil {
			t.Fatalf("Decode(Encode(%+v)) = %v (encoded %s)", r, err, b)
		}
		if !sameReading(r, r2) {
			t.Fatalf("round trip changed the reading:\n was %+v\n now %+v\n via %s", r, r2, b)
		}
	})
}
