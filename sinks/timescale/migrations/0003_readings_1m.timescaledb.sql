-- Per device per minute: readings, average and top speed, distance sailed,
-- as a continuous aggregate. Real-time (materialized_only = false): a query
-- adds the not yet materialized recent minutes from readings. WITH NO DATA
-- lets it be created inside the migration transaction; the policy fills it.
CREATE MATERIALIZED VIEW readings_1m
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT device_id,
       time_bucket(INTERVAL '1 minute', event_time) AS bucket,
       count(*)        AS readings,
       avg(speed_ms)   AS avg_speed_ms,
       max(speed_ms)   AS max_speed_ms,
       avg(speed_kn)   AS avg_speed_kn,
       max(speed_kn)   AS max_speed_kn,
       sum(distance_m) AS distance_m
FROM readings
GROUP BY device_id, bucket
WITH NO DATA;

SELECT add_continuous_aggregate_policy('readings_1m',
    start_offset      => INTERVAL '3 hours',
    end_offset        => INTERVAL '1 minute',
    schedule_interval => INTERVAL '1 minute');
