// Package bridge forwards device telemetry from an MQTT broker to Kafka.
//
// It subscribes to {TopicPrefix}/# with QoS 1 and produces every payload,
// byte for byte, to the raw topic (telemetry.raw), keyed by the device id
// taken from the MQTT topic {TopicPrefix}/{device}/telemetry, so that each
// device's readings stay in order on one partition. It does not decode the
// payload: the core does, so that a decoding bug is fixed in one place and
// the raw topic can always be replayed.
//
// The bridge is the point where a reading leaves the device's broker, so it
// must not lose one. It therefore:
//
//   - keeps a persistent MQTT session (CleanSession false, a fixed ClientID):
//     what is published while the bridge is down or restarting waits in the
//     broker;
//   - acknowledges an MQTT message (PUBACK) only after Kafka acknowledged its
//     record (acks=all, idempotent producer). A message whose record Kafka
//     did not take stays unacknowledged and the broker redelivers it when
//     the bridge reconnects. The result is at-least-once: a crash between
//     Kafka's ack and the PUBACK produces the record twice (the core keys
//     its state by device and sequence number);
//   - never drops what it cannot forward: a message on a topic of the wrong
//     shape or a payload over telemetry.MaxPayloadSize goes to the
//     dead-letter topic with the reason in a header, and is counted.
//
// On shutdown it stops taking messages (they stay unacknowledged and are
// redelivered), flushes Kafka, acknowledges what Kafka took, and disconnects
// without unsubscribing, so the session keeps collecting messages.
package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/internal/kafkatopic"
	"github.com/sailstream/sailstream/telemetry"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultTopicPrefix     = "sailstream/devices"
	DefaultPartitions      = 6
	DefaultShutdownTimeout = 10 * time.Second
)

// Config configures a Bridge. Zero values take the documented defaults.
type Config struct {
	// MQTTURL is the broker, e.g. tcp://127.0.0.1:1883 (schemes tcp, mqtt,
	// ssl, tls, mqtts, ws, wss).
	MQTTURL string
	// ClientID is the MQTT client id. It must be stable across restarts:
	// the broker keys the persistent session by it. Two bridges must not
	// share one (the broker would disconnect one of them). Default
	// "sailstream-bridge-" + BridgeID.
	ClientID string
	// TopicPrefix is the root of the device topics; the bridge subscribes to
	// TopicPrefix/# so that it also sees (and dead-letters) malformed
	// topics. Default DefaultTopicPrefix.
	TopicPrefix string
	// KafkaBrokers are the seed brokers, host:port.
	KafkaBrokers []string
	// RawTopic receives the payloads. Default telemetry.TopicRaw.
	RawTopic string
	// DLQTopic receives what cannot be accepted. Default telemetry.TopicDLQ.
	DLQTopic string
	// BridgeID names this instance in the bridge_id header. Default: the
	// host name.
	BridgeID string
	// Partitions is the partition count used when the bridge creates
	// RawTopic and DLQTopic (existing topics are left alone). Default 6.
	Partitions int32
	// ShutdownTimeout bounds how long shutdown waits for Kafka to take the
	// buffered records; what it did not take is redelivered later. Default
	// DefaultShutdownTimeout.
	ShutdownTimeout time.Duration

	// Logger receives the bridge's logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the bridge's metrics; nil uses a private registry.
	Registerer prometheus.Registerer
}

// Validate reports the first problem with c. Zero optional fields are fine:
// New fills them in.
func (c Config) Validate() error {
	if c.MQTTURL == "" {
		return errors.New("bridge: MQTTURL is required (e.g. tcp://127.0.0.1:1883)")
	}
	u, err := url.Parse(c.MQTTURL)
	if err != nil {
		return fmt.Errorf("bridge: MQTTURL %q: %w", c.MQTTURL, err)
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss":
	default:
		return fmt.Errorf("bridge: MQTTURL %q: scheme must be one of tcp, mqtt, ssl, tls, mqtts, ws, wss", c.MQTTURL)
	}
	if u.Host == "" {
		return fmt.Errorf("bridge: MQTTURL %q has no host:port", c.MQTTURL)
	}
	if len(c.KafkaBrokers) == 0 {
		return errors.New("bridge: KafkaBrokers is required (host:port of at least one broker)")
	}
	for _, b := range c.KafkaBrokers {
		if strings.TrimSpace(b) == "" {
			return fmt.Errorf("bridge: KafkaBrokers %q has an empty entry", c.KafkaBrokers)
		}
	}
	if p := c.TopicPrefix; p != "" {
		if strings.ContainsAny(p, "+#\x00") {
			return fmt.Errorf("bridge: TopicPrefix %q must not contain the MQTT wildcards + or #", p)
		}
		if strings.HasSuffix(p, "/") {
			return fmt.Errorf("bridge: TopicPrefix %q must not end with /", p)
		}
	}
	if strings.ContainsAny(c.ClientID, "\x00") {
		return fmt.Errorf("bridge: ClientID %q has a NUL byte", c.ClientID)
	}
	raw, dlq := c.RawTopic, c.DLQTopic
	if raw == "" {
		raw = telemetry.TopicRaw
	}
	if dlq == "" {
		dlq = telemetry.TopicDLQ
	}
	if raw == dlq {
		return fmt.Errorf("bridge: RawTopic and DLQTopic are both %q", raw)
	}
	if c.Partitions < 0 {
		return fmt.Errorf("bridge: Partitions %d must not be negative", c.Partitions)
	}
	if c.ShutdownTimeout < 0 {
		return fmt.Errorf("bridge: ShutdownTimeout %s must not be negative", c.ShutdownTimeout)
	}
	return nil
}

// withDefaults returns c with zero fields filled in.
func (c Config) withDefaults() Config {
	if c.TopicPrefix == "" {
		c.TopicPrefix = DefaultTopicPrefix
	}
	if c.RawTopic == "" {
		c.RawTopic = telemetry.TopicRaw
	}
	if c.DLQTopic == "" {
		c.DLQTopic = telemetry.TopicDLQ
	}
	if c.BridgeID == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "bridge"
		}
		c.BridgeID = h
	}
	if c.ClientID == "" {
		c.ClientID = "sailstream-bridge-" + c.BridgeID
	}
	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	c.KafkaBrokers = append([]string(nil), c.KafkaBrokers...)
	return c
}

// Bridge forwards MQTT messages to Kafka. Create it with New and start it
// with Run; a Bridge runs once.
type Bridge struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	ready     chan struct{}
	readyOnce sync.Once
	started   atomic.Bool

	// Set by Run.
	kafka    *kgo.Client
	acks     *acker
	stopping atomic.Bool
	// handling is read-held by onMessage while it queues a record, so that
	// shutdown can wait for the last one before it closes the client.
	handling sync.RWMutex
	fatal    chan error // capacity 1: the first error that must end Run

	connects       atomic.Int32  // MQTT connections made
	connected      chan struct{} // closed once the first connect completed
	sessionPresent atomic.Bool   // the broker resumed a session on the first connect
}

// New checks cfg, fills in its defaults and registers the metrics. It does
// not connect: Run does.
func New(cfg Config) (*Bridge, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Bridge{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "bridge", "bridge_id", cfg.BridgeID),
		metrics:   m,
		ready:     make(chan struct{}),
		fatal:     make(chan error, 1),
		connected: make(chan struct{}),
	}, nil
}

// Ready is closed once the bridge is subscribed and forwarding.
func (b *Bridge) Ready() <-chan struct{} { return b.ready }

// Run creates the Kafka topics if they are missing, connects to the MQTT
// broker and forwards messages until ctx ends, then shuts down cleanly (see
// the package doc) and returns nil. It returns an error when it cannot
// start (Kafka or the broker unreachable, subscription refused) or when
// Kafka fails a record for good, which a supervisor should answer with a
// restart: the broker then redelivers what was not acknowledged.
func (b *Bridge) Run(ctx context.Context) error {
	if !b.started.CompareAndSwap(false, true) {
		return errors.New("bridge: Run called twice; create a new Bridge")
	}
	cfg := b.cfg

	kcl, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.KafkaBrokers...),
		kgo.ClientID("sailstream-bridge"),
		kgo.RequiredAcks(kgo.AllISRAcks()), // also what the idempotent producer requires
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.WithLogger(kafkaLogger{b.log}),
	)
	if err != nil {
		return fmt.Errorf("bridge: kafka client: %w", err)
	}
	b.kafka = kcl
	kafkaClosed := false
	defer func() {
		if !kafkaClosed {
			kcl.Close()
		}
	}()
	if err := kafkatopic.Ensure(ctx, kcl,
		kafkatopic.Spec{Name: cfg.RawTopic, Partitions: cfg.Partitions},
		kafkatopic.Spec{Name: cfg.DLQTopic, Partitions: cfg.Partitions},
	); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("bridge: %w (is Kafka reachable at %s?)", err, strings.Join(cfg.KafkaBrokers, ","))
	}

	b.acks = newAcker(func(*pending) { b.metrics.inflight.Dec() })
	ackCtx, stopAcker := context.WithCancel(context.WithoutCancel(ctx))
	ackerDone := make(chan struct{})
	go func() {
		defer close(ackerDone)
		b.acks.run(ackCtx)
	}()
	defer func() {
		stopAcker()
		<-ackerDone
	}()

	opts := mqtt.NewClientOptions().
		AddBroker(cfg.MQTTURL).
		SetClientID(cfg.ClientID).
		SetCleanSession(false).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(10 * time.Second).
		SetConnectTimeout(10 * time.Second).
		SetKeepAlive(30 * time.Second).
		SetOrderMatters(true).    // handlers run in receive order on paho's router
		SetAutoAckDisabled(true). // PUBACK only after Kafka's ack (acker)
		// A resumed session delivers queued messages right after CONNACK,
		// before any Subscribe returns: the default handler catches them
		// (a message without a handler would never be acknowledged).
		SetDefaultPublishHandler(b.onMessage).
		SetOnConnectHandler(b.onConnect).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			b.log.Warn("MQTT connection lost; reconnecting", "error", err)
		}).
		SetReconnectingHandler(func(mqtt.Client, *mqtt.ClientOptions) {
			b.log.Info("reconnecting to MQTT broker", "url", cfg.MQTTURL)
		})
	mc := mqtt.NewClient(opts)
	tok := mc.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		mc.Disconnect(0)
		return nil
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("bridge: connecting to MQTT broker %s: %w", cfg.MQTTURL, err)
	}
	if ct, ok := tok.(*mqtt.ConnectToken); ok {
		b.sessionPresent.Store(ct.SessionPresent())
	}
	close(b.connected)
	b.log.Info("bridge started", "mqtt", cfg.MQTTURL, "client_id", cfg.ClientID, "session_present", b.sessionPresent.Load(),
		"subscription", b.subscription(), "kafka", cfg.KafkaBrokers, "raw_topic", cfg.RawTopic, "dlq_topic", cfg.DLQTopic)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-b.fatal:
		b.log.Error("bridge stopping on a fatal error", "error", runErr)
	}

	// Shutdown: take no new messages (they stay unacknowledged), let Kafka
	// take what is buffered, acknowledge it, disconnect. No Unsubscribe:
	// the session keeps collecting while the bridge is away.
	b.stopping.Store(true)
	b.waitHandlers(cfg.ShutdownTimeout)
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	if err := kcl.Flush(fctx); err != nil {
		b.log.Warn("Kafka did not take every buffered record before the shutdown timeout; those messages stay unacknowledged and will be redelivered",
			"timeout", cfg.ShutdownTimeout, "unresolved", b.acks.len())
	}
	cancel()
	kcl.Close() // fails whatever is still buffered, so every promise has run
	kafkaClosed = true
	if !b.acks.waitIdle(cfg.ShutdownTimeout) {
		b.log.Warn("gave up waiting for acknowledgements", "unresolved", b.acks.len())
	}
	mc.Disconnect(250)
	b.log.Info("bridge stopped")
	return runErr
}

// waitHandlers waits until no onMessage is queueing a record, so none does
// after Flush. It gives up after timeout: onMessage can block in Produce
// only while the client's buffer is full, and the Close that follows fails
// the record, so its message stays unacknowledged as it should.
func (b *Bridge) waitHandlers(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for !b.handling.TryLock() {
		if time.Now().After(deadline) {
			b.log.Warn("a message handler is still blocked in Produce; closing the Kafka client under it")
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.handling.Unlock()
}

func (b *Bridge) subscription() string { return b.cfg.TopicPrefix + "/#" }

// onConnect (re)subscribes after every connect. With a persistent session
// the broker still has the subscription; subscribing again is harmless and
// covers a broker that lost its state.
func (b *Bridge) onConnect(c mqtt.Client) {
	first := b.connects.Add(1) == 1
	go b.subscribe(c, first)
}

// subscribe subscribes to TopicPrefix/#, retrying a refused SUBACK for a
// while: some brokers (mochi-mqtt) refuse a SUBSCRIBE whose packet id is in
// use by a message they are redelivering to the resumed session, which
// clears once the bridge acknowledges those messages. If it still fails, a
// resumed session keeps its old subscription and the bridge carries on; a
// fresh one ends Run (nothing would ever arrive).
func (b *Bridge) subscribe(c mqtt.Client, first bool) {
	const attempts = 20
	backoff := 50 * time.Millisecond
	var err error
	for attempt := 1; attempt <= attempts; attempt++ {
		if b.stopping.Load() || !c.IsConnectionOpen() {
			return // the next onConnect subscribes again
		}
		if err = b.subscribeOnce(c); err == nil {
			b.log.Info("subscribed", "topic", b.subscription())
			b.readyOnce.Do(func() { close(b.ready) })
			return
		}
		b.log.Warn("subscription failed; retrying", "topic", b.subscription(), "attempt", attempt, "error", err)
		time.Sleep(backoff)
		backoff = min(2*backoff, time.Second)
	}
	resumed := !first
	if first {
		select {
		case <-b.connected:
			resumed = b.sessionPresent.Load()
		case <-time.After(10 * time.Second):
		}
	}
	if resumed {
		b.log.Warn("subscription failed; relying on the resumed session's subscription", "topic", b.subscription(), "error", err)
		b.readyOnce.Do(func() { close(b.ready) })
		return
	}
	b.fail(fmt.Errorf("bridge: subscribing to %q: %w", b.subscription(), err))
}

func (b *Bridge) subscribeOnce(c mqtt.Client) error {
	tok := c.Subscribe(b.subscription(), 1, nil) // nil: the default handler
	tok.Wait()
	if err := tok.Error(); err != nil {
		return err
	}
	if st, ok := tok.(*mqtt.SubscribeToken); ok {
		if code := st.Result()[b.subscription()]; code > 2 {
			return fmt.Errorf("broker refused the subscription (return code %#x); check its ACL", code)
		}
	}
	return nil
}

// fail ends Run with err (the first one wins).
func (b *Bridge) fail(err error) {
	select {
	case b.fatal <- err:
	default:
	}
}

// onMessage runs on paho's router goroutine, in receive order. It must not
// block for long: it only queues the record (Produce blocks only when the
// client's buffer is full, which the broker's in-flight window prevents in
// practice) and leaves the acknowledgement to the promise and the acker.
func (b *Bridge) onMessage(_ mqtt.Client, msg mqtt.Message) {
	b.handling.RLock()
	defer b.handling.RUnlock()
	if b.stopping.Load() {
		return // not acknowledged: redelivered after the restart
	}
	in := inbound{topic: msg.Topic(), payload: msg.Payload(), receivedAt: time.Now()}
	b.metrics.received.Inc()
	b.metrics.inflight.Inc()
	rec, reason := b.route(in)
	b.log.Debug("message received", "mqtt_topic", in.topic, "size", len(in.payload), "mqtt_id", msg.MessageID(), "dup", msg.Duplicate())
	if reason != "" {
		b.log.Warn("message sent to the dead-letter topic", "reason", reason,
			"mqtt_topic", in.topic, "size", len(in.payload), "error", string(headerValue(rec, telemetry.HeaderError)))
	}
	p := b.acks.add(msg)
	b.kafka.Produce(context.Background(), rec, func(r *kgo.Record, err error) {
		// Promise: runs on franz-go's promise goroutine and must not block.
		if err != nil {
			b.metrics.produceErrors.Inc()
			b.acks.resolve(p, false)
			if !b.stopping.Load() {
				b.fail(fmt.Errorf("bridge: Kafka refused a record for %s: %w", r.Topic, err))
			}
			b.log.Error("Kafka did not take the record; the MQTT message stays unacknowledged and will be redelivered",
				"topic", r.Topic, "mqtt_topic", in.topic, "error", err)
			return
		}
		b.metrics.ackLatency.Observe(time.Since(in.receivedAt).Seconds())
		if reason != "" {
			b.metrics.dlq.WithLabelValues(reason).Inc()
		} else {
			b.metrics.produced.Inc()
		}
		b.acks.resolve(p, true)
	})
}

func headerValue(r *kgo.Record, key string) []byte {
	for _, h := range r.Headers {
		if h.Key == key {
			return h.Value
		}
	}
	return nil
}

// kafkaLogger sends franz-go's warnings and errors to slog.
type kafkaLogger struct{ log *slog.Logger }

func (l kafkaLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l kafkaLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lv := slog.LevelWarn
	if level == kgo.LogLevelError {
		lv = slog.LevelError
	}
	l.log.Log(context.Background(), lv, "kafka: "+msg, keyvals...)
}
