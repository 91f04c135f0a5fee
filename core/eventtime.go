package core

import (
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/telemetry"
)

// verdict is what the event-time check decided about a decoded reading.
type verdict int

const (
	accepted        verdict = iota
	behindWatermark         // older than its partition's watermark (minus the allowed lateness)
	outOfOrder              // not after the device's last released reading, or at the event time of one already buffered
	duplicate               // same device, seq and event time as a recent accepted reading (QoS 1 redelivery)
)

func (v verdict) reason() string {
	switch v {
	case behindWatermark:
		return telemetry.ReasonBehindWatermark
	case outOfOrder:
		return telemetry.ReasonOutOfOrder
	case duplicate:
		return telemetry.ReasonDuplicate
	}
	return ""
}

// dedupWindow is how many of a device's recent sequence numbers are
// remembered to recognise redelivered readings.
const dedupWindow = 1024

// partitionState is the event-time and per-device state of one partition of
// the raw topic. It is not safe for concurrent use.
type partitionState struct {
	maxOutOfOrder   time.Duration // 0: no buffering, readings pass straight through
	allowedLateness time.Duration
	maxEvent        time.Time // largest accepted event time; zero before the first
	// active is the processing time (wall clock) of the last poll that
	// brought records for the partition, or of its assignment: the
	// partition is idle once it is IdleTimeout in the past.
	active time.Time
	dev    map[string]*deviceState
	// buffered counts the readings held for release, over all devices;
	// held tracks their offsets so that commits stay below the lowest.
	buffered int
	held     offsetQueue
	// next is the offset after the last record handled: what to commit
	// when nothing is buffered.
	next    kgo.EpochOffset
	hasNext bool
	// udf holds each device's UDF state bytes. At-least-once: it lives
	// and dies with the partition (rebuilt by the next owner from the
	// readings it consumes). Exactly-once: written to the changelog with
	// the rest of the device's state and restored from it (state.go).
	udf map[string]*deviceUDF
	// dirty, non-nil with the exactly-once guarantee, names the devices
	// whose state changed since it was last written to the changelog;
	// offsets are then committed by the transaction, not by held.
	dirty map[string]struct{}
	// restored is set once the partition's state was read back from the
	// changelog (exactly-once only).
	restored bool
}

// touch notes that device's state changed (exactly-once only).
func (s *partitionState) touch(device string) {
	if s.dirty != nil {
		s.dirty[device] = struct{}{}
	}
}

// deviceState is one device's event-time state: the last reading released
// to its UDF, the readings waiting for the watermark in event-time order,
// and the window of recent sequence numbers.
type deviceState struct {
	last    telemetry.Reading // last released reading (without Fields)
	hasLast bool
	buf     []pendingReading // accepted, not released; sorted by (Time, Seq)
	seen    []dedupSlot      // direct-mapped by seq % dedupWindow; nil before the first
}

type dedupSlot struct {
	seq uint64
	t   int64 // event time, Unix ns; 0 = empty
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

// newPartitionState returns the state of a partition; maxOutOfOrder 0 turns
// buffering off.
func newPartitionState(maxOutOfOrder time.Duration) *partitionState {
	return &partitionState{maxOutOfOrder: maxOutOfOrder, dev: make(map[string]*deviceState), udf: make(map[string]*deviceUDF)}
}

// buffering reports whether accepted readings wait for the watermark.
func (s *partitionState) buffering() bool { return s.maxOutOfOrder > 0 }

// deviceUDF returns device's UDF state, creating it empty.
func (s *partitionState) deviceUDF(device string) *deviceUDF {
	d := s.udf[device]
	if d == nil {
		d = &deviceUDF{}
		s.udf[device] = d
	}
	s.touch(device)
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

// watermark returns the partition's watermark, the largest event time seen
// minus the allowed out-of-orderness; ok is false before the first accepted
// reading.
func (s *partitionState) watermark() (wm time.Time, ok bool) {
	if s.maxEvent.IsZero() {
		return time.Time{}, false
	}
	return s.maxEvent.Add(-s.maxOutOfOrder), true
}

// idle reports whether no record arrived for the partition for timeout of
// processing time.
func (s *partitionState) idle(now time.Time, timeout time.Duration) bool {
	return now.Sub(s.active) >= timeout
}

// admit decides what r is, in this order:
//
//   - duplicate: the device sent this seq with this event time recently
//     (the last dedupWindow sequence numbers); a device that restarted its
//     numbering sends other event times and is not mistaken for one;
//   - behindWatermark: older than the watermark minus the allowed lateness;
//   - outOfOrder: not after the device's last released reading (which was
//     already handed to its UDF, so r cannot be put before it), or at the
//     same event time as a reading of the device waiting in the buffer;
//   - accepted.
//
// lateBy says by how much a late reading missed (the watermark, or the
// device's last reading; 0 for duplicates). An accepted reading is
// remembered for deduplication and may advance the watermark; without
// buffering it also becomes the device's last reading at once, with
// buffering the caller holds it (hold) until release.
func (s *partitionState) admit(r telemetry.Reading) (v verdict, lateBy time.Duration) {
	d := s.dev[r.Device]
	t := r.Time.UnixNano()
	if d != nil && d.seen != nil {
		if sl := d.seen[r.Seq%dedupWindow]; sl.t == t && sl.seq == r.Seq {
			return duplicate, 0
		}
	}
	if wm, ok := s.watermark(); ok && r.Time.Before(wm.Add(-s.allowedLateness)) {
		return behindWatermark, wm.Sub(r.Time)
	}
	if d != nil {
		if d.hasLast && !r.Time.After(d.last.Time) {
			return outOfOrder, d.last.Time.Sub(r.Time)
		}
		if _, found := d.find(r.Time); found {
			return outOfOrder, 0
		}
	} else {
		d = &deviceState{}
		s.dev[r.Device] = d
	}
	if d.seen == nil {
		d.seen = make([]dedupSlot, dedupWindow)
	}
	d.seen[r.Seq%dedupWindow] = dedupSlot{seq: r.Seq, t: t}
	s.touch(r.Device)
	if r.Time.After(s.maxEvent) {
		s.maxEvent = r.Time
	}
	if !s.buffering() {
		d.setLast(r)
	}
	return accepted, 0
}

func (d *deviceState) setLast(r telemetry.Reading) {
	d.last = telemetry.Reading{Device: r.Device, Seq: r.Seq, Time: r.Time, Lat: r.Lat, Lon: r.Lon}
	d.hasLast = true
}

// find returns where a reading at t goes in the buffer, and whether one at
// exactly t is there already.
func (d *deviceState) find(t time.Time) (int, bool) {
	return slices.BinarySearchFunc(d.buf, t, func(p pendingReading, t time.Time) int { return p.r.Time.Compare(t) })
}

// hold buffers an accepted reading until the watermark passes it.
func (s *partitionState) hold(pr pendingReading) {
	d := s.dev[pr.r.Device]
	i, _ := d.find(pr.r.Time)
	d.buf = slices.Insert(d.buf, i, pr)
	s.buffered++
	if pr.rec != nil && s.dirty == nil {
		s.held.push(kgo.EpochOffset{Epoch: pr.rec.LeaderEpoch, Offset: pr.rec.Offset})
	}
}

// handled notes that rec was consumed: without a buffered reading below it,
// the partition's commit offset moves past it.
func (s *partitionState) handled(rec *kgo.Record) {
	s.next = kgo.EpochOffset{Epoch: rec.LeaderEpoch, Offset: rec.Offset + 1}
	s.hasNext = true
}

// commitOffset is the offset that may be committed for the partition: the
// lowest offset of a reading still buffered (so a restart consumes it
// again), else the offset after the last handled record.
func (s *partitionState) commitOffset() (kgo.EpochOffset, bool) {
	if eo, ok := s.held.lowest(); ok {
		return eo, true
	}
	return s.next, s.hasNext
}

// release hands out, per device in event-time order, the buffered readings
// at or before upTo (all of them when all is set) and makes each device's
// latest released reading its last one. Batches come in no particular
// device order.
func (s *partitionState) release(upTo time.Time, all bool, out []deviceBatch) []deviceBatch {
	if s.buffered == 0 {
		return out
	}
	for dev, d := range s.dev {
		if len(d.buf) == 0 {
			continue
		}
		n := len(d.buf)
		if !all {
			n, _ = slices.BinarySearchFunc(d.buf, upTo, func(p pendingReading, t time.Time) int {
				if p.r.Time.After(t) {
					return 1
				}
				return -1
			})
		}
		if n == 0 {
			continue
		}
		items := make([]pendingReading, n)
		copy(items, d.buf[:n])
		clear(d.buf[:n])
		d.buf = d.buf[n:]
		if len(d.buf) == 0 {
			d.buf = nil
		}
		d.setLast(items[n-1].r)
		s.buffered -= n
		s.touch(dev)
		for _, it := range items {
			if it.rec != nil && s.dirty == nil {
				s.held.done(it.rec.Offset)
			}
		}
		out = append(out, deviceBatch{device: dev, items: items})
	}
	return out
}

// operatorWatermark is the watermark of the whole operator: the minimum of
// the watermarks of the partitions that are not idle at now. A partition
// that is not idle but has no watermark yet holds it back entirely (ok is
// false), as does having no partition that is not idle.
func operatorWatermark(parts map[int32]*partitionState, now time.Time, idleTimeout time.Duration) (wm time.Time, ok bool) {
	for _, s := range parts {
		if s.idle(now, idleTimeout) {
			continue
		}
		w, has := s.watermark()
		if !has {
			return time.Time{}, false
		}
		if !ok || w.Before(wm) {
			wm, ok = w, true
		}
	}
	return wm, ok
}

// releaseReady releases what the watermarks allow on every partition: a
// partition idle at now releases everything it holds (nothing arrived for
// IdleTimeout, so nothing more is worth waiting for), the others what the
// operator watermark has passed. It calls f once per partition with
// released batches.
func releaseReady(parts map[int32]*partitionState, now time.Time, idleTimeout time.Duration, f func(part int32, st *partitionState, batches []deviceBatch)) {
	wm, ok := operatorWatermark(parts, now, idleTimeout)
	for part, st := range parts {
		if st.buffered == 0 {
			continue
		}
		var b []deviceBatch
		switch {
		case st.idle(now, idleTimeout):
			b = st.release(time.Time{}, true, nil)
		case ok:
			b = st.release(wm, false, nil)
		}
		if len(b) > 0 {
			f(part, st, b)
		}
	}
}

// offsetQueue tracks the offsets of buffered records, which arrive in
// offset order and leave in any order, to know the lowest still buffered.
type offsetQueue struct {
	q    []kgo.EpochOffset
	head int
	gone map[int64]struct{} // released, not yet at the head
}

func (o *offsetQueue) push(eo kgo.EpochOffset) { o.q = append(o.q, eo) }

func (o *offsetQueue) done(off int64) {
	if o.head < len(o.q) && o.q[o.head].Offset == off {
		o.head++
	} else {
		if o.gone == nil {
			o.gone = make(map[int64]struct{})
		}
		o.gone[off] = struct{}{}
	}
	for o.head < len(o.q) {
		if _, ok := o.gone[o.q[o.head].Offset]; !ok {
			break
		}
		delete(o.gone, o.q[o.head].Offset)
		o.head++
	}
	if o.head == len(o.q) {
		o.q, o.head = o.q[:0], 0
	} else if o.head > 1024 && o.head > len(o.q)/2 {
		n := copy(o.q, o.q[o.head:])
		o.q, o.head = o.q[:n], 0
	}
}

func (o *offsetQueue) lowest() (kgo.EpochOffset, bool) {
	if o.head < len(o.q) {
		return o.q[o.head], true
	}
	return kgo.EpochOffset{}, false
}
