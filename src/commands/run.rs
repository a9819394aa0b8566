//! `perps-news run`: cluster dumps (or the spool directory) into stories, with the state in
//! nothing, a local file or Redis, and print the summary.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::Args;
use perps_news::article::NoticeKind;
use perps_news::engine::Engine;
use perps_news::error::{Error, Result};
use perps_news::pipeline::{RunInput, RunOptions};
use perps_news::report::{AssignmentLine, write_jsonl};
use perps_news::spool::SpoolDir;
use perps_news::stages::ingest;
use perps_news::store::memory::MemoryCache;
use perps_news::store::session::{Journal, Session, SessionMode};
use perps_news::store::{self, Cache};
use perps_news::{bus, config, time};

use super::ModelArgs;

/// `perps-news run`
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Article dumps: JSON Lines or JSON arrays, optionally gzipped; `-` reads stdin. Without
    /// inputs, the run processes the spool directory (`--spool` or `[spool] dir`).
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<String>,
    /// Process the files in DIR/inbox (claimed, then moved to done/ or failed/).
    #[arg(long, value_name = "DIR", conflicts_with = "inputs")]
    pub spool: Option<PathBuf>,
    /// Pipeline declaration (default: the built-in pipelines/default.toml).
    #[arg(long, value_name = "FILE")]
    pub pipeline: Option<PathBuf>,
    /// Story state file to continue and update (created if missing). Without it every run
    /// starts from no stories.
    #[arg(long, value_name = "PATH")]
    pub state: Option<PathBuf>,
    /// Write one {"id", "cluster"} line per article, in input order (`-` = stdout).
    #[arg(long, value_name = "FILE")]
    pub assignments: Option<PathBuf>,
    /// Write one line per story opened or joined by this run (`-` = stdout).
    #[arg(long, value_name = "FILE")]
    pub stories: Option<PathBuf>,
    /// Print the run summary as one JSON object (the news:clustered event) on stdout.
    #[arg(long)]
    pub json: bool,
    /// Exit with status 1 at the first rejected record, changing nothing.
    #[arg(long)]
    pub strict: bool,
    /// Articles per batch, exactly (overrides CLUSTER_BATCH_SIZE and the pipeline file, and
    /// turns off `ingest.auto_batch`).
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
    /// Similarity threshold for joining a story (overrides the pipeline file).
    #[arg(long, value_name = "X")]
    pub threshold: Option<f32>,
    /// No progress bar and no human summary (for cron).
    #[arg(long, short)]
    pub quiet: bool,
    /// The run's wall clock (RFC 3339 or epoch seconds; default: now): the time of articles
    /// without a date, and the limit past which a date is in the future
    /// (`ingest.max_future_secs`). For replaying generated or archived dumps.
    #[arg(long, value_name = "TIME", env = "PERPS_NEWS_NOW")]
    pub now: Option<String>,
    /// Use Redis for the cache, the story state (unless --state) and publishing, connecting
    /// as the pipeline's [redis] section and REDIS_* variables say.
    #[arg(long)]
    pub redis: bool,
    /// Redis URL for this run (implies --redis).
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
    /// Remote models (embedder, labeler, API endpoint).
    #[command(flatten)]
    pub models: ModelArgs,
}

/// `perps-news run`: returns the exit code (0, or 1 under `--strict` is an `Err`).
///
/// # Errors
/// Anything that prevented the run: config, unreadable input or state, failed writes.
pub fn run(args: &RunArgs, pool: &std::sync::Arc<rayon::ThreadPool>) -> Result<i32> {
    let mut cfg = config::resolve(args.pipeline.as_deref(), args.redis_url.as_deref())?;
    if let Some(n) = args.batch_size {
        cfg.ingest.batch_size = n;
        cfg.ingest.auto_batch = false;
    }
    if let Some(t) = args.threshold {
        cfg.cluster.threshold = Some(t);
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
        ingest::check_input_exists(input)?;
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
        Some(SpoolDir::open(
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

    let use_redis = args.redis || args.redis_url.is_some() || cfg.redis.enabled;
    let mut engine = Engine::build(cfg, None, pool.clone())?;
    let fingerprint = engine.fingerprint();
    let mut session = if use_redis {
        let mode = if args.state.is_none() {
            SessionMode::Run
        } else {
            SessionMode::CacheAndBus
        };
        let conns = store::redis::Connections::new(&engine.cfg.redis)?;
        let s = Session::connect(conns, &engine.cfg.redis, mode, &fingerprint, engine.dim())?;
        bus::forward_alerts(&engine.alerts, s.bus());
        if let Some(c) = s.llm_cache() {
            engine = engine.with_llm_cache(c)?;
        }
        Some(s)
    } else {
        None
    };
    let state = match (&args.state, session.as_mut()) {
        (Some(path), _) => store::file::load(path, &fingerprint, engine.dim())?,
        (None, Some(s)) => s.load_state(&fingerprint, engine.dim())?,
        (None, None) => engine.new_state(),
    };
    // Work of earlier runs on this host that never reached Redis is run again first, on the
    // state Redis has now.
    if let Some(pending) = session.as_mut().and_then(Session::take_pending_input) {
        inputs.insert(0, pending);
    }
    let memory = MemoryCache::default();
    let cache: &dyn Cache = match &session {
        Some(s) => s.cache(),
        None => &memory,
    };
    let opts = RunOptions {
        strict: args.strict,
        progress: !args.quiet && std::io::stderr().is_terminal(),
        ingest_time: match &args.now {
            Some(t) => time::parse_instant(t).map_err(|why| Error::Config {
                origin: "--now".into(),
                message: format!("{why}: {t:?}"),
            })?,
            None => time::now_millis() / 1000,
        },
    };
    // A run that keeps a mirror may have to journal its inputs' articles later (when they
    // cannot reach Redis): files can be read again then, stdin cannot, so it is kept.
    let mut stdin_copy = None;
    if session.as_ref().is_some_and(Session::has_mirror)
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
    let journal = Inputs {
        paths: args
            .inputs
            .iter()
            .filter(|p| p.as_str() != "-")
            .map(String::as_str)
            .collect(),
        stdin: stdin_copy.as_deref(),
        spooled: &claimed,
        max_article_bytes: engine.cfg.ingest.max_article_bytes,
        pool,
        ingest_time: opts.ingest_time,
    };
    let mut outcome = engine.run(inputs, state, cache, &opts, true)?;

    if let Some(path) = &args.state {
        store::file::save(path, &mut outcome.state)?;
    }
    if let Some(s) = session.as_mut() {
        s.finish(
            &mut outcome,
            engine.cfg.events.symbol_channels,
            Some(&journal as &dyn Journal),
        )?;
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
            NoticeKind::FutureDated => "future-dated",
            NoticeKind::IdCollision => "id collision",
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

/// Where a run's articles come from, to be read again for the mirror's journal when its work
/// cannot reach Redis.
struct Inputs<'a> {
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

impl Journal for Inputs<'_> {
    /// The accepted records of the run's inputs (with the spool files when `with_spool`),
    /// times made explicit: an article without a publication time keeps this run's ingest
    /// time when it is run again. Work re-applied from the journal or retried from the
    /// state's deferred list is not among them: it is kept where it is.
    fn records(&self, with_spool: bool) -> Result<Vec<serde_json::Value>> {
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
