package edge

import (
	"container/heap"
	"math"
	"math/rand/v2"
	"time"

	"github.com/sailstream/sailstream/geo"
	"github.com/sailstream/sailstream/lake"
	"github.com/sailstream/sailstream/telemetry"
)

// Fields every simulated reading carries: the boat's true motion over the
// move that led to this position, so a test (or a curious user) can check
// what the core computes against what the simulator did.
const (
	// FieldSimSpeed is the distance covered since the boat's previous reading
	// divided by the time between them, in m/s.
	FieldSimSpeed = "sim_speed_ms"
	// FieldSimCourse is the boat's heading on that move, degrees clockwise
	// from true north.
	FieldSimCourse = "sim_course_deg"
)

// How boats move: every reading is one move. A move may change the speed
// (with probability speedChangeP, by up to ±speedStep m/s, kept within the
// configured range) and always lets the heading wander a little (normal,
// σ = headingWanderDeg).
const (
	speedChangeP     = 0.3
	speedStep        = 0.5
	headingWanderDeg = 4.0
	escapeTries      = 24
)

// Emission is one reading and when to publish it.
type Emission struct {
	// Reading is what the device sends; Reading.Time is the event time.
	Reading telemetry.Reading
	// Topic is the MQTT topic it goes to.
	Topic string
	// PublishAt is when it is published: the event time, or for a late
	// reading the event time plus its delay.
	PublishAt time.Time
	// Late marks a reading held back.
	Late bool
}

// Plan returns the first n readings of the fleet cfg describes, starting at
// start (the first reading's event time), sorted by PublishAt: exactly what
// Run publishes with Count = n, minus the network and the wall clock. The
// same cfg (MQTTURL and the other connection fields aside), start and n give
// the same plan.
func Plan(cfg Config, start time.Time, n int) ([]Emission, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validateSim(); err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, nil
	}
	p := newPlanner(cfg, start, n)
	out := make([]Emission, 0, n)
	for {
		e, ok := p.next()
		if !ok {
			return out, nil
		}
		out = append(out, e)
	}
}

// planner generates emissions in PublishAt order. Readings are made in
// event-time order on a virtual clock (reading i at start + i/Rate, boats in
// turn); late ones wait in a heap until the clock passes their PublishAt.
type planner struct {
	cfg      Config
	water    *water
	start    time.Time
	boats    []*boat
	lateRNG  *rand.Rand
	dt       float64 // seconds between two readings of one boat
	i        int     // index of the next reading to make
	limit    int     // 0: no limit
	held     lateHeap
	lateSpan int64 // LateMax - LateMin in ns
}

func newPlanner(cfg Config, start time.Time, limit int) *planner {
	area := cfg.Area
	if area == nil {
		area = lake.Zegrze()
	}
	w := newWater(area)
	p := &planner{
		cfg:      cfg,
		water:    w,
		start:    start.Round(0).UTC(),
		lateRNG:  rand.New(rand.NewPCG(uint64(cfg.Seed), 0x1a7e)),
		dt:       float64(cfg.Devices) / cfg.Rate,
		limit:    limit,
		lateSpan: int64(cfg.LateMax - cfg.LateMin),
	}
	for d := 0; d < cfg.Devices; d++ {
		// One stream per boat: its track depends on the seed, its index,
		// the speed range and the time between its readings only.
		r := rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(d)+1))
		p.boats = append(p.boats, &boat{
			id:      deviceID(d),
			rng:     r,
			pos:     w.randomPoint(r),
			heading: r.Float64() * 360,
			speed:   cfg.MinSpeed + r.Float64()*(cfg.MaxSpeed-cfg.MinSpeed),
		})
	}
	return p
}

// eventTime is when reading i is taken.
func (p *planner) eventTime(i int) time.Time {
	return p.start.Add(time.Duration(math.Round(float64(i) / p.cfg.Rate * 1e9)))
}

func (p *planner) next() (Emission, bool) {
	for {
		more := p.limit == 0 || p.i < p.limit
		if len(p.held) > 0 && (!more || !p.held[0].PublishAt.After(p.eventTime(p.i))) {
			return heap.Pop(&p.held).(heldEmission).Emission, true
		}
		if !more {
			return Emission{}, false
		}
		e := p.make()
		if e.Late {
			heap.Push(&p.held, heldEmission{Emission: e, order: p.i})
			continue
		}
		return e, true
	}
}

// make produces reading p.i and advances.
func (p *planner) make() Emission {
	b := p.boats[p.i%len(p.boats)]
	t := p.eventTime(p.i)
	p.i++
	m := b.move(p.water, p.dt, p.cfg.MinSpeed, p.cfg.MaxSpeed)
	b.seq++
	e := Emission{
		Reading: telemetry.Reading{
			Device: b.id,
			Seq:    b.seq,
			Time:   t,
			Lat:    b.pos.Lat,
			Lon:    b.pos.Lon,
			Fields: map[string]float64{
				FieldSimSpeed:  m.dist / p.dt,
				FieldSimCourse: b.heading,
			},
		},
		Topic:     topic(p.cfg.TopicPrefix, b.id),
		PublishAt: t,
	}
	if p.cfg.LateFraction > 0 && p.lateRNG.Float64() < p.cfg.LateFraction {
		delay := p.cfg.LateMin
		if p.lateSpan > 0 {
			delay += time.Duration(p.lateRNG.Int64N(p.lateSpan + 1))
		}
		e.Late = true
		e.PublishAt = t.Add(delay)
	}
	return e
}

type boat struct {
	id      string
	seq     uint64
	rng     *rand.Rand
	pos     geo.Point
	heading float64 // degrees
	speed   float64 // m/s
}

type moveResult struct {
	dist     float64 // metres actually covered
	reversed bool    // the boat turned back at the shore
}

// move advances the boat by dt seconds. When the move would take it out of
// the water it reverses its heading on the spot and sails the other way; in a
// corner where that fails too it tries other headings, and stays put for
// this reading if none is clear.
func (b *boat) move(w *water, dt, minSpeed, maxSpeed float64) moveResult {
	r := b.rng
	if r.Float64() < speedChangeP {
		b.speed = min(maxSpeed, max(minSpeed, b.speed+(r.Float64()*2-1)*speedStep))
	}
	b.heading = norm360(b.heading + r.NormFloat64()*headingWanderDeg)
	d := b.speed * dt
	next := geo.Destination(b.pos, b.heading, d)
	if w.canSail(b.pos, next) {
		b.pos = next
		return moveResult{dist: d}
	}
	b.heading = norm360(b.heading + 180)
	next = geo.Destination(b.pos, b.heading, d)
	if w.canSail(b.pos, next) {
		b.pos = next
		return moveResult{dist: d, reversed: true}
	}
	for range escapeTries {
		h := r.Float64() * 360
		next = geo.Destination(b.pos, h, d)
		if w.canSail(b.pos, next) {
			b.heading, b.pos = h, next
			return moveResult{dist: d, reversed: true}
		}
	}
	return moveResult{reversed: true}
}

func norm360(h float64) float64 {
	h = math.Mod(h, 360)
	if h < 0 {
		h += 360
	}
	if h >= 360 {
		h = 0
	}
	return h
}

// water is the area boats sail in.
type water struct {
	ring   geo.Polygon
	sw, ne geo.Point
}

func newWater(ring geo.Polygon) *water {
	w := &water{ring: ring, sw: ring[0], ne: ring[0]}
	for _, q := range ring {
		w.sw.Lat, w.sw.Lon = min(w.sw.Lat, q.Lat), min(w.sw.Lon, q.Lon)
		w.ne.Lat, w.ne.Lon = max(w.ne.Lat, q.Lat), max(w.ne.Lon, q.Lon)
	}
	return w
}

// canSail reports whether the straight move a→b stays on the water: b is
// inside and the move crosses no shore line (so it cannot cut across a
// headland between two bays).
func (w *water) canSail(a, b geo.Point) bool {
	if !w.ring.Contains(b) {
		return false
	}
	for i := 0; i+1 < len(w.ring); i++ {
		if crosses(a, b, w.ring[i], w.ring[i+1]) {
			return false
		}
	}
	return true
}

// randomPoint draws a point inside the ring, uniformly by rejection from its
// bounding box.
func (w *water) randomPoint(r *rand.Rand) geo.Point {
	for range 100000 {
		p := geo.Point{
			Lat: w.sw.Lat + r.Float64()*(w.ne.Lat-w.sw.Lat),
			Lon: w.sw.Lon + r.Float64()*(w.ne.Lon-w.sw.Lon),
		}
		if w.ring.Contains(p) {
			return p
		}
	}
	// A ring so thin that rejection fails: start on its first vertex's
	// neighbourhood centroid instead (degenerate areas are a config error).
	return geo.Point{Lat: (w.ring[0].Lat + w.ring[1].Lat + w.ring[2].Lat) / 3, Lon: (w.ring[0].Lon + w.ring[1].Lon + w.ring[2].Lon) / 3}
}

// crosses reports whether segments ab and cd properly intersect or touch
// (planar in degrees, as geo.Polygon.Contains).
func crosses(a, b, c, d geo.Point) bool {
	o1, o2 := orient(a, b, c), orient(a, b, d)
	o3, o4 := orient(c, d, a), orient(c, d, b)
	if o1 != o2 && o3 != o4 && o1 != 0 && o2 != 0 && o3 != 0 && o4 != 0 {
		return true
	}
	return (o1 == 0 && onSegment(a, b, c)) || (o2 == 0 && onSegment(a, b, d)) ||
		(o3 == 0 && onSegment(c, d, a)) || (o4 == 0 && onSegment(c, d, b))
}

func orient(a, b, c geo.Point) int {
	v := (b.Lon-a.Lon)*(c.Lat-a.Lat) - (b.Lat-a.Lat)*(c.Lon-a.Lon)
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

func onSegment(p, q, r geo.Point) bool {
	return min(p.Lon, q.Lon) <= r.Lon && r.Lon <= max(p.Lon, q.Lon) &&
		min(p.Lat, q.Lat) <= r.Lat && r.Lat <= max(p.Lat, q.Lat)
}

// heldEmission is a late emission waiting for its PublishAt; order (the
// reading's index) breaks ties so the plan is deterministic.
type heldEmission struct {
	Emission
	order int
}

type lateHeap []heldEmission

func (h lateHeap) Len() int { return len(h) }
func (h lateHeap) Less(i, j int) bool {
	if !h[i].PublishAt.Equal(h[j].PublishAt) {
		return h[i].PublishAt.Before(h[j].PublishAt)
	}
	return h[i].order < h[j].order
}
func (h lateHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *lateHeap) Push(x any)   { *h = append(*h, x.(heldEmission)) }
func (h *lateHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
