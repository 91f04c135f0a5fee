// Command sailstream is the one binary of sailstream: `sailstream up` runs the
// whole pipeline in one process; the other subcommands run one component each
// against a real MQTT broker and Kafka cluster.
//
// Every flag can also be set by an environment variable: SAILSTREAM_ followed
// by the flag's name in upper case with dashes as underscores
// (--kafka-brokers → SAILSTREAM_KAFKA_BROKERS).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kong"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

type cli struct {
	LogLevel slog.Level `help:"Log level: debug, info, warn or error." default:"info"`

	Up      upCmd      `cmd:"" help:"Run the whole pipeline in one process (embedded MQTT broker and Kafka, simulated fleet, map on http://localhost:8080)."`
	Edge    edgeCmd    `cmd:"" help:"Run the simulated fleet of boats, publishing over MQTT."`
	Bridge  bridgeCmd  `cmd:"" help:"Forward device messages from MQTT to Kafka telemetry.raw."`
	Core    coreCmd    `cmd:"" help:"Process telemetry.raw into telemetry.enriched (event time, late readings, speed)."`
	Web     webCmd     `cmd:"" help:"Serve the live map, the WebSocket feed and the REST API from telemetry.enriched."`
	Sink    sinkCmd    `cmd:"" help:"Keep every reading: timescale (enriched readings into PostgreSQL) or blob (raw archive)."`
	Replay  replayCmd  `cmd:"" help:"Republish archived raw readings from the blob archive into Kafka."`
	Udf     udfCmd     `cmd:"" help:"Write, build, test and deploy WebAssembly UDFs (init, build, test, deploy, shadow, promote, rollback, list, routes)."`
	Version versionCmd `cmd:"" help:"Print the version."`
}

// runContext is what every subcommand's Run receives.
type runContext struct {
	ctx context.Context
	log *slog.Logger
}

func main() {
	var c cli
	k := kong.Parse(&c,
		kong.Name("sailstream"),
		kong.Description("WebAssembly-extensible streaming pipeline for GPS/IoT trackers. Every flag can also be set as SAILSTREAM_<FLAG_NAME>."),
		kong.DefaultEnvars("SAILSTREAM"),
		kong.UsageOnError(),
	)
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: c.LogLevel}))
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := k.Run(&runContext{ctx: ctx, log: log}); err != nil {
		log.Error("sailstream stopped with an error", "command", k.Command(), "err", err)
		fmt.Fprintln(os.Stderr, "sailstream:", err)
		os.Exit(1)
	}
}

type versionCmd struct{}

func (versionCmd) Run() error {
	fmt.Println("sailstream", version)
	return nil
}
