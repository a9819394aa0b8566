//! `[label]` and the `llm` labeler's section.

use serde::{Deserialize, Serialize};

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
