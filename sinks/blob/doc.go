// Package blob archives the raw topic (telemetry.raw) to Azure Blob Storage
// or a local directory, and reads the archive back to replay it into Kafka.
//
// Why: telemetry.raw has a retention limit, and the raw payloads are the
// one thing the pipeline cannot recompute. With the archive, a new UDF
// version can be run over last month's tracks, a bug in the core can be
// repaired by reprocessing, and a lost cluster can be refilled.
//
// # Object layout
//
// The Archiver (a Kafka consumer group, offsets committed by hand) batches
// each partition's records and writes every batch as one object:
//
//	raw/YYYY/MM/DD/HH/<topic>-<partition>-<firstOffset>-<lastOffset>.ndjson.gz
//
// HH is the UTC hour of the batch's first record's Kafka timestamp, and a
// batch never holds records of two hours (a record of another hour starts a
// new batch), so a reader looking for a time range lists only the hour
// folders it overlaps. A batch is cut at BatchSize records, at BatchBytes,
// after BatchTimeout, or at an hour change.
//
// # Object format
//
// gzip (no file name, no modification time in the header, so the same
// batch always gives the same bytes) of newline-delimited JSON, one line
// per Kafka record in offset order:
//
//	{"topic":"telemetry.raw","partition":3,"offset":1041,
//	 "timestamp":"2026-11-27T02:59:58.123Z","key":"boat-1",
//	 "headers":[{"key":"mqtt_topic","value":"sailstream/devices/boat-1/telemetry"},...],
//	 "value":"{\"device\":\"boat-1\",...}"}
//
// timestamp is the Kafka record timestamp, RFC 3339 with nanoseconds, UTC.
// key, value and each header value are the bytes exactly: a JSON string
// when they are valid UTF-8 (encoding/json escapes, and decoding gives the
// same bytes back), otherwise key_base64, value_base64 or a header's
// value_base64 with standard base64. A missing key or value (Kafka null)
// has neither field; headers keep their order. DecodeObject reads it.
//
// # Guarantees
//
// Offsets are committed only after the object holding them is written;
// failed writes are retried with capped exponential backoff until they
// succeed or the archiver stops (never skipped). Every archived offset is in
// exactly one object, even across crashes: object names are deterministic,
// a partition's objects are written one after the other in offset order,
// and after a restart or rebalance the first batch of a partition starts
// with a look-up of an object that begins at the same offset (written
// before the crash, its commit lost). If one exists the archiver skips the
// records it covers and carries on after it instead of writing an
// overlapping object. The Reader also drops an offset it has already read,
// so even an archive written by two archivers that both believed they owned
// a partition replays each record once.
//
// Known limit: the archive is keyed by topic name and offset. A topic that
// is deleted and recreated restarts its offsets at 0, so archive it into a
// new container or directory.
//
// # Replay
//
// Replay (`sailstream replay`) lists the objects of the hour folders in a
// time range, reads each partition in offset order (partitions merged by
// timestamp), filters by Kafka timestamp and device glob on the key, and
// republishes value, key and headers unchanged plus a replayed_from header
// ("<topic>/<partition>/<offset>") to a target topic with an idempotent
// producer that waits for all in-sync replicas. To backfill or compare UDF
// versions without touching live results, replay into a separate raw topic
// and run a second core group on it with its own enriched and state topics
// (`sailstream core --group backfill --raw-topic telemetry.replay
// --enriched-topic telemetry.enriched.backfill --state-topic core.state.backfill`).
package blob
