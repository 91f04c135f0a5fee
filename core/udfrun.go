package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/telemetry"
	"github.com/sailstream/sailstream/udf"
)

// pendingReading is an accepted reading waiting for its device's batch.
type pendingReading struct {
	rec *kgo.Record
	r   telemetry.Reading
}

// deviceBatch is one device's accepted readings of one poll, in event order.
type deviceBatch struct {
	device string
	items  []pendingReading
}

// runDevice runs the device's UDF once on its batch and appends the records
// to produce: enriched outputs, DLQ records for the readings the UDF failed
// on, shadow comparisons. It returns an error only when ctx ended or a
// module was closed under it, never for the guest's faults.
func (p *Processor) runDevice(ctx context.Context, tbl *table, st *partitionState, b deviceBatch, now time.Time, out []*kgo.Record) ([]*kgo.Record, error) {
	bind := tbl.resolve(b.device)
	v := bind.live
	ds := st.deviceUDF(b.device)
	state := ds.liveState(v.info.Name)
	readings := make([]telemetry.Reading, len(b.items))
	for i, it := range b.items {
		readings[i] = it.r
	}

	start := time.Now()
	res, err := v.mod.Process(ctx, state, b.device, readings)
	p.m.udfCallSeconds.WithLabelValues(v.info.Name, v.info.Version, "live").Observe(time.Since(start).Seconds())
	p.m.udfCalls.WithLabelValues(v.info.Name, v.info.Version).Inc()
	var failed []udf.ReadingError
	if err != nil {
		var ce *udf.CallError
		if !errors.As(err, &ce) {
			return out, fmt.Errorf("core: udf %s %s: %w", v.info.Name, v.info.Version, err)
		}
		p.m.udfFailures.WithLabelValues(v.info.Name, udfReason(err)).Inc()
		p.cfg.Logger.Warn("udf failed on a batch; isolating the poison readings", "udf", v.info.Name,
			"version", v.info.Version, "device", b.device, "readings", len(readings), "err", err)
		res, failed, err = v.mod.Isolate(ctx, state, b.device, readings)
		if err != nil {
			return out, fmt.Errorf("core: udf %s %s: isolating: %w", v.info.Name, v.info.Version, err)
		}
		p.health.record(p, v, false)
	} else {
		p.health.record(p, v, true)
	}
	if bind.shadow != nil {
		out = p.runShadow(ctx, bind, ds, state, b, readings, res.Outputs, now, out)
	} else if ds.shadowKey != "" {
		// The shadow ended: a shadow deployed again later starts afresh
		// from the live state.
		ds.shadowKey, ds.shadowState = "", nil
	}
	ds.setLive(v.info.Name, res.State)

	for _, f := range failed {
		reason := udfReason(f.Err)
		p.m.dlq.WithLabelValues(reason).Inc()
		out = append(out, p.udfDLQRecord(b.items[f.Index].rec, reason, f.Err, v))
	}
	for _, o := range res.Outputs {
		it := b.items[o.Input]
		e := o.Enriched(it.r, v.info)
		e.Time = e.Time.UTC()
		e.ProcessedAt = now.UTC()
		if at, ok := receivedAt(it.rec.Headers); ok {
			lat := now.Sub(at)
			e.ReceivedAt = at.UTC()
			e.LatencyMS = float64(lat) / float64(time.Millisecond)
			p.m.latency.Observe(max(lat, 0).Seconds())
		}
		value, err := json.Marshal(e)
		if err != nil {
			// Not expected (outputs are checked finite), but never drop.
			p.m.dlq.WithLabelValues(telemetry.ReasonOther).Inc()
			out = append(out, p.dlqRecord(it.rec, telemetry.ReasonOther, fmt.Errorf("encoding enriched reading: %w", err)))
			continue
		}
		p.m.enriched.Inc()
		out = append(out, &kgo.Record{Topic: p.cfg.Topics.Enriched, Key: []byte(b.device), Value: value})
	}
	return out, nil
}

// udfReason maps a UDF call error to the DLQ reason code.
func udfReason(err error) string {
	switch {
	case errors.Is(err, udf.ErrTimeout):
		return telemetry.ReasonUDFTimeout
	case errors.Is(err, udf.ErrMemoryLimit):
		return telemetry.ReasonUDFMemory
	case errors.Is(err, udf.ErrMalformedOutput):
		return telemetry.ReasonUDFOutput
	case errors.Is(err, udf.ErrGuest):
		return telemetry.ReasonUDFError
	}
	return telemetry.ReasonUDFTrap
}

// maxUDFErrorHeader leaves room for the guest's stderr tail (1 KiB) after
// the error itself.
const maxUDFErrorHeader = 3 * maxErrorHeader

func (p *Processor) udfDLQRecord(rec *kgo.Record, reason string, err error, v *version) *kgo.Record {
	h := copyHeaders(rec.Headers, 5)
	h = append(h,
		kgo.RecordHeader{Key: telemetry.HeaderReason, Value: []byte(reason)},
		kgo.RecordHeader{Key: telemetry.HeaderError, Value: []byte(truncate(err.Error(), maxUDFErrorHeader))},
		kgo.RecordHeader{Key: telemetry.HeaderStage, Value: []byte(stage)},
		kgo.RecordHeader{Key: telemetry.HeaderUDF, Value: []byte(v.info.Name)},
		kgo.RecordHeader{Key: telemetry.HeaderUDFVersion, Value: []byte(v.info.Version)},
	)
	// Decoded readings are at most telemetry.MaxPayloadSize: the value
	// fits byte-exact.
	return &kgo.Record{Topic: p.cfg.Topics.DLQ, Key: rec.Key, Value: rec.Value, Headers: h}
}

// health tracks the recent batches of every UDF version this instance runs
// and quarantines the ones that keep failing. Used by the processing loop
// only.
type health struct {
	after  int // consecutive failures; < 0 disables
	window int
	ratio  float64
	byKey  map[string]*versionHealth
}

type versionHealth struct {
	consecutive int
	ring        []bool // true = failed
	next, n     int
	fails       int
	quarantined bool
}

func newHealth(cfg Config) *health {
	return &health{after: cfg.QuarantineAfter, window: cfg.QuarantineWindow, ratio: cfg.QuarantineRatio, byKey: map[string]*versionHealth{}}
}

// record notes one batch of v and quarantines v when it keeps failing. The
// builtin is never quarantined: it is what everything falls back to.
func (h *health) record(p *Processor, v *version, ok bool) {
	if h.after < 0 || v.builtin() {
		return
	}
	s := h.byKey[v.key]
	if s == nil {
		s = &versionHealth{ring: make([]bool, h.window)}
		h.byKey[v.key] = s
	}
	if s.quarantined {
		return
	}
	if s.n == len(s.ring) && s.ring[s.next] {
		s.fails--
	}
	s.ring[s.next] = !ok
	s.next = (s.next + 1) % len(s.ring)
	s.n = min(s.n+1, len(s.ring))
	if ok {
		s.consecutive = 0
		return
	}
	s.fails++
	s.consecutive++
	var why string
	switch {
	case s.consecutive >= h.after:
		why = fmt.Sprintf("%d failed batches in a row", s.consecutive)
	case s.n == len(s.ring) && float64(s.fails) > h.ratio*float64(s.n):
		why = fmt.Sprintf("%d of the last %d batches failed", s.fails, s.n)
	default:
		return
	}
	s.quarantined = true
	p.m.quarantined.WithLabelValues(v.info.Name, v.info.Version).Set(1)
	p.cfg.Logger.Error("udf version quarantined on this instance: it no longer runs here (a live version's route falls back to the previous version, else the builtin)", "udf", v.info.Name,
		"version", v.info.Version, "key", v.key, "why", why)
	p.router.quarantine(v)
}

// ShadowRecord is what telemetry.shadow receives for every output of a
// batch a shadow UDF ran on: the live version's output and the shadow's,
// paired by position, and whether they agree (same input reading, time,
// position and fields within 1e-9 relative).
type ShadowRecord struct {
	Device        string        `json:"device"`
	UDF           string        `json:"udf"`
	LiveVersion   string        `json:"live_version"`
	ShadowVersion string        `json:"shadow_version"`
	Agree         bool          `json:"agree"`
	Live          *ShadowOutput `json:"live"`
	Shadow        *ShadowOutput `json:"shadow"`
	// ShadowError is the shadow's failure on this batch, if it failed.
	ShadowError string    `json:"shadow_error,omitempty"`
	ProcessedAt time.Time `json:"processed_at"`
}

// ShadowOutput is one output of a UDF version in a ShadowRecord.
type ShadowOutput struct {
	Seq    uint64             `json:"seq"`
	Input  int                `json:"input"`
	Time   time.Time          `json:"time"`
	Lat    float64            `json:"lat"`
	Lon    float64            `json:"lon"`
	Fields map[string]float64 `json:"fields,omitempty"`
}

// runShadow runs the binding's shadow on the batch the live version just
// ran (with the shadow's own state, started from the live state the first
// time) and appends one ShadowRecord per output. Whatever the shadow does
// never changes the live output.
func (p *Processor) runShadow(ctx context.Context, bind *binding, ds *deviceUDF, liveState []byte, b deviceBatch, readings []telemetry.Reading, live []udf.Output, now time.Time, out []*kgo.Record) []*kgo.Record {
	sv := bind.shadow
	key := sv.key + "/" + sv.info.Version
	if ds.shadowKey != key {
		ds.shadowKey, ds.shadowState = key, liveState
	}
	start := time.Now()
	res, err := sv.mod.Process(ctx, ds.shadowState, b.device, readings)
	p.m.udfCallSeconds.WithLabelValues(sv.info.Name, sv.info.Version, "shadow").Observe(time.Since(start).Seconds())
	rec := ShadowRecord{Device: b.device, UDF: sv.info.Name, LiveVersion: bind.live.info.Version, ShadowVersion: sv.info.Version, ProcessedAt: now.UTC()}
	var shadow []udf.Output
	if err != nil {
		var ce *udf.CallError
		if errors.As(err, &ce) {
			p.m.udfFailures.WithLabelValues(sv.info.Name, udfReason(err)).Inc()
			p.health.record(p, sv, false)
		}
		rec.ShadowError = truncate(err.Error(), maxUDFErrorHeader)
	} else {
		p.health.record(p, sv, true)
		ds.shadowState = res.State
		shadow = res.Outputs
	}
	n := max(len(live), len(shadow), 1)
	if err == nil && len(live) == 0 && len(shadow) == 0 {
		return out // both dropped everything: nothing to compare
	}
	for i := range n {
		r := rec
		var lo, so *udf.Output
		if i < len(live) {
			lo = &live[i]
			r.Live = shadowOutput(readings, *lo)
		}
		if i < len(shadow) {
			so = &shadow[i]
			r.Shadow = shadowOutput(readings, *so)
		}
		r.Agree = err == nil && lo != nil && so != nil && outputsAgree(*lo, *so)
		p.m.shadowOutputs.WithLabelValues(sv.info.Name, fmt.Sprint(r.Agree)).Inc()
		value, merr := json.Marshal(r)
		if merr != nil {
			p.cfg.Logger.Warn("encoding shadow record", "err", merr)
			continue
		}
		out = append(out, &kgo.Record{Topic: p.cfg.Topics.Shadow, Key: []byte(b.device), Value: value})
	}
	return out
}

func shadowOutput(readings []telemetry.Reading, o udf.Output) *ShadowOutput {
	s := &ShadowOutput{Seq: readings[o.Input].Seq, Input: o.Input, Time: time.Unix(0, o.TimeNs).UTC(), Lat: o.Lat, Lon: o.Lon}
	if len(o.Fields) > 0 {
		s.Fields = make(map[string]float64, len(o.Fields))
		for _, f := range o.Fields {
			s.Fields[f.Name] = f.Value
		}
	}
	return s
}

// outputsAgree reports whether two outputs derive from the same reading and
// carry the same time, position and fields (values within 1e-9 relative).
func outputsAgree(a, b udf.Output) bool {
	if a.Input != b.Input || a.TimeNs != b.TimeNs || !close9(a.Lat, b.Lat) || !close9(a.Lon, b.Lon) {
		return false
	}
	af, bf := fieldMap(a.Fields), fieldMap(b.Fields)
	if len(af) != len(bf) {
		return false
	}
	for k, x := range af {
		y, ok := bf[k]
		if !ok || !close9(x, y) {
			return false
		}
	}
	return true
}

func fieldMap(fs []udf.Field) map[string]float64 {
	m := make(map[string]float64, len(fs))
	for _, f := range fs {
		m[f.Name] = f.Value
	}
	return m
}

func close9(a, b float64) bool {
	return a == b || math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}
