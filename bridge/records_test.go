package bridge

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sailstream/sailstream/telemetry"
)

func headerMap(t *testing.T, r *kgo.Record) map[string]string {
	t.Helper()
	m := make(map[string]string, len(r.Headers))
	for _, h := range r.Headers {
		if _, dup := m[h.Key]; dup {
			t.Errorf("header %q appears twice", h.Key)
		}
		m[h.Key] = string(h.Value)
	}
	return m
}

func TestRoute(t *testing.T) {
	b, err := New(Config{MQTTURL: "tcp://127.0.0.1:1", KafkaBrokers: []string{"127.0.0.1:1"}, BridgeID: "b-1", RawTopic: "raw", DLQTopic: "dlq"})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 27, 10, 0, 0, 123456789, time.FixedZone("CET", 3600))
	const wantAt = "2026-11-27T09:00:00.123456789Z"
	big := bytes.Repeat([]byte("x"), 1<<20)
	big[0], big[len(big)-1] = '{', '}'
	atLimit := bytes.Repeat([]byte("y"), telemetry.MaxPayloadSize)
	overLimit := bytes.Repeat([]byte("z"), telemetry.MaxPayloadSize+1)

	tests := []struct {
		name       string
		topic      string
		payload    []byte
		wantTopic  string
		wantKey    string
		wantReason string
		truncated  bool
	}{
		{"json payload", "sailstream/devices/boat-1/telemetry", []byte(`{"seq":1,"lat":52.46,"lon":21.02}`), "raw", "boat-1", "", false},
		{"bytes are not decoded", "sailstream/devices/boat-2/telemetry", []byte("not json \x00\xff {"), "raw", "boat-2", "", false},
		{"empty payload", "sailstream/devices/boat-3/telemetry", nil, "raw", "boat-3", "", false},
		{"payload at the limit", "sailstream/devices/boat-4/telemetry", atLimit, "raw", "boat-4", "", false},
		{"payload over the limit", "sailstream/devices/boat-5/telemetry", overLimit, "dlq", "boat-5", telemetry.ReasonPayloadTooLarge, true},
		{"1 MiB payload", "sailstream/devices/boat-6/telemetry", big, "dlq", "boat-6", telemetry.ReasonPayloadTooLarge, true},
		{"bad device keeps its segment as key", "sailstream/devices/bad boat/telemetry", []byte(`{}`), "dlq", "bad boat", telemetry.ReasonBadTopic, false},
		{"wrong shape", "sailstream/devices/boat-1/status", []byte(`{}`), "dlq", "boat-1", telemetry.ReasonBadTopic, false},
		{"no device level", "sailstream/devices", []byte(`{}`), "dlq", "", telemetry.ReasonBadTopic, false},
		{"bad topic and oversize: topic wins, still truncated", "sailstream/devices/a/b/telemetry", big, "dlq", "a", telemetry.ReasonBadTopic, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, reason := b.route(inbound{topic: tt.topic, payload: tt.payload, receivedAt: at})
			if reason != tt.wantReason {
				t.Fatalf("reason = %q, want %q", reason, tt.wantReason)
			}
			if rec.Topic != tt.wantTopic {
				t.Errorf("topic = %q, want %q", rec.Topic, tt.wantTopic)
			}
			if string(rec.Key) != tt.wantKey {
				t.Errorf("key = %q, want %q", rec.Key, tt.wantKey)
			}
			if tt.wantKey == "" && rec.Key != nil {
				t.Errorf("key = %q, want none", rec.Key)
			}
			h := headerMap(t, rec)
			for k, want := range map[string]string{
				telemetry.HeaderMQTTTopic:  tt.topic,
				telemetry.HeaderReceivedAt: wantAt,
				telemetry.HeaderBridgeID:   "b-1",
			} {
				if h[k] != want {
					t.Errorf("header %s = %q, want %q", k, h[k], want)
				}
			}
			if reason == "" {
				if !bytes.Equal(rec.Value, tt.payload) {
					t.Errorf("value differs from the payload (%d vs %d bytes)", len(rec.Value), len(tt.payload))
				}
				if h[telemetry.HeaderFormat] != telemetry.FormatJSON {
					t.Errorf("format header = %q, want %q", h[telemetry.HeaderFormat], telemetry.FormatJSON)
				}
				if len(h) != 4 {
					t.Errorf("raw record has headers %v, want exactly 4", h)
				}
				return
			}
			if h[telemetry.HeaderReason] != tt.wantReason || h[telemetry.HeaderStage] != "bridge" || h[telemetry.HeaderError] == "" {
				t.Errorf("DLQ headers reason=%q stage=%q error=%q", h[telemetry.HeaderReason], h[telemetry.HeaderStage], h[telemetry.HeaderError])
			}
			if !tt.truncated {
				if !bytes.Equal(rec.Value, tt.payload) {
					t.Errorf("DLQ value differs from the payload")
				}
				if _, ok := h[telemetry.HeaderOriginalSize]; ok {
					t.Errorf("original_size header on an untruncated record")
				}
				return
			}
			if len(rec.Value) != telemetry.MaxPayloadSize || !bytes.Equal(rec.Value, tt.payload[:telemetry.MaxPayloadSize]) {
				t.Errorf("DLQ value is %d bytes, want the first %d of the payload", len(rec.Value), telemetry.MaxPayloadSize)
			}
			if h[telemetry.HeaderOriginalSize] != strconv.Itoa(len(tt.payload)) {
				t.Errorf("original_size = %q, want %d", h[telemetry.HeaderOriginalSize], len(tt.payload))
			}
			sum := sha256.Sum256(tt.payload)
			if h[telemetry.HeaderSHA256] != hex.EncodeToString(sum[:]) {
				t.Errorf("sha256 = %q, want the hash of the whole payload", h[telemetry.HeaderSHA256])
			}
			if tt.wantReason == telemetry.ReasonPayloadTooLarge && !strings.Contains(h[telemetry.HeaderError], strconv.Itoa(len(tt.payload))) {
				t.Errorf("error %q does not tell the size", h[telemetry.HeaderError])
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{MQTTURL: "tcp://127.0.0.1:1883", KafkaBrokers: []string{"127.0.0.1:9092"}}
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"minimal", func(*Config) {}, ""},
		{"mqtt scheme", func(c *Config) { c.MQTTURL = "mqtt://broker:1883" }, ""},
		{"no MQTT URL", func(c *Config) { c.MQTTURL = "" }, "MQTTURL is required"},
		{"bad scheme", func(c *Config) { c.MQTTURL = "http://127.0.0.1:1883" }, "scheme"},
		{"no host", func(c *Config) { c.MQTTURL = "tcp://" }, "no host"},
		{"no brokers", func(c *Config) { c.KafkaBrokers = nil }, "KafkaBrokers is required"},
		{"empty broker", func(c *Config) { c.KafkaBrokers = []string{"a:1", " "} }, "empty entry"},
		{"wildcard prefix", func(c *Config) { c.TopicPrefix = "devices/+" }, "wildcards"},
		{"prefix ending in slash", func(c *Config) { c.TopicPrefix = "devices/" }, "end with /"},
		{"raw equals dlq", func(c *Config) { c.RawTopic, c.DLQTopic = "t", "t" }, "both"},
		{"raw equals default dlq", func(c *Config) { c.RawTopic = telemetry.TopicDLQ }, "both"},
		{"negative partitions", func(c *Config) { c.Partitions = -1 }, "Partitions"},
		{"negative timeout", func(c *Config) { c.ShutdownTimeout = -time.Second }, "ShutdownTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mod(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				if _, err := New(c); err != nil {
					t.Fatalf("New() = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
			if _, err := New(c); err == nil {
				t.Fatalf("New() accepted a config Validate rejects")
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{MQTTURL: "tcp://127.0.0.1:1883", KafkaBrokers: []string{"k:9092"}, BridgeID: "edge-7"}.withDefaults()
	if c.TopicPrefix != DefaultTopicPrefix || c.RawTopic != telemetry.TopicRaw || c.DLQTopic != telemetry.TopicDLQ ||
		c.Partitions != DefaultPartitions || c.ShutdownTimeout != DefaultShutdownTimeout ||
		c.ClientID != "sailstream-bridge-edge-7" || c.Logger == nil || c.Registerer == nil {
		t.Errorf("defaults not applied: %+v", c)
	}
	if h := (Config{}).withDefaults().BridgeID; h == "" {
		t.Errorf("BridgeID default is empty, want the host name")
	}
}
