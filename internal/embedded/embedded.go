// Package embedded runs the whole sailstream pipeline in one process: the
// simulated fleet, the bridge, the core and the web server, on an in-process
// MQTT broker (mochi-mqtt) and an in-process Kafka-protocol cluster (franz-go's
// kfake), so that `sailstream up` needs no infrastructure at all.
//
// The embedded broker listens on a real TCP port (127.0.0.1:1883 by default)
// so a real tracker or mosquitto_pub can publish to it, and either part can
// be replaced by a real MQTT broker or Kafka cluster: the components are the
// same ones the standalone subcommands run, talking the same protocols.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kfake"
	"golang.org/x/sync/errgroup"

	"github.com/sailstream/sailstream/bridge"
	"github.com/sailstream/sailstream/core"
	"github.com/sailstream/sailstream/edge"
	"github.com/sailstream/sailstream/internal/controlplane"
	"github.com/sailstream/sailstream/sinks/blob"
	"github.com/sailstream/sailstream/sinks/timescale"
	"github.com/sailstream/sailstream/telemetry"
	"github.com/sailstream/sailstream/udf"
	"github.com/sailstream/sailstream/web"
)

// Config says which parts to run and where.
type Config struct {
	// MQTTListen is where the embedded MQTT broker listens. Ignored when
	// MQTTURL is set.
	MQTTListen string
	// MQTTURL points at an external MQTT broker instead of the embedded one.
	MQTTURL string
	// KafkaBrokers points at an external Kafka cluster instead of kfake.
	KafkaBrokers []string
	// KafkaDataDir, when set, makes the embedded Kafka keep its data there
	// across restarts; empty keeps it in memory.
	KafkaDataDir string
	// HTTPAddr is where the web server (map, /ws, /api, /metrics) listens.
	HTTPAddr string
	// Fleet configures the simulated boats; Fleet.Devices == 0 runs none
	// (only real trackers then).
	Fleet FleetConfig
	// MaxOutOfOrder is the core's allowed out-of-orderness of event time
	// (core.Config.MaxOutOfOrder): nil means core.DefaultMaxOutOfOrder,
	// zero turns the reorder buffer off.
	MaxOutOfOrder *time.Duration
	// Partitions is the partition count of the topics created.
	Partitions int32
	// CacheDir is the UDF compilation cache ("" keeps it in memory).
	CacheDir string
	// AdminAddr is where the UDF admin API listens (loopback: no token
	// needed); empty disables it. AdminToken is its bearer token.
	AdminAddr  string
	AdminToken string
	// UDFDir is the directory watched for .wasm files to deploy; empty
	// disables it.
	UDFDir string
	// ArchiveDir, when set, runs the raw archiver (sinks/blob) into this
	// local directory.
	ArchiveDir string
	// PG, when set, runs the Timescale sink into this database and serves
	// the track API from it.
	PG string

	Logger *slog.Logger
	// Banner receives the human-readable lines saying what started where;
	// nil discards them.
	Banner io.Writer
}

// FleetConfig is the subset of the simulator's settings `up` exposes.
type FleetConfig struct {
	Devices      int
	Rate         float64
	LateFraction float64
	Seed         int64
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.MQTTURL == "" {
		if _, _, err := net.SplitHostPort(c.MQTTListen); err != nil {
			return fmt.Errorf("embedded: MQTT listen address %q: %w", c.MQTTListen, err)
		}
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		return fmt.Errorf("embedded: HTTP address %q: %w", c.HTTPAddr, err)
	}
	if c.Fleet.Devices < 0 || c.Fleet.Rate < 0 || c.Fleet.LateFraction < 0 || c.Fleet.LateFraction > 1 {
		return errors.New("embedded: fleet devices and rate must be ≥ 0 and the late fraction in [0, 1]")
	}
	if c.Fleet.Devices > 0 && c.Fleet.Rate == 0 {
		return errors.New("embedded: a fleet needs a rate above 0 readings/s")
	}
	return nil
}

// Stack is a running pipeline.
type Stack struct {
	cfg      Config
	log      *slog.Logger
	reg      *prometheus.Registry
	web      *web.Server
	started  chan struct{}
	mqttURL  string
	brokers  []string
	httpAddr string
}

// New returns a Stack for cfg; Run starts it.
func New(cfg Config) (*Stack, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Partitions == 0 {
		cfg.Partitions = 6
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Banner == nil {
		cfg.Banner = io.Discard
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Stack{cfg: cfg, log: log, reg: reg, started: make(chan struct{})}, nil
}

// Started is closed once every part is up; HTTPAddr, MQTTURL and
// KafkaBrokers are valid from then on.
func (s *Stack) Started() <-chan struct{} { return s.started }

// HTTPAddr is the web server's listening address.
func (s *Stack) HTTPAddr() string { return s.httpAddr }

// MQTTURL is the MQTT broker the stack uses (embedded or external).
func (s *Stack) MQTTURL() string { return s.mqttURL }

// KafkaBrokers are the Kafka seed brokers the stack uses.
func (s *Stack) KafkaBrokers() []string { return s.brokers }

// Registry is the metrics registry every part registers on (served on
// /metrics).
func (s *Stack) Registry() *prometheus.Registry { return s.reg }

// Run starts every part and runs until ctx ends or a part fails.
func (s *Stack) Run(ctx context.Context) error {
	cfg := s.cfg
	s.mqttURL = cfg.MQTTURL
	if s.mqttURL == "" {
		broker, addr, err := startMQTT(cfg.MQTTListen, s.log.With("component", "mqtt"))
		if err != nil {
			return err
		}
		defer broker.Close()
		s.mqttURL = "tcp://" + addr
		fmt.Fprintf(cfg.Banner, "MQTT broker (embedded mochi-mqtt)  %s   publish to sailstream/devices/{id}/telemetry\n", s.mqttURL)
	} else {
		fmt.Fprintf(cfg.Banner, "MQTT broker (external)             %s\n", s.mqttURL)
	}

	s.brokers = cfg.KafkaBrokers
	if len(s.brokers) == 0 {
		opts := []kfake.Opt{kfake.NumBrokers(1), kfake.DefaultNumPartitions(int(cfg.Partitions)), kfake.AllowAutoTopicCreation()}
		if cfg.KafkaDataDir != "" {
			opts = append(opts, kfake.DataDir(cfg.KafkaDataDir))
		}
		cluster, err := kfake.NewCluster(opts...)
		if err != nil {
			return fmt.Errorf("embedded: starting the in-process Kafka cluster: %w", err)
		}
		defer cluster.Close()
		s.brokers = cluster.ListenAddrs()
		fmt.Fprintf(cfg.Banner, "Kafka (embedded kfake)             %v\n", s.brokers)
	} else {
		fmt.Fprintf(cfg.Banner, "Kafka (external)                   %v\n", s.brokers)
	}

	sinks, tracks, err := s.sinks()
	if err != nil {
		return err
	}
	webCfg := web.Config{
		Addr:          cfg.HTTPAddr,
		KafkaBrokers:  s.brokers,
		EnrichedTopic: telemetry.TopicEnriched,
		Gatherer:      s.reg,
		Registerer:    s.reg,
		Logger:        s.log.With("component", "web"),
	}
	if tracks != nil {
		defer tracks.Close()
		webCfg.Tracks = tracks
	}
	webSrv, err := web.New(webCfg)
	if err != nil {
		return err
	}
	eng, err := udf.NewEngine(udf.Config{CacheDir: cfg.CacheDir, Logger: s.log.With("component", "udf")})
	if err != nil {
		return err
	}
	defer eng.Close(context.WithoutCancel(ctx))
	proc, err := core.New(core.Config{
		KafkaBrokers:  s.brokers,
		Engine:        eng,
		Partitions:    cfg.Partitions,
		MaxOutOfOrder: cfg.MaxOutOfOrder,
		Registerer:    s.reg,
		Logger:        s.log.With("component", "core"),
	})
	if err != nil {
		return err
	}
	plane, err := controlplane.New(controlplane.Config{
		KafkaBrokers: s.brokers, Engine: eng,
		AdminAddr: cfg.AdminAddr, AdminToken: cfg.AdminToken, WatchDir: cfg.UDFDir,
		Logger: s.log.With("component", "udf-control"), Registerer: s.reg,
	})
	if err != nil {
		return err
	}
	br, err := bridge.New(bridge.Config{
		MQTTURL:      s.mqttURL,
		ClientID:     "sailstream-bridge-embedded",
		KafkaBrokers: s.brokers,
		BridgeID:     "embedded",
		Partitions:   cfg.Partitions,
		Registerer:   s.reg,
		Logger:       s.log,
	})
	if err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return webSrv.Run(gctx) })
	g.Go(func() error { return proc.Run(gctx) })
	g.Go(func() error { return br.Run(gctx) })
	g.Go(func() error { return plane.Run(gctx) })
	for _, run := range sinks {
		g.Go(func() error { return run(gctx) })
	}

	// The fleet starts publishing once the bridge is subscribed, so the
	// first readings are not lost to a broker with no subscriber.
	var fleet *edge.Fleet
	if cfg.Fleet.Devices > 0 {
		fleet, err = edge.New(edge.Config{
			MQTTURL:      s.mqttURL,
			ClientID:     "sailstream-edge-embedded",
			Devices:      cfg.Fleet.Devices,
			Rate:         cfg.Fleet.Rate,
			LateFraction: cfg.Fleet.LateFraction,
			Seed:         cfg.Fleet.Seed,
			Registerer:   s.reg,
			Logger:       s.log,
		})
		if err != nil {
			return err
		}
	}
	g.Go(func() error {
		for _, ready := range []<-chan struct{}{webSrv.Ready(), proc.Ready(), br.Ready(), plane.Ready()} {
			select {
			case <-ready:
			case <-gctx.Done():
				return nil
			}
		}
		s.httpAddr = webSrv.Addr()
		fmt.Fprintf(cfg.Banner, "Bridge, core                       running\n")
		if a := plane.AdminAddr(); a != "" {
			fmt.Fprintf(cfg.Banner, "UDF admin API                      http://%s   (sailstream udf deploy FILE.wasm)\n", a)
		}
		if d := plane.WatchDir(); d != "" {
			fmt.Fprintf(cfg.Banner, "UDF directory                      %s   (drop a .wasm here to deploy it)\n", d)
		}
		if cfg.ArchiveDir != "" {
			fmt.Fprintf(cfg.Banner, "Raw archive                        %s   (sailstream replay --archive-dir %s)\n", cfg.ArchiveDir, cfg.ArchiveDir)
		}
		if cfg.PG != "" {
			fmt.Fprintf(cfg.Banner, "Timescale sink                     writing enriched readings to PostgreSQL\n")
		}
		if fleet != nil {
			fmt.Fprintf(cfg.Banner, "Simulated fleet                    %d boats, %.3g readings/s, seed %d\n", cfg.Fleet.Devices, cfg.Fleet.Rate, cfg.Fleet.Seed)
		}
		fmt.Fprintf(cfg.Banner, "Map                                http://%s/\n", browsable(s.httpAddr))
		fmt.Fprintf(cfg.Banner, "API, metrics                       http://%s/api/devices  http://%s/metrics\n", browsable(s.httpAddr), browsable(s.httpAddr))
		close(s.started)
		if fleet == nil {
			return nil
		}
		return fleet.Run(gctx)
	})
	err = g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// sinks builds the sinks the config asks for: the raw archiver into a
// local directory and the Timescale sink, with the store the track API
// reads (nil without a database).
func (s *Stack) sinks() ([]func(context.Context) error, *timescale.Store, error) {
	var runs []func(context.Context) error
	if s.cfg.ArchiveDir != "" {
		store, err := blob.NewDirStore(s.cfg.ArchiveDir)
		if err != nil {
			return nil, nil, err
		}
		a, err := blob.New(blob.Config{
			KafkaBrokers: s.brokers, Store: store,
			// Small, frequent objects: a local demo wants to see them.
			BatchTimeout: 5 * time.Second,
			Registerer:   s.reg, Logger: s.log.With("component", "sink-blob"),
		})
		if err != nil {
			return nil, nil, err
		}
		runs = append(runs, a.Run)
	}
	if s.cfg.PG == "" {
		return runs, nil, nil
	}
	ts, err := timescale.New(timescale.Config{
		DatabaseURL: s.cfg.PG, KafkaBrokers: s.brokers, Partitions: s.cfg.Partitions,
		Registerer: s.reg, Logger: s.log.With("component", "sink-timescale"),
	})
	if err != nil {
		return nil, nil, err
	}
	st, err := timescale.OpenStore(s.cfg.PG, timescale.StoreOptions{})
	if err != nil {
		return nil, nil, err
	}
	return append(runs, ts.Run), st, nil
}

// browsable turns a listening address into one a browser can open.
func browsable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "127.0.0.1" || host == "" || host == "::" || host == "0.0.0.0" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// startMQTT starts the embedded mochi-mqtt broker, open to anonymous clients
// (it listens on loopback by default; a user who binds it elsewhere should
// put a real broker with authentication in front instead).
func startMQTT(addr string, log *slog.Logger) (*mqtt.Server, string, error) {
	srv := mqtt.New(&mqtt.Options{Logger: log, InlineClient: false})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, "", fmt.Errorf("embedded: MQTT broker: %w", err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})
	if err := srv.AddListener(tcp); err != nil {
		return nil, "", fmt.Errorf("embedded: MQTT broker cannot listen on %s (is another broker running? use --mqtt-listen or --mqtt-url): %w", addr, err)
	}
	go func() {
		if err := srv.Serve(); err != nil {
			log.Error("MQTT broker stopped", "err", err)
		}
	}()
	return srv, tcp.Address(), nil
}
