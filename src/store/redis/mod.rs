//! Everything that speaks the Redis protocol: connection pools, the embedding cache (DB 1 or
//! its own server), the story state and the per-story records consumers read (DB 0).
//!
//! The sync redis API has no self-healing connection, so each server gets an r2d2 pool that
//! tests connections on checkout; every connection has connect, read and write timeouts, and
//! every operation retries a lost connection for `retry_ms` before giving up. Errors name
//! `host:port/db` in one line.
//!
//! One file per concern: [`pool`] (connections, timeouts, retries), [`cache`] (the embedding
//! and LLM-reply cache), [`lock`] (the fenced state lock), [`state`] (load and save of the
//! story state and the consumer records), [`stats`] (the counters `stats` and `serve` show).
//!
//! Key layout:
//! - cache (DB `cache_db`, or the `cache_url` server): `<prefix>emb:<model>:<hash>` → bytes,
//!   every key with a TTL; `<prefix>stats:hits|misses` counters (also with a TTL).
//! - main (DB `db`): `perps:state` (the story state, JSON), `perps:state:version`,
//!   `perps:state:lock`, `perps:story:<id>` (one JSON record per story, no TTL),
//!   `perps:stories` (sorted set of story ids by last article time), `perps:runs:last`.

pub mod cache;
mod config;
pub mod lock;
pub mod pool;
pub mod state;
pub mod stats;

pub use cache::RedisCache;
pub use config::RedisConfig;
pub use lock::StateLock;
pub use pool::{Connections, Pool};
pub use state::{catch_up, load_state, save_state, state_version};
pub use stats::stats_json;

/// Key of the story state (its header: everything but the active stories, which are in
/// [`STATE_STORIES_KEY`]).
pub const STATE_KEY: &str = "perps:state";
/// Hash of the active stories of the state, one field per story id.
pub const STATE_STORIES_KEY: &str = "perps:state:stories";
/// The state's document frequencies as one binary value (the base; see `state.rs`).
pub const STATE_TERMS_KEY: &str = "perps:state:terms";
/// List of the changes to [`STATE_TERMS_KEY`] since it was written, one binary value per save.
pub const STATE_TERMS_LOG_KEY: &str = "perps:state:terms:log";
/// List of the state's last saves: `<version>\t<changed story ids>\t<removed ids>`, so a
/// long-lived process catches up by reading only those stories (see `state::catch_up`).
pub const STATE_CHANGES_KEY: &str = "perps:state:changes";
/// Key of the state's version counter (the fencing token of writes).
pub const STATE_VERSION_KEY: &str = "perps:state:version";
/// Key of the run lock.
pub const STATE_LOCK_KEY: &str = "perps:state:lock";
/// Prefix of per-story records.
pub const STORY_PREFIX: &str = "perps:story:";
/// Sorted set of story ids by last article time.
pub const STORIES_KEY: &str = "perps:stories";
/// The last run's summary.
pub const LAST_RUN_KEY: &str = "perps:runs:last";

/// The BullMQ queues perps-news workers serve; each queue's name is also its job kind. The
/// one list behind the worker's default `--queues`, `enqueue`'s check and the queue depths
/// of `stats`.
pub const QUEUES: &[&str] = &["clustering", "categorization", "labeling"];

/// BullMQ's default key prefix (`--prefix`).
pub const DEFAULT_QUEUE_PREFIX: &str = "bull";

/// A BullMQ key of `queue` under `prefix`: `<prefix>:<queue>:<part>` (`wait`, `active`, ...).
pub fn queue_key(prefix: &str, queue: &str, part: &str) -> String {
    format!("{prefix}:{queue}:{part}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_keys_honour_the_prefix() {
        assert_eq!(
            queue_key("bull", "clustering", "wait"),
            "bull:clustering:wait"
        );
        assert_eq!(
            queue_key("desk-a", "labeling", "active"),
            "desk-a:labeling:active"
        );
        assert!(QUEUES.contains(&"clustering"));
    }
}
