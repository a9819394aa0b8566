//! The pipeline file (`pipelines/*.toml`) and its environment overrides.
//!
//! Every option has a doc comment and a default, and unknown keys are errors, so a typo in a
//! pipeline file fails loudly instead of silently running with a default. Precedence, lowest
//! first: built-in defaults, the pipeline file, environment variables, command-line flags.

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use crate::api::ApiConfig;
pub use crate::embed::{EmbedConfig, HashingConfig, OpenAiEmbedConfig};
pub use crate::label::{LabelConfig, LlmConfig};
pub use crate::signals::SignalsConfig;
pub use crate::spool::SpoolConfig;
pub use crate::stages::cluster::{ClusterConfig, Linkage};
pub use crate::stages::ingest::IngestConfig;
pub use crate::stages::publish::EventsConfig;
pub use crate::store::redis::RedisConfig;

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
    (
        "PERPS_NEWS_STATE_DIR",
        "redis.state_dir (where relative fallback files go)",
    ),
    (
        "STATE_DIRECTORY",
        "the default state_dir under systemd (StateDirectory=)",
    ),
    (
        "XDG_STATE_HOME",
        "the default state_dir: $XDG_STATE_HOME/perps-news",
    ),
    ("HOME", "the default state_dir: ~/.local/state/perps-news"),
    ("OPENROUTER_BASE_URL", "api.base_url"),
    ("OPENROUTER_CONCURRENCY", "api.concurrency"),
    ("OPENROUTER_EMBED_MODEL", "embed.openai.model"),
    ("OPENROUTER_CHAT_MODEL", "label.llm.model"),
    ("OPENROUTER_FALLBACK_MODEL", "label.llm.fallback_model"),
    ("NEWS_WORKER_ALLOWED_DIRS", "worker.allowed_dirs"),
    ("CLUSTER_BATCH_SIZE", "ingest.batch_size"),
    (
        "OPENROUTER_API_KEY",
        "the API key (the variable api.api_key_env names)",
    ),
    ("NEWS_WORKER_CONCURRENCY", "worker --concurrency"),
    ("PERPS_NEWS_NOW", "run --now"),
    ("RUST_LOG", "log filter"),
    ("NO_COLOR", "no colour in logs"),
    (
        "PERPS_NEWS_TEST_JOB_DELAY_MS",
        "test only: every worker job sleeps this long first",
    ),
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
    /// `news:story` events: when they go out, and what story records carry.
    pub events: EventsConfig,
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
            events: EventsConfig::default(),
            api: ApiConfig::default(),
            syndication: crate::syndication::SyndicationConfig::default(),
            sources: std::collections::BTreeMap::new(),
        }
    }
}

impl PipelineConfig {
    /// The `[cluster]` settings a run clusters with: `cluster.threshold` as configured, or
    /// the embedder's default when it is unset; and a warning when a configured threshold
    /// clearly belongs to another embedder's scale (see [`crate::embed::threshold_warning`]).
    pub fn cluster_settings(&self) -> (crate::stages::cluster::ClusterConfig, Option<String>) {
        let mut c = self.cluster.clone();
        let provider = self.embed.provider.as_str();
        let warning = c
            .threshold
            .and_then(|t| crate::embed::threshold_warning(provider, t));
        c.threshold
            .get_or_insert(crate::embed::default_threshold(provider));
        (c, warning)
    }

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
        if let Err(m) = self.events.validate() {
            return bad(m);
        }
        if self.embed.dim == 0 || self.embed.dim > 65_536 {
            return bad(format!(
                "embed.dim must be in 1..=65536, got {}",
                self.embed.dim
            ));
        }
        if let Some(t) = self.cluster.threshold.filter(|t| !(-1.0..=1.0).contains(t)) {
            return bad(format!("cluster.threshold must be in -1..=1, got {t}"));
        }
        let c = &self.cluster;
        if !(c.conflict_penalty >= 0.0 && c.short_terms >= 0.0 && c.short_threshold_max <= 1.0) {
            return bad(
                "cluster.conflict_penalty and short_terms must be >= 0, short_threshold_max <= 1"
                    .into(),
            );
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
        let d = self.cluster.dedup_days;
        if !(0.0..=36_500.0).contains(&d) {
            return bad(format!("cluster.dedup_days must be in 0..=36500, got {d}"));
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
        let (path, last) = key.rsplit_once('.').unwrap_or(("", key));
        let mut slot = &mut doc;
        for part in path.split('.').filter(|p| !p.is_empty()) {
            slot = slot
                .get_mut(part)
                .ok_or_else(|| bad(key, format!("no option {part:?} here")))?;
        }
        // An option left unset (`cluster.threshold`: the embedder's default) is not in the
        // serialised base; the typed parse below rejects names that are no option.
        let table = slot
            .as_table_mut()
            .ok_or_else(|| bad(key, format!("no option {last:?} here")))?;
        table.insert(last.to_string(), value);
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
    fn every_registry_example_is_a_valid_pipeline() {
        for p in crate::embed::PROVIDERS {
            let cfg = PipelineConfig::parse(p.example, p.name).unwrap();
            assert_eq!(cfg.embed.provider, p.name);
        }
        for p in crate::label::PROVIDERS {
            let cfg = PipelineConfig::parse(p.example, p.name).unwrap();
            assert_eq!(cfg.label.provider, p.name);
        }
    }

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
            assert!(
                asked.borrow().iter().any(|k| k == name),
                "{name} is not read"
            );
        }
        // And nothing is read that the table does not list.
        let asked = std::cell::RefCell::new(Vec::new());
        let _ = PipelineConfig::default().apply_env(|k| {
            asked.borrow_mut().push(k.to_string());
            None
        });
        for k in asked.borrow().iter() {
            assert!(
                ENV_VARS.iter().any(|(n, _)| n == k),
                "{k} is read but not listed"
            );
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
                && path.file_stem() != Some("sources".as_ref())
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
    fn each_embedder_brings_its_threshold_and_a_foreign_one_warns() {
        let parse = |t: &str| {
            PipelineConfig::parse(t, "t.toml")
                .unwrap()
                .cluster_settings()
        };
        let (c, w) = parse("");
        assert_eq!((c.threshold, w), (Some(0.12), None));
        let openai = "[embed]\nprovider = \"openai\"\n";
        let (c, w) = parse(openai);
        assert_eq!((c.threshold, w), (Some(0.55), None));
        // Overridable as before, and a value on the other embedder's scale warns.
        let (c, w) = parse(&format!("{openai}[cluster]\nthreshold = 0.12\n"));
        assert_eq!(c.threshold, Some(0.12));
        let w = w.expect("0.12 with openai warns");
        assert!(w.contains("hashing") && w.contains("0.55"), "{w}");
        let (_, w) = parse("[cluster]\nthreshold = 0.5\n");
        assert!(w.is_some_and(|w| w.contains("openai")));
        // Values near one's own scale are a choice, not a mistake.
        for t in ["0.2", "0.3"] {
            let (_, w) = parse(&format!("[cluster]\nthreshold = {t}\n"));
            assert_eq!(w, None, "hashing {t}");
        }
        let (_, w) = parse(&format!("{openai}[cluster]\nthreshold = 0.45\n"));
        assert_eq!(w, None);
        // An unset threshold can still be swept.
        let base = PipelineConfig::default();
        let cfg = with_overrides(&base, &[("cluster.threshold".into(), "0.3".into())]).unwrap();
        assert_eq!(cfg.cluster.threshold, Some(0.3));
    }

    #[test]
    fn dotted_overrides_apply_and_check_keys() {
        let base = PipelineConfig::default();
        let o = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        let cfg = with_overrides(&base, &o("cluster.threshold", "0.5")).unwrap();
        assert_eq!(cfg.cluster.threshold, Some(0.5));
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
