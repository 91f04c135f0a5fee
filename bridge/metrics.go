package bridge

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sailstream/sailstream/telemetry"
)

type metrics struct {
	received      prometheus.Counter
	produced      prometheus.Counter
	dlq           *prometheus.CounterVec
	produceErrors prometheus.Counter
	inflight      prometheus.Gauge
	ackLatency    prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sailstream_bridge_messages_received_total",
			Help: "MQTT messages the bridge received (redeliveries count again).",
		}),
		produced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sailstream_bridge_records_produced_total",
			Help: "Records Kafka acknowledged on the raw telemetry topic.",
		}),
		dlq: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sailstream_bridge_dlq_total",
			Help: "Messages Kafka acknowledged on the dead-letter topic, by reason.",
		}, []string{"reason"}),
		produceErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sailstream_bridge_produce_errors_total",
			Help: "Records Kafka did not take; their MQTT messages stay unacknowledged and are redelivered.",
		}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sailstream_bridge_inflight_messages",
			Help: "MQTT messages received and not yet acknowledged (or given up).",
		}),
		ackLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sailstream_bridge_ack_latency_seconds",
			Help:    "Time from MQTT receive to Kafka acknowledging the record.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5 ms .. ~16 s
		}),
	}
	// Known reasons start at zero so that dashboards and alerts see them.
	for _, r := range []string{telemetry.ReasonBadTopic, telemetry.ReasonPayloadTooLarge} {
		m.dlq.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{m.received, m.produced, m.dlq, m.produceErrors, m.inflight, m.ackLatency} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("bridge: registering metrics: %w (one Registerer per bridge)", err)
			}
			return nil, fmt.Errorf("bridge: registering metrics: %w", err)
		}
	}
	return m, nil
}
