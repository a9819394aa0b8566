//! The embedding cache and the LLM-reply cache in Redis: sealed values (model tag and a
//! digest of key and payload), TTLs, shared hit/miss counters, and the in-memory fallback
//! when the server goes away mid-run.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use xxhash_rust::xxh3::xxh3_64;

use super::Pool;
use super::RedisConfig;
use crate::error::{Error, Result};
use crate::store::{Cache, CacheStats};

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
    fallback: crate::store::memory::MemoryCache,
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
            fallback: crate::store::memory::MemoryCache::default(),
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
