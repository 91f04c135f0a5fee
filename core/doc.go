// Package core is sailstream's stream processor: it consumes the raw payloads
// the bridge put on telemetry.raw, decodes and validates them, sorts out the
// readings that came too late, computes each device's motion (distance,
// speed, course) from its previous accepted reading and produces the result
// to telemetry.enriched.
//
// Why it is shaped this way:
//
//   - Nothing is silently dropped. A payload that does not decode goes to
//     telemetry.dlq byte-exact with the reason in a header; a reading behind
//     the event-time watermark, or not newer than the device's last accepted
//     reading, goes to telemetry.late byte-exact with the reason. Both are
//     counted, so a dashboard shows what the map does not.
//
//   - Event time, not arrival time, decides what is late. Each partition of
//     telemetry.raw keeps its own watermark (the largest event time seen
//     minus Config.MaxOutOfOrder): the bridge keys records by device, so one
//     device's readings stay on one partition in order, and a partition's
//     watermark is not held back or pushed ahead by unrelated partitions.
//
//   - The per-device computation (Motion) is a pure function of the previous
//     and the current reading, free of Kafka and of the wall clock, because
//     the next step moves it into the default WebAssembly UDF where the host
//     owns the state and the guest gets no clock.
//
//   - Delivery is at-least-once for now: every output of one poll is
//     produced and flushed before the polled offsets are committed, and
//     rebalances are held off while a poll is being processed
//     (kgo.BlockRebalanceOnPoll), so offsets are never committed for a
//     partition this instance no longer owns. Per-device state lives in
//     memory and is dropped with its partition on revocation; the next owner
//     rebuilds it from the records it consumes. Kafka transactions and a
//     state changelog (exactly-once) replace this in a later step.
package core
