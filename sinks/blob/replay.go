package blob

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/internal/kafkatopic"
	"github.com/sailstream/sailstream/telemetry"
)

// HeaderReplayedFrom marks a republished record with where it was archived
// from: "<topic>/<partition>/<offset>".
const HeaderReplayedFrom = "replayed_from"

// ReplayConfig configures Replay.
type ReplayConfig struct {
	ReadConfig
	// KafkaBrokers are the seed brokers, host:port.
	KafkaBrokers []string
	// Partitions is the partition count Target is created with when it
	// does not exist (default 6; keep the raw topic's count so devices map
	// to partitions as before).
	Partitions int32
	// Target is the topic to republish to (default telemetry.raw). A
	// separate raw topic, consumed by a second core group with its own
	// output and state topics, backfills or compares UDF versions without
	// touching the live pipeline.
	Target string
	// Progress, when set, is called after each archive object is opened.
	Progress func(ReadProgress)
	// Logger receives logs (nil: discarded).
	Logger *slog.Logger
}

// ReplaySummary is what a Replay did.
type ReplaySummary struct {
	ReadStats
	Duration time.Duration
}

// Replay republishes the records cfg selects to cfg.Target: value, key and
// headers byte-exact, plus HeaderReplayedFrom, partitioned by key like the
// bridge does. The producer is idempotent and waits for all in-sync
// replicas; Replay returns once every record is acknowledged. The records
// get a new Kafka timestamp (the replay's time): an old one would put them
// past the topic's retention at once.
func Replay(ctx context.Context, cfg ReplayConfig) (ReplaySummary, error) {
	start := time.Now()
	var sum ReplaySummary
	if err := cfg.ReadConfig.Validate(); err != nil {
		return sum, err
	}
	if len(cfg.KafkaBrokers) == 0 {
		return sum, fmt.Errorf("%w: no Kafka brokers", ErrInvalidConfig)
	}
	if cfg.Target == "" {
		cfg.Target = telemetry.TopicRaw
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.KafkaBrokers...),
		kgo.DefaultProduceTopic(cfg.Target),
		kgo.RequiredAcks(kgo.AllISRAcks()), // with idempotence, the client's default
		kgo.ProducerLinger(5*time.Millisecond),
	)
	if err != nil {
		return sum, fmt.Errorf("blob: replay: kafka client: %w", err)
	}
	defer cl.Close()
	if err := kafkatopic.Ensure(ctx, cl, kafkatopic.Spec{Name: cfg.Target, Partitions: cfg.Partitions}); err != nil {
		return sum, fmt.Errorf("blob: replay: %w", err)
	}

	var (
		mu       sync.Mutex
		firstErr error
	)
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sum.ReadStats, err = Read(pctx, cfg.ReadConfig, func(r Record) error {
		mu.Lock()
		perr := firstErr
		mu.Unlock()
		if perr != nil {
			return perr
		}
		hs := make([]kgo.RecordHeader, 0, len(r.Headers)+1)
		hs = append(hs, r.Headers...)
		hs = append(hs, kgo.RecordHeader{Key: HeaderReplayedFrom,
			Value: []byte(r.Topic + "/" + strconv.Itoa(int(r.Partition)) + "/" + strconv.FormatInt(r.Offset, 10))})
		cl.Produce(pctx, &kgo.Record{Key: r.Key, Value: r.Value, Headers: hs}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
					cancel()
				}
				mu.Unlock()
			}
		})
		return nil
	}, cfg.Progress)
	if ferr := cl.Flush(ctx); err == nil {
		err = ferr
	}
	mu.Lock()
	if firstErr != nil {
		err = firstErr
	}
	mu.Unlock()
	sum.Duration = time.Since(start)
	if err != nil {
		return sum, fmt.Errorf("blob: replay to %s: %w", cfg.Target, err)
	}
	log.Info("replayed", "objects", sum.Objects, "records", sum.Records, "bytes", sum.Bytes,
		"filtered", sum.Filtered, "duplicates", sum.Duplicates, "duration", sum.Duration)
	return sum, nil
}
