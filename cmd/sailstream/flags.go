package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sailstream/sailstream/internal/httpserve"
)

// Flag groups shared by several subcommands.

type mqttFlags struct {
	MQTTURL     string `name:"mqtt-url" help:"MQTT broker URL." default:"tcp://127.0.0.1:1883"`
	TopicPrefix string `help:"MQTT topic prefix; devices publish to PREFIX/{device}/telemetry." default:"sailstream/devices"`
}

type kafkaFlags struct {
	KafkaBrokers []string `help:"Kafka seed brokers, comma-separated." default:"127.0.0.1:9092"`
	Partitions   int32    `help:"Partitions of topics this component creates when they do not exist." default:"6"`
}

// serveMetrics serves reg on addr until ctx ends; the returned function
// waits for it to stop.
func serveMetrics(ctx context.Context, log *slog.Logger, addr string, reg *prometheus.Registry) (func(), error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener on %s (set --metrics-addr): %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := httpserve.Serve(ctx, srv, ln, 2*time.Second); err != nil {
			log.Error("metrics server", "err", err)
		}
	}()
	log.Info("serving metrics", "addr", "http://"+ln.Addr().String()+"/metrics")
	return func() { <-done }, nil
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// runWithMetrics serves reg on addr while run runs.
func runWithMetrics(rc *runContext, addr string, reg *prometheus.Registry, run func(context.Context) error) error {
	wait, err := serveMetrics(rc.ctx, rc.log, addr, reg)
	if err != nil {
		return err
	}
	defer wait()
	return run(rc.ctx)
}
