//! Labelers name stories.
//!
//! # Adding a labeler
//! Write `src/label/<name>.rs` with a type implementing [`Labeler`] and a `build` function,
//! then add one [`Provider`] line to [`PROVIDERS`].

pub mod category;
pub mod extractive;

use serde::Serialize;

use crate::config::LabelConfig;
use crate::error::Result;
use crate::stages::cluster::StorySnapshot;

/// A story's name and characteristic terms.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoryLabel {
    /// Short human-readable headline.
    pub label: String,
    /// A few characteristic terms, most telling first.
    pub top_terms: Vec<String>,
}

/// Names stories from what the cluster stage knows about them.
pub trait Labeler: Send + Sync {
    /// The provider name.
    fn provider(&self) -> &'static str;
    /// One label per snapshot, in order.
    ///
    /// # Errors
    /// When labeling failed for the whole batch.
    fn label(&self, stories: &[StorySnapshot]) -> Result<Vec<StoryLabel>>;
}

/// A registry entry.
pub struct Provider {
    /// The name used in `label.provider`.
    pub name: &'static str,
    /// A pipeline snippet selecting it (checked by a test).
    pub example: &'static str,
    /// Builds it.
    pub build: fn(&LabelConfig) -> Result<Box<dyn Labeler>>,
}

/// Every labeler the engine knows. One line per provider.
pub const PROVIDERS: &[Provider] = &[Provider {
    name: "extractive",
    example: "[label]\nprovider = \"extractive\"\ntop_terms = 3\n",
    build: extractive::build,
}];

/// Builds the labeler named in `cfg.provider`.
///
/// # Errors
/// [`crate::Error::Config`] for an unknown provider.
pub fn build(cfg: &LabelConfig) -> Result<Box<dyn Labeler>> {
    let p = PROVIDERS
        .iter()
        .find(|p| p.name == cfg.provider)
        .ok_or_else(|| crate::Error::Config {
            origin: "label.provider".into(),
            message: format!("unknown labeler {:?}", cfg.provider),
        })?;
    (p.build)(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PipelineConfig;

    #[test]
    fn every_registry_example_parses_and_builds() {
        for p in PROVIDERS {
            let cfg = PipelineConfig::parse(p.example, p.name).unwrap();
            assert_eq!(build(&cfg.label).unwrap().provider(), p.name);
        }
    }
}
