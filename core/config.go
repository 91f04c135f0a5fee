package core

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sailstream/sailstream/telemetry"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultGroup         = "sailstream-core"
	DefaultPartitions    = 6
	DefaultMaxOutOfOrder = 2 * time.Second
)

// Topics names the Kafka topics the processor reads and writes. Empty names
// take the telemetry.Topic* defaults.
type Topics struct {
	// Raw is consumed: payloads exactly as the bridge received them.
	Raw string
	// Enriched receives one JSON telemetry.Enriched per accepted reading.
	Enriched string
	// Late receives readings behind the watermark or out of order.
	Late string
	// DLQ receives payloads that failed to decode or validate.
	DLQ string
}

// Config configures a Processor. The zero value of every field but
// KafkaBrokers is usable.
type Config struct {
	// KafkaBrokers are the seed brokers, host:port.
	KafkaBrokers []string
	// Group is the Kafka consumer group; instances with the same group
	// share the partitions of Topics.Raw.
	Group string
	// Topics names the topics; see Topics.
	Topics Topics
	// Partitions is the partition count used when a topic does not exist
	// yet and the processor creates it (existing topics are left alone).
	Partitions int32
	// MaxOutOfOrder is the allowed out-of-orderness of event time (zero
	// means DefaultMaxOutOfOrder): a
	// partition's watermark is the largest event time seen on it minus
	// MaxOutOfOrder, and readings behind it are late.
	MaxOutOfOrder time.Duration
	// Now is the processor's clock (validation of event times, latency);
	// nil means time.Now. Tests set it.
	Now func() time.Time
	// Logger receives the processor's logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the processor's metrics; nil means a private
	// registry (metrics are then only visible through the Processor).
	Registerer prometheus.Registerer
}

// Validate reports whether c can be used, after defaults are applied to the
// zero fields.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if len(c.KafkaBrokers) == 0 {
		errs = append(errs, errors.New("no Kafka brokers: set KafkaBrokers (host:port)"))
	}
	for _, b := range c.KafkaBrokers {
		if b == "" {
			errs = append(errs, errors.New("empty Kafka broker address"))
		}
	}
	if c.Partitions < 1 {
		errs = append(errs, fmt.Errorf("partitions %d: must be at least 1", c.Partitions))
	}
	if c.MaxOutOfOrder < 0 {
		errs = append(errs, fmt.Errorf("max out-of-order %s: must not be negative", c.MaxOutOfOrder))
	}
	t := c.Topics
	names := map[string]string{"raw": t.Raw, "enriched": t.Enriched, "late": t.Late, "dlq": t.DLQ}
	seen := map[string]string{}
	for _, role := range []string{"raw", "enriched", "late", "dlq"} {
		name := names[role]
		if other, dup := seen[name]; dup {
			errs = append(errs, fmt.Errorf("topics %s and %s are both %q: each needs its own topic", other, role, name))
		}
		seen[name] = role
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("core: config: %w", err)
	}
	return nil
}

// withDefaults returns c with its zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.Topics.Raw == "" {
		c.Topics.Raw = telemetry.TopicRaw
	}
	if c.Topics.Enriched == "" {
		c.Topics.Enriched = telemetry.TopicEnriched
	}
	if c.Topics.Late == "" {
		c.Topics.Late = telemetry.TopicLate
	}
	if c.Topics.DLQ == "" {
		c.Topics.DLQ = telemetry.TopicDLQ
	}
	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	if c.MaxOutOfOrder == 0 {
		c.MaxOutOfOrder = DefaultMaxOutOfOrder
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	return c
}
