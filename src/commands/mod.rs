//! The command line, at the edge of the crate: one file per subcommand, each with its flags
//! and the function that runs it. Nothing in the library imports this module; a command
//! resolves its configuration ([`perps_news::config::resolve`]), builds what it needs from
//! the library (most often one [`perps_news::Engine`]) and maps the result to an exit code.

use clap::{Args, Parser, Subcommand};

pub mod completions;
pub mod doctor;
pub mod enqueue;
pub mod eval;
pub mod generate;
pub mod run;
pub mod serve;
pub mod stats;
pub mod stories;
pub mod subscribe;
pub mod sweep;
pub mod worker;

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
    Run(Box<run::RunArgs>),
    /// Score assignments against gold story labels (B-cubed and pairwise P/R/F1).
    Eval(eval::EvalArgs),
    /// Write a synthetic article dump with known stories (for tests and benchmarks).
    Generate(generate::GenerateArgs),
    /// Tail the Redis message bus as JSON lines.
    Subscribe(subscribe::SubscribeArgs),
    /// The hottest current stories, from the state (a local file or Redis).
    Stories(stories::StoriesArgs),
    /// Cache and story counters from Redis, and the last run.
    Stats(stats::StatsArgs),
    /// Check the Redis instances, their eviction and persistence settings, the API key and the
    /// spool directory; exit 1 when a check fails.
    Doctor(doctor::DoctorArgs),
    /// A small HTTP server: /healthz, /api/cache/stats, /api/stories, /api/events (SSE).
    Serve(serve::ServeArgs),
    /// Re-tune: run the pipeline over a labelled dump for every combination of knob values
    /// and print the scores as a table.
    Sweep(sweep::SweepArgs),
    /// Take jobs from the BullMQ queues (clustering, categorization, labeling) until SIGTERM
    /// or SIGINT (needs a build with `--features worker`).
    Worker(worker::WorkerArgs),
    /// Add jobs to a BullMQ queue, one per FILE (needs a build with `--features worker`).
    Enqueue(enqueue::EnqueueArgs),
    /// Print a shell completion script, e.g. `perps-news completions bash >
    /// /etc/bash_completion.d/perps-news`.
    Completions(completions::CompletionsArgs),
    /// Print the man page (roff), e.g. `perps-news man > /usr/local/share/man/man1/perps-news.1`.
    Man,
}

impl Command {
    /// Runs the command; `pool` is the process's one CPU pool.
    ///
    /// # Errors
    /// Whatever kept the command from doing its job; `main` prints it and exits with its code.
    pub fn run(&self, pool: &std::sync::Arc<rayon::ThreadPool>) -> perps_news::Result<i32> {
        match self {
            Command::Run(args) => run::run(args, pool),
            Command::Eval(args) => eval::run(args),
            Command::Generate(args) => generate::run(args),
            Command::Sweep(args) => sweep::run(args, pool),
            Command::Subscribe(args) => subscribe::run(args),
            Command::Stats(args) => stats::run(args),
            Command::Stories(args) => stories::run(args),
            Command::Doctor(args) => doctor::run(args),
            Command::Serve(args) => serve::run(args),
            Command::Worker(args) => worker::run(args, pool),
            Command::Enqueue(args) => enqueue::run(args),
            Command::Completions(args) => completions::completions(args.shell),
            Command::Man => completions::man(),
        }
    }
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
    pub fn apply(&self, cfg: &mut perps_news::config::PipelineConfig) {
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
