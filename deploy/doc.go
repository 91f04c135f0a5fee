// Package deploy holds the configuration of a user's sailstream stack, next
// to the tests that keep it true to the code:
//
//   - ../compose.yaml and ../Dockerfile: Mosquitto, Kafka (KRaft),
//     TimescaleDB, Azurite, the components from one image (edge, bridge,
//     core, web, sink timescale, sink blob), Prometheus;
//   - mosquitto/mosquitto.conf: the broker the devices and the bridge share;
//   - prometheus/prometheus.yml: one scrape job per component.
//
// No Docker engine runs where the tests run, so the tests check what can be
// checked without one: every SAILSTREAM_* variable in compose.yaml is a flag
// of the subcommand that service runs (read from the real binary's --help,
// two-word subcommands such as `sink timescale` included) and its required
// flags are set, the scrape targets match the services' metrics ports, the
// image builds the binary the way the Dockerfile does, promtool accepts the
// Prometheus configuration, and the real mosquitto runs mosquitto.conf and
// keeps a persistent session's queued messages (more than the default queue
// limit) across a restart. For the sinks: the database URLs match what the
// timescaledb image creates, the Azurite tag and options match the npm
// Azurite the tests run, the healthcheck commands pass against the real
// services and fail without them, and sink-timescale, sink-blob and web run
// as the real binary with their compose environment (compose host names
// swapped for the test bed's services) and keep every reading. The package
// has no non-test code.
package deploy
