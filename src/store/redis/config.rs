//! `[redis]`: where the cache, the story state, the bus and the queues live.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `[redis]`: where the cache, the story state and the bus live. Environment variables
/// (`REDIS_URL`, `REDIS_HOST`, `REDIS_PORT`, `REDIS_PASSWORD`, `REDIS_CACHE_DB`,
/// `REDIS_CACHE_PREFIX`, `REDIS_QUEUE_DB`, `REDIS_CACHE_URL`) override these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// Use Redis for the cache, the story state and publishing (same as `--redis`).
    pub enabled: bool,
    /// Full URL of the main server (`redis://[:password@]host:port[/db]`); when set it wins
    /// over host/port/password.
    pub url: String,
    /// Main server host.
    pub host: String,
    /// Main server port (the isolated instance, not the system Redis on 6379).
    pub port: u16,
    /// ACL user name (env `REDIS_USERNAME`); empty = the URL's user, else `default`.
    pub username: String,
    /// Password (env `REDIS_PASSWORD`). Prefer the environment or `password_file` to this
    /// file and to a password in `url` / `--redis-url`, which other users of the host can
    /// read in the process list.
    pub password: String,
    /// A file holding the password (env `REDIS_PASSWORD_FILE`; one line, read at start),
    /// used when `password` is empty.
    pub password_file: String,
    /// DB of the message bus and the story state.
    pub db: u8,
    /// DB of the cache.
    pub cache_db: u8,
    /// Prefix of every cache key.
    pub cache_prefix: String,
    /// DB of the job queues.
    pub queue_db: u8,
    /// URL of a separate cache server (with `allkeys-lru`), so eviction there cannot touch
    /// queues or state; empty = the cache DB on the main server.
    pub cache_url: String,
    /// Time to live of every cache entry, in seconds (7 days).
    pub cache_ttl_secs: u64,
    /// Timeout of every Redis call and connection attempt, in milliseconds.
    pub timeout_ms: u64,
    /// How long operations retry a lost connection before giving up, in milliseconds.
    pub retry_ms: u64,
    /// Approximate length cap of each event stream.
    pub stream_maxlen: u64,
    /// How long a run waits for another run's state lock, in seconds.
    pub lock_wait_secs: u64,
    /// Lease of the state lock, in milliseconds: a run that stalls longer (paused, swapped
    /// out) loses the lock, and its save is refused. A heartbeat renews it every third.
    pub lock_lease_ms: u64,
    /// Events that could not be published are kept here and sent by the next run (a
    /// relative path is taken in `state_dir`).
    pub spool_path: String,
    /// A local copy of the story state, used when Redis is down at the start of a run (a
    /// relative path is taken in `state_dir`).
    pub state_mirror_path: String,
    /// Directory of the files kept while Redis is down (`spool_path`, `state_mirror_path`
    /// and the mirror's side files) when their paths are relative; env
    /// `PERPS_NEWS_STATE_DIR`. Empty: systemd's `$STATE_DIRECTORY`, else
    /// `$XDG_STATE_HOME/perps-news`, else `~/.local/state/perps-news` (never the current
    /// directory, which is wherever the command happened to be started). Created when a
    /// file is first written there.
    pub state_dir: String,
}

impl RedisConfig {
    /// The directory relative fallback files go to (see [`RedisConfig::state_dir`]).
    pub(crate) fn resolved_state_dir(&self, var: &impl Fn(&str) -> Option<String>) -> PathBuf {
        let set = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        if !self.state_dir.is_empty() {
            return PathBuf::from(&self.state_dir);
        }
        if let Some(d) = set("STATE_DIRECTORY") {
            // systemd lists one directory per StateDirectory= entry, colon-separated.
            return PathBuf::from(d.split(':').next().unwrap_or(&d));
        }
        if let Some(d) = set("XDG_STATE_HOME") {
            return Path::new(&d).join("perps-news");
        }
        if let Some(h) = set("HOME") {
            return Path::new(&h).join(".local/state/perps-news");
        }
        PathBuf::from(".")
    }

    /// Takes `--redis-url`, warning when it carries a password: command lines are visible
    /// to every user of the host (`ps`, `/proc/*/cmdline`).
    pub fn set_url_from_command_line(&mut self, url: Option<&str>) {
        let Some(url) = url else {
            return;
        };
        let has_password = url
            .split_once("://")
            .and_then(|(_, rest)| rest.split('/').next())
            .and_then(|authority| authority.rsplit_once('@'))
            .is_some_and(|(userinfo, _)| userinfo.contains(':'));
        if has_password {
            tracing::warn!(
                "The password in --redis-url is visible to every user of this host in the process list; use REDIS_PASSWORD or REDIS_PASSWORD_FILE (or [redis] password_file) instead."
            );
        }
        self.url = url.to_string();
    }

    /// The password to authenticate with: `password`, else the contents of `password_file`
    /// (its first line), else none.
    ///
    /// # Errors
    /// [`Error::Config`] naming the file when it cannot be read (never its contents).
    pub fn resolved_password(&self) -> Result<String> {
        if !self.password.is_empty() || self.password_file.is_empty() {
            return Ok(self.password.clone());
        }
        let text = std::fs::read_to_string(&self.password_file).map_err(|e| Error::Config {
            origin: format!("redis.password_file {}", self.password_file),
            message: format!("cannot read the Redis password: {e}"),
        })?;
        Ok(text.lines().next().unwrap_or("").trim_end().to_string())
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            enabled: false,
            url: String::new(),
            host: "127.0.0.1".into(),
            port: 6380,
            username: String::new(),
            password: String::new(),
            password_file: String::new(),
            db: 0,
            cache_db: 1,
            cache_prefix: "perps:cache:".into(),
            queue_db: 2,
            cache_url: String::new(),
            cache_ttl_secs: 7 * 24 * 3600,
            timeout_ms: 2000,
            retry_ms: 10_000,
            stream_maxlen: 10_000,
            lock_wait_secs: 30,
            lock_lease_ms: 30_000,
            spool_path: "perps-news.spool.jsonl".into(),
            state_mirror_path: "perps-news.state.json".into(),
            state_dir: String::new(),
        }
    }
}
