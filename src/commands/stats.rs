//! `perps-news stats`: cache and story counters, queues and the last run, from Redis.

use std::path::PathBuf;

use clap::Args;
use perps_news::error::Result;
use perps_news::{config, store};

/// `perps-news stats`
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Pipeline declaration whose [redis] section to use.
    #[arg(long, value_name = "FILE")]
    pub pipeline: Option<PathBuf>,
    /// Redis URL (overrides the pipeline and REDIS_* variables).
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
}

/// `perps-news stats`: the shared cache counters and key count, story counts, the state
/// version and the last run, from Redis.
///
/// # Errors
/// Config errors, or Redis unreachable.
pub fn run(args: &StatsArgs) -> Result<i32> {
    let cfg = config::resolve(args.pipeline.as_deref(), args.redis_url.as_deref())?;
    let conns = store::redis::Connections::new(&cfg.redis)?;
    let v = perps_news::store::redis::stats_json(&conns, &cfg.redis)?;
    if args.json {
        println!("{v}");
        return Ok(0);
    }
    let c = &v["cacheStats"];
    println!(
        "cache      {} hits, {} misses, {:.1}% hit rate, {} keys ({})",
        c["hits"],
        c["misses"],
        c["hitRate"].as_f64().unwrap_or(0.0) * 100.0,
        v["cacheKeys"],
        conns.cache.name
    );
    println!(
        "stories    {} stored, state version {}",
        v["stories"], v["stateVersion"]
    );
    for (q, d) in v["queues"].as_object().into_iter().flatten() {
        println!(
            "queue      {q}: {} waiting, {} active, {} delayed",
            d["waiting"], d["active"], d["delayed"]
        );
    }
    let l = &v["lastRun"];
    if l.is_null() {
        println!("last run   none");
    } else {
        println!(
            "last run   {} — {} articles, {} new stories, {} ms",
            l["timestamp"].as_str().unwrap_or("?"),
            l["totalProcessed"],
            l["newClusters"],
            l["durationMs"]
        );
        let e = &l["eventLatency"];
        if !e.is_null() {
            println!(
                "events     {} in the last run; ingest → publish p50 {} ms, p99 {} ms; \
                 publication → publish p50 {} ms, p99 {} ms",
                e["events"],
                e["ingestToPublishMs"]["p50"],
                e["ingestToPublishMs"]["p99"],
                e["publicationToPublishMs"]["p50"],
                e["publicationToPublishMs"]["p99"]
            );
        }
    }
    Ok(0)
}
