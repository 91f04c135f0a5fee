// Package web is sailstream's web server: the live map of the fleet, the
// WebSocket stream behind it and a small REST API.
//
// The server is a reader of telemetry.enriched and nothing else: it keeps no
// state that the topic does not hold. It consumes without a consumer group
// (every web server shows every device) and starts a little before the end of
// each partition, so the latest-reading table fills at once when it starts
// instead of waiting for every boat to report again. Readings go into a
// websocket.Hub that fans them out to browsers with per-client backpressure.
//
// The map app (web/src, bundled with esbuild into web/dist by `npm run build`)
// is embedded in the binary, so one file serves everything, offline too: the
// lake outline comes from package lake, not from a tile server.
//
// Routes:
//
//	GET /              the map app (503 until `make web` has built it)
//	GET /ws            WebSocket: latest reading of every device, then live
//	GET /api/devices   latest reading per device, JSON array sorted by device
//	GET /api/devices/:id/track?from=&to=
//	                   one device's readings in time order, from the
//	                   database (Config.Tracks; 501 without one)
//	GET /lake.geojson  the lake outline
//	GET /metrics       Prometheus metrics
//	GET /healthz       liveness
package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/internal/httpserve"
	"github.com/sailstream/sailstream/internal/kafkatopic"
	"github.com/sailstream/sailstream/lake"
	"github.com/sailstream/sailstream/sinks/websocket"
	"github.com/sailstream/sailstream/telemetry"
)

// dist holds the built map app; only .gitkeep before `npm run build`.
//
//go:embed all:dist
var dist embed.FS

// Defaults for the zero Config fields.
const (
	DefaultAddr        = "127.0.0.1:8080"
	DefaultTailRecords = 100
)

// AssetsMissing is the body of the 503 that / answers when the map app was
// not built into the binary.
const AssetsMissing = "map assets not built: run `make web` (npm run build in web/), then rebuild the binary\n"

// Config configures a Server. Fields map to SAILSTREAM_WEB_* settings.
type Config struct {
	// Addr is the HTTP listen address; port 0 picks a free port (see
	// Server.Addr). Default DefaultAddr.
	Addr string
	// KafkaBrokers are the seed brokers to consume from.
	KafkaBrokers []string
	// EnrichedTopic is the topic of enriched readings; default
	// telemetry.TopicEnriched.
	EnrichedTopic string
	// TailRecords is how many records before the end of each partition the
	// server starts consuming at; default DefaultTailRecords.
	TailRecords int
	// WebSocketQueue is each WebSocket client's send queue; a client that
	// falls this far behind is disconnected. Default
	// websocket.DefaultQueueSize.
	WebSocketQueue int
	// Gatherer is what /metrics serves; nil means prometheus.DefaultGatherer.
	// When Registerer is nil the server's own private registry is served
	// beside it.
	Gatherer prometheus.Gatherer
	// Registerer receives the server's metrics; nil means a private registry.
	Registerer prometheus.Registerer
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// Tracks serves the track history API; nil answers it with 501.
	Tracks TrackSource
}

// Validate reports a config that cannot work, after defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("web: Addr %q: %w", c.Addr, err)
	}
	if len(c.KafkaBrokers) == 0 {
		return errors.New("web: KafkaBrokers is empty: name at least one seed broker")
	}
	for _, b := range c.KafkaBrokers {
		if b == "" {
			return errors.New("web: KafkaBrokers has an empty entry")
		}
	}
	if c.TailRecords < 0 {
		return fmt.Errorf("web: TailRecords %d is negative", c.TailRecords)
	}
	if c.WebSocketQueue < 0 {
		return fmt.Errorf("web: WebSocketQueue %d is negative", c.WebSocketQueue)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.EnrichedTopic == "" {
		c.EnrichedTopic = telemetry.TopicEnriched
	}
	if c.TailRecords == 0 {
		c.TailRecords = DefaultTailRecords
	}
	return c
}

// Server serves the map, the WebSocket stream and the REST API, fed from
// Kafka.
type Server struct {
	cfg  Config
	log  *slog.Logger
	hub  *websocket.Hub
	echo *echo.Echo

	received    prometheus.Counter
	invalid     *prometheus.CounterVec
	fetchErrors prometheus.Counter

	started atomic.Bool
	ready   chan struct{}
	addr    string // set before ready is closed
}

// New builds a server; Run starts it.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	gatherer := cfg.Gatherer
	if gatherer == nil {
		gatherer = prometheus.DefaultGatherer
	}
	reg := cfg.Registerer
	if reg == nil {
		private := prometheus.NewRegistry()
		reg = private
		gatherer = prometheus.Gatherers{gatherer, private}
	}

	hub, err := websocket.NewHub(websocket.Options{
		QueueSize:  cfg.WebSocketQueue,
		Registerer: reg,
		Logger:     log,
	})
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	s := &Server{
		cfg:   cfg,
		log:   log,
		hub:   hub,
		ready: make(chan struct{}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sailstream_web_readings_received_total",
			Help: "Enriched readings consumed from Kafka (valid or not).",
		}),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sailstream_web_readings_invalid_total",
			Help: "Consumed records that are not a valid enriched reading, by reason; they stay in the topic.",
		}, []string{"reason"}),
		fetchErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sailstream_web_kafka_fetch_errors_total",
			Help: "Errors returned by Kafka fetches.",
		}),
	}
	for _, c := range []prometheus.Collector{s.received, s.invalid, s.fetchErrors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("web: registering metrics: %w", err)
		}
	}
	s.echo = s.routes(gatherer)
	return s, nil
}

func (s *Server) routes(gatherer prometheus.Gatherer) *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.Logger.SetOutput(io.Discard)
	e.Use(middleware.Recover())
	e.Use(middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		LogMethod: true, LogURI: true, LogStatus: true, LogLatency: true, LogRemoteIP: true, LogError: true,
		HandleError: true,
		LogValuesFunc: func(_ echo.Context, v middleware.RequestLoggerValues) error {
			level := slog.LevelDebug
			if v.Status >= 500 {
				level = slog.LevelWarn
			}
			s.log.Log(context.Background(), level, "http request", "method", v.Method, "uri", v.URI,
				"status", v.Status, "latency", v.Latency, "remote", v.RemoteIP, "err", v.Error)
			return nil
		},
	}))

	e.GET("/ws", echo.WrapHandler(s.hub))
	e.GET("/api/devices", func(c echo.Context) error {
		return c.JSON(http.StatusOK, s.hub.Latest())
	})
	e.GET("/api/devices/:id/track", s.track)
	e.GET("/lake.geojson", func(c echo.Context) error {
		return c.Blob(http.StatusOK, "application/geo+json", lake.GeoJSON())
	})
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{})))
	e.GET("/healthz", func(c echo.Context) error {
		return c.String(http.StatusOK, "ok\n")
	})
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // "dist" is a valid path: cannot happen
	}
	e.GET("/*", echo.WrapHandler(assets(sub)))
	return e
}

// assets serves the map app from fsys, or a 503 that says how to build it
// when fsys has no index.html.
func assets(fsys fs.FS) http.Handler {
	if _, err := fs.Stat(fsys, "index.html"); err != nil {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, AssetsMissing)
		})
	}
	files := http.FileServerFS(fsys)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Embedded files have no modification time, so tell browsers to
		// revalidate rather than cache a stale app across upgrades.
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}

// Hub is the server's WebSocket hub (for feeding it directly, as tests and
// the embedded pipeline may).
func (s *Server) Hub() *websocket.Hub { return s.hub }

// Ready is closed once the server listens; Addr is valid from then on.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the address the server listens on once Ready is closed ("" before).
func (s *Server) Addr() string {
	select {
	case <-s.ready:
		return s.addr
	default:
		return ""
	}
}

// Handler is the server's HTTP handler, for mounting it elsewhere or testing
// it with httptest.
func (s *Server) Handler() http.Handler { return s.echo }

// Run listens, consumes telemetry.enriched and serves until ctx ends, then
// shuts down: HTTP first, then every WebSocket client gets a close frame,
// then the Kafka client stops. It returns nil on a clean shutdown. A Server
// runs once.
func (s *Server) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("web: Run called twice")
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		_ = s.hub.Close()
		return fmt.Errorf("web: listen: %w", err)
	}
	s.addr = ln.Addr().String()
	close(s.ready)
	s.log.Info("web server listening", "addr", s.addr, "url", "http://"+s.addr+"/", "topic", s.cfg.EnrichedTopic)

	cl, err := kgo.NewClient(
		kgo.SeedBrokers(s.cfg.KafkaBrokers...),
		kgo.ClientID("sailstream-web"),
		kgo.ConsumeTopics(s.cfg.EnrichedTopic),
		// Only committed transactions: under exactly-once the core's
		// aborted polls must never reach the map.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd().Relative(-int64(s.cfg.TailRecords))),
	)
	if err != nil {
		_ = ln.Close()
		_ = s.hub.Close()
		return fmt.Errorf("web: kafka client: %w", err)
	}

	consumeCtx, stopConsuming := context.WithCancel(ctx)
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		s.consume(consumeCtx, cl)
	}()

	srv := &http.Server{Handler: s.echo, ReadHeaderTimeout: 10 * time.Second}
	var runErr error
	if err := httpserve.Serve(ctx, srv, ln, 5*time.Second); err != nil {
		runErr = fmt.Errorf("web: serve: %w", err)
	}
	_ = s.hub.Close()
	stopConsuming()
	<-consumed
	cl.Close()
	s.log.Info("web server stopped", "addr", s.addr)
	return runErr
}

// consume feeds the hub from Kafka until ctx ends.
func (s *Server) consume(ctx context.Context, cl *kgo.Client) {
	// The core creates the topic too; creating it here as well lets the web
	// server start first on a fresh cluster.
	if err := kafkatopic.Ensure(ctx, cl, kafkatopic.Spec{Name: s.cfg.EnrichedTopic}); err != nil && ctx.Err() == nil {
		s.log.Warn("could not ensure the enriched topic; consuming anyway", "topic", s.cfg.EnrichedTopic, "err", err)
	}
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			s.fetchErrors.Inc()
			s.log.Warn("kafka fetch failed", "topic", topic, "partition", partition, "err", err)
		})
		fetches.EachRecord(s.handle)
	}
}

func (s *Server) handle(r *kgo.Record) {
	s.received.Inc()
	err := s.hub.PublishJSON(r.Value)
	switch {
	case err == nil, errors.Is(err, websocket.ErrClosed):
	default:
		reason := telemetry.Reason(err)
		s.invalid.WithLabelValues(reason).Inc()
		s.log.Warn("skipping invalid enriched record (it stays in the topic)", "topic", r.Topic,
			"partition", r.Partition, "offset", r.Offset, "key", string(r.Key), "reason", reason, "err", err)
	}
}
