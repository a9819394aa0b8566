//! Labelers name stories.
//!
//! # Adding a labeler
//! Write `src/label/<name>.rs` with a type implementing [`Labeler`] and a `build` function,
//! then add one [`Provider`] line to [`PROVIDERS`].

mod config;
pub use config::{LabelConfig, LlmConfig};

pub mod category;
pub mod extractive;
pub mod llm;
pub mod llm_category;

use serde::Serialize;

use crate::error::Result;

/// A story's name and characteristic terms.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoryLabel {
    /// Short human-readable headline.
    pub label: String,
    /// A few characteristic terms, most telling first.
    pub top_terms: Vec<String>,
    /// The story's category (from `label.llm.categories`), when the labeler gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// The story's direction, when the labeler gives one (the `llm` labeler); otherwise
    /// the offline scorer's stands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<crate::signals::sentiment::StoryDirection>,
}

impl StoryLabel {
    /// Writes the label into `story`: its label and terms always, its category and direction
    /// when the labeler gave one (otherwise the earlier ones stand). Every path that stores
    /// labels (a run, the labeling job) goes through here.
    pub fn apply_to(&self, story: &mut crate::story::Story) {
        story.label.clone_from(&self.label);
        story.top_terms.clone_from(&self.top_terms);
        if self.category.is_some() {
            story.category.clone_from(&self.category);
        }
        if self.direction.is_some() {
            story.llm_direction.clone_from(&self.direction);
        }
    }
}

/// What the label stage needs to know about a story that changed.
#[derive(Debug, Clone)]
pub struct StorySnapshot {
    /// Story id.
    pub id: String,
    /// Title of its most central article.
    pub rep_title: String,
    /// Accumulated title-term weights.
    pub terms: Vec<(String, f32)>,
    /// Number of articles.
    pub size: usize,
    /// Titles of the story's articles in this batch (up to [`SNAPSHOT_TITLES`], first
    /// seen first), for labelers that read them.
    pub titles: Vec<String>,
    /// The story's perp symbols, heaviest first (the `llm` labeler asks a direction for
    /// each).
    pub symbols: Vec<String>,
}

/// Batch titles kept per touched story in a [`StorySnapshot`].
pub const SNAPSHOT_TITLES: usize = 8;

/// Names stories from what the cluster stage knows about them.
pub trait Labeler: Send + Sync {
    /// The provider name.
    fn provider(&self) -> &'static str;
    /// One label per snapshot, in order.
    ///
    /// # Errors
    /// When labeling failed for the whole batch.
    fn label(&self, stories: &[StorySnapshot]) -> Result<Vec<StoryLabel>>;

    /// Whether stories are labeled once at the end of the run (each with what the whole run
    /// added) rather than after every batch: for labelers that pay per request.
    fn per_run(&self) -> bool {
        false
    }

    /// Network counters, for labelers that call an API.
    fn api_report(&self) -> Option<crate::api::ApiReport> {
        None
    }
}

/// A registry entry.
pub struct Provider {
    /// The name used in `label.provider`.
    pub name: &'static str,
    /// A pipeline snippet selecting it (checked by a test).
    pub example: &'static str,
    /// Builds it from `[label]` and `[api]`.
    pub build:
        fn(&LabelConfig, &crate::api::ApiConfig, &crate::api::Context) -> Result<Box<dyn Labeler>>,
}

/// Every labeler the engine knows. One line per provider.
pub const PROVIDERS: &[Provider] = &[
    Provider {
        name: "extractive",
        example: "[label]\nprovider = \"extractive\"\ntop_terms = 3\n",
        build: extractive::build,
    },
    Provider {
        name: "llm",
        example: "[label]\nprovider = \"llm\"\n[label.llm]\nmodel = \"m\"\n[api]\nbase_url = \"http://127.0.0.1:9/v1\"\n",
        build: llm::build,
    },
];

/// Builds the labeler named in `cfg.provider`.
///
/// # Errors
/// [`crate::Error::Config`] for an unknown provider.
pub fn build(
    cfg: &LabelConfig,
    api: &crate::api::ApiConfig,
    ctx: &crate::api::Context,
) -> Result<Box<dyn Labeler>> {
    let p = PROVIDERS
        .iter()
        .find(|p| p.name == cfg.provider)
        .ok_or_else(|| crate::Error::Config {
            origin: "label.provider".into(),
            message: format!("unknown labeler {:?}", cfg.provider),
        })?;
    (p.build)(cfg, api, ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sections a registry example may hold (`config.rs` checks the examples as whole
    /// pipelines too).
    #[derive(serde::Deserialize)]
    struct Example {
        label: LabelConfig,
        #[serde(default)]
        api: crate::api::ApiConfig,
    }

    #[test]
    fn every_registry_example_parses_and_builds() {
        for p in PROVIDERS {
            let ex: Example = toml::from_str(p.example).unwrap();
            assert_eq!(
                build(&ex.label, &ex.api, &crate::api::Context::default())
                    .unwrap()
                    .provider(),
                p.name
            );
        }
    }
}
