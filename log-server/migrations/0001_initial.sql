-- Verdict PostgreSQL schema, version 1 (spec/storage-postgres.md §2).
-- Applied by verdict-server at start, in one transaction, under an advisory lock; recorded in
-- verdict_schema_version. Never edit an applied migration: add the next numbered file.

-- The log state: one row. staged_size counts the entries durably staged; published is the
-- encoded LogState (version byte, size, right edge, signed checkpoint), NULL before the first
-- checkpoint.
CREATE TABLE verdict_log (
    id          smallint PRIMARY KEY CHECK (id = 1),
    staged_size bigint   NOT NULL CHECK (staged_size >= 0),
    published   bytea
);
INSERT INTO verdict_log (id, staged_size, published) VALUES (1, 0, NULL);

-- Staged entries by index (pruned once their entry bundle is full and published).
CREATE TABLE verdict_staged (
    idx   bigint PRIMARY KEY CHECK (idx >= 0),
    entry bytea  NOT NULL
);

-- Private records (raw action and salt) by index: never served by a tile or entry read.
CREATE TABLE verdict_private (
    idx    bigint PRIMARY KEY CHECK (idx >= 0),
    record bytea  NOT NULL
);

-- Hash tiles (level 0..7) and entry bundles (level -1), each as its widest version so far.
CREATE TABLE verdict_tiles (
    level smallint NOT NULL CHECK (level BETWEEN -1 AND 7),
    idx   bigint   NOT NULL CHECK (idx >= 0),
    width integer  NOT NULL CHECK (width BETWEEN 1 AND 256),
    bytes bytea    NOT NULL,
    PRIMARY KEY (level, idx)
);

-- Policy-registry records (service::policies), read back sorted by key (bytea sorts bytewise).
CREATE TABLE verdict_policies (
    key   bytea PRIMARY KEY,
    value bytea NOT NULL
);

-- Escalation records (service::escalations), written by compare-and-swap.
CREATE TABLE verdict_escalations (
    id    bytea PRIMARY KEY,
    value bytea NOT NULL
);
