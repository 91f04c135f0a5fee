package core

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the processor's Prometheus collectors.
type metrics struct {
	in         prometheus.Counter
	enriched   prometheus.Counter
	late       *prometheus.CounterVec // device
	dlq        *prometheus.CounterVec // reason
	latency    prometheus.Histogram   // now − received_at
	watermark  *prometheus.GaugeVec   // partition
	commitErr  prometheus.Counter     // failed offset commits (reprocessed later)
	duplicates *prometheus.CounterVec // device
	buffered   prometheus.Gauge
	idle       prometheus.Gauge

	udfCalls       *prometheus.CounterVec   // udf, version
	udfFailures    *prometheus.CounterVec   // udf, reason
	udfCallSeconds *prometheus.HistogramVec // udf, version, role
	quarantined    *prometheus.GaugeVec     // udf, version
	swaps          prometheus.Counter
	swapPause      prometheus.Histogram
	shadowOutputs  *prometheus.CounterVec // udf, agree
	registryBad    prometheus.Counter
	stateBad       prometheus.Counter
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
			Help: "Readings sent to the late topic behind the watermark or out of order, by device (duplicates are counted in sailstream_core_duplicates_total).",
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
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sailstream_core_duplicates_total",
			Help: "Readings recognised as redeliveries of an accepted reading (same device, seq and event time), by device; kept in the late topic with reason duplicate, not processed again.",
		}, []string{"device"}),
		buffered: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sailstream_core_buffered_readings",
			Help: "Accepted readings waiting in the reorder buffers for the event-time watermark.",
		}),
		idle: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sailstream_core_idle_partitions",
			Help: "Assigned raw-topic partitions idle longer than the idle timeout (not holding back the watermark).",
		}),
		udfCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sailstream_core_udf_calls_total",
			Help: "Batch calls of the live UDF versions (one per device per poll).",
		}, []string{"udf", "version"}),
		udfFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sailstream_core_udf_failures_total",
			Help: "Batch calls that failed, by UDF and reason (udf_trap, udf_timeout, udf_memory, udf_output, udf_error); live and shadow.",
		}, []string{"udf", "reason"}),
		udfCallSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sailstream_core_udf_call_seconds",
			Help:    "Duration of one batch call of a UDF, by role (live or shadow).",
			Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .1, .5, 2},
		}, []string{"udf", "version", "role"}),
		quarantined: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sailstream_core_udf_quarantined",
			Help: "1 for a UDF version this instance stopped using because it kept failing (until it restarts or another version is deployed).",
		}, []string{"udf", "version"}),
		swaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sailstream_core_udf_swaps_total",
			Help: "Routing tables published (a deploy, promote, rollback, route change or quarantine changed what runs).",
		}),
		swapPause: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sailstream_core_udf_swap_pause_seconds",
			Help:    "How long the processing loop waited to pick up a new routing table at a batch boundary.",
			Buckets: []float64{1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1},
		}),
		shadowOutputs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sailstream_core_shadow_outputs_total",
			Help: "Outputs of shadow UDF runs compared with the live version's, by whether they agree.",
		}, []string{"udf", "agree"}),
		registryBad: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sailstream_core_registry_bad_records_total",
			Help: "Records of the UDF registry topic that could not be applied (skipped).",
		}),
		stateBad: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sailstream_core_state_bad_records_total",
			Help: "Records of the state changelog that could not be decoded (skipped at restore: the device starts from its previous record, or afresh).",
		}),
	}
	for _, c := range []prometheus.Collector{m.in, m.enriched, m.late, m.dlq, m.latency, m.watermark, m.commitErr, m.duplicates, m.buffered, m.idle,
		m.udfCalls, m.udfFailures, m.udfCallSeconds, m.quarantined, m.swaps, m.swapPause, m.shadowOutputs, m.registryBad, m.stateBad} {
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
