package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/internal/kafkatopic"
	"github.com/sailstream/sailstream/udf"
)

// syncIdle is how long reading to the end waits without records.
const syncIdle = 5 * time.Second

// MaxModuleBytes is the largest module the publisher accepts: what fits in
// one record of the topic (MaxModuleRecordBytes) with room for the record
// batch's framing, key and headers.
const MaxModuleBytes = MaxModuleRecordBytes - 64<<10

// ErrRefused: the module failed validation (not Wasm, wrong ABI, missing
// exports, too big, limits it cannot run under) and was not published. It
// is joined with the cause: errors.Is works for both, e.g. udf.ErrABIVersion.
var ErrRefused = errors.New("registry: module refused")

// ClientOpts are the kgo options a client needs to write the registry
// topic: a batch as big as a module record, every record to partition 0.
func ClientOpts() []kgo.Opt {
	return []kgo.Opt{
		kgo.ProducerBatchMaxBytes(MaxModuleRecordBytes),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.FetchMaxBytes(2 * MaxModuleRecordBytes),
		kgo.BrokerMaxReadBytes(4 * MaxModuleRecordBytes),
	}
}

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// KafkaBrokers are the seed brokers of the cluster holding the topic.
	KafkaBrokers []string
	// Topic is the registry topic; default DefaultTopic.
	Topic string
	// KafkaOpts are added to the client's options (TLS, SASL, client id).
	KafkaOpts []kgo.Opt
	// Engine validates modules before they are published. Nil: the
	// publisher makes its own, with its compilation cache in CacheDir.
	Engine   *udf.Engine
	CacheDir string
	// Logger gets one line per publish and per refusal; nil discards.
	Logger *slog.Logger
	// Registerer gets the publisher's metrics; nil: a private registry.
	Registerer prometheus.Registerer
	// Now is the control-plane clock stamped on deployments; nil: time.Now.
	Now func() time.Time
}

// Validate reports a config that cannot work.
func (c PublisherConfig) Validate() error {
	if len(c.KafkaBrokers) == 0 {
		return errors.New("registry: no Kafka brokers (set --kafka-brokers)")
	}
	return nil
}

// Publisher is the control plane's writer of the registry topic: it
// validates modules with the engine, reads the topic to its end, computes
// the records of an action with the Plan functions, and produces them.
// Its methods are safe for concurrent use and run one at a time (so two
// requests to one process never interleave); two processes acting on the
// same UDF at the same moment are last-writer-wins, like any compacted key.
//
// It owns its Kafka client (rather than borrowing the core's) because it
// consumes the topic from the start with options of its own (record sizes,
// partitioner) that a component's client does not have.
type Publisher struct {
	cfg       PublisherConfig
	topic     string
	log       *slog.Logger
	engine    *udf.Engine
	ownEngine bool
	cl        *kgo.Client
	now       func() time.Time

	published *prometheus.CounterVec
	refused   *prometheus.CounterVec

	mu      sync.Mutex
	ensured bool
	state   *State
	next    map[int32]int64 // next offset to apply, by partition
}

// NewPublisher returns a publisher. It does not contact Kafka until its
// first action.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Publisher{cfg: cfg, topic: cfg.Topic, log: cfg.Logger, engine: cfg.Engine, now: cfg.Now,
		state: NewState(), next: map[int32]int64{}}
	if p.topic == "" {
		p.topic = DefaultTopic
	}
	if p.log == nil {
		p.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if p.now == nil {
		p.now = time.Now
	}
	reg := cfg.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	p.published = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sailstream_udf_registry_actions_total",
		Help: "Registry actions that published records, by action (deploy, shadow, promote, rollback, routes).",
	}, []string{"action"})
	p.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sailstream_udf_registry_refused_total",
		Help: "Modules refused before publishing, by reason (invalid, abi, exports, too_large, manifest).",
	}, []string{"reason"})
	for _, c := range []prometheus.Collector{p.published, p.refused} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registry: registering metrics: %w", err)
		}
	}
	if p.engine == nil {
		e, err := udf.NewEngine(udf.Config{CacheDir: cfg.CacheDir, Logger: cfg.Logger})
		if err != nil {
			return nil, fmt.Errorf("registry: %w", err)
		}
		p.engine, p.ownEngine = e, true
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(cfg.KafkaBrokers...),
		kgo.ClientID("sailstream-udf-publisher"),
		kgo.DefaultProduceTopic(p.topic),
		kgo.ConsumeTopics(p.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}, ClientOpts()...)
	cl, err := kgo.NewClient(append(opts, cfg.KafkaOpts...)...)
	if err != nil {
		if p.ownEngine {
			_ = p.engine.Close(context.Background())
		}
		return nil, fmt.Errorf("registry: kafka client: %w", err)
	}
	p.cl = cl
	return p, nil
}

// Close releases the Kafka client (and the engine, when the publisher made
// it).
func (p *Publisher) Close() {
	p.cl.Close()
	if p.ownEngine {
		_ = p.engine.Close(context.Background())
	}
}

// Topic is the registry topic.
func (p *Publisher) Topic() string { return p.topic }

// Result is what an action did.
type Result struct {
	Action string `json:"action"`
	Name   string `json:"name,omitempty"`
	// Changed is false when the topic already said what the action asks
	// for (nothing was published).
	Changed bool `json:"changed"`
	// Deployment is the UDF's deployment after the action; nil when the
	// action removed it (a rollback to the built-in module).
	Deployment *Deployment `json:"deployment,omitempty"`
	Routes     Routes      `json:"routes"`
	// Module is the SHA-256 of the module deployed or shadowed.
	Module string `json:"module,omitempty"`
}

// Validate checks wasm and m without publishing anything: the module must
// load in the engine under the manifest's limits (which checks its ABI
// version and exports). It returns the candidate to deploy, with its name
// and version resolved (see Manifest). Failures wrap ErrRefused.
func (p *Publisher) Validate(ctx context.Context, wasm []byte, m Manifest) (Candidate, error) {
	c, reason, err := p.validate(ctx, wasm, m)
	if err != nil {
		p.refused.WithLabelValues(reason).Inc()
		return Candidate{}, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	return c, nil
}

func (p *Publisher) validate(ctx context.Context, wasm []byte, m Manifest) (Candidate, string, error) {
	if err := m.Validate(); err != nil {
		return Candidate{}, "manifest", err
	}
	if len(wasm) > MaxModuleBytes {
		return Candidate{}, "too_large", fmt.Errorf("%w: %d bytes, the registry topic takes at most %d", udf.ErrModuleTooLarge, len(wasm), MaxModuleBytes)
	}
	lim, err := m.Limits.UDF()
	if err != nil {
		return Candidate{}, "manifest", err
	}
	mod, err := p.engine.Load(ctx, wasm, lim)
	if err != nil {
		return Candidate{}, refusalReason(err), err
	}
	info := mod.Info()
	_ = mod.Close(ctx)
	sha := Hash(wasm)
	name, version, err := resolveIdentity(m, info, NameFromFile(m.FileName), sha)
	if err != nil {
		return Candidate{}, "manifest", err
	}
	return Candidate{Wasm: wasm, SHA256: sha, Name: name, Version: version, Limits: lim,
		Routes: m.Routes, Default: m.Default}, "", nil
}

func refusalReason(err error) string {
	switch {
	case errors.Is(err, udf.ErrABIVersion):
		return "abi"
	case errors.Is(err, udf.ErrMissingExport):
		return "exports"
	case errors.Is(err, udf.ErrModuleTooLarge):
		return "too_large"
	default:
		return "invalid"
	}
}

// Deploy validates wasm and makes it the live version of its UDF (named by
// m, else the module, else m.FileName), merging m's routes.
func (p *Publisher) Deploy(ctx context.Context, wasm []byte, m Manifest) (Result, error) {
	c, err := p.Validate(ctx, wasm, m)
	if err != nil {
		return Result{}, err
	}
	return p.act(ctx, "deploy", c.Name, c.SHA256, func(s *State, now time.Time) ([]Record, error) {
		return PlanDeploy(s, c, now)
	})
}

// Shadow validates wasm and runs it as the shadow of its UDF.
func (p *Publisher) Shadow(ctx context.Context, wasm []byte, m Manifest) (Result, error) {
	c, err := p.Validate(ctx, wasm, m)
	if err != nil {
		return Result{}, err
	}
	if len(m.Routes) > 0 || m.Default {
		p.log.Warn("udf shadow: the manifest's routes apply on deploy or promote, not to a shadow", "udf", c.Name)
	}
	return p.act(ctx, "shadow", c.Name, c.SHA256, func(s *State, now time.Time) ([]Record, error) {
		return PlanShadow(s, c, now)
	})
}

// Promote makes the shadow of name live.
func (p *Publisher) Promote(ctx context.Context, name string) (Result, error) {
	return p.act(ctx, "promote", name, "", func(s *State, now time.Time) ([]Record, error) {
		return PlanPromote(s, name, now)
	})
}

// Rollback drops the shadow of name if one runs, else makes the previous
// version live again (see PlanRollback).
func (p *Publisher) Rollback(ctx context.Context, name string) (Result, error) {
	return p.act(ctx, "rollback", name, "", func(s *State, now time.Time) ([]Record, error) {
		return PlanRollback(s, name, now)
	})
}

// SetRoutes replaces the routes.
func (p *Publisher) SetRoutes(ctx context.Context, r Routes) (Result, error) {
	return p.act(ctx, "routes", "", "", func(s *State, _ time.Time) ([]Record, error) {
		return PlanRoutes(s, r)
	})
}

// List reads the topic to its end and returns a copy of the state.
func (p *Publisher) List(ctx context.Context) (*State, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.sync(ctx); err != nil {
		return nil, err
	}
	return p.state.Clone(), nil
}

func (p *Publisher) act(ctx context.Context, action, name, module string, planFn func(*State, time.Time) ([]Record, error)) (Result, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.sync(ctx); err != nil {
		return Result{}, err
	}
	recs, err := planFn(p.state, p.now())
	if err != nil {
		return Result{}, err
	}
	res := Result{Action: action, Name: name, Module: module, Changed: len(recs) > 0}
	if len(recs) > 0 {
		krecs := make([]*kgo.Record, len(recs))
		for i, r := range recs {
			krecs[i] = &kgo.Record{Topic: p.topic, Partition: 0, Key: []byte(r.Key), Value: r.Value, Headers: r.Headers}
		}
		if err := p.cl.ProduceSync(ctx, krecs...).FirstErr(); err != nil {
			return Result{}, fmt.Errorf("registry: publishing to %s: %w", p.topic, err)
		}
		if err := p.sync(ctx); err != nil {
			return Result{}, err
		}
		p.published.WithLabelValues(action).Inc()
		p.log.Info("udf registry updated", "action", action, "udf", name, "records", len(recs), "topic", p.topic)
	}
	if d, ok := p.state.Deployments[name]; ok {
		d.Previous = append([]Ref(nil), d.Previous...)
		res.Deployment = &d
	}
	res.Routes = Routes{Rules: append([]Route(nil), p.state.Routes.Rules...), Default: p.state.Routes.Default}
	return res, nil
}

// sync creates the topic the first time, then applies every record up to
// the topic's current end. The caller holds p.mu.
func (p *Publisher) sync(ctx context.Context) error {
	if !p.ensured {
		if err := kafkatopic.Ensure(ctx, p.cl, TopicSpec(p.topic)); err != nil {
			return fmt.Errorf("registry: %w", err)
		}
		p.ensured = true
		p.cl.ForceMetadataRefresh()
	}
	starts, ends, err := p.listOffsets(ctx)
	if err != nil {
		return err
	}
	// The last record of a partition is never compacted away (the log
	// cleaner leaves the active segment alone), so reading up to end-1
	// means seeing a record at offset end-1.
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		start, _ := starts.Lookup(o.Topic, o.Partition)
		if o.Offset > start.Offset && o.Offset > p.next[o.Partition] {
			want[o.Partition] = o.Offset
		}
	})
	lastRecord := time.Now()
	for len(want) > 0 {
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		fs := p.cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("registry: reading %s: %w", p.topic, err)
		}
		var ferr error
		fs.EachError(func(t string, part int32, err error) {
			if ferr == nil && !errors.Is(err, context.DeadlineExceeded) {
				ferr = fmt.Errorf("registry: reading %s partition %d: %w", t, part, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		if fs.NumRecords() == 0 && time.Since(lastRecord) > syncIdle {
			// Only a transaction marker (which no record carries) can sit
			// at end-1 and never arrive: the registry is written without
			// transactions, but be robust to someone who does.
			p.log.Warn("udf registry: end offsets not reached; going on with what was read", "topic", p.topic, "missing", want)
			break
		}
		fs.EachRecord(func(r *kgo.Record) {
			lastRecord = time.Now()
			if err := p.state.Apply(string(r.Key), r.Value); err != nil {
				// A record this version cannot read is skipped, not fatal:
				// the rest of the registry still works.
				p.log.Warn("udf registry: skipping a record", "key", string(r.Key), "offset", r.Offset, "err", err)
			}
			p.next[r.Partition] = r.Offset + 1
			if w, ok := want[r.Partition]; ok && r.Offset+1 >= w {
				delete(want, r.Partition)
			}
		})
	}
	return nil
}

// listOffsets lists the start and end offsets of the topic, waiting a
// little for a topic just created to be known to every broker.
func (p *Publisher) listOffsets(ctx context.Context) (starts, ends kadm.ListedOffsets, err error) {
	adm := kadm.NewClient(p.cl)
	for attempt := 0; ; attempt++ {
		starts, err = adm.ListStartOffsets(ctx, p.topic)
		if err == nil {
			err = starts.Error()
		}
		if err == nil {
			ends, err = adm.ListEndOffsets(ctx, p.topic)
			if err == nil {
				err = ends.Error()
			}
		}
		if err == nil || !errors.Is(err, kerr.UnknownTopicOrPartition) || attempt == 50 {
			break
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("registry: listing offsets of %s: %w", p.topic, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("registry: listing offsets of %s: %w", p.topic, err)
	}
	return starts, ends, nil
}
