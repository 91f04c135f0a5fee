package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The watched directory polls rather than using inotify (fsnotify): a
// deploy needs the file to be complete, which no event says (a copy is a
// create and many writes; an editor renames), so the watcher has to wait
// until size and mtime stay the same across two looks anyway; polling one
// directory once a second costs nothing, and it works where inotify does
// not: network and FUSE mounts, container bind mounts, Kubernetes ConfigMap
// volumes that swap a symlink.

// DefaultPollInterval is how often the watched directory is listed.
const DefaultPollInterval = time.Second

// Deployer is what the watched directory deploys with; *Publisher is one.
type Deployer interface {
	Deploy(ctx context.Context, wasm []byte, m Manifest) (Result, error)
}

// DirConfig configures a DirWatcher.
type DirConfig struct {
	// Dir is the watched directory; its *.wasm files (not subdirectories,
	// not dot files) are deployed, each with its manifest (see
	// LoadManifest).
	Dir string
	// Deployer publishes; required.
	Deployer Deployer
	// PollInterval; zero means DefaultPollInterval. A file is deployed
	// once it looked the same (size, mtime, and its manifest's) in two
	// polls in a row.
	PollInterval time.Duration
	// Logger gets one line per deploy and per refusal; nil discards.
	Logger *slog.Logger
	// Registerer gets the watcher's metrics; nil: a private registry.
	Registerer prometheus.Registerer
}

// Validate reports a config that cannot work.
func (c DirConfig) Validate() error {
	if c.Dir == "" {
		return errors.New("registry: watched directory: no directory")
	}
	if c.Deployer == nil {
		return errors.New("registry: watched directory: no deployer")
	}
	if c.PollInterval < 0 {
		return errors.New("registry: watched directory: negative poll interval")
	}
	return nil
}

// DirWatcher deploys the modules dropped into a directory.
//
// Every stable file is deployed once per change: at start (deploying what
// is already live changes nothing, so a restart is harmless), and again
// whenever the file or its manifest changes. A refused module (not Wasm,
// wrong ABI, bad manifest) is logged and counted and not retried until it
// changes; a failure to publish (Kafka down) is retried at the next poll.
// Removing a file does not undeploy anything: roll back instead.
type DirWatcher struct {
	cfg     DirConfig
	log     *slog.Logger
	files   *prometheus.CounterVec
	seen    map[string]fileStamp // what the last poll saw
	handled map[string]fileStamp // what was last deployed or refused
}

// fileStamp is what tells a changed or growing file.
type fileStamp struct {
	size, manifestSize   int64
	mtime, manifestMtime time.Time
}

// NewDirWatcher checks cfg.
func NewDirWatcher(cfg DirConfig) (*DirWatcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	w := &DirWatcher{cfg: cfg, log: cfg.Logger, seen: map[string]fileStamp{}, handled: map[string]fileStamp{}}
	if w.log == nil {
		w.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	reg := cfg.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	w.files = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sailstream_udf_watchdir_files_total",
		Help: "Stable .wasm files of the watched directory handled, by outcome: deployed, unchanged (already live), refused (invalid; not retried until it changes), failed (publishing failed; retried).",
	}, []string{"outcome"})
	if err := reg.Register(w.files); err != nil {
		return nil, fmt.Errorf("registry: registering metrics: %w", err)
	}
	return w, nil
}

// Run polls until ctx ends and returns nil then. A directory that does not
// exist (yet) is logged once and polled for.
func (w *DirWatcher) Run(ctx context.Context) error {
	w.log.Info("watching for UDF modules", "dir", w.cfg.Dir, "poll", w.cfg.PollInterval)
	t := time.NewTicker(w.cfg.PollInterval)
	defer t.Stop()
	missing := false
	for {
		err := w.poll(ctx)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if !missing {
				w.log.Warn("watched UDF directory does not exist; waiting for it", "dir", w.cfg.Dir)
			}
			missing = true
		case err != nil:
			w.log.Warn("watched UDF directory", "dir", w.cfg.Dir, "err", err)
		default:
			missing = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// poll lists the directory once and deploys the files that are stable and
// not handled in their current form.
func (w *DirWatcher) poll(ctx context.Context) error {
	entries, err := os.ReadDir(w.cfg.Dir)
	if err != nil {
		return err
	}
	now := map[string]fileStamp{}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || filepath.Ext(name) != ".wasm" {
			continue
		}
		p := filepath.Join(w.cfg.Dir, name)
		fi, err := os.Stat(p) // follows symlinks
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		st := fileStamp{size: fi.Size(), mtime: fi.ModTime()}
		for _, mp := range ManifestPaths(p) {
			if mi, err := os.Stat(mp); err == nil {
				st.manifestSize, st.manifestMtime = mi.Size(), mi.ModTime()
				break
			}
		}
		now[p] = st
		if prev, ok := w.seen[p]; !ok || prev != st {
			continue // new or still changing: look again next poll
		}
		if h, ok := w.handled[p]; ok && h == st {
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		if w.deploy(ctx, p) {
			w.handled[p] = st
		}
	}
	w.seen = now
	for p := range w.handled {
		if _, ok := now[p]; !ok {
			delete(w.handled, p)
		}
	}
	return nil
}

// deploy deploys one file; it reports whether the file is handled (deployed
// or refused) rather than to be retried.
func (w *DirWatcher) deploy(ctx context.Context, p string) bool {
	wasm, err := os.ReadFile(p)
	if err != nil {
		w.files.WithLabelValues("failed").Inc()
		w.log.Warn("udf watch: reading module; will retry", "file", p, "err", err)
		return false
	}
	m, _, err := LoadManifest(p)
	if err != nil {
		w.files.WithLabelValues("refused").Inc()
		w.log.Error("udf watch: module refused: its manifest is bad; fix it and save again", "file", p, "err", err)
		return true
	}
	res, err := w.cfg.Deployer.Deploy(ctx, wasm, m)
	switch {
	case errors.Is(err, ErrRefused) || errors.Is(err, ErrBadManifest):
		w.files.WithLabelValues("refused").Inc()
		w.log.Error("udf watch: module refused, nothing published; fix it and save again", "file", p, "err", err)
		return true
	case err != nil:
		w.files.WithLabelValues("failed").Inc()
		w.log.Warn("udf watch: deploying failed; will retry", "file", p, "err", err)
		return false
	case !res.Changed:
		w.files.WithLabelValues("unchanged").Inc()
		w.log.Info("udf watch: module already live", "file", p, "udf", res.Name)
	default:
		w.files.WithLabelValues("deployed").Inc()
		v := ""
		if res.Deployment != nil && res.Deployment.Live != nil {
			v = res.Deployment.Live.Version
		}
		w.log.Info("udf watch: module deployed", "file", p, "udf", res.Name, "version", v, "sha256", short(res.Module))
	}
	return true
}
