package registry

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/internal/testenv"
)

func TestWatchKfake(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	runWatch(t, c.ListenAddrs(), testenv.Unique("udf.modules-"))
}

func TestIntegrationWatchKafka(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	t.Parallel()
	runWatch(t, brokers, testenv.Unique("udf.modules-"))
}

// runWatch writes a registry (with bad records among it) before the
// watcher starts, checks the first snapshot is the whole of it, then that
// later records arrive as new snapshots that do not alias each other.
func runWatch(t *testing.T, brokers []string, topic string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerBatchMaxBytes(MaxModuleRecordBytes))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// The watcher creates the topic when it is missing; the control plane
	// may write first, so create it the same way here.
	w, err := NewWatcher(WatchConfig{Brokers: brokers, Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	if err := ensureWatchTopic(ctx, cl, topic); err != nil {
		t.Fatal(err)
	}
	put := func(key string, value []byte) {
		t.Helper()
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(key), Value: value}).FirstErr(); err != nil {
			t.Fatalf("producing %s: %v", key, err)
		}
	}
	js := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// A 3 MiB module: above every Kafka default size.
	big := make([]byte, 3<<20)
	rand.Read(big)
	sha := Hash(big)
	put(KeyModulePrefix+sha, big)
	put(KeyModulePrefix+"00ff", []byte("not the bytes this hash names")) // bad
	put("junk", []byte("x"))                                             // bad
	put(KeyUDFPrefix+"speed", js(Deployment{Name: "other"}))             // bad: name mismatch
	put(KeyUDFPrefix+"speed", js(Deployment{Name: "speed", Live: &Ref{Version: "1", SHA256: sha}}))
	put(KeyRoutes, js(Routes{Rules: []Route{{Pattern: "evil-*", UDF: "evil"}}, Default: "speed"}))

	snaps := make(chan *State, 16)
	done := make(chan error, 1)
	wctx, wcancel := context.WithCancel(ctx)
	go func() { done <- w.Run(wctx, func(s *State) { snaps <- s }) }()
	next := func() *State {
		t.Helper()
		select {
		case s := <-snaps:
			return s
		case <-ctx.Done():
			t.Fatal("no snapshot")
			return nil
		}
	}

	first := next()
	if m, ok := first.Modules[sha]; !ok || len(m.Wasm) != len(big) {
		t.Fatalf("first snapshot lacks the 3 MiB module: %d modules", len(first.Modules))
	}
	if d := first.Deployments["speed"]; d.Live == nil || d.Live.Version != "1" {
		t.Fatalf("first snapshot: deployment %+v, want speed live at version 1", d)
	}
	if got := first.Routes.Resolve("evil-7"); got != "evil" {
		t.Fatalf("first snapshot routes evil-7 to %q", got)
	}
	if n := w.BadRecords(); n != 3 {
		t.Errorf("BadRecords = %d, want 3", n)
	}

	// A snapshot is a copy: changing it changes nothing for the next.
	first.Deployments["speed"].Live.Version = "mutated"
	first.Routes.Rules[0].UDF = "mutated"
	put(KeyUDFPrefix+"speed", js(Deployment{Name: "speed", Live: &Ref{Version: "2", SHA256: sha}, Previous: []Ref{{Version: "1", SHA256: sha}}}))
	second := next()
	if d := second.Deployments["speed"]; d.Live.Version != "2" || len(d.Previous) != 1 || d.Previous[0].Version != "1" {
		t.Errorf("second snapshot: %+v", d)
	}
	if got := second.Routes.Resolve("evil-7"); got != "evil" {
		t.Errorf("second snapshot routes evil-7 to %q: it shares the first's rules", got)
	}

	// A tombstone deletes.
	put(KeyUDFPrefix+"speed", nil)
	if third := next(); len(third.Deployments) != 0 {
		t.Errorf("after the tombstone: deployments %v", third.Deployments)
	}

	// The topic is compacted.
	cfgs, err := kadm.NewClient(cl).DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := cfgs.On(topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rc.Configs {
		if c.Key == "cleanup.policy" && c.MaybeValue() != "compact" {
			t.Errorf("cleanup.policy = %q, want compact", c.MaybeValue())
		}
	}

	wcancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("Run did not return after cancel")
	}
}

func ensureWatchTopic(ctx context.Context, cl *kgo.Client, topic string) error {
	spec := TopicSpec(topic)
	_, err := kadm.NewClient(cl).CreateTopic(ctx, spec.Partitions, -1, spec.Configs, topic)
	return err
}
