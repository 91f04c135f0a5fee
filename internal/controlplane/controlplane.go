// Package controlplane runs the UDF control plane beside a core processor:
// the admin HTTP API and the watched directory, both publishing through one
// registry Publisher to the udf.modules topic that every core follows.
//
// It lives apart from package core on purpose: the core only reads the
// registry (so any number of instances apply the same swaps), and whether a
// given process also accepts deployments is a deployment choice, made here
// by `sailstream core` and `sailstream up`. It shares the core's udf.Engine,
// so a module validated on deploy is already compiled when the core swaps
// to it.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/sailstream/sailstream/udf"
	"github.com/sailstream/sailstream/udf/admin"
	"github.com/sailstream/sailstream/udf/registry"
)

// Config says what to run. AdminAddr == "" and WatchDir == "" run nothing.
type Config struct {
	KafkaBrokers []string
	// Topic is the registry topic (default udf.modules).
	Topic string
	// Engine validates modules; share the core's.
	Engine *udf.Engine
	// AdminAddr is where the admin API listens; empty disables it.
	AdminAddr string
	// AdminToken is the bearer token the admin API requires; it may be
	// empty only on a loopback address.
	AdminToken string
	// WatchDir is a directory whose .wasm files are deployed as they
	// appear or change; empty disables it. It is created if missing.
	WatchDir string

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Plane is a running control plane.
type Plane struct {
	cfg   Config
	pub   *registry.Publisher
	adm   *admin.Server
	dir   *registry.DirWatcher
	ready chan struct{}
}

// New validates cfg and builds the parts (nothing listens until Run).
func New(cfg Config) (*Plane, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Plane{cfg: cfg, ready: make(chan struct{})}
	if cfg.AdminAddr == "" && cfg.WatchDir == "" {
		close(p.ready)
		return p, nil
	}
	if cfg.Engine == nil {
		return nil, errors.New("controlplane: an Engine is required")
	}
	pub, err := registry.NewPublisher(registry.PublisherConfig{
		KafkaBrokers: cfg.KafkaBrokers, Topic: cfg.Topic, Engine: cfg.Engine,
		Logger: cfg.Logger, Registerer: cfg.Registerer,
	})
	if err != nil {
		return nil, fmt.Errorf("controlplane: %w", err)
	}
	p.pub = pub
	if cfg.AdminAddr != "" {
		p.adm, err = admin.New(admin.Config{Addr: cfg.AdminAddr, Token: cfg.AdminToken, Control: pub, Logger: cfg.Logger, Registerer: cfg.Registerer})
		if err != nil {
			pub.Close()
			return nil, fmt.Errorf("controlplane: %w", err)
		}
	}
	if cfg.WatchDir != "" {
		if err := os.MkdirAll(cfg.WatchDir, 0o755); err != nil {
			pub.Close()
			return nil, fmt.Errorf("controlplane: watched directory: %w", err)
		}
		p.dir, err = registry.NewDirWatcher(registry.DirConfig{Dir: cfg.WatchDir, Deployer: pub, Logger: cfg.Logger, Registerer: cfg.Registerer})
		if err != nil {
			pub.Close()
			return nil, fmt.Errorf("controlplane: %w", err)
		}
	}
	return p, nil
}

// Ready is closed once the admin API listens (at once when it is off).
func (p *Plane) Ready() <-chan struct{} {
	if p.adm != nil {
		return p.adm.Ready()
	}
	return p.ready
}

// AdminAddr is the admin API's listening address once Ready, "" when off.
func (p *Plane) AdminAddr() string {
	if p.adm == nil {
		return ""
	}
	return p.adm.Addr()
}

// WatchDir is the absolute path of the watched directory, "" when off.
func (p *Plane) WatchDir() string {
	if p.dir == nil {
		return ""
	}
	abs, err := filepath.Abs(p.cfg.WatchDir)
	if err != nil {
		return p.cfg.WatchDir
	}
	return abs
}

// Run serves until ctx ends.
func (p *Plane) Run(ctx context.Context) error {
	if p.pub == nil {
		return nil
	}
	defer p.pub.Close()
	g, gctx := errgroup.WithContext(ctx)
	if p.adm != nil {
		g.Go(func() error { return p.adm.Run(gctx) })
	}
	if p.dir != nil {
		g.Go(func() error { return p.dir.Run(gctx) })
	}
	return g.Wait()
}

// DefaultCacheDir is where compiled modules are cached across restarts.
func DefaultCacheDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "sailstream", "wasm")
}
