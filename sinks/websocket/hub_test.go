package websocket_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sailstream/sailstream/sinks/websocket"
	"github.com/sailstream/sailstream/telemetry"
)

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func reading(device string, seq uint64) telemetry.Enriched {
	return telemetry.Enriched{
		Device:  device,
		Seq:     seq,
		Time:    t0.Add(time.Duration(seq) * time.Second),
		Lat:     52.46 + float64(seq)*1e-5,
		Lon:     21.02,
		SpeedMS: 2.5,
		SpeedKn: 2.5 * 1.943844,
	}
}

// newHub starts a hub behind an httptest server; both are closed at the end
// of the test.
func newHub(t testing.TB, opts websocket.Options) (*websocket.Hub, *prometheus.Registry, string) {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	h, err := websocket.NewHub(opts)
	if err != nil {
		t.Fatalf("NewHub: %v", err)
	}
	srv := httptest.NewServer(http.HandlerFunc(h.ServeWS))
	t.Cleanup(func() {
		_ = h.Close()
		srv.Close()
	})
	return h, reg, "ws" + strings.TrimPrefix(srv.URL, "http")
}

func dial(t testing.TB, url string) *gws.Conn {
	t.Helper()
	c, resp, err := gws.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	_ = resp.Body.Close()
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// dialSmallBuffer dials with a 16 KiB receive buffer (which also turns off
// the kernel's autotuning), so a client that does not read backs up quickly.
func dialSmallBuffer(t testing.TB, url string) *gws.Conn {
	t.Helper()
	d := gws.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			err = c.(*net.TCPConn).SetReadBuffer(16 << 10)
		}
		return c, err
	}}
	c, resp, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	_ = resp.Body.Close()
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func readReading(t testing.TB, c *gws.Conn) telemetry.Enriched {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, data, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if typ != gws.TextMessage {
		t.Fatalf("message type %d, want text", typ)
	}
	var e telemetry.Enriched
	if err := json.Unmarshal(data, &e); err != nil {
		t.Fatalf("decoding %q: %v", data, err)
	}
	return e
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func metric(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if g := m.GetGauge(); g != nil {
			return g.GetValue()
		}
		return m.GetCounter().GetValue()
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

func publish(t testing.TB, h *websocket.Hub, e telemetry.Enriched) {
	t.Helper()
	if err := h.Publish(e); err != nil {
		t.Fatalf("Publish(%s/%d): %v", e.Device, e.Seq, err)
	}
}

func TestSnapshotThenStream(t *testing.T) {
	h, reg, url := newHub(t, websocket.Options{})
	publish(t, h, reading("boat-3", 1))
	publish(t, h, reading("boat-1", 1))
	publish(t, h, reading("boat-2", 1))
	publish(t, h, reading("boat-1", 2))

	c := dial(t, url)
	want := []struct {
		device string
		seq    uint64
	}{{"boat-1", 2}, {"boat-2", 1}, {"boat-3", 1}}
	for i, w := range want {
		got := readReading(t, c)
		if got.Device != w.device || got.Seq != w.seq {
			t.Fatalf("snapshot[%d] = %s/%d, want %s/%d", i, got.Device, got.Seq, w.device, w.seq)
		}
	}

	waitFor(t, "client registered", func() bool { return h.Clients() == 1 })
	publish(t, h, reading("boat-4", 1))
	publish(t, h, reading("boat-1", 3))
	for i, w := range []struct {
		device string
		seq    uint64
	}{{"boat-4", 1}, {"boat-1", 3}} {
		got := readReading(t, c)
		if got.Device != w.device || got.Seq != w.seq {
			t.Fatalf("stream[%d] = %s/%d, want %s/%d", i, got.Device, got.Seq, w.device, w.seq)
		}
	}

	latest := h.Latest()
	var devices []string
	for _, e := range latest {
		devices = append(devices, fmt.Sprintf("%s/%d", e.Device, e.Seq))
	}
	if got, want := strings.Join(devices, ","), "boat-1/3,boat-2/1,boat-3/1,boat-4/1"; got != want {
		t.Errorf("Latest() = %s, want %s", got, want)
	}
	// The counter moves just after the write returns, so the client may
	// read before it does.
	waitFor(t, "5 messages counted", func() bool {
		return metric(t, reg, "sailstream_web_websocket_messages_sent_total") == 5
	})
	if got := metric(t, reg, "sailstream_web_websocket_clients"); got != 1 {
		t.Errorf("clients gauge = %v, want 1", got)
	}
}

func TestLatestKeepsNewestEventTime(t *testing.T) {
	h, _, _ := newHub(t, websocket.Options{})
	publish(t, h, reading("boat-1", 5))
	publish(t, h, reading("boat-1", 4)) // older event time: streamed, not latest
	if got := h.Latest(); len(got) != 1 || got[0].Seq != 5 {
		t.Fatalf("Latest() = %+v, want boat-1 seq 5", got)
	}
	publish(t, h, reading("boat-1", 6))
	if got := h.Latest(); len(got) != 1 || got[0].Seq != 6 {
		t.Fatalf("Latest() = %+v, want boat-1 seq 6", got)
	}
}

func TestPublishRejectsBadInput(t *testing.T) {
	h, _, _ := newHub(t, websocket.Options{})
	nan := reading("boat-1", 1)
	nan.SpeedMS = math.NaN()
	tests := []struct {
		name    string
		publish func() error
		want    error
	}{
		{"not JSON", func() error { return h.PublishJSON([]byte("{nope")) }, telemetry.ErrMalformed},
		{"JSON array", func() error { return h.PublishJSON([]byte("[1,2]")) }, telemetry.ErrMalformed},
		{"no device", func() error { return h.PublishJSON([]byte(`{"seq":1}`)) }, telemetry.ErrInvalidDevice},
		{"bad device", func() error { return h.PublishJSON([]byte(`{"device":"a/b"}`)) }, telemetry.ErrInvalidDevice},
		{"bad device struct", func() error { return h.Publish(reading("boat#1", 1)) }, telemetry.ErrInvalidDevice},
		{"NaN speed", func() error { return h.Publish(nan) }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.publish()
			if err == nil {
				t.Fatal("no error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
		})
	}
	if got := h.Latest(); len(got) != 0 {
		t.Errorf("bad input reached the latest table: %+v", got)
	}
}

func TestPublishJSONForwardsBytes(t *testing.T) {
	h, _, url := newHub(t, websocket.Options{})
	c := dial(t, url)
	waitFor(t, "client registered", func() bool { return h.Clients() == 1 })
	raw := `{"device":"boat-7","seq":9,"time":"2026-06-01T12:00:00Z","lat":52.4,"lon":21,"future_field":"kept"}`
	if err := h.PublishJSON([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, data, err := c.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != raw {
		t.Errorf("got %s, want the published bytes %s", data, raw)
	}
	if got := h.Latest(); len(got) != 1 || got[0].Device != "boat-7" || got[0].Seq != 9 {
		t.Errorf("Latest() = %+v", got)
	}
}

func TestManyClientsReceiveEverythingInOrder(t *testing.T) {
	const clients, readings = 25, 300
	h, reg, url := newHub(t, websocket.Options{QueueSize: readings})
	conns := make([]*gws.Conn, clients)
	for i := range conns {
		conns[i] = dial(t, url)
	}
	waitFor(t, "clients registered", func() bool { return h.Clients() == clients })

	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := uint64(1); seq <= readings; seq++ {
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, data, err := c.ReadMessage()
				if err != nil {
					errs <- fmt.Errorf("client %d at seq %d: %w", i, seq, err)
					return
				}
				var e telemetry.Enriched
				if err := json.Unmarshal(data, &e); err != nil || e.Seq != seq {
					errs <- fmt.Errorf("client %d: got %s, want seq %d (%v)", i, data, seq, err)
					return
				}
			}
		}()
	}
	for seq := uint64(1); seq <= readings; seq++ {
		publish(t, h, reading(fmt.Sprintf("boat-%d", seq%6), seq))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	waitFor(t, "all messages counted", func() bool {
		return metric(t, reg, "sailstream_web_websocket_messages_sent_total") == clients*readings
	})
	if got := metric(t, reg, "sailstream_web_websocket_slow_consumers_total"); got != 0 {
		t.Errorf("slow consumers = %v, want 0", got)
	}
}

// A client that stops reading is disconnected with a "slow consumer" close
// frame and counted, while a client that keeps up receives every message in
// order and the producer never blocks.
func TestSlowConsumerDisconnectedFastOneGetsAll(t *testing.T) {
	const (
		queue   = 16
		batch   = 8
		batches = 40
		pad     = 48 << 10 // 40*8*48 KiB = 15 MiB: far more than the sockets buffer
	)
	h, reg, url := newHub(t, websocket.Options{QueueSize: queue, CloseGrace: time.Minute})
	slow := dialSmallBuffer(t, url)
	fast := dial(t, url)
	waitFor(t, "clients registered", func() bool { return h.Clients() == 2 })

	received := make(chan uint64, queue)
	readErr := make(chan error, 1)
	go func() {
		defer close(received)
		for {
			_ = fast.SetReadDeadline(time.Now().Add(20 * time.Second))
			_, data, err := fast.ReadMessage()
			if err != nil {
				readErr <- err
				return
			}
			var e telemetry.Enriched
			if err := json.Unmarshal(data, &e); err != nil {
				readErr <- err
				return
			}
			received <- e.Seq
		}
	}()

	padding := strings.Repeat("x", pad)
	next := uint64(1)
	for b := 0; b < batches; b++ {
		start := time.Now()
		for i := 0; i < batch; i++ {
			seq := uint64(b*batch + i + 1)
			msg := fmt.Sprintf(`{"device":"boat-1","seq":%d,"time":"2026-06-01T12:00:00Z","lat":52.4,"lon":21,"pad":"%s"}`, seq, padding)
			if err := h.PublishJSON([]byte(msg)); err != nil {
				t.Fatal(err)
			}
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("publishing one batch took %s: the producer blocked", d)
		}
		for ; next <= uint64((b+1)*batch); next++ {
			select {
			case got, ok := <-received:
				if !ok {
					t.Fatalf("fast client stopped at seq %d: %v", next, <-readErr)
				}
				if got != next {
					t.Fatalf("fast client got seq %d, want %d", got, next)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("fast client did not receive seq %d", next)
			}
		}
	}

	if got := metric(t, reg, "sailstream_web_websocket_slow_consumers_total"); got != 1 {
		t.Fatalf("slow consumers = %v, want 1", got)
	}
	// The slow client now reads what was buffered, then the close frame.
	var closeErr *gws.CloseError
	for n := 0; ; n++ {
		_ = slow.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, _, err := slow.ReadMessage()
		if err == nil {
			continue
		}
		if !errors.As(err, &closeErr) {
			t.Fatalf("slow client ended after %d messages with %v, want a close frame", n, err)
		}
		if n >= batches*batch {
			t.Fatalf("slow client received all %d messages", n)
		}
		break
	}
	if closeErr.Code != websocket.CloseSlowConsumer || closeErr.Text != websocket.ReasonSlowConsumer {
		t.Errorf("close frame %d %q, want %d %q", closeErr.Code, closeErr.Text, websocket.CloseSlowConsumer, websocket.ReasonSlowConsumer)
	}
	waitFor(t, "slow client removed", func() bool {
		return metric(t, reg, "sailstream_web_websocket_clients") == 1
	})
	if h.Clients() != 1 {
		t.Errorf("Clients() = %d, want 1", h.Clients())
	}
}

// A client that never reads at all (so never sees the close frame) is still
// dropped, promptly after CloseGrace.
func TestNeverReadingClientIsDropped(t *testing.T) {
	h, reg, url := newHub(t, websocket.Options{QueueSize: 4, CloseGrace: 100 * time.Millisecond})
	dialSmallBuffer(t, url)
	waitFor(t, "client registered", func() bool { return h.Clients() == 1 })
	padding := strings.Repeat("x", 64<<10)
	for seq := 1; metric(t, reg, "sailstream_web_websocket_slow_consumers_total") == 0; seq++ {
		if seq > 1000 {
			t.Fatal("client never detected as slow")
		}
		msg := fmt.Sprintf(`{"device":"boat-1","seq":%d,"pad":"%s"}`, seq, padding)
		if err := h.PublishJSON([]byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "client gauge back to 0", func() bool {
		return metric(t, reg, "sailstream_web_websocket_clients") == 0
	})
}

func TestPingKeepsReadersAndDropsSilentClients(t *testing.T) {
	h, reg, url := newHub(t, websocket.Options{PingInterval: 30 * time.Millisecond, PongTimeout: 200 * time.Millisecond})
	alive := dial(t, url)
	silent := dial(t, url) // never reads, so never answers a ping
	_ = silent
	go func() {
		for {
			if _, _, err := alive.ReadMessage(); err != nil { // answers pings
				return
			}
		}
	}()
	waitFor(t, "both registered", func() bool { return h.Clients() == 2 })
	waitFor(t, "silent client dropped", func() bool { return h.Clients() == 1 })
	time.Sleep(400 * time.Millisecond) // two pong timeouts
	if h.Clients() != 1 {
		t.Fatalf("Clients() = %d: the client answering pings was dropped", h.Clients())
	}
	if got := metric(t, reg, "sailstream_web_websocket_slow_consumers_total"); got != 0 {
		t.Errorf("a silent client counted as slow consumer: %v", got)
	}
}

func TestCloseOnShutdown(t *testing.T) {
	h, reg, url := newHub(t, websocket.Options{})
	c := dial(t, url)
	waitFor(t, "client registered", func() bool { return h.Clients() == 1 })

	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- h.Run(ctx) }()
	cancel()
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}

	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := c.ReadMessage()
	var ce *gws.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseShutdown || ce.Text != websocket.ReasonShutdown {
		t.Fatalf("read after shutdown: %v, want close %d %q", err, websocket.CloseShutdown, websocket.ReasonShutdown)
	}
	if err := h.Publish(reading("boat-1", 1)); !errors.Is(err, websocket.ErrClosed) {
		t.Errorf("Publish after Close: %v, want ErrClosed", err)
	}
	_, resp, err := gws.DefaultDialer.Dial(url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("dial after Close: %v (response %v), want 503", err, resp)
	}
	if got := metric(t, reg, "sailstream_web_websocket_clients"); got != 0 {
		t.Errorf("clients gauge = %v after Close", got)
	}
	if err := h.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts websocket.Options
		ok   bool
	}{
		{"zero", websocket.Options{}, true},
		{"negative queue", websocket.Options{QueueSize: -1}, false},
		{"negative timeout", websocket.Options{WriteTimeout: -time.Second}, false},
		{"pong not after ping", websocket.Options{PingInterval: time.Second, PongTimeout: time.Second}, false},
		{"pong default below ping", websocket.Options{PingInterval: 2 * time.Minute}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if _, err := websocket.NewHub(tt.opts); (err == nil) != tt.ok {
				t.Errorf("NewHub() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestDuplicateRegistrationFails(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := websocket.NewHub(websocket.Options{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := websocket.NewHub(websocket.Options{Registerer: reg}); err == nil {
		t.Fatal("second hub on the same registerer: no error")
	}
}

// BenchmarkPublish100Clients measures fan-out to 100 connected clients that
// read as fast as they can: ns/op is per reading delivered to all 100.
func BenchmarkPublish100Clients(b *testing.B) {
	const clients, chunk = 100, 256
	h, _, url := newHub(b, websocket.Options{QueueSize: 2 * chunk})
	var received atomic.Int64
	for range clients {
		c := dial(b, url)
		go func() {
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
				received.Add(1)
			}
		}()
	}
	waitFor(b, "clients registered", func() bool { return h.Clients() == clients })
	e := reading("boat-1", 1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.Seq = uint64(i)
		if err := h.Publish(e); err != nil {
			b.Fatal(err)
		}
		if (i+1)%chunk == 0 || i == b.N-1 {
			want := int64(i+1) * clients
			for received.Load() < want {
				if h.Clients() != clients {
					b.Fatal("a client was dropped")
				}
				time.Sleep(50 * time.Microsecond)
			}
		}
	}
}
