-- Plain PostgreSQL: readings arrive roughly in time order, so a BRIN index
-- on event_time is tiny and good enough for time-range scans and retention
-- deletes.
CREATE INDEX readings_event_time_brin ON readings USING brin (event_time);
