-- Verdict PostgreSQL schema, version 3 (spec/storage-postgres.md §5.4): the request-id window
-- shared by every frontend. Never edit an applied migration: add the next numbered file.

-- Insertion order of request ids (the window keeps the newest `request_id_window` of them).
CREATE SEQUENCE verdict_request_ids_order;

-- One row per request id in the window. `key` is SHA-256("verdict/request-id/v1\n" ‖ id), never
-- the id text; `fingerprint` is SHA-256 of the policy commitment and the stored action (token
-- values reduced to their presence). `idx` and `salt` are the entry logged for the id (NULL while
-- the request is in flight); `token` names the reservation of the frontend that holds an
-- in-flight id (its release deletes only its own), and `reserved_at` (the database's clock)
-- lets another frontend take over an in-flight id abandoned by a crashed one after a lease.
CREATE TABLE verdict_request_ids (
    key         bytea       PRIMARY KEY CHECK (length(key) = 32),
    fingerprint bytea       NOT NULL CHECK (length(fingerprint) = 32),
    token       bytea       NOT NULL,
    seq         bigint      NOT NULL DEFAULT nextval('verdict_request_ids_order'),
    reserved_at timestamptz NOT NULL DEFAULT now(),
    idx         bigint      CHECK (idx >= 0),
    salt        bytea       CHECK (length(salt) = 32),
    CHECK ((idx IS NULL) = (salt IS NULL))
);
CREATE INDEX verdict_request_ids_seq ON verdict_request_ids (seq);
