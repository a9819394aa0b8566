//! Caches and story state: where data outlives a batch. In-memory and local-file backends
//! live here; this module is the only place that knows how state is encoded on disk.

pub mod codec;
pub mod file;
pub mod memory;
pub mod mirror;
pub mod record;
pub mod redis;
pub mod session;

use serde::{Deserialize, Serialize};

/// Cache hit/miss counters, as published in `news:clustered`'s `cacheStats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that had to be computed.
    pub misses: u64,
    /// `hits / (hits + misses)`, 0 when there were no lookups.
    pub hit_rate: f64,
}

impl CacheStats {
    /// Stats from raw counters.
    pub fn new(hits: u64, misses: u64) -> Self {
        let total = hits + misses;
        let hit_rate = if total == 0 {
            0.0
        } else {
            hits as f64 / total as f64
        };
        CacheStats {
            hits,
            misses,
            hit_rate,
        }
    }
}

/// A cache of encoded embeddings keyed by a 128-bit hash of (embedder fingerprint, text).
/// Values are opaque bytes (see [`crate::embed::Embedding::to_bytes`]); callers validate
/// what they read. Implementations count hits and misses themselves.
pub trait Cache: Send + Sync {
    /// Looks up every key in one go; `None` where absent.
    fn get_many(&self, keys: &[u128]) -> Vec<Option<Vec<u8>>>;
    /// Stores values computed for missed keys.
    fn put_many(&self, items: &[(u128, Vec<u8>)]);
    /// Counters so far.
    fn stats(&self) -> CacheStats;
    /// Sends anything buffered (e.g. counters) at the end of a run.
    fn flush(&self) {}
}
