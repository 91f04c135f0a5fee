// Package e2e holds the end-to-end tests of the pipeline against the real
// services of the test bed: a fleet run published through Mosquitto, the
// bridge, Apache Kafka, the core and the web server's WebSocket, checked
// reading by reading. It has no non-test code.
package e2e
