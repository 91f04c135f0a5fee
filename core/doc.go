// Package core is sailstream's stream processor: it consumes the raw payloads
// the bridge put on telemetry.raw, decodes and validates them, sorts out the
// readings that came too late, runs each device's batch of readings through
// the WebAssembly UDF its route names (by default the embedded speed UDF:
// distance, speed, course) and produces the result to telemetry.enriched.
//
// Why it is shaped this way:
//
//   - Nothing is silently dropped. A payload that does not decode goes to
//     telemetry.dlq byte-exact with the reason in a header; a reading behind
//     the event-time watermark, not newer than the device's last accepted
//     reading, or a redelivered duplicate, goes to telemetry.late byte-exact
//     with the reason; a reading a
//     UDF fails on (trap, timeout, memory, malformed output, guest error)
//     goes to telemetry.dlq byte-exact with reason udf_*, the error (with the
//     guest's stderr tail) and the UDF's name and version. All are counted,
//     so a dashboard shows what the map does not.
//
//   - Event time, not arrival time, decides what is late and in which order
//     readings are processed (docs/streaming.md). Each partition of
//     telemetry.raw keeps its own watermark (the largest event time seen
//     minus Config.MaxOutOfOrder), which decides lateness: the bridge keys
//     records by device, so one device's readings stay on one partition.
//     On-time readings wait in a per-device reorder buffer and are released
//     in event-time order once the operator's watermark (the minimum over
//     the partitions not idle for Config.IdleTimeout) passes them, so motion
//     is computed on ordered positions. Duplicates (same device, seq and
//     event time, as MQTT QoS 1 redelivers) are recognised from a window of
//     each device's recent readings and not processed twice.
//
//   - UDFs come from the registry, not from the core's configuration. Every
//     instance reads the whole compacted registry topic (udf/registry) from
//     the start, without a consumer group, so all instances apply the same
//     deploy, promote or rollback, and a restarted instance starts from what
//     is deployed rather than from the builtin. Until something is deployed
//     every device is routed to the builtin speed UDF (udf/builtin).
//
//   - A swap never stalls or splits a batch. Modules are compiled by a
//     router goroutine (with an on-disk compilation cache) into an
//     immutable routing table published through an atomic pointer; the
//     processing loop loads the pointer once per poll, so every reading of
//     a poll is processed by one table, and picking up a new table costs a
//     pointer load (sailstream_core_udf_swap_pause_seconds measures it). A
//     retired module is closed only once the loop has moved off the table
//     that used it.
//
//   - One UDF call per device per poll: a poll's accepted readings are
//     grouped by device in event order. The host owns the state: each
//     device's state bytes live beside its event-time state in the
//     partition's state (partitionState.deviceUDF; the exactly-once
//     changelog persists them), keyed by UDF name, so a new version of
//     the same UDF continues from the old one's state and a route change to
//     another UDF starts afresh.
//
//   - Hostile or broken code cannot stop the pipeline. A failed batch is
//     re-run reading by reading (udf.Module.Isolate) so only the poison
//     readings are lost to the DLQ. A version that keeps failing
//     (Config.QuarantineAfter in a row, or more than QuarantineRatio of its
//     last QuarantineWindow batches) is quarantined on this instance: its
//     route falls back to the deployment's previous version, else to the
//     builtin.
//
//   - Shadow mode answers "is the new version right?" on live traffic
//     without risk: a deployment's shadow runs on the same device batches
//     with its own state (started from the live state), its outputs are
//     compared with the live ones (same input, time, position, fields
//     within 1e-9 relative) and kept aside as ShadowRecord JSON on
//     telemetry.shadow; it never touches telemetry.enriched.
//
//   - Delivery is exactly-once or at-least-once (Config.Guarantee,
//     docs/streaming.md). Exactly-once: each poll is one Kafka transaction
//     (kgo.GroupTransactSession) holding its outputs, the new state of the
//     devices it changed (the compacted changelog Topics.State, key = device
//     id, same partition number as the raw partition; state.go) and the
//     offsets of every record it consumed. The changelog holds the reorder
//     buffer too, so offsets move past buffered readings; a partition's state
//     is read back from the changelog (read_committed, to its last stable
//     offset) before its first record is processed after an assignment, and
//     after an aborted transaction every partition's state is, so state and
//     offsets always come from the same committed transaction.
//     At-least-once: no transaction, no changelog; every output of one poll
//     is flushed before offsets are committed, never past a reading still
//     buffered (a restart consumes it again), and per-device state lives in
//     memory only, dropped with its partition on revocation. Either way
//     rebalances are held off while a poll is processed
//     (kgo.BlockRebalanceOnPoll), so the callbacks never see half a poll.
package core
