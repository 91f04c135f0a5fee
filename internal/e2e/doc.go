// Package e2e holds the end-to-end tests of the pipeline against the real
// services of the test bed: a fleet run published through Mosquitto, the
// bridge, Apache Kafka, the core and the web server's WebSocket, checked
// reading by reading; and the same run kept by the sinks (PostgreSQL through
// the Timescale sink, an Azurite container through the archiver), served
// back by the track API and replayed from the archive through a second core
// group. It has no non-test code.
package e2e
