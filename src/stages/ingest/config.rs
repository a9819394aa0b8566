//! `[ingest]`: reading, validating and batching.

use serde::{Deserialize, Serialize};

/// `[ingest]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Articles per batch flowing between stages (env `CLUSTER_BATCH_SIZE`). Results do not
    /// depend on it; it trades latency per batch against per-batch overhead.
    pub batch_size: usize,
    /// Records larger than this many bytes are rejected as oversized.
    pub max_article_bytes: usize,
    /// Let big runs use bigger batches (an eighth of the run, up to 4,096): small batches
    /// cost per-batch overhead and small matrix products. `batch_size` stays the minimum;
    /// `run --batch-size` turns this off. Results do not depend on it.
    pub auto_batch: bool,
    /// How far past the run's wall clock a publication time may be (seconds). A later time
    /// cannot be true (a wrong year, a wrong time zone, a placeholder date): the article is
    /// clustered at its ingest time instead, and counted and listed as `futureDated`. One
    /// such record can then never move the state's clock past the present.
    pub max_future_secs: i64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            batch_size: 20,
            max_article_bytes: 1 << 20,
            auto_batch: true,
            max_future_secs: 3600,
        }
    }
}
