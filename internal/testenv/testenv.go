// Package testenv gives tests the real services the test bed started:
// Mosquitto, an Apache Kafka broker in KRaft mode, PostgreSQL and Azurite.
//
// `make test` runs the test bed (internal/testenv/testbed), which starts
// each service once per run on a free 127.0.0.1 port, exports where it is in
// the SAILSTREAM_TEST_* environment variables below, runs `go test`, and stops
// the services. A test asks for a service with MQTTURL(t) or KafkaBrokers(t):
// when the variable is unset the test is skipped (so `make test-unit` and a
// bare `go test ./...` stay fast), unless SAILSTREAM_TEST_REQUIRE_SERVICES=1,
// which the test bed sets so that a missing service fails the run instead of
// silently skipping it.
//
// The same starters the test bed uses are exported for a test that needs a
// service of its own, to kill and restart it: NewMosquitto(t, opts) and
// NewKafka(t, opts), NewPostgres and NewAzurite (or StartMosquitto,
// StartKafka, ... outside a test) return a handle with Addr, Kill, Restart
// and Stop. Mosquitto and PostgreSQL are the Debian packages; Kafka runs
// from its Maven Central jars (internal/testenv/kafka/pom.xml), which
// scripts/install-deps.sh puts in KafkaHome(), outside the work tree;
// Azurite is the npm package pinned in internal/testenv/azurite.
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// Environment variables set by the test bed.
const (
	EnvMQTT    = "SAILSTREAM_TEST_MQTT"             // tcp://127.0.0.1:PORT of Mosquitto
	EnvKafka   = "SAILSTREAM_TEST_KAFKA"            // comma-separated seed brokers
	EnvRequire = "SAILSTREAM_TEST_REQUIRE_SERVICES" // "1": a missing service fails the test
)

func lookup(t testing.TB, name, what string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("%s is required but %s is not set: run the tests through `make test`", what, name)
		}
		t.Skipf("%s not set: %s runs only under `make test` (the test bed starts it)", name, what)
	}
	return v
}

// MQTTURL returns the URL of the test bed's Mosquitto broker.
func MQTTURL(t testing.TB) string {
	t.Helper()
	return lookup(t, EnvMQTT, "Mosquitto")
}

// KafkaBrokers returns the seed brokers of the test bed's Kafka cluster.
func KafkaBrokers(t testing.TB) []string {
	t.Helper()
	return strings.Split(lookup(t, EnvKafka, "Apache Kafka"), ",")
}

// Unique returns prefix followed by a random suffix, for topic names, client
// ids and MQTT topic roots that must not collide between tests running in
// parallel against the same broker.
func Unique(prefix string) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return prefix + hex.EncodeToString(b[:])
}
