package edge

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sailstream/sailstream/internal/testenv"
	"github.com/sailstream/sailstream/telemetry"
)

// startMochi runs an in-process broker on a free port: fast unit tests only;
// TestIntegrationFleetToMosquitto covers the real broker.
func startMochi(t *testing.T) string {
	t.Helper()
	s := mochi.New(&mochi.Options{Logger: slog.New(slog.DiscardHandler), InlineClient: false})
	if err := s.AddHook(new(allowAll), nil); err != nil {
		t.Fatal(err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0"})
	if err := s.AddListener(l); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve() }()
	t.Cleanup(func() { _ = s.Close() })
	return "tcp://" + l.Address()
}

// allowAll lets every client connect, publish and subscribe (mochi's own
// auth.AllowHook pulls in a YAML dependency a test does not need).
type allowAll struct{ mochi.HookBase }

func (*allowAll) ID() string { return "allow-all" }
func (*allowAll) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}
func (*allowAll) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool { return true }
func (*allowAll) OnACLCheck(*mochi.Client, string, bool) bool              { return true }

type received struct {
	topic   string
	payload []byte
	at      time.Time
}

// subscribe collects every message under prefix.
func subscribe(t *testing.T, url, prefix string) (get func() []received) {
	t.Helper()
	var (
		mu  sync.Mutex
		got []received
	)
	opts := mqtt.NewClientOptions().AddBroker(url).SetClientID(testenv.Unique("edge-test-sub-")).SetCleanSession(true)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect to %s: %v", url, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	tok := c.Subscribe(prefix+"/+/telemetry", 1, func(_ mqtt.Client, m mqtt.Message) {
		mu.Lock()
		got = append(got, received{topic: m.Topic(), payload: append([]byte(nil), m.Payload()...), at: time.Now()})
		mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return func() []received {
		mu.Lock()
		defer mu.Unlock()
		return append([]received(nil), got...)
	}
}

func sumCounter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// publishAndCheck runs a fleet of count readings against the broker at url
// and checks that every reading arrives once, decodes, and is the one the
// plan says, on the right topic; and that the metrics add up.
func publishAndCheck(t *testing.T, url string, count int, rate float64) {
	prefix := testenv.Unique("sailstream-test/edge-")
	get := subscribe(t, url, prefix)

	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	cfg.MQTTURL = url
	cfg.ClientID = testenv.Unique("edge-test-pub-")
	cfg.TopicPrefix = prefix
	cfg.Rate = rate
	cfg.Count = count
	cfg.Seed = 1963
	cfg.LateFraction = 0.1
	cfg.LateMin, cfg.LateMax = 50*time.Millisecond, 300*time.Millisecond
	cfg.Registerer = reg
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	began := time.Now()
	if err := f.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	elapsed := time.Since(began)
	// Schedule: count/rate seconds plus the longest late delay.
	if budget := time.Duration(float64(count)/rate*float64(time.Second)) + cfg.LateMax + 3*time.Second; elapsed > budget {
		t.Errorf("Run took %s for %d readings at %g/s: not keeping up (budget %s)", elapsed, count, rate, budget)
	}

	deadline := time.Now().Add(10 * time.Second)
	for len(get()) < count && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // let any duplicate show up
	msgs := get()

	plan, err := Plan(cfg, time.Now(), count)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Emission{}
	lateWant := 0
	for _, e := range plan {
		want[fmt.Sprintf("%s/%d", e.Reading.Device, e.Reading.Seq)] = e
		if e.Late {
			lateWant++
		}
	}
	seen := map[string]bool{}
	var first time.Time
	for _, m := range msgs {
		parts := strings.Split(m.topic, "/")
		device := parts[len(parts)-2]
		r, err := telemetry.Decode(device, m.payload, time.Now())
		if err != nil {
			t.Fatalf("message on %s does not decode: %v: %s", m.topic, err, m.payload)
		}
		key := fmt.Sprintf("%s/%d", r.Device, r.Seq)
		if seen[key] {
			t.Errorf("%s received twice", key)
		}
		seen[key] = true
		e, ok := want[key]
		if !ok {
			t.Fatalf("received %s, which is not in the plan", key)
		}
		if m.topic != e.Topic {
			t.Errorf("%s on topic %s, want %s", key, m.topic, e.Topic)
		}
		if r.Lat != e.Reading.Lat || r.Lon != e.Reading.Lon {
			t.Errorf("%s at %g,%g, plan says %g,%g", key, r.Lat, r.Lon, e.Reading.Lat, e.Reading.Lon)
		}
		if key == "boat-1/1" {
			first = r.Time
		}
	}
	if len(seen) != count {
		t.Fatalf("received %d distinct readings of %d", len(seen), count)
	}
	// Event times keep the plan's spacing from the first reading.
	for _, m := range msgs {
		parts := strings.Split(m.topic, "/")
		r, _ := telemetry.Decode(parts[len(parts)-2], m.payload, time.Now())
		e := want[fmt.Sprintf("%s/%d", r.Device, r.Seq)]
		if got, wantOff := r.Time.Sub(first), e.Reading.Time.Sub(plan[0].Reading.Time); got != wantOff {
			t.Fatalf("%s/%d event time %s after the first, plan says %s", r.Device, r.Seq, got, wantOff)
		}
	}
	if got := sumCounter(t, reg, "sailstream_edge_readings_published_total"); got != float64(count) {
		t.Errorf("sailstream_edge_readings_published_total = %g, want %d", got, count)
	}
	if got := sumCounter(t, reg, "sailstream_edge_late_total"); got != float64(lateWant) {
		t.Errorf("sailstream_edge_late_total = %g, want %d", got, lateWant)
	}
	if got := sumCounter(t, reg, "sailstream_edge_publish_errors_total"); got != 0 {
		t.Errorf("sailstream_edge_publish_errors_total = %g, want 0", got)
	}
}

func TestRunPublishesThePlanToMochi(t *testing.T) {
	publishAndCheck(t, startMochi(t), 200, 500)
}

func TestRunKeepsUpAtHighRate(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	publishAndCheck(t, startMochi(t), 3000, 5000)
}

func TestIntegrationFleetToMosquitto(t *testing.T) {
	url := testenv.MQTTURL(t)
	t.Run("200 at 500 per s", func(t *testing.T) { publishAndCheck(t, url, 200, 500) })
	t.Run("2000 at 2000 per s", func(t *testing.T) { publishAndCheck(t, url, 2000, 2000) })
}

func TestRunStopsWhenContextEnds(t *testing.T) {
	url := startMochi(t)
	cfg := DefaultConfig()
	cfg.MQTTURL = url
	cfg.TopicPrefix = testenv.Unique("sailstream-test/edge-")
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	time.Sleep(700 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s of cancel")
	}
	if got := sumCounter(t, reg, "sailstream_edge_readings_published_total"); got < 3 {
		t.Fatalf("only %g readings published in 0.7s at 10/s", got)
	}
}

func TestRunReportsAnUnreachableBroker(t *testing.T) {
	// A port that was free a moment ago: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := DefaultConfig()
	cfg.MQTTURL = "tcp://" + addr
	cfg.ConnectTimeout = 2 * time.Second
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = f.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), addr) || !strings.HasPrefix(err.Error(), "edge: connect") {
		t.Fatalf("Run against a closed port = %v, want an edge: connect error naming %s", err, addr)
	}
}

func TestNewRegistersMetricsOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	cfg.MQTTURL = "tcp://127.0.0.1:1"
	cfg.Registerer = reg
	if _, err := New(cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "register metrics") {
		t.Fatalf("second New on the same registry = %v, want a register metrics error", err)
	}
}
