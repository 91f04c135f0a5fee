package core

import (
	"testing"

	"github.com/sailstream/sailstream/internal/testenv"
)

// TestIntegrationProcessorKafka runs the kfake scenario against the real
// Apache Kafka broker the test bed started, on topics and a group of its own.
func TestIntegrationProcessorKafka(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	t.Parallel()
	id := testenv.Unique("core-it-")
	runScenario(t, brokers, Topics{
		Raw: id + ".raw", Enriched: id + ".enriched", Late: id + ".late", DLQ: id + ".dlq",
		Shadow: id + ".shadow", Registry: id + ".udf", State: id + ".state",
	}, id)
}
