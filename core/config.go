package core

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sailstream/sailstream/telemetry"
	"github.com/sailstream/sailstream/udf"
	"github.com/sailstream/sailstream/udf/registry"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultGroup         = "sailstream-core"
	DefaultPartitions    = 6
	DefaultMaxOutOfOrder = 2 * time.Second
	DefaultIdleTimeout   = 5 * time.Second
	// DefaultStateTopic is the compacted changelog of per-device state
	// (exactly-once only).
	DefaultStateTopic = "core.state"

	// A module version that fails DefaultQuarantineAfter batches in a row,
	// or more than DefaultQuarantineRatio of the last
	// DefaultQuarantineWindow batches, is quarantined on this core.
	DefaultQuarantineAfter  = 5
	DefaultQuarantineWindow = 20
	DefaultQuarantineRatio  = 0.5
)

// Delivery guarantees (Config.Guarantee).
const (
	// GuaranteeAtLeastOnce commits offsets after the outputs are
	// acknowledged and never past a reading still buffered; per-device
	// state lives in memory only. A restart or rebalance reprocesses the
	// records after the last commit (duplicates in the outputs).
	GuaranteeAtLeastOnce = "at-least-once"
	// GuaranteeExactlyOnce produces the outputs, the per-device state
	// changelog and the consumed offsets in one Kafka transaction per
	// poll, and restores the state from the changelog on assignment.
	GuaranteeExactlyOnce = "exactly-once"
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
	// DLQ receives payloads that failed to decode or validate, and the
	// readings a UDF failed on.
	DLQ string
	// Shadow receives one JSON ShadowRecord per output of a batch a shadow
	// UDF ran on: the live and the shadow output side by side.
	Shadow string
	// Registry is the compacted topic of deployed UDFs, read from the
	// start by every instance (registry.DefaultTopic when empty).
	Registry string
	// State is the compacted changelog of per-device state, key = device
	// id, with as many partitions as Raw (DefaultStateTopic when empty).
	// Only written and read with GuaranteeExactlyOnce.
	State string
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
	// MaxOutOfOrder is the allowed out-of-orderness of event time; nil
	// means DefaultMaxOutOfOrder. A partition's watermark is the largest
	// event time seen on it minus MaxOutOfOrder; readings behind it are
	// late, readings ahead of it are buffered and released per device in
	// event-time order once the operator's watermark passes them (adding
	// up to MaxOutOfOrder of latency). Zero turns buffering off: readings
	// are processed as they arrive and one older than its partition's
	// newest is late. See docs/streaming.md.
	MaxOutOfOrder *time.Duration
	// AllowedLateness accepts readings up to this much behind the
	// watermark (they are still not put before a reading of their device
	// already released). Zero: none.
	AllowedLateness time.Duration
	// IdleTimeout: a partition that brought no record for this long
	// (processing time) stops holding back the operator's watermark and
	// releases what it buffered. Zero means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// Guarantee is GuaranteeExactlyOnce (the default when empty) or
	// GuaranteeAtLeastOnce. See docs/streaming.md for the trade-off.
	Guarantee string
	// InstanceID, when set, makes this instance a static member of the
	// group (KIP-345): restarted within SessionTimeout with the same ID it
	// gets its partitions back without a rebalance, and a crashed one's
	// partitions wait for it instead of moving twice. It also names the
	// default TransactionalID. Set it to something stable per instance
	// (a pod name of a StatefulSet, a host name); never share it between
	// two running instances. Empty: a dynamic member, which leaves the
	// group when it stops.
	InstanceID string
	// SessionTimeout is how long the group waits for a member that stopped
	// heartbeating (a crashed process, a static member restarting) before
	// moving its partitions. Zero means the client's default (45s).
	SessionTimeout time.Duration
	// TransactionalID identifies this instance's transactional producer
	// (exactly-once only). A restarted instance that reuses its ID fences
	// its predecessor and aborts its open transaction at once; a new ID
	// leaves that transaction to time out (TransactionTimeout) first,
	// holding back the partitions it consumed. Empty means the group and
	// InstanceID, or without one the group, the host name and a random
	// suffix.
	TransactionalID string
	// CacheDir holds compiled UDFs across restarts. Empty means
	// $XDG_CACHE_HOME/sailstream/wasm (os.UserCacheDir); "-" keeps the
	// cache in memory only. Unused when Engine is set.
	CacheDir string
	// Engine, when set, loads the UDFs (sharing its compilation cache
	// with other users in the process); the processor does not close it.
	Engine *udf.Engine
	// QuarantineAfter is how many batches in a row a UDF version may fail
	// before this instance stops using it and falls back to the previous
	// version (or the builtin speed UDF). Zero means
	// DefaultQuarantineAfter; negative disables quarantine.
	QuarantineAfter int
	// QuarantineWindow and QuarantineRatio: a version that failed more
	// than QuarantineRatio of its last QuarantineWindow batches is
	// quarantined too. Zero means the defaults.
	QuarantineWindow int
	QuarantineRatio  float64
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
	if *c.MaxOutOfOrder < 0 {
		errs = append(errs, fmt.Errorf("max out-of-order %s: must not be negative", *c.MaxOutOfOrder))
	}
	if c.AllowedLateness < 0 {
		errs = append(errs, fmt.Errorf("allowed lateness %s: must not be negative", c.AllowedLateness))
	}
	if c.IdleTimeout < 0 {
		errs = append(errs, fmt.Errorf("idle timeout %s: must not be negative", c.IdleTimeout))
	}
	if c.SessionTimeout < 0 {
		errs = append(errs, fmt.Errorf("session timeout %s: must not be negative", c.SessionTimeout))
	}
	if c.Guarantee != GuaranteeAtLeastOnce && c.Guarantee != GuaranteeExactlyOnce {
		errs = append(errs, fmt.Errorf("guarantee %q: must be %q or %q", c.Guarantee, GuaranteeExactlyOnce, GuaranteeAtLeastOnce))
	}
	if c.QuarantineWindow < 0 {
		errs = append(errs, fmt.Errorf("quarantine window %d: must not be negative", c.QuarantineWindow))
	}
	if c.QuarantineRatio < 0 || c.QuarantineRatio >= 1 {
		errs = append(errs, fmt.Errorf("quarantine ratio %g: must be in [0, 1)", c.QuarantineRatio))
	}
	t := c.Topics
	names := map[string]string{"raw": t.Raw, "enriched": t.Enriched, "late": t.Late, "dlq": t.DLQ, "shadow": t.Shadow, "registry": t.Registry, "state": t.State}
	seen := map[string]string{}
	for _, role := range []string{"raw", "enriched", "late", "dlq", "shadow", "registry", "state"} {
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
	if c.Topics.Shadow == "" {
		c.Topics.Shadow = telemetry.TopicShadow
	}
	if c.Topics.Registry == "" {
		c.Topics.Registry = registry.DefaultTopic
	}
	if c.Topics.State == "" {
		c.Topics.State = DefaultStateTopic
	}
	if c.Guarantee == "" {
		c.Guarantee = GuaranteeExactlyOnce
	}
	if c.TransactionalID == "" && c.InstanceID != "" {
		c.TransactionalID = c.Group + "-" + c.InstanceID
	}
	if c.TransactionalID == "" {
		host, _ := os.Hostname()
		var b [6]byte
		_, _ = rand.Read(b[:])
		c.TransactionalID = fmt.Sprintf("%s-%s-%x", c.Group, host, b)
	}
	if c.QuarantineAfter == 0 {
		c.QuarantineAfter = DefaultQuarantineAfter
	}
	if c.QuarantineWindow == 0 {
		c.QuarantineWindow = DefaultQuarantineWindow
	}
	if c.QuarantineRatio == 0 {
		c.QuarantineRatio = DefaultQuarantineRatio
	}
	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	if c.MaxOutOfOrder == nil {
		c.MaxOutOfOrder = new(DefaultMaxOutOfOrder)
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
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

// cacheDir resolves CacheDir: "" is the user cache directory, "-" none.
func (c Config) cacheDir() string {
	switch c.CacheDir {
	case "-":
		return ""
	case "":
		d, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		return filepath.Join(d, "sailstream", "wasm")
	}
	return c.CacheDir
}
