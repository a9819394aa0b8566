//! `perps-news enqueue`: add jobs to a BullMQ queue (a build with `--features worker`).

use std::path::PathBuf;

use clap::Args;
use perps_news::error::Result;
use perps_news::store::redis::DEFAULT_QUEUE_PREFIX;

/// `perps-news enqueue`
#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// The queue: `clustering`, `categorization` or `labeling` (which takes `--story`).
    pub queue: String,
    /// Allow a queue perps-news workers do not serve (for a worker of your own).
    #[arg(long)]
    pub queue_any: bool,
    /// Article dumps: one job per file, carrying its absolute path (the worker must be able
    /// to read it) or, with `--inline`, its records.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Put the records in the job instead of the path (for workers on other hosts). Files
    /// must be JSON Lines or a JSON array, not gzipped.
    #[arg(long)]
    pub inline: bool,
    /// A story id to relabel (labeling jobs; repeat for several, all in one job).
    #[arg(long = "story", value_name = "ID")]
    pub stories: Vec<String>,
    /// Job name (default: the queue name, which is also the job kind the worker runs).
    #[arg(long)]
    pub name: Option<String>,
    /// Attempts before the job fails for good (transient failures are retried).
    #[arg(long, default_value_t = 3)]
    pub attempts: u32,
    /// First retry delay; doubles on each attempt.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub backoff_ms: u64,
    /// BullMQ priority (1 = highest; 0 = none).
    #[arg(long, default_value_t = 0)]
    pub priority: u32,
    /// Make the job wait this long before it can run.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub delay_ms: u64,
    /// BullMQ key prefix.
    #[arg(long, default_value = DEFAULT_QUEUE_PREFIX)]
    pub prefix: String,
    /// Pipeline declaration whose [redis] section to use.
    #[arg(long, value_name = "FILE")]
    pub pipeline: Option<PathBuf>,
    /// Redis URL of the main server (overrides the pipeline and REDIS_* variables).
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
}

/// Adds the jobs and prints one JSON line per job: `{"queue", "id", "name"}`.
///
/// # Errors
/// Config errors, unreadable files, the queue unreachable; a build without the `worker`
/// feature.
#[cfg(feature = "worker")]
pub fn run(args: &EnqueueArgs) -> Result<i32> {
    let request = perps_news::worker::EnqueueRequest {
        queue: args.queue.clone(),
        queue_any: args.queue_any,
        files: args.files.clone(),
        inline: args.inline,
        stories: args.stories.clone(),
        name: args.name.clone(),
        attempts: args.attempts,
        backoff_ms: args.backoff_ms,
        priority: args.priority,
        delay_ms: args.delay_ms,
        prefix: args.prefix.clone(),
    };
    // The queue name is checked before anything is resolved or read.
    perps_news::worker::check_queue(&request)?;
    let cfg = perps_news::config::resolve(args.pipeline.as_deref(), args.redis_url.as_deref())?;
    perps_news::worker::enqueue(&cfg, &request)
}

/// Without the `worker` feature: says how to get it.
///
/// # Errors
/// Always.
#[cfg(not(feature = "worker"))]
pub fn run(_: &EnqueueArgs) -> Result<i32> {
    Err(super::worker::without_worker_feature())
}
