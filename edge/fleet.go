// Package edge is the simulated fleet: sailboats moving at random on Zegrze
// lake that report their position over MQTT, as the trackers of the original
// PyFlink pipeline did.
//
// The simulation is split in two so it can be tested without a network or a
// clock. Plan is a pure function of the Config and a start time: the same
// seed gives the same tracks, the same late readings and the same publish
// times. Run takes that plan, anchors it at the wall clock and publishes
// each reading at its PublishAt with QoS 1, so the pipeline downstream sees
// what real devices produce: readings from several devices interleaved, each
// device's sequence numbers increasing, and a few readings arriving late
// (held back a few seconds, keeping their original event time) to exercise
// the core's watermark.
//
// Boats stay on the water: each move may change a boat's speed, its heading
// wanders, and when a move would cross the shore (the outline from package
// lake) the boat reverses on the spot. Every reading carries the boat's true
// speed and course over its last move in the fields sim_speed_ms and
// sim_course_deg, so tests can compare the core's numbers with the truth.
package edge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sailstream/sailstream/telemetry"
)

// Fleet publishes a simulated fleet's readings to an MQTT broker.
type Fleet struct {
	cfg Config
	log *slog.Logger

	published   *prometheus.CounterVec
	late        prometheus.Counter
	errorsTotal prometheus.Counter

	failed atomic.Int64 // publishes that failed during the current Run
}

// New validates cfg and registers the fleet's metrics.
func New(cfg Config) (*Fleet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	cfg = cfg.withDefaults()
	if cfg.ClientID == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		cfg.ClientID = "sailstream-edge-" + hex.EncodeToString(b[:])
	}
	f := &Fleet{
		cfg: cfg,
		log: cfg.Logger,
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sailstream_edge_readings_published_total",
			Help: "Readings published to MQTT and acknowledged by the broker (QoS 1), by device.",
		}, []string{"device"}),
		late: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sailstream_edge_late_total",
			Help: "Readings published late on purpose (held back, original event time kept).",
		}),
		errorsTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sailstream_edge_publish_errors_total",
			Help: "Readings whose publish failed or was not acknowledged in time.",
		}),
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	f.log = f.log.With("component", "edge")
	reg := cfg.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	for _, c := range []prometheus.Collector{f.published, f.late, f.errorsTotal} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("edge: register metrics: %w", err)
		}
	}
	return f, nil
}

// inflight is a publish awaiting its PUBACK.
type inflight struct {
	e   Emission
	tok mqtt.Token
}

// Run connects to the broker and publishes the plan in real time, the first
// reading now. It returns nil when ctx ends, or after Count readings when
// Count is set (an error then if some of them could not be published). A
// publish that fails or is not acknowledged within PublishTimeout is logged,
// counted in sailstream_edge_publish_errors_total, and the fleet goes on; the
// client reconnects by itself when the connection drops.
func (f *Fleet) Run(ctx context.Context) error {
	cfg := f.cfg
	client, err := f.connect(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while connecting
		}
		return err
	}
	defer client.Disconnect(250)
	f.failed.Store(0)

	start := time.Now().Truncate(time.Millisecond)
	f.log.Info("fleet sailing", "broker", cfg.MQTTURL, "client_id", cfg.ClientID,
		"devices", cfg.Devices, "rate", cfg.Rate, "late_fraction", cfg.LateFraction,
		"seed", cfg.Seed, "count", cfg.Count, "topics", topic(cfg.TopicPrefix, "+"))

	// Publishing and waiting for acks are pipelined, MaxInflight deep, so
	// the rate is not bound by one broker round trip per reading.
	acks := make(chan inflight, cfg.MaxInflight)
	acksDone := make(chan struct{})
	go func() {
		defer close(acksDone)
		f.awaitAcks(ctx, acks)
	}()
	finish := func() {
		close(acks)
		<-acksDone
	}

	p := newPlanner(cfg, start, cfg.Count)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	n := 0
	for {
		e, ok := p.next()
		if !ok {
			break
		}
		// Sleep only when ahead of schedule; when behind (a burst, a slow
		// broker) publish straight away to catch up.
		if wait := time.Until(e.PublishAt); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				finish()
				return nil
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			finish()
			return nil
		}
		payload, err := telemetry.Encode(e.Reading)
		if err != nil {
			// The simulator made a reading it cannot encode: a bug, but
			// counted and logged rather than silently skipped.
			f.fail(e, fmt.Errorf("encode: %w", err))
			continue
		}
		tok := client.Publish(e.Topic, 1, false, payload)
		select {
		case acks <- inflight{e: e, tok: tok}:
		case <-ctx.Done():
			finish()
			return nil
		}
		n++
	}
	finish()
	if failed := f.failed.Load(); failed > 0 {
		return fmt.Errorf("edge: %d of %d readings were not published (see the log and sailstream_edge_publish_errors_total)", failed, cfg.Count)
	}
	f.log.Info("fleet done", "readings", n)
	return nil
}

func (f *Fleet) awaitAcks(ctx context.Context, acks <-chan inflight) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for in := range acks {
		timer.Reset(f.cfg.PublishTimeout)
		select {
		case <-in.tok.Done():
			if err := in.tok.Error(); err != nil {
				f.fail(in.e, err)
				continue
			}
			f.published.WithLabelValues(in.e.Reading.Device).Inc()
			if in.e.Late {
				f.late.Inc()
			}
		case <-timer.C:
			f.fail(in.e, fmt.Errorf("no PUBACK from %s within %s (broker down or overloaded?)", f.cfg.MQTTURL, f.cfg.PublishTimeout))
		case <-ctx.Done():
			// Shutting down: what is still in flight is abandoned, not
			// failed; drain so the publisher never blocks.
			for range acks {
			}
			return
		}
	}
}

func (f *Fleet) fail(e Emission, err error) {
	f.failed.Add(1)
	f.errorsTotal.Inc()
	f.log.Error("publish failed", "device", e.Reading.Device, "seq", e.Reading.Seq,
		"topic", e.Topic, "err", err)
}

func (f *Fleet) connect(ctx context.Context) (mqtt.Client, error) {
	cfg := f.cfg
	opts := mqtt.NewClientOptions().
		AddBroker(cfg.MQTTURL).
		SetClientID(cfg.ClientID).
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(10 * time.Second).
		SetConnectTimeout(cfg.ConnectTimeout).
		SetKeepAlive(30 * time.Second).
		SetOrderMatters(false).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			f.log.Warn("connection to broker lost; reconnecting", "broker", cfg.MQTTURL, "err", err)
		}).
		SetReconnectingHandler(func(mqtt.Client, *mqtt.ClientOptions) {
			f.log.Info("reconnecting to broker", "broker", cfg.MQTTURL)
		}).
		SetOnConnectHandler(func(mqtt.Client) {
			f.log.Info("connected to broker", "broker", cfg.MQTTURL)
		})
	if cfg.Username != "" {
		opts.SetUsername(cfg.Username)
		opts.SetPassword(cfg.Password)
	}
	client := mqtt.NewClient(opts)
	tok := client.Connect()
	timer := time.NewTimer(cfg.ConnectTimeout)
	defer timer.Stop()
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return nil, fmt.Errorf("edge: connect to MQTT broker %s: %w (is it running, and is the URL right?)", cfg.MQTTURL, err)
		}
		return client, nil
	case <-timer.C:
		client.Disconnect(0)
		return nil, fmt.Errorf("edge: connect to MQTT broker %s: %w", cfg.MQTTURL, errConnectTimeout(cfg.ConnectTimeout))
	case <-ctx.Done():
		client.Disconnect(0)
		return nil, fmt.Errorf("edge: connect to MQTT broker %s: %w", cfg.MQTTURL, ctx.Err())
	}
}

func errConnectTimeout(d time.Duration) error {
	return errors.New("no CONNACK within " + d.String() + " (is the broker running, and is the URL right?)")
}
