package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/sailstream/sailstream/sinks/blob"
)

type replayCmd struct {
	kafkaFlags
	From        string `help:"Start of the range (Kafka timestamps): RFC 3339, YYYY-MM-DDTHH:MM or YYYY-MM-DD (UTC), or a duration ago (90m)." required:""`
	To          string `help:"End of the range, exclusive; same forms as --from (default: now)."`
	Devices     string `help:"Only devices whose id matches this glob (e.g. boat-*)."`
	SourceTopic string `help:"The archived topic to read." default:"telemetry.raw"`
	Topic       string `help:"Topic to republish to. telemetry.raw refills a lost raw topic before the core runs (a running core finds old readings behind its watermark: late); a separate topic read by a second core group (its own --group, --raw-topic, --enriched-topic, --state-topic) backfills or compares UDF versions." default:"telemetry.raw"`
	archiveFlags
}

// parseWhen reads a --from/--to value.
func parseWhen(s string, now time.Time) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	if d, err := time.ParseDuration(strings.TrimPrefix(s, "-")); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time (RFC 3339, YYYY-MM-DD[THH:MM[:SS]] in UTC, or a duration ago like 2h)", s)
}

func (c *replayCmd) Run(rc *runContext) error {
	now := time.Now()
	from, err := parseWhen(c.From, now)
	if err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	to := now
	if c.To != "" {
		if to, err = parseWhen(c.To, now); err != nil {
			return fmt.Errorf("--to: %w", err)
		}
	}
	store, err := c.store()
	if err != nil {
		return err
	}
	cfg := blob.ReplayConfig{
		ReadConfig:   blob.ReadConfig{Store: store, From: from, To: to, Topic: c.SourceTopic, Devices: c.Devices},
		KafkaBrokers: c.KafkaBrokers, Target: c.Topic, Partitions: c.Partitions, Logger: rc.log.With("component", "replay"),
	}
	// No progress-bar library is in go.mod and a one-line counter needs
	// none: a \r-rewritten line, only when stderr is a terminal (logs and
	// CI output stay clean).
	tty := isatty.IsTerminal(os.Stderr.Fd())
	if tty {
		start := time.Now()
		cfg.Progress = func(p blob.ReadProgress) {
			const width = 30
			done := width
			if p.ObjectsTotal > 0 {
				done = width * p.ObjectsDone / p.ObjectsTotal
			}
			fmt.Fprintf(os.Stderr, "\r[%s%s] %d/%d objects, %d records, %.1f MB, %s ",
				strings.Repeat("#", done), strings.Repeat(".", width-done), p.ObjectsDone, p.ObjectsTotal,
				p.Records, float64(p.Bytes)/1e6, time.Since(start).Round(time.Second))
		}
	}
	sum, err := blob.Replay(rc.ctx, cfg)
	if tty {
		fmt.Fprintln(os.Stderr)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "replay stopped after %s: %d records read from %d objects, not all of them acknowledged\n",
			sum.Duration.Round(time.Millisecond), sum.Records, sum.Objects)
		return err
	}
	fmt.Fprintf(os.Stderr, "replayed %d records from %d objects (%.1f MB) to %s in %s; %d skipped by the time/device filter, %d duplicates dropped\n",
		sum.Records, sum.Objects, float64(sum.Bytes)/1e6, c.Topic, sum.Duration.Round(time.Millisecond), sum.Filtered, sum.Duplicates)
	return nil
}
