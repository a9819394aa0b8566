//! The numbers `stats --json` prints and `/api/cache/stats` serves: cache counters and keys,
//! stories, the state version, queue depths, the last run.

use super::RedisConfig;
use super::{
    Connections, DEFAULT_QUEUE_PREFIX, LAST_RUN_KEY, Pool, QUEUES, RedisCache, STATE_VERSION_KEY,
    STORIES_KEY, queue_key,
};
use crate::error::Result;

/// The numbers of `stats --json` and `/api/cache/stats`.
///
/// # Errors
/// [`Error::Redis`](crate::error::Error::Redis) when a server cannot be reached.
pub fn stats_json(conns: &Connections, cfg: &RedisConfig) -> Result<serde_json::Value> {
    let cache = RedisCache::shared_stats(&conns.cache, &cfg.cache_prefix)?;
    let cache_keys: u64 = conns
        .cache
        .run("DBSIZE", |c| redis::cmd("DBSIZE").query(c))?;
    let (stories, version, last): (u64, Option<u64>, Option<String>) =
        conns.main.run("stats", |c| {
            redis::pipe()
                .cmd("ZCARD")
                .arg(STORIES_KEY)
                .cmd("GET")
                .arg(STATE_VERSION_KEY)
                .cmd("GET")
                .arg(LAST_RUN_KEY)
                .query(c)
        })?;
    let queues = queue_depths(&conns.queue)?;
    let latency = last_run_latency(&conns.main)?;
    let last: Option<serde_json::Value> = last.and_then(|l| serde_json::from_str(&l).ok());
    Ok(serde_json::json!({
        "cacheStats": cache,
        "cacheKeys": cache_keys,
        "stories": stories,
        "stateVersion": version.unwrap_or(0),
        "queues": queues,
        "lastRun": last.as_ref().map(|l| serde_json::json!({
            "timestamp": l["timestamp"],
            "totalProcessed": l["totalProcessed"],
            "newClusters": l["newClusters"],
            "durationMs": l["stageMs"]["wall"],
            "pipelineFingerprint": l["pipelineFingerprint"],
            "origin": l["origin"],
            "eventLatency": latency,
        })),
    }))
}

/// The latest run's event latency: the `eventLatency` of the newest `news:clustered`
/// summary (null when that run published no story event).
fn last_run_latency(pool: &Pool) -> Result<serde_json::Value> {
    let newest = crate::bus::recent(pool, crate::bus::NEWS_CLUSTERED, 1)?;
    Ok(newest
        .first()
        .map_or(serde_json::Value::Null, |s| s["eventLatency"].clone()))
}

/// Waiting + active jobs of the news queues (BullMQ's `<prefix>:<queue>:wait` list and
/// `:active` list, `:prioritized`/`:delayed` sorted sets), under the default prefix.
fn queue_depths(pool: &Pool) -> Result<serde_json::Value> {
    let mut out = serde_json::Map::new();
    for &q in QUEUES {
        let key = |part| queue_key(DEFAULT_QUEUE_PREFIX, q, part);
        let (wait, active, prio, delayed): (u64, u64, u64, u64) = pool.run("queue depth", |c| {
            redis::pipe()
                .cmd("LLEN")
                .arg(key("wait"))
                .cmd("LLEN")
                .arg(key("active"))
                .cmd("ZCARD")
                .arg(key("prioritized"))
                .cmd("ZCARD")
                .arg(key("delayed"))
                .query(c)
        })?;
        out.insert(
            q.into(),
            serde_json::json!({"waiting": wait + prio, "active": active, "delayed": delayed}),
        );
    }
    Ok(serde_json::Value::Object(out))
}
