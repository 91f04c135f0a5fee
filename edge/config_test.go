package edge

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/sailstream/sailstream/geo"
)

func TestConfigValidate(t *testing.T) {
	ok := func(c *Config) {}
	tests := []struct {
		name   string
		modify func(*Config)
		want   string // "" = valid
	}{
		{"defaults", ok, ""},
		{"zero fields take defaults", func(c *Config) { *c = Config{MQTTURL: c.MQTTURL} }, ""},
		{"no late readings", func(c *Config) { c.LateFraction = 0 }, ""},
		{"all late", func(c *Config) { c.LateFraction = 1 }, ""},
		{"mqtt scheme", func(c *Config) { c.MQTTURL = "mqtt://localhost:1883" }, ""},
		{"websocket", func(c *Config) { c.MQTTURL = "ws://127.0.0.1:8080/mqtt" }, ""},
		{"no broker", func(c *Config) { c.MQTTURL = "" }, "URL is empty"},
		{"http broker", func(c *Config) { c.MQTTURL = "http://127.0.0.1:1883" }, "scheme"},
		{"broker without host", func(c *Config) { c.MQTTURL = "tcp://" }, "no host"},
		{"negative devices", func(c *Config) { c.Devices = -1 }, "devices"},
		{"too many devices", func(c *Config) { c.Devices = MaxDevices + 1 }, "devices"},
		{"negative rate", func(c *Config) { c.Rate = -3 }, "rate"},
		{"NaN rate", func(c *Config) { c.Rate = math.NaN() }, "rate"},
		{"huge rate", func(c *Config) { c.Rate = 1e9 }, "rate"},
		{"late fraction above 1", func(c *Config) { c.LateFraction = 1.5 }, "late fraction"},
		{"negative late fraction", func(c *Config) { c.LateFraction = -0.1 }, "late fraction"},
		{"late max below min", func(c *Config) { c.LateMin, c.LateMax = 5*time.Second, 2*time.Second }, "late delay"},
		{"negative late min", func(c *Config) { c.LateMin = -time.Second }, "late delay"},
		{"speed max below min", func(c *Config) { c.MinSpeed, c.MaxSpeed = 5, 2 }, "speed"},
		{"negative speed", func(c *Config) { c.MinSpeed = -1 }, "speed"},
		{"negative count", func(c *Config) { c.Count = -1 }, "count"},
		{"wildcard prefix", func(c *Config) { c.TopicPrefix = "sailstream/+" }, "topic prefix"},
		{"trailing slash prefix", func(c *Config) { c.TopicPrefix = "sailstream/" }, "topic prefix"},
		{"open area", func(c *Config) {
			c.Area = geo.Polygon{{Lat: 52, Lon: 21}, {Lat: 52, Lon: 21.1}, {Lat: 52.1, Lon: 21.1}, {Lat: 52.1, Lon: 21}}
		}, "closed ring"},
		{"negative inflight", func(c *Config) { c.MaxInflight = -1 }, "MaxInflight"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.MQTTURL = "tcp://127.0.0.1:1883"
			tt.modify(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && err == nil:
				t.Fatalf("Validate() = nil, want an error about %q", tt.want)
			case tt.want != "" && (!errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate() = %v, want ErrInvalidConfig mentioning %q", err, tt.want)
			}
		})
	}
}

func TestWithDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	d := DefaultConfig()
	if c.Devices != 6 || c.Rate != 10 || c.TopicPrefix != "sailstream/devices" ||
		c.LateMin != 2*time.Second || c.LateMax != 5*time.Second || c.MinSpeed != 1 || c.MaxSpeed != 8 {
		t.Fatalf("zero config with defaults = %+v", c)
	}
	if c.LateFraction != 0 || d.LateFraction != 0.05 {
		t.Fatalf("LateFraction: zero config %g (want 0: none), DefaultConfig %g (want 0.05)", c.LateFraction, d.LateFraction)
	}
	// A LateMin above the default max drags the max along.
	c = Config{LateMin: 8 * time.Second}.withDefaults()
	if c.LateMax != 8*time.Second {
		t.Fatalf("LateMin 8s gave LateMax %s", c.LateMax)
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	if _, err := New(Config{}); err == nil || !strings.HasPrefix(err.Error(), "edge: ") {
		t.Fatalf("New(Config{}) = %v, want an edge: error about the broker URL", err)
	}
}
