//! Settings of the background job runner (`src/jobs`) and of imports over the API.

use serde::{Deserialize, Serialize};

/// The job runner of each replica (`jobs.*`, docs/JOBS.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    /// Jobs this replica runs at once (0: it runs none, e.g. an API-only replica).
    pub workers: usize,
    /// Seconds a claimed job stays leased without a heartbeat; after that another replica
    /// takes it over from its last checkpoint.
    pub lease_secs: u64,
    /// Seconds between heartbeats of a running job (renews the lease; less than `lease_secs`).
    pub heartbeat_secs: u64,
    /// How often an idle runner looks for claimable jobs, in milliseconds.
    pub poll_interval_ms: u64,
    /// Runs of a job (first run, retries and takeovers) before it fails for good.
    pub max_attempts: u32,
    /// Delay before the first retry in seconds; doubled per further attempt (capped at 1 h).
    pub backoff_base_secs: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            workers: 2,
            lease_secs: 30,
            heartbeat_secs: 10,
            poll_interval_ms: 1_000,
            max_attempts: 5,
            backoff_base_secs: 5,
        }
    }
}

impl JobsConfig {
    /// Errors (naming the key) when the heartbeat would not renew the lease in time.
    pub fn check(&self) -> Result<(), String> {
        if self.lease_secs == 0 || self.heartbeat_secs == 0 || self.heartbeat_secs >= self.lease_secs {
            return Err("jobs.heartbeat_secs must be at least 1 and less than jobs.lease_secs".into());
        }
        if self.max_attempts == 0 {
            return Err("jobs.max_attempts must be at least 1".into());
        }
        Ok(())
    }
}

/// Imports uploaded over the API (`imports.*`, docs/IMPORTS.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportsConfig {
    /// Largest accepted upload in bytes, enforced while streaming (413 past it).
    pub max_upload_bytes: u64,
    /// Rows imported per transaction (and per checkpoint), 1 to 10,000.
    pub batch_rows: usize,
}

impl Default for ImportsConfig {
    fn default() -> Self {
        Self { max_upload_bytes: 512 * 1024 * 1024, batch_rows: 1_000 }
    }
}
