-- Per device per minute: readings, average and top speed, distance sailed.
-- A plain view here; a continuous aggregate under TimescaleDB (same columns).
-- date_bin, unlike date_trunc, does not depend on the session's time zone.
CREATE VIEW readings_1m AS
SELECT device_id,
       date_bin(INTERVAL '1 minute', event_time, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
       count(*)        AS readings,
       avg(speed_ms)   AS avg_speed_ms,
       max(speed_ms)   AS max_speed_ms,
       avg(speed_kn)   AS avg_speed_kn,
       max(speed_kn)   AS max_speed_kn,
       sum(distance_m) AS distance_m
FROM readings
GROUP BY device_id, bucket;
