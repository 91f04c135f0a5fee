package core

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"slices"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/telemetry"
)

// restoreTimeout bounds reading the changelog back for one assignment.
const restoreTimeout = 2 * time.Minute

// stateValue is one device's state as the changelog (Topics.State) holds
// it, JSON-encoded, keyed by the device id: everything needed to carry on
// where the previous owner of the partition stopped, reorder buffer
// included, so the transaction may commit offsets past buffered readings.
type stateValue struct {
	// MaxEvent is the partition's largest accepted event time (Unix ns)
	// when the device's state was written; the restored partition's
	// watermark starts from the largest over its devices.
	MaxEvent int64              `json:"max,omitempty"`
	Last     *telemetry.Reading `json:"last,omitempty"`
	// Seen is the dedup window packed by packSeen: a few bytes an entry
	// instead of the ~35 of a JSON object (it is written whole, for
	// every device a poll changes). SeenJSON is the earlier, unpacked
	// form, still read.
	Seen     []byte      `json:"seenz,omitempty"`
	SeenJSON []seenEntry `json:"seen,omitempty"`
	Buf      []bufEntry  `json:"buf,omitempty"`
	// UDF is the name of the UDF State belongs to; ShadowKey the shadow
	// version ShadowState belongs to.
	UDF         string `json:"udf,omitempty"`
	State       []byte `json:"state,omitempty"`
	ShadowKey   string `json:"shadow_key,omitempty"`
	ShadowState []byte `json:"shadow_state,omitempty"`
}

type seenEntry struct {
	Seq uint64 `json:"s"`
	T   int64  `json:"t"`
}

// bufEntry is a buffered reading with the raw record it came from (its
// headers and value go to the DLQ should the UDF fail on it).
type bufEntry struct {
	R       telemetry.Reading  `json:"r"`
	Offset  int64              `json:"off"`
	Epoch   int32              `json:"epoch"`
	TS      int64              `json:"ts"`
	Value   []byte             `json:"value"`
	Headers []kgo.RecordHeader `json:"headers,omitempty"`
}

// stateRecords appends one changelog record per device of st whose state
// changed since the last call, and forgets the changes.
func (p *Processor) stateRecords(part int32, st *partitionState, out []*kgo.Record) ([]*kgo.Record, error) {
	for dev := range st.dirty {
		v := stateValue{}
		if !st.maxEvent.IsZero() {
			v.MaxEvent = st.maxEvent.UnixNano()
		}
		if d := st.dev[dev]; d != nil {
			if d.hasLast {
				last := d.last
				v.Last = &last
			}
			v.Seen = packSeen(d.seen)
			for _, it := range d.buf {
				e := bufEntry{R: it.r}
				if it.rec != nil {
					e.Offset, e.Epoch, e.TS = it.rec.Offset, it.rec.LeaderEpoch, it.rec.Timestamp.UnixNano()
					e.Value, e.Headers = it.rec.Value, it.rec.Headers
				}
				v.Buf = append(v.Buf, e)
			}
		}
		if u := st.udf[dev]; u != nil {
			v.UDF, v.State, v.ShadowKey, v.ShadowState = u.name, u.state, u.shadowKey, u.shadowState
		}
		b, err := json.Marshal(v)
		if err != nil {
			return out, fmt.Errorf("core: encoding the state of %s: %w", dev, err)
		}
		out = append(out, &kgo.Record{Topic: p.cfg.Topics.State, Partition: part, Key: []byte(dev), Value: b})
	}
	clear(st.dirty)
	return out, nil
}

// packSeen encodes the used slots of a dedup window in seq order: for
// each, the seq and the event time as deltas from the previous entry
// (unsigned and zig-zag varints; the first from zero). A device counting
// up once a second costs 6 bytes an entry.
func packSeen(slots []dedupSlot) []byte {
	entries := make([]seenEntry, 0, len(slots))
	for _, sl := range slots {
		if sl.t != 0 {
			entries = append(entries, seenEntry{Seq: sl.seq, T: sl.t})
		}
	}
	if len(entries) == 0 {
		return nil
	}
	slices.SortFunc(entries, func(a, b seenEntry) int { return cmp.Compare(a.Seq, b.Seq) })
	b := make([]byte, 0, 6*len(entries))
	var seq uint64
	var t int64
	for _, e := range entries {
		b = binary.AppendUvarint(b, e.Seq-seq)
		b = binary.AppendVarint(b, e.T-t)
		seq, t = e.Seq, e.T
	}
	return b
}

// unpackSeen decodes packSeen's encoding.
func unpackSeen(b []byte) ([]seenEntry, error) {
	var out []seenEntry
	var seq uint64
	var t int64
	for len(b) > 0 {
		ds, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, errors.New("packed dedup window: bad seq")
		}
		b = b[n:]
		dt, n := binary.Varint(b)
		if n <= 0 {
			return nil, errors.New("packed dedup window: bad time")
		}
		b = b[n:]
		seq, t = seq+ds, t+dt
		out = append(out, seenEntry{Seq: seq, T: t})
	}
	return out, nil
}

// applyState puts one changelog record's state into st.
func (p *Processor) applyState(part int32, st *partitionState, rec *kgo.Record) error {
	dev := string(rec.Key)
	var v stateValue
	var err error
	if err = json.Unmarshal(rec.Value, &v); err != nil {
		return fmt.Errorf("core: state of %q at %s/%d@%d: %w", dev, rec.Topic, rec.Partition, rec.Offset, err)
	}
	if v.MaxEvent != 0 {
		if t := time.Unix(0, v.MaxEvent).UTC(); t.After(st.maxEvent) {
			st.maxEvent = t
		}
	}
	if old := st.dev[dev]; old != nil {
		st.buffered -= len(old.buf)
	}
	d := &deviceState{}
	if v.Last != nil {
		d.last, d.hasLast = *v.Last, true
	}
	seen := v.SeenJSON
	if len(v.Seen) > 0 {
		if seen, err = unpackSeen(v.Seen); err != nil {
			return fmt.Errorf("core: state of %q at %s/%d@%d: %w", dev, rec.Topic, rec.Partition, rec.Offset, err)
		}
	}
	if len(seen) > 0 {
		d.seen = make([]dedupSlot, dedupWindow)
		for _, e := range seen {
			d.seen[e.Seq%dedupWindow] = dedupSlot{seq: e.Seq, t: e.T}
		}
	}
	for _, e := range v.Buf {
		rec := &kgo.Record{
			Topic: p.cfg.Topics.Raw, Partition: part, Key: []byte(dev), Value: e.Value, Headers: e.Headers,
			Offset: e.Offset, LeaderEpoch: e.Epoch, Timestamp: time.Unix(0, e.TS),
		}
		d.buf = append(d.buf, pendingReading{rec: rec, r: e.R})
	}
	st.buffered += len(d.buf)
	st.dev[dev] = d
	if v.UDF != "" || v.ShadowKey != "" {
		st.udf[dev] = &deviceUDF{name: v.UDF, state: v.State, shadowKey: v.ShadowKey, shadowState: v.ShadowState}
	} else {
		delete(st.udf, dev)
	}
	return nil
}

// stableEnds returns the last stable offsets of the changelog partitions
// of parts once no transaction is open on them (last stable offset = high
// watermark). Only the owner of a raw partition writes its changelog
// partition, so an open transaction there is the previous owner's: one
// that crashed (open until an instance with its transactional id fences
// it, or until the transaction timeout) or one whose commit markers are
// still being written. Reading to the last stable offset before it ends
// would miss its state if it commits. After transactionTimeout and a
// margin the restore goes on with what is stable (and says so).
func (p *Processor) stableEnds(ctx context.Context, ka *kadm.Client, parts map[int32]*partitionState) (kadm.ListedOffsets, error) {
	topic := p.cfg.Topics.State
	deadline := time.Now().Add(transactionTimeout + 5*time.Second)
	for {
		stable, err := ka.ListCommittedOffsets(ctx, topic)
		if err == nil {
			err = stable.Error()
		}
		var hwm kadm.ListedOffsets
		if err == nil {
			hwm, err = ka.ListEndOffsets(ctx, topic)
			if err == nil {
				err = hwm.Error()
			}
		}
		if err != nil {
			// A topic created a moment ago may not be known to every
			// broker yet (UNKNOWN_TOPIC_OR_PARTITION), a leader may be
			// moving: retry those until the restore times out.
			if !kerr.IsRetriable(err) || ctx.Err() != nil {
				return nil, fmt.Errorf("core: restoring state: end offsets of %s: %w", topic, err)
			}
			p.cfg.Logger.Debug("restoring state: retrying the end offsets", "topic", topic, "err", err)
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("core: restoring state: end offsets of %s: %w (then %w)", topic, err, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		var open []int32
		for part := range parts {
			s, _ := stable.Lookup(topic, part)
			h, _ := hwm.Lookup(topic, part)
			if s.Offset < h.Offset {
				open = append(open, part)
			}
		}
		if len(open) == 0 {
			return stable, nil
		}
		if time.Now().After(deadline) {
			p.cfg.Logger.Warn("a transaction is still open on the state changelog: restoring what is committed", "topic", topic, "partitions", open)
			return stable, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("core: restoring state: waiting for open transactions on %s %v to end: %w", topic, open, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// restore reads the changelog partitions with the numbers of parts to
// their last stable offset (read_committed: only committed transactions)
// and rebuilds the partitions' state from them. The caller holds p.mu.
func (p *Processor) restore(ctx context.Context, parts map[int32]*partitionState) error {
	if len(parts) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, restoreTimeout)
	defer cancel()
	topic := p.cfg.Topics.State
	start := time.Now()
	adm, err := kgo.NewClient(kgo.SeedBrokers(p.cfg.KafkaBrokers...), kgo.WithLogger(kgoLogger{p.cfg.Logger}))
	if err != nil {
		return fmt.Errorf("core: restoring state: %w", err)
	}
	defer adm.Close()
	ka := kadm.NewClient(adm)
	ends, err := p.stableEnds(ctx, ka, parts)
	if err != nil {
		return err
	}
	starts, err := ka.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return fmt.Errorf("core: restoring state: start offsets of %s: %w", topic, err)
	}
	want := map[int32]int64{} // partition → last offset to read
	offs := map[int32]kgo.Offset{}
	for part, st := range parts {
		st.restored = true
		e, ok := ends.Lookup(topic, part)
		if !ok {
			return fmt.Errorf("core: restoring state: %s has no partition %d (it needs as many partitions as %s)", topic, part, p.cfg.Topics.Raw)
		}
		s, _ := starts.Lookup(topic, part)
		if e.Offset > s.Offset {
			want[part] = e.Offset - 1
			offs[part] = kgo.NewOffset().At(s.Offset)
		}
	}
	devices := 0
	if len(want) > 0 {
		cl, err := kgo.NewClient(
			kgo.SeedBrokers(p.cfg.KafkaBrokers...),
			kgo.WithLogger(kgoLogger{p.cfg.Logger}),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			// The markers closing each transaction are what tells
			// that the last stable offset was reached.
			kgo.KeepControlRecords(),
		)
		if err != nil {
			return fmt.Errorf("core: restoring state: %w", err)
		}
		defer cl.Close()
		for len(want) > 0 {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return fmt.Errorf("core: restoring state from %s: %w", topic, ctx.Err())
			}
			var ferr error
			fs.EachError(func(_ string, part int32, err error) {
				if ferr == nil {
					ferr = fmt.Errorf("partition %d: %w", part, err)
				}
			})
			if ferr != nil {
				return fmt.Errorf("core: restoring state from %s: %w", topic, ferr)
			}
			fs.EachRecord(func(rec *kgo.Record) {
				last, ok := want[rec.Partition]
				if !ok {
					return
				}
				if !rec.Attrs.IsControl() && rec.Value != nil {
					// A record that does not decode (written by something
					// else than a core, or damaged) is skipped, counted and
					// logged, and stays in the topic: failing the restore
					// would stop the core on every start.
					if err := p.applyState(rec.Partition, parts[rec.Partition], rec); err != nil {
						p.m.stateBad.Inc()
						p.cfg.Logger.Error("skipping a state record that does not decode", "err", err)
					} else {
						devices++
					}
				}
				if rec.Offset >= last {
					delete(want, rec.Partition)
				}
			})
		}
	}
	for _, st := range parts {
		clear(st.dirty)
	}
	p.cfg.Logger.Info("state restored", "partitions", len(parts), "records", devices, "took", time.Since(start))
	return nil
}
