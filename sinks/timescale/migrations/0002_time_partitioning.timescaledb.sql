-- TimescaleDB: readings becomes a hypertable in daily chunks. Chunks older
-- than a week are compressed, segmented by device (track queries read one
-- device) and ordered by time. The retention policy is not a migration: the
-- sink sets it on every start from its --retention flag.
CREATE EXTENSION IF NOT EXISTS timescaledb;

SELECT create_hypertable('readings', by_range('event_time', INTERVAL '1 day'), migrate_data => true);

ALTER TABLE readings SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'device_id',
    timescaledb.compress_orderby = 'event_time DESC, seq DESC'
);

SELECT add_compression_policy('readings', compress_after => INTERVAL '7 days');
