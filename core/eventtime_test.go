package core

import (
	"testing"
	"time"

	"github.com/sailstream/sailstream/telemetry"
)

func TestPartitionStateAdmit(t *testing.T) {
	type step struct {
		dev     string
		at      time.Duration // event time after t0
		want    verdict
		lateBy  time.Duration
		prevSeq uint64 // seq of the previous reading handed out; 0 = none
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{
			name: "in order, one device",
			steps: []step{
				{"a", 0, accepted, 0, 0},
				{"a", time.Second, accepted, 0, 1},
				{"a", 2 * time.Second, accepted, 0, 2},
			},
		},
		{
			name: "within the allowed out-of-orderness across devices",
			steps: []step{
				{"a", 10 * time.Second, accepted, 0, 0},
				{"b", 8 * time.Second, accepted, 0, 0}, // watermark 8s: exactly on it is on time
				{"b", 9 * time.Second, accepted, 0, 2},
			},
		},
		{
			name: "behind the watermark",
			steps: []step{
				{"a", 10 * time.Second, accepted, 0, 0},
				{"b", 7500 * time.Millisecond, behindWatermark, 500 * time.Millisecond, 0},
				{"a", 3 * time.Second, behindWatermark, 5 * time.Second, 0},
			},
		},
		{
			name: "a late reading does not become the device's previous one",
			steps: []step{
				{"a", 10 * time.Second, accepted, 0, 0},
				{"a", time.Second, behindWatermark, 7 * time.Second, 0},
				{"a", 11 * time.Second, accepted, 0, 1},
			},
		},
		{
			name: "older than the device's last but within the watermark is out of order",
			steps: []step{
				{"a", 10 * time.Second, accepted, 0, 0},
				{"a", 9 * time.Second, outOfOrder, time.Second, 0},
				{"a", 12 * time.Second, accepted, 0, 1},
			},
		},
		{
			name: "a duplicate event time (redelivery) is out of order",
			steps: []step{
				{"a", 5 * time.Second, accepted, 0, 0},
				{"a", 5 * time.Second, outOfOrder, 0, 0},
			},
		},
		{
			name: "the watermark never goes back",
			steps: []step{
				{"a", 20 * time.Second, accepted, 0, 0},
				{"b", 19 * time.Second, accepted, 0, 0},
				{"b", 19500 * time.Millisecond, accepted, 0, 2},
				{"c", 17 * time.Second, behindWatermark, time.Second, 0},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newPartitionState(2 * time.Second)
			if _, ok := s.watermark(); ok {
				t.Fatal("watermark set before any reading")
			}
			for i, st := range tt.steps {
				r := reading(st.dev, uint64(i+1), t0.Add(st.at), 52.46, 21.02)
				v, lateBy, prev := s.admit(r)
				if v != st.want || lateBy != st.lateBy {
					t.Errorf("step %d (%s at %s): verdict %d late by %s, want %d late by %s", i, st.dev, st.at, v, lateBy, st.want, st.lateBy)
				}
				switch {
				case st.prevSeq == 0 && prev != nil:
					t.Errorf("step %d: prev = seq %d, want none", i, prev.Seq)
				case st.prevSeq != 0 && (prev == nil || prev.Seq != st.prevSeq):
					t.Errorf("step %d: prev = %+v, want seq %d", i, prev, st.prevSeq)
				}
			}
		})
	}
}

func TestPartitionStateWatermark(t *testing.T) {
	s := newPartitionState(2 * time.Second)
	s.admit(reading("a", 1, t0.Add(10*time.Second), 52.46, 21.02))
	s.admit(reading("a", 2, t0.Add(time.Second), 52.46, 21.02)) // late: must not move it
	wm, ok := s.watermark()
	if want := t0.Add(8 * time.Second); !ok || !wm.Equal(want) {
		t.Fatalf("watermark = %s, %v; want %s", wm, ok, want)
	}
}

func TestVerdictReason(t *testing.T) {
	for v, want := range map[verdict]string{
		accepted:        "",
		behindWatermark: telemetry.ReasonBehindWatermark,
		outOfOrder:      telemetry.ReasonOutOfOrder,
	} {
		if got := v.reason(); got != want {
			t.Errorf("verdict %d reason %q, want %q", v, got, want)
		}
	}
}
