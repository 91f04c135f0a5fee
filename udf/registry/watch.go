package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/internal/kafkatopic"
)

// WatchConfig configures a Watcher, the consumer side of the registry
// topic (the data plane). The zero value of every field but Brokers is
// usable.
type WatchConfig struct {
	// Brokers are the Kafka seed brokers, host:port.
	Brokers []string
	// Topic is the registry topic; empty means DefaultTopic.
	Topic string
	// Logger receives bad records and connection trouble; nil discards.
	Logger *slog.Logger
	// OnBadRecord, when set, is called for every record Apply refuses
	// (after it is logged), e.g. to count it in a metric. The record is
	// skipped; the state keeps what it had for that key.
	OnBadRecord func(key string, err error)
	// IdleCatchUp bounds how long the first snapshot waits for records
	// when the end offsets seen at start cannot be reached (a transaction
	// marker last in the topic has an offset no record carries). Zero
	// means 3 s.
	IdleCatchUp time.Duration
}

// fetchBytes is what the watcher asks a fetch for: at least one whole
// module record of the largest size the topic accepts.
const fetchBytes = MaxModuleRecordBytes + 1<<20

// Watcher reads the whole registry topic from the start, without a consumer
// group (every core instance needs every record), folds it into a State
// and hands out snapshots.
type Watcher struct {
	cfg WatchConfig
	bad atomic.Int64
}

// NewWatcher checks cfg.
func NewWatcher(cfg WatchConfig) (*Watcher, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("registry: watch: no Kafka brokers")
	}
	if cfg.Topic == "" {
		cfg.Topic = DefaultTopic
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.IdleCatchUp <= 0 {
		cfg.IdleCatchUp = 3 * time.Second
	}
	return &Watcher{cfg: cfg}, nil
}

// BadRecords returns how many records were refused so far.
func (w *Watcher) BadRecords() int64 { return w.bad.Load() }

// TopicSpec is how the registry topic is created when it is missing:
// compacted (the latest record of each key is the registry), one partition
// (records keep the order they were written in, so a module record comes
// before the deployment that names it) and room for large modules.
func TopicSpec(topic string) kafkatopic.Spec {
	compact, maxBytes := "compact", strconv.Itoa(MaxModuleRecordBytes)
	return kafkatopic.Spec{Name: topic, Partitions: 1, Configs: map[string]*string{
		"cleanup.policy":    &compact,
		"max.message.bytes": &maxBytes,
	}}
}

// Run creates the topic when it is missing, reads it from the start and
// calls fn with a snapshot of the State: first once it has caught up to the
// end offsets the topic had when Run started (so a restarted core starts
// from the current registry, not from an empty one), then after every poll
// that changed it. fn gets a copy it may keep; it is called from Run's
// goroutine, one call at a time. Run retries while Kafka is unreachable and
// returns nil when ctx ends.
func (w *Watcher) Run(ctx context.Context, fn func(*State)) error {
	log := w.cfg.Logger
	for backoff := 500 * time.Millisecond; ; backoff = min(2*backoff, 10*time.Second) {
		err := w.run(ctx, fn)
		if err == nil || ctx.Err() != nil {
			return nil
		}
		log.Warn("registry: watching failed; retrying", "topic", w.cfg.Topic, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
	}
}

// run does one attempt: a new client, the topic from the start, a fresh
// State. An error means the attempt should be retried.
func (w *Watcher) run(ctx context.Context, fn func(*State)) error {
	log := w.cfg.Logger
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(w.cfg.Brokers...),
		kgo.ClientID("sailstream-registry-watch"),
		kgo.ConsumeTopics(w.cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxBytes(fetchBytes),
		kgo.FetchMaxPartitionBytes(fetchBytes),
		kgo.BrokerMaxReadBytes(2*fetchBytes),
	)
	if err != nil {
		return fmt.Errorf("registry: kafka client: %w", err)
	}
	defer cl.Close()
	if err := kafkatopic.Ensure(ctx, cl, TopicSpec(w.cfg.Topic)); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	// What "caught up" means: every partition read up to the end it had
	// now (the last stable offset, as we read committed records only).
	ends, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, w.cfg.Topic)
	if err != nil {
		return fmt.Errorf("registry: listing end offsets of %s: %w", w.cfg.Topic, err)
	}
	if err := ends.Error(); err != nil {
		return fmt.Errorf("registry: listing end offsets of %s: %w", w.cfg.Topic, err)
	}
	behind := map[int32]int64{} // partition → end offset still to reach
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			behind[o.Partition] = o.Offset
		}
	})

	st := NewState()
	caughtUp := false
	changed := true
	lastRecord := time.Now()
	for {
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		fs.EachError(func(topic string, part int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return
			}
			log.Warn("registry: fetch error", "topic", topic, "partition", part, "err", err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			lastRecord = time.Now()
			if end, ok := behind[r.Partition]; ok && r.Offset+1 >= end {
				delete(behind, r.Partition)
			}
			if err := st.Apply(string(r.Key), r.Value); err != nil {
				w.bad.Add(1)
				log.Error("registry: bad record skipped", "topic", r.Topic, "partition", r.Partition,
					"offset", r.Offset, "key", string(r.Key), "err", err)
				if w.cfg.OnBadRecord != nil {
					w.cfg.OnBadRecord(string(r.Key), err)
				}
				return
			}
			changed = true
		})
		if !caughtUp {
			if len(behind) > 0 && time.Since(lastRecord) < w.cfg.IdleCatchUp {
				continue
			}
			if len(behind) > 0 {
				log.Warn("registry: end offsets not reached, starting from what was read", "missing", behind)
			}
			caughtUp = true
			log.Info("registry: caught up", "topic", w.cfg.Topic, "modules", len(st.Modules),
				"deployments", len(st.Deployments), "bad_records", w.bad.Load())
		}
		if changed {
			changed = false
			fn(st.Clone())
		}
	}
}
