//! The story-state lock: `SET NX PX` with a random token, a heartbeat while held, and the
//! token that fences every state write.

use std::time::{Duration, Instant};

use xxhash_rust::xxh3::xxh3_64;

use super::{Pool, STATE_LOCK_KEY};
use crate::error::{Error, Result};

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
