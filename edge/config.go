package edge

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sailstream/sailstream/geo"
)

// Defaults: the fleet of the original PyFlink pipeline.
const (
	DefaultTopicPrefix    = "sailstream/devices"
	DefaultDevices        = 6
	DefaultRate           = 10.0 // readings per second, whole fleet
	DefaultLateFraction   = 0.05
	DefaultLateMin        = 2 * time.Second
	DefaultLateMax        = 5 * time.Second
	DefaultMinSpeed       = 1.0 // m/s, about 2 knots
	DefaultMaxSpeed       = 8.0 // m/s, about 15.5 knots
	DefaultPublishTimeout = 10 * time.Second
	DefaultConnectTimeout = 10 * time.Second
	DefaultMaxInflight    = 64
)

// Limits on the simulation, so a typo in a flag does not ask for a million
// boats or a reading every nanosecond.
const (
	MaxDevices = 10000
	MaxRate    = 100000.0
)

// ErrInvalidConfig is wrapped by every error Validate returns.
var ErrInvalidConfig = errors.New("invalid edge config")

// Config configures the simulated fleet. A zero value in a field documented
// with a default means that default; DefaultConfig returns them all.
type Config struct {
	// MQTTURL is the broker, e.g. tcp://127.0.0.1:1883 (schemes tcp, mqtt,
	// ssl, tls, mqtts, ws, wss). Required by New; Plan ignores it.
	MQTTURL string
	// ClientID is the MQTT client id (default sailstream-edge-<random>).
	ClientID string
	// Username and Password authenticate to the broker when set.
	Username string
	Password string
	// TopicPrefix: readings go to {TopicPrefix}/{device}/telemetry
	// (default DefaultTopicPrefix).
	TopicPrefix string

	// Devices is the number of boats, named boat-1 … boat-N (default 6).
	Devices int
	// Rate is the total readings per second across the fleet (default 10);
	// boats report in turn, so each reports every Devices/Rate seconds.
	Rate float64
	// LateFraction of readings (0–1) is published late: held back a random
	// delay in [LateMin, LateMax] while keeping its event time. Zero means no
	// late readings; DefaultConfig sets DefaultLateFraction.
	LateFraction float64
	// LateMin and LateMax bound the delay of a late reading (default 2s–5s).
	LateMin, LateMax time.Duration
	// MinSpeed and MaxSpeed bound a boat's speed in m/s (default 1–8).
	MinSpeed, MaxSpeed float64
	// Seed makes the run reproducible: the same seed, Devices and Rate give
	// the same tracks; the late readings depend on the seed too.
	Seed int64
	// Area is the water the boats stay in (default lake.Zegrze()): a closed
	// ring, as geo.Polygon.
	Area geo.Polygon
	// Count stops the fleet after this many readings (0 = run until the
	// context ends).
	Count int

	// PublishTimeout bounds the wait for the broker's PUBACK of one reading
	// (default 10s); ConnectTimeout the first connection (default 10s).
	PublishTimeout time.Duration
	ConnectTimeout time.Duration
	// MaxInflight is how many QoS 1 publishes may await their PUBACK at once
	// (default 64), so high rates are not bound by one round trip each.
	MaxInflight int

	// Logger gets the fleet's logs (nil: discarded).
	Logger *slog.Logger
	// Registerer gets the fleet's metrics (nil: a private registry).
	Registerer prometheus.Registerer
}

// DefaultConfig returns the defaults of every field, with LateFraction at
// DefaultLateFraction; set MQTTURL before New.
func DefaultConfig() Config {
	return Config{
		TopicPrefix:    DefaultTopicPrefix,
		Devices:        DefaultDevices,
		Rate:           DefaultRate,
		LateFraction:   DefaultLateFraction,
		LateMin:        DefaultLateMin,
		LateMax:        DefaultLateMax,
		MinSpeed:       DefaultMinSpeed,
		MaxSpeed:       DefaultMaxSpeed,
		PublishTimeout: DefaultPublishTimeout,
		ConnectTimeout: DefaultConnectTimeout,
		MaxInflight:    DefaultMaxInflight,
	}
}

// withDefaults fills zero fields with their defaults.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.TopicPrefix == "" {
		c.TopicPrefix = d.TopicPrefix
	}
	if c.Devices == 0 {
		c.Devices = d.Devices
	}
	if c.Rate == 0 {
		c.Rate = d.Rate
	}
	if c.LateMin == 0 {
		c.LateMin = d.LateMin
	}
	if c.LateMax == 0 {
		c.LateMax = max(d.LateMax, c.LateMin)
	}
	if c.MinSpeed == 0 {
		c.MinSpeed = d.MinSpeed
	}
	if c.MaxSpeed == 0 {
		c.MaxSpeed = max(d.MaxSpeed, c.MinSpeed)
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = d.PublishTimeout
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = d.ConnectTimeout
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = d.MaxInflight
	}
	return c
}

// Validate checks the configuration, defaults applied, including MQTTURL.
func (c Config) Validate() error {
	c = c.withDefaults()
	if err := c.validateSim(); err != nil {
		return err
	}
	if c.MQTTURL == "" {
		return fmt.Errorf("%w: MQTT broker URL is empty (e.g. tcp://127.0.0.1:1883)", ErrInvalidConfig)
	}
	u, err := url.Parse(c.MQTTURL)
	if err != nil {
		return fmt.Errorf("%w: MQTT broker URL %q: %v", ErrInvalidConfig, c.MQTTURL, err)
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss":
	default:
		return fmt.Errorf("%w: MQTT broker URL %q: scheme %q, want tcp, mqtt, ssl, tls, mqtts, ws or wss", ErrInvalidConfig, c.MQTTURL, u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("%w: MQTT broker URL %q has no host", ErrInvalidConfig, c.MQTTURL)
	}
	if c.PublishTimeout < 0 || c.ConnectTimeout < 0 {
		return fmt.Errorf("%w: timeouts must not be negative", ErrInvalidConfig)
	}
	if c.MaxInflight < 0 {
		return fmt.Errorf("%w: MaxInflight %d is negative", ErrInvalidConfig, c.MaxInflight)
	}
	return nil
}

// validateSim checks what the plan needs (defaults already applied).
func (c Config) validateSim() error {
	if strings.ContainsAny(c.TopicPrefix, "+#") || strings.HasSuffix(c.TopicPrefix, "/") || strings.HasPrefix(c.TopicPrefix, "/") {
		return fmt.Errorf("%w: topic prefix %q: no + or # wildcards, no leading or trailing /", ErrInvalidConfig, c.TopicPrefix)
	}
	if c.Devices < 1 || c.Devices > MaxDevices {
		return fmt.Errorf("%w: %d devices, want 1–%d", ErrInvalidConfig, c.Devices, MaxDevices)
	}
	if math.IsNaN(c.Rate) || c.Rate <= 0 || c.Rate > MaxRate {
		return fmt.Errorf("%w: rate %g readings/s, want more than 0 and at most %g", ErrInvalidConfig, c.Rate, MaxRate)
	}
	if math.IsNaN(c.LateFraction) || c.LateFraction < 0 || c.LateFraction > 1 {
		return fmt.Errorf("%w: late fraction %g, want 0–1", ErrInvalidConfig, c.LateFraction)
	}
	if c.LateMin < 0 || c.LateMax < c.LateMin {
		return fmt.Errorf("%w: late delay %s–%s, want 0 ≤ min ≤ max", ErrInvalidConfig, c.LateMin, c.LateMax)
	}
	if math.IsNaN(c.MinSpeed) || math.IsNaN(c.MaxSpeed) || c.MinSpeed <= 0 || c.MaxSpeed < c.MinSpeed || c.MaxSpeed > 50 {
		return fmt.Errorf("%w: speed %g–%g m/s, want 0 < min ≤ max ≤ 50", ErrInvalidConfig, c.MinSpeed, c.MaxSpeed)
	}
	if c.Count < 0 {
		return fmt.Errorf("%w: count %d is negative (0 runs forever)", ErrInvalidConfig, c.Count)
	}
	if c.Area != nil {
		if len(c.Area) < 4 || c.Area[0] != c.Area[len(c.Area)-1] {
			return fmt.Errorf("%w: area must be a closed ring of at least 4 points (last repeats first)", ErrInvalidConfig)
		}
	}
	return nil
}

func deviceID(i int) string { return fmt.Sprintf("boat-%d", i+1) }

func topic(prefix, device string) string { return prefix + "/" + device + "/telemetry" }
