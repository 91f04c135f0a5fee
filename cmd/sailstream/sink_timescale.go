package main

import (
	"time"

	"github.com/sailstream/sailstream/sinks/timescale"
)

type sinkTimescaleCmd struct {
	kafkaFlags
	PG            string        `name:"pg" help:"PostgreSQL/TimescaleDB URL, e.g. postgres://user:pass@host:5432/sailstream." required:""`
	Group         string        `help:"Kafka consumer group of the sink instances." default:"sailstream-timescale"`
	EnrichedTopic string        `help:"Topic of enriched readings to store." default:"telemetry.enriched"`
	BatchSize     int           `help:"Most readings written in one transaction." default:"5000"`
	BatchTimeout  time.Duration `help:"Longest a reading waits for its batch to fill before the batch is written anyway." default:"1s"`
	Retention     time.Duration `help:"Drop readings older than this (e.g. 2160h for 90 days; at least 24h); 0 keeps everything." default:"0s"`
	MetricsAddr   string        `help:"Where to serve Prometheus metrics on /metrics; empty disables." default:"127.0.0.1:9464"`
}

func (c *sinkTimescaleCmd) Run(rc *runContext) error {
	reg := newRegistry()
	s, err := timescale.New(timescale.Config{
		DatabaseURL: c.PG, KafkaBrokers: c.KafkaBrokers, Group: c.Group, EnrichedTopic: c.EnrichedTopic,
		Partitions: c.Partitions, BatchSize: c.BatchSize, BatchTimeout: c.BatchTimeout, Retention: c.Retention,
		Logger: rc.log.With("component", "sink-timescale"), Registerer: reg,
	})
	if err != nil {
		return err
	}
	return runWithMetrics(rc, c.MetricsAddr, reg, s.Run)
}
