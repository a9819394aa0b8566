//! `[events]`: when a story's `news:story` event goes out, and what story records carry.

use serde::{Deserialize, Serialize};

/// `[events]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Seconds of the state's clock (article time, not wall time: a replay decides the
    /// same) between two `updated` events of one story. Changes held back go out with the
    /// story's next event.
    pub update_min_secs: u64,
    /// An `updated` event goes out when the story's importance crosses a multiple of this
    /// (0 = importance changes alone never send one).
    pub importance_step: f64,
    /// Member articles a story record and its events carry (the latest ones; the record
    /// counts the rest in `members_omitted`).
    pub member_articles: usize,
    /// Also publish every event on `news:symbol:<SYMBOL>`, once per symbol of the story
    /// (pub/sub only: the durable stream stays `news:story`).
    pub symbol_channels: bool,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            update_min_secs: 60,
            importance_step: 10.0,
            member_articles: crate::story::DEFAULT_MEMBER_ARTICLES,
            symbol_channels: true,
        }
    }
}

impl EventsConfig {
    /// Checks the values.
    ///
    /// # Errors
    /// A message naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.importance_step.is_finite() && self.importance_step >= 0.0) {
            return Err(format!(
                "events.importance_step must be a number >= 0 (got {})",
                self.importance_step
            ));
        }
        if self.member_articles > 10_000 {
            return Err(format!(
                "events.member_articles must be at most 10000 (got {})",
                self.member_articles
            ));
        }
        Ok(())
    }
}
