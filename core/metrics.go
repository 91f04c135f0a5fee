package core

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the processor's Prometheus collectors.
type metrics struct {
	in        prometheus.Counter
	enriched  prometheus.Counter
	late      *prometheus.CounterVec // device
	dlq       *prometheus.CounterVec // reason
	latency   prometheus.Histogram   // now − received_at
	watermark *prometheus.GaugeVec   // partition
	commitErr prometheus.Counter     // failed offset commits (reprocessed later)
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		in: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sailstream_core_readings_in_total",
			Help: "Records consumed from the raw topic.",
		}),
		enriched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sailstream_core_readings_enriched_total",
			Help: "Readings accepted and produced to the enriched topic.",
		}),
		late: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sailstream_core_late_total",
			Help: "Readings sent to the late topic (behind the watermark or out of order), by device.",
		}, []string{"device"}),
		dlq: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sailstream_core_dlq_total",
			Help: "Records sent to the dead-letter topic, by reason.",
		}, []string{"reason"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sailstream_core_processing_latency_seconds",
			Help:    "Time from the bridge receiving a reading (received_at header) to the core processing it.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		watermark: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sailstream_core_watermark_lag_seconds",
			Help: "Processing time minus the event-time watermark of a raw-topic partition, when it last advanced or was checked.",
		}, []string{"partition"}),
		commitErr: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sailstream_core_commit_errors_total",
			Help: "Offset commits that failed; the records after the last good commit are processed again (at-least-once).",
		}),
	}
	for _, c := range []prometheus.Collector{m.in, m.enriched, m.late, m.dlq, m.latency, m.watermark, m.commitErr} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("core: metrics: %w (one Registerer per processor, or wrap it with prometheus.WrapRegistererWith)", err)
			}
			return nil, fmt.Errorf("core: metrics: %w", err)
		}
	}
	return m, nil
}
