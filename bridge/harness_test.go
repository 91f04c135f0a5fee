package bridge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/internal/testenv"
	"github.com/sailstream/sailstream/telemetry"
)

// The same scenarios run against an in-process mochi-mqtt broker and kfake
// (fast, always) and against the test bed's real Mosquitto and Kafka
// (TestIntegration*).

// startMochi starts an in-process MQTT broker on a free 127.0.0.1 port.
func startMochi(t *testing.T) string {
	t.Helper()
	_, url := startMochiServer(t)
	return url
}

func startMochiServer(t *testing.T) (*mochi.Server, string) {
	t.Helper()
	srv := mochi.New(&mochi.Options{
		Logger: slog.New(slog.DiscardHandler),
	})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0"})
	if err := srv.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv, "tcp://" + l.Address()
}

func startKfake(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// testLogger logs to the test output when -v is given with BRIDGE_TEST_LOG=1.
func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("BRIDGE_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// names are the unique MQTT and Kafka names one test uses.
type names struct {
	prefix, raw, dlq, clientID string
}

func uniqueNames() names {
	id := testenv.Unique("")
	return names{
		prefix:   "sailstream-test-" + id + "/devices",
		raw:      "telemetry.raw.test-" + id,
		dlq:      "telemetry.dlq.test-" + id,
		clientID: "bridge-test-" + id,
	}
}

type running struct {
	b      *Bridge
	reg    *prometheus.Registry
	exited chan struct{} // closed when Run returned
	stop   func() error  // cancels Run and returns its error
}

func startBridge(t *testing.T, mqttURL string, brokers []string, n names, mod func(*Config)) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := Config{
		MQTTURL:      mqttURL,
		ClientID:     n.clientID,
		TopicPrefix:  n.prefix,
		KafkaBrokers: brokers,
		RawTopic:     n.raw,
		DLQTopic:     n.dlq,
		BridgeID:     "test-bridge",
		Partitions:   3,
		Logger:       testLogger(t),
		Registerer:   reg,
	}
	if mod != nil {
		mod(&cfg)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan struct{})
	var runErr error
	go func() {
		defer close(exited)
		runErr = b.Run(ctx)
	}()
	stop := func() error {
		cancel()
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return within 30s of cancel")
		}
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	select {
	case <-b.Ready():
	case <-exited:
		t.Fatalf("Run returned before Ready: %v", runErr)
	case <-time.After(30 * time.Second):
		t.Fatal("bridge not Ready within 30s")
	}
	return &running{b: b, reg: reg, exited: exited, stop: stop}
}

func publisher(t *testing.T, mqttURL string) mqtt.Client {
	t.Helper()
	opts := mqtt.NewClientOptions().AddBroker(mqttURL).SetClientID(testenv.Unique("pub-")).SetAutoReconnect(false)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

type message struct {
	topic   string
	payload []byte
}

// publishAll publishes with QoS 1 in order, waiting for each PUBACK.
func publishAll(t *testing.T, c mqtt.Client, msgs []message) {
	t.Helper()
	for _, m := range msgs {
		tok := c.Publish(m.topic, 1, false, m.payload)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish to %q: %v", m.topic, tok.Error())
		}
	}
}

// readTopic consumes topic from the start until it holds want records, then
// keeps reading for settle to catch any extra (duplicate) record.
func readTopic(t *testing.T, brokers []string, topic string, want int, settle time.Duration) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	deadline := time.Now().Add(30 * time.Second)
	var settleUntil time.Time
	for {
		now := time.Now()
		if len(recs) >= want && settleUntil.IsZero() {
			settleUntil = now.Add(settle)
		}
		if !settleUntil.IsZero() && now.After(settleUntil) {
			return recs
		}
		if now.After(deadline) {
			t.Fatalf("topic %s: %d records after 30s, want %d", topic, len(recs), want)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		for _, e := range fs.Errors() {
			if e.Err != context.DeadlineExceeded {
				t.Logf("fetch %s[%d]: %v", e.Topic, e.Partition, e.Err)
			}
		}
		recs = append(recs, fs.Records()...)
	}
}

func header(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// eventually polls cond until it holds or 20 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func goodPayload(device string, seq int) []byte {
	return fmt.Appendf(nil, `{"device":%q,"seq":%d,"time":"2026-11-27T10:00:%02d.125Z","lat":52.46,"lon":21.02}`, device, seq, seq%60)
}

type wantDLQ struct {
	key       string // "" = no key
	reason    string
	truncated bool
}

// testForwarding publishes good and malformed messages and checks that each
// good one is in the raw topic exactly once, byte-exact, in order per device,
// with its headers; that each bad one is in the DLQ with its reason; that the
// metrics agree; and that a restarted bridge gets nothing redelivered (the
// PUBACKs really went out).
func testForwarding(t *testing.T, mqttURL string, brokers []string) {
	n := uniqueNames()
	r := startBridge(t, mqttURL, brokers, n, nil)
	pub := publisher(t, mqttURL)

	const perDevice = 10
	devices := []string{"boat-0", "boat-1", "boat-2", "boat-3", "boat-4", "boat-5"}
	var good []message
	for seq := range perDevice {
		for _, d := range devices {
			good = append(good, message{n.prefix + "/" + d + "/telemetry", goodPayload(d, seq)})
		}
	}
	// Odd bytes the bridge must carry unchanged (the core rejects them).
	good = append(good,
		message{n.prefix + "/odd-1/telemetry", []byte(" {\"seq\" : 1 }\r\n\t")},
		message{n.prefix + "/odd-2/telemetry", []byte("not json \x00\xff\xfe")},
		message{n.prefix + "/odd-3/telemetry", bytes.Repeat([]byte("a"), telemetry.MaxPayloadSize)},
	)
	oneMiB := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	badOversize := bytes.Repeat([]byte("b"), 100<<10)
	bad := map[string]struct {
		payload []byte
		want    wantDLQ
	}{
		n.prefix:                         {[]byte(`{"seq":1}`), wantDLQ{"", telemetry.ReasonBadTopic, false}},
		n.prefix + "//telemetry":         {[]byte(`{"seq":2}`), wantDLQ{"", telemetry.ReasonBadTopic, false}},
		n.prefix + "/bad boat/telemetry": {[]byte(`{"seq":3}`), wantDLQ{"bad boat", telemetry.ReasonBadTopic, false}},
		n.prefix + "/boat-1/status":      {[]byte(`{"seq":4}`), wantDLQ{"boat-1", telemetry.ReasonBadTopic, false}},
		n.prefix + "/a/b/telemetry":      {[]byte(`{"seq":5}`), wantDLQ{"a", telemetry.ReasonBadTopic, false}},
		n.prefix + "/" + strings.Repeat("x", 65) + "/telemetry": {[]byte(`{"seq":6}`), wantDLQ{strings.Repeat("x", 65), telemetry.ReasonBadTopic, false}},
		n.prefix + "/boat-big/telemetry":                        {oneMiB, wantDLQ{"boat-big", telemetry.ReasonPayloadTooLarge, true}},
		n.prefix + "/bad$dev/telemetry":                         {badOversize, wantDLQ{"bad$dev", telemetry.ReasonBadTopic, true}},
	}
	var all []message
	all = append(all, good[:len(good)/2]...)
	for topic, b := range bad {
		all = append(all, message{topic, b.payload})
	}
	all = append(all, good[len(good)/2:]...)
	start := time.Now()
	publishAll(t, pub, all)

	raw := readTopic(t, brokers, n.raw, len(good), time.Second)
	if len(raw) != len(good) {
		t.Fatalf("raw topic has %d records, want exactly %d", len(raw), len(good))
	}
	want := make(map[string][]byte) // payload -> topic
	for _, m := range good {
		want[string(m.payload)] = []byte(m.topic)
	}
	seen := make(map[string]bool)
	lastSeq := make(map[string]int)
	for _, rec := range raw {
		topic, ok := want[string(rec.Value)]
		if !ok {
			t.Errorf("raw record %q (%d bytes) is not byte-exact any published payload", trim(rec.Value), len(rec.Value))
			continue
		}
		if seen[string(rec.Value)] {
			t.Errorf("payload %q produced twice", trim(rec.Value))
		}
		seen[string(rec.Value)] = true
		device := strings.TrimSuffix(strings.TrimPrefix(string(topic), n.prefix+"/"), "/telemetry")
		if string(rec.Key) != device {
			t.Errorf("key %q, want %q", rec.Key, device)
		}
		checkCommonHeaders(t, rec, string(topic), start)
		if f, _ := header(rec, telemetry.HeaderFormat); f != telemetry.FormatJSON {
			t.Errorf("format header %q", f)
		}
		if strings.HasPrefix(device, "boat-") {
			var seq int
			if _, err := fmt.Sscanf(string(rec.Value[bytes.Index(rec.Value, []byte(`"seq":`)):]), `"seq":%d`, &seq); err != nil {
				t.Fatal(err)
			}
			if last, ok := lastSeq[device]; ok && seq != last+1 {
				t.Errorf("%s: seq %d after %d: order per device not kept", device, seq, last)
			}
			lastSeq[device] = seq
		}
	}

	dlq := readTopic(t, brokers, n.dlq, len(bad), time.Second)
	if len(dlq) != len(bad) {
		t.Fatalf("DLQ has %d records, want exactly %d", len(dlq), len(bad))
	}
	for _, rec := range dlq {
		topic, _ := header(rec, telemetry.HeaderMQTTTopic)
		b, ok := bad[topic]
		if !ok {
			t.Errorf("unexpected DLQ record for topic %q", topic)
			continue
		}
		delete(bad, topic)
		checkCommonHeaders(t, rec, topic, start)
		if string(rec.Key) != b.want.key {
			t.Errorf("%q: key %q, want %q", topic, rec.Key, b.want.key)
		}
		for k, v := range map[string]string{telemetry.HeaderReason: b.want.reason, telemetry.HeaderStage: "bridge"} {
			if got, _ := header(rec, k); got != v {
				t.Errorf("%q: header %s = %q, want %q", topic, k, got, v)
			}
		}
		if e, _ := header(rec, telemetry.HeaderError); e == "" {
			t.Errorf("%q: no error header", topic)
		}
		if !b.want.truncated {
			if !bytes.Equal(rec.Value, b.payload) {
				t.Errorf("%q: DLQ value is not the payload", topic)
			}
			continue
		}
		if !bytes.Equal(rec.Value, b.payload[:telemetry.MaxPayloadSize]) {
			t.Errorf("%q: DLQ value is %d bytes, want the payload's first %d", topic, len(rec.Value), telemetry.MaxPayloadSize)
		}
		sum := sha256.Sum256(b.payload)
		if got, _ := header(rec, telemetry.HeaderSHA256); got != hex.EncodeToString(sum[:]) {
			t.Errorf("%q: sha256 %q", topic, got)
		}
		if got, _ := header(rec, telemetry.HeaderOriginalSize); got != strconv.Itoa(len(b.payload)) {
			t.Errorf("%q: original_size %q, want %d", topic, got, len(b.payload))
		}
	}
	for topic := range bad {
		t.Errorf("no DLQ record for %q", topic)
	}

	m := r.b.metrics
	eventually(t, "metrics to settle", func() bool { return testutil.ToFloat64(m.inflight) == 0 })
	for name, tc := range map[string]struct {
		c    prometheus.Collector
		want float64
	}{
		"received":              {m.received, float64(len(all))},
		"produced":              {m.produced, float64(len(good))},
		"dlq bad_topic":         {m.dlq.WithLabelValues(telemetry.ReasonBadTopic), float64(len(all) - len(good) - 1)},
		"dlq payload_too_large": {m.dlq.WithLabelValues(telemetry.ReasonPayloadTooLarge), 1},
		"produce errors":        {m.produceErrors, 0},
	} {
		if got := testutil.ToFloat64(tc.c); got != tc.want {
			t.Errorf("metric %s = %v, want %v", name, got, tc.want)
		}
	}
	if got := testutil.CollectAndCount(m.ackLatency); got != 1 {
		t.Errorf("ack latency histogram has %d series", got)
	}
	names, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range names {
		got = append(got, mf.GetName())
	}
	for _, want := range []string{
		"sailstream_bridge_messages_received_total", "sailstream_bridge_records_produced_total",
		"sailstream_bridge_dlq_total", "sailstream_bridge_produce_errors_total",
		"sailstream_bridge_inflight_messages", "sailstream_bridge_ack_latency_seconds",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("metric %s not registered (have %v)", want, got)
		}
	}

	// Everything was acknowledged: a bridge with the same session gets
	// nothing back from the broker.
	if err := r.stop(); err != nil {
		t.Fatalf("Run returned %v on cancel, want nil", err)
	}
	r2 := startBridge(t, mqttURL, brokers, n, nil)
	time.Sleep(time.Second)
	if got := testutil.ToFloat64(r2.b.metrics.received); got != 0 {
		t.Errorf("restarted bridge received %v messages: the first one did not acknowledge them", got)
	}
	// And the session still has the subscription and takes new messages.
	publishAll(t, pub, []message{{n.prefix + "/boat-0/telemetry", goodPayload("boat-0", 999)}})
	if recs := readTopic(t, brokers, n.raw, len(good)+1, 500*time.Millisecond); len(recs) != len(good)+1 {
		t.Errorf("after restart the raw topic has %d records, want %d", len(recs), len(good)+1)
	}
}

func checkCommonHeaders(t *testing.T, rec *kgo.Record, topic string, start time.Time) {
	t.Helper()
	if got, _ := header(rec, telemetry.HeaderMQTTTopic); got != topic {
		t.Errorf("mqtt_topic header %q, want %q", got, topic)
	}
	if got, _ := header(rec, telemetry.HeaderBridgeID); got != "test-bridge" {
		t.Errorf("bridge_id header %q", got)
	}
	s, _ := header(rec, telemetry.HeaderReceivedAt)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || !strings.HasSuffix(s, "Z") || at.Before(start.Add(-time.Second)) || at.After(time.Now()) {
		t.Errorf("received_at header %q (err %v) is not a UTC time during the test", s, err)
	}
}

func trim(b []byte) []byte {
	if len(b) > 60 {
		return b[:60]
	}
	return b
}

// testRedelivery: the bridge receives messages while Kafka is down, is
// stopped before Kafka took them, and a new bridge process with the same
// client id gets them again from the broker's persistent session and
// produces each exactly once.
//
// Kafka "goes down" by closing a kfake cluster under the first bridge: the
// part under test is the MQTT side (no PUBACK before Kafka's ack, and the
// broker's session), and the test bed's real Kafka cannot be stopped. The
// second bridge produces to finalBrokers (kfake or the real Kafka).
//
// keepsOrder says whether the broker redelivers in the original order, as
// MQTT 3.1.1 section 4.6 asks. Mosquitto does; mochi-mqtt v2.7.9 sorts the
// redelivered messages by their creation second only, so those from one
// second come back in any order.
func testRedelivery(t *testing.T, mqttURL string, finalBrokers []string, keepsOrder bool) {
	n := uniqueNames()
	dying := startKfake(t)
	a := startBridge(t, mqttURL, dying.ListenAddrs(), n, func(c *Config) { c.ShutdownTimeout = 500 * time.Millisecond })
	dying.Close()

	pub := publisher(t, mqttURL)
	msgs := []message{
		{n.prefix + "/boat-0/telemetry", goodPayload("boat-0", 1)},
		{n.prefix + "/boat-1/telemetry", goodPayload("boat-1", 1)},
		{n.prefix + "/bad boat/telemetry", []byte(`{"seq":1}`)},
		{n.prefix + "/boat-0/telemetry", goodPayload("boat-0", 2)},
	}
	publishAll(t, pub, msgs)
	eventually(t, "the first bridge to receive every message", func() bool {
		return testutil.ToFloat64(a.b.metrics.received) == float64(len(msgs))
	})
	if got := testutil.ToFloat64(a.b.metrics.inflight); got != float64(len(msgs)) {
		t.Errorf("inflight = %v while Kafka is down, want %d", got, len(msgs))
	}
	if err := a.stop(); err != nil {
		t.Fatalf("Run returned %v on cancel, want nil", err)
	}
	if got := testutil.ToFloat64(a.b.metrics.produced); got != 0 {
		t.Fatalf("produced = %v with Kafka down", got)
	}
	if got := testutil.ToFloat64(a.b.metrics.produceErrors); got != float64(len(msgs)) {
		t.Errorf("produce errors = %v, want %d (failed on shutdown)", got, len(msgs))
	}

	b := startBridge(t, mqttURL, finalBrokers, n, nil)
	raw := readTopic(t, finalBrokers, n.raw, 3, time.Second)
	var got [][]byte
	for _, r := range raw {
		got = append(got, r.Value)
	}
	// boat-0's two readings share a partition and keep their order.
	var boat0 [][]byte
	for _, r := range raw {
		if string(r.Key) == "boat-0" {
			boat0 = append(boat0, r.Value)
		}
	}
	wantRaw := [][]byte{msgs[0].payload, msgs[1].payload, msgs[3].payload}
	if len(raw) != 3 || !sameSet(got, wantRaw) {
		t.Errorf("raw after restart = %q, want the 3 good messages once each", got)
	}
	if keepsOrder && (len(boat0) != 2 || !bytes.Equal(boat0[0], msgs[0].payload) || !bytes.Equal(boat0[1], msgs[3].payload)) {
		t.Errorf("boat-0 after restart = %q, want its two readings in order", boat0)
	}
	dlq := readTopic(t, finalBrokers, n.dlq, 1, 500*time.Millisecond)
	if len(dlq) != 1 || !bytes.Equal(dlq[0].Value, msgs[2].payload) {
		t.Errorf("DLQ after restart has %d records, want the bad-topic message once", len(dlq))
	}
	eventually(t, "the second bridge to acknowledge", func() bool { return testutil.ToFloat64(b.b.metrics.inflight) == 0 })
	if got := testutil.ToFloat64(b.b.metrics.received); got != float64(len(msgs)) {
		t.Errorf("second bridge received %v messages, want the %d redelivered", got, len(msgs))
	}
}

func sameSet(a, b [][]byte) bool {
	sa := make([]string, len(a))
	for i := range a {
		sa[i] = string(a[i])
	}
	sb := make([]string, len(b))
	for i := range b {
		sb[i] = string(b[i])
	}
	slices.Sort(sa)
	slices.Sort(sb)
	return slices.Equal(sa, sb)
}

// testBurst publishes count QoS 1 messages without waiting for each PUBACK
// and checks that every one reaches the raw topic exactly once, in order per
// device: the in-flight window, manual acks and Kafka batching under load.
func testBurst(t *testing.T, mqttURL string, brokers []string, count int) {
	n := uniqueNames()
	r := startBridge(t, mqttURL, brokers, n, nil)
	pub := publisher(t, mqttURL)
	const devices = 6
	toks := make([]mqtt.Token, 0, count)
	for i := range count {
		d := fmt.Sprintf("boat-%d", i%devices)
		toks = append(toks, pub.Publish(n.prefix+"/"+d+"/telemetry", 1, false, goodPayload(d, i/devices)))
	}
	for i, tok := range toks {
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
	}
	raw := readTopic(t, brokers, n.raw, count, time.Second)
	if len(raw) != count {
		t.Fatalf("raw topic has %d records, want exactly %d", len(raw), count)
	}
	last := make(map[string]int)
	seen := make(map[string]bool)
	for _, rec := range raw {
		if seen[string(rec.Value)] {
			t.Fatalf("duplicate %q", rec.Value)
		}
		seen[string(rec.Value)] = true
		var seq int
		if _, err := fmt.Sscanf(string(rec.Value[bytes.Index(rec.Value, []byte(`"seq":`)):]), `"seq":%d`, &seq); err != nil {
			t.Fatal(err)
		}
		if l, ok := last[string(rec.Key)]; ok && seq != l+1 {
			t.Fatalf("%s: seq %d after %d", rec.Key, seq, l)
		}
		last[string(rec.Key)] = seq
	}
	eventually(t, "all acknowledged", func() bool { return testutil.ToFloat64(r.b.metrics.inflight) == 0 })
	if got := testutil.ToFloat64(r.b.metrics.produced); got != float64(count) {
		t.Errorf("produced = %v, want %d", got, count)
	}
}
