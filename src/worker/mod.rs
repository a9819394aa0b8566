//! The BullMQ queue worker (`perps-news worker`) and `perps-news enqueue`.
//!
//! Jobs come from BullMQ queues in Redis DB `queue_db` (2), through `bullmq-official` (the
//! BullMQ authors' Rust port, pinned: its Lua scripts are those of npm `bullmq` 6.5.4), so
//! Node producers and workers share the queues unchanged. tokio lives only in this module:
//! each job runs on a blocking thread ([`tokio::task::spawn_blocking`]) through the same
//! synchronous pipeline as `run`, in [`jobs`].
//!
//! Several workers (in one process or on several hosts) give the stories one worker would:
//! a clustering job embeds its articles into the shared cache outside any lock, then takes
//! the Redis state lock (with its fencing token) only to load, cluster and save
//! ([`crate::engine::Engine::run_shared`]). Inside one process the jobs queue up on a mutex before
//! that step, so only one of them polls the Redis lock.
//!
//! Lifecycle: SIGTERM or SIGINT stops taking jobs, lets active ones finish (bounded by
//! `--shutdown-timeout`) and exits 0. A worker killed mid-job leaves the job's lock to
//! expire; BullMQ's stalled-job check of any live worker puts the job back to waiting, and
//! an article already in the state is not clustered twice.

pub mod jobs;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bullmq::options::RedisConnectionOptions;
use bullmq::worker::CancellationToken;
use bullmq::{Job, Queue, QueueOptions, Worker, WorkerOptions};
use redis::IntoConnectionInfo;

use crate::config::{PipelineConfig, RedisConfig};
use crate::engine::Engine;
use crate::error::{Error, Result};
use jobs::{JobError, Jobs};

/// Environment variable of the test-only per-job delay (milliseconds).
pub const TEST_DELAY_ENV: &str = "PERPS_NEWS_TEST_JOB_DELAY_MS";

/// Tokio threads: they only wait on Redis and hand jobs to blocking threads.
const RUNTIME_THREADS: usize = 2;

/// After a lost connection, how long the fetch loop waits before trying again (BullMQ's
/// default is 15 s; a Redis restart takes about one).
const RUN_RETRY_DELAY: Duration = Duration::from_millis(1000);

/// Beyond `--shutdown-timeout`, how long closing the queues may take before the worker exits
/// anyway (BullMQ's close honours the timeout; this is the bound around it).
const SHUTDOWN_SLACK: Duration = Duration::from_secs(2);

/// Counters of the summary line.
#[derive(Default)]
struct Stats {
    done: AtomicU64,
    failed: AtomicU64,
    micros: AtomicU64,
}

impl Stats {
    fn record(&self, ok: bool, took: Duration) {
        if ok {
            self.done.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.micros.fetch_add(us, Ordering::Relaxed);
    }

    /// (done, failed, mean ms) since the last call.
    fn take(&self) -> (u64, u64, f64) {
        let done = self.done.swap(0, Ordering::Relaxed);
        let failed = self.failed.swap(0, Ordering::Relaxed);
        let micros = self.micros.swap(0, Ordering::Relaxed);
        let n = done + failed;
        let mean = if n == 0 {
            0.0
        } else {
            micros as f64 / n as f64 / 1000.0
        };
        (done, failed, mean)
    }
}

/// How a worker process takes jobs (the `worker` command's flags).
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Queues to take jobs from.
    pub queues: Vec<String>,
    /// BullMQ key prefix.
    pub prefix: String,
    /// Jobs processed at once, per queue.
    pub concurrency: usize,
    /// Seconds active jobs may take to finish after SIGTERM/SIGINT.
    pub shutdown_timeout: u64,
    /// Job lock lease, milliseconds.
    pub lock_ms: u64,
    /// Stalled-job check period, milliseconds.
    pub stalled_interval_ms: u64,
    /// Seconds between summary lines.
    pub summary_secs: u64,
}

/// One job to add (the `enqueue` command's flags, files read).
#[derive(Debug, Clone)]
pub struct EnqueueRequest {
    /// The queue.
    pub queue: String,
    /// Allow a queue perps-news workers do not serve.
    pub queue_any: bool,
    /// Dumps, one job each.
    pub files: Vec<PathBuf>,
    /// Put the records in the job instead of the path.
    pub inline: bool,
    /// Story ids for one labeling job.
    pub stories: Vec<String>,
    /// Job name (default: the queue name).
    pub name: Option<String>,
    /// Attempts before the job fails for good.
    pub attempts: u32,
    /// First retry delay, milliseconds (doubles each attempt).
    pub backoff_ms: u64,
    /// BullMQ priority (0 = none).
    pub priority: u32,
    /// Delay before the job can run, milliseconds.
    pub delay_ms: u64,
    /// BullMQ key prefix.
    pub prefix: String,
}

/// BullMQ connection options for DB `queue_db` of the main server.
///
/// # Errors
/// [`Error::Config`] for a URL that does not parse or is a unix socket.
pub fn queue_connection(cfg: &RedisConfig) -> Result<RedisConnectionOptions> {
    let url = if cfg.url.is_empty() {
        format!("redis://{}:{}", cfg.host, cfg.port)
    } else {
        cfg.url.clone()
    };
    let bad = |message: String| Error::Config {
        origin: "redis".into(),
        message,
    };
    let info = url
        .as_str()
        .into_connection_info()
        .map_err(|e| bad(format!("bad Redis URL: {e}")))?;
    let mut opts = match info.addr() {
        redis::ConnectionAddr::Tcp(host, port) => {
            RedisConnectionOptions::new().host(host).port(*port)
        }
        redis::ConnectionAddr::TcpTls { host, port, .. } => RedisConnectionOptions::new()
            .host(host)
            .port(*port)
            .tls(true),
        _ => return Err(bad("the job queues need a TCP Redis URL".into())),
    };
    let settings = info.redis_settings();
    if !cfg.username.is_empty() {
        opts = opts.username(cfg.username.clone());
    } else if let Some(user) = settings.username() {
        opts = opts.username(user);
    }
    let password = cfg.resolved_password()?;
    if !password.is_empty() {
        opts = opts.password(password);
    } else if let Some(pw) = settings.password() {
        opts = opts.password(pw);
    }
    Ok(opts.db(cfg.queue_db))
}

fn queue_error(queue: &str, e: impl std::fmt::Display) -> Error {
    Error::Queue {
        queue: queue.to_string(),
        message: e.to_string(),
    }
}

/// `perps-news worker`: processes jobs until SIGTERM/SIGINT; exit code 0 after a graceful
/// stop.
///
/// # Errors
/// Config errors; the queues unreachable at start.
pub fn run(
    cfg: PipelineConfig,
    args: &WorkerSettings,
    pool: Arc<rayon::ThreadPool>,
) -> Result<i32> {
    if args.concurrency == 0 {
        return Err(Error::Config {
            origin: "NEWS_WORKER_CONCURRENCY".into(),
            message: "concurrency must be at least 1".into(),
        });
    }
    let test_delay = match std::env::var(TEST_DELAY_ENV) {
        Ok(v) => Duration::from_millis(v.trim().parse().map_err(|_| Error::Config {
            origin: TEST_DELAY_ENV.into(),
            message: format!("expected milliseconds, got {v:?}"),
        })?),
        Err(_) => Duration::ZERO,
    };
    let conns = crate::store::redis::Connections::new(&cfg.redis)?;
    // LLM replies are cached in the cache DB; breaker openings go out on the bus.
    let llm_cache: Arc<dyn crate::store::Cache> = Arc::new(crate::store::redis::RedisCache::llm(
        conns.cache.clone(),
        &cfg.redis,
    ));
    let engine = Engine::build(cfg, Some(llm_cache.clone()), pool)?;
    crate::bus::forward_alerts(
        &engine.alerts,
        crate::bus::Bus::new(
            conns.main.clone(),
            engine.cfg.redis.stream_maxlen,
            &engine.cfg.redis.spool_path,
        ),
    );
    let llm_categorizer = if engine.cfg.label.provider == "llm" {
        let ctx = crate::api::Context {
            alerts: engine.alerts.clone(),
            llm_cache: Some(llm_cache),
        };
        Some(crate::label::llm_category::LlmCategorizer::build(
            &engine.cfg.label.llm,
            &engine.cfg.api,
            &ctx,
        )?)
    } else {
        None
    };
    let jobs = Arc::new(Jobs {
        paths: jobs::PathPolicy::new(&engine.cfg),
        llm_categorizer,
        conns,
        state_gate: std::sync::Mutex::new(None),
        test_delay,
        engine,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(RUNTIME_THREADS)
        .thread_name("perps-news-worker")
        .enable_all()
        .build()
        .map_err(|e| Error::io("tokio runtime", e))?;
    let result = runtime.block_on(serve(args, jobs));
    // Dropping the runtime would wait for every blocking job thread, however long past the
    // shutdown timeout it runs (a job waiting on the state lock, a slow API): abandon them.
    // Their BullMQ locks expire and another worker takes the jobs over.
    runtime.shutdown_background();
    result
}

async fn serve(args: &WorkerSettings, jobs: Arc<Jobs>) -> Result<i32> {
    let connection = queue_connection(&jobs.engine.cfg.redis)?;
    let stats = Arc::new(Stats::default());
    let mut workers = Vec::new();
    for queue in &args.queues {
        let opts = WorkerOptions::new()
            .connection(connection.clone())
            .prefix(args.prefix.clone())
            .name(format!("perps-news-{}", std::process::id()))
            .concurrency(args.concurrency)
            .lock_duration(Duration::from_millis(args.lock_ms.max(1)))
            .stalled_interval(Duration::from_millis(args.stalled_interval_ms.max(1)))
            .run_retry_delay(RUN_RETRY_DELAY);
        let processor = processor(queue.clone(), jobs.clone(), stats.clone());
        let worker = Worker::with_options(queue, processor, opts)
            .await
            .map_err(|e| queue_error(&format!("{}:{queue}", args.prefix), e))?;
        let worker = Arc::new(worker);
        tokio::spawn(drain_events(queue.clone(), worker.clone()));
        workers.push(worker);
    }
    tracing::info!(
        queues = %args.queues.join(","),
        prefix = %args.prefix,
        concurrency = args.concurrency,
        db = jobs.engine.cfg.redis.queue_db,
        "Worker started."
    );
    let summary = tokio::spawn(summaries(
        stats.clone(),
        Duration::from_secs(args.summary_secs.max(1)),
    ));

    let signal = stop_signal().await;
    tracing::info!(signal, "Stopping: no new jobs; waiting for active ones.");
    let timeout_ms = args.shutdown_timeout.saturating_mul(1000);
    let closing: Vec<_> = workers
        .iter()
        .map(|w| {
            let w = w.clone();
            tokio::spawn(async move {
                let _ = w.close(timeout_ms).await;
                w.active_count().await
            })
        })
        .collect();
    let mut unfinished = 0;
    // `close` honours its timeout; this bounds the whole stop whatever happens inside it.
    let bound = Duration::from_millis(timeout_ms) + SHUTDOWN_SLACK;
    let all = async {
        let mut n = 0;
        for c in closing {
            n += c.await.unwrap_or(0);
        }
        n
    };
    match tokio::time::timeout(bound, all).await {
        Ok(n) => unfinished += n,
        Err(_) => unfinished += 1,
    }
    summary.abort();
    let (done, failed, mean) = stats.take();
    if unfinished > 0 {
        tracing::warn!(
            unfinished,
            "Shutdown timeout: jobs still running are abandoned; their locks expire and another worker takes them over."
        );
    }
    tracing::info!(done, failed, mean_ms = mean, "Worker stopped.");
    Ok(0)
}

/// The first of SIGTERM and SIGINT.
async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}

/// The job handler BullMQ calls: the synchronous work on a blocking thread, its error
/// mapped to BullMQ's retry semantics.
fn processor(
    queue: String,
    jobs: Arc<Jobs>,
    stats: Arc<Stats>,
) -> impl Fn(
    Job,
    CancellationToken,
) -> std::pin::Pin<Box<dyn Future<Output = bullmq::Result<serde_json::Value>> + Send>>
+ Send
+ Sync
+ 'static {
    move |job: Job, _cancel: CancellationToken| {
        let jobs = jobs.clone();
        let stats = stats.clone();
        let queue = queue.clone();
        Box::pin(async move {
            let started = Instant::now();
            let name = job.name().to_string();
            let id = job.id().to_string();
            let data = job.data().clone();
            let attempt = job.attempts_made() + 1;
            let work_name = name.clone();
            let result = tokio::task::spawn_blocking(move || jobs.handle(&work_name, &data))
                .await
                .unwrap_or_else(|e| Err(JobError::Transient(format!("job thread failed: {e}"))));
            let took = started.elapsed();
            stats.record(result.is_ok(), took);
            let ms = took.as_secs_f64() * 1e3;
            match result {
                Ok(v) => {
                    tracing::debug!(%queue, job = %id, %name, attempt, ms, "Job completed.");
                    Ok(v)
                }
                Err(JobError::Bad(reason)) => {
                    tracing::debug!(%queue, job = %id, %name, attempt, ms, %reason, "Job failed: bad input, not retried.");
                    Err(bullmq::Error::Unrecoverable(reason))
                }
                Err(JobError::Transient(reason)) => {
                    tracing::debug!(%queue, job = %id, %name, attempt, ms, %reason, "Job failed; retried if attempts remain.");
                    Err(bullmq::Error::ProcessingError(reason))
                }
            }
        })
    }
}

/// Reads the worker's event channel (unbounded: unread, it would grow forever) and logs
/// what an operator should see.
async fn drain_events(queue: String, worker: Arc<Worker>) {
    while let Some(ev) = worker.next_event().await {
        match ev {
            bullmq::worker::WorkerEvent::Error(e) => {
                tracing::warn!(%queue, error = %e, "Queue error.");
            }
            bullmq::worker::WorkerEvent::Stalled { job_id } => {
                tracing::info!(%queue, job = %job_id, "Stalled job put back to waiting.");
            }
            bullmq::worker::WorkerEvent::Closed => break,
            _ => {}
        }
    }
}

/// One info line per period, idle or not (it doubles as a sign of life).
async fn summaries(stats: Arc<Stats>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let (done, failed, mean_ms) = stats.take();
        tracing::info!(
            done,
            failed,
            mean_ms,
            period_secs = every.as_secs(),
            "Jobs in the last period."
        );
    }
}

/// Refuses a queue no perps-news worker serves, unless `queue_any`: a job there would wait
/// forever and nobody would be told.
///
/// # Errors
/// [`Error::Config`] naming the queues that are served.
pub fn check_queue(args: &EnqueueRequest) -> Result<()> {
    if !args.queue_any && !jobs::KINDS.contains(&args.queue.as_str()) {
        return Err(Error::Config {
            origin: "enqueue".into(),
            message: format!(
                "unknown queue {:?}: perps-news workers serve {} (--queue-any sends to \
                 another queue anyway)",
                args.queue,
                jobs::KINDS.join(", ")
            ),
        });
    }
    Ok(())
}

/// `perps-news enqueue`: adds one job per file (or one labeling job) and prints one JSON
/// line per job added: `{"queue", "id", "name"}`.
///
/// # Errors
/// Config errors, unreadable files, the queue unreachable.
pub fn enqueue(cfg: &PipelineConfig, args: &EnqueueRequest) -> Result<i32> {
    check_queue(args)?;
    let name = args.name.clone().unwrap_or_else(|| args.queue.clone());
    let mut payloads = Vec::new();
    if !args.stories.is_empty() {
        payloads.push(serde_json::json!({ "stories": args.stories }));
    }
    for file in &args.files {
        payloads.push(if args.inline {
            serde_json::json!({ "articles": inline_records(file)? })
        } else {
            let abs = std::fs::canonicalize(file).map_err(|e| Error::io(file, e))?;
            serde_json::json!({ "path": abs.display().to_string() })
        });
    }
    if payloads.is_empty() {
        return Err(Error::Config {
            origin: "enqueue".into(),
            message: "nothing to enqueue: give dump files (or --story ID for labeling)".into(),
        });
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("tokio runtime", e))?;
    let qname = format!("{}:{}", args.prefix, args.queue);
    runtime.block_on(async {
        let opts = QueueOptions::new()
            .connection(queue_connection(&cfg.redis)?)
            .prefix(args.prefix.clone());
        let queue = Queue::with_options(&args.queue, opts)
            .await
            .map_err(|e| queue_error(&qname, e))?;
        for data in payloads {
            let mut add = queue
                .add(&name, data)
                .attempts(args.attempts.max(1))
                .backoff(bullmq::types::BackoffStrategy::Exponential(args.backoff_ms));
            if args.priority > 0 {
                add = add.priority(args.priority);
            }
            if args.delay_ms > 0 {
                add = add.delay(Duration::from_millis(args.delay_ms));
            }
            let job = add.await.map_err(|e| queue_error(&qname, e))?;
            println!(
                "{}",
                serde_json::json!({"queue": args.queue, "id": job.id(), "name": name})
            );
        }
        queue.close().await;
        Ok(0)
    })
}

/// The records of a JSON Lines or JSON array file, for an inline job.
fn inline_records(path: &std::path::Path) -> Result<Vec<serde_json::Value>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let bad = |line: usize, e: serde_json::Error| {
        Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("line {line}: {e}")),
        )
    };
    if text.trim_start().starts_with('[') {
        return serde_json::from_str(&text).map_err(|e| bad(e.line(), e));
    }
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| bad(i + 1, e)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_connection_uses_the_queue_db_and_the_password() {
        let cfg = RedisConfig {
            url: "redis://:secret@10.0.0.5:6390/0".into(),
            queue_db: 2,
            ..RedisConfig::default()
        };
        let o = queue_connection(&cfg).unwrap();
        assert_eq!(o.effective_url(), "redis://:secret@10.0.0.5:6390/2");
        let cfg = RedisConfig {
            password: "p w".into(),
            ..RedisConfig::default()
        };
        assert_eq!(
            queue_connection(&cfg).unwrap().effective_url(),
            "redis://:p%20w@127.0.0.1:6380/2"
        );
        let cfg = RedisConfig {
            url: "redis+unix:///tmp/r.sock".into(),
            ..RedisConfig::default()
        };
        assert!(queue_connection(&cfg).is_err());
    }

    #[test]
    fn summary_counters_reset_each_period() {
        let s = Stats::default();
        s.record(true, Duration::from_millis(10));
        s.record(false, Duration::from_millis(30));
        let (done, failed, mean) = s.take();
        assert_eq!((done, failed), (1, 1));
        assert!((mean - 20.0).abs() < 1e-9, "{mean}");
        assert_eq!(s.take(), (0, 0, 0.0));
    }
}
