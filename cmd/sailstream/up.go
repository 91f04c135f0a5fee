package main

import (
	"os"
	"time"

	"github.com/sailstream/sailstream/internal/embedded"
)

type upCmd struct {
	MQTTListen    string        `help:"Where the embedded MQTT broker listens (real trackers and mosquitto_pub can publish here)." default:"127.0.0.1:1883"`
	MQTTURL       string        `name:"mqtt-url" help:"Use this external MQTT broker instead of the embedded one."`
	KafkaBrokers  []string      `help:"Use this external Kafka cluster instead of the embedded one."`
	KafkaDataDir  string        `help:"Keep the embedded Kafka's data in this directory across restarts (default: memory only)."`
	HTTPAddr      string        `name:"http-addr" help:"Where the map, WebSocket, REST API and /metrics are served." default:"127.0.0.1:8080"`
	Devices       int           `help:"Simulated boats (0: none, only real trackers)." default:"6"`
	Rate          float64       `help:"Total readings per second of the simulated fleet." default:"10"`
	LateFraction  float64       `help:"Fraction of simulated readings published late." default:"0.05"`
	Seed          int64         `help:"Random seed of the simulated fleet (same seed, same tracks); 0 picks one from the clock."`
	MaxOutOfOrder time.Duration `help:"Allowed out-of-orderness of event time: readings are held up to this long to be processed in event-time order, older ones are late; 0 turns the reordering off." default:"2s"`
	CacheDir      string        `help:"Compilation cache for UDF modules (default: the user cache directory; '-' for memory only)."`
	AdminAddr     string        `help:"Where the UDF admin API listens; empty disables it." default:"127.0.0.1:9470"`
	AdminToken    string        `help:"Bearer token the admin API requires (needed only off loopback)."`
	UDFDir        string        `name:"udf-dir" help:"Directory watched for .wasm files to deploy (created if missing); empty disables it." default:"udfs"`
	ArchiveDir    string        `help:"Archive every raw reading here (gzip NDJSON, the Azure Blob layout; 'sailstream replay --archive-dir' reads it); empty disables it." default:"archive"`
	PG            string        `name:"pg" help:"Also write enriched readings into this PostgreSQL/TimescaleDB (postgres://...) and serve /api/devices/{id}/track from it."`
}

func (c *upCmd) Run(rc *runContext) error {
	seed := c.Seed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	st, err := embedded.New(embedded.Config{
		MQTTListen:    c.MQTTListen,
		MQTTURL:       c.MQTTURL,
		KafkaBrokers:  c.KafkaBrokers,
		KafkaDataDir:  c.KafkaDataDir,
		HTTPAddr:      c.HTTPAddr,
		Fleet:         embedded.FleetConfig{Devices: c.Devices, Rate: c.Rate, LateFraction: c.LateFraction, Seed: seed},
		MaxOutOfOrder: &c.MaxOutOfOrder,
		CacheDir:      udfFlags{CacheDir: c.CacheDir}.cacheDir(),
		AdminAddr:     c.AdminAddr,
		AdminToken:    c.AdminToken,
		UDFDir:        c.UDFDir,
		ArchiveDir:    c.ArchiveDir,
		PG:            c.PG,
		Logger:        rc.log,
		Banner:        os.Stdout,
	})
	if err != nil {
		return err
	}
	return st.Run(rc.ctx)
}
