//! The subcommands, as library functions returning an exit code, so `main` stays thin and
//! tests can call them.

use std::io::{IsTerminal, Write};

use crate::cli::{
    EvalArgs, GenerateArgs, RunArgs, StatsArgs, StoriesArgs, SubscribeArgs, SweepArgs,
};
use crate::config::PipelineConfig;
use crate::error::{Error, Result};
use crate::pipeline::{RunInput, RunOptions};
use crate::report::{AssignmentLine, write_jsonl};
use crate::store::memory::MemoryCache;
use crate::story::StoryState;
use crate::{embed, eval, label, pipeline, store, synth};

/// `perps-news run`: returns the exit code (0, or 1 under `--strict` is an `Err`).
///
/// # Errors
/// Anything that prevented the run: config, unreadable input or state, failed writes.
pub fn run(args: &RunArgs, pool: &rayon::ThreadPool) -> Result<i32> {
    let mut cfg = PipelineConfig::load(args.pipeline.as_deref())?;
    cfg.apply_env(|k| std::env::var(k).ok())?;
    if let Some(n) = args.batch_size {
        cfg.ingest.batch_size = n;
        cfg.ingest.auto_batch = false;
    }
    if let Some(t) = args.threshold {
        cfg.cluster.threshold = t;
    }
    args.models.apply(&mut cfg);
    cfg.validate("command line")?;
    let on_stdout = stdout_streams(args);
    if on_stdout.len() > 1 {
        return Err(Error::Config {
            origin: "command line".into(),
            message: format!(
                "{} would all write to stdout, mixed into one stream: send all but one to a file",
                on_stdout.join(" and ")
            ),
        });
    }
    for input in &args.inputs {
        crate::stages::ingest::check_input_exists(input)?;
    }
    // No inputs: the spool directory is the source (taken before the Redis lock, released
    // after the files have been moved on).
    let spool = if args.inputs.is_empty() {
        let dir = args
            .spool
            .clone()
            .or_else(|| (!cfg.spool.dir.is_empty()).then(|| std::path::PathBuf::from(&cfg.spool.dir)))
            .ok_or_else(|| Error::Config {
                origin: "run".into(),
                message: "no input: give dump files, `-` for stdin, or a spool directory (--spool DIR or [spool] dir)".into(),
            })?;
        Some(crate::spool::SpoolDir::open(
            &dir,
            std::time::Duration::from_secs(cfg.redis.lock_wait_secs),
        )?)
    } else {
        None
    };
    let mut inputs: Vec<RunInput> = args.inputs.iter().cloned().map(RunInput::Path).collect();
    let mut claimed = Vec::new();
    if let Some(sp) = &spool {
        for path in sp.claim()? {
            match std::fs::read(&path) {
                Ok(bytes) => {
                    inputs.push(RunInput::Bytes {
                        name: path.display().to_string(),
                        bytes,
                    });
                    claimed.push(path);
                }
                Err(e) => {
                    sp.fail(&path, &format!("cannot read: {e}"))?;
                }
            }
        }
    }

    cfg.redis
        .set_url_from_command_line(args.redis_url.as_deref());
    let use_redis = args.redis || args.redis_url.is_some() || cfg.redis.enabled;

    let alerts = crate::api::Alerts::default();
    let embedder = embed::build(
        &cfg,
        &crate::api::Context {
            alerts: alerts.clone(),
            llm_cache: None,
        },
    )?;
    let symbols = load_symbols(&cfg.signals)?;
    let fingerprint = embedder.fingerprint();
    let mut session = if use_redis {
        Some(RedisSession::start(
            &cfg.redis,
            &fingerprint,
            embedder.dim(),
            args.state.is_none(),
        )?)
    } else {
        None
    };
    if let Some(s) = session.as_mut() {
        s.heat_tau_hours = cfg.signals.heat_tau_hours;
        publish_alerts(&alerts, &s.conns, &s.cfg);
    }
    let labeler = label::build(
        &cfg,
        &crate::api::Context {
            alerts: alerts.clone(),
            llm_cache: session.as_ref().and_then(RedisSession::llm_cache),
        },
    )?;
    let mut state = match (&args.state, session.as_mut()) {
        (Some(path), _) => store::file::load(path, &fingerprint, embedder.dim())?,
        (None, Some(s)) => s.take_state(&fingerprint, embedder.dim()),
        (None, None) => StoryState::new(fingerprint.clone(), embedder.dim()),
    };
    // Work of earlier runs on this host that never reached Redis is run again first, on the
    // state Redis has now.
    if let Some(pending) = session.as_mut().and_then(|s| s.pending_input.take()) {
        inputs.insert(0, pending);
    }
    // Articles an earlier run could not embed go first.
    let earlier = std::mem::take(&mut state.deferred);
    if !earlier.is_empty() {
        tracing::info!(
            articles = earlier.len(),
            "Retrying articles deferred by earlier runs."
        );
        let mut bytes = Vec::new();
        for d in &earlier {
            bytes.extend(d.record.to_string().into_bytes());
            bytes.push(b'\n');
        }
        inputs.insert(
            0,
            RunInput::Bytes {
                name: DEFERRED_INPUT.into(),
                bytes,
            },
        );
    }
    let memory = MemoryCache::default();
    let cache: &dyn store::Cache = match &session {
        Some(s) => s.cache(),
        None => &memory,
    };
    let opts = RunOptions {
        strict: args.strict,
        progress: !args.quiet && std::io::stderr().is_terminal(),
        ingest_time: match &args.now {
            Some(t) => crate::time::parse_instant(t).map_err(|why| Error::Config {
                origin: "--now".into(),
                message: format!("{why}: {t:?}"),
            })?,
            None => crate::time::now_millis() / 1000,
        },
    };
    // A run that keeps a mirror may have to journal its inputs' articles later (when they
    // cannot reach Redis): files can be read again then, stdin cannot, so it is kept.
    let mut stdin_copy = None;
    if session.as_ref().is_some_and(|s| s.mirror.is_some())
        && let Some(i) = inputs
            .iter()
            .position(|i| matches!(i, RunInput::Path(p) if p == "-"))
    {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut bytes)
            .map_err(|e| Error::io("-", e))?;
        stdin_copy = Some(bytes.clone());
        inputs[i] = RunInput::Bytes {
            name: "-".into(),
            bytes,
        };
    }
    let journal = Journal {
        paths: args
            .inputs
            .iter()
            .filter(|p| p.as_str() != "-")
            .map(String::as_str)
            .collect(),
        stdin: stdin_copy.as_deref(),
        spooled: &claimed,
        max_article_bytes: cfg.ingest.max_article_bytes,
        pool,
        ingest_time: opts.ingest_time,
    };
    let mut outcome = pipeline::run(
        &cfg, inputs, state, &*embedder, cache, &*labeler, &symbols, &opts, pool,
    )?;
    keep_deferred(&mut outcome, &earlier);
    let mut api = embedder.api_report();
    if let Some(l) = labeler.api_report() {
        api.get_or_insert_default().add(&l);
    }
    if let Some(a) = api.as_mut() {
        a.deferred = outcome.deferred.len() as u64;
    }
    outcome.summary.api = api;

    if let Some(path) = &args.state {
        store::file::save(path, &outcome.state)?;
    }
    if let Some(s) = session.as_mut() {
        s.finish(&mut outcome, Some(&journal))?;
    }
    // The state is saved (or, Redis being down, the work is journaled beside the mirror):
    // claimed files move on. A file none of whose records could be used
    // goes to failed/ with the reasons.
    if let Some(sp) = &spool {
        for path in &claimed {
            let name = path.display().to_string();
            let accepted = outcome
                .per_input
                .iter()
                .find(|p| p.0 == name)
                .map_or(0, |p| p.2);
            let reasons: Vec<String> = outcome
                .rejects
                .iter()
                .filter(|r| *r.origin.file == *name)
                .map(ToString::to_string)
                .collect();
            if accepted == 0 && !reasons.is_empty() {
                let shown = reasons
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n");
                sp.fail(
                    path,
                    &format!("no usable record ({} rejected):\n{shown}", reasons.len()),
                )?;
            } else {
                sp.done(path)?;
            }
        }
    }
    if let Some(path) = &args.assignments {
        let lines = outcome.assignments.iter().map(|(id, c)| AssignmentLine {
            id,
            cluster: c,
            duplicate_of: outcome.duplicate_of.get(id).map(String::as_str),
        });
        write_jsonl(path, lines)?;
    }
    if let Some(path) = &args.stories {
        write_jsonl(path, &outcome.stories)?;
    }

    let mut stderr = std::io::stderr().lock();
    for r in &outcome.rejects {
        let _ = writeln!(stderr, "rejected {r}");
    }
    for n in &outcome.notices {
        let what = match n.kind {
            crate::article::NoticeKind::FutureDated => "future-dated",
            crate::article::NoticeKind::IdCollision => "id collision",
        };
        let _ = writeln!(stderr, "{what} {n}");
    }
    drop(stderr);
    if args.json {
        let json = serde_json::to_string(&outcome.summary)
            .map_err(|e| Error::io("-", std::io::Error::other(e)))?;
        println!("{json}");
    } else if !args.quiet {
        // Data on stdout stays data: the summary for the person goes beside it.
        if on_stdout.is_empty() {
            print!("{}", outcome.summary.render());
        } else {
            eprint!("{}", outcome.summary.render());
        }
    }
    Ok(0)
}

/// The options of `args` that write data to stdout.
fn stdout_streams(args: &RunArgs) -> Vec<&'static str> {
    let dash = |p: &Option<std::path::PathBuf>| p.as_ref().is_some_and(|p| p.as_os_str() == "-");
    let mut v = Vec::new();
    if dash(&args.assignments) {
        v.push("--assignments -");
    }
    if dash(&args.stories) {
        v.push("--stories -");
    }
    if args.json {
        v.push("--json");
    }
    v
}

/// Articles deferred by this run go into the state for the next run, unless they have been
/// tried [`MAX_DEFERRED_ATTEMPTS`] times (then they are given up, with an error each).
fn keep_deferred(
    outcome: &mut crate::pipeline::RunOutcome,
    earlier: &[crate::story::DeferredRecord],
) {
    let tried: std::collections::HashMap<&str, u32> = earlier
        .iter()
        .filter_map(|d| Some((d.record.get("id")?.as_str()?, d.attempts)))
        .collect();
    let mut stderr = std::io::stderr().lock();
    for d in &outcome.deferred {
        let attempts = tried.get(d.article.id.as_str()).copied().unwrap_or(0) + 1;
        if attempts >= MAX_DEFERRED_ATTEMPTS {
            tracing::error!(id = %d.article.id, origin = %d.article.origin, attempts, reason = %d.reason, "Giving up on an article no run could embed.");
            continue;
        }
        let _ = writeln!(
            stderr,
            "deferred {}: {} (no embedding: {})",
            d.article.origin, d.article.id, d.reason
        );
        outcome.state.deferred.push(crate::story::DeferredRecord {
            record: d.record(),
            reason: d.reason.clone(),
            attempts,
        });
    }
}

/// Sends every circuit-breaker opening `alerts` raises to `circuit:breaker:open` on the bus
/// of `conns` (spooled if Redis is down).
pub fn publish_alerts(
    alerts: &crate::api::Alerts,
    conns: &store::redis::Connections,
    cfg: &crate::config::RedisConfig,
) {
    let bus = crate::bus::Bus::new(conns.main.clone(), cfg.stream_maxlen, &cfg.spool_path);
    alerts.connect(move |name, reason| {
        let payload = crate::bus::CircuitBreakerOpen {
            breaker_name: name.to_string(),
            reason: reason.to_string(),
        };
        let payload = serde_json::to_value(&payload).unwrap_or_default();
        if let Err(e) = bus.publish_or_spool(crate::bus::CIRCUIT_BREAKER_OPEN, &payload) {
            tracing::error!(error = %e, breaker = name, "circuit:breaker:open could not be published or spooled.");
        }
    });
}

/// Runs an article may be deferred before it is given up.
pub const MAX_DEFERRED_ATTEMPTS: u32 = 20;

/// Input name of the articles earlier runs deferred.
const DEFERRED_INPUT: &str = "(deferred by earlier runs)";

/// One batch through the pipeline against the story state in Redis, on connections the
/// caller keeps across batches (the queue worker): takes the state lock, loads the state,
/// runs, saves (fenced by the lock token), releases the lock, then publishes `news:story`
/// and `news:clustered`. Unlike `run --redis` nothing falls back to local files.
///
/// `reuse` is the state (and its version) the caller kept from its previous batch: when
/// Redis is still at that version it stands in for loading (a 4 MB state at 4,000 articles
/// is most of a small batch's time). Keep `outcome.state` with
/// `outcome.summary.redis.state_version` for the next call.
///
/// # Errors
/// [`Error::Redis`] when Redis is unreachable past the retry window; [`Error::Locked`] when
/// another run held the state for `lock_wait_secs` or the lock was lost before the save
/// (nothing was written); [`Error::State`] for a stored state of another embedder; input
/// and stage errors as [`pipeline::run`].
#[allow(clippy::too_many_arguments)]
pub fn run_batch(
    conns: &store::redis::Connections,
    cfg: &PipelineConfig,
    inputs: Vec<RunInput>,
    embedder: &dyn embed::Embedder,
    labeler: &dyn label::Labeler,
    symbols: &crate::symbols::SymbolBook,
    ingest_time: i64,
    pool: &rayon::ThreadPool,
    reuse: Option<(u64, StoryState)>,
) -> Result<pipeline::RunOutcome> {
    let fingerprint = embedder.fingerprint();
    let mut session = RedisSession::start_with(
        conns.clone(),
        &cfg.redis,
        &fingerprint,
        embedder.dim(),
        true,
        false,
        reuse,
    )?;
    session.heat_tau_hours = cfg.signals.heat_tau_hours;
    let state = session.take_state(&fingerprint, embedder.dim());
    let opts = RunOptions {
        strict: false,
        progress: false,
        ingest_time,
    };
    let mut outcome = pipeline::run(
        cfg,
        inputs,
        state,
        embedder,
        session.cache(),
        labeler,
        symbols,
        &opts,
        pool,
    )?;
    outcome.summary.origin = "worker";
    session.finish(&mut outcome, None)?;
    Ok(outcome)
}

/// `perps-news eval`: prints the scores; exit code 0.
///
/// # Errors
/// Unreadable or malformed gold/assignment files.
pub fn eval(args: &EvalArgs) -> Result<i32> {
    let gold = eval::load_jsonl(&args.gold, "label")?;
    let pred = eval::load_jsonl(&args.assignments, "cluster")?;
    let scores = eval::score(&gold, &pred)?;
    eval::check_coverage(&scores, args.min_coverage, &args.assignments)?;
    if args.json {
        let json =
            serde_json::to_string(&scores).map_err(|e| Error::io("-", std::io::Error::other(e)))?;
        println!("{json}");
    } else {
        print!("{}", eval::render(&scores));
    }
    Ok(0)
}

/// `perps-news generate`: writes a synthetic dump.
///
/// # Errors
/// The output file cannot be written.
pub fn generate(args: &GenerateArgs) -> Result<i32> {
    let cfg = synth::SynthConfig {
        articles: args.articles,
        story_size: args.story_size.max(1),
        seed: args.seed,
        span_hours: args.span_hours,
        ..synth::SynthConfig::default()
    };
    let text = synth::generate_jsonl(&cfg);
    match &args.output {
        Some(p) => std::fs::write(p, text).map_err(|e| Error::io(p, e))?,
        None => std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .map_err(|e| Error::io("-", e))?,
    }
    Ok(0)
}

/// `perps-news sweep`: scores every combination of the given knob values.
///
/// # Errors
/// Unreadable files, a knob that is not in the pipeline, or a value of the wrong type.
pub fn sweep(args: &SweepArgs, pool: &rayon::ThreadPool) -> Result<i32> {
    let base = PipelineConfig::load(args.pipeline.as_deref())?;
    let mut dumps = Vec::new();
    for path in &args.gold {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let gold = eval::load_jsonl(path, "label")?;
        dumps.push((path.display().to_string(), bytes, gold));
    }
    let mut grid: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for set in &args.sets {
        let (key, values) = set.split_once('=').ok_or_else(|| Error::Config {
            origin: format!("--set {set}"),
            message: "expected KEY=V1,V2,...".into(),
        })?;
        grid = grid
            .into_iter()
            .flat_map(|combo| {
                values.split(',').map(move |v| {
                    let mut c = combo.clone();
                    c.push((key.trim().to_string(), v.trim().to_string()));
                    c
                })
            })
            .collect();
    }
    for combo in &grid {
        let cfg = crate::config::with_overrides(&base, combo)?;
        let ctx = crate::api::Context::default();
        let embedder = embed::build(&cfg, &ctx)?;
        let labeler = label::build(&cfg, &ctx)?;
        let symbols = load_symbols(&cfg.signals)?;
        let knobs: Vec<String> = combo.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut f1s = Vec::new();
        for (name, bytes, gold) in &dumps {
            let opts = RunOptions {
                strict: false,
                progress: false,
                ingest_time: crate::time::now_millis() / 1000,
            };
            let state = StoryState::new(embedder.fingerprint(), embedder.dim());
            let input = vec![RunInput::Bytes {
                name: name.clone(),
                bytes: bytes.clone(),
            }];
            let cache = MemoryCache::default();
            let out = pipeline::run(
                &cfg, input, state, &*embedder, &cache, &*labeler, &symbols, &opts, pool,
            )?;
            let s = eval::score(gold, &out.assignments)?;
            if args.json {
                let line = serde_json::json!({"knobs": knobs, "gold": name, "scores": s});
                println!("{line}");
            } else {
                println!(
                    "{:<60} {:<28} P={:.4} R={:.4} F1={:.4} clusters={}",
                    knobs.join(" "),
                    name.rsplit('/').next().unwrap_or(name),
                    s.bcubed_p,
                    s.bcubed_r,
                    s.bcubed_f1,
                    s.pred_clusters
                );
            }
            f1s.push(s.bcubed_f1);
        }
        if dumps.len() > 1 && !args.json {
            println!(
                "{:<60} {:<28} mean F1={:.4}",
                knobs.join(" "),
                "(all)",
                f1s.iter().sum::<f64>() / f1s.len() as f64
            );
        }
    }
    Ok(0)
}

/// `perps-news subscribe`: tails the bus until interrupted (or `--count` messages).
///
/// # Errors
/// Config errors, or Redis unreachable at the start.
pub fn subscribe(args: &SubscribeArgs) -> Result<i32> {
    let mut cfg = PipelineConfig::load(args.pipeline.as_deref())?;
    cfg.apply_env(|k| std::env::var(k).ok())?;
    cfg.redis
        .set_url_from_command_line(args.redis_url.as_deref());
    let conns = store::redis::Connections::new(&cfg.redis)?;
    let client = conns.main.client();
    let mut out = std::io::stdout().lock();
    crate::bus::subscribe(
        &conns.main,
        &client,
        &args.channels,
        args.from_stream,
        args.count,
        &mut out,
    )?;
    Ok(0)
}

/// `perps-news stats`: the shared cache counters and key count, story counts, the state
/// version and the last run, from Redis.
///
/// # Errors
/// Config errors, or Redis unreachable.
pub fn stats(args: &StatsArgs) -> Result<i32> {
    let mut cfg = PipelineConfig::load(args.pipeline.as_deref())?;
    cfg.apply_env(|k| std::env::var(k).ok())?;
    cfg.redis
        .set_url_from_command_line(args.redis_url.as_deref());
    let conns = store::redis::Connections::new(&cfg.redis)?;
    let v = crate::ops::stats_json(&conns, &cfg)?;
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
    }
    Ok(0)
}

/// What a run did with Redis, reported in the summary.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RedisReport {
    /// `host:port/db` of the main server.
    pub server: String,
    /// `redis`, or `memory` when the cache fell back during the run.
    pub cache: String,
    /// `redis`, `file` (--state), or `mirror` (Redis was down: the local copy was used).
    pub state: String,
    /// State version written (0 when not written to Redis).
    pub state_version: u64,
    /// This run's own cache hits and misses (`cacheStats` holds the shared counters).
    pub run_cache_stats: store::CacheStats,
    /// Cache entries found but not used (another model's, stored under another key,
    /// corrupt or truncated): each counted as a miss.
    pub cache_invalid: u64,
    /// Whether `news:clustered` reached the bus (false: spooled).
    pub published: bool,
    /// Spooled events from earlier runs delivered at the start of this one.
    pub spool_delivered: usize,
    /// `news:story` events published.
    pub story_events: usize,
    /// Articles of earlier runs on this host whose work never reached Redis, run again by
    /// this one on the newer Redis state.
    pub reapplied: usize,
    /// Requests sent to Redis by this run (a pipeline or script counts once), not counting
    /// the final publish.
    pub round_trips: u64,
}

impl RedisReport {
    /// One line for the human summary: what the run did with Redis, so a run that fell back
    /// to its mirror cannot pass for one that reached the server.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        match self.state.as_str() {
            "mirror" => parts.push(format!(
                "{} unreachable: state from this host's mirror, work kept there for the next \
                 run that reaches Redis",
                self.server
            )),
            "file" => parts.push(format!("{} (state in the local file)", self.server)),
            _ if self.state_version > 0 => parts.push(format!(
                "{}: state saved (version {})",
                self.server, self.state_version
            )),
            _ => parts.push(format!("{}: state not saved", self.server)),
        }
        if self.cache == "memory" {
            parts.push("cache in memory".into());
        }
        parts.push(if self.published {
            format!(
                "news:clustered and {} published",
                plural(self.story_events, "news:story event", "news:story events")
            )
        } else {
            "events not published (spooled)".into()
        });
        if self.spool_delivered > 0 {
            parts.push(format!(
                "{} of earlier runs delivered",
                plural(self.spool_delivered, "spooled event", "spooled events")
            ));
        }
        if self.reapplied > 0 {
            parts.push(format!(
                "{} of earlier runs re-applied",
                plural(self.reapplied, "article", "articles")
            ));
        }
        parts.join("; ")
    }
}

/// `n` and the noun for it, singular for one.
fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The Redis side of one run: lock, state, cache, publishing, and the fallbacks when the
/// server is down (local state mirror, in-memory cache, event spool).
struct RedisSession {
    cfg: crate::config::RedisConfig,
    conns: store::redis::Connections,
    bus: crate::bus::Bus,
    lock: Option<store::redis::StateLock>,
    state: Option<StoryState>,
    cache: store::redis::RedisCache,
    fallback: MemoryCache,
    down: bool,
    owns_state: bool,
    /// The host's mirror (runs that own the state and may fall back to it; not the worker).
    mirror: Option<store::mirror::Mirror>,
    /// What this run does with the mirror's pending work.
    mirror_work: MirrorWork,
    /// The journal of pending work to run again, handed to the pipeline as its first input.
    pending_input: Option<RunInput>,
    /// The Redis state version this run loaded (its work sits on it).
    loaded_version: u64,
    heat_tau_hours: f64,
    report: RedisReport,
}

/// What a run does with work of earlier runs that is only in the host's mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MirrorWork {
    /// Nothing is pending.
    None,
    /// Redis is still at the version the work sits on: the mirror is that state plus the
    /// work, so this run continues it and publishes the work's events after its save.
    Continued,
    /// Redis moved on: the work's articles are run again on the newer state and its old
    /// events dropped (the re-run publishes its own).
    Reapplied,
}

impl RedisSession {
    fn start(
        cfg: &crate::config::RedisConfig,
        fingerprint: &str,
        dim: usize,
        owns_state: bool,
    ) -> Result<Self> {
        let conns = store::redis::Connections::new(cfg)?;
        Self::start_with(conns, cfg, fingerprint, dim, owns_state, true, None)
    }

    /// `start` on existing connections. `use_mirror = false` (the queue worker) turns the
    /// down-fallbacks off: with several workers on several hosts a local state copy would
    /// fork the stories, so Redis down or a lost lock is an error the caller retries.
    /// `reuse`: a state the caller kept from its last save, used instead of loading when
    /// Redis is still at that version.
    fn start_with(
        conns: store::redis::Connections,
        cfg: &crate::config::RedisConfig,
        fingerprint: &str,
        dim: usize,
        owns_state: bool,
        use_mirror: bool,
        reuse: Option<(u64, StoryState)>,
    ) -> Result<Self> {
        let bus = crate::bus::Bus::new(conns.main.clone(), cfg.stream_maxlen, &cfg.spool_path);
        let cache = store::redis::RedisCache::new(conns.cache.clone(), cfg, fingerprint, dim);
        let mut report = RedisReport {
            server: conns.main.name.clone(),
            cache: "redis".into(),
            ..RedisReport::default()
        };
        let mirror =
            (use_mirror && owns_state).then(|| store::mirror::Mirror::new(&cfg.state_mirror_path));
        let mut session = RedisSession {
            cfg: cfg.clone(),
            conns,
            bus,
            lock: None,
            state: None,
            cache,
            fallback: MemoryCache::default(),
            down: false,
            owns_state,
            mirror,
            mirror_work: MirrorWork::None,
            pending_input: None,
            loaded_version: 0,
            heat_tau_hours: 6.0,
            report: RedisReport::default(),
        };
        match session.conns.main.ping() {
            // Credentials refused: a configuration error, not an outage to ride out.
            Err(e @ Error::Config { .. }) => return Err(e),
            Err(e) if !use_mirror => return Err(e),
            Err(e) => {
                if let Some(m) = session.mirror.as_ref().filter(|m| !m.exists()) {
                    // Clustering against an empty state would count every article again
                    // once its events reach the bus: there is nothing to continue.
                    return Err(Error::Redis {
                        server: session.conns.main.name.clone(),
                        message: format!(
                            "unreachable ({e}), and this host has no state mirror ({}) to \
                             continue: nothing was done; the input waits for a run that \
                             reaches Redis",
                            m.path().display()
                        ),
                    });
                }
                tracing::warn!(error = %e, "Redis is down: using the local state mirror and an in-memory cache; events will be spooled.");
                session.down = true;
                report.cache = "memory".into();
            }
            Ok(()) => {
                if let Err(e @ Error::Config { .. }) = session.conns.cache.ping() {
                    return Err(e);
                }
                report.spool_delivered = session.bus.deliver_spool()?;
            }
        }
        if owns_state {
            if session.down {
                if let Some(m) = &session.mirror {
                    session.state = Some(m.load(fingerprint, dim)?);
                }
                report.state = "mirror".into();
            } else {
                let wait = std::time::Duration::from_secs(cfg.lock_wait_secs);
                let lease = std::time::Duration::from_millis(cfg.lock_lease_ms);
                session.lock = Some(store::redis::StateLock::acquire(
                    &session.conns.main,
                    wait,
                    lease,
                )?);
                // The caller's copy of the state at a version is that version (every write
                // bumps it under this lock): skip fetching and decoding the whole state.
                let current = match reuse {
                    Some((v, kept)) if store::redis::state_version(&session.conns.main)? == v => {
                        tracing::debug!(
                            version = v,
                            "State unchanged since this process saved it; not reloaded."
                        );
                        Some((kept, v))
                    }
                    _ => None,
                };
                let (mut state, version) = match current {
                    Some(c) => c,
                    None => store::redis::load_state(&session.conns.main, fingerprint, dim)?,
                };
                if let Some(m) = &session.mirror
                    && let Some(pending) = m.pending()
                {
                    let local = if pending.base == Some(version) {
                        m.load(fingerprint, dim)
                            .inspect_err(|e| {
                                tracing::error!(error = %e, "The local state mirror is unusable; re-applying its work on Redis's state instead.");
                            })
                            .ok()
                    } else {
                        None
                    };
                    if let Some(local) = local {
                        tracing::info!(
                            version,
                            "Continuing the state saved locally while its work could not reach Redis."
                        );
                        state = local;
                        session.mirror_work = MirrorWork::Continued;
                    } else {
                        let work = m.work()?.unwrap_or_default();
                        report.reapplied = work
                            .split(|&b| b == b'\n')
                            .filter(|l| !l.trim_ascii().is_empty())
                            .count();
                        tracing::warn!(base = ?pending.base, version, articles = report.reapplied, mirror = %m.path().display(),
                            "Redis moved on since this host's unsaved work; running that work again on the newer state.");
                        if !work.is_empty() {
                            session.pending_input = Some(RunInput::Bytes {
                                name: store::mirror::PENDING_INPUT.into(),
                                bytes: work,
                            });
                        }
                        session.mirror_work = MirrorWork::Reapplied;
                    }
                }
                session.loaded_version = version;
                session.report.state_version = version;
                session.state = Some(state);
                report.state = "redis".into();
            }
        } else {
            report.state = "file".into();
        }
        report.state_version = session.report.state_version;
        session.report = report;
        Ok(session)
    }

    /// The LLM reply cache in the cache DB (None while Redis is down).
    fn llm_cache(&self) -> Option<std::sync::Arc<dyn store::Cache>> {
        (!self.down).then(|| {
            std::sync::Arc::new(store::redis::RedisCache::llm(
                self.conns.cache.clone(),
                &self.cfg,
            )) as std::sync::Arc<dyn store::Cache>
        })
    }

    fn take_state(&mut self, fingerprint: &str, dim: usize) -> StoryState {
        self.state
            .take()
            .unwrap_or_else(|| StoryState::new(fingerprint, dim))
    }

    fn cache(&self) -> &dyn store::Cache {
        if self.down {
            &self.fallback
        } else {
            &self.cache
        }
    }

    /// The `news:story` events of the run: stories it opened or turned breaking, as they
    /// stand at the end of the run.
    fn story_events(
        &self,
        outcome: &crate::pipeline::RunOutcome,
    ) -> Vec<(&'static str, serde_json::Value)> {
        let slots: std::collections::HashMap<&str, usize> = outcome
            .state
            .stories
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        outcome
            .events
            .iter()
            .filter_map(|ev| slots.get(ev.story_id.as_str()))
            .map(|&i| {
                let s = &outcome.state.stories[i];
                let rec = crate::report::StoryRecord::from_story(
                    s,
                    s.last_seen,
                    self.heat_tau_hours,
                    None,
                );
                let payload = crate::bus::NewsStory {
                    story_id: rec.id,
                    label: rec.label,
                    symbols: rec.symbols,
                    size: rec.size,
                    sources: rec.sources,
                    heat: rec.heat,
                    first_seen: rec.first_published_at,
                    last_seen: rec.last_published_at,
                    breaking: rec.breaking,
                    outlets: rec.outlets,
                    direction: Some(rec.direction),
                };
                (
                    crate::bus::NEWS_STORY,
                    serde_json::to_value(&payload).unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Saves the state to Redis, then publishes `news:story` and `news:clustered`, then
    /// updates the local mirror; adds the Redis report to the summary.
    ///
    /// When the work cannot reach Redis nothing is published for it: with Redis down from
    /// the start the work and its events are kept beside the mirror (the run succeeds, as a
    /// local run); when the save itself fails (lost lock, a refused write) they are kept the
    /// same way and the run fails with [`Error::NotSaved`]. `journal` reads the run's inputs
    /// again for the mirror's journal (a failed run leaves its spool files in `claimed/`
    /// instead of journaling them); None for callers without a mirror.
    ///
    /// # Errors
    /// [`Error::NotSaved`] when the save failed (the caller must not report success or move
    /// spool files on); [`Error::Io`] when neither the bus nor the local files could take
    /// what had to be kept.
    fn finish(
        &mut self,
        outcome: &mut crate::pipeline::RunOutcome,
        journal: Option<&Journal<'_>>,
    ) -> Result<()> {
        if !self.down {
            self.report.run_cache_stats = self.cache.run_stats();
            self.report.cache_invalid = self.cache.invalid();
            if self.cache.degraded() {
                self.report.cache = "memory".into();
            }
        }
        let events = self.story_events(outcome);
        let mut saved_to_redis = false;
        if self.owns_state {
            let Some(lock) = self.lock.take() else {
                // Redis was down from the start: the work stays with the mirror until a run
                // reaches Redis, which continues it or runs it again.
                self.report.round_trips =
                    self.conns.main.round_trips() + self.conns.cache.round_trips();
                outcome.summary.redis = Some(self.report.clone());
                if let Some(m) = &self.mirror {
                    let records = match journal {
                        Some(j) => j.records(true)?,
                        None => Vec::new(),
                    };
                    let mut kept = events;
                    kept.push((
                        crate::bus::NEWS_CLUSTERED,
                        serde_json::to_value(&outcome.summary).unwrap_or_default(),
                    ));
                    m.keep(&outcome.state, m.base(), &records, &kept, false)?;
                    tracing::warn!(articles = records.len(), mirror = %m.path().display(),
                        "Redis is down: the run's work and events are kept with the local mirror; events spooled for the next run that reaches Redis.");
                }
                return Ok(());
            };
            let records: Vec<(String, String, i64)> = outcome
                .stories
                .iter()
                .map(|s| {
                    let json = serde_json::to_string(s).unwrap_or_default();
                    (
                        s.id.clone(),
                        json,
                        crate::time::parse_rfc3339(&s.last_published_at).unwrap_or(0),
                    )
                })
                .collect();
            let forgotten = std::mem::take(&mut outcome.state.forgotten);
            let last_run = serde_json::to_string(&outcome.summary).unwrap_or_default();
            let saved = store::redis::save_state(
                &self.conns.main,
                &lock,
                &outcome.state,
                &records,
                &forgotten,
                &last_run,
            );
            drop(lock);
            match saved {
                Ok(v) => {
                    self.report.state_version = v;
                    saved_to_redis = true;
                }
                Err(e) => {
                    outcome.state.forgotten = forgotten;
                    return Err(self.not_saved(e, outcome, journal, events));
                }
            }
        }
        self.lock = None;
        let mut delivered = 0;
        if saved_to_redis && let Some(m) = &self.mirror {
            // The continued work is in the saved state now: its events go out first.
            if self.mirror_work == MirrorWork::Continued {
                let pending = m.events()?;
                let refs: Vec<(&str, serde_json::Value)> = pending
                    .iter()
                    .map(|(c, p)| (c.as_str(), p.clone()))
                    .collect();
                if self.bus.publish_all_or_spool(&refs)? == crate::bus::Delivery::Published {
                    delivered = refs.len();
                }
            }
            if self.mirror_work != MirrorWork::None
                && let Err(e) = m.clear_pending()
            {
                // The next run then re-applies work that is already saved (every article is
                // known) and drops its events: nothing is counted twice.
                tracing::error!(error = %e, "Pending mirror work could not be cleared.");
            }
            m.saved(&outcome.state, self.report.state_version);
        }
        self.report.spool_delivered += delivered;
        // Story events go out after the state is saved (so a consumer can read the story),
        // all in one round trip.
        if self.bus.publish_all_or_spool(&events)? == crate::bus::Delivery::Published {
            self.report.story_events = events.len();
        }
        self.report.round_trips = self.conns.main.round_trips() + self.conns.cache.round_trips();
        outcome.summary.redis = Some(self.report.clone());
        let payload = serde_json::to_value(&outcome.summary).unwrap_or_default();
        let delivery = self
            .bus
            .publish_or_spool(crate::bus::NEWS_CLUSTERED, &payload)?;
        self.report.published = delivery == crate::bus::Delivery::Published;
        if let Some(r) = outcome.summary.redis.as_mut() {
            r.published = self.report.published;
        }
        tracing::info!(
            saved_to_redis,
            published = self.report.published,
            "Redis run finished."
        );
        Ok(())
    }

    /// A save that failed: keeps the run's work with the mirror (when this run has one) and
    /// says where it waits.
    fn not_saved(
        &self,
        e: Error,
        outcome: &crate::pipeline::RunOutcome,
        journal: Option<&Journal<'_>>,
        events: Vec<(&'static str, serde_json::Value)>,
    ) -> Error {
        let Some(m) = &self.mirror else {
            return e;
        };
        let records = match journal.map(|j| j.records(false)).transpose() {
            Ok(r) => r.unwrap_or_default(),
            Err(k) => {
                return Error::NotSaved {
                    reason: e.to_string(),
                    kept: format!(
                        "nothing was published, and the inputs could not be read again for \
                         the journal ({k}): spool files stay in claimed/, other inputs must be \
                         run again"
                    ),
                };
            }
        };
        let mut summary = outcome.summary.clone();
        summary.redis = Some(self.report.clone());
        let mut kept = events;
        kept.push((
            crate::bus::NEWS_CLUSTERED,
            serde_json::to_value(&summary).unwrap_or_default(),
        ));
        let reason = e.to_string();
        // Re-applied work has new events (in `kept`); the old ones described it on a state
        // that lost the race.
        let supersede = self.mirror_work == MirrorWork::Reapplied;
        match m.keep(
            &outcome.state,
            Some(self.loaded_version),
            &records,
            &kept,
            supersede,
        ) {
            Ok(()) => {
                tracing::error!(error = %reason, mirror = %m.path().display(), articles = records.len(),
                    "State not saved to Redis; the run's work waits with the local mirror and is re-applied by the next run.");
                Error::NotSaved {
                    reason,
                    kept: format!(
                        "nothing was published; the work waits in {} ({} articles journaled in {}; \
                         spool files stay in claimed/) for the next run, which re-applies it",
                        m.path().display(),
                        records.len(),
                        m.work_path().display()
                    ),
                }
            }
            Err(k) => Error::NotSaved {
                reason,
                kept: format!(
                    "nothing was published, and the work could not be kept locally either \
                     ({k}): spool files stay in claimed/, other inputs must be run again"
                ),
            },
        }
    }
}

/// Where a run's articles come from, to be read again for the mirror's journal when its work
/// cannot reach Redis: only then is the work copied (a run that saves pays nothing).
struct Journal<'a> {
    /// Input files named on the command line.
    paths: Vec<&'a str>,
    /// What the run read from stdin.
    stdin: Option<&'a [u8]>,
    /// The spool files the run claimed.
    spooled: &'a [std::path::PathBuf],
    max_article_bytes: usize,
    pool: &'a rayon::ThreadPool,
    ingest_time: i64,
}

impl Journal<'_> {
    /// The accepted records of the run's inputs (with the spool files when `with_spool`),
    /// times made explicit: an article without a publication time keeps this run's ingest
    /// time when it is run again. Work re-applied from the journal or retried from the
    /// state's deferred list is not among them: it is kept where it is.
    fn records(&self, with_spool: bool) -> Result<Vec<serde_json::Value>> {
        use crate::stages::ingest;
        let mut inputs = Vec::new();
        for p in &self.paths {
            inputs.push(ingest::read_input(p)?);
        }
        if let Some(bytes) = self.stdin {
            inputs.push(ingest::input_from_bytes("-", bytes.to_vec()));
        }
        if with_spool {
            for p in self.spooled {
                let bytes = std::fs::read(p).map_err(|e| Error::io(p, e))?;
                inputs.push(ingest::input_from_bytes(&p.display().to_string(), bytes));
            }
        }
        let parsed = ingest::parse_inputs(&inputs, self.max_article_bytes, self.pool);
        Ok(parsed
            .articles
            .iter()
            .map(|a| a.to_record(Some(a.time(self.ingest_time))))
            .collect())
    }
}

/// The symbol dictionary the pipeline names (the shipped one by default).
///
/// # Errors
/// [`Error::Config`] naming the file and the problem.
pub fn load_symbols(cfg: &crate::config::SignalsConfig) -> Result<crate::symbols::SymbolBook> {
    if cfg.symbols_path.is_empty() {
        return Ok(crate::symbols::SymbolBook::builtin());
    }
    crate::symbols::SymbolBook::load(std::path::Path::new(&cfg.symbols_path)).map_err(|e| {
        Error::Config {
            origin: cfg.symbols_path.clone(),
            message: e.to_string(),
        }
    })
}

/// `perps-news stories`: the hottest active stories at the state's clock (its latest
/// article time), optionally only those touching one symbol.
///
/// # Errors
/// Config errors; an unreadable state; Redis unreachable.
pub fn stories(args: &StoriesArgs) -> Result<i32> {
    let mut cfg = PipelineConfig::load(args.pipeline.as_deref())?;
    cfg.apply_env(|k| std::env::var(k).ok())?;
    cfg.redis
        .set_url_from_command_line(args.redis_url.as_deref());
    let embedder = embed::build(&cfg, &crate::api::Context::default())?;
    let state = match &args.state {
        Some(path) => store::file::load(path, &embedder.fingerprint(), embedder.dim())?,
        None => {
            let conns = store::redis::Connections::new(&cfg.redis)?;
            store::redis::load_state(&conns.main, &embedder.fingerprint(), embedder.dim())?.0
        }
    };
    let tau = cfg.signals.heat_tau_hours;
    let mut records: Vec<crate::report::StoryRecord> = state
        .stories
        .iter()
        .map(|s| crate::report::StoryRecord::from_story(s, state.clock, tau, None))
        .filter(|r| {
            args.symbol
                .as_ref()
                .is_none_or(|sym| r.symbols.iter().any(|s| s.eq_ignore_ascii_case(sym)))
        })
        .filter(|r| {
            // With --symbol, the direction for that symbol; else the story's.
            args.direction.is_none_or(|want| {
                let got = match &args.symbol {
                    Some(sym) => r
                        .direction
                        .symbols
                        .iter()
                        .find(|s| s.symbol.eq_ignore_ascii_case(sym))
                        .map(|s| s.verdict.direction),
                    None => Some(r.direction.direction),
                };
                got == Some(want)
            })
        })
        .collect();
    records.sort_by(|a, b| {
        b.heat
            .total_cmp(&a.heat)
            .then_with(|| b.last_published_at.cmp(&a.last_published_at))
            .then_with(|| a.id.cmp(&b.id))
    });
    records.truncate(args.top);
    let mut out = std::io::stdout().lock();
    if args.json {
        for r in &records {
            let line =
                serde_json::to_string(r).map_err(|e| Error::io("-", std::io::Error::other(e)))?;
            let _ = writeln!(out, "{line}");
        }
        return Ok(0);
    }
    let _ = writeln!(
        out,
        "{:>6} {:>5} {:>4} {:<3} {:<7} {:<14} label",
        "heat", "size", "src", "brk", "dir", "symbols"
    );
    for r in &records {
        let syms = r.symbols.join(",");
        let _ = writeln!(
            out,
            "{:>6.2} {:>5} {:>4} {:<3} {:<7} {:<14} {}",
            r.heat,
            r.size,
            r.sources,
            if r.breaking { "yes" } else { "" },
            r.direction.direction.as_str(),
            syms.chars().take(14).collect::<String>(),
            r.label
        );
    }
    Ok(0)
}
