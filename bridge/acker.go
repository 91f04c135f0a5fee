package bridge

import (
	"context"
	"sync"
	"time"
)

// An ackable is what the acker acknowledges: an mqtt.Message in the bridge.
type ackable interface{ Ack() }

// pending is one received MQTT message waiting for its Kafka record's fate.
type pending struct {
	msg      ackable
	resolved bool
	produced bool // Kafka acknowledged the record: ack the MQTT message
}

// acker acknowledges MQTT messages in the order they were received, each
// only once Kafka has acknowledged its record.
//
// It exists for two reasons. franz-go calls promises serially and they must
// not block, while paho's Message.Ack hands the PUBACK to the connection's
// goroutines over an unbuffered channel and so may block for a while; the
// acker's own goroutine takes that wait, so neither the promise worker nor
// paho's router ever waits on an ack. And MQTT 3.1.1 (section 4.6) wants
// PUBACKs in the order the PUBLISHes arrived, while Kafka acknowledges
// records per partition, out of order across partitions: the queue holds a
// later message's ack until every earlier one is resolved.
//
// A message whose record failed is resolved without an ack: the broker
// redelivers it to the persistent session after the next reconnect.
type acker struct {
	mu          sync.Mutex
	queue       []*pending
	outstanding int           // added and not yet acked or given up (queue plus the batch being acked)
	wake        chan struct{} // capacity 1: "the head may have changed"
	idle        chan struct{} // closed when outstanding drops to 0, replaced when it rises again

	onPop func(p *pending) // metrics; called outside the lock
}

func newAcker(onPop func(*pending)) *acker {
	idle := make(chan struct{})
	close(idle)
	return &acker{wake: make(chan struct{}, 1), idle: idle, onPop: onPop}
}

// add queues msg. Calls to add must happen in receive order.
func (a *acker) add(msg ackable) *pending {
	p := &pending{msg: msg}
	a.mu.Lock()
	if a.outstanding == 0 {
		a.idle = make(chan struct{})
	}
	a.outstanding++
	a.queue = append(a.queue, p)
	a.mu.Unlock()
	return p
}

// resolve records the fate of p's Kafka record. It never blocks, so it is
// safe in a franz-go promise.
func (a *acker) resolve(p *pending, produced bool) {
	a.mu.Lock()
	p.resolved, p.produced = true, produced
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// run acknowledges resolved messages from the head of the queue until ctx
// ends.
func (a *acker) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.wake:
		}
		for {
			done := a.popResolved()
			if len(done) == 0 {
				break
			}
			for _, p := range done {
				if p.produced {
					p.msg.Ack()
				}
				if a.onPop != nil {
					a.onPop(p)
				}
			}
			a.mu.Lock()
			a.outstanding -= len(done)
			if a.outstanding == 0 {
				close(a.idle)
			}
			a.mu.Unlock()
		}
	}
}

func (a *acker) popResolved() []*pending {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for n < len(a.queue) && a.queue[n].resolved {
		n++
	}
	if n == 0 {
		return nil
	}
	done := make([]*pending, n)
	copy(done, a.queue)
	clear(a.queue[:n])
	a.queue = a.queue[n:]
	if len(a.queue) == 0 {
		a.queue = nil
	}
	return done
}

// len is the number of messages not acknowledged (or given up) yet.
func (a *acker) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.outstanding
}

// waitIdle waits until every queued message has been resolved and, if
// produced, acknowledged; false if timeout came first.
func (a *acker) waitIdle(timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		a.mu.Lock()
		idle, empty := a.idle, a.outstanding == 0
		a.mu.Unlock()
		if empty {
			return true
		}
		select {
		case <-idle:
			// The queue emptied; loop to make sure nothing came in since.
		case <-t.C:
			return false
		}
	}
}
