// Package deploy holds the configuration of a user's sailstream stack, next
// to the tests that keep it true to the code:
//
//   - ../compose.yaml and ../Dockerfile: Mosquitto, Kafka (KRaft), the four
//     components from one image, Prometheus;
//   - mosquitto/mosquitto.conf: the broker the devices and the bridge share;
//   - prometheus/prometheus.yml: one scrape job per component.
//
// No Docker engine runs where the tests run, so the tests check what can be
// checked without one: every SAILSTREAM_* variable in compose.yaml is a flag
// of the subcommand that service runs (read from the real binary's --help),
// the scrape targets match the services' metrics ports, the image builds the
// binary the way the Dockerfile does, promtool accepts the Prometheus
// configuration, and the real mosquitto runs mosquitto.conf and keeps a
// persistent session's queued messages (more than the default queue limit)
// across a restart. The package has no non-test code.
package deploy
