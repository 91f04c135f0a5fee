package bridge

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

type fakeMsg struct {
	id  int
	mu  *sync.Mutex
	log *[]int
}

func (m fakeMsg) Ack() {
	m.mu.Lock()
	*m.log = append(*m.log, m.id)
	m.mu.Unlock()
}

func TestAckerOrder(t *testing.T) {
	tests := []struct {
		name     string
		resolve  []int // order in which records are resolved
		failed   []int // resolved without Kafka's ack
		wantAcks []int // PUBACK order
		wantIdle bool  // everything resolved
		partial  []int // acks expected before the last resolve (head-of-line blocking)
		holdBack int   // resolve all but the last `holdBack` entries of resolve first
	}{
		{name: "in order", resolve: []int{0, 1, 2, 3}, wantAcks: []int{0, 1, 2, 3}, wantIdle: true},
		{name: "reversed: acks still in receive order", resolve: []int{3, 2, 1, 0}, wantAcks: []int{0, 1, 2, 3}, wantIdle: true},
		{name: "failed ones are skipped, not acked", resolve: []int{1, 0, 3, 2}, failed: []int{1, 2}, wantAcks: []int{0, 3}, wantIdle: true},
		{name: "head unresolved holds later acks", resolve: []int{1, 2, 3, 0}, holdBack: 1, partial: []int{}, wantAcks: []int{0, 1, 2, 3}, wantIdle: true},
		{name: "middle unresolved", resolve: []int{0, 2, 3, 1}, holdBack: 1, partial: []int{0}, wantAcks: []int{0, 1, 2, 3}, wantIdle: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var acked []int
			popped := 0
			a := newAcker(func(*pending) { popped++ })
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); a.run(ctx) }()
			defer func() { cancel(); <-done }()

			ps := make([]*pending, len(tt.resolve))
			for i := range ps {
				ps[i] = a.add(fakeMsg{id: i, mu: &mu, log: &acked})
			}
			first := tt.resolve[:len(tt.resolve)-tt.holdBack]
			for _, i := range first {
				a.resolve(ps[i], !slices.Contains(tt.failed, i))
			}
			if tt.partial != nil {
				time.Sleep(50 * time.Millisecond)
				mu.Lock()
				got := slices.Clone(acked)
				mu.Unlock()
				if !slices.Equal(got, tt.partial) && !(len(got) == 0 && len(tt.partial) == 0) {
					t.Fatalf("acks before the last resolve = %v, want %v", got, tt.partial)
				}
				if a.waitIdle(10 * time.Millisecond) {
					t.Fatalf("waitIdle true with an unresolved message")
				}
			}
			for _, i := range tt.resolve[len(first):] {
				a.resolve(ps[i], !slices.Contains(tt.failed, i))
			}
			if got := a.waitIdle(2 * time.Second); got != tt.wantIdle {
				t.Fatalf("waitIdle = %v, want %v", got, tt.wantIdle)
			}
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(acked, tt.wantAcks) {
				t.Errorf("acks = %v, want %v", acked, tt.wantAcks)
			}
			if a.len() != 0 || popped != len(tt.resolve) {
				t.Errorf("len = %d, popped = %d, want 0 and %d", a.len(), popped, len(tt.resolve))
			}
		})
	}
}

// A promise must never block, even when Ack does (paho hands the PUBACK over
// an unbuffered channel).
func TestAckerResolveDoesNotBlockOnAck(t *testing.T) {
	a := newAcker(nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.run(ctx)
	unblock := make(chan struct{})
	defer close(unblock)
	a.resolve(a.add(blockingMsg(unblock)), true)
	resolved := make(chan struct{})
	go func() {
		for range 100 {
			a.resolve(a.add(blockingMsg(unblock)), true)
		}
		close(resolved)
	}()
	select {
	case <-resolved:
	case <-time.After(2 * time.Second):
		t.Fatal("resolve blocked while an Ack was blocked")
	}
}

type blockingMsg chan struct{}

func (m blockingMsg) Ack() { <-m }
