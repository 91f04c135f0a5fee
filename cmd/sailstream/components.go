package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sailstream/sailstream/bridge"
	"github.com/sailstream/sailstream/core"
	"github.com/sailstream/sailstream/edge"
	"github.com/sailstream/sailstream/internal/controlplane"
	"github.com/sailstream/sailstream/sinks/timescale"
	"github.com/sailstream/sailstream/udf"
	"github.com/sailstream/sailstream/web"
)

type edgeCmd struct {
	mqttFlags
	ClientID     string        `help:"MQTT client id." default:"sailstream-edge"`
	Devices      int           `help:"Number of simulated boats." default:"6"`
	Rate         float64       `help:"Total readings per second." default:"10"`
	LateFraction float64       `help:"Fraction of readings published late (held back, keeping their event time)." default:"0.05"`
	LateMin      time.Duration `help:"Shortest hold-back of a late reading." default:"2s"`
	LateMax      time.Duration `help:"Longest hold-back of a late reading." default:"5s"`
	Seed         int64         `help:"Random seed (same seed, same tracks); 0 picks one from the clock."`
	Count        int           `help:"Stop after this many readings (0: run until stopped)."`
	MetricsAddr  string        `help:"Where to serve Prometheus metrics on /metrics; empty disables." default:"127.0.0.1:9461"`
}

func (c *edgeCmd) Run(rc *runContext) error {
	seed := c.Seed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	reg := newRegistry()
	f, err := edge.New(edge.Config{
		MQTTURL: c.MQTTURL, ClientID: c.ClientID, TopicPrefix: c.TopicPrefix,
		Devices: c.Devices, Rate: c.Rate, LateFraction: c.LateFraction, LateMin: c.LateMin, LateMax: c.LateMax,
		Seed: seed, Count: c.Count, Logger: rc.log, Registerer: reg,
	})
	if err != nil {
		return err
	}
	return runWithMetrics(rc, c.MetricsAddr, reg, f.Run)
}

type bridgeCmd struct {
	mqttFlags
	kafkaFlags
	ClientID    string `help:"MQTT client id; keep it stable so the broker keeps the session (and unacknowledged messages) across restarts." default:"sailstream-bridge"`
	BridgeID    string `help:"Name of this bridge in record headers (default: host name)."`
	RawTopic    string `help:"Kafka topic for accepted payloads." default:"telemetry.raw"`
	DLQTopic    string `name:"dlq-topic" help:"Kafka topic for rejected payloads." default:"telemetry.dlq"`
	MetricsAddr string `help:"Where to serve Prometheus metrics on /metrics; empty disables." default:"127.0.0.1:9462"`
}

func (c *bridgeCmd) Run(rc *runContext) error {
	id := c.BridgeID
	if id == "" {
		id, _ = os.Hostname()
	}
	reg := newRegistry()
	b, err := bridge.New(bridge.Config{
		MQTTURL: c.MQTTURL, ClientID: c.ClientID, TopicPrefix: c.TopicPrefix,
		KafkaBrokers: c.KafkaBrokers, RawTopic: c.RawTopic, DLQTopic: c.DLQTopic, BridgeID: id,
		Partitions: c.Partitions, Logger: rc.log, Registerer: reg,
	})
	if err != nil {
		return err
	}
	return runWithMetrics(rc, c.MetricsAddr, reg, b.Run)
}

type coreCmd struct {
	kafkaFlags
	Group           string        `help:"Kafka consumer group of the core instances." default:"sailstream-core"`
	RawTopic        string        `help:"Input topic." default:"telemetry.raw"`
	EnrichedTopic   string        `help:"Output topic for enriched readings." default:"telemetry.enriched"`
	LateTopic       string        `help:"Output topic for late readings." default:"telemetry.late"`
	DLQTopic        string        `name:"dlq-topic" help:"Output topic for readings that failed to decode, validate or run through their UDF." default:"telemetry.dlq"`
	ShadowTopic     string        `help:"Output topic comparing shadow UDF versions with the live ones." default:"telemetry.shadow"`
	MaxOutOfOrder   time.Duration `help:"Allowed out-of-orderness of event time: readings are held up to this long to be processed in event-time order, older ones are late; 0 turns the reordering off." default:"2s"`
	AllowedLateness time.Duration `help:"Still accept readings up to this much behind the watermark (never before a reading of their device already processed)." default:"0s"`
	IdleTimeout     time.Duration `help:"A raw-topic partition without records for this long stops holding back the event-time watermark and releases what it buffered." default:"5s"`
	MetricsAddr     string        `help:"Where to serve Prometheus metrics on /metrics; empty disables." default:"127.0.0.1:9463"`
	Guarantee       string        `help:"Delivery guarantee: exactly-once (outputs, per-device state and offsets in one Kafka transaction per poll; state restored from the changelog) or at-least-once (lower latency, duplicates and lost per-device state after a restart)." enum:"exactly-once,at-least-once" default:"exactly-once"`
	InstanceID      string        `name:"instance-id" help:"Static group membership: a stable name for this instance (pod or host name; never shared by two running instances). Restarted within --session-timeout it gets its partitions back without a rebalance. Also names the default --transactional-id."`
	SessionTimeout  time.Duration `help:"How long the group waits for an instance that stopped heartbeating before moving its partitions." default:"45s"`
	StateTopic      string        `help:"Compacted changelog of per-device state (exactly-once)." default:"core.state"`
	TransactionalID string        `name:"transactional-id" help:"Transactional ID of this instance (exactly-once); keep it stable across restarts of one instance so a restart aborts its predecessor's open transaction at once. Empty: group and --instance-id, or group, host and a random suffix."`
	udfFlags
}

// udfFlags configure the UDF engine and control plane of a core.
type udfFlags struct {
	RegistryTopic   string `help:"Compacted topic holding the deployed UDFs (every core follows it)." default:"udf.modules"`
	CacheDir        string `help:"Compilation cache for UDF modules (default: the user cache directory; '-' for memory only)."`
	AdminAddr       string `help:"Where the UDF admin API listens (deploy, shadow, promote, rollback); empty disables it." default:"127.0.0.1:9470"`
	AdminToken      string `help:"Bearer token the admin API requires; required unless the admin API listens on loopback only."`
	UDFDir          string `name:"udf-dir" help:"Directory watched for .wasm files to deploy; empty disables it."`
	QuarantineAfter int    `help:"Quarantine a UDF version after this many failed batches in a row (negative: never)." default:"5"`
}

// engine creates the UDF engine a core and its control plane share.
func (f udfFlags) engine(log *slog.Logger) (*udf.Engine, error) {
	return udf.NewEngine(udf.Config{CacheDir: f.cacheDir(), Logger: log})
}

// cacheDir resolves --cache-dir: "" is the user cache directory, "-" none.
func (f udfFlags) cacheDir() string {
	switch f.CacheDir {
	case "":
		return controlplane.DefaultCacheDir()
	case "-":
		return ""
	}
	return f.CacheDir
}

func (c *coreCmd) Run(rc *runContext) error {
	reg := newRegistry()
	eng, err := c.engine(rc.log)
	if err != nil {
		return err
	}
	defer eng.Close(context.Background())
	p, err := core.New(core.Config{
		KafkaBrokers: c.KafkaBrokers, Group: c.Group, Partitions: c.Partitions,
		Topics: core.Topics{Raw: c.RawTopic, Enriched: c.EnrichedTopic, Late: c.LateTopic, DLQ: c.DLQTopic,
			Shadow: c.ShadowTopic, Registry: c.RegistryTopic, State: c.StateTopic},
		Guarantee: c.Guarantee, TransactionalID: c.TransactionalID, InstanceID: c.InstanceID, SessionTimeout: c.SessionTimeout,
		MaxOutOfOrder: &c.MaxOutOfOrder, AllowedLateness: c.AllowedLateness, IdleTimeout: c.IdleTimeout, Engine: eng, QuarantineAfter: c.QuarantineAfter,
		Logger: rc.log.With("component", "core"), Registerer: reg,
	})
	if err != nil {
		return err
	}
	plane, err := controlplane.New(controlplane.Config{
		KafkaBrokers: c.KafkaBrokers, Topic: c.RegistryTopic, Engine: eng,
		AdminAddr: c.AdminAddr, AdminToken: c.AdminToken, WatchDir: c.UDFDir,
		Logger: rc.log.With("component", "udf-control"), Registerer: reg,
	})
	if err != nil {
		return err
	}
	return runWithMetrics(rc, c.MetricsAddr, reg, func(ctx context.Context) error {
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error { return plane.Run(gctx) })
		g.Go(func() error { return p.Run(gctx) })
		return g.Wait()
	})
}

type webCmd struct {
	KafkaBrokers  []string `help:"Kafka seed brokers, comma-separated." default:"127.0.0.1:9092"`
	EnrichedTopic string   `help:"Topic of enriched readings to show." default:"telemetry.enriched"`
	HTTPAddr      string   `name:"http-addr" help:"Where the map, WebSocket, REST API and /metrics are served." default:"127.0.0.1:8080"`
	PG            string   `name:"pg" help:"PostgreSQL/TimescaleDB URL (the one 'sink timescale' writes) that serves /api/devices/{id}/track; empty: that endpoint answers 501."`
}

func (c *webCmd) Run(rc *runContext) error {
	reg := newRegistry()
	cfg := web.Config{
		Addr: c.HTTPAddr, KafkaBrokers: c.KafkaBrokers, EnrichedTopic: c.EnrichedTopic,
		Gatherer: reg, Registerer: reg, Logger: rc.log.With("component", "web"),
	}
	if c.PG != "" {
		st, err := timescale.OpenStore(c.PG, timescale.StoreOptions{})
		if err != nil {
			return err
		}
		defer st.Close()
		cfg.Tracks = st // only when set: a nil *Store would be a non-nil interface
	}
	s, err := web.New(cfg)
	if err != nil {
		return err
	}
	return s.Run(rc.ctx)
}
