//! Everything that speaks the Redis protocol: connection pools, the embedding cache (DB 1 or
//! its own server), the story state and the per-story records consumers read (DB 0).
//!
//! The sync redis API has no self-healing connection, so each server gets an r2d2 pool that
//! tests connections on checkout; every connection has connect, read and write timeouts, and
//! every operation retries a lost connection for `retry_ms` before giving up. Errors name
//! `host:port/db` in one line.
//!
//! Key layout:
//! - cache (DB `cache_db`, or the `cache_url` server): `<prefix>emb:<model>:<hash>` → bytes,
//!   every key with a TTL; `<prefix>stats:hits|misses` counters (also with a TTL).
//! - main (DB `db`): `perps:state` (the story state, JSON), `perps:state:version`,
//!   `perps:state:lock`, `perps:story:<id>` (one JSON record per story, no TTL),
//!   `perps:stories` (sorted set of story ids by last article time), `perps:runs:last`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::{ConnectionLike, IntoConnectionInfo};
use xxhash_rust::xxh3::xxh3_64;

use super::{Cache, CacheStats};
use crate::config::RedisConfig;
use crate::error::{Error, Result};

/// Key of the story state.
pub const STATE_KEY: &str = "perps:state";
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

/// A pool of connections to one Redis server and DB.
#[derive(Clone)]
pub struct Pool {
    pool: r2d2::Pool<Manager>,
    client: redis::Client,
    auth_failed: std::sync::Arc<AtomicBool>,
    /// Set once any connection to the server succeeded: before that, a refused connection
    /// means nothing listens there (a configuration error, reported at once); after it, the
    /// server went away and comes back (a restart, retried for `retry_ms`).
    reached: std::sync::Arc<AtomicBool>,
    round_trips: std::sync::Arc<AtomicU64>,
    /// `host:port/db`, for messages.
    pub name: String,
    retry: Duration,
    timeout: Duration,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("name", &self.name).finish()
    }
}

/// r2d2 manager that puts a timeout on connecting, reading and writing.
struct Manager {
    client: redis::Client,
    timeout: Duration,
    /// Set when the server refused our credentials (r2d2 only hands back a message).
    auth_failed: std::sync::Arc<AtomicBool>,
    /// Set at the first successful connection (see [`Pool`]).
    reached: std::sync::Arc<AtomicBool>,
}

impl r2d2::ManageConnection for Manager {
    type Connection = redis::Connection;
    type Error = redis::RedisError;

    fn connect(&self) -> std::result::Result<redis::Connection, redis::RedisError> {
        let conn = self
            .client
            .get_connection_with_timeout(self.timeout)
            .inspect_err(|e| {
                if auth_error(e) {
                    self.auth_failed.store(true, Ordering::Relaxed);
                }
            })?;
        conn.set_read_timeout(Some(self.timeout))?;
        conn.set_write_timeout(Some(self.timeout))?;
        self.reached.store(true, Ordering::Relaxed);
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut redis::Connection) -> std::result::Result<(), redis::RedisError> {
        // A server that needs a password lets an unauthenticated client connect and
        // refuses its first command.
        let r = redis::cmd("PING").query::<String>(conn).map(|_| ());
        // The latest answer decides: credentials fixed at run time clear it again.
        self.auth_failed
            .store(r.as_ref().is_err_and(auth_error), Ordering::Relaxed);
        r
    }

    fn has_broken(&self, conn: &mut redis::Connection) -> bool {
        !conn.is_open()
    }
}

/// Whether an error means "the connection is gone; a new one may work".
fn transient(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.kind(),
            redis::ErrorKind::Server(redis::ServerErrorKind::BusyLoading)
        )
}

/// Whether the server refused the credentials (wrong password or user, or none given to a
/// server that needs one): a configuration error, not an outage.
fn auth_error(e: &redis::RedisError) -> bool {
    if e.kind() == redis::ErrorKind::AuthenticationFailed {
        return true;
    }
    let text = e.to_string();
    [
        "NOAUTH",
        "WRONGPASS",
        "Authentication required",
        "invalid username-password",
    ]
    .iter()
    .any(|m| text.contains(m))
}

/// Longest error text kept from a server reply: a failed pipeline lists every command.
const MAX_ERROR_CHARS: usize = 400;

/// `message`, cut to [`MAX_ERROR_CHARS`] with a note of what was left out.
fn brief(message: String) -> String {
    if message.len() <= MAX_ERROR_CHARS {
        return message;
    }
    let mut end = MAX_ERROR_CHARS;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} more bytes)", &message[..end], message.len() - end)
}

impl Pool {
    /// A pool for `url` with `db` (overriding the URL's own DB), `username` and `password`
    /// (each when not empty, overriding the URL's). Does not connect yet.
    ///
    /// # Errors
    /// [`Error::Config`] for a URL that does not parse.
    pub fn new(
        url: &str,
        db: u8,
        username: &str,
        password: &str,
        cfg: &RedisConfig,
    ) -> Result<Self> {
        let bad = |m: String| Error::Config {
            origin: "redis".into(),
            message: m,
        };
        let info = url
            .into_connection_info()
            .map_err(|e| bad(format!("bad Redis URL: {e}")))?;
        let mut settings = info.redis_settings().clone().set_db(i64::from(db));
        if !username.is_empty() {
            settings = settings.set_username(username);
        }
        if !password.is_empty() {
            settings = settings.set_password(password);
        }
        let name = format!("{}/{db}", info.addr());
        let info = info.set_redis_settings(settings);
        let client = redis::Client::open(info).map_err(|e| bad(format!("{name}: {e}")))?;
        let timeout = Duration::from_millis(cfg.timeout_ms.max(1));
        let auth_failed = std::sync::Arc::new(AtomicBool::new(false));
        let reached = std::sync::Arc::new(AtomicBool::new(false));
        let pool = r2d2::Pool::builder()
            .max_size(8)
            .min_idle(Some(0))
            .test_on_check_out(true)
            .connection_timeout(timeout)
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(Manager {
                client: client.clone(),
                timeout,
                auth_failed: auth_failed.clone(),
                reached: reached.clone(),
            });
        Ok(Pool {
            pool,
            client,
            auth_failed,
            reached,
            round_trips: std::sync::Arc::new(AtomicU64::new(0)),
            name,
            retry: Duration::from_millis(cfg.retry_ms),
            timeout,
        })
    }

    /// Runs `f` on a pooled connection, retrying transient failures (refused, dropped,
    /// timed out, loading) until `retry_ms` has passed.
    ///
    /// # Errors
    /// [`Error::Redis`] naming the server when it still fails; [`Error::Config`] when the
    /// server refuses the credentials (retrying cannot help).
    pub fn run<T>(
        &self,
        what: &str,
        mut f: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T> {
        self.first_contact()?;
        let start = Instant::now();
        let mut wait = Duration::from_millis(50);
        loop {
            let attempt = match self.pool.get() {
                Ok(mut conn) => match f(self.count_trip(&mut conn)) {
                    Ok(v) => return Ok(v),
                    Err(e) if auth_error(&e) => return Err(self.auth_refused()),
                    Err(e) => {
                        let retry = transient(&e);
                        (retry, e.to_string())
                    }
                },
                Err(_) if self.auth_failed.load(Ordering::Relaxed) => {
                    return Err(self.auth_refused());
                }
                Err(e) => (true, format!("cannot connect: {e}")),
            };
            let (retry, message) = attempt;
            if !retry || start.elapsed() + wait > self.retry {
                return Err(Error::Redis {
                    server: self.name.clone(),
                    message: brief(format!("{what}: {message}")),
                });
            }
            tracing::debug!(server = %self.name, what, error = %message, "Redis call failed; retrying.");
            std::thread::sleep(wait);
            wait = (wait * 2).min(Duration::from_millis(1000));
        }
    }

    /// Before the first successful connection: one direct attempt, so that a server nobody
    /// runs is reported at once with what to do, instead of after the pool's timeout and
    /// the retry window (10 s and more for a mistyped port).
    fn first_contact(&self) -> Result<()> {
        if self.reached.load(Ordering::Relaxed) {
            return Ok(());
        }
        match self.client.get_connection_with_timeout(self.timeout) {
            Ok(_) => {
                self.reached.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(e) if e.is_connection_refusal() => Err(Error::Redis {
                server: self.name.clone(),
                message: format!(
                    "connection refused: no Redis server listens there. Start one, or point \
                     perps-news at yours with --redis-url URL (or REDIS_URL, or the \
                     pipeline's [redis] section; the default is 127.0.0.1:6380); `run` and \
                     `stories` can use a local state file instead with --state FILE ({e})"
                ),
            }),
            // Anything else (a timeout, a loading server, refused credentials) is for the
            // pool's own handling and retries.
            Err(_) => Ok(()),
        }
    }

    fn auth_refused(&self) -> Error {
        Error::Config {
            origin: format!("redis {}", self.name),
            message: "the server refused the credentials (wrong or missing password or user); \
                      set REDIS_USERNAME and REDIS_PASSWORD (or REDIS_PASSWORD_FILE) to the \
                      application user's credentials"
                .into(),
        }
    }

    /// Whether the server lets `user` in with `password` (one connection, no retries): the
    /// doctor's check that a template password was replaced.
    pub fn accepts(&self, user: &str, password: &str) -> bool {
        let info = self.client.get_connection_info().clone();
        let settings = info
            .redis_settings()
            .clone()
            .set_username(user)
            .set_password(password);
        let Ok(client) = redis::Client::open(info.set_redis_settings(settings)) else {
            return false;
        };
        client
            .get_connection_with_timeout(Duration::from_secs(2))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    }

    /// A client for a dedicated connection (pub/sub), with the pool's address and DB.
    pub fn client(&self) -> redis::Client {
        self.client.clone()
    }

    /// Requests sent through this pool so far (a pipeline or a script is one).
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    fn count_trip<'c>(&self, conn: &'c mut redis::Connection) -> &'c mut redis::Connection {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        conn
    }

    /// A pool that never retries (for probes that must answer fast).
    pub fn without_retry(&self) -> Pool {
        Pool {
            retry: Duration::ZERO,
            ..self.clone()
        }
    }

    /// `PING`, without retries.
    ///
    /// # Errors
    /// [`Error::Redis`] when the server does not answer.
    pub fn ping(&self) -> Result<()> {
        self.without_retry().run("PING", |c| {
            redis::cmd("PING").query::<String>(c).map(|_| ())
        })
    }
}

/// The connections a run needs, resolved from the pipeline's `[redis]` section (already
/// merged with the environment).
#[derive(Debug, Clone)]
pub struct Connections {
    /// DB `db` of the main server: bus, state, story records.
    pub main: Pool,
    /// The cache: DB `cache_db` of the main server, or its own server.
    pub cache: Pool,
    /// DB `queue_db` of the main server.
    pub queue: Pool,
}

impl Connections {
    /// Resolves the URLs: `url`, else `redis://host:port`; the cache on `cache_url` when set.
    ///
    /// # Errors
    /// [`Error::Config`] for URLs that do not parse, or an unreadable `password_file`.
    pub fn new(cfg: &RedisConfig) -> Result<Self> {
        let main_url = if cfg.url.is_empty() {
            format!("redis://{}:{}", cfg.host, cfg.port)
        } else {
            cfg.url.clone()
        };
        let password = cfg.resolved_password()?;
        let user = cfg.username.as_str();
        let main = Pool::new(&main_url, cfg.db, user, &password, cfg)?;
        let queue = Pool::new(&main_url, cfg.queue_db, user, &password, cfg)?;
        let cache = if cfg.cache_url.is_empty() {
            Pool::new(&main_url, cfg.cache_db, user, &password, cfg)?
        } else {
            // The cache server's own URL carries its user and password, if any.
            let db = cache_url_db(&cfg.cache_url).unwrap_or(cfg.cache_db);
            Pool::new(&cfg.cache_url, db, "", "", cfg)?
        };
        Ok(Connections { main, cache, queue })
    }
}

/// The DB number in a URL's path, if it names one.
fn cache_url_db(url: &str) -> Option<u8> {
    let after_host = url.split_once("://")?.1;
    let path = after_host.split_once('/')?.1;
    path.split(['?', '#']).next()?.parse().ok()
}

/// xxh3-64 of a cache key and the payload stored under it.
fn key_digest(k: u128, payload: &[u8]) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&k.to_le_bytes());
    h.update(payload);
    h.digest()
}

/// The embedding cache in Redis. A batch is looked up with one `MGET` and written back
/// with one pipeline (values + TTLs + counters). If Redis fails past the retry window, the
/// cache degrades to memory for the rest of the run, with a warning, and says so.
pub struct RedisCache {
    pool: Pool,
    prefix: String,
    /// Embeddings (values checked as vectors, hits counted in the shared counters), or LLM
    /// replies (checked by their reader).
    llm: bool,
    model: String,
    model_tag: u64,
    dim: usize,
    ttl: u64,
    fallback: super::memory::MemoryCache,
    degraded: AtomicBool,
    /// Entries found but unusable (see [`RedisCache::invalid`]).
    invalid: AtomicU64,
    /// This process's counters.
    hits: AtomicU64,
    misses: AtomicU64,
    /// Counts not yet added to the shared counters (sent with the batch's write-back).
    pending_hits: AtomicU64,
    pending_misses: AtomicU64,
    /// The shared counters as Redis last returned them.
    total_hits: AtomicU64,
    total_misses: AtomicU64,
}

impl RedisCache {
    /// A cache for vectors of the embedder with this `fingerprint`.
    pub fn new(pool: Pool, cfg: &RedisConfig, fingerprint: &str, dim: usize) -> Self {
        RedisCache {
            pool,
            prefix: cfg.cache_prefix.clone(),
            llm: false,
            model: fingerprint.to_string(),
            model_tag: xxh3_64(fingerprint.as_bytes()),
            dim,
            ttl: cfg.cache_ttl_secs.max(1),
            fallback: super::memory::MemoryCache::default(),
            degraded: AtomicBool::new(false),
            invalid: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            pending_hits: AtomicU64::new(0),
            pending_misses: AtomicU64::new(0),
            total_hits: AtomicU64::new(0),
            total_misses: AtomicU64::new(0),
        }
    }

    /// A cache of LLM replies, `<prefix>llm:<hash of model + prompt>`, with the same TTL.
    pub fn llm(pool: Pool, cfg: &RedisConfig) -> Self {
        RedisCache {
            llm: true,
            ..RedisCache::new(pool, cfg, "llm", 0)
        }
    }

    fn key(&self, k: u128) -> String {
        if self.llm {
            format!("{}llm:{k:032x}", self.prefix)
        } else {
            format!("{}emb:{}:{k:032x}", self.prefix, self.model)
        }
    }

    /// The stored form of `payload` under key `k`: [model tag: 8 bytes LE][xxh3-64 of the
    /// key and the payload: 8 bytes LE][payload]. The digest ties the value to its key, so an
    /// entry that ends up under another key is never taken for that key's vector.
    fn seal(&self, k: u128, payload: &[u8]) -> Vec<u8> {
        let mut value = Vec::with_capacity(16 + payload.len());
        value.extend_from_slice(&self.model_tag.to_le_bytes());
        value.extend_from_slice(&key_digest(k, payload).to_le_bytes());
        value.extend_from_slice(payload);
        value
    }

    /// The payload of a stored value when it was sealed by this model under key `k`.
    fn open<'v>(&self, k: u128, value: &'v [u8]) -> Option<&'v [u8]> {
        let (tag, rest) = value.split_first_chunk::<8>()?;
        let (digest, payload) = rest.split_first_chunk::<8>()?;
        (u64::from_le_bytes(*tag) == self.model_tag
            && !payload.is_empty()
            && u64::from_le_bytes(*digest) == key_digest(k, payload))
        .then_some(payload)
    }

    /// Entries read this run that were unusable (another model's, under another key,
    /// corrupt or truncated): each was a miss.
    pub fn invalid(&self) -> u64 {
        self.invalid.load(Ordering::Relaxed)
    }

    /// Whether the cache fell back to memory during this run.
    pub fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// This process's own hits and misses.
    pub fn run_stats(&self) -> CacheStats {
        CacheStats::new(
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    fn degrade(&self, e: &Error) {
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %e, "Redis cache unavailable; using an in-memory cache for the rest of this run.");
        }
    }

    /// Adds this batch's counts to the shared counters (refreshing their TTL) and remembers
    /// the totals Redis returns.
    fn count(&self, hits: u64, misses: u64) {
        let h = format!("{}stats:hits", self.prefix);
        let m = format!("{}stats:misses", self.prefix);
        let ttl = self.ttl;
        let result = self.pool.run("INCRBY cache counters", |c| {
            redis::pipe()
                .cmd("INCRBY")
                .arg(&h)
                .arg(hits)
                .cmd("INCRBY")
                .arg(&m)
                .arg(misses)
                .cmd("EXPIRE")
                .arg(&h)
                .arg(ttl)
                .ignore()
                .cmd("EXPIRE")
                .arg(&m)
                .arg(ttl)
                .ignore()
                .query::<(u64, u64)>(c)
        });
        match result {
            Ok((th, tm)) => {
                self.total_hits.store(th, Ordering::Relaxed);
                self.total_misses.store(tm, Ordering::Relaxed);
            }
            Err(e) => self.degrade(&e),
        }
    }

    /// Reads the shared counters.
    ///
    /// # Errors
    /// [`Error::Redis`] when the server cannot be reached.
    pub fn shared_stats(pool: &Pool, prefix: &str) -> Result<CacheStats> {
        let (h, m): (Option<u64>, Option<u64>) = pool.run("GET cache counters", |c| {
            redis::cmd("MGET")
                .arg(format!("{prefix}stats:hits"))
                .arg(format!("{prefix}stats:misses"))
                .query(c)
        })?;
        Ok(CacheStats::new(h.unwrap_or(0), m.unwrap_or(0)))
    }
}

impl Cache for RedisCache {
    fn get_many(&self, keys: &[u128]) -> Vec<Option<Vec<u8>>> {
        if keys.is_empty() {
            return Vec::new();
        }
        if self.degraded() {
            return self.fallback.get_many(keys);
        }
        let names: Vec<String> = keys.iter().map(|k| self.key(*k)).collect();
        let raw = self.pool.run("MGET embeddings", |c| {
            redis::cmd("MGET")
                .arg(&names)
                .query::<Vec<Option<Vec<u8>>>>(c)
        });
        let values = match raw {
            Ok(v) if v.len() == keys.len() => v,
            Ok(_) => {
                self.degrade(&Error::Redis {
                    server: self.pool.name.clone(),
                    message: "MGET returned a wrong count".into(),
                });
                return self.fallback.get_many(keys);
            }
            Err(e) => {
                self.degrade(&e);
                return self.fallback.get_many(keys);
            }
        };
        // A value is [model tag: 8][key digest: 8][payload] (see `seal`). Another model's
        // entry, one stored under another key (copied, renamed, a hash collision), or one
        // that does not decode (corrupt, truncated, wrong dimension) is a miss, counted.
        let out: Vec<Option<Vec<u8>>> = values
            .into_iter()
            .zip(keys)
            .map(|(v, &k)| {
                let v = v?;
                let payload = self.open(k, &v).filter(|p| {
                    self.llm || crate::embed::Embedding::from_bytes(p, self.dim).is_some()
                });
                if payload.is_none() {
                    self.invalid.fetch_add(1, Ordering::Relaxed);
                }
                payload.map(<[u8]>::to_vec)
            })
            .collect();
        let hits = out.iter().filter(|v| v.is_some()).count() as u64;
        let misses = keys.len() as u64 - hits;
        self.hits.fetch_add(hits, Ordering::Relaxed);
        self.misses.fetch_add(misses, Ordering::Relaxed);
        if !self.llm {
            // The shared counters are the embedding cache's.
            self.pending_hits.fetch_add(hits, Ordering::Relaxed);
            self.pending_misses.fetch_add(misses, Ordering::Relaxed);
        }
        out
    }

    fn put_many(&self, items: &[(u128, Vec<u8>)]) {
        if self.degraded() {
            self.fallback.put_many(items);
            return;
        }
        let hits = self.pending_hits.swap(0, Ordering::Relaxed);
        let misses = self.pending_misses.swap(0, Ordering::Relaxed);
        let h = format!("{}stats:hits", self.prefix);
        let m = format!("{}stats:misses", self.prefix);
        let ttl = self.ttl;
        let result = self.pool.run("SET embeddings", |c| {
            let mut p = redis::pipe();
            for (k, v) in items {
                p.cmd("SET")
                    .arg(self.key(*k))
                    .arg(self.seal(*k, v))
                    .arg("EX")
                    .arg(ttl)
                    .ignore();
            }
            p.cmd("INCRBY")
                .arg(&h)
                .arg(hits)
                .cmd("INCRBY")
                .arg(&m)
                .arg(misses);
            p.cmd("EXPIRE")
                .arg(&h)
                .arg(ttl)
                .ignore()
                .cmd("EXPIRE")
                .arg(&m)
                .arg(ttl)
                .ignore();
            p.query::<(u64, u64)>(c)
        });
        match result {
            Ok((th, tm)) => {
                self.total_hits.store(th, Ordering::Relaxed);
                self.total_misses.store(tm, Ordering::Relaxed);
            }
            Err(e) => {
                self.degrade(&e);
                self.fallback.put_many(items);
            }
        }
    }

    fn flush(&self) {
        let (h, m) = (
            self.pending_hits.swap(0, Ordering::Relaxed),
            self.pending_misses.swap(0, Ordering::Relaxed),
        );
        if (h, m) != (0, 0) && !self.degraded() {
            self.count(h, m);
        }
    }

    fn stats(&self) -> CacheStats {
        if self.degraded() {
            return self.run_stats();
        }
        CacheStats::new(
            self.total_hits.load(Ordering::Relaxed),
            self.total_misses.load(Ordering::Relaxed),
        )
    }
}

/// A held lock on the story state in Redis: `SET NX PX` with a random token, kept alive by a
/// heartbeat thread while held, and checked by every state write, so a run that lost its
/// lock (stalled past the lease) can never overwrite a newer state.
pub struct StateLock {
    pool: Pool,
    token: String,
    stop: Option<crossbeam_channel::Sender<()>>,
    heartbeat: Option<std::thread::JoinHandle<()>>,
}

/// How often a waiting run retries the lock (one `SET NX` each).
const LOCK_POLL: Duration = Duration::from_millis(20);

const REFRESH_LOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";

const RELEASE_LOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

impl StateLock {
    /// Takes the lock, waiting up to `wait` for another run to finish.
    ///
    /// # Errors
    /// [`Error::Locked`] when another run still holds it after `wait`; [`Error::Redis`] when
    /// the server cannot be reached.
    /// `lease` (`[redis] lock_lease_ms`): long enough to survive a slow batch, short enough
    /// that a crashed run frees the state quickly; refreshed every third of it.
    pub fn acquire(pool: &Pool, wait: Duration, lease: Duration) -> Result<StateLock> {
        let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX).max(1);
        let token = format!(
            "{}-{}-{:x}",
            std::process::id(),
            crate::time::now_millis(),
            xxh3_64(format!("{:?}", Instant::now()).as_bytes())
        );
        let start = Instant::now();
        loop {
            let got: Option<String> = pool.run("SET lock", |c| {
                redis::cmd("SET")
                    .arg(STATE_LOCK_KEY)
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(lease_ms)
                    .query(c)
            })?;
            if got.is_some() {
                break;
            }
            if start.elapsed() >= wait {
                let (holder, ttl): (Option<String>, i64) = pool.run("GET lock", |c| {
                    redis::pipe()
                        .cmd("GET")
                        .arg(STATE_LOCK_KEY)
                        .cmd("PTTL")
                        .arg(STATE_LOCK_KEY)
                        .query(c)
                })?;
                return Err(Error::Locked(format!(
                    "holder {}, lease ends in {:.1} s",
                    holder.unwrap_or_default(),
                    ttl.max(0) as f64 / 1000.0
                )));
            }
            // Short: queue workers take turns on the state many times a second.
            std::thread::sleep(LOCK_POLL);
        }
        let (tx, rx) = crossbeam_channel::bounded::<()>(1);
        let hb_pool = pool.without_retry();
        let hb_token = token.clone();
        let heartbeat = std::thread::spawn(move || {
            while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = rx.recv_timeout(lease / 3)
            {
                let r = hb_pool.run("refresh lock", |c| {
                    redis::Script::new(REFRESH_LOCK)
                        .key(STATE_LOCK_KEY)
                        .arg(&hb_token)
                        .arg(lease_ms)
                        .invoke::<i64>(c)
                });
                match r {
                    Ok(1) => {}
                    Ok(_) => tracing::error!(
                        "State lock lost to another run; this run's state will not be saved to Redis."
                    ),
                    Err(e) => tracing::warn!(error = %e, "Could not refresh the state lock."),
                }
            }
        });
        Ok(StateLock {
            pool: pool.clone(),
            token,
            stop: Some(tx),
            heartbeat: Some(heartbeat),
        })
    }

    /// The lock's token (the fencing value every write checks).
    pub fn token(&self) -> &str {
        &self.token
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
        let r = self.pool.without_retry().run("release lock", |c| {
            redis::Script::new(RELEASE_LOCK)
                .key(STATE_LOCK_KEY)
                .arg(&self.token)
                .invoke::<i64>(c)
        });
        if let Err(e) = r {
            tracing::warn!(error = %e, "Could not release the state lock; it expires by itself.");
        }
    }
}

/// Loads the story state and its version (a new empty state, version 0, when none).
///
/// # Errors
/// [`Error::Redis`] when unreachable; [`Error::State`] when the stored state is unusable or
/// made by another embedder.
pub fn load_state(
    pool: &Pool,
    fingerprint: &str,
    dim: usize,
) -> Result<(crate::story::StoryState, u64)> {
    let (raw, version): (Option<Vec<u8>>, Option<u64>) = pool.run("GET state", |c| {
        redis::pipe()
            .cmd("GET")
            .arg(STATE_KEY)
            .cmd("GET")
            .arg(STATE_VERSION_KEY)
            .query(c)
    })?;
    let version = version.unwrap_or(0);
    let Some(raw) = raw else {
        return Ok((crate::story::StoryState::new(fingerprint, dim), version));
    };
    let path = std::path::PathBuf::from(format!("redis://{}/{STATE_KEY}", pool.name));
    let state = super::file::decode(&raw, &path, fingerprint, dim)?;
    Ok((state, version))
}

/// The story state's version (0 when none was saved yet).
///
/// # Errors
/// [`Error::Redis`] when unreachable.
pub fn state_version(pool: &Pool) -> Result<u64> {
    let v: Option<u64> = pool.run("GET state version", |c| {
        redis::cmd("GET").arg(STATE_VERSION_KEY).query(c)
    })?;
    Ok(v.unwrap_or(0))
}

const SAVE_STATE: &str = r"
-- KEYS: lock, state, version, stories zset, last run
-- ARGV: token, state json, last-run json, n records, then n x (id, json, score), then ids to forget
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('SET', KEYS[2], ARGV[2])
local v = redis.call('INCR', KEYS[3])
if ARGV[3] ~= '' then redis.call('SET', KEYS[5], ARGV[3]) end
local n = tonumber(ARGV[4])
local i = 5
for _ = 1, n do
  redis.call('SET', 'perps:story:' .. ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[4], ARGV[i + 2], ARGV[i])
  i = i + 3
end
while i <= #ARGV do
  redis.call('DEL', 'perps:story:' .. ARGV[i])
  redis.call('ZREM', KEYS[4], ARGV[i])
  i = i + 1
end
return v";

/// Writes the state, the touched stories' records and the run summary in one atomic script,
/// only if `lock` is still held. Returns the new state version. An empty `last_run` leaves
/// the last run's summary as it is (a relabeling is not a run).
///
/// # Errors
/// [`Error::Locked`] when the lock was lost; [`Error::Redis`] when unreachable.
pub fn save_state(
    pool: &Pool,
    lock: &StateLock,
    state: &crate::story::StoryState,
    records: &[(String, String, i64)],
    forgotten: &[String],
    last_run: &str,
) -> Result<u64> {
    let json = super::file::encode(state).map_err(|e| Error::Redis {
        server: pool.name.clone(),
        message: format!("encode state: {e}"),
    })?;
    let v: i64 = pool.run("save state", |c| {
        let script = redis::Script::new(SAVE_STATE);
        let mut inv = script.prepare_invoke();
        inv.key(STATE_LOCK_KEY)
            .key(STATE_KEY)
            .key(STATE_VERSION_KEY)
            .key(STORIES_KEY)
            .key(LAST_RUN_KEY);
        inv.arg(lock.token())
            .arg(&json)
            .arg(last_run)
            .arg(records.len());
        for (id, record, score) in records {
            inv.arg(id).arg(record).arg(*score);
        }
        for id in forgotten {
            inv.arg(id);
        }
        inv.invoke(c)
    })?;
    u64::try_from(v)
        .map_err(|_| Error::Locked("the lock expired during the run; state not saved".into()))
}
