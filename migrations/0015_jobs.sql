-- Background jobs (src/jobs): durable rows claimed by every replica without a leader.
-- Portable: TEXT ids and timestamps (fixed-width RFC 3339, so text order is time order),
-- JSON as TEXT, BIGINT counters.
CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    params           TEXT NOT NULL,
    progress_done    BIGINT NOT NULL DEFAULT 0,
    progress_total   BIGINT,
    attempts         BIGINT NOT NULL DEFAULT 0,
    max_attempts     BIGINT NOT NULL,
    -- Not claimed before this time (retry backoff).
    run_after        TEXT NOT NULL,
    lease_owner      TEXT,
    lease_expires_at TEXT,
    heartbeat_at     TEXT,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    checkpoint       TEXT,
    result           TEXT,
    result_key       TEXT,
    error            TEXT,
    idempotency_key  TEXT,
    created_by       TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    started_at       TEXT,
    finished_at      TEXT
);
-- One job per creator and client-supplied key (NULL keys never clash).
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (created_by, idempotency_key);
CREATE INDEX jobs_claimable ON jobs (state, run_after);
CREATE INDEX jobs_by_creator ON jobs (created_by, created_at);
CREATE INDEX jobs_by_created ON jobs (created_at, id);

-- Per-row problems a job found (imports: line, field, message), written in the same
-- transaction as the batch they belong to, so a re-run batch neither loses nor repeats one.
CREATE TABLE job_errors (
    job_id  TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    line    BIGINT NOT NULL,
    seq     BIGINT NOT NULL,
    field   TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (job_id, line, seq)
);
