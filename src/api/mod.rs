//! OpenAI-compatible HTTP APIs (OpenRouter by default; OpenAI, Ollama, vLLM and TEI work the
//! same way with another base URL): one client with retries, a circuit breaker, and a
//! bounded pool of I/O threads. The providers built on it are `embed/openai.rs` and
//! `label/llm.rs`.
//!
//! Retry rules (see NOTES: OpenRouter / OpenAI-compatible APIs): 408, 429, 5xx, OpenRouter's
//! temporary 402, timeouts, connection failures, and unusable bodies are retried with
//! exponential backoff and full jitter, or after `Retry-After` when the server sends one
//! (capped); 400, 401, 403, 404 and other 4xx fail at once. Errors that arrive as HTTP 200
//! with an `error` body are treated by the code they carry.

mod config;
pub use config::ApiConfig;

pub mod breaker;

use std::fmt;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use breaker::{Alerts, Breaker};

/// OpenRouter's API, the default base URL.
pub const OPENROUTER_BASE_URL: &str = "https://openrouter.ai/api/v1";

/// Largest response body read (embeddings of 64 inputs × 3072 floats as JSON fit easily).
const MAX_BODY_BYTES: u64 = 64 << 20;

/// An API key: never printed, whatever formats it.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a key (trimmed).
    pub fn new(key: &str) -> Self {
        Secret(key.trim().to_string())
    }

    /// Whether there is no key.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "Secret(none)"
        } else {
            "Secret(***)"
        })
    }
}

/// How calls are retried and bounded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included (at least 1).
    pub attempts: u32,
    /// Backoff before the second attempt; doubles each time, with full jitter.
    pub backoff: Duration,
    /// Upper bound of one wait, `Retry-After` included.
    pub max_backoff: Duration,
    /// Whole-request timeout (connect, send, and read the body).
    pub timeout: Duration,
}

/// Why a call failed, after its retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// Worth trying again later or elsewhere (rate limit, server error, timeout, garbage).
    Transient(String),
    /// The request itself is wrong (unknown model, bad input): retrying cannot help.
    Permanent(String),
    /// The configuration can never work: the key is refused (401/403) or the model's vectors
    /// have another dimension. Every later call would fail alike, so the run stops.
    Config(String),
    /// The breaker is open: the provider was not called.
    BreakerOpen(String),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Transient(m) | CallError::Permanent(m) | CallError::Config(m) => {
                f.write_str(m)
            }
            CallError::BreakerOpen(m) => write!(f, "circuit breaker open ({m})"),
        }
    }
}

/// Why a 200 reply could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// Garbled (truncated, wrong count, bad numbers): worth another attempt.
    Retry(String),
    /// Wrong in a way a retry will not change: fail the call.
    Permanent(String),
    /// Wrong for every call under this configuration (the model's dimension): see
    /// [`CallError::Config`].
    Config(String),
}

/// Everything a provider needs besides its config section: where breaker openings go, and
/// the cache for LLM replies (Redis DB 1 under `<prefix>llm:` when the run uses Redis).
#[derive(Clone, Default)]
pub struct Context {
    /// Breaker openings.
    pub alerts: Alerts,
    /// Cache of LLM replies (None: in memory for the run).
    pub llm_cache: Option<Arc<dyn crate::store::Cache>>,
}

impl Context {
    /// The LLM reply cache: the run's (Redis) one, else a bounded one in memory.
    pub fn llm_cache_or_memory(&self) -> Arc<dyn crate::store::Cache> {
        match &self.llm_cache {
            Some(c) => c.clone(),
            None => Arc::new(crate::store::memory::MemoryCache::new(10_000)),
        }
    }
}

/// Why one attempt failed.
struct Failure {
    reason: String,
    /// Worth another attempt.
    retry: bool,
    /// A configuration error (see [`CallError::Config`]).
    config: bool,
    /// The server's `Retry-After`.
    after: Option<Duration>,
}

impl Failure {
    fn retry(reason: String, after: Option<Duration>) -> Self {
        Failure {
            reason,
            retry: true,
            config: false,
            after,
        }
    }
}

/// Counters of one client, shared by its threads.
#[derive(Debug, Default)]
pub struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    failures: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
}

/// Network counters of a run, as reported in the summary's `api` block.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiReport {
    /// HTTP requests sent (retries included).
    pub requests: u64,
    /// Of those, retries.
    pub retries: u64,
    /// Calls that failed after their retries (or were refused by an open breaker).
    pub failures: u64,
    /// Request bytes sent.
    pub bytes_sent: u64,
    /// Response bytes received.
    pub bytes_received: u64,
    /// Articles whose embedding failed; kept for the next run.
    pub deferred: u64,
    /// Items served by a fallback model after the primary failed.
    pub fallback_items: u64,
    /// Stories whose LLM label failed or did not parse and that got the extractive label.
    pub label_fallbacks: u64,
    /// LLM replies answered from the cache.
    pub llm_cache_hits: u64,
    /// Stories whose LLM reply carried no usable direction and that got the offline one.
    #[serde(default)]
    pub direction_fallbacks: u64,
}

impl ApiReport {
    /// Adds another report's counts.
    pub fn add(&mut self, o: &ApiReport) {
        self.requests += o.requests;
        self.retries += o.retries;
        self.failures += o.failures;
        self.bytes_sent += o.bytes_sent;
        self.bytes_received += o.bytes_received;
        self.deferred += o.deferred;
        self.fallback_items += o.fallback_items;
        self.direction_fallbacks += o.direction_fallbacks;
        self.label_fallbacks += o.label_fallbacks;
        self.llm_cache_hits += o.llm_cache_hits;
    }
}

impl Counters {
    /// The network part of a report.
    pub fn report(&self) -> ApiReport {
        ApiReport {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
            ..ApiReport::default()
        }
    }
}

/// A client for one model at one OpenAI-compatible endpoint.
pub struct Client {
    base: String,
    model: String,
    key: Secret,
    agent: ureq::Agent,
    policy: RetryPolicy,
    breaker: Arc<Breaker>,
    counters: Arc<Counters>,
    jitter: Mutex<u64>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("model", &self.model)
            .field("key", &self.key)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `model` at `base` (e.g. `https://openrouter.ai/api/v1`), sharing
    /// `breaker` and `counters` with the other clients of the same provider.
    pub fn new(
        base: &str,
        model: &str,
        key: Secret,
        policy: RetryPolicy,
        breaker: Arc<Breaker>,
        counters: Arc<Counters>,
    ) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(policy.timeout))
            .http_status_as_error(false)
            .user_agent(concat!("perps-news/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let seed = crate::time::now_millis() as u64 ^ xxhash_rust::xxh3::xxh3_64(model.as_bytes());
        Client {
            base: base.trim_end_matches('/').to_string(),
            model: model.to_string(),
            key,
            agent,
            policy,
            breaker,
            counters,
            jitter: Mutex::new(seed | 1),
        }
    }

    /// The model this client asks for.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The breaker guarding this client's provider.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// POSTs `body` to `{base}{path}` and returns the parsed JSON reply, retrying as the
    /// module documents; `validate` turns a 200 reply into the caller's value or a reason it
    /// is unusable (retried unless [`Invalid::Permanent`]: a garbled reply is usually a
    /// proxy's hiccup).
    ///
    /// # Errors
    /// [`CallError`] once the attempts are spent, at once for a permanent failure, or
    /// without calling when the breaker is open.
    pub fn post<T>(
        &self,
        path: &str,
        body: &serde_json::Value,
        validate: impl Fn(&[u8]) -> Result<T, Invalid>,
    ) -> Result<T, CallError> {
        self.breaker.allow().map_err(CallError::BreakerOpen)?;
        let url = format!("{}{path}", self.base);
        let payload = serde_json::to_vec(body).unwrap_or_default();
        let mut last = String::new();
        for attempt in 0..self.policy.attempts.max(1) {
            if attempt > 0 {
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
            }
            let started = Instant::now();
            let mut failure = match self.attempt(&url, &payload) {
                Ok(body) => match validate(&body) {
                    Ok(t) => {
                        self.breaker.success();
                        tracing::debug!(model = %self.model, path, attempt, ms = started.elapsed().as_millis() as u64, "API call done.");
                        return Ok(t);
                    }
                    Err(Invalid::Retry(reason)) => {
                        Failure::retry(format!("unusable reply: {reason}"), None)
                    }
                    Err(Invalid::Permanent(reason)) => Failure {
                        reason: format!("unusable reply: {reason}"),
                        retry: false,
                        config: false,
                        after: None,
                    },
                    Err(Invalid::Config(reason)) => Failure {
                        reason: format!("unusable reply: {reason}"),
                        retry: false,
                        config: true,
                        after: None,
                    },
                },
                Err(f) => f,
            };
            // A server may echo the request (headers included) in an error body.
            failure.reason = self.scrub(failure.reason);
            if !failure.retry {
                self.counters.failures.fetch_add(1, Ordering::Relaxed);
                // A permanent error says nothing about the provider's health.
                tracing::warn!(model = %self.model, path, reason = %failure.reason, "API call failed (not retried).");
                if failure.config {
                    return Err(CallError::Config(format!(
                        "{}: {}",
                        self.model, failure.reason
                    )));
                }
                return Err(CallError::Permanent(failure.reason));
            }
            tracing::debug!(model = %self.model, path, attempt, reason = %failure.reason, "API call failed; may retry.");
            last = failure.reason;
            if attempt + 1 < self.policy.attempts {
                std::thread::sleep(self.wait(attempt, failure.after));
            }
        }
        self.counters.failures.fetch_add(1, Ordering::Relaxed);
        self.breaker.failure(&last);
        tracing::warn!(model = %self.model, path, attempts = self.policy.attempts, reason = %last, "API call failed after retries.");
        Err(CallError::Transient(format!(
            "{} after {} attempts: {last}",
            self.model, self.policy.attempts
        )))
    }

    /// One request: the body of a usable 2xx reply (checked to be JSON with no `error`).
    fn attempt(&self, url: &str, payload: &[u8]) -> Result<Vec<u8>, Failure> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        self.counters
            .bytes_sent
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        let mut req = self
            .agent
            .post(url)
            .header("Content-Type", "application/json");
        if !self.key.is_empty() {
            req = req.header("Authorization", format!("Bearer {}", self.key.expose()));
        }
        let mut resp = match req.send(payload) {
            Ok(r) => r,
            // Transport failures (refused, reset, timeout) are worth another try. ureq's
            // messages name the host, never the headers, so no key can leak through them.
            Err(e) => {
                return Err(Failure::retry(format!("request failed: {e}"), None));
            }
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let mut bytes = Vec::new();
        let read = resp
            .body_mut()
            .as_reader()
            .take(MAX_BODY_BYTES)
            .read_to_end(&mut bytes);
        self.counters
            .bytes_received
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if let Err(e) = read {
            return Err(Failure::retry(
                format!("HTTP {status}: reading the body failed: {e}"),
                retry_after,
            ));
        }
        if !(200..300).contains(&status) {
            let detail = error_message(&String::from_utf8_lossy(&bytes));
            let reason = format!("HTTP {status}: {detail}");
            return Err(Failure {
                reason,
                retry: retryable_status(status),
                config: refused_key(status),
                after: retry_after,
            });
        }
        // Only the `error` member is materialised; the rest is checked for syntax and
        // skipped (a reply of 64 vectors is megabytes of JSON).
        #[derive(serde::Deserialize)]
        struct Probe {
            #[serde(default)]
            error: Option<serde_json::Value>,
        }
        match serde_json::from_slice::<Probe>(&bytes) {
            Err(e) => Err(Failure::retry(
                format!("HTTP {status} but the body is not JSON ({e})"),
                None,
            )),
            // An error in a 200 body: judged by the code it carries.
            Ok(Probe { error: Some(e) }) if !e.is_null() => {
                let code = e["code"]
                    .as_u64()
                    .and_then(|c| u16::try_from(c).ok())
                    .unwrap_or(500);
                let reason = format!(
                    "error in a {status} reply (code {code}): {}",
                    error_message(&String::from_utf8_lossy(&bytes))
                );
                Err(Failure {
                    reason,
                    retry: retryable_status(code),
                    config: refused_key(code),
                    after: retry_after,
                })
            }
            Ok(_) => Ok(bytes),
        }
    }

    /// `text` with the API key (if it appears) masked.
    fn scrub(&self, text: String) -> String {
        let key = self.key.expose();
        if key.len() >= 4 && text.contains(key) {
            text.replace(key, "***")
        } else {
            text
        }
    }

    /// The wait before retry number `attempt + 1`: `Retry-After` if the server gave one,
    /// else `backoff × 2^attempt` with full jitter; both capped by `max_backoff`.
    fn wait(&self, attempt: u32, after: Option<Duration>) -> Duration {
        if let Some(d) = after {
            return d.min(self.policy.max_backoff);
        }
        let ceiling = self
            .policy
            .backoff
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.policy.max_backoff);
        let mut s = self
            .jitter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // xorshift: enough to spread retries of concurrent requests apart.
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        let frac = (*s >> 11) as f64 / (1u64 << 53) as f64;
        ceiling.mul_f64(0.5 + 0.5 * frac)
    }
}

/// 408, 409 (lock contention on some servers), 429, 5xx, and OpenRouter's temporary 402.
/// 401/403: the API refuses the key (missing, wrong, revoked or without access to the
/// model), for every request alike.
fn refused_key(code: u16) -> bool {
    matches!(code, 401 | 403)
}

fn retryable_status(code: u16) -> bool {
    matches!(code, 402 | 408 | 409 | 429) || (500..600).contains(&code)
}

/// `Retry-After` as delta seconds (fractions allowed). HTTP dates are ignored (backoff
/// applies): API servers send seconds.
fn parse_retry_after(v: &str) -> Option<Duration> {
    let secs: f64 = v.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

/// The most telling part of an error body: `error.message`, else the text (shortened).
fn error_message(text: &str) -> String {
    let from_json = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| {
            v.get("error").map(|e| match e {
                serde_json::Value::String(s) => s.clone(),
                other => other
                    .get("message")
                    .and_then(|m| m.as_str())
                    .map_or_else(|| other.to_string(), str::to_string),
            })
        });
    let msg = from_json.unwrap_or_else(|| text.trim().to_string());
    let mut short: String = msg.chars().take(200).collect();
    if short.len() < msg.len() {
        short.push('…');
    }
    if short.is_empty() {
        "(empty body)".into()
    } else {
        short
    }
}

/// Runs `f` over `jobs` on at most `threads` scoped I/O threads (not the rayon pool: these
/// threads mostly wait on the network), returning results in job order.
pub fn run_concurrent<T: Sync, R: Send>(
    jobs: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let n = threads.clamp(1, jobs.len().max(1));
    if n == 1 {
        return jobs.iter().map(&f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<R>>> = jobs.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..n {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    let r = f(job);
                    *slots[i]
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(r);
                }
            });
        }
    });
    slots
        .into_iter()
        .filter_map(|m| {
            m.into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        })
        .collect()
}

/// A provider's primary client and optional fallback, sharing one set of counters; each
/// model has its own breaker, named `<kind>:<model>`.
pub struct Clients {
    /// The configured model.
    pub primary: Client,
    /// The model that takes over what the primary failed.
    pub fallback: Option<Client>,
    /// Requests and bytes of both.
    pub counters: Arc<Counters>,
}

impl Clients {
    /// Clients for `model` at `[api] base_url` and, when `fallback` names a model, for it
    /// at `fallback_base` (empty: the same base URL). `section` names the config section in
    /// errors.
    ///
    /// # Errors
    /// [`crate::Error::Config`] when no model is named, or OpenRouter is the endpoint and
    /// its key is not set (other endpoints, such as a local server, may need no key).
    pub fn build(
        cfg: &ApiConfig,
        ctx: &Context,
        section: &str,
        kind: &str,
        (model, model_env): (&str, &str),
        fallback: &str,
        fallback_base: &str,
    ) -> crate::Result<Self> {
        let bad = |message: String| crate::Error::Config {
            origin: section.into(),
            message,
        };
        if model.trim().is_empty() {
            return Err(bad(format!("no model: set {section}.model or {model_env}")));
        }
        let key = key_from_env(&cfg.api_key_env);
        if key.is_empty() && cfg.base_url.contains("openrouter.ai") {
            return Err(bad(format!(
                "{} is not set (OpenRouter needs an API key)",
                cfg.api_key_env
            )));
        }
        let counters = Arc::new(Counters::default());
        let cooldown = Duration::from_secs_f64(cfg.breaker_cooldown_secs.max(0.0));
        let client = |base: &str, model: &str| {
            let breaker = Breaker::new(
                &format!("{kind}:{model}"),
                cfg.breaker_failures,
                cooldown,
                ctx.alerts.clone(),
            );
            Client::new(
                base,
                model,
                key.clone(),
                cfg.policy(),
                Arc::new(breaker),
                counters.clone(),
            )
        };
        let primary = client(&cfg.base_url, model.trim());
        let fallback = (!fallback.trim().is_empty()).then(|| {
            let base = if fallback_base.is_empty() {
                &cfg.base_url
            } else {
                fallback_base
            };
            client(base, fallback.trim())
        });
        Ok(Clients {
            primary,
            fallback,
            counters,
        })
    }
}

/// The API key from the environment variable `var` (default `OPENROUTER_API_KEY`).
pub fn key_from_env(var: &str) -> Secret {
    let name = if var.is_empty() {
        "OPENROUTER_API_KEY"
    } else {
        var
    };
    Secret::new(&std::env::var(name).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("sk-or-v1-abcdef");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        let c = Client::new(
            "http://127.0.0.1:1",
            "m",
            s,
            RetryPolicy {
                attempts: 1,
                backoff: Duration::ZERO,
                max_backoff: Duration::ZERO,
                timeout: Duration::from_millis(50),
            },
            Arc::new(Breaker::new(
                "t",
                3,
                Duration::from_secs(1),
                Alerts::default(),
            )),
            Arc::default(),
        );
        assert!(!format!("{c:?}").contains("abcdef"));
    }

    #[test]
    fn retry_after_and_status_rules() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("0.25"), Some(Duration::from_millis(250)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
        for s in [402, 408, 429, 500, 502, 503] {
            assert!(retryable_status(s), "{s}");
        }
        for s in [400, 401, 403, 404, 422] {
            assert!(!retryable_status(s), "{s}");
        }
        assert_eq!(
            error_message(r#"{"error":{"message":"No auth","code":401}}"#),
            "No auth"
        );
        assert_eq!(error_message(""), "(empty body)");
    }

    #[test]
    fn concurrent_results_keep_job_order() {
        let jobs: Vec<u32> = (0..50).collect();
        let out = run_concurrent(&jobs, 8, |j| j * 2);
        assert_eq!(out, jobs.iter().map(|j| j * 2).collect::<Vec<_>>());
    }
}
