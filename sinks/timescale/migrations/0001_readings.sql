-- One row per enriched reading. The natural key (device, event time, the
-- device's own sequence number) is what makes a redelivered batch write
-- nothing twice: the sink inserts with ON CONFLICT DO NOTHING on it. It also
-- serves the track query (one device, a time range, in time order).
CREATE TABLE readings (
    device_id       text             NOT NULL,
    seq             bigint           NOT NULL,
    event_time      timestamptz      NOT NULL,
    lat             double precision NOT NULL,
    lon             double precision NOT NULL,
    distance_m      double precision NOT NULL DEFAULT 0,
    speed_ms        double precision NOT NULL DEFAULT 0,
    speed_kn        double precision NOT NULL DEFAULT 0,
    course_deg      double precision NOT NULL DEFAULT 0,
    received_at     timestamptz,
    processed_at    timestamptz,
    latency_ms      double precision,
    udf             text             NOT NULL DEFAULT '',
    udf_version     text             NOT NULL DEFAULT '',
    -- the reading's sensor fields plus any a UDF added, {"name": number}
    fields          jsonb,
    -- where the row came from in telemetry.enriched (first delivery)
    kafka_partition integer,
    kafka_offset    bigint,
    inserted_at     timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, event_time, seq)
);
