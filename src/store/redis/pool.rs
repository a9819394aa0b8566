//! Connection pools: one r2d2 pool per server and DB, timeouts, the retry window, the
//! round-trip counter, and errors that name the server.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::{ConnectionLike, IntoConnectionInfo};

use super::RedisConfig;
use crate::error::{Error, Result};

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
        // TCP_NODELAY: with Nagle's algorithm the last segment of a large pipelined write
        // (a state save is hundreds of KB) waits for the server to acknowledge the ones
        // before, and the server's delayed ACK can hold that 40 ms. On the events bench's
        // ticks the save took 3-6 ms, or 44-48 ms in about one tick of five.
        let info = info
            .set_redis_settings(settings)
            .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_db_comes_from_the_url_path() {
        assert_eq!(cache_url_db("redis://10.0.0.2:6390/3"), Some(3));
        assert_eq!(cache_url_db("redis://u:p@cache:6390/1?timeout=2"), Some(1));
        assert_eq!(cache_url_db("redis://cache:6390"), None);
        assert_eq!(cache_url_db("redis://cache:6390/x"), None);
    }

    #[test]
    fn long_server_errors_are_cut_and_say_how_much() {
        let long = format!("é{}", "x".repeat(2 * MAX_ERROR_CHARS));
        let b = brief(long.clone());
        assert!(b.len() < long.len(), "{b}");
        assert!(
            b.ends_with(&format!("({} more bytes)", long.len() - MAX_ERROR_CHARS)),
            "{b}"
        );
        assert_eq!(brief("short".into()), "short");
        // A cut inside a multi-byte character moves back to its start.
        let wide = "é".repeat(MAX_ERROR_CHARS);
        assert!(brief(wide).starts_with('é'));
    }
}
