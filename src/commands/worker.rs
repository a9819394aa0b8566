//! `perps-news worker`: take jobs from the BullMQ queues until SIGTERM or SIGINT (a build
//! with `--features worker`; [`perps_news::worker`] does the work).

use std::path::PathBuf;

use clap::Args;
use perps_news::error::Result;
use perps_news::store::redis::{DEFAULT_QUEUE_PREFIX, QUEUES};

/// `perps-news worker`
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Queues to take jobs from, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = QUEUES.iter().map(|q| (*q).to_string()))]
    pub queues: Vec<String>,
    /// BullMQ key prefix (keys are `<prefix>:<queue>:...`).
    #[arg(long, default_value = DEFAULT_QUEUE_PREFIX)]
    pub prefix: String,
    /// Jobs processed at once, per queue.
    #[arg(long, env = "NEWS_WORKER_CONCURRENCY", default_value_t = 10)]
    pub concurrency: usize,
    /// Pipeline declaration (its [redis] section says where the queues are: DB `queue_db`,
    /// env `REDIS_QUEUE_DB`).
    #[arg(long, value_name = "FILE")]
    pub pipeline: Option<PathBuf>,
    /// Redis URL of the main server (overrides the pipeline and REDIS_* variables).
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
    /// On SIGTERM/SIGINT, how long active jobs may take to finish before the worker exits
    /// anyway (their locks then expire and another worker takes them over).
    #[arg(long, value_name = "SECS", default_value_t = 50)]
    pub shutdown_timeout: u64,
    /// Job lock lease: a worker that dies mid-job gives the job up after this long.
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    pub lock_ms: u64,
    /// How often the stalled-job check runs (jobs whose lock expired go back to waiting).
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    pub stalled_interval_ms: u64,
    /// Seconds between the info-level summary lines (jobs done/failed, mean duration).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub summary_secs: u64,
}

/// Runs the worker until a graceful stop (exit code 0).
///
/// # Errors
/// Config errors; the queues unreachable at start; a build without the `worker` feature.
#[cfg(feature = "worker")]
pub fn run(args: &WorkerArgs, pool: &std::sync::Arc<rayon::ThreadPool>) -> Result<i32> {
    let cfg = perps_news::config::resolve(args.pipeline.as_deref(), args.redis_url.as_deref())?;
    let opts = perps_news::worker::WorkerSettings {
        queues: args.queues.clone(),
        prefix: args.prefix.clone(),
        concurrency: args.concurrency,
        shutdown_timeout: args.shutdown_timeout,
        lock_ms: args.lock_ms,
        stalled_interval_ms: args.stalled_interval_ms,
        summary_secs: args.summary_secs,
    };
    perps_news::worker::run(cfg, &opts, pool.clone())
}

/// Without the `worker` feature: says how to get it.
///
/// # Errors
/// Always.
#[cfg(not(feature = "worker"))]
pub fn run(_: &WorkerArgs, _: &std::sync::Arc<rayon::ThreadPool>) -> Result<i32> {
    Err(without_worker_feature())
}

/// The error of the queue commands in a build without the `worker` feature.
#[cfg(not(feature = "worker"))]
pub fn without_worker_feature() -> perps_news::Error {
    perps_news::Error::Config {
        origin: "perps-news".into(),
        message: "built without the `worker` feature; rebuild with `cargo build --release --features worker`".into(),
    }
}
