package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	gws "github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/bridge"
	"github.com/sailstream/sailstream/core"
	"github.com/sailstream/sailstream/edge"
	"github.com/sailstream/sailstream/internal/testenv"
	"github.com/sailstream/sailstream/telemetry"
	"github.com/sailstream/sailstream/web"
)

type key struct {
	device string
	seq    uint64
}

// TestIntegrationPipeline publishes a fixed-seed fleet run and a set of
// malformed payloads through the real Mosquitto, the bridge, the real Kafka
// and the core, and checks every output topic and a WebSocket client.
func TestIntegrationPipeline(t *testing.T) {
	t.Parallel()
	brokers := testenv.KafkaBrokers(t)
	mqttURL := testenv.MQTTURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	id := testenv.Unique("e2e")
	topics := core.Topics{Raw: id + ".raw", Enriched: id + ".enriched", Late: id + ".late", DLQ: id + ".dlq", Shadow: id + ".shadow", Registry: id + ".udf", State: id + ".state"}
	prefix := "sailstream-test/" + id + "/devices"

	log := testLogger(t)
	// A send queue far above the hub's default: this test checks that the
	// client gets every reading, and on a loaded machine a transaction's
	// burst could otherwise disconnect it as a slow consumer (the hub's
	// own tests cover that rule).
	webSrv, err := web.New(web.Config{Addr: "127.0.0.1:0", KafkaBrokers: brokers, EnrichedTopic: topics.Enriched,
		WebSocketQueue: 1 << 14, Logger: log.With("component", "web")})
	must(t, err)
	proc, err := core.New(core.Config{KafkaBrokers: brokers, Group: id + "-core", Topics: topics, Partitions: 3, MaxOutOfOrder: new(2 * time.Second), Logger: log.With("component", "core")})
	must(t, err)
	br, err := bridge.New(bridge.Config{
		MQTTURL: mqttURL, ClientID: id + "-bridge", TopicPrefix: prefix, KafkaBrokers: brokers,
		RawTopic: topics.Raw, DLQTopic: topics.DLQ, BridgeID: "e2e", Partitions: 3, Logger: log.With("component", "bridge"),
	})
	must(t, err)

	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for name, run := range map[string]func(context.Context) error{"web": webSrv.Run, "core": proc.Run, "bridge": br.Run} {
		wg.Go(func() {
			if err := run(runCtx); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		})
	}
	defer func() { stop(); wg.Wait() }()
	for _, ready := range []<-chan struct{}{webSrv.Ready(), proc.Ready(), br.Ready()} {
		select {
		case <-ready:
		case <-ctx.Done():
			t.Fatal("components did not become ready")
		}
	}

	// A WebSocket client, connected before anything is published.
	ws := dialWS(t, webSrv.Addr())
	var wsMu sync.Mutex
	wsSeen := map[key]int{}
	var wsErr error // why the connection ended, for the failure message
	go func() {
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				wsMu.Lock()
				wsErr = err
				wsMu.Unlock()
				return
			}
			var e telemetry.Enriched
			if err := json.Unmarshal(msg, &e); err != nil {
				t.Errorf("websocket message is not an enriched reading: %v: %s", err, msg)
				return
			}
			wsMu.Lock()
			if !strings.HasPrefix(e.Device, hbPrefix) {
				wsSeen[key{e.Device, e.Seq}]++
			}
			wsMu.Unlock()
		}
	}()

	// The fleet run: fixed seed, fast, 5% late.
	const n = 1500
	plan, fleet := newFleet(t, mqttURL, id, prefix, 20261127, n, log)

	// Malformed payloads, each with the reason the pipeline must give.
	now := time.Now().UTC().Format(time.RFC3339Nano)
	bad := []struct {
		topic   string
		payload []byte
		reason  string
		stage   string
	}{
		{prefix + "/bad-json/telemetry", []byte(`{"seq":1,"time":`), telemetry.ReasonMalformed, "core"},
		{prefix + "/nan-lat/telemetry", []byte(`{"seq":1,"time":"` + now + `","lat":"NaN","lon":21.0}`), telemetry.ReasonInvalidPosition, "core"},
		{prefix + "/huge/telemetry", []byte(`{"seq":1,"pad":"` + strings.Repeat("x", 1<<20) + `"}`), telemetry.ReasonPayloadTooLarge, "bridge"},
		{prefix + "/spoof/telemetry", []byte(`{"device":"boat+1#/x","seq":1,"time":"` + now + `","lat":52.47,"lon":21.02}`), telemetry.ReasonInvalidDevice, "core"},
		{prefix + "/boat-1/extra/telemetry", []byte(`{"seq":1,"time":"` + now + `","lat":52.47,"lon":21.02}`), telemetry.ReasonBadTopic, "bridge"},
	}
	pub := connectMQTT(t, mqttURL, id+"-bad")
	for _, b := range bad {
		tok := pub.Publish(b.topic, 1, false, b.payload)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publishing to %s: %v", b.topic, tok.Error())
		}
	}
	pub.Disconnect(100)

	nHB := runWithHeartbeats(t, ctx, fleet, mqttURL, id, prefix)

	// What the plan says must come out.
	onTime := map[key]edge.Emission{}
	late := map[key]bool{}
	for _, e := range plan {
		k := key{e.Reading.Device, e.Reading.Seq}
		if e.Late {
			late[k] = true
		} else {
			onTime[k] = e
		}
	}
	if len(late) == 0 || len(onTime) == 0 {
		t.Fatalf("plan has %d on-time and %d late readings; the test needs both", len(onTime), len(late))
	}

	enriched := consumeN(t, ctx, brokers, topics.Enriched, len(onTime)+nHB)
	lateRecs := consumeN(t, ctx, brokers, topics.Late, len(late))
	dlq := consumeN(t, ctx, brokers, topics.DLQ, len(bad))

	// Every on-time reading once, with the motion computed from the device's
	// previous on-time reading.
	expected := expectedMotion(plan)
	seen := map[key]int{}
	for _, r := range enriched {
		var e telemetry.Enriched
		must(t, json.Unmarshal(r.Value, &e))
		if strings.HasPrefix(e.Device, hbPrefix) {
			continue
		}
		k := key{e.Device, e.Seq}
		seen[k]++
		if string(r.Key) != e.Device {
			t.Errorf("enriched %v has key %q", k, r.Key)
		}
		want, ok := expected[k]
		if !ok {
			t.Errorf("enriched has %v, which is not an on-time reading of the plan", k)
			continue
		}
		if !near(e.SpeedMS, want.SpeedMS) || !near(e.DistanceM, want.DistanceM) || !near(e.CourseDeg, want.CourseDeg) || !near(e.SpeedKn, want.SpeedKn) {
			t.Errorf("%v: speed %.6f m/s (%.6f kn) dist %.4f course %.3f, want %.6f (%.6f) %.4f %.3f",
				k, e.SpeedMS, e.SpeedKn, e.DistanceM, e.CourseDeg, want.SpeedMS, want.SpeedKn, want.DistanceM, want.CourseDeg)
		}
		if e.UDF == "" || e.LatencyMS < 0 || e.ReceivedAt.IsZero() {
			t.Errorf("%v: udf %q latency %v received_at %v", k, e.UDF, e.LatencyMS, e.ReceivedAt)
		}
	}
	for k := range onTime {
		if seen[k] != 1 {
			t.Errorf("on-time reading %v appears %d times in %s, want once", k, seen[k], topics.Enriched)
		}
	}
	// The simulator's true speed agrees where the previous reading was on time.
	checkedTrue := 0
	prevOnTime := map[string]bool{}
	for _, e := range byEventTime(plan) {
		k := key{e.Reading.Device, e.Reading.Seq}
		if !e.Late && prevOnTime[e.Reading.Device] && e.Reading.Seq > 1 {
			if sim, ok := e.Reading.Fields[edge.FieldSimSpeed]; ok {
				if got := expected[k].SpeedMS; math.Abs(got-sim) > 1e-3 {
					t.Errorf("%v: computed speed %.6f, simulator's true speed %.6f", k, got, sim)
				}
				checkedTrue++
			}
		}
		prevOnTime[e.Reading.Device] = !e.Late
	}
	if checkedTrue < len(onTime)/2 {
		t.Errorf("compared only %d speeds with the simulator's truth", checkedTrue)
	}

	// The late ones are all in telemetry.late, with a reason.
	lateSeen := map[key]int{}
	for _, r := range lateRecs {
		rd, err := telemetry.Decode(string(r.Key), r.Value, time.Now())
		must(t, err)
		lateSeen[key{rd.Device, rd.Seq}]++
		if reason := header(r, telemetry.HeaderReason); reason != telemetry.ReasonBehindWatermark && reason != telemetry.ReasonOutOfOrder {
			t.Errorf("late record %s/%d has reason %q", rd.Device, rd.Seq, reason)
		}
	}
	for k := range late {
		if lateSeen[k] != 1 {
			t.Errorf("late reading %v appears %d times in %s, want once", k, lateSeen[k], topics.Late)
		}
	}
	if len(lateRecs) != len(late) {
		t.Errorf("%d records in %s, want %d", len(lateRecs), topics.Late, len(late))
	}

	// Every malformed payload is in the DLQ with its reason.
	byTopic := map[string]*kgo.Record{}
	for _, r := range dlq {
		byTopic[header(r, telemetry.HeaderMQTTTopic)] = r
	}
	for _, b := range bad {
		r, ok := byTopic[b.topic]
		if !ok {
			t.Errorf("payload published to %s is not in the DLQ", b.topic)
			continue
		}
		if got := header(r, telemetry.HeaderReason); got != b.reason {
			t.Errorf("DLQ record of %s: reason %q (error %q), want %q", b.topic, got, header(r, telemetry.HeaderError), b.reason)
		}
		if got := header(r, telemetry.HeaderStage); got != b.stage {
			t.Errorf("DLQ record of %s: stage %q, want %q", b.topic, got, b.stage)
		}
		if header(r, telemetry.HeaderError) == "" {
			t.Errorf("DLQ record of %s has no error text", b.topic)
		}
		if b.reason == telemetry.ReasonPayloadTooLarge && header(r, telemetry.HeaderOriginalSize) != fmt.Sprint(len(b.payload)) {
			t.Errorf("oversize DLQ record: original_size %q, want %d", header(r, telemetry.HeaderOriginalSize), len(b.payload))
		}
	}

	// The WebSocket client saw every enriched reading.
	deadline := time.Now().Add(30 * time.Second)
	for {
		wsMu.Lock()
		got := len(wsSeen)
		wsMu.Unlock()
		if got >= len(onTime) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	wsMu.Lock()
	defer wsMu.Unlock()
	for k := range onTime {
		if wsSeen[k] != 1 {
			t.Errorf("websocket client got %v %d times, want once (connection error: %v)", k, wsSeen[k], wsErr)
			break
		}
	}
}

// expectedMotion runs core.Motion over the plan's on-time readings of each
// device in event-time order, as the core must.
func expectedMotion(plan []edge.Emission) map[key]core.Movement {
	out := map[key]core.Movement{}
	prev := map[string]*telemetry.Reading{}
	for _, e := range byEventTime(plan) {
		if e.Late {
			continue
		}
		r := e.Reading
		out[key{r.Device, r.Seq}] = core.Motion(prev[r.Device], r)
		prev[r.Device] = &r
	}
	return out
}

func byEventTime(plan []edge.Emission) []edge.Emission {
	s := append([]edge.Emission(nil), plan...)
	// The plan is sorted by publish time; event time order per device is seq order.
	slices.SortStableFunc(s, func(a, b edge.Emission) int {
		if c := a.Reading.Time.Compare(b.Reading.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Reading.Device, b.Reading.Device)
	})
	return s
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func header(r *kgo.Record, k string) string {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

// consumeN reads topic from the start until it has at least n records, then
// a little longer to catch any extra (duplicates must fail the test).
func consumeN(t *testing.T, ctx context.Context, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	must(t, err)
	defer cl.Close()
	var recs []*kgo.Record
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	var extra time.Time
	for {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		pcancel()
		fs.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
		if len(recs) >= n && extra.IsZero() {
			extra = time.Now().Add(2 * time.Second)
		}
		if !extra.IsZero() && time.Now().After(extra) {
			return recs
		}
		if ctx.Err() != nil {
			t.Errorf("%s: got %d records, want %d", topic, len(recs), n)
			return recs
		}
	}
}

func dialWS(t *testing.T, addr string) *gws.Conn {
	t.Helper()
	u := url.URL{Scheme: "ws", Host: addr, Path: "/ws"}
	c, _, err := gws.DefaultDialer.Dial(u.String(), nil)
	must(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func connectMQTT(t *testing.T, u, clientID string) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(u).SetClientID(clientID))
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connecting to %s: %v", u, tok.Error())
	}
	return c
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// testLogger collects the components' logs and prints them only when the
// test fails.
func testLogger(t *testing.T) *slog.Logger {
	var mu sync.Mutex
	var buf bytes.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			mu.Lock()
			defer mu.Unlock()
			t.Logf("component logs:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// newFleet returns the plan of a fixed-seed fleet run of n readings at 300
// readings/s, 5% of them late, publishing under prefix, and the fleet that
// publishes it.
func newFleet(t *testing.T, mqttURL, id, prefix string, seed int64, n int, log *slog.Logger) ([]edge.Emission, *edge.Fleet) {
	t.Helper()
	fcfg := edge.DefaultConfig()
	fcfg.MQTTURL, fcfg.ClientID, fcfg.TopicPrefix = mqttURL, id+"-edge", prefix
	fcfg.Seed, fcfg.Rate, fcfg.Count = seed, 300, n
	// Held back 3–5 s: clearly beyond the core's 2 s reorder bound (one
	// held barely 2 s could be reordered into place and enriched).
	fcfg.LateMin = 3 * time.Second
	fcfg.Logger = log.With("component", "edge")
	plan, err := edge.Plan(fcfg, time.Unix(0, 0), n)
	must(t, err)
	fleet, err := edge.New(fcfg)
	must(t, err)
	return plan, fleet
}

// runWithHeartbeats runs the fleet to its end with heartbeats beside it and
// returns how many heartbeats were published. Heartbeat devices keep every
// partition's watermark moving with the clock while the fleet runs: the
// run's on-time readings end before its last held ones are published, and
// without newer readings the watermark would stall and a held reading
// within 2 s of the run's end would rightly be reordered into place rather
// than be late. They also keep any partition from falling idle mid-run.
func runWithHeartbeats(t *testing.T, ctx context.Context, fleet *edge.Fleet, mqttURL, id, prefix string) int {
	t.Helper()
	hbStop := make(chan struct{})
	hbDone := make(chan int)
	go func() { hbDone <- heartbeats(t, mqttURL, id+"-hb", prefix, hbStop) }()
	must(t, fleet.Run(ctx))
	close(hbStop)
	return <-hbDone
}

// hbPrefix names the heartbeat devices.
const hbPrefix = "hb-"

// heartbeats publishes a reading stamped with the current time for each of
// 12 heartbeat devices (enough to land on every partition) every 100 ms
// until stop is closed, and returns how many it published.
func heartbeats(t *testing.T, mqttURL, clientID, prefix string, stop <-chan struct{}) int {
	c := connectMQTT(t, mqttURL, clientID)
	defer c.Disconnect(100)
	n := 0
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for seq := uint64(1); ; seq++ {
		select {
		case <-stop:
			return n
		case <-tick.C:
		}
		for d := 1; d <= 12; d++ {
			dev := fmt.Sprintf("%s%d", hbPrefix, d)
			b, err := telemetry.Encode(telemetry.Reading{Device: dev, Seq: seq, Time: time.Now().UTC(), Lat: 52.47, Lon: 21.02 + float64(d)*0.001})
			if err != nil {
				t.Error(err)
				return n
			}
			tok := c.Publish(prefix+"/"+dev+"/telemetry", 1, false, b)
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Errorf("heartbeat %s/%d: %v", dev, seq, tok.Error())
				return n
			}
			n++
		}
	}
}
