-- Verdict PostgreSQL schema, version 2 (spec/storage-postgres.md §2, §5.4, §5.6).
-- Never edit an applied migration: add the next numbered file.

-- last_time_ms: the largest entry time (receipt or policy statement time_ms, ms since the epoch)
-- staged so far. stage_at_end refuses, under the log-row lock, a batch whose first time is older,
-- so entry times never decrease in log order across frontends (§5.6). 0 on a database migrated
-- from version 1: the first timed batch sets it (each frontend's clock already starts at the
-- time of the last logged entry).
--
-- locked: the shared checkpoint lock, the last checkpoint note an integrator signed, written
-- before it is published, by compare-and-swap, only to a checkpoint of equal or larger size
-- (§5.4). NULL before the first checkpoint signed under version 2.
ALTER TABLE verdict_log
    ADD COLUMN last_time_ms bigint NOT NULL DEFAULT 0 CHECK (last_time_ms >= 0),
    ADD COLUMN locked       bytea;
