package core

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/internal/kafkatopic"
	"github.com/sailstream/sailstream/telemetry"
)

const (
	// stage is the HeaderStage value on records the core rejects.
	stage = "core"
	// udfBuiltin names the motion logic compiled into the core; the Wasm
	// UDF host replaces it.
	udfName    = "speed"
	udfVersion = "builtin"
	// maxPollRecords bounds one poll, and so the outputs produced and
	// flushed before one commit.
	maxPollRecords = 10000
	// maxDLQValue is the largest raw value copied byte-exact to the DLQ.
	// Anything larger already failed decoding as too large; keeping only
	// a prefix (with the original size and SHA-256 in headers) stops a
	// record that just fitted on the raw topic from failing to fit on the
	// DLQ once headers are added, which would otherwise stop the pipeline
	// on the same record at every restart.
	maxDLQValue = 512 << 10
	// maxErrorHeader bounds the error header.
	maxErrorHeader = 1 << 10
	// shutdownGrace is how long an in-flight poll may still be produced
	// and committed after the context ends.
	shutdownGrace = 10 * time.Second
)

// Processor consumes the raw topic and produces the enriched, late and DLQ
// topics. Create it with New and start it with Run, once.
type Processor struct {
	cfg       Config
	m         *metrics
	ready     chan struct{}
	readyOnce sync.Once
	started   atomic.Bool

	// mu guards parts and pending. The poll loop holds it while handling
	// a poll; the rebalance callbacks take it to drop revoked partitions.
	mu      sync.Mutex
	parts   map[int32]*partitionState // raw-topic partition → state
	pending map[int32]*kgo.Record     // last produced-but-uncommitted record per partition
}

// New checks cfg, applies defaults and registers the metrics.
func New(cfg Config) (*Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Processor{
		cfg:     cfg,
		m:       m,
		ready:   make(chan struct{}),
		parts:   make(map[int32]*partitionState),
		pending: make(map[int32]*kgo.Record),
	}, nil
}

// Ready is closed once the processor has joined its consumer group and been
// assigned partitions of the raw topic.
func (p *Processor) Ready() <-chan struct{} { return p.ready }

// Run creates the topics that are missing (retrying, with warnings in the
// log, until Kafka answers), joins the consumer group and processes records
// until ctx ends, then commits what it produced, leaves the group and returns
// nil. It returns an error when an output cannot be produced; the records of
// that poll are then not committed and are processed again by the next
// owner of their partition.
func (p *Processor) Run(ctx context.Context) error {
	if !p.started.CompareAndSwap(false, true) {
		return errors.New("core: Run called twice on one Processor; create another with New")
	}
	log := p.cfg.Logger
	// Kafka may well start after the core (compose, a restart): wait for
	// it rather than exit, saying so in the log.
	for backoff := 500 * time.Millisecond; ; backoff = min(2*backoff, 10*time.Second) {
		err := p.ensureTopics(ctx)
		if err == nil {
			break
		}
		log.Warn("kafka not ready; retrying", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(p.cfg.KafkaBrokers...),
		kgo.ClientID("sailstream-core"),
		kgo.WithLogger(kgoLogger{log}),
		kgo.ConsumerGroup(p.cfg.Group),
		kgo.ConsumeTopics(p.cfg.Topics.Raw),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(p.onAssigned),
		kgo.OnPartitionsRevoked(p.onRevoked),
		kgo.OnPartitionsLost(p.onLost),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	)
	if err != nil {
		return fmt.Errorf("core: kafka client: %w", err)
	}

	// work outlives ctx by shutdownGrace so that a poll being handled
	// when ctx ends is still produced and committed.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stopGrace := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(shutdownGrace, cancelWork)
		<-work.Done()
		t.Stop()
	})
	defer stopGrace()

	log.Info("core started", "brokers", p.cfg.KafkaBrokers, "group", p.cfg.Group,
		"raw", p.cfg.Topics.Raw, "enriched", p.cfg.Topics.Enriched,
		"late", p.cfg.Topics.Late, "dlq", p.cfg.Topics.DLQ, "max_out_of_order", p.cfg.MaxOutOfOrder)

	runErr := p.loop(ctx, work, cl)
	if runErr == nil {
		// Everything produced is committed already unless a commit
		// failed; retry that once before leaving the group.
		p.commitPending(work, cl, nil)
	}
	cl.AllowRebalance()
	cl.Close()
	if runErr != nil {
		log.Error("core stopped", "err", runErr)
		return runErr
	}
	log.Info("core stopped")
	return nil
}

func (p *Processor) ensureTopics(ctx context.Context) error {
	adm, err := kgo.NewClient(kgo.SeedBrokers(p.cfg.KafkaBrokers...), kgo.WithLogger(kgoLogger{p.cfg.Logger}))
	if err != nil {
		return fmt.Errorf("core: kafka client: %w", err)
	}
	defer adm.Close()
	t := p.cfg.Topics
	var specs []kafkatopic.Spec
	for _, name := range []string{t.Raw, t.Enriched, t.Late, t.DLQ} {
		specs = append(specs, kafkatopic.Spec{Name: name, Partitions: p.cfg.Partitions})
	}
	if err := kafkatopic.Ensure(ctx, adm, specs...); err != nil {
		return fmt.Errorf("core: %w", err)
	}
	return nil
}

// loop polls, handles, produces and commits until ctx ends.
func (p *Processor) loop(ctx, work context.Context, cl *kgo.Client) error {
	for {
		fetches := cl.PollRecords(ctx, maxPollRecords)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			// Records polled here are not handled and not
			// committed: the next owner of the partitions gets them.
			return nil
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			p.cfg.Logger.Warn("fetch error", "topic", topic, "partition", partition, "err", err)
		})
		if err := p.handlePoll(ctx, work, cl, fetches); err != nil {
			return err
		}
		cl.AllowRebalance()
	}
}

// handlePoll turns one poll into output records, produces them all, waits
// for every acknowledgement and then commits the polled offsets.
func (p *Processor) handlePoll(ctx, work context.Context, cl *kgo.Client, fetches kgo.Fetches) error {
	var (
		out  []*kgo.Record
		last = make(map[int32]*kgo.Record)
	)
	p.mu.Lock()
	fetches.EachPartition(func(ftp kgo.FetchTopicPartition) {
		if ftp.Topic != p.cfg.Topics.Raw || len(ftp.Records) == 0 {
			return
		}
		st := p.parts[ftp.Partition]
		if st == nil {
			st = newPartitionState(p.cfg.MaxOutOfOrder)
			p.parts[ftp.Partition] = st
		}
		for _, rec := range ftp.Records {
			out = append(out, p.handle(st, rec, p.cfg.Now()))
		}
		last[ftp.Partition] = ftp.Records[len(ftp.Records)-1]
		if wm, ok := st.watermark(); ok {
			p.m.watermark.WithLabelValues(strconv.Itoa(int(ftp.Partition))).Set(p.cfg.Now().Sub(wm).Seconds())
		}
	})
	p.mu.Unlock()
	if len(last) == 0 {
		return nil
	}

	if err := cl.ProduceSync(work, out...).FirstErr(); err != nil {
		if ctx.Err() != nil {
			// Shutting down and the grace period ran out: nothing of
			// this poll is committed, so nothing is lost.
			p.cfg.Logger.Warn("shutdown interrupted producing; the poll will be processed again", "err", err)
			return nil
		}
		return fmt.Errorf("core: producing outputs: %w", err)
	}

	p.mu.Lock()
	for part, rec := range last {
		p.pending[part] = rec
	}
	p.mu.Unlock()
	p.commitPending(work, cl, nil)
	return nil
}

// commitPending commits the produced-but-uncommitted offsets of the given
// partitions (all when only is nil). A failed commit is logged and counted:
// the offsets stay pending and the records after the last good commit are
// processed again by whoever consumes the partition next.
func (p *Processor) commitPending(ctx context.Context, cl *kgo.Client, only []int32) {
	p.mu.Lock()
	var recs []*kgo.Record
	if only == nil {
		for _, r := range p.pending {
			recs = append(recs, r)
		}
	} else {
		for _, part := range only {
			if r := p.pending[part]; r != nil {
				recs = append(recs, r)
			}
		}
	}
	p.mu.Unlock()
	if len(recs) == 0 {
		return
	}
	if err := cl.CommitRecords(ctx, recs...); err != nil {
		p.m.commitErr.Inc()
		p.cfg.Logger.Warn("offset commit failed; records will be processed again", "err", err)
		return
	}
	p.mu.Lock()
	for _, r := range recs {
		if p.pending[r.Partition] == r {
			delete(p.pending, r.Partition)
		}
	}
	p.mu.Unlock()
}

// handle turns one raw record into the record to produce: enriched, late or
// DLQ.
func (p *Processor) handle(st *partitionState, rec *kgo.Record, now time.Time) *kgo.Record {
	p.m.in.Inc()
	r, err := telemetry.Decode(string(rec.Key), rec.Value, now)
	if err != nil {
		reason := telemetry.Reason(err)
		p.m.dlq.WithLabelValues(reason).Inc()
		return p.dlqRecord(rec, reason, err)
	}
	v, lateBy, prev := st.admit(r)
	if v != accepted {
		p.m.late.WithLabelValues(r.Device).Inc()
		return p.lateRecord(rec, v, lateBy)
	}

	mv := Motion(prev, r)
	e := telemetry.Enriched{
		Device:      r.Device,
		Seq:         r.Seq,
		Time:        r.Time.UTC(),
		Lat:         r.Lat,
		Lon:         r.Lon,
		DistanceM:   mv.DistanceM,
		SpeedMS:     mv.SpeedMS,
		SpeedKn:     mv.SpeedKn,
		CourseDeg:   mv.CourseDeg,
		ProcessedAt: now.UTC(),
		UDF:         udfName,
		UDFVersion:  udfVersion,
		Fields:      r.Fields,
	}
	if at, ok := receivedAt(rec.Headers); ok {
		lat := now.Sub(at)
		e.ReceivedAt = at.UTC()
		e.LatencyMS = float64(lat) / float64(time.Millisecond)
		p.m.latency.Observe(max(lat, 0).Seconds())
	}
	value, err := json.Marshal(e)
	if err != nil {
		// Not expected (inputs are validated), but never drop.
		p.m.dlq.WithLabelValues(telemetry.ReasonOther).Inc()
		return p.dlqRecord(rec, telemetry.ReasonOther, fmt.Errorf("encoding enriched reading: %w", err))
	}
	p.m.enriched.Inc()
	return &kgo.Record{Topic: p.cfg.Topics.Enriched, Key: []byte(r.Device), Value: value}
}

func (p *Processor) dlqRecord(rec *kgo.Record, reason string, err error) *kgo.Record {
	h := copyHeaders(rec.Headers, 5)
	h = append(h,
		kgo.RecordHeader{Key: telemetry.HeaderReason, Value: []byte(reason)},
		kgo.RecordHeader{Key: telemetry.HeaderError, Value: []byte(truncate(err.Error(), maxErrorHeader))},
		kgo.RecordHeader{Key: telemetry.HeaderStage, Value: []byte(stage)},
	)
	value := rec.Value
	if len(value) > maxDLQValue {
		sum := sha256.Sum256(value)
		h = append(h,
			kgo.RecordHeader{Key: telemetry.HeaderOriginalSize, Value: []byte(strconv.Itoa(len(value)))},
			kgo.RecordHeader{Key: telemetry.HeaderSHA256, Value: []byte(hex.EncodeToString(sum[:]))},
		)
		value = value[:telemetry.MaxPayloadSize]
	}
	return &kgo.Record{Topic: p.cfg.Topics.DLQ, Key: rec.Key, Value: value, Headers: h}
}

func (p *Processor) lateRecord(rec *kgo.Record, v verdict, lateBy time.Duration) *kgo.Record {
	var msg string
	switch v {
	case behindWatermark:
		msg = fmt.Sprintf("event time is %s behind the partition watermark (allowed out-of-orderness %s)", lateBy, p.cfg.MaxOutOfOrder)
	default:
		msg = fmt.Sprintf("event time is not after the device's last accepted reading (%s earlier)", lateBy)
	}
	h := copyHeaders(rec.Headers, 4)
	h = append(h,
		kgo.RecordHeader{Key: telemetry.HeaderReason, Value: []byte(v.reason())},
		kgo.RecordHeader{Key: telemetry.HeaderLateBy, Value: []byte(lateBy.String())},
		kgo.RecordHeader{Key: telemetry.HeaderError, Value: []byte(msg)},
		kgo.RecordHeader{Key: telemetry.HeaderStage, Value: []byte(stage)},
	)
	return &kgo.Record{Topic: p.cfg.Topics.Late, Key: rec.Key, Value: rec.Value, Headers: h}
}

// onAssigned closes Ready on the first assignment that holds a raw-topic
// partition.
func (p *Processor) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	p.cfg.Logger.Info("partitions assigned", "partitions", assigned)
	if len(assigned[p.cfg.Topics.Raw]) > 0 {
		p.readyOnce.Do(func() { close(p.ready) })
	}
}

// onRevoked commits what was produced for the revoked partitions, then
// drops their state: the next owner rebuilds it.
func (p *Processor) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	parts := revoked[p.cfg.Topics.Raw]
	if len(parts) == 0 {
		return
	}
	p.cfg.Logger.Info("partitions revoked", "partitions", parts)
	p.commitPending(ctx, cl, parts)
	p.drop(parts)
}

// onLost drops the state of partitions lost without a clean revoke; their
// offsets can no longer be committed by this member.
func (p *Processor) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	parts := lost[p.cfg.Topics.Raw]
	if len(parts) == 0 {
		return
	}
	p.cfg.Logger.Warn("partitions lost", "partitions", parts)
	p.drop(parts)
}

func (p *Processor) drop(parts []int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, part := range parts {
		delete(p.parts, part)
		delete(p.pending, part)
		p.m.watermark.DeleteLabelValues(strconv.Itoa(int(part)))
	}
}

// receivedAt reads the bridge's receive time from the headers.
func receivedAt(hs []kgo.RecordHeader) (time.Time, bool) {
	for _, h := range hs {
		if h.Key == telemetry.HeaderReceivedAt {
			t, err := time.Parse(time.RFC3339Nano, string(h.Value))
			return t, err == nil
		}
	}
	return time.Time{}, false
}

func copyHeaders(hs []kgo.RecordHeader, extra int) []kgo.RecordHeader {
	out := make([]kgo.RecordHeader, len(hs), len(hs)+extra)
	copy(out, hs)
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// kgoLogger sends franz-go's warnings and errors to slog.
type kgoLogger struct{ l *slog.Logger }

func (k kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lv := slog.LevelWarn
	switch level {
	case kgo.LogLevelError:
		lv = slog.LevelError
	case kgo.LogLevelInfo:
		lv = slog.LevelInfo
	case kgo.LogLevelDebug:
		lv = slog.LevelDebug
	}
	k.l.Log(context.Background(), lv, "kafka: "+msg, keyvals...)
}
