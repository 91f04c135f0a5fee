package core

import (
	"time"

	"github.com/sailstream/sailstream/telemetry"
)

// verdict is what the event-time check decided about a decoded reading.
type verdict int

const (
	accepted        verdict = iota
	behindWatermark         // older than its partition's watermark
	outOfOrder              // not after the device's last accepted reading
)

func (v verdict) reason() string {
	switch v {
	case behindWatermark:
		return telemetry.ReasonBehindWatermark
	case outOfOrder:
		return telemetry.ReasonOutOfOrder
	}
	return ""
}

// partitionState is the event-time and per-device state of one partition of
// the raw topic. It is not safe for concurrent use.
type partitionState struct {
	maxOutOfOrder time.Duration
	maxEvent      time.Time                    // largest accepted event time; zero before the first
	last          map[string]telemetry.Reading // device → last accepted reading (without Fields)
	// udf holds each device's UDF state bytes. It lives and dies with the
	// partition (dropped on revocation, rebuilt by the next owner from
	// the readings it consumes).
	//
	// Seam for issue 4: deviceUDF/setDeviceUDF are the only accessors, so
	// a state changelog (produce on set, restore on assignment) plugs in
	// here without touching the processing.
	udf map[string]*deviceUDF
}

// deviceUDF is the state a device's UDFs returned last: the live UDF's
// (owned by the UDF name, kept across versions so a swap keeps it) and the
// shadow's (owned by one shadow version, started from the live state).
type deviceUDF struct {
	name  string // the UDF the live state belongs to
	state []byte

	shadowKey   string // version key + version of the shadow the state belongs to
	shadowState []byte
}

func newPartitionState(maxOutOfOrder time.Duration) *partitionState {
	return &partitionState{maxOutOfOrder: maxOutOfOrder, last: make(map[string]telemetry.Reading), udf: make(map[string]*deviceUDF)}
}

// deviceUDF returns device's UDF state, creating it empty.
func (s *partitionState) deviceUDF(device string) *deviceUDF {
	d := s.udf[device]
	if d == nil {
		d = &deviceUDF{}
		s.udf[device] = d
	}
	return d
}

// liveState returns the state to hand UDF name: the device's, unless
// another UDF produced it (a route change starts the new UDF afresh).
func (d *deviceUDF) liveState(name string) []byte {
	if d.name != name {
		return nil
	}
	return d.state
}

// setLive keeps the state UDF name returned (udf.Result.State is the
// host's own copy, not guest memory).
func (d *deviceUDF) setLive(name string, state []byte) {
	d.name = name
	d.state = state
}

// watermark returns the partition's watermark; ok is false before the first
// accepted reading.
func (s *partitionState) watermark() (wm time.Time, ok bool) {
	if s.maxEvent.IsZero() {
		return time.Time{}, false
	}
	return s.maxEvent.Add(-s.maxOutOfOrder), true
}

// admit decides whether r is on time. A reading behind the watermark is
// behindWatermark; one whose event time is not after its device's last
// accepted reading (older, or a redelivered duplicate) is outOfOrder. lateBy
// says by how much. An accepted reading becomes the device's last reading and
// may advance the watermark; prev is the device's previous accepted reading,
// nil for its first.
func (s *partitionState) admit(r telemetry.Reading) (v verdict, lateBy time.Duration, prev *telemetry.Reading) {
	if wm, ok := s.watermark(); ok && r.Time.Before(wm) {
		return behindWatermark, wm.Sub(r.Time), nil
	}
	p, seen := s.last[r.Device]
	if seen && !r.Time.After(p.Time) {
		return outOfOrder, p.Time.Sub(r.Time), nil
	}
	s.last[r.Device] = telemetry.Reading{Device: r.Device, Seq: r.Seq, Time: r.Time, Lat: r.Lat, Lon: r.Lon}
	if r.Time.After(s.maxEvent) {
		s.maxEvent = r.Time
	}
	if !seen {
		return accepted, 0, nil
	}
	return accepted, 0, &p
}
