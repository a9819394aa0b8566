//! The command line: subcommands and their flags, nothing else.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// perps-news: groups crypto news articles into stories for a trading system.
#[derive(Debug, Parser)]
#[command(name = "perps-news", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Cluster article dumps into stories and print a summary.
    Run(Box<RunArgs>),
    /// Score assignments against gold story labels (B-cubed and pairwise P/R/F1).
    Eval(EvalArgs),
    /// Write a synthetic article dump with known stories (for tests and benchmarks).
    Generate(GenerateArgs),
    /// Tail the Redis message bus as JSON lines.
    Subscribe(SubscribeArgs),
    /// The hottest current stories, from the state (a local file or Redis).
    Stories(StoriesArgs),
    /// Cache and story counters from Redis, and the last run.
    Stats(StatsArgs),
    /// Check the Redis instances, their eviction and persistence settings, the API key and the
    /// spool directory; exit 1 when a check fails.
    Doctor(DoctorArgs),
    /// A small HTTP server: /healthz, /api/cache/stats, /api/stories, /api/events (SSE).
    Serve(ServeArgs),
    /// Re-tune: run the pipeline over a labelled dump for every combination of knob values
    /// and print the scores as a table.
    Sweep(SweepArgs),
    /// Take jobs from the BullMQ queues (clustering, categorization, labeling) until SIGTERM
    /// or SIGINT (needs a build with `--features worker`).
    Worker(WorkerArgs),
    /// Add jobs to a BullMQ queue, one per FILE (needs a build with `--features worker`).
    Enqueue(EnqueueArgs),
    /// Print a shell completion script, e.g. `perps-news completions bash >
    /// /etc/bash_completion.d/perps-news`.
    Completions(CompletionsArgs),
    /// Print the man page (roff), e.g. `perps-news man > /usr/local/share/man/man1/perps-news.1`.
    Man,
}

/// `perps-news completions`
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// `perps-news worker`
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Queues to take jobs from, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "categorization,labeling,clustering"
    )]
    pub queues: Vec<String>,
    /// BullMQ key prefix (keys are `<prefix>:<queue>:...`).
    #[arg(long, default_value = "bull")]
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
    #[arg(long, default_value = "bull")]
    pub prefix: String,
    /// Pipeline declaration whose [redis] section to use.
    #[arg(long, value_name = "FILE")]
    pub pipeline: Option<PathBuf>,
    /// Redis URL of the main server (overrides the pipeline and REDIS_* variables).
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
}

/// `perps-news sweep`
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Labelled dump: articles with a gold `label` field (clustered and scored).
    #[arg(long, value_name = "FILE", required = true)]
    pub gold: Vec<PathBuf>,
    /// Base pipeline (default: the built-in one).
    #[arg(long, value_name = "FILE")]
    pub pipeline: Option<PathBuf>,
    /// A knob and the values to try, e.g. `cluster.threshold=0.15,0.2,0.25`. Repeat for a
    /// grid over several knobs.
    #[arg(long = "set", value_name = "KEY=V1,V2,...")]
    pub sets: Vec<String>,
    /// Print one JSON object per combination instead of a table.
    #[arg(long)]
    pub json: bool,
}

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

/// Which embedder and labeler, and the API behind the remote ones. Each overrides the
/// pipeline file and the OPENROUTER_* variables.
#[derive(Debug, Clone, Default, Args)]
pub struct ModelArgs {
    /// Embedder: `hashing` (offline) or `openai` (an OpenAI-compatible `/embeddings` API).
    #[arg(long, value_name = "NAME")]
    pub embedder: Option<String>,
    /// Base URL of the OpenAI-compatible API, e.g. https://openrouter.ai/api/v1 or
    /// http://localhost:11434/v1 (env OPENROUTER_BASE_URL).
    #[arg(long, value_name = "URL")]
    pub api_base: Option<String>,
    /// Embedding model (env OPENROUTER_EMBED_MODEL).
    #[arg(long, value_name = "NAME")]
    pub embed_model: Option<String>,
    /// Dimension of the embedding model's vectors (checked against every reply).
    #[arg(long, value_name = "N")]
    pub embed_dim: Option<usize>,
    /// Embedding model that takes over requests the primary failed (the same model served
    /// elsewhere: other models' vectors are not comparable).
    #[arg(long, value_name = "NAME")]
    pub fallback_embed_model: Option<String>,
    /// Labeler: `extractive` (offline) or `llm` (chat completions).
    #[arg(long, value_name = "NAME")]
    pub labeler: Option<String>,
    /// Chat model for `--labeler llm` (env OPENROUTER_CHAT_MODEL).
    #[arg(long, value_name = "NAME")]
    pub chat_model: Option<String>,
    /// Chat model asked when the primary fails (env OPENROUTER_FALLBACK_MODEL).
    #[arg(long, value_name = "NAME")]
    pub fallback_chat_model: Option<String>,
}

impl ModelArgs {
    /// Applies the flags given to `cfg`.
    pub fn apply(&self, cfg: &mut crate::config::PipelineConfig) {
        let set = |slot: &mut String, v: &Option<String>| {
            if let Some(v) = v {
                slot.clone_from(v);
            }
        };
        set(&mut cfg.embed.provider, &self.embedder);
        set(&mut cfg.api.base_url, &self.api_base);
        set(&mut cfg.embed.openai.model, &self.embed_model);
        set(
            &mut cfg.embed.openai.fallback_model,
            &self.fallback_embed_model,
        );
        set(&mut cfg.label.provider, &self.labeler);
        set(&mut cfg.label.llm.model, &self.chat_model);
        set(&mut cfg.label.llm.fallback_model, &self.fallback_chat_model);
        if let Some(d) = self.embed_dim {
            cfg.embed.dim = d;
        }
    }
}

/// `perps-news subscribe`
#[derive(Debug, Args)]
pub struct SubscribeArgs {
    /// Channels or glob patterns to tail.
    #[arg(default_value = "*")]
    pub channels: Vec<String>,
    /// Replay the channels' streams first (what was published while nobody listened).
    #[arg(long)]
    pub from_stream: bool,
    /// Exit after this many messages.
    #[arg(long, value_name = "N")]
    pub count: Option<usize>,
    /// Pipeline declaration whose [redis] section to use.
    #[arg(long, value_name = "FILE")]
    pub pipeline: Option<PathBuf>,
    /// Redis URL (overrides the pipeline and REDIS_* variables).
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
}

/// `perps-news eval`
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Gold labels: JSON Lines with `id` and `label`.
    #[arg(long, value_name = "FILE")]
    pub gold: PathBuf,
    /// Predicted assignments: JSON Lines with `id` and `cluster` (what `run --assignments`
    /// writes).
    #[arg(long, value_name = "FILE")]
    pub assignments: PathBuf,
    /// Print the scores as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Least share of the gold ids that must appear in the assignments (0 to 1); below it
    /// the files are taken to describe different articles and `eval` fails.
    #[arg(long, value_name = "SHARE", default_value_t = 0.9)]
    pub min_coverage: f64,
}

/// `perps-news generate`
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Number of articles.
    #[arg(long, default_value_t = 1000)]
    pub articles: usize,
    /// Mean articles per story.
    #[arg(long, default_value_t = 5)]
    pub story_size: usize,
    /// Random seed (same seed, same dump).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Hours the articles are spread over.
    #[arg(long, default_value_t = 24.0)]
    pub span_hours: f64,
    /// Output file (default stdout).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

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

/// `perps-news doctor`
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Pipeline declaration to check (its [redis] and [spool] sections).
    #[arg(long, value_name = "FILE")]
    pub pipeline: Option<PathBuf>,
    /// Redis URL (overrides the pipeline and REDIS_* variables).
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
}

/// `perps-news serve`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Port to listen on.
    #[arg(long, default_value_t = 3001)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// Pipeline declaration whose [redis] section to use.
    #[arg(long, value_name = "FILE")]
    pub pipeline: Option<PathBuf>,
    /// Redis URL (overrides the pipeline and REDIS_* variables).
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
}

/// `perps-news stories`
#[derive(Debug, Args)]
pub struct StoriesArgs {
    /// How many stories.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Only stories touching this perp symbol (e.g. BTC).
    #[arg(long, value_name = "SYMBOL")]
    pub symbol: Option<String>,
    /// Only stories pointing this way: bullish, bearish or neutral (with --symbol: for that
    /// symbol).
    #[arg(long, value_name = "DIRECTION", value_parser = parse_direction)]
    pub direction: Option<crate::sentiment::Direction>,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Read the state from this local file instead of Redis.
    #[arg(long, value_name = "PATH")]
    pub state: Option<PathBuf>,
    /// Pipeline declaration (its [redis] and [signals] sections).
    #[arg(long, value_name = "FILE")]
    pub pipeline: Option<PathBuf>,
    /// Redis URL (overrides the pipeline and REDIS_* variables).
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
}

/// `--direction`: bullish, bearish or neutral.
fn parse_direction(s: &str) -> Result<crate::sentiment::Direction, String> {
    crate::sentiment::Direction::parse(s)
        .ok_or_else(|| format!("expected bullish, bearish or neutral, got {s:?}"))
}
