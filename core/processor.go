package core

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sailstream/sailstream/internal/kafkatopic"
	"github.com/sailstream/sailstream/telemetry"
)

const (
	// stage is the HeaderStage value on records the core rejects.
	stage = "core"
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

	// mu guards parts, pending and committed. The poll loop holds it
	// while handling a poll; the rebalance callbacks take it to add
	// assigned and drop revoked partitions.
	mu        sync.Mutex
	parts     map[int32]*partitionState // raw-topic partition → state
	pending   map[int32]kgo.EpochOffset // offset to commit per partition, once its outputs are flushed
	committed map[int32]kgo.EpochOffset // last offset committed per partition

	router    *router
	health    *health // loop only
	lastTable *table  // loop only
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
		cfg:       cfg,
		m:         m,
		ready:     make(chan struct{}),
		parts:     make(map[int32]*partitionState),
		pending:   make(map[int32]kgo.EpochOffset),
		committed: make(map[int32]kgo.EpochOffset),
		router:    newRouter(cfg.Engine, cfg.Logger, m),
		health:    newHealth(cfg),
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
	// The UDFs: the builtin first, then the registry as it stands (a
	// restarted core starts with what is deployed, not the builtin).
	stopUDFs, err := p.startUDFs(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer stopUDFs()
	select {
	case <-p.router.ready:
	case <-ctx.Done():
		return nil
	}

	if p.eos() {
		return p.runEOS(ctx, log)
	}
	cl, err := kgo.NewClient(p.clientOpts(log)...)
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

	log.Info("core started", "guarantee", p.cfg.Guarantee, "instance_id", p.cfg.InstanceID, "brokers", p.cfg.KafkaBrokers, "group", p.cfg.Group,
		"raw", p.cfg.Topics.Raw, "enriched", p.cfg.Topics.Enriched,
		"late", p.cfg.Topics.Late, "dlq", p.cfg.Topics.DLQ, "shadow", p.cfg.Topics.Shadow,
		"registry", p.cfg.Topics.Registry, "max_out_of_order", *p.cfg.MaxOutOfOrder,
		"allowed_lateness", p.cfg.AllowedLateness, "idle_timeout", p.cfg.IdleTimeout, "udfs", p.router.cur.Load().sig)

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
	for _, name := range []string{t.Raw, t.Enriched, t.Late, t.DLQ, t.Shadow} {
		specs = append(specs, kafkatopic.Spec{Name: name, Partitions: p.cfg.Partitions})
	}
	if err := kafkatopic.Ensure(ctx, adm, specs...); err != nil {
		return fmt.Errorf("core: %w", err)
	}
	if !p.eos() {
		return nil
	}
	// The changelog has as many partitions as the raw topic, so that a
	// device's state is in the partition with the number of the raw
	// partition its readings are in.
	td, err := kadm.NewClient(adm).ListTopics(ctx, t.Raw)
	if err == nil {
		err = td.Error()
	}
	if err != nil {
		return fmt.Errorf("core: describing %s: %w", t.Raw, err)
	}
	n := int32(len(td[t.Raw].Partitions))
	compact := "compact"
	if err := kafkatopic.Ensure(ctx, adm, kafkatopic.Spec{Name: t.State, Partitions: n, Configs: map[string]*string{"cleanup.policy": &compact}}); err != nil {
		return fmt.Errorf("core: %w", err)
	}
	return nil
}

// loop polls, handles, produces and commits until ctx ends.
func (p *Processor) loop(ctx, work context.Context, cl *kgo.Client) error {
	for {
		fetches, ok := p.poll(ctx, cl)
		if !ok {
			return nil
		}
		if err := p.handlePoll(ctx, work, cl, fetches); err != nil {
			return err
		}
		cl.AllowRebalance()
	}
}

// poller is what each guarantee polls: a kgo.Client or a
// kgo.GroupTransactSession.
type poller interface {
	PollRecords(ctx context.Context, maxPollRecords int) kgo.Fetches
}

// poll waits at most a short tick for records, so that buffered readings
// are released as partitions fall idle even when nothing arrives, and logs
// fetch errors. It reports false when the client is closed or ctx ended:
// records polled then are not handled and not committed, so the next owner
// of their partitions gets them (with exactly-once, from the state of the
// last transaction).
func (p *Processor) poll(ctx context.Context, c poller) (kgo.Fetches, bool) {
	tick := min(max(p.cfg.IdleTimeout/10, 10*time.Millisecond), 250*time.Millisecond)
	pctx, cancel := context.WithTimeout(ctx, tick)
	fetches := c.PollRecords(pctx, maxPollRecords)
	cancel()
	if fetches.IsClientClosed() || ctx.Err() != nil {
		return nil, false
	}
	fetches.EachError(func(topic string, partition int32, err error) {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return // the poll tick
		}
		p.cfg.Logger.Warn("fetch error", "topic", topic, "partition", partition, "err", err)
	})
	return fetches, true
}

// handlePoll turns one poll into output records (and releases what the
// watermarks let out of the reorder buffers, even when the poll is empty),
// produces them all, waits for every acknowledgement and then commits, per
// partition, up to the lowest offset still buffered.
func (p *Processor) handlePoll(ctx, work context.Context, cl *kgo.Client, fetches kgo.Fetches) error {
	commits := make(map[int32]kgo.EpochOffset)
	// One routing table for the whole poll: no reading is processed half
	// by one UDF version and half by another.
	tbl := p.acquireTable()
	defer p.router.release()
	wall := time.Now() // processing time, for idleness (p.cfg.Now may be a fixed test clock)
	p.mu.Lock()
	out, err := p.processPoll(work, tbl, fetches, wall, func(part int32, st *partitionState, out []*kgo.Record) ([]*kgo.Record, error) {
		if eo, ok := st.commitOffset(); ok && eo != p.committed[part] {
			commits[part] = eo
		}
		return out, nil
	})
	p.mu.Unlock()
	if err != nil {
		if ctx.Err() != nil {
			p.cfg.Logger.Warn("shutdown interrupted a UDF call; the poll will be processed again", "err", err)
			return nil
		}
		// A module closed under the loop or the grace period ended:
		// nothing of this poll is committed, so nothing is lost.
		return err
	}
	if len(out) == 0 && len(commits) == 0 {
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
	for part, eo := range commits {
		if p.parts[part] != nil { // not revoked meanwhile
			p.pending[part] = eo
		}
	}
	p.mu.Unlock()
	p.commitPending(work, cl, nil)
	return nil
}

// processPoll is the part of a poll both guarantees share: the polled
// records of every raw partition are admitted (decoded, judged against the
// watermark, buffered), the readings the watermark passed are run through
// their UDFs, and each partition's state is then handed to perPartition
// (which adds commits or changelog records), with the buffered and idle
// gauges set on the way. The caller holds p.mu.
func (p *Processor) processPoll(work context.Context, tbl *table, fetches kgo.Fetches, wall time.Time,
	perPartition func(part int32, st *partitionState, out []*kgo.Record) ([]*kgo.Record, error)) (out []*kgo.Record, err error) {
	fetches.EachPartition(func(ftp kgo.FetchTopicPartition) {
		if err != nil || ftp.Topic != p.cfg.Topics.Raw || len(ftp.Records) == 0 {
			return
		}
		st := p.partition(ftp.Partition, wall)
		st.active = wall
		if out, err = p.handleRecords(work, tbl, st, ftp.Records, p.cfg.Now(), out); err != nil {
			return
		}
		if wm, ok := st.watermark(); ok {
			p.m.watermark.WithLabelValues(strconv.Itoa(int(ftp.Partition))).Set(p.cfg.Now().Sub(wm).Seconds())
		}
	})
	if err == nil {
		now := p.cfg.Now()
		releaseReady(p.parts, wall, p.cfg.IdleTimeout, func(_ int32, st *partitionState, batches []deviceBatch) {
			for _, b := range batches {
				if err != nil {
					return
				}
				out, err = p.runDevice(work, tbl, st, b, now, out)
			}
		})
	}
	buffered, idle := 0, 0
	for part, st := range p.parts {
		buffered += st.buffered
		if st.idle(wall, p.cfg.IdleTimeout) {
			idle++
		}
		if err == nil {
			out, err = perPartition(part, st, out)
		}
	}
	p.m.buffered.Set(float64(buffered))
	p.m.idle.Set(float64(idle))
	return out, err
}

// partition returns the state of a raw-topic partition, creating it (active
// at now) when missing. The caller holds p.mu.
func (p *Processor) partition(part int32, now time.Time) *partitionState {
	st := p.parts[part]
	if st == nil {
		st = newPartitionState(*p.cfg.MaxOutOfOrder)
		st.allowedLateness = p.cfg.AllowedLateness
		if p.eos() {
			st.dirty = make(map[string]struct{})
		}
		st.active = now
		p.parts[part] = st
	}
	return st
}

// acquireTable loads the current routing table for one poll and, when it
// changed since the previous poll, observes how long picking it up took.
func (p *Processor) acquireTable() *table {
	start := time.Now()
	t := p.router.acquire()
	if t != p.lastTable {
		if p.lastTable != nil {
			p.m.swapPause.Observe(time.Since(start).Seconds())
			p.cfg.Logger.Info("udf swap applied", "generation", t.gen, "table", t.sig)
		}
		p.lastTable = t
	}
	return t
}

// commitPending commits the produced-but-uncommitted offsets of the given
// partitions (all when only is nil). A failed commit is logged and counted:
// the offsets stay pending and the records after the last good commit are
// processed again by whoever consumes the partition next.
//
// A pending offset never passes a reading still in a reorder buffer: the
// buffers live in memory only, so a reading is committed only once its
// output is flushed, and a restart or the next owner of the partition
// consumes every buffered reading again (at-least-once: the readings after
// it that were already released are then produced again too).
func (p *Processor) commitPending(ctx context.Context, cl *kgo.Client, only []int32) {
	p.mu.Lock()
	offs := make(map[int32]kgo.EpochOffset)
	if only == nil {
		maps.Copy(offs, p.pending)
	} else {
		for _, part := range only {
			if eo, ok := p.pending[part]; ok {
				offs[part] = eo
			}
		}
	}
	p.mu.Unlock()
	if len(offs) == 0 {
		return
	}
	var cerr error
	cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{p.cfg.Topics.Raw: offs},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				cerr = err
				return
			}
			for _, t := range resp.Topics {
				for _, pt := range t.Partitions {
					if err := kerr.ErrorForCode(pt.ErrorCode); err != nil && cerr == nil {
						cerr = err
					}
				}
			}
		})
	if cerr != nil {
		p.m.commitErr.Inc()
		p.cfg.Logger.Warn("offset commit failed; records will be processed again", "err", cerr)
		return
	}
	p.mu.Lock()
	for part, eo := range offs {
		if p.pending[part] == eo {
			delete(p.pending, part)
		}
		if p.parts[part] != nil {
			p.committed[part] = eo
		}
	}
	p.mu.Unlock()
}

// handleRecords admits one partition's records of a poll (decode,
// validate, event time, duplicates: rejects go to the DLQ and late topics
// at once). With buffering, accepted readings wait in the partition's
// reorder buffer for the watermark (releaseReady); without, they are
// grouped by device in arrival order and each device's UDF runs once on its
// batch. Everything to produce is appended to out.
func (p *Processor) handleRecords(ctx context.Context, tbl *table, st *partitionState, recs []*kgo.Record, now time.Time, out []*kgo.Record) ([]*kgo.Record, error) {
	var batches []deviceBatch
	index := map[string]int{}
	for _, rec := range recs {
		p.m.in.Inc()
		r, err := telemetry.Decode(string(rec.Key), rec.Value, now)
		if err != nil {
			reason := telemetry.Reason(err)
			p.m.dlq.WithLabelValues(reason).Inc()
			out = append(out, p.dlqRecord(rec, reason, err))
			continue
		}
		switch v, lateBy := st.admit(r); v {
		case accepted:
		case duplicate:
			p.m.duplicates.WithLabelValues(r.Device).Inc()
			out = append(out, p.lateRecord(rec, v, lateBy))
			continue
		default:
			p.m.late.WithLabelValues(r.Device).Inc()
			out = append(out, p.lateRecord(rec, v, lateBy))
			continue
		}
		if st.buffering() {
			st.hold(pendingReading{rec: rec, r: r})
			continue
		}
		i, ok := index[r.Device]
		if !ok {
			i = len(batches)
			index[r.Device] = i
			batches = append(batches, deviceBatch{device: r.Device})
		}
		batches[i].items = append(batches[i].items, pendingReading{rec: rec, r: r})
	}
	if len(recs) > 0 {
		st.handled(recs[len(recs)-1])
	}
	for _, b := range batches {
		var err error
		if out, err = p.runDevice(ctx, tbl, st, b, now, out); err != nil {
			return out, err
		}
	}
	return out, nil
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
		msg = fmt.Sprintf("event time is %s behind the partition watermark (allowed out-of-orderness %s, allowed lateness %s)", lateBy, *p.cfg.MaxOutOfOrder, p.cfg.AllowedLateness)
	case duplicate:
		msg = "the device's reading with this seq and event time was already accepted (redelivery); not processed again"
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

// onAssigned starts the state of the assigned raw-topic partitions (each
// holds the operator's watermark back until it has one or falls idle) and
// closes Ready on the first assignment that holds a raw-topic partition.
func (p *Processor) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	p.cfg.Logger.Info("partitions assigned", "partitions", assigned)
	p.mu.Lock()
	now := time.Now()
	for _, part := range assigned[p.cfg.Topics.Raw] {
		if _, had := p.parts[part]; had && p.eos() {
			// Assigned a partition this instance never saw revoked: its
			// state here may be stale. Read it back from the changelog.
			p.cfg.Logger.Warn("partition assigned again without a revoke: restoring its state from the changelog", "partition", part)
			delete(p.parts, part)
		}
		p.partition(part, now)
	}
	p.mu.Unlock()
	if len(assigned[p.cfg.Topics.Raw]) > 0 {
		p.readyOnce.Do(func() { close(p.ready) })
	}
}

// onRevoked commits what was produced for the revoked partitions, then
// drops their state, reorder buffers included: the commit stays below the
// buffered readings, so the next owner consumes them again and rebuilds
// the state.
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
		delete(p.committed, part)
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

// clientOpts are the Kafka client options both guarantees share: the
// consumer group (static when InstanceID is set), read_committed fetches,
// manual commits, rebalances held back while a poll is handled, and the
// assignment callbacks.
func (p *Processor) clientOpts(log *slog.Logger) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(p.cfg.KafkaBrokers...),
		kgo.ClientID("sailstream-core"),
		kgo.WithLogger(kgoLogger{log}),
		kgo.ConsumerGroup(p.cfg.Group),
		kgo.ConsumeTopics(p.cfg.Topics.Raw),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(),
		// Rebalances wait for the end of the poll (and, exactly-once, of
		// its transaction), so the callbacks never see a half-handled poll.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(p.onAssigned),
		kgo.OnPartitionsRevoked(p.onRevoked),
		kgo.OnPartitionsLost(p.onLost),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	}
	if p.cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(p.cfg.InstanceID))
	}
	if p.cfg.SessionTimeout > 0 {
		opts = append(opts, kgo.SessionTimeout(p.cfg.SessionTimeout))
	}
	return opts
}
