//! The pipeline file (`pipelines/*.toml`) and its environment overrides.
//!
//! Every option has a doc comment and a default, and unknown keys are errors, so a typo in a
//! pipeline file fails loudly instead of silently running with a default. Precedence, lowest
//! first: built-in defaults, the pipeline file, environment variables, command-line flags.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Every environment variable perps-news reads, with what it sets. [`PipelineConfig::apply_env`]
/// reads the pipeline's; the command line reads the others (clap `env`). Tests clear them all
/// so a variable of the machine they run on cannot change a result.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("REDIS_URL", "redis.url"),
    ("REDIS_HOST", "redis.host"),
    ("REDIS_PORT", "redis.port"),
    ("REDIS_USERNAME", "redis.username"),
    ("REDIS_PASSWORD", "redis.password"),
    ("REDIS_PASSWORD_FILE", "redis.password_file"),
    ("REDIS_CACHE_DB", "redis.cache_db"),
    ("REDIS_CACHE_PREFIX", "redis.cache_prefix"),
    ("REDIS_QUEUE_DB", "redis.queue_db"),
    ("REDIS_CACHE_URL", "redis.cache_url"),
    ("PERPS_NEWS_STATE_DIR", "redis.state_dir (where relative fallback files go)"),
    ("STATE_DIRECTORY", "the default state_dir under systemd (StateDirectory=)"),
    ("XDG_STATE_HOME", "the default state_dir: $XDG_STATE_HOME/perps-news"),
    ("HOME", "the default state_dir: ~/.local/state/perps-news"),
    ("OPENROUTER_BASE_URL", "api.base_url"),
    ("OPENROUTER_CONCURRENCY", "api.concurrency"),
    ("OPENROUTER_EMBED_MODEL", "embed.openai.model"),
    ("OPENROUTER_CHAT_MODEL", "label.llm.model"),
    ("OPENROUTER_FALLBACK_MODEL", "label.llm.fallback_model"),
    ("NEWS_WORKER_ALLOWED_DIRS", "worker.allowed_dirs"),
    ("CLUSTER_BATCH_SIZE", "ingest.batch_size"),
    ("OPENROUTER_API_KEY", "the API key (the variable api.api_key_env names)"),
    ("NEWS_WORKER_CONCURRENCY", "worker --concurrency"),
    ("PERPS_NEWS_NOW", "run --now"),
    ("RUST_LOG", "log filter"),
    ("NO_COLOR", "no colour in logs"),
    ("PERPS_NEWS_TEST_JOB_DELAY_MS", "test only: every worker job sleeps this long first"),
];

/// The configuration every command runs with: the pipeline file (or the built-in default),
/// then the environment, then `--redis-url`. Commands add their own flags after this; this is
/// the one place that reads the environment for the pipeline.
///
/// # Errors
/// [`Error::Config`] for an unreadable or invalid file or a malformed variable.
pub fn resolve(pipeline: Option<&Path>, redis_url: Option<&str>) -> Result<PipelineConfig> {
    let mut cfg = PipelineConfig::load(pipeline)?;
    cfg.apply_env(|k| std::env::var(k).ok())?;
    cfg.redis.set_url_from_command_line(redis_url);
    Ok(cfg)
}

/// The pipeline `run` uses when no `--pipeline` is given; identical to the built-in defaults
/// (a test keeps them in step).
pub const DEFAULT_PIPELINE: &str = include_str!("../pipelines/default.toml");

/// A whole pipeline declaration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// A name for logs and summaries.
    pub name: String,
    /// Reading and batching input.
    pub ingest: IngestConfig,
    /// Turning articles into vectors.
    pub embed: EmbedConfig,
    /// Grouping articles into stories.
    pub cluster: ClusterConfig,
    /// Naming stories.
    pub label: LabelConfig,
    /// Redis: cache, story state and the message bus (`perps-news run --redis`).
    pub redis: RedisConfig,
    /// The spool directory timer-driven runs read from.
    pub spool: SpoolConfig,
    /// The queue worker (`perps-news worker`).
    pub worker: WorkerConfig,
    /// The dashboard HTTP server (`perps-news serve`).
    pub serve: ServeConfig,
    /// Trader-facing signals: symbols, heat, breaking.
    pub signals: SignalsConfig,
    /// The OpenAI-compatible HTTP API behind the `openai` embedder and the `llm` labeler.
    pub api: ApiConfig,
    /// Syndicated-copy detection.
    pub syndication: crate::syndication::SyndicationConfig,
    /// Per-source settings, keyed by the articles' `source` (domain or name, matched without
    /// case).
    pub sources: std::collections::BTreeMap<String, SourceConfig>,
}

/// `[sources."name"]`: settings for one source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    /// Look for syndicated copies among this source's articles (`false` for a feed where
    /// detection misfires: its articles are then never copies nor originals of copies).
    pub syndication: bool,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig { syndication: true }
    }
}

impl PipelineConfig {
    /// Sources with `syndication = false`, lowercased.
    pub fn syndication_off(&self) -> std::collections::HashSet<String> {
        self.sources
            .iter()
            .filter(|(_, c)| !c.syndication)
            .map(|(name, _)| name.to_lowercase())
            .collect()
    }
}

/// `[api]`: the OpenAI-compatible endpoint (OpenRouter by default) shared by the `openai`
/// embedder and the `llm` labeler: where, which key, how many requests at once, and how
/// failures are retried and broken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Base URL, up to and including the version (env `OPENROUTER_BASE_URL`).
    pub base_url: String,
    /// The environment variable holding the API key (the key itself is never in a file).
    pub api_key_env: String,
    /// Requests in flight at once, per provider (env `OPENROUTER_CONCURRENCY`).
    pub concurrency: usize,
    /// Whole-request timeout.
    pub timeout_secs: f64,
    /// Attempts per request, the first included.
    pub attempts: u32,
    /// Backoff before the first retry; doubles each retry, with jitter.
    pub backoff_ms: u64,
    /// Longest single wait, `Retry-After` included.
    pub max_backoff_ms: u64,
    /// Calls failing in a row (each after its retries) that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker refuses calls before one probe is let through.
    pub breaker_cooldown_secs: f64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            base_url: crate::api::OPENROUTER_BASE_URL.into(),
            api_key_env: "OPENROUTER_API_KEY".into(),
            concurrency: 8,
            timeout_secs: 30.0,
            attempts: 5,
            backoff_ms: 500,
            max_backoff_ms: 20_000,
            breaker_failures: 5,
            breaker_cooldown_secs: 30.0,
        }
    }
}

impl ApiConfig {
    /// The retry policy these settings describe.
    pub fn policy(&self) -> crate::api::RetryPolicy {
        crate::api::RetryPolicy {
            attempts: self.attempts.max(1),
            backoff: std::time::Duration::from_millis(self.backoff_ms),
            max_backoff: std::time::Duration::from_millis(self.max_backoff_ms),
            timeout: std::time::Duration::from_secs_f64(self.timeout_secs.max(0.001)),
        }
    }
}

/// `[signals]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignalsConfig {
    /// Symbol dictionary file; empty = the shipped `pipelines/symbols.toml`.
    pub symbols_path: String,
    /// Body characters scanned for symbols (the lead; titles are always scanned).
    pub symbols_body_chars: usize,
    /// A story turns breaking when this many distinct sources carry it within
    /// `breaking_window_minutes` (0 disables).
    pub breaking_sources: usize,
    /// The window for `breaking_sources`.
    pub breaking_window_minutes: f64,
    /// Heat time constant: a source's contribution decays as `exp(-age / tau)`.
    pub heat_tau_hours: f64,
}

impl Default for SignalsConfig {
    fn default() -> Self {
        SignalsConfig {
            symbols_path: String::new(),
            symbols_body_chars: 120,
            breaking_sources: 3,
            breaking_window_minutes: 30.0,
            heat_tau_hours: 6.0,
        }
    }
}

/// `[spool]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    /// When set and `run` is given no inputs, the run processes the files in `<dir>/inbox`
    /// (claimed into `claimed/`, then moved to `done/` or `failed/`).
    pub dir: String,
}

/// `[worker]`: what jobs of the queue worker may read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Directories `{"path": ...}` jobs may read from (after resolving symlinks; env
    /// `NEWS_WORKER_ALLOWED_DIRS`, separated by `:`); empty =
    /// the spool directory (`[spool] dir`), and with no spool directory path jobs are
    /// refused. A job names a file; it must not be able to name any file the worker can read.
    pub allowed_dirs: Vec<String>,
    /// Largest file a path job may read, in bytes (a dump is read whole into memory).
    pub max_job_bytes: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            allowed_dirs: Vec::new(),
            max_job_bytes: 64 * 1024 * 1024,
        }
    }
}

/// `[serve]`: who may use `perps-news serve`, and how much of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// Accepted `Host` header names (any port): a page of another origin that reaches the
    /// server through DNS rebinding carries its own name and is refused.
    pub allowed_hosts: Vec<String>,
    /// The environment variable holding a bearer token; when it is set and not empty, every
    /// endpoint but `/healthz` needs `Authorization: Bearer <token>`.
    pub token_env: String,
    /// Bus channel patterns `/api/events` relays (Redis glob patterns).
    pub channels: Vec<String>,
    /// Event-stream clients at once (they share one Redis subscription); more get a 503.
    pub max_event_clients: usize,
    /// Other connections being served at once; more get a 503.
    pub max_connections: usize,
    /// Time a client has to send its whole request header.
    pub header_timeout_ms: u64,
    /// Largest request header accepted.
    pub max_header_bytes: usize,
    /// The one origin whose pages may read the API from a browser (CORS), e.g.
    /// `https://desk.example.com`, or `*` for any; empty = none (the default: only
    /// same-origin pages and non-browser clients).
    pub cors_origin: String,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            token_env: "PERPS_NEWS_SERVE_TOKEN".into(),
            channels: vec!["news:*".into()],
            max_event_clients: 32,
            max_connections: 32,
            header_timeout_ms: 5000,
            max_header_bytes: 8192,
            cors_origin: String::new(),
        }
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            name: "default".into(),
            ingest: IngestConfig::default(),
            embed: EmbedConfig::default(),
            cluster: ClusterConfig::default(),
            label: LabelConfig::default(),
            redis: RedisConfig::default(),
            spool: SpoolConfig::default(),
            worker: WorkerConfig::default(),
            serve: ServeConfig::default(),
            signals: SignalsConfig::default(),
            api: ApiConfig::default(),
            syndication: crate::syndication::SyndicationConfig::default(),
            sources: std::collections::BTreeMap::new(),
        }
    }
}

/// `[ingest]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Articles per batch flowing between stages (env `CLUSTER_BATCH_SIZE`). Results do not
    /// depend on it; it trades latency per batch against per-batch overhead.
    pub batch_size: usize,
    /// Records larger than this many bytes are rejected as oversized.
    pub max_article_bytes: usize,
    /// Let big runs use bigger batches (an eighth of the run, up to 4,096): small batches
    /// cost per-batch overhead and small matrix products. `batch_size` stays the minimum;
    /// `run --batch-size` turns this off. Results do not depend on it.
    pub auto_batch: bool,
    /// How far past the run's wall clock a publication time may be (seconds). A later time
    /// cannot be true (a wrong year, a wrong time zone, a placeholder date): the article is
    /// clustered at its ingest time instead, and counted and listed as `futureDated`. One
    /// such record can then never move the state's clock past the present.
    pub max_future_secs: i64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            batch_size: 20,
            max_article_bytes: 1 << 20,
            auto_batch: true,
            max_future_secs: 3600,
        }
    }
}

/// `[embed]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbedConfig {
    /// Which embedder: one of the names in [`crate::embed::PROVIDERS`].
    pub provider: String,
    /// Vector dimension.
    pub dim: usize,
    /// Settings of the offline `hashing` embedder.
    pub hashing: HashingConfig,
    /// Settings of the `openai` embedder (any OpenAI-compatible `/embeddings` endpoint).
    pub openai: OpenAiEmbedConfig,
}

/// `[embed.openai]`: remote embeddings through `[api]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenAiEmbedConfig {
    /// Model name (env `OPENROUTER_EMBED_MODEL`). Its vectors must have `embed.dim`
    /// dimensions; a reply with another dimension is an error naming the one received.
    pub model: String,
    /// Model that takes over the inputs of a request the primary failed (empty: none). For
    /// embeddings it should be the same model served elsewhere (see `fallback_base_url`):
    /// another model's vectors live in another space.
    pub fallback_model: String,
    /// Base URL of the fallback (empty: `api.base_url`).
    pub fallback_base_url: String,
    /// Texts per `/embeddings` request.
    pub batch_size: usize,
    /// Send `embed.dim` as the request's `dimensions` (models that can shorten their vectors,
    /// such as OpenAI's text-embedding-3).
    pub send_dimensions: bool,
    /// Characters of title + body sent per article (the lead carries the event).
    pub max_input_chars: usize,
}

impl Default for OpenAiEmbedConfig {
    fn default() -> Self {
        OpenAiEmbedConfig {
            model: "openai/text-embedding-3-small".into(),
            fallback_model: String::new(),
            fallback_base_url: String::new(),
            batch_size: 64,
            send_dimensions: true,
            max_input_chars: 2000,
        }
    }
}

impl Default for EmbedConfig {
    fn default() -> Self {
        EmbedConfig {
            provider: "hashing".into(),
            dim: 1024,
            hashing: HashingConfig::default(),
            openai: OpenAiEmbedConfig::default(),
        }
    }
}

/// `[embed.hashing]`: the offline feature-hashing embedder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HashingConfig {
    /// Weight of a title token relative to a body token.
    pub title_weight: f32,
    /// Weight of a word bigram relative to a single word.
    pub bigram_weight: f32,
    /// Extra weight of capitalised words and numbers in the body (names, amounts), relative
    /// to ordinary words.
    pub name_weight: f32,
    /// Only the first this many body tokens are used. With scores decided on exact term
    /// vectors the whole of a news article helps (dev set: 500 tokens 0.886, 3,000 0.894);
    /// the cap bounds the cost of pathological inputs (a 60 kB scraped page).
    pub body_max_tokens: usize,
}

impl Default for HashingConfig {
    fn default() -> Self {
        HashingConfig {
            title_weight: 2.0,
            bigram_weight: 0.5,
            name_weight: 3.0,
            body_max_tokens: 3000,
        }
    }
}

/// `[cluster]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Minimum score (see `linkage`) between an article and a story for the article to join
    /// the story; below it the article opens a new story.
    pub threshold: f32,
    /// How an article is scored against a story: `average` (the mean cosine similarity with
    /// the story's articles) or `centroid` (the cosine similarity with the story's mean
    /// direction).
    pub linkage: Linkage,
    /// Similarity lost per hour between an article and its story's latest article. News
    /// stories break in bursts: an article hours after a story went quiet needs to be
    /// closer to join it, and two look-alike events (two exchange hacks on one day) stay
    /// apart. It starts after `time_plateau_hours` and stops growing at `time_penalty_max`.
    pub time_penalty_per_hour: f32,
    /// Hours between an article and a story's latest article that cost nothing: publishers'
    /// clocks and time zones are often off by an hour or more, and follow-ups come hours
    /// later.
    pub time_plateau_hours: f32,
    /// The most the time penalty can take off a score, however far apart the two are (the
    /// window still bounds how far). Without a cap, a feed whose clock is a few hours off
    /// could never join anything.
    pub time_penalty_max: f32,
    /// A story with no new article for this many hours goes inactive and takes no more
    /// articles.
    pub window_hours: f64,
    /// Inactive stories are kept (for lookups and duplicate detection, without vectors) for
    /// this many hours past going inactive, then pruned from the state.
    pub retain_hours: f64,
}

/// `cluster.linkage`: how an article is scored against a story.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Linkage {
    /// The mean cosine similarity with the story's articles: the centroid similarity times
    /// the story's cohesion (the length of its mean vector). A story whose articles agree
    /// little with each other is harder to join, so one loose article does not open a
    /// story to everything near it.
    Average,
    /// The cosine similarity with the story's mean direction, however spread its articles.
    Centroid,
}

impl std::fmt::Display for Linkage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Linkage::Average => "average",
            Linkage::Centroid => "centroid",
        })
    }
}

impl ClusterConfig {
    /// The score an article loses against a story whose latest article is `gap_hours` away:
    /// nothing within the plateau, then `time_penalty_per_hour` for each hour past it, at
    /// most `time_penalty_max` (and the gap is capped at the window). Never negative, so it
    /// only lowers scores and the candidate pruning stays exact.
    pub fn time_penalty(&self, gap_hours: f32) -> f32 {
        let gap = gap_hours.min(self.window_hours as f32);
        (self.time_penalty_per_hour * (gap - self.time_plateau_hours).max(0.0))
            .min(self.time_penalty_max)
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            threshold: 0.12,
            linkage: Linkage::Average,
            // Measured with scripts/time_model.py (README, "How stories are formed"): the
            // steep 0.1 an hour of before scored 0.90 on the dev set only because its crawl
            // times bunch each event into minutes; it fell to 0.76 with a third of the
            // records 2-5 h off and to 0.70 with follow-ups 6-24 h later.
            time_penalty_per_hour: 0.01,
            time_plateau_hours: 3.0,
            time_penalty_max: 0.15,
            window_hours: 48.0,
            retain_hours: 168.0,
        }
    }
}

/// `[label]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LabelConfig {
    /// Which labeler: one of the names in [`crate::label::PROVIDERS`].
    pub provider: String,
    /// How many top terms to keep per story.
    pub top_terms: usize,
    /// Settings of the `llm` labeler (chat completions through `[api]`).
    pub llm: LlmConfig,
}

impl Default for LabelConfig {
    fn default() -> Self {
        LabelConfig {
            provider: "extractive".into(),
            top_terms: 5,
            llm: LlmConfig::default(),
        }
    }
}

/// `[label.llm]`: story headlines and categories from a chat model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// Chat model (env `OPENROUTER_CHAT_MODEL`).
    pub model: String,
    /// Model asked when the primary fails (env `OPENROUTER_FALLBACK_MODEL`; empty: none).
    pub fallback_model: String,
    /// The categories a story may get; the model must answer with one of them.
    pub categories: Vec<String>,
    /// Article titles of a story shown to the model.
    pub articles: usize,
    /// Reply length limit.
    pub max_tokens: u32,
    /// Ask for a JSON object reply (`response_format`); turn off for servers without it.
    pub json_mode: bool,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            model: "openai/gpt-4o-mini".into(),
            fallback_model: String::new(),
            categories: [
                "crypto",
                "macro",
                "regulation",
                "exchange",
                "security",
                "other",
            ]
            .map(String::from)
            .to_vec(),
            articles: 5,
            max_tokens: 120,
            json_mode: true,
        }
    }
}

/// `[redis]`: where the cache, the story state and the bus live. Environment variables
/// (`REDIS_URL`, `REDIS_HOST`, `REDIS_PORT`, `REDIS_PASSWORD`, `REDIS_CACHE_DB`,
/// `REDIS_CACHE_PREFIX`, `REDIS_QUEUE_DB`, `REDIS_CACHE_URL`) override these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// Use Redis for the cache, the story state and publishing (same as `--redis`).
    pub enabled: bool,
    /// Full URL of the main server (`redis://[:password@]host:port[/db]`); when set it wins
    /// over host/port/password.
    pub url: String,
    /// Main server host.
    pub host: String,
    /// Main server port (the isolated instance, not the system Redis on 6379).
    pub port: u16,
    /// ACL user name (env `REDIS_USERNAME`); empty = the URL's user, else `default`.
    pub username: String,
    /// Password (env `REDIS_PASSWORD`). Prefer the environment or `password_file` to this
    /// file and to a password in `url` / `--redis-url`, which other users of the host can
    /// read in the process list.
    pub password: String,
    /// A file holding the password (env `REDIS_PASSWORD_FILE`; one line, read at start),
    /// used when `password` is empty.
    pub password_file: String,
    /// DB of the message bus and the story state.
    pub db: u8,
    /// DB of the cache.
    pub cache_db: u8,
    /// Prefix of every cache key.
    pub cache_prefix: String,
    /// DB of the job queues.
    pub queue_db: u8,
    /// URL of a separate cache server (with `allkeys-lru`), so eviction there cannot touch
    /// queues or state; empty = the cache DB on the main server.
    pub cache_url: String,
    /// Time to live of every cache entry, in seconds (7 days).
    pub cache_ttl_secs: u64,
    /// Timeout of every Redis call and connection attempt, in milliseconds.
    pub timeout_ms: u64,
    /// How long operations retry a lost connection before giving up, in milliseconds.
    pub retry_ms: u64,
    /// Approximate length cap of each event stream.
    pub stream_maxlen: u64,
    /// How long a run waits for another run's state lock, in seconds.
    pub lock_wait_secs: u64,
    /// Lease of the state lock, in milliseconds: a run that stalls longer (paused, swapped
    /// out) loses the lock, and its save is refused. A heartbeat renews it every third.
    pub lock_lease_ms: u64,
    /// Events that could not be published are kept here and sent by the next run (a
    /// relative path is taken in `state_dir`).
    pub spool_path: String,
    /// A local copy of the story state, used when Redis is down at the start of a run (a
    /// relative path is taken in `state_dir`).
    pub state_mirror_path: String,
    /// Directory of the files kept while Redis is down (`spool_path`, `state_mirror_path`
    /// and the mirror's side files) when their paths are relative; env
    /// `PERPS_NEWS_STATE_DIR`. Empty: systemd's `$STATE_DIRECTORY`, else
    /// `$XDG_STATE_HOME/perps-news`, else `~/.local/state/perps-news` (never the current
    /// directory, which is wherever the command happened to be started). Created when a
    /// file is first written there.
    pub state_dir: String,
}

impl RedisConfig {
    /// The directory relative fallback files go to (see [`RedisConfig::state_dir`]).
    fn resolved_state_dir(&self, var: &impl Fn(&str) -> Option<String>) -> PathBuf {
        let set = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        if !self.state_dir.is_empty() {
            return PathBuf::from(&self.state_dir);
        }
        if let Some(d) = set("STATE_DIRECTORY") {
            // systemd lists one directory per StateDirectory= entry, colon-separated.
            return PathBuf::from(d.split(':').next().unwrap_or(&d));
        }
        if let Some(d) = set("XDG_STATE_HOME") {
            return Path::new(&d).join("perps-news");
        }
        if let Some(h) = set("HOME") {
            return Path::new(&h).join(".local/state/perps-news");
        }
        PathBuf::from(".")
    }

    /// Takes `--redis-url`, warning when it carries a password: command lines are visible
    /// to every user of the host (`ps`, `/proc/*/cmdline`).
    pub fn set_url_from_command_line(&mut self, url: Option<&str>) {
        let Some(url) = url else {
            return;
        };
        let has_password = url
            .split_once("://")
            .and_then(|(_, rest)| rest.split('/').next())
            .and_then(|authority| authority.rsplit_once('@'))
            .is_some_and(|(userinfo, _)| userinfo.contains(':'));
        if has_password {
            tracing::warn!(
                "The password in --redis-url is visible to every user of this host in the process list; use REDIS_PASSWORD or REDIS_PASSWORD_FILE (or [redis] password_file) instead."
            );
        }
        self.url = url.to_string();
    }

    /// The password to authenticate with: `password`, else the contents of `password_file`
    /// (its first line), else none.
    ///
    /// # Errors
    /// [`Error::Config`] naming the file when it cannot be read (never its contents).
    pub fn resolved_password(&self) -> Result<String> {
        if !self.password.is_empty() || self.password_file.is_empty() {
            return Ok(self.password.clone());
        }
        let text = std::fs::read_to_string(&self.password_file).map_err(|e| Error::Config {
            origin: format!("redis.password_file {}", self.password_file),
            message: format!("cannot read the Redis password: {e}"),
        })?;
        Ok(text.lines().next().unwrap_or("").trim_end().to_string())
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            enabled: false,
            url: String::new(),
            host: "127.0.0.1".into(),
            port: 6380,
            username: String::new(),
            password: String::new(),
            password_file: String::new(),
            db: 0,
            cache_db: 1,
            cache_prefix: "perps:cache:".into(),
            queue_db: 2,
            cache_url: String::new(),
            cache_ttl_secs: 7 * 24 * 3600,
            timeout_ms: 2000,
            retry_ms: 10_000,
            stream_maxlen: 10_000,
            lock_wait_secs: 30,
            lock_lease_ms: 30_000,
            spool_path: "perps-news.spool.jsonl".into(),
            state_mirror_path: "perps-news.state.json".into(),
            state_dir: String::new(),
        }
    }
}

impl PipelineConfig {
    /// Parses a pipeline declaration; `origin` names it in errors.
    ///
    /// # Errors
    /// [`Error::Config`] when the TOML is invalid, has unknown keys or fails validation.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let cfg: PipelineConfig = toml::from_str(text).map_err(|e| Error::Config {
            origin: origin.into(),
            message: e.to_string(),
        })?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    /// Loads `path`, or the built-in default pipeline when `None`.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read, [`Error::Config`] when it is invalid.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
                Self::parse(&text, &p.display().to_string())
            }
            None => Self::parse(DEFAULT_PIPELINE, "pipelines/default.toml (built in)"),
        }
    }

    /// Applies environment overrides read through `var` (so tests need not touch the real
    /// environment): the pipeline's variables of [`ENV_VARS`].
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable when a value does not parse or is out of range.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<()> {
        let r = &mut self.redis;
        let num = |name: &str, v: &str| -> Result<u16> {
            v.trim().parse().map_err(|_| Error::Config {
                origin: name.into(),
                message: format!("expected a number, got {v:?}"),
            })
        };
        if let Some(v) = var("REDIS_URL") {
            r.url = v;
        }
        if let Some(v) = var("REDIS_HOST") {
            r.host = v;
        }
        if let Some(v) = var("REDIS_PORT") {
            r.port = num("REDIS_PORT", &v)?;
        }
        if let Some(v) = var("REDIS_USERNAME") {
            r.username = v;
        }
        if let Some(v) = var("REDIS_PASSWORD") {
            r.password = v;
        }
        if let Some(v) = var("REDIS_PASSWORD_FILE") {
            r.password_file = v;
        }
        if let Some(v) = var("REDIS_CACHE_DB") {
            r.cache_db = u8::try_from(num("REDIS_CACHE_DB", &v)?).unwrap_or(u8::MAX);
        }
        if let Some(v) = var("REDIS_CACHE_PREFIX") {
            r.cache_prefix = v;
        }
        if let Some(v) = var("REDIS_QUEUE_DB") {
            r.queue_db = u8::try_from(num("REDIS_QUEUE_DB", &v)?).unwrap_or(u8::MAX);
        }
        if let Some(v) = var("REDIS_CACHE_URL") {
            r.cache_url = v;
        }
        if let Some(v) = var("PERPS_NEWS_STATE_DIR") {
            r.state_dir = v;
        }
        let base = r.resolved_state_dir(&var);
        for p in [&mut r.spool_path, &mut r.state_mirror_path] {
            if Path::new(p.as_str()).is_relative() {
                *p = base.join(p.as_str()).display().to_string();
            }
        }
        if let Some(v) = var("OPENROUTER_BASE_URL") {
            self.api.base_url = v;
        }
        if let Some(v) = var("OPENROUTER_CONCURRENCY") {
            self.api.concurrency = v.trim().parse().map_err(|_| Error::Config {
                origin: "OPENROUTER_CONCURRENCY".into(),
                message: format!("expected a positive integer, got {v:?}"),
            })?;
        }
        if let Some(v) = var("OPENROUTER_EMBED_MODEL") {
            self.embed.openai.model = v;
        }
        if let Some(v) = var("OPENROUTER_CHAT_MODEL") {
            self.label.llm.model = v;
        }
        if let Some(v) = var("OPENROUTER_FALLBACK_MODEL") {
            self.label.llm.fallback_model = v;
        }
        if let Some(v) = var("NEWS_WORKER_ALLOWED_DIRS") {
            self.worker.allowed_dirs = std::env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .map(|p| p.display().to_string())
                .collect();
        }
        if let Some(v) = var("CLUSTER_BATCH_SIZE") {
            self.ingest.batch_size = v.trim().parse().map_err(|_| Error::Config {
                origin: "CLUSTER_BATCH_SIZE".into(),
                message: format!("expected a positive integer, got {v:?}"),
            })?;
        }
        self.validate("environment")
    }

    /// Checks ranges that serde cannot express.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first offending option.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let bad = |message: String| {
            Err(Error::Config {
                origin: origin.into(),
                message,
            })
        };
        if self.ingest.batch_size == 0 {
            return bad("ingest.batch_size must be at least 1".into());
        }
        if self.embed.dim == 0 || self.embed.dim > 65_536 {
            return bad(format!(
                "embed.dim must be in 1..=65536, got {}",
                self.embed.dim
            ));
        }
        if !(-1.0..=1.0).contains(&self.cluster.threshold) {
            return bad(format!(
                "cluster.threshold must be in -1..=1, got {}",
                self.cluster.threshold
            ));
        }
        if self.cluster.time_penalty_per_hour.is_nan() || self.cluster.time_penalty_per_hour < 0.0 {
            return bad("cluster.time_penalty_per_hour must be >= 0".into());
        }
        let (plateau, cap) = (
            self.cluster.time_plateau_hours,
            self.cluster.time_penalty_max,
        );
        if plateau.is_nan() || plateau < 0.0 || cap.is_nan() || cap < 0.0 {
            return bad("cluster.time_plateau_hours and time_penalty_max must be >= 0".into());
        }
        if self.ingest.max_future_secs < 0 {
            return bad("ingest.max_future_secs must be >= 0".into());
        }
        let (w, r) = (self.cluster.window_hours, self.cluster.retain_hours);
        if w.is_nan() || w <= 0.0 || r.is_nan() || r < 0.0 {
            return bad("cluster.window_hours must be > 0 and retain_hours >= 0".into());
        }
        if self.redis.cache_db > 15 || self.redis.queue_db > 15 || self.redis.db > 15 {
            return bad("redis DB numbers must be 0..=15".into());
        }
        let sv = &self.serve;
        if sv.max_event_clients == 0
            || sv.max_connections == 0
            || sv.header_timeout_ms == 0
            || sv.max_header_bytes < 256
        {
            return bad(
                "serve.max_event_clients, max_connections and header_timeout_ms must be > 0, \
                 max_header_bytes at least 256"
                    .into(),
            );
        }
        if self.redis.lock_lease_ms < 100 {
            return bad(format!(
                "redis.lock_lease_ms must be at least 100, got {}",
                self.redis.lock_lease_ms
            ));
        }
        let api = &self.api;
        if api.concurrency == 0 || api.concurrency > 256 {
            return bad(format!(
                "api.concurrency must be in 1..=256, got {}",
                api.concurrency
            ));
        }
        if api.attempts == 0
            || api.timeout_secs.is_nan()
            || api.timeout_secs <= 0.0
            || api.breaker_failures == 0
        {
            return bad(
                "api.attempts, api.timeout_secs and api.breaker_failures must be > 0".into(),
            );
        }
        if api.breaker_cooldown_secs.is_nan() || api.breaker_cooldown_secs < 0.0 {
            return bad("api.breaker_cooldown_secs must be >= 0".into());
        }
        if self.embed.openai.batch_size == 0 || self.embed.openai.batch_size > 2048 {
            return bad(format!(
                "embed.openai.batch_size must be in 1..=2048 (the OpenAI limit), got {}",
                self.embed.openai.batch_size
            ));
        }
        let t = self.syndication.threshold;
        if t.is_nan() || t <= 0.0 || t > 1.0 {
            return bad(format!("syndication.threshold must be in (0, 1], got {t}"));
        }
        if self.label.llm.categories.is_empty() {
            return bad("label.llm.categories must name at least one category".into());
        }
        if !crate::embed::PROVIDERS
            .iter()
            .any(|p| p.name == self.embed.provider)
        {
            return bad(format!(
                "embed.provider {:?} is not one of {:?}",
                self.embed.provider,
                crate::embed::PROVIDERS
                    .iter()
                    .map(|p| p.name)
                    .collect::<Vec<_>>()
            ));
        }
        if !crate::label::PROVIDERS
            .iter()
            .any(|p| p.name == self.label.provider)
        {
            return bad(format!(
                "label.provider {:?} is not one of {:?}",
                self.label.provider,
                crate::label::PROVIDERS
                    .iter()
                    .map(|p| p.name)
                    .collect::<Vec<_>>()
            ));
        }
        Ok(())
    }
}

/// A copy of `base` with dotted-key overrides applied, e.g. `("cluster.threshold", "0.2")`.
/// Values are parsed as TOML (so numbers, booleans and quoted strings work; a bare word is
/// taken as a string).
///
/// # Errors
/// [`Error::Config`] when a key does not exist or a value has the wrong type.
pub fn with_overrides(
    base: &PipelineConfig,
    overrides: &[(String, String)],
) -> Result<PipelineConfig> {
    let bad = |key: &str, message: String| Error::Config {
        origin: key.to_string(),
        message,
    };
    let mut doc = toml::Value::try_from(base).map_err(|e| bad("pipeline", e.to_string()))?;
    for (key, raw) in overrides {
        let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.clone()));
        let mut slot = &mut doc;
        for part in key.split('.') {
            slot = slot
                .get_mut(part)
                .ok_or_else(|| bad(key, format!("no option {part:?} here")))?;
        }
        *slot = value;
    }
    let cfg: PipelineConfig = doc
        .try_into()
        .map_err(|e: toml::de::Error| bad("override", e.to_string()))?;
    cfg.validate("override")?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_pipeline_variable_of_the_table_is_read() {
        // The command line, logging and the worker read these; apply_env reads the rest.
        let cli_only = [
            "OPENROUTER_API_KEY",
            "NEWS_WORKER_CONCURRENCY",
            "PERPS_NEWS_NOW",
            "RUST_LOG",
            "NO_COLOR",
            "PERPS_NEWS_TEST_JOB_DELAY_MS",
        ];
        for (name, _) in ENV_VARS.iter().filter(|(n, _)| !cli_only.contains(n)) {
            let asked = std::cell::RefCell::new(Vec::new());
            let mut cfg = PipelineConfig::default();
            let _ = cfg.apply_env(|k| {
                asked.borrow_mut().push(k.to_string());
                None
            });
            assert!(asked.borrow().iter().any(|k| k == name), "{name} is not read");
        }
        // And nothing is read that the table does not list.
        let asked = std::cell::RefCell::new(Vec::new());
        let _ = PipelineConfig::default().apply_env(|k| {
            asked.borrow_mut().push(k.to_string());
            None
        });
        for k in asked.borrow().iter() {
            assert!(ENV_VARS.iter().any(|(n, _)| n == k), "{k} is read but not listed");
        }
    }

    use super::*;

    #[test]
    fn default_file_matches_builtin_defaults() {
        let parsed = PipelineConfig::parse(DEFAULT_PIPELINE, "default.toml").unwrap();
        assert_eq!(parsed, PipelineConfig::default());
    }

    #[test]
    fn every_shipped_pipeline_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml")
                && path.file_stem() != Some("symbols".as_ref())
            {
                PipelineConfig::load(Some(&path)).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n >= 1);
    }

    #[test]
    fn unknown_keys_and_bad_ranges_are_errors() {
        let err = PipelineConfig::parse("[cluster]\nthreshhold = 0.5\n", "t.toml").unwrap_err();
        assert!(err.to_string().contains("threshhold"), "{err}");
        let err = PipelineConfig::parse("[ingest]\nbatch_size = 0\n", "t.toml").unwrap_err();
        assert!(err.to_string().contains("batch_size"), "{err}");
        let err = PipelineConfig::parse("[embed]\nprovider = \"nope\"\n", "t.toml").unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        let err = PipelineConfig::parse("[syndication]\nthreshold = 1.5\n", "t.toml").unwrap_err();
        assert!(err.to_string().contains("syndication.threshold"), "{err}");
        let err = PipelineConfig::parse("[sources.\"x.com\"]\nsyndicate = false\n", "t.toml")
            .unwrap_err();
        assert!(err.to_string().contains("syndicate"), "{err}");
        let cfg = PipelineConfig::parse(
            "[sources.\"Wire.example\"]\nsyndication = false\n[sources.\"b.com\"]\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(
            cfg.syndication_off(),
            std::collections::HashSet::from(["wire.example".to_string()])
        );
    }

    #[test]
    fn dotted_overrides_apply_and_check_keys() {
        let base = PipelineConfig::default();
        let o = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        let cfg = with_overrides(&base, &o("cluster.threshold", "0.5")).unwrap();
        assert_eq!(cfg.cluster.threshold, 0.5);
        let cfg = with_overrides(&base, &o("embed.hashing.body_max_tokens", "10")).unwrap();
        assert_eq!(cfg.embed.hashing.body_max_tokens, 10);
        assert!(with_overrides(&base, &o("cluster.nope", "1")).is_err());
        assert!(with_overrides(&base, &o("cluster.threshold", "high")).is_err());
    }

    #[test]
    fn env_overrides_file() {
        let mut cfg = PipelineConfig::parse("[ingest]\nbatch_size = 7\n", "t.toml").unwrap();
        cfg.apply_env(|k| (k == "CLUSTER_BATCH_SIZE").then(|| "1000".to_string()))
            .unwrap();
        assert_eq!(cfg.ingest.batch_size, 1000);
        let err = cfg
            .apply_env(|k| (k == "CLUSTER_BATCH_SIZE").then(|| "many".into()))
            .unwrap_err();
        assert!(err.to_string().contains("CLUSTER_BATCH_SIZE"), "{err}");
        let env = |k: &str| match k {
            "REDIS_HOST" => Some("10.0.0.5".to_string()),
            "REDIS_PORT" => Some("7000".into()),
            "REDIS_CACHE_DB" => Some("3".into()),
            "REDIS_CACHE_PREFIX" => Some("x:".into()),
            "REDIS_QUEUE_DB" => Some("4".into()),
            "REDIS_CACHE_URL" => Some("redis://127.0.0.1:6381/0".into()),
            _ => None,
        };
        let mut cfg = PipelineConfig::default();
        cfg.apply_env(env).unwrap();
        let r = &cfg.redis;
        assert_eq!(
            (r.host.as_str(), r.port, r.cache_db, r.queue_db),
            ("10.0.0.5", 7000, 3, 4)
        );
        assert_eq!(
            (r.cache_prefix.as_str(), r.cache_url.as_str()),
            ("x:", "redis://127.0.0.1:6381/0")
        );
        let err = cfg
            .apply_env(|k| (k == "REDIS_PORT").then(|| "six".into()))
            .unwrap_err();
        assert!(err.to_string().contains("REDIS_PORT"), "{err}");
        let err = cfg
            .apply_env(|k| (k == "REDIS_QUEUE_DB").then(|| "99".into()))
            .unwrap_err();
        assert!(err.to_string().contains("DB"), "{err}");
    }
}
