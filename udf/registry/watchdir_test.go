package registry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sailstream/sailstream/internal/testenv"
	"github.com/sailstream/sailstream/udf"
)

// engineDeployer validates with the real engine, as the Publisher does,
// and records what it would publish.
type engineDeployer struct {
	t       testing.TB
	mu      sync.Mutex
	deploys []string // name@version
	failing error    // returned (once) instead of deploying
}

func (d *engineDeployer) Deploy(ctx context.Context, wasm []byte, m Manifest) (Result, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.failing; err != nil {
		d.failing = nil
		return Result{}, err
	}
	mod, err := testEngine(d.t).Load(ctx, wasm, udf.Limits{})
	if err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	info := mod.Info()
	_ = mod.Close(ctx)
	name, version, err := resolveIdentity(m, info, NameFromFile(m.FileName), Hash(wasm))
	if err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	d.deploys = append(d.deploys, name+"@"+version)
	return Result{Action: "deploy", Name: name, Changed: true}, nil
}

func (d *engineDeployer) got() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.deploys...)
}

func TestDirWatcherDeploysStableFilesOnce(t *testing.T) {
	dir := t.TempDir()
	dep := &engineDeployer{t: t}
	reg := prometheus.NewRegistry()
	w, err := NewDirWatcher(DirConfig{Dir: dir, Deployer: dep, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	geofence := guest(t, "geofence")
	good := filepath.Join(dir, "fence.wasm")
	outcome := func(o string) int { return int(testutil.ToFloat64(w.files.WithLabelValues(o))) }

	steps := []struct {
		name   string
		before func()
		want   []string
	}{
		{"half a file is not deployed", func() { write(t, good, geofence[:len(geofence)/2]) }, nil},
		{"a file still growing is not deployed", func() { write(t, good, geofence) }, nil},
		{"a stable file is deployed, named by its info export", nil, []string{"geofence@1.0.0"}},
		{"and only once", nil, []string{"geofence@1.0.0"}},
		{"ignored: dot files, other extensions, directories", func() {
			write(t, filepath.Join(dir, ".hidden.wasm"), geofence)
			write(t, filepath.Join(dir, "notes.txt"), []byte("x"))
			must(t, os.Mkdir(filepath.Join(dir, "sub.wasm"), 0o755))
		}, []string{"geofence@1.0.0"}},
		{"a manifest beside it is seen", func() {
			write(t, filepath.Join(dir, "fence.json"), []byte(`{"name":"fence","version":"9"}`))
		}, []string{"geofence@1.0.0"}},
		{"and deploys again once stable", nil, []string{"geofence@1.0.0", "fence@9"}},
		{"a bad module appears", func() { write(t, filepath.Join(dir, "bad.wasm"), []byte("\x00asm but not really")) }, []string{"geofence@1.0.0", "fence@9"}},
		{"and is refused, not published", nil, []string{"geofence@1.0.0", "fence@9"}},
		{"and not retried", nil, []string{"geofence@1.0.0", "fence@9"}},
	}
	for _, st := range steps {
		if st.before != nil {
			st.before()
		}
		if err := w.poll(ctx); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got := dep.got(); fmt.Sprint(got) != fmt.Sprint(st.want) {
			t.Fatalf("%s: deploys %v, want %v", st.name, got, st.want)
		}
	}
	if n := outcome("refused"); n != 1 {
		t.Errorf("refused %d times, want 1", n)
	}
	if n := outcome("deployed"); n != 2 {
		t.Errorf("deployed %d, want 2", n)
	}

	// A bad manifest refuses its module; a failure to publish is retried.
	other := filepath.Join(dir, "smooth.wasm")
	write(t, other, guest(t, "smoothing"))
	write(t, filepath.Join(dir, "smooth.manifest.json"), []byte(`{"nmae":"typo"}`))
	must(t, w.poll(ctx))
	must(t, w.poll(ctx))
	if n := outcome("refused"); n != 2 {
		t.Errorf("a bad manifest: refused %d, want 2", n)
	}
	write(t, filepath.Join(dir, "smooth.manifest.json"), []byte(`{"version":"2"}`))
	dep.failing = errors.New("kafka is down")
	must(t, w.poll(ctx))
	must(t, w.poll(ctx))
	if n := outcome("failed"); n != 1 {
		t.Errorf("failed %d, want 1", n)
	}
	must(t, w.poll(ctx))
	if got := dep.got(); got[len(got)-1] != "smoothing@2" {
		t.Errorf("not retried after a failure: %v", got)
	}
}

func write(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	// Make every write visible as a change even on a coarse-mtime file
	// system.
	mt := time.Now().Add(time.Duration(len(b)) * time.Microsecond)
	must(t, os.Chtimes(p, mt, mt))
}

func TestDirConfigValidate(t *testing.T) {
	for _, c := range []DirConfig{{}, {Dir: "x"}, {Deployer: &engineDeployer{}}, {Dir: "x", Deployer: &engineDeployer{}, PollInterval: -1}} {
		if c.Validate() == nil {
			t.Errorf("%+v: valid", c)
		}
	}
}

// TestIntegrationDirWatcher drops modules into a directory watched by Run
// with the real Publisher and finds them in the topic.
func TestIntegrationDirWatcher(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	topic := testenv.Unique("udf.modules.")
	p := newTestPublisher(t, brokers, topic)
	dir := t.TempDir()
	w, err := NewDirWatcher(DirConfig{Dir: dir, Deployer: p, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()

	write(t, filepath.Join(dir, "bad.wasm"), []byte("garbage"))
	write(t, filepath.Join(dir, "lake.wasm"), guest(t, "geofence"))
	write(t, filepath.Join(dir, "lake.json"), []byte(`{"name":"lake","routes":["buoy-*"]}`))
	for {
		s, err := p.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := s.Deployments["lake"]; ok {
			if d.Live.Version != "1.0.0" || s.Routes.Resolve("buoy-3") != "lake" {
				t.Fatalf("lake deployed as %+v, routes %+v", d.Live, s.Routes)
			}
			if len(s.Deployments) != 1 || len(s.Modules) != 1 {
				t.Fatalf("%d deployments, %d modules: the bad module was published?", len(s.Deployments), len(s.Modules))
			}
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("lake.wasm was not deployed")
		case <-time.After(100 * time.Millisecond):
		}
	}
	for testutil.ToFloat64(w.files.WithLabelValues("refused")) < 1 {
		select {
		case <-ctx.Done():
			t.Fatal("bad.wasm was not refused")
		case <-time.After(50 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
