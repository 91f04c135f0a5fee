package core

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/telemetry"
)

// etStep is one step of an event-time table case: a reading arriving (and
// held when accepted, as the processor does), or a release up to a
// watermark.
type etStep struct {
	dev    string
	seq    uint64
	at     time.Duration // event time after t0
	want   verdict
	lateBy time.Duration

	release    bool          // a release step instead of a reading
	upTo       time.Duration // release up to t0+upTo
	all        bool          // release everything (idle partition)
	wantOut    string        // released readings, "dev/seq dev/seq" sorted by device then order
	wantCommit int64         // offset to commit after the release; -1: none
}

func TestPartitionStateAdmit(t *testing.T) {
	tests := []struct {
		name     string
		bound    time.Duration
		lateness time.Duration
		steps    []etStep
	}{
		{
			name: "in order, one device", bound: 2 * time.Second,
			steps: []etStep{
				{dev: "a", seq: 1, at: 0, want: accepted},
				{dev: "a", seq: 2, at: time.Second, want: accepted},
				{dev: "a", seq: 3, at: 2 * time.Second, want: accepted},
			},
		},
		{
			name: "within the allowed out-of-orderness across devices", bound: 2 * time.Second,
			steps: []etStep{
				{dev: "a", seq: 1, at: 10 * time.Second, want: accepted},
				{dev: "b", seq: 1, at: 8 * time.Second, want: accepted}, // watermark 8s: exactly on it is on time
				{dev: "b", seq: 2, at: 9 * time.Second, want: accepted},
			},
		},
		{
			name: "behind the watermark", bound: 2 * time.Second,
			steps: []etStep{
				{dev: "a", seq: 1, at: 10 * time.Second, want: accepted},
				{dev: "b", seq: 1, at: 7500 * time.Millisecond, want: behindWatermark, lateBy: 500 * time.Millisecond},
				{dev: "a", seq: 2, at: 3 * time.Second, want: behindWatermark, lateBy: 5 * time.Second},
			},
		},
		{
			name: "reordered within the bound is accepted, and released in event-time order", bound: 2 * time.Second,
			steps: []etStep{
				{dev: "a", seq: 1, at: 10 * time.Second, want: accepted},
				{dev: "a", seq: 3, at: 12 * time.Second, want: accepted},
				{dev: "a", seq: 2, at: 11 * time.Second, want: accepted}, // watermark 10s
				{release: true, upTo: 11 * time.Second, wantOut: "a/1 a/2", wantCommit: 1},
				{release: true, all: true, wantOut: "a/3", wantCommit: 3},
			},
		},
		{
			name: "not after the device's last released reading is out of order", bound: 2 * time.Second,
			steps: []etStep{
				{dev: "a", seq: 1, at: 10 * time.Second, want: accepted},
				{dev: "b", seq: 1, at: 14 * time.Second, want: accepted}, // watermark 12s
				{release: true, upTo: 12 * time.Second, wantOut: "a/1", wantCommit: 1},
				{dev: "a", seq: 2, at: 13 * time.Second, want: accepted},
				{release: true, upTo: 13 * time.Second, wantOut: "a/2", wantCommit: 1},
				{dev: "a", seq: 3, at: 12500 * time.Millisecond, want: outOfOrder, lateBy: 500 * time.Millisecond},
			},
		},
		{
			name: "the same event time as a buffered reading is out of order", bound: 2 * time.Second,
			steps: []etStep{
				{dev: "a", seq: 1, at: 5 * time.Second, want: accepted},
				{dev: "a", seq: 2, at: 5 * time.Second, want: outOfOrder},
			},
		},
		{
			name: "a redelivery is a duplicate, buffered or released, even behind the watermark", bound: 2 * time.Second,
			steps: []etStep{
				{dev: "a", seq: 1, at: 5 * time.Second, want: accepted},
				{dev: "a", seq: 1, at: 5 * time.Second, want: duplicate},
				{dev: "a", seq: 2, at: 20 * time.Second, want: accepted},
				{release: true, upTo: 18 * time.Second, wantOut: "a/1", wantCommit: 2},
				{dev: "a", seq: 1, at: 5 * time.Second, want: duplicate},
				{dev: "a", seq: 2, at: 20 * time.Second, want: duplicate},
			},
		},
		{
			name: "a reused seq with another event time (device restarted) is not a duplicate", bound: 2 * time.Second,
			steps: []etStep{
				{dev: "a", seq: 1, at: 5 * time.Second, want: accepted},
				{dev: "a", seq: 1, at: 6 * time.Second, want: accepted},
			},
		},
		{
			name: "the same seq and time on another device is not a duplicate", bound: 2 * time.Second,
			steps: []etStep{
				{dev: "a", seq: 1, at: 5 * time.Second, want: accepted},
				{dev: "b", seq: 1, at: 5 * time.Second, want: accepted},
			},
		},
		{
			name: "allowed lateness accepts behind the watermark, but never before a released reading", bound: 2 * time.Second, lateness: 3 * time.Second,
			steps: []etStep{
				{dev: "a", seq: 1, at: 10 * time.Second, want: accepted},
				{dev: "b", seq: 1, at: 20 * time.Second, want: accepted}, // watermark 18s
				{dev: "c", seq: 1, at: 16 * time.Second, want: accepted}, // 2s behind, allowed
				{dev: "c", seq: 2, at: 14 * time.Second, want: behindWatermark, lateBy: 4 * time.Second},
				{release: true, upTo: 18 * time.Second, wantOut: "a/1 c/1", wantCommit: 1},
				{dev: "a", seq: 2, at: 15500 * time.Millisecond, want: accepted},
				{dev: "c", seq: 3, at: 15500 * time.Millisecond, want: outOfOrder, lateBy: 500 * time.Millisecond},
			},
		},
		{
			name: "the watermark never goes back", bound: 2 * time.Second,
			steps: []etStep{
				{dev: "a", seq: 1, at: 20 * time.Second, want: accepted},
				{dev: "b", seq: 1, at: 19 * time.Second, want: accepted},
				{dev: "c", seq: 1, at: 17 * time.Second, want: behindWatermark, lateBy: time.Second},
			},
		},
		{
			name: "bound 0: no buffering, anything older than the partition's newest is late", bound: 0,
			steps: []etStep{
				{dev: "a", seq: 1, at: 10 * time.Second, want: accepted},
				{dev: "b", seq: 1, at: 10 * time.Second, want: accepted},
				{dev: "b", seq: 2, at: 9 * time.Second, want: behindWatermark, lateBy: time.Second},
				{dev: "a", seq: 2, at: 11 * time.Second, want: accepted},
				{dev: "a", seq: 2, at: 11 * time.Second, want: duplicate},
				{dev: "a", seq: 3, at: 11 * time.Second, want: outOfOrder},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newPartitionState(tt.bound)
			s.allowedLateness = tt.lateness
			if _, ok := s.watermark(); ok {
				t.Fatal("watermark set before any reading")
			}
			runSteps(t, s, tt.steps)
		})
	}
}

// runSteps applies the steps to s; the i-th step's record has offset i.
func runSteps(t *testing.T, s *partitionState, steps []etStep) {
	t.Helper()
	for i, st := range steps {
		if st.release {
			b := s.release(t0.Add(st.upTo), st.all, nil)
			if got := batchString(b); got != st.wantOut {
				t.Errorf("step %d: released %q, want %q", i, got, st.wantOut)
			}
			eo, ok := s.commitOffset()
			switch {
			case st.wantCommit < 0 && ok:
				t.Errorf("step %d: commit offset %d, want none", i, eo.Offset)
			case st.wantCommit >= 0 && (!ok || eo.Offset != st.wantCommit):
				t.Errorf("step %d: commit offset %d (%v), want %d", i, eo.Offset, ok, st.wantCommit)
			}
			continue
		}
		r := reading(st.dev, st.seq, t0.Add(st.at), 52.46, 21.02)
		rec := &kgo.Record{Key: []byte(st.dev), Offset: int64(i)}
		v, lateBy := s.admit(r)
		if v != st.want || lateBy != st.lateBy {
			t.Errorf("step %d (%s/%d at %s): verdict %d late by %s, want %d late by %s", i, st.dev, st.seq, st.at, v, lateBy, st.want, st.lateBy)
		}
		if v == accepted && s.buffering() {
			s.hold(pendingReading{rec: rec, r: r})
		}
		s.handled(rec)
	}
}

// batchString lists released readings as "dev/seq", devices sorted, each
// device's readings in release order.
func batchString(bs []deviceBatch) string {
	slices.SortFunc(bs, func(a, b deviceBatch) int { return strings.Compare(a.device, b.device) })
	var parts []string
	for _, b := range bs {
		for i, it := range b.items {
			if i > 0 && !it.r.Time.After(b.items[i-1].r.Time) {
				parts = append(parts, "NOT-IN-ORDER")
			}
			parts = append(parts, fmt.Sprintf("%s/%d", b.device, it.r.Seq))
		}
	}
	return strings.Join(parts, " ")
}

func TestReorderBuffer(t *testing.T) {
	// Readings arrive shuffled within the bound; whatever the arrival
	// order, each device comes out in event-time order, the device's last
	// reading is its newest released, and the commit offset is the lowest
	// offset still buffered.
	s := newPartitionState(5 * time.Second)
	arrivals := []struct {
		dev string
		seq uint64
	}{{"a", 3}, {"a", 1}, {"b", 2}, {"a", 2}, {"b", 1}, {"a", 5}, {"a", 4}, {"b", 3}}
	for i, a := range arrivals {
		r := reading(a.dev, a.seq, t0.Add(time.Duration(a.seq)*time.Second), 52.46, 21.02)
		if v, _ := s.admit(r); v != accepted {
			t.Fatalf("%s/%d: verdict %d", a.dev, a.seq, v)
		}
		rec := &kgo.Record{Offset: int64(100 + i)}
		s.hold(pendingReading{rec: rec, r: r})
		s.handled(rec)
	}
	if s.buffered != len(arrivals) {
		t.Fatalf("buffered %d, want %d", s.buffered, len(arrivals))
	}
	steps := []struct {
		upTo       time.Duration
		want       string
		wantCommit int64
		wantLast   map[string]uint64
	}{
		{0, "", 100, nil},
		{2 * time.Second, "a/1 a/2 b/1 b/2", 100, map[string]uint64{"a": 2, "b": 2}}, // a/3 (offset 100) still held
		{3 * time.Second, "a/3 b/3", 105, map[string]uint64{"a": 3, "b": 3}},         // a/5 is offset 105
		{4500 * time.Millisecond, "a/4", 105, map[string]uint64{"a": 4}},
		{time.Hour, "a/5", 108, map[string]uint64{"a": 5}},
	}
	for _, st := range steps {
		got := batchString(s.release(t0.Add(st.upTo), false, nil))
		if got != st.want {
			t.Errorf("release up to %s: %q, want %q", st.upTo, got, st.want)
		}
		if eo, ok := s.commitOffset(); !ok || eo.Offset != st.wantCommit {
			t.Errorf("after release up to %s: commit offset %d, want %d", st.upTo, eo.Offset, st.wantCommit)
		}
		for dev, seq := range st.wantLast {
			if d := s.dev[dev]; !d.hasLast || d.last.Seq != seq {
				t.Errorf("after release up to %s: %s's last is %+v, want seq %d", st.upTo, dev, d.last, seq)
			}
		}
	}
	if s.buffered != 0 {
		t.Errorf("buffered %d at the end, want 0", s.buffered)
	}
}

func TestOperatorWatermark(t *testing.T) {
	now := t0.Add(time.Hour) // processing time
	const idle = 5 * time.Second
	type part struct {
		maxEvent time.Duration // event time after t0; -1: no reading yet
		quiet    time.Duration // processing time since its last record
	}
	tests := []struct {
		name   string
		parts  []part
		want   time.Duration // after t0
		wantOK bool
	}{
		{"no partitions", nil, 0, false},
		{"one partition", []part{{10 * time.Second, 0}}, 8 * time.Second, true},
		{"minimum over partitions", []part{{10 * time.Second, 0}, {30 * time.Second, 0}, {20 * time.Second, time.Second}}, 8 * time.Second, true},
		{"an idle partition stops holding it back", []part{{10 * time.Second, idle}, {30 * time.Second, 0}}, 28 * time.Second, true},
		{"just under the idle timeout still holds it back", []part{{10 * time.Second, idle - time.Millisecond}, {30 * time.Second, 0}}, 8 * time.Second, true},
		{"an active partition without readings holds everything", []part{{-1, time.Second}, {30 * time.Second, 0}}, 0, false},
		{"an idle partition without readings does not", []part{{-1, time.Minute}, {30 * time.Second, 0}}, 28 * time.Second, true},
		{"all idle: no watermark", []part{{10 * time.Second, idle}, {30 * time.Second, time.Minute}}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parts := map[int32]*partitionState{}
			for i, p := range tt.parts {
				s := newPartitionState(2 * time.Second)
				if p.maxEvent >= 0 {
					s.admit(reading("d", 1, t0.Add(p.maxEvent), 52.46, 21.02))
				}
				s.active = now.Add(-p.quiet)
				parts[int32(i)] = s
			}
			wm, ok := operatorWatermark(parts, now, idle)
			if ok != tt.wantOK || (ok && !wm.Equal(t0.Add(tt.want))) {
				t.Errorf("watermark %s (%v), want t0+%s (%v)", wm.Sub(t0), ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestReleaseReady(t *testing.T) {
	// Partition 0 has readings up to 30s, partition 1 up to 12s (watermark
	// 10s) and partition 2 stopped at 20s.
	now := t0.Add(time.Hour)
	const idle = 5 * time.Second
	build := func(quiet2 time.Duration) map[int32]*partitionState {
		parts := map[int32]*partitionState{}
		for part, secs := range map[int32][]int{0: {9, 11, 29, 30}, 1: {10, 12}, 2: {17, 19, 20}} {
			s := newPartitionState(2 * time.Second)
			for i, sec := range secs {
				r := reading(fmt.Sprintf("p%d", part), uint64(i+1), t0.Add(time.Duration(sec)*time.Second), 52.46, 21.02)
				if v, _ := s.admit(r); v != accepted {
					t.Fatalf("p%d/%d: verdict %d", part, i+1, v)
				}
				s.hold(pendingReading{rec: &kgo.Record{Offset: int64(i)}, r: r})
			}
			s.active = now
			parts[part] = s
		}
		parts[2].active = now.Add(-quiet2)
		return parts
	}
	tests := []struct {
		name   string
		quiet2 time.Duration
		want   string
	}{
		// The operator watermark is 10s (partition 1): partition 2's
		// readings wait although its own watermark (18s) passed two.
		{"all active", time.Second, "p0/1 p1/1"},
		// Partition 2 is idle: it releases all it holds and stops
		// holding back the others (its own watermark was 18s anyway).
		{"partition 2 idle", idle, "p0/1 p1/1 p2/1 p2/2 p2/3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var all []deviceBatch
			releaseReady(build(tt.quiet2), now, idle, func(_ int32, _ *partitionState, b []deviceBatch) { all = append(all, b...) })
			if got := batchString(all); got != tt.want {
				t.Errorf("released %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDedupWindow(t *testing.T) {
	s := newPartitionState(0)
	at := func(seq uint64) time.Time { return t0.Add(time.Duration(seq) * time.Millisecond) }
	for seq := uint64(1); seq <= 3000; seq++ {
		if v, _ := s.admit(reading("a", seq, at(seq), 52.46, 21.02)); v != accepted {
			t.Fatalf("seq %d: verdict %d", seq, v)
		}
	}
	// The last dedupWindow sequence numbers are recognised; older ones
	// have left the window (and are late for another reason).
	for _, tc := range []struct {
		seq  uint64
		want verdict
	}{
		{3000, duplicate}, {3000 - dedupWindow + 1, duplicate}, {3000 - dedupWindow, behindWatermark}, {1, behindWatermark},
	} {
		if v, _ := s.admit(reading("a", tc.seq, at(tc.seq), 52.46, 21.02)); v != tc.want {
			t.Errorf("redelivered seq %d: verdict %d, want %d", tc.seq, v, tc.want)
		}
	}
}

func TestOffsetQueue(t *testing.T) {
	var q offsetQueue
	if _, ok := q.lowest(); ok {
		t.Fatal("empty queue has a lowest offset")
	}
	for off := int64(10); off < 3010; off++ {
		q.push(kgo.EpochOffset{Epoch: 1, Offset: off})
	}
	// Release in a scrambled order; the lowest is always the smallest
	// offset not released.
	released := map[int64]bool{}
	for i := range int64(3000) {
		off := 10 + (i*7919)%3000
		q.done(off)
		released[off] = true
		want := int64(-1)
		for o := int64(10); o < 3010; o++ {
			if !released[o] {
				want = o
				break
			}
		}
		eo, ok := q.lowest()
		if want < 0 {
			if ok {
				t.Fatalf("after releasing all: lowest %d", eo.Offset)
			}
			continue
		}
		if !ok || eo.Offset != want || eo.Epoch != 1 {
			t.Fatalf("after releasing %d: lowest %+v, want %d", off, eo, want)
		}
	}
}

func TestVerdictReason(t *testing.T) {
	for v, want := range map[verdict]string{
		accepted:        "",
		behindWatermark: telemetry.ReasonBehindWatermark,
		outOfOrder:      telemetry.ReasonOutOfOrder,
		duplicate:       telemetry.ReasonDuplicate,
	} {
		if got := v.reason(); got != want {
			t.Errorf("verdict %d reason %q, want %q", v, got, want)
		}
	}
}
