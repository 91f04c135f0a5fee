// Package admin is the core's admin HTTP API: deploy, shadow, promote and
// roll back UDFs, and set the routes, over HTTP, for `sailstream udf` and
// for scripts (curl).
//
// The API accepts code that every core instance will run, so it is never
// open by accident: it requires a bearer token (compared in constant time),
// and a server without a token refuses to start unless it listens on a
// loopback address only (a developer's `sailstream up`). It does nothing
// itself but call the registry's Publisher, which validates modules and
// publishes to the udf.modules topic that every core follows.
//
// Routes (all JSON; errors are {"error": "..."}):
//
//	GET  /udfs                   the registry: deployments, routes, modules
//	GET  /udfs/{name}            one deployment
//	POST /udfs/deploy            body: the module; name from the manifest or the module
//	POST /udfs/{name}/deploy     the same, named by the path
//	POST /udfs/{name}/shadow     run the module as the shadow of {name}
//	POST /udfs/shadow            the same, named by the manifest or the module
//	POST /udfs/{name}/promote    the shadow becomes live
//	POST /udfs/{name}/rollback   drop the shadow, else the previous version goes live
//	PUT  /routes                 body: {"rules": [{"pattern": "buoy-*", "udf": "geo"}], "default": "speed"}
//	GET  /healthz                liveness, no token needed
//
// A module is sent either as the raw body (Content-Type application/wasm)
// with the manifest's fields in the query (version, route (repeatable),
// default, memory_mib, call_timeout, instances, or manifest= the whole JSON),
// or as multipart/form-data with a "module" file part and an optional
// "manifest" part holding the manifest JSON.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sailstream/sailstream/internal/httpserve"
	"github.com/sailstream/sailstream/udf/registry"
)

// DefaultAddr is where the admin API listens by default: loopback only.
const DefaultAddr = "127.0.0.1:9470"

// maxBody bounds a request body: the biggest module plus a manifest and
// multipart framing.
const maxBody = registry.MaxModuleBytes + 1<<20

// Control is what the API drives; *registry.Publisher is one.
type Control interface {
	Deploy(ctx context.Context, wasm []byte, m registry.Manifest) (registry.Result, error)
	Shadow(ctx context.Context, wasm []byte, m registry.Manifest) (registry.Result, error)
	Promote(ctx context.Context, name string) (registry.Result, error)
	Rollback(ctx context.Context, name string) (registry.Result, error)
	SetRoutes(ctx context.Context, r registry.Routes) (registry.Result, error)
	List(ctx context.Context) (*registry.State, error)
}

// Config configures a Server. Fields map to SAILSTREAM_ADMIN_* settings.
type Config struct {
	// Addr is the listen address; port 0 picks a free port (see
	// Server.Addr). Default DefaultAddr.
	Addr string
	// Token is the bearer token every request but /healthz must carry.
	// Empty is allowed only when Addr is a loopback address.
	Token string
	// Control is what the API acts through; required.
	Control Control
	// Logger gets one line per request; nil discards.
	Logger *slog.Logger
	// Registerer gets the API's metrics; nil: a private registry.
	Registerer prometheus.Registerer
}

// ErrNoToken: the server would accept code from the network without a token.
var ErrNoToken = errors.New("admin: no token and not bound to loopback: set --admin-token (SAILSTREAM_ADMIN_TOKEN) or listen on 127.0.0.1")

// Validate reports a config that cannot work or is unsafe.
func (c Config) Validate() error {
	c = c.withDefaults()
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("admin: Addr %q: %w", c.Addr, err)
	}
	if c.Token == "" && !loopback(host) {
		return fmt.Errorf("%w (Addr %q)", ErrNoToken, c.Addr)
	}
	if c.Control == nil {
		return errors.New("admin: no Control (a registry.Publisher)")
	}
	return nil
}

// loopback reports whether host names only loopback interfaces. An empty
// host or 0.0.0.0 listens on every interface.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	return c
}

// Server serves the admin API.
type Server struct {
	cfg      Config
	log      *slog.Logger
	echo     *echo.Echo
	tokenSum [32]byte
	requests *prometheus.CounterVec

	started atomic.Bool
	ready   chan struct{}
	addr    string
}

// New builds a server; Run starts it.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Server{cfg: cfg, log: cfg.Logger, ready: make(chan struct{}), tokenSum: sha256.Sum256([]byte(cfg.Token))}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	reg := cfg.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sailstream_admin_requests_total",
		Help: "Admin API requests, by route and status code.",
	}, []string{"route", "code"})
	if err := reg.Register(s.requests); err != nil {
		return nil, fmt.Errorf("admin: registering metrics: %w", err)
	}
	s.echo = s.routes()
	return s, nil
}

// Handler is the server's HTTP handler, for mounting it elsewhere or
// testing it with httptest.
func (s *Server) Handler() http.Handler { return s.echo }

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

// Run listens and serves until ctx ends, then shuts down; it returns nil
// on a clean shutdown. A Server runs once.
func (s *Server) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("admin: Run called twice")
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("admin: listen: %w", err)
	}
	s.addr = ln.Addr().String()
	close(s.ready)
	if s.cfg.Token == "" {
		s.log.Warn("admin API without a token: anyone on this machine can deploy UDFs", "addr", s.addr)
	}
	s.log.Info("admin API listening", "addr", s.addr, "url", "http://"+s.addr+"/udfs")
	// No write timeout: a deploy compiles the module, which takes seconds
	// for a big one. Reading the body is bounded instead.
	srv := &http.Server{Handler: s.echo, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 2 * time.Minute}
	var runErr error
	if err := httpserve.Serve(ctx, srv, ln, 5*time.Second); err != nil {
		runErr = fmt.Errorf("admin: serve: %w", err)
	}
	s.log.Info("admin API stopped", "addr", s.addr)
	return runErr
}

func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.Logger.SetOutput(io.Discard)
	e.HTTPErrorHandler = s.httpError
	e.Use(middleware.Recover())
	e.Use(middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		LogMethod: true, LogURI: true, LogStatus: true, LogLatency: true, LogRemoteIP: true, LogError: true,
		HandleError: true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			route := c.Path()
			if route == "" {
				route = "other"
			}
			s.requests.WithLabelValues(route, strconv.Itoa(v.Status)).Inc()
			level := slog.LevelInfo
			if c.Request().Method == http.MethodGet {
				level = slog.LevelDebug
			}
			if v.Status >= 500 {
				level = slog.LevelWarn
			}
			s.log.Log(context.Background(), level, "admin request", "method", v.Method, "uri", v.URI,
				"status", v.Status, "latency", v.Latency, "remote", v.RemoteIP, "err", v.Error)
			return nil
		},
	}))
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })

	api := e.Group("", s.auth)
	api.GET("/udfs", s.list)
	api.GET("/udfs/:name", s.get)
	api.POST("/udfs/deploy", s.upload(false))
	api.POST("/udfs/:name/deploy", s.upload(false))
	api.POST("/udfs/shadow", s.upload(true))
	api.POST("/udfs/:name/shadow", s.upload(true))
	api.POST("/udfs/:name/promote", s.promote)
	api.POST("/udfs/:name/rollback", s.rollback)
	api.PUT("/routes", s.setRoutes)
	return e
}

// auth checks the bearer token; with no token configured (loopback only)
// every request passes.
func (s *Server) auth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.cfg.Token == "" {
			return next(c)
		}
		h := c.Request().Header.Get(echo.HeaderAuthorization)
		tok, ok := strings.CutPrefix(h, "Bearer ")
		// Hashing both sides first makes the comparison constant-time in
		// the length too.
		sum := sha256.Sum256([]byte(tok))
		if !ok || subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) != 1 {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="sailstream admin"`)
			return echo.NewHTTPError(http.StatusUnauthorized, "missing or wrong bearer token (Authorization: Bearer TOKEN; sailstream udf --token or SAILSTREAM_ADMIN_TOKEN)")
		}
		return next(c)
	}
}

// View is the registry as GET /udfs shows it: module bytes left out.
type View struct {
	Deployments []registry.Deployment `json:"deployments"`
	Routes      registry.Routes       `json:"routes"`
	Modules     []ModuleInfo          `json:"modules"`
}

// ModuleInfo describes a module record.
type ModuleInfo struct {
	SHA256 string `json:"sha256"`
	Size   int    `json:"size"`
}

// NewView summarises s, sorted by name and hash.
func NewView(s *registry.State) View {
	v := View{Deployments: []registry.Deployment{}, Routes: s.Routes, Modules: []ModuleInfo{}}
	for _, d := range s.Deployments {
		v.Deployments = append(v.Deployments, d)
	}
	sort.Slice(v.Deployments, func(i, j int) bool { return v.Deployments[i].Name < v.Deployments[j].Name })
	for sha, m := range s.Modules {
		v.Modules = append(v.Modules, ModuleInfo{SHA256: sha, Size: len(m.Wasm)})
	}
	sort.Slice(v.Modules, func(i, j int) bool { return v.Modules[i].SHA256 < v.Modules[j].SHA256 })
	return v
}

func (s *Server) list(c echo.Context) error {
	st, err := s.cfg.Control.List(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, NewView(st))
}

func (s *Server) get(c echo.Context) error {
	st, err := s.cfg.Control.List(c.Request().Context())
	if err != nil {
		return err
	}
	d, ok := st.Deployments[c.Param("name")]
	if !ok {
		return fmt.Errorf("%w: %q", registry.ErrUnknownUDF, c.Param("name"))
	}
	return c.JSON(http.StatusOK, d)
}

func (s *Server) upload(shadow bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		wasm, m, err := readModule(c)
		if err != nil {
			return err
		}
		if name := c.Param("name"); name != "" {
			if m.Name != "" && m.Name != name {
				return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("the manifest names %q but the URL %q", m.Name, name))
			}
			m.Name = name
		}
		ctx := c.Request().Context()
		var res registry.Result
		if shadow {
			res, err = s.cfg.Control.Shadow(ctx, wasm, m)
		} else {
			res, err = s.cfg.Control.Deploy(ctx, wasm, m)
		}
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, res)
	}
}

// readModule reads the module and its manifest from a request (see the
// package comment).
func readModule(c echo.Context) ([]byte, registry.Manifest, error) {
	r := c.Request()
	r.Body = http.MaxBytesReader(c.Response(), r.Body, maxBody)
	mt, _, _ := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
	var wasm []byte
	var m registry.Manifest
	if mt == echo.MIMEMultipartForm {
		if err := r.ParseMultipartForm(8 << 20); err != nil {
			return nil, m, bodyError(err)
		}
		fh, err := c.FormFile("module")
		if err != nil {
			return nil, m, echo.NewHTTPError(http.StatusBadRequest, `multipart body without a "module" file part`)
		}
		f, err := fh.Open()
		if err != nil {
			return nil, m, err
		}
		defer f.Close()
		if wasm, err = io.ReadAll(f); err != nil {
			return nil, m, bodyError(err)
		}
		if js := r.FormValue("manifest"); js != "" {
			if m, err = registry.ParseManifest([]byte(js)); err != nil {
				return nil, m, err
			}
		}
		m.FileName = fh.Filename
		return wasm, m, nil
	}
	wasm, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, m, bodyError(err)
	}
	m, err = manifestFromQuery(c)
	return wasm, m, err
}

func bodyError(err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf("module larger than %d bytes", registry.MaxModuleBytes))
	}
	return echo.NewHTTPError(http.StatusBadRequest, "reading the body: "+err.Error())
}

// manifestFromQuery builds the manifest from ?manifest=JSON or from the
// individual fields.
func manifestFromQuery(c echo.Context) (registry.Manifest, error) {
	q := c.QueryParams()
	if js := q.Get("manifest"); js != "" {
		return registry.ParseManifest([]byte(js))
	}
	m := registry.Manifest{Name: q.Get("name"), Version: q.Get("version"), Routes: q["route"]}
	var err error
	if v := q.Get("default"); v != "" {
		if m.Default, err = strconv.ParseBool(v); err != nil {
			return m, fmt.Errorf("%w: default=%q", registry.ErrBadManifest, v)
		}
	}
	for key, dst := range map[string]*int{"memory_mib": &m.Limits.MemoryMiB, "instances": &m.Limits.Instances,
		"max_state_bytes": &m.Limits.MaxStateBytes, "max_output_bytes": &m.Limits.MaxOutputBytes,
		"max_outputs_per_reading": &m.Limits.MaxOutputsPerReading} {
		if v := q.Get(key); v != "" {
			if *dst, err = strconv.Atoi(v); err != nil {
				return m, fmt.Errorf("%w: %s=%q", registry.ErrBadManifest, key, v)
			}
		}
	}
	if v := q.Get("call_timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return m, fmt.Errorf("%w: call_timeout=%q", registry.ErrBadManifest, v)
		}
		m.Limits.CallTimeout = registry.Duration(d)
	}
	return m, m.Validate()
}

func (s *Server) promote(c echo.Context) error {
	res, err := s.cfg.Control.Promote(c.Request().Context(), c.Param("name"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}

func (s *Server) rollback(c echo.Context) error {
	res, err := s.cfg.Control.Rollback(c.Request().Context(), c.Param("name"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}

func (s *Server) setRoutes(c echo.Context) error {
	var r registry.Routes
	dec := json.NewDecoder(http.MaxBytesReader(c.Response(), c.Request().Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "routes: "+err.Error())
	}
	res, err := s.cfg.Control.SetRoutes(c.Request().Context(), r)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}

// statusOf maps the registry's errors to HTTP statuses.
func statusOf(err error) int {
	var he *echo.HTTPError
	switch {
	case errors.As(err, &he):
		return he.Code
	case errors.Is(err, registry.ErrRefused):
		return http.StatusUnprocessableEntity
	case errors.Is(err, registry.ErrBadManifest), errors.Is(err, registry.ErrBadRecord):
		return http.StatusBadRequest
	case errors.Is(err, registry.ErrUnknownUDF):
		return http.StatusNotFound
	case slices.ContainsFunc([]error{registry.ErrNoLive, registry.ErrNoShadow, registry.ErrShadowIsLive, registry.ErrNothingToRollBack},
		func(target error) bool { return errors.Is(err, target) }):
		return http.StatusConflict
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return http.StatusGatewayTimeout
	default:
		return http.StatusBadGateway // the registry topic could not be read or written
	}
}

// Error is the body of every error response.
type Error struct {
	Error string `json:"error"`
}

func (s *Server) httpError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	code := statusOf(err)
	msg := err.Error()
	var he *echo.HTTPError
	if errors.As(err, &he) {
		msg = fmt.Sprint(he.Message)
	}
	_ = c.JSON(code, Error{Error: msg})
}
