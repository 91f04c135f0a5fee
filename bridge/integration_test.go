package bridge

import (
	"testing"

	"github.com/sailstream/sailstream/internal/testenv"
)

// Integration tests against the test bed's real Mosquitto and Apache Kafka
// (`make test`); skipped when the test bed is not running.

func TestIntegrationForwarding(t *testing.T) {
	t.Parallel()
	testForwarding(t, testenv.MQTTURL(t), testenv.KafkaBrokers(t))
}

func TestIntegrationRedeliveryAfterRestart(t *testing.T) {
	t.Parallel()
	testRedelivery(t, testenv.MQTTURL(t), testenv.KafkaBrokers(t), true)
}

func TestIntegrationBurst(t *testing.T) {
	t.Parallel()
	testBurst(t, testenv.MQTTURL(t), testenv.KafkaBrokers(t), 5000)
}
