package registry

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/internal/testenv"
	"github.com/sailstream/sailstream/udf"
)

func newTestPublisher(t *testing.T, brokers []string, topic string) *Publisher {
	t.Helper()
	p, err := NewPublisher(PublisherConfig{KafkaBrokers: brokers, Topic: topic, Engine: testEngine(t),
		Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// endOffset is the end of the topic's only partition.
func endOffset(t *testing.T, brokers []string, topic string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	o, _ := ends.Lookup(topic, 0)
	return o.Offset
}

// watch folds the topic with the data plane's Watcher, as a core would,
// and returns its first snapshot.
func watch(t *testing.T, brokers []string, topic string) *State {
	t.Helper()
	w, err := NewWatcher(WatchConfig{Brokers: brokers, Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := make(chan *State, 1)
	go func() {
		_ = w.Run(ctx, func(s *State) {
			select {
			case got <- s:
				cancel()
			default:
			}
		})
	}()
	select {
	case s := <-got:
		return s
	case <-ctx.Done():
		t.Fatal("the watcher gave no state")
		return nil
	}
}

func TestIntegrationPublisher(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	topic := testenv.Unique("udf.modules.")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	speed, geofence, smoothing := guest(t, "speed"), guest(t, "geofence"), guest(t, "smoothing")
	if len(geofence) < 2<<20 {
		t.Fatalf("geofence module is %d bytes; the test wants a 2+ MiB module", len(geofence))
	}
	p := newTestPublisher(t, brokers, topic)

	// A bad module is refused and nothing is published.
	if _, err := p.List(ctx); err != nil { // creates the topic
		t.Fatal(err)
	}
	for name, bad := range map[string][]byte{"not wasm": []byte("not wasm at all"), "abi v2": wat(t, "abi2"), "no export": wat(t, "noexport")} {
		_, err := p.Deploy(ctx, bad, Manifest{Name: "bad"})
		if !errors.Is(err, ErrRefused) {
			t.Errorf("%s: err %v, want ErrRefused", name, err)
		}
	}
	if _, err := p.Deploy(ctx, speed, Manifest{Name: "bad name!"}); !errors.Is(err, ErrRefused) || !errors.Is(err, ErrBadManifest) {
		t.Errorf("bad name: err %v", err)
	}
	if end := endOffset(t, brokers, topic); end != 0 {
		t.Fatalf("refused modules published %d records", end)
	}

	// Deploy: the name and version come from the module's info export.
	res, err := p.Deploy(ctx, geofence, Manifest{FileName: "/x/ignored.wasm", Routes: []string{"buoy-*"}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.Name != "geofence" || res.Deployment.Live.Version != "1.0.0" || res.Routes.Resolve("buoy-1") != "geofence" {
		t.Fatalf("deploy result %+v", res)
	}
	if res, err := p.Deploy(ctx, geofence, Manifest{}); err != nil || res.Changed {
		t.Fatalf("deploying again: changed %v, err %v", res.Changed, err)
	}
	// Shadow speed (live: the built-in) with the smoothing module, promote,
	// then shadow speed again and roll the shadow back, then roll back.
	steps := []struct {
		do   func() (Result, error)
		want string
	}{
		{func() (Result, error) { return p.Shadow(ctx, smoothing, Manifest{Name: "speed", Version: "2"}) }, "-|2|[]"},
		{func() (Result, error) { return p.Promote(ctx, "speed") }, "2|-|[]"},
		{func() (Result, error) { return p.Deploy(ctx, speed, Manifest{Version: "3"}) }, "3|-|[2]"},
		{func() (Result, error) { return p.Shadow(ctx, geofence, Manifest{Name: "speed", Version: "4"}) }, "3|4|[2]"},
		{func() (Result, error) { return p.Rollback(ctx, "speed") }, "3|-|[2]"},
		{func() (Result, error) { return p.Rollback(ctx, "speed") }, "2|-|[]"},
	}
	for i, st := range steps {
		if _, err := st.do(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		s, err := p.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := versions(s, "speed"); got != st.want {
			t.Fatalf("step %d: speed is %s, want %s", i, got, st.want)
		}
	}
	if _, err := p.Promote(ctx, "speed"); !errors.Is(err, ErrNoShadow) {
		t.Errorf("promote without a shadow: %v", err)
	}
	if _, err := p.SetRoutes(ctx, Routes{Default: "speed", Rules: []Route{{"boat-*", "geofence"}}}); err != nil {
		t.Fatal(err)
	}

	// A core reading the topic from the start (the data plane's Watcher)
	// and a second publisher see what the first publisher sees, module
	// bytes included.
	want, err := p.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for who, got := range map[string]*State{
		"watcher":          watch(t, brokers, topic),
		"second publisher": func() *State { s, err := newTestPublisher(t, brokers, topic).List(ctx); must(t, err); return s }(),
	} {
		if versions(got, "speed") != "2|-|[]" || versions(got, "geofence") != "1.0.0|-|[]" {
			t.Errorf("%s: speed %s, geofence %s", who, versions(got, "speed"), versions(got, "geofence"))
		}
		if got.Routes.Resolve("boat-1") != "geofence" || got.Routes.Default != "speed" {
			t.Errorf("%s: routes %+v", who, got.Routes)
		}
		if len(got.Modules) != len(want.Modules) {
			t.Errorf("%s: %d modules, want %d", who, len(got.Modules), len(want.Modules))
		}
		geo := got.Modules[Hash(geofence)]
		if !bytes.Equal(geo.Wasm, geofence) {
			t.Errorf("%s: the %d-byte geofence module did not round-trip (%d bytes)", who, len(geofence), len(geo.Wasm))
		}
	}
	// The modules the rollbacks discarded are deleted from the topic.
	if _, ok := want.Modules[Hash(speed)]; ok {
		t.Error("the module rolled back from (speed 3) is still in the state")
	}
	// And a deployed module loads in the engine, as the core will load it.
	m, err := testEngine(t).Load(ctx, want.Modules[want.Deployments["speed"].Live.SHA256].Wasm, udf.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Info().Name != "smoothing" {
		t.Errorf("live speed runs %q, want the smoothing module", m.Info().Name)
	}
	_ = m.Close(ctx)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
