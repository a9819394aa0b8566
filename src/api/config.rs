//! `[api]`: the OpenAI-compatible endpoint the remote providers share.

use serde::{Deserialize, Serialize};

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
