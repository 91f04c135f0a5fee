package main

// sinkCmd groups the sinks that keep every reading: enriched readings in
// PostgreSQL/TimescaleDB, raw ones in an archive (Azure Blob or a local
// directory) that `sailstream replay` can republish.
type sinkCmd struct {
	Timescale sinkTimescaleCmd `cmd:"" help:"Write telemetry.enriched into PostgreSQL/TimescaleDB in idempotent batches."`
	Blob      sinkBlobCmd      `cmd:"" help:"Archive telemetry.raw as gzip NDJSON objects in Azure Blob Storage or a local directory."`
}
