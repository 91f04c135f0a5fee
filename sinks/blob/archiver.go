package blob

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sync/errgroup"

	"github.com/sailstream/sailstream/telemetry"
)

// Defaults of Config's zero fields.
const (
	DefaultGroup        = "sailstream-blob"
	DefaultBatchSize    = 10000
	DefaultBatchBytes   = 16 << 20
	DefaultBatchTimeout = 30 * time.Second
	DefaultRetryMin     = 200 * time.Millisecond
	DefaultRetryMax     = 30 * time.Second
	DefaultUploads      = 4
)

// ErrInvalidConfig is wrapped by Config.Validate's errors.
var ErrInvalidConfig = errors.New("blob: invalid config")

// Config configures an Archiver. Zero fields documented with a default get
// it.
type Config struct {
	// KafkaBrokers are the seed brokers, host:port.
	KafkaBrokers []string
	// Group is the consumer group (default DefaultGroup). Its committed
	// offsets say what is archived; a new group starts at the oldest
	// record the topic still has.
	Group string
	// Topic is the raw topic to archive (default telemetry.raw).
	Topic string
	// Store receives the objects. Required.
	Store Store
	// A partition's batch is uploaded when it holds BatchSize records
	// (default DefaultBatchSize) or BatchBytes of keys, values and headers
	// (default DefaultBatchBytes), or BatchTimeout after its first record
	// arrived (default DefaultBatchTimeout), or when a record of another
	// UTC hour arrives.
	BatchSize    int
	BatchBytes   int
	BatchTimeout time.Duration
	// RetryMin and RetryMax bound the exponential backoff between upload
	// attempts (defaults DefaultRetryMin, DefaultRetryMax). Uploads are
	// retried until they succeed or the archiver stops: nothing is skipped.
	RetryMin, RetryMax time.Duration
	// Uploads is how many partitions upload at once (default
	// DefaultUploads); one partition's batches go up in offset order.
	Uploads int
	// Logger receives logs (nil: discarded).
	Logger *slog.Logger
	// Registerer receives the metrics (nil: not registered).
	Registerer prometheus.Registerer
}

func (c Config) withDefaults() Config {
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.Topic == "" {
		c.Topic = telemetry.TopicRaw
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.BatchBytes == 0 {
		c.BatchBytes = DefaultBatchBytes
	}
	if c.BatchTimeout == 0 {
		c.BatchTimeout = DefaultBatchTimeout
	}
	if c.RetryMin == 0 {
		c.RetryMin = DefaultRetryMin
	}
	if c.RetryMax == 0 {
		c.RetryMax = DefaultRetryMax
	}
	if c.Uploads == 0 {
		c.Uploads = DefaultUploads
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports whether c can be used, after defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case len(c.KafkaBrokers) == 0:
		return fmt.Errorf("%w: no Kafka brokers", ErrInvalidConfig)
	case c.Store == nil:
		return fmt.Errorf("%w: no store (set an archive directory or an Azure container)", ErrInvalidConfig)
	case c.BatchSize < 0 || c.BatchBytes < 0 || c.BatchTimeout < 0:
		return fmt.Errorf("%w: batch size, bytes and timeout must not be negative", ErrInvalidConfig)
	case c.RetryMin < 0 || c.RetryMax < c.RetryMin:
		return fmt.Errorf("%w: retry backoff %s..%s", ErrInvalidConfig, c.RetryMin, c.RetryMax)
	case c.Uploads < 0:
		return fmt.Errorf("%w: uploads must not be negative", ErrInvalidConfig)
	}
	return nil
}

type metrics struct {
	objects, records, bytes, retries, resumed, commitErrors prometheus.Counter
	uploadDuration                                          prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		objects: prometheus.NewCounter(prometheus.CounterOpts{Name: "sailstream_blob_objects_total", Help: "Archive objects uploaded."}),
		records: prometheus.NewCounter(prometheus.CounterOpts{Name: "sailstream_blob_records_total", Help: "Raw records archived."}),
		bytes:   prometheus.NewCounter(prometheus.CounterOpts{Name: "sailstream_blob_bytes_total", Help: "Compressed bytes uploaded."}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "sailstream_blob_upload_retries_total", Help: "Failed upload (or resume lookup) attempts that were retried."}),
		resumed: prometheus.NewCounter(prometheus.CounterOpts{Name: "sailstream_blob_resumed_records_total", Help: "Redelivered records skipped because an object already holds them (upload done, commit lost)."}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "sailstream_blob_commit_errors_total",
			Help: "Offset commits that failed after an upload (the records are read again and skipped)."}),
		uploadDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sailstream_blob_upload_duration_seconds",
			Help: "Time to upload one object, retries included.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}),
	}
	if reg != nil {
		reg.MustRegister(m.objects, m.records, m.bytes, m.retries, m.resumed, m.commitErrors, m.uploadDuration)
	}
	return m
}

// Archiver consumes the raw topic and writes it to a Store. See the package
// documentation for the object format and guarantees.
type Archiver struct {
	cfg Config
	log *slog.Logger
	m   *metrics

	mu    sync.Mutex
	parts map[int32]*partition
}

// partition is the archiver's state for one assigned partition.
type partition struct {
	id    int32
	batch []*kgo.Record
	bytes int
	hour  time.Time // UTC hour of the batch's first record
	since time.Time // wall clock when the batch's first record arrived
	// sealed batches wait for upload, in offset order.
	sealed [][]*kgo.Record
	// resolved: the next batch start was checked against the store and
	// no earlier object starts there, so from here on this archiver owns
	// the partition's object chain.
	resolved bool
	// covered: records up to this offset are already in objects written
	// before a restart; commit is the offset to commit for them (-1: none).
	covered int64
	commit  int64
}

// New returns an archiver for cfg.
func New(cfg Config) (*Archiver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Archiver{cfg: cfg, log: cfg.Logger, m: newMetrics(cfg.Registerer), parts: map[int32]*partition{}}, nil
}

// Run archives until ctx ends, then uploads what it has batched (for at
// most 10s) and returns nil; it returns an error only when it cannot start.
func (a *Archiver) Run(ctx context.Context) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(a.cfg.KafkaBrokers...),
		kgo.ConsumerGroup(a.cfg.Group),
		kgo.ConsumeTopics(a.cfg.Topic),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.OnPartitionsRevoked(a.drop),
		kgo.OnPartitionsLost(a.drop),
	)
	if err != nil {
		return fmt.Errorf("blob: kafka client: %w", err)
	}
	defer cl.Close()
	a.log.Info("archiving", "topic", a.cfg.Topic, "group", a.cfg.Group)
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, a.pollWait())
		fs := cl.PollRecords(pctx, 0)
		cancel()
		if fs.IsClientClosed() {
			break
		}
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				a.log.Warn("fetch", "topic", topic, "partition", p, "err", err)
			}
		})
		a.mu.Lock()
		err := a.step(ctx, cl, fs, false)
		a.mu.Unlock()
		cl.AllowRebalance()
		if err != nil {
			if ctx.Err() != nil {
				// An upload was cut short: uploading later batches of its
				// partition now would leave a hole before them.
				return nil
			}
			return err
		}
	}
	// Upload what is batched: a graceful stop leaves nothing to re-read.
	fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a.mu.Lock()
	err = a.step(fctx, cl, kgo.Fetches{}, true)
	a.mu.Unlock()
	if err != nil {
		a.log.Warn("final upload incomplete; the records are archived after a restart", "err", err)
	}
	return nil
}

// drop forgets revoked or lost partitions: their unuploaded batches are
// read again by the next owner from the committed offsets.
func (a *Archiver) drop(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range revoked[a.cfg.Topic] {
		delete(a.parts, p)
	}
}

// pollWait is how long a poll may block: until the oldest batch is due.
func (a *Archiver) pollWait() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	wait := a.cfg.BatchTimeout
	now := time.Now()
	for _, p := range a.parts {
		if len(p.batch) > 0 {
			wait = min(wait, p.since.Add(a.cfg.BatchTimeout).Sub(now))
		}
	}
	return max(wait, 10*time.Millisecond)
}

// step adds the fetched records to their batches, uploads the batches that
// are due (all of them when final) and commits their offsets.
func (a *Archiver) step(ctx context.Context, cl *kgo.Client, fs kgo.Fetches, final bool) error {
	var err error
	fs.EachPartition(func(ft kgo.FetchTopicPartition) {
		if err != nil || ft.Topic != a.cfg.Topic {
			return
		}
		p := a.parts[ft.Partition]
		if p == nil {
			p = &partition{id: ft.Partition, covered: -1, commit: -1}
			a.parts[ft.Partition] = p
		}
		for _, r := range ft.Records {
			if err = a.add(ctx, p, r); err != nil {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	now := time.Now()
	for _, p := range a.parts {
		if len(p.batch) > 0 && (final || now.Sub(p.since) >= a.cfg.BatchTimeout) {
			p.seal()
		}
	}
	return a.flush(ctx, cl)
}

// add puts r in p's batch, sealing the batch first when r is of another
// hour, and after when it is full. At a batch start not yet resolved it
// looks for an object already starting at r (written before a crash, its
// offsets not committed) and skips what it covers.
func (a *Archiver) add(ctx context.Context, p *partition, r *kgo.Record) error {
	if r.Offset <= p.covered {
		a.m.resumed.Inc()
		return nil
	}
	hour := r.Timestamp.UTC().Truncate(time.Hour)
	if len(p.batch) > 0 && !hour.Equal(p.hour) {
		p.seal()
	}
	if len(p.batch) == 0 {
		if !p.resolved {
			last, err := a.existing(ctx, p.id, r)
			if err != nil {
				return err
			}
			if last >= 0 {
				a.log.Info("resuming after an object written before a restart", "partition", p.id, "first", r.Offset, "last", last)
				p.covered, p.commit = last, last+1
				a.m.resumed.Inc()
				return nil
			}
			p.resolved = true
		}
		p.hour, p.since = hour, time.Now()
	}
	p.batch = append(p.batch, r)
	p.bytes += len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		p.bytes += len(h.Key) + len(h.Value)
	}
	if len(p.batch) >= a.cfg.BatchSize || p.bytes >= a.cfg.BatchBytes {
		p.seal()
	}
	return nil
}

func (p *partition) seal() {
	if len(p.batch) > 0 {
		p.sealed = append(p.sealed, p.batch)
	}
	p.batch, p.bytes = nil, 0
}

// existing returns the last offset of the object of p that starts at r, or
// -1 when there is none. It retries store errors like an upload.
func (a *Archiver) existing(ctx context.Context, p int32, r *kgo.Record) (int64, error) {
	prefix := partitionPrefix(r.Timestamp, a.cfg.Topic, p, r.Offset)
	var names []string
	err := a.retry(ctx, "list "+prefix, func() error {
		var err error
		names, err = a.cfg.Store.List(ctx, prefix)
		return err
	})
	if err != nil {
		return -1, err
	}
	last := int64(-1)
	for _, n := range names {
		if o, err := ParseName(n); err == nil && o.Topic == a.cfg.Topic && o.Partition == p && o.First == r.Offset {
			last = max(last, o.Last)
		}
	}
	return last, nil
}

// flush uploads the sealed batches, partitions in parallel and each
// partition's in order, then commits the offsets after them.
func (a *Archiver) flush(ctx context.Context, cl *kgo.Client) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(a.cfg.Uploads)
	commits := map[int32]kgo.EpochOffset{}
	var cmu sync.Mutex
	for _, p := range a.parts {
		if p.commit >= 0 { // after objects found on resume
			commits[p.id] = kgo.EpochOffset{Epoch: -1, Offset: p.commit}
			p.commit = -1
		}
	}
	for _, p := range a.parts {
		if len(p.sealed) == 0 {
			continue
		}
		sealed := p.sealed
		p.sealed = nil
		g.Go(func() error {
			for _, b := range sealed {
				if err := a.upload(gctx, p.id, b); err != nil {
					return err
				}
				last := b[len(b)-1]
				cmu.Lock()
				commits[p.id] = kgo.EpochOffset{Epoch: last.LeaderEpoch, Offset: last.Offset + 1}
				cmu.Unlock()
			}
			return nil
		})
	}
	err := g.Wait()
	// Commit what was uploaded even when a later upload failed.
	if len(commits) > 0 {
		var cerr error
		cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{a.cfg.Topic: commits},
			func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
				if err == nil {
					err = commitResponseErr(resp)
				}
				cerr = err
			})
		if cerr != nil {
			a.m.commitErrors.Inc()
			a.log.Warn("offset commit failed; the archived records will be read again and skipped", "err", cerr)
		}
	}
	return err
}

// upload encodes one batch and puts it, retrying until it succeeds or ctx
// ends.
func (a *Archiver) upload(ctx context.Context, p int32, recs []*kgo.Record) error {
	first, last := recs[0], recs[len(recs)-1]
	name := ObjectName(first.Timestamp, a.cfg.Topic, p, first.Offset, last.Offset)
	data, err := encodeObject(recs)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := a.retry(ctx, "put "+name, func() error { return a.cfg.Store.Put(ctx, name, data) }); err != nil {
		return err
	}
	a.m.uploadDuration.Observe(time.Since(start).Seconds())
	a.m.objects.Inc()
	a.m.records.Add(float64(len(recs)))
	a.m.bytes.Add(float64(len(data)))
	a.log.Debug("uploaded", "object", name, "records", len(recs), "bytes", len(data))
	return nil
}

// retry calls fn until it succeeds, with capped exponential backoff,
// counting each failure; it gives up only when ctx ends.
func (a *Archiver) retry(ctx context.Context, what string, fn func() error) error {
	wait := a.cfg.RetryMin
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("blob: %s: %w", what, err)
		}
		a.m.retries.Inc()
		a.log.Warn("store operation failed; retrying", "op", what, "in", wait, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("blob: %s: %w", what, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, a.cfg.RetryMax)
	}
}

// commitResponseErr returns the first partition error of an offset commit.
func commitResponseErr(resp *kmsg.OffsetCommitResponse) error {
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("partition %d: %w", p.Partition, err)
			}
		}
	}
	return nil
}
