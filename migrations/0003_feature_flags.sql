-- Runtime feature flags: one row per flag that was ever set; unset flags use the default
-- defined in code (src/flags.rs). Every replica reads this table, so a change made
-- through the admin API reaches them all within flags.refresh_interval_ms.
CREATE TABLE feature_flags (
    key         TEXT PRIMARY KEY,
    enabled     BIGINT NOT NULL CHECK (enabled IN (0, 1)),
    updated_by  TEXT,
    updated_at  TEXT NOT NULL
);
