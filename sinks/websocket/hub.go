// Package websocket fans enriched readings out to WebSocket clients: the live
// map in web/ and anything else that wants the stream.
//
// The hub is built around one rule: a slow client never slows anyone else
// down. Publish never blocks on a socket. It hands every client a pointer to
// one pre-framed message (gorilla's PreparedMessage, so the JSON is framed
// once, not once per client) through that client's bounded queue; each client
// has its own writer goroutine that drains the queue into its socket. When a
// client's queue is full the client is behind by a whole queue and will not
// catch up, so the hub disconnects it with a close frame that says why
// ("slow consumer", code 1008) and counts it, instead of silently skipping
// messages the client would never know it missed.
//
// The hub also keeps the latest reading of every device, so that a client
// that connects gets the current state of the fleet at once: first the latest
// reading of every device (sorted by device), then the live stream, with no
// gap and no duplicate between the two (the snapshot is queued under the same
// lock that Publish takes).
//
// Every message is one text frame holding one JSON telemetry.Enriched object.
// Messages from clients are read (to see pongs and close frames) and ignored.
package websocket

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	gws "github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sailstream/sailstream/telemetry"
)

// ErrClosed is returned by Publish after the hub was closed.
var ErrClosed = errors.New("websocket: hub closed")

// Close codes and reasons the hub sends to the clients it disconnects.
const (
	// CloseSlowConsumer is sent to a client whose send queue overflowed.
	CloseSlowConsumer = gws.ClosePolicyViolation // 1008
	// ReasonSlowConsumer is the close frame's text for a slow client.
	ReasonSlowConsumer = "slow consumer"
	// CloseShutdown is sent to every client when the hub closes.
	CloseShutdown = gws.CloseGoingAway // 1001
	// ReasonShutdown is the close frame's text on shutdown.
	ReasonShutdown = "server shutting down"
)

// Defaults for the zero Options fields.
const (
	DefaultQueueSize    = 256
	DefaultWriteTimeout = 10 * time.Second
	DefaultPingInterval = 30 * time.Second
	DefaultPongTimeout  = 60 * time.Second
	DefaultCloseGrace   = time.Second
)

// maxClientMessage bounds what a client may send: the hub ignores client
// messages, so anything large is a misbehaving client.
const maxClientMessage = 4 << 10

// Options configure a Hub. The zero value is usable.
type Options struct {
	// QueueSize is how many messages may wait for one client beyond the
	// initial snapshot before the client is disconnected as a slow consumer.
	QueueSize int
	// WriteTimeout bounds one write to a client's socket.
	WriteTimeout time.Duration
	// PingInterval is how often the hub pings each client; PongTimeout is
	// how long a client may stay silent (no pong, no message) before it is
	// considered dead. PongTimeout must be longer than PingInterval.
	PingInterval time.Duration
	PongTimeout  time.Duration
	// CloseGrace bounds how long the hub tries to deliver a close frame
	// before it drops the connection.
	CloseGrace time.Duration
	// CheckOrigin decides whether a browser on another origin may connect;
	// nil accepts only same-origin requests (and non-browser clients).
	CheckOrigin func(r *http.Request) bool
	// Registerer receives the hub's metrics; nil means a private registry.
	Registerer prometheus.Registerer
	// Logger receives the hub's logs; nil discards them.
	Logger *slog.Logger
}

// Validate reports options that cannot work.
func (o Options) Validate() error {
	switch {
	case o.QueueSize < 0:
		return fmt.Errorf("websocket: QueueSize %d is negative", o.QueueSize)
	case o.WriteTimeout < 0, o.PingInterval < 0, o.PongTimeout < 0, o.CloseGrace < 0:
		return errors.New("websocket: timeouts must not be negative")
	}
	o = o.withDefaults()
	if o.PongTimeout <= o.PingInterval {
		return fmt.Errorf("websocket: PongTimeout %s must be longer than PingInterval %s", o.PongTimeout, o.PingInterval)
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.QueueSize == 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.PingInterval == 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.PongTimeout == 0 {
		o.PongTimeout = DefaultPongTimeout
	}
	if o.CloseGrace == 0 {
		o.CloseGrace = DefaultCloseGrace
	}
	return o
}

// Hub keeps the latest reading of every device and fans every published
// reading out to the connected clients. Its methods are safe for concurrent
// use.
type Hub struct {
	opts     Options
	log      *slog.Logger
	upgrader gws.Upgrader
	metrics  metrics

	mu      sync.Mutex
	latest  map[string]entry
	clients map[*client]struct{}
	closed  bool
	done    chan struct{}
	wg      sync.WaitGroup // one per client goroutine
}

type entry struct {
	reading telemetry.Enriched
	msg     *gws.PreparedMessage
}

type metrics struct {
	clients       prometheus.Gauge
	sent          prometheus.Counter
	slowConsumers prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (metrics, error) {
	m := metrics{
		clients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sailstream_web_websocket_clients",
			Help: "WebSocket clients currently connected.",
		}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sailstream_web_websocket_messages_sent_total",
			Help: "Messages written to WebSocket clients (snapshot and live).",
		}),
		slowConsumers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sailstream_web_websocket_slow_consumers_total",
			Help: "WebSocket clients disconnected because their send queue overflowed.",
		}),
	}
	for _, c := range []prometheus.Collector{m.clients, m.sent, m.slowConsumers} {
		if err := reg.Register(c); err != nil {
			return metrics{}, fmt.Errorf("websocket: registering metrics: %w", err)
		}
	}
	return m, nil
}

// NewHub returns a hub ready to serve clients and accept readings.
func NewHub(opts Options) (*Hub, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Hub{
		opts:     opts,
		log:      log,
		upgrader: gws.Upgrader{CheckOrigin: opts.CheckOrigin},
		metrics:  m,
		latest:   make(map[string]entry),
		clients:  make(map[*client]struct{}),
		done:     make(chan struct{}),
	}, nil
}

// Publish sends e to every client and makes it the latest reading of its
// device (unless the hub already holds a later one by event time). It never
// blocks on a client.
func (h *Hub) Publish(e telemetry.Enriched) error {
	if err := telemetry.ValidateDevice(e.Device); err != nil {
		return fmt.Errorf("websocket: publish: %w", err)
	}
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("websocket: publish %q: %w", e.Device, err)
	}
	return h.publish(e, data)
}

// PublishJSON is Publish for a reading already encoded as JSON (a
// telemetry.enriched record's value): the bytes are forwarded to the clients
// as they are, so fields this version does not know survive. data must be a
// JSON object that decodes into telemetry.Enriched with a valid device id.
// The hub copies data; the caller may reuse it.
func (h *Hub) PublishJSON(data []byte) error {
	var e telemetry.Enriched
	if err := json.Unmarshal(data, &e); err != nil {
		return fmt.Errorf("websocket: publish: %w: %v", telemetry.ErrMalformed, err)
	}
	if err := telemetry.ValidateDevice(e.Device); err != nil {
		return fmt.Errorf("websocket: publish: %w", err)
	}
	return h.publish(e, data)
}

func (h *Hub) publish(e telemetry.Enriched, data []byte) error {
	msg, err := gws.NewPreparedMessage(gws.TextMessage, data)
	if err != nil {
		return fmt.Errorf("websocket: framing %q: %w", e.Device, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	if old, ok := h.latest[e.Device]; !ok || !e.Time.Before(old.reading.Time) {
		h.latest[e.Device] = entry{reading: e, msg: msg}
	}
	for c := range h.clients {
		select {
		case c.send <- msg:
		default:
			delete(h.clients, c)
			h.metrics.slowConsumers.Inc()
			h.log.Warn("disconnecting slow WebSocket consumer", "remote", c.remote, "queue", cap(c.send))
			c.kick(CloseSlowConsumer, ReasonSlowConsumer)
		}
	}
	return nil
}

// Latest returns the latest reading of every device, sorted by device.
func (h *Hub) Latest() []telemetry.Enriched {
	h.mu.Lock()
	out := make([]telemetry.Enriched, 0, len(h.latest))
	for _, en := range h.latest {
		r := en.reading
		r.Fields = maps.Clone(r.Fields)
		out = append(out, r)
	}
	h.mu.Unlock()
	slices.SortFunc(out, func(a, b telemetry.Enriched) int { return strings.Compare(a.Device, b.Device) })
	return out
}

// Clients returns how many clients are connected.
func (h *Hub) Clients() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// ServeHTTP upgrades the request to a WebSocket and serves the client until
// it goes away: first the latest reading of every device, then the live
// stream. It answers 503 once the hub is closed.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.ServeWS(w, r) }

// ServeWS is ServeHTTP under the name the rest of sailstream uses.
func (h *Hub) ServeWS(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		http.Error(w, "websocket hub is shutting down", http.StatusServiceUnavailable)
		return
	}
	conn, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		// Upgrade has already answered the client with the reason.
		h.log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	c := &client{
		hub:    h,
		conn:   conn,
		remote: r.RemoteAddr,
		kicked: make(chan struct{}),
		gone:   make(chan struct{}),
	}

	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		_ = conn.WriteControl(gws.CloseMessage, gws.FormatCloseMessage(CloseShutdown, ReasonShutdown), time.Now().Add(h.opts.CloseGrace))
		_ = conn.Close()
		return
	}
	devices := slices.Sorted(maps.Keys(h.latest))
	c.send = make(chan *gws.PreparedMessage, len(devices)+h.opts.QueueSize)
	for _, d := range devices {
		c.send <- h.latest[d].msg
	}
	h.clients[c] = struct{}{}
	h.metrics.clients.Inc()
	h.wg.Add(2)
	h.mu.Unlock()

	h.log.Debug("websocket client connected", "remote", c.remote, "snapshot", len(devices))
	go c.readLoop()
	go c.writeLoop()
}

// Run serves until ctx ends (or Close is called), then closes the hub. It
// returns nil on a clean shutdown.
func (h *Hub) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-h.done:
	}
	return h.Close()
}

// Close disconnects every client with a "server shutting down" close frame
// and waits for their goroutines to end. Publish returns ErrClosed after it.
// Close is idempotent.
func (h *Hub) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		h.wg.Wait()
		return nil
	}
	h.closed = true
	close(h.done)
	clients := h.clients
	h.clients = make(map[*client]struct{})
	h.mu.Unlock()

	for c := range clients {
		c.kick(CloseShutdown, ReasonShutdown)
	}
	h.wg.Wait()
	return nil
}

// client is one connected WebSocket. Only writeLoop writes data frames to
// conn; readLoop only reads.
type client struct {
	hub    *Hub
	conn   *gws.Conn
	remote string
	send   chan *gws.PreparedMessage

	kickOnce  sync.Once
	kicked    chan struct{} // closed when the hub wants the client gone
	closeCode int           // written before kicked is closed
	closeText string
	forceStop *time.Timer

	gone chan struct{} // closed when readLoop ends (client left or went silent)
}

// kick asks the writer to send a close frame and disconnect. If the writer
// is stuck in a write to a client that does not read, the connection is
// closed under it after CloseGrace. Callers may hold hub.mu.
func (c *client) kick(code int, text string) {
	c.kickOnce.Do(func() {
		c.closeCode, c.closeText = code, text
		c.forceStop = time.AfterFunc(c.hub.opts.CloseGrace, func() { _ = c.conn.NetConn().Close() })
		close(c.kicked)
	})
}

func (c *client) writeLoop() {
	h := c.hub
	ping := time.NewTicker(h.opts.PingInterval)
	defer func() {
		ping.Stop()
		_ = c.conn.Close()
		c.leave()
		h.wg.Done()
	}()
	for {
		// A kick wins over queued messages: a slow consumer gets no more.
		select {
		case <-c.kicked:
			c.sendClose()
			return
		default:
		}
		select {
		case <-c.kicked:
			c.sendClose()
			return
		case <-c.gone:
			return
		case msg := <-c.send:
			_ = c.conn.SetWriteDeadline(time.Now().Add(h.opts.WriteTimeout))
			if err := c.conn.WritePreparedMessage(msg); err != nil {
				h.log.Debug("websocket write failed", "remote", c.remote, "err", err)
				return
			}
			h.metrics.sent.Inc()
		case <-ping.C:
			if err := c.conn.WriteControl(gws.PingMessage, nil, time.Now().Add(h.opts.WriteTimeout)); err != nil {
				h.log.Debug("websocket ping failed", "remote", c.remote, "err", err)
				return
			}
		}
	}
}

func (c *client) sendClose() {
	msg := gws.FormatCloseMessage(c.closeCode, c.closeText)
	if err := c.conn.WriteControl(gws.CloseMessage, msg, time.Now().Add(c.hub.opts.CloseGrace)); err != nil {
		c.hub.log.Debug("websocket close frame not delivered", "remote", c.remote, "err", err)
	}
}

func (c *client) readLoop() {
	h := c.hub
	defer func() {
		close(c.gone)
		h.wg.Done()
	}()
	c.conn.SetReadLimit(maxClientMessage)
	alive := func() { _ = c.conn.SetReadDeadline(time.Now().Add(h.opts.PongTimeout)) }
	alive()
	c.conn.SetPongHandler(func(string) error { alive(); return nil })
	for {
		if _, _, err := c.conn.NextReader(); err != nil {
			if !gws.IsCloseError(err, gws.CloseNormalClosure, gws.CloseGoingAway, gws.CloseNoStatusReceived) {
				h.log.Debug("websocket client read ended", "remote", c.remote, "err", err)
			}
			return
		}
		alive()
	}
}

// leave removes the client from the hub once its connection is closed.
func (c *client) leave() {
	h := c.hub
	h.mu.Lock()
	delete(h.clients, c)
	h.mu.Unlock()
	// A no-op Do ends any kick in flight (Once.Do returns only after it
	// has run), so reading forceStop is safe, and no later kick arms it.
	c.kickOnce.Do(func() {})
	if c.forceStop != nil {
		c.forceStop.Stop()
	}
	h.metrics.clients.Dec()
	h.log.Debug("websocket client disconnected", "remote", c.remote)
}
