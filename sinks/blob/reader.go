package blob

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"time"

	"github.com/sailstream/sailstream/telemetry"
)

// ReadConfig selects archived records.
type ReadConfig struct {
	// Store holds the archive. Required.
	Store Store
	// From and To bound the records' Kafka timestamps: From <= t < To.
	// Required.
	From, To time.Time
	// Topic is the archived topic (default telemetry.raw).
	Topic string
	// Devices, when set, keeps only records whose key (the device id)
	// matches this glob (path.Match syntax, e.g. "boat-*").
	Devices string
}

func (c ReadConfig) withDefaults() ReadConfig {
	if c.Topic == "" {
		c.Topic = telemetry.TopicRaw
	}
	return c
}

// Validate reports whether c can be used.
func (c ReadConfig) Validate() error {
	switch {
	case c.Store == nil:
		return fmt.Errorf("%w: no store (set an archive directory or an Azure container)", ErrInvalidConfig)
	case c.From.IsZero() || c.To.IsZero():
		return fmt.Errorf("%w: set both ends of the time range", ErrInvalidConfig)
	case !c.From.Before(c.To):
		return fmt.Errorf("%w: time range %s..%s is empty", ErrInvalidConfig, c.From.Format(time.RFC3339), c.To.Format(time.RFC3339))
	}
	if c.Devices != "" {
		if _, err := path.Match(c.Devices, ""); err != nil {
			return fmt.Errorf("%w: device pattern %q: %v", ErrInvalidConfig, c.Devices, err)
		}
	}
	return nil
}

// ReadStats counts what a Read did.
type ReadStats struct {
	Objects    int   // objects read
	Bytes      int64 // their compressed size
	Records    int   // records passed to the callback
	Filtered   int   // records left out by time or device
	Duplicates int   // records already read from an overlapping object
}

// ReadProgress is passed to the progress callback after each object.
type ReadProgress struct {
	ObjectsDone, ObjectsTotal int
	ReadStats
}

// Read calls fn with every archived record of cfg's topic whose timestamp
// is in [From, To) and whose key matches Devices. Each partition's records
// come in offset order, each offset once (should two objects overlap, the
// later copy is dropped); partitions are merged by timestamp. progress,
// when not nil, is called after each object is opened.
func Read(ctx context.Context, cfg ReadConfig, fn func(Record) error, progress func(ReadProgress)) (ReadStats, error) {
	var st ReadStats
	if err := cfg.Validate(); err != nil {
		return st, err
	}
	cfg = cfg.withDefaults()
	objs, err := listRange(ctx, cfg)
	if err != nil {
		return st, err
	}
	byPart := map[int32][]Object{}
	for _, o := range objs {
		byPart[o.Partition] = append(byPart[o.Partition], o)
	}
	r := &reader{ctx: ctx, cfg: cfg, st: &st, total: len(objs), progress: progress}
	h := &cursorHeap{}
	for p, os := range byPart {
		sort.Slice(os, func(i, j int) bool { return os[i].First < os[j].First })
		c := &cursor{partition: p, objects: os, next: -1}
		ok, err := r.advance(c)
		if err != nil {
			return st, err
		}
		if ok {
			heap.Push(h, c)
		}
	}
	for h.Len() > 0 {
		c := (*h)[0]
		rec := c.records[c.i]
		if err := fn(rec); err != nil {
			return st, err
		}
		st.Records++
		ok, err := r.advance(c)
		if err != nil {
			return st, err
		}
		if ok {
			heap.Fix(h, 0)
		} else {
			heap.Pop(h)
		}
	}
	return st, nil
}

// listRange returns the objects of cfg's topic in the hour folders that
// overlap [From, To).
func listRange(ctx context.Context, cfg ReadConfig) ([]Object, error) {
	var objs []Object
	for hour := cfg.From.UTC().Truncate(time.Hour); hour.Before(cfg.To); hour = hour.Add(time.Hour) {
		names, err := cfg.Store.List(ctx, HourPrefix(hour))
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			o, err := ParseName(n)
			if errors.Is(err, ErrBadObject) || o.Topic != cfg.Topic {
				continue // not ours: another topic, or a stray file
			}
			objs = append(objs, o)
		}
	}
	return objs, nil
}

type reader struct {
	ctx      context.Context
	cfg      ReadConfig
	st       *ReadStats
	done     int
	total    int
	progress func(ReadProgress)
}

// cursor walks one partition's objects.
type cursor struct {
	partition int32
	objects   []Object
	next      int // index of the current object
	records   []Record
	i         int
	emitted   int64 // highest offset handed out, -1 none
	started   bool
}

// advance moves c to its next record that passes the filters, loading
// objects as needed; it reports false at the end of the partition.
func (r *reader) advance(c *cursor) (bool, error) {
	if !c.started {
		c.started, c.emitted, c.i = true, -1, 0
	} else {
		c.emitted = c.records[c.i].Offset
		c.i++
	}
	for {
		for ; c.i < len(c.records); c.i++ {
			rec := c.records[c.i]
			switch {
			case rec.Offset <= c.emitted:
				r.st.Duplicates++
			case rec.Timestamp.Before(r.cfg.From) || !rec.Timestamp.Before(r.cfg.To):
				r.st.Filtered++
			case r.cfg.Devices != "" && !matchDevice(r.cfg.Devices, rec.Key):
				r.st.Filtered++
			default:
				return true, nil
			}
			// A skipped record still counts as seen for de-duplication.
			c.emitted = max(c.emitted, rec.Offset)
		}
		c.next++
		if c.next >= len(c.objects) {
			c.records = nil
			return false, nil
		}
		o := c.objects[c.next]
		if o.Last <= c.emitted {
			r.st.Duplicates += int(o.Last - o.First + 1)
			r.objectDone()
			continue
		}
		data, err := r.cfg.Store.Get(r.ctx, o.Name)
		if err != nil {
			return false, err
		}
		recs, err := DecodeObject(data)
		if err != nil {
			return false, fmt.Errorf("%s: %w", o.Name, err)
		}
		r.st.Objects++
		r.st.Bytes += int64(len(data))
		c.records, c.i = recs, 0
		r.objectDone()
	}
}

func (r *reader) objectDone() {
	r.done++
	if r.progress != nil {
		r.progress(ReadProgress{ObjectsDone: r.done, ObjectsTotal: r.total, ReadStats: *r.st})
	}
}

func matchDevice(pattern string, key []byte) bool {
	ok, _ := path.Match(pattern, string(key))
	return ok
}

// cursorHeap orders partitions by their current record's timestamp.
type cursorHeap []*cursor

func (h cursorHeap) Len() int { return len(h) }
func (h cursorHeap) Less(i, j int) bool {
	a, b := h[i].records[h[i].i], h[j].records[h[j].i]
	if !a.Timestamp.Equal(b.Timestamp) {
		return a.Timestamp.Before(b.Timestamp)
	}
	return h[i].partition < h[j].partition
}
func (h cursorHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)   { *h = append(*h, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}
