//! The pipeline file (`pipelines/*.toml`) and its environment overrides.
//!
//! Every option has a doc comment and a default, and unknown keys are errors, so a typo in a
//! pipeline file fails loudly instead of silently running with a default. Precedence, lowest
//! first: built-in defaults, the pipeline file, environment variables, command-line flags.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

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
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            name: "default".into(),
            ingest: IngestConfig::default(),
            embed: EmbedConfig::default(),
            cluster: ClusterConfig::default(),
            label: LabelConfig::default(),
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
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            batch_size: 20,
            max_article_bytes: 1 << 20,
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
}

impl Default for EmbedConfig {
    fn default() -> Self {
        EmbedConfig {
            provider: "hashing".into(),
            dim: 1024,
            hashing: HashingConfig::default(),
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
    /// Only the first this many body tokens are used: the lead carries the event, the tail
    /// carries background that glues unrelated stories together.
    pub body_max_tokens: usize,
}

impl Default for HashingConfig {
    fn default() -> Self {
        HashingConfig {
            title_weight: 2.0,
            bigram_weight: 0.5,
            name_weight: 3.0,
            body_max_tokens: 500,
        }
    }
}

/// `[cluster]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Minimum cosine similarity between an article and a story centroid for the article to
    /// join the story; below it the article opens a new story.
    pub threshold: f32,
    /// Similarity lost per hour between an article and its story's latest article. News
    /// stories break in bursts: an article hours after a story went quiet needs to be
    /// closer to join it, and two look-alike events (two exchange hacks on one day) stay
    /// apart. Capped at `window_hours`.
    pub time_penalty_per_hour: f32,
    /// A story with no new article for this many hours goes inactive and takes no more
    /// articles.
    pub window_hours: f64,
    /// Inactive stories are kept (for lookups and duplicate detection, without vectors) for
    /// this many hours past going inactive, then pruned from the state.
    pub retain_hours: f64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            threshold: 0.18,
            time_penalty_per_hour: 0.1,
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
}

impl Default for LabelConfig {
    fn default() -> Self {
        LabelConfig {
            provider: "extractive".into(),
            top_terms: 5,
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
    /// environment). Recognised: `CLUSTER_BATCH_SIZE`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable when a value does not parse or is out of range.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<()> {
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
        let (w, r) = (self.cluster.window_hours, self.cluster.retain_hours);
        if w.is_nan() || w <= 0.0 || r.is_nan() || r < 0.0 {
            return bad("cluster.window_hours must be > 0 and retain_hours >= 0".into());
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
        let err = cfg.apply_env(|_| Some("many".into())).unwrap_err();
        assert!(err.to_string().contains("CLUSTER_BATCH_SIZE"), "{err}");
    }
}
