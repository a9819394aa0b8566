//! An in-process embedding cache: a bounded map, first in first out.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Cache, CacheStats};

/// The default number of entries kept: 50k dense vectors of 4 KiB is 200 MiB at most;
/// term embeddings are a few KiB each.
pub const DEFAULT_CAPACITY: usize = 50_000;

/// In-memory [`Cache`].
#[derive(Debug)]
pub struct MemoryCache {
    capacity: usize,
    inner: Mutex<Inner>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<u128, Vec<u8>>,
    order: VecDeque<u128>,
}

impl MemoryCache {
    /// A cache holding at most `capacity` vectors.
    pub fn new(capacity: usize) -> Self {
        MemoryCache {
            capacity,
            inner: Mutex::new(Inner::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map inconsistent (every mutation is
        // a single insert/remove), so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Default for MemoryCache {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl Cache for MemoryCache {
    fn get_many(&self, keys: &[u128]) -> Vec<Option<Vec<u8>>> {
        let inner = self.lock();
        let out: Vec<_> = keys.iter().map(|k| inner.map.get(k).cloned()).collect();
        let hits = out.iter().filter(|v| v.is_some()).count() as u64;
        self.hits.fetch_add(hits, Ordering::Relaxed);
        self.misses
            .fetch_add(keys.len() as u64 - hits, Ordering::Relaxed);
        out
    }

    fn put_many(&self, items: &[(u128, Vec<u8>)]) {
        if self.capacity == 0 {
            return;
        }
        let mut inner = self.lock();
        for (k, v) in items {
            if inner.map.insert(*k, v.clone()).is_none() {
                inner.order.push_back(*k);
            }
            while inner.map.len() > self.capacity {
                let Some(old) = inner.order.pop_front() else {
                    break;
                };
                inner.map.remove(&old);
            }
        }
    }

    fn stats(&self) -> CacheStats {
        CacheStats::new(
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_hits_and_evicts_oldest() {
        let c = MemoryCache::new(2);
        assert_eq!(c.get_many(&[1, 2]), vec![None, None]);
        c.put_many(&[(1, vec![1]), (2, vec![2]), (3, vec![3])]);
        assert_eq!(
            c.get_many(&[1, 2, 3]),
            vec![None, Some(vec![2]), Some(vec![3])]
        );
        assert_eq!(c.stats(), CacheStats::new(2, 3));
        assert!((c.stats().hit_rate - 0.4).abs() < 1e-12);
    }
}
