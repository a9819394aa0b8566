//! Story headlines and categories from a chat model behind an OpenAI-compatible
//! `/chat/completions` endpoint, through [`crate::api`]: one request per new or changed
//! story (its titles as context), several in flight, replies cached by model + prompt
//! (Redis DB 1 under `<prefix>llm:` when the run uses Redis). A story whose request fails
//! on the primary goes to the fallback model, all such stories at once. A reply that does
//! not parse strictly, or a story no model answered for, gets the extractive label, counted.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use xxhash_rust::xxh3::xxh3_128;

use super::extractive::{Extractive, shorten};
use super::{LabelConfig, LlmConfig};
use super::{Labeler, StoryLabel};
use crate::api::ApiConfig;
use crate::api::{self, CallError, Client, Context, Counters, Invalid};
use crate::error::Result;
use crate::label::StorySnapshot;
use crate::store::Cache;

/// Longest headline kept (longer replies are cut at a word).
const MAX_HEADLINE_CHARS: usize = 140;

const SYSTEM: &str = "You label clusters of crypto and financial news articles for a trading \
desk. Reply with only a JSON object, no other text.";

/// The `llm` labeler.
pub struct LlmLabeler {
    extractive: Extractive,
    primary: Client,
    fallback: Option<Client>,
    categories: Vec<String>,
    articles: usize,
    max_tokens: u32,
    json_mode: bool,
    concurrency: usize,
    cache: Arc<dyn Cache>,
    counters: Arc<Counters>,
    label_fallbacks: AtomicU64,
    fallback_items: AtomicU64,
    cache_hits: AtomicU64,
    direction_fallbacks: AtomicU64,
}

/// The chat clients of `[label.llm]` (labels and categories).
///
/// # Errors
/// As [`api::Clients::build`].
pub fn chat_clients(l: &LlmConfig, api: &ApiConfig, ctx: &Context) -> Result<api::Clients> {
    api::Clients::build(
        api,
        ctx,
        "label.llm",
        "chat",
        (&l.model, "OPENROUTER_CHAT_MODEL"),
        &l.fallback_model,
        "",
    )
}

/// Registry constructor.
///
/// # Errors
/// [`Error::Config`](crate::error::Error::Config) when no model is named, or OpenRouter is the endpoint and its key is
/// not set.
pub fn build(cfg: &LabelConfig, api: &ApiConfig, ctx: &Context) -> Result<Box<dyn Labeler>> {
    let l = &cfg.llm;
    let api::Clients {
        primary,
        fallback,
        counters,
    } = chat_clients(l, api, ctx)?;
    let cache = ctx.llm_cache_or_memory();
    Ok(Box::new(LlmLabeler {
        extractive: Extractive::new(cfg.top_terms),
        primary,
        fallback,
        categories: l.categories.clone(),
        articles: l.articles.max(1),
        max_tokens: l.max_tokens.max(16),
        json_mode: l.json_mode,
        concurrency: api.concurrency.max(1),
        cache,
        counters,
        label_fallbacks: AtomicU64::new(0),
        fallback_items: AtomicU64::new(0),
        cache_hits: AtomicU64::new(0),
        direction_fallbacks: AtomicU64::new(0),
    }))
}

/// A parsed reply.
#[derive(Debug, Clone, PartialEq)]
struct Reply {
    headline: String,
    category: String,
    /// `None` when the reply's direction part is missing or malformed (the offline
    /// direction is used; the label still counts).
    direction: Option<crate::signals::sentiment::StoryDirection>,
}

/// The score and confidence given to a chat model's direction: it names a direction, not a
/// strength.
const LLM_SCORE: f32 = 0.5;
const LLM_CONFIDENCE: f32 = 0.7;

fn llm_verdict(d: crate::signals::sentiment::Direction) -> crate::signals::sentiment::Verdict {
    use crate::signals::sentiment::Direction;
    let score = match d {
        Direction::Bullish => LLM_SCORE,
        Direction::Bearish => -LLM_SCORE,
        Direction::Neutral => 0.0,
    };
    crate::signals::sentiment::Verdict {
        direction: d,
        score,
        confidence: LLM_CONFIDENCE,
    }
}

impl LlmLabeler {
    /// The user prompt for one story: its titles, most central first.
    fn prompt(&self, s: &StorySnapshot) -> String {
        let mut titles: Vec<&str> = vec![s.rep_title.trim()];
        for t in &s.titles {
            if titles.len() >= self.articles {
                break;
            }
            if !titles.contains(&t.trim()) {
                titles.push(t.trim());
            }
        }
        let mut p = format!(
            "A news story of {} article{}. Headlines of its articles:\n",
            s.size,
            if s.size == 1 { "" } else { "s" }
        );
        for (i, t) in titles.iter().enumerate() {
            p.push_str(&format!("{}. {t}\n", i + 1));
        }
        let symbols: Vec<String> = s
            .symbols
            .iter()
            .map(|x| format!("\"{x}\": \"...\""))
            .collect();
        if !s.symbols.is_empty() {
            p.push_str(&format!(
                "Perp markets it touches: {}.\n",
                s.symbols.join(", ")
            ));
        }
        p.push_str(&format!(
            "\nWrite one neutral headline of at most 12 words naming the event, pick the \
             story's category from: {}, and say which way the story points for prices \
             (bullish, bearish or neutral), overall and for each market listed.\nReply with \
             only: {{\"headline\": \"...\", \"category\": \"...\", \"direction\": \"...\", \
             \"symbols\": {{{}}}}}",
            self.categories.join(", "),
            symbols.join(", ")
        ));
        p
    }

    /// The cache key of `prompt` for `model`.
    fn key(&self, model: &str, prompt: &str) -> u128 {
        let mut material = Vec::with_capacity(model.len() + prompt.len() + 64);
        material.extend_from_slice(b"chat-v2\0");
        material.extend_from_slice(model.as_bytes());
        material.push(0);
        material.extend_from_slice(&self.max_tokens.to_le_bytes());
        material.push(u8::from(self.json_mode));
        material.extend_from_slice(prompt.as_bytes());
        xxh3_128(&material)
    }

    /// One chat request; the reply's text.
    fn ask(&self, client: &Client, prompt: &str) -> std::result::Result<String, CallError> {
        chat(client, SYSTEM, prompt, self.max_tokens, self.json_mode)
    }

    /// Strict parse of a reply's text: a JSON object with a non-empty string `headline` and
    /// a `category` from the list (matched without case). Nothing else is accepted: no code
    /// fences, no prose around the object. Its direction part is strict too (see
    /// [`parse_direction`]) but on its own: a reply with a good label and a bad direction
    /// keeps the label and gets the offline direction.
    fn parse(&self, content: &str, symbols: &[String]) -> Option<Reply> {
        let v: serde_json::Value = serde_json::from_str(content.trim()).ok()?;
        let headline = v.get("headline")?.as_str()?.trim();
        let category = v.get("category")?.as_str()?.trim();
        let category = self
            .categories
            .iter()
            .find(|c| c.eq_ignore_ascii_case(category))?;
        (!headline.is_empty()).then(|| Reply {
            headline: shorten(headline, MAX_HEADLINE_CHARS),
            category: category.clone(),
            direction: parse_direction(&v, symbols),
        })
    }
}

/// The direction part of a reply: `direction` one of bullish / bearish / neutral (any case),
/// and `symbols` an object with exactly the story's `symbols` as keys, each with one of the
/// three. Anything else (a missing key, an unknown symbol, another word) is `None`.
fn parse_direction(
    v: &serde_json::Value,
    symbols: &[String],
) -> Option<crate::signals::sentiment::StoryDirection> {
    use crate::signals::sentiment::{Direction, StoryDirection, SymbolVerdict};
    let overall = Direction::parse(v.get("direction")?.as_str()?)?;
    let given = v.get("symbols")?.as_object()?;
    if given.len() != symbols.len() {
        return None;
    }
    let per = symbols
        .iter()
        .map(|s| {
            let d = Direction::parse(given.get(s)?.as_str()?)?;
            Some(SymbolVerdict {
                symbol: s.clone(),
                verdict: llm_verdict(d),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let o = llm_verdict(overall);
    Some(StoryDirection {
        direction: o.direction,
        score: o.score,
        confidence: o.confidence,
        symbols: per,
        by: "llm".into(),
    })
}

/// One chat completion (temperature 0, a JSON-object reply asked for when `json_mode`); the
/// reply's text. Shared by the labeler and the categorizer.
pub(crate) fn chat(
    client: &Client,
    system: &str,
    prompt: &str,
    max_tokens: u32,
    json_mode: bool,
) -> std::result::Result<String, CallError> {
    let mut body = serde_json::json!({
        "model": client.model(),
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": prompt},
        ],
        "max_tokens": max_tokens,
        "temperature": 0,
    });
    if json_mode {
        body["response_format"] = serde_json::json!({"type": "json_object"});
    }
    client.post("/chat/completions", &body, |reply| {
        let v: serde_json::Value = serde_json::from_slice(reply)
            .map_err(|e| Invalid::Retry(format!("not a chat reply: {e}")))?;
        chat_content(&v)
    })
}

/// The text of a chat-completions reply; an error finish (OpenRouter sends those with
/// HTTP 200) or a missing message is unusable and retried.
pub(crate) fn chat_content(reply: &serde_json::Value) -> std::result::Result<String, Invalid> {
    let choice = reply
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or_else(|| Invalid::Retry("no choices".into()))?;
    if choice.get("finish_reason").and_then(|f| f.as_str()) == Some("error") {
        return Err(Invalid::Retry("finish_reason \"error\"".into()));
    }
    choice
        .get("message")
        .and_then(|m| m.get("content"))
        .and_then(|c| c.as_str())
        .map(str::to_string)
        .ok_or_else(|| Invalid::Retry("no message content".into()))
}

impl Labeler for LlmLabeler {
    fn provider(&self) -> &'static str {
        "llm"
    }

    fn per_run(&self) -> bool {
        true
    }

    fn api_report(&self) -> Option<api::ApiReport> {
        let mut r = self.counters.report();
        r.label_fallbacks = self.label_fallbacks.load(Ordering::Relaxed);
        r.fallback_items = self.fallback_items.load(Ordering::Relaxed);
        r.llm_cache_hits = self.cache_hits.load(Ordering::Relaxed);
        r.direction_fallbacks = self.direction_fallbacks.load(Ordering::Relaxed);
        Some(r)
    }

    fn label(&self, stories: &[StorySnapshot]) -> Result<Vec<StoryLabel>> {
        let prompts: Vec<String> = stories.iter().map(|s| self.prompt(s)).collect();
        let model = self.primary.model();
        let keys: Vec<u128> = prompts.iter().map(|p| self.key(model, p)).collect();
        let mut replies: Vec<Option<Reply>> = self
            .cache
            .get_many(&keys)
            .into_iter()
            .zip(stories)
            .map(|(b, s)| b.and_then(|b| self.parse(&String::from_utf8_lossy(&b), &s.symbols)))
            .collect();
        let hits = replies.iter().filter(|r| r.is_some()).count();
        self.cache_hits.fetch_add(hits as u64, Ordering::Relaxed);

        // Misses, each distinct prompt asked once: the stories sharing each missed key.
        let mut sharing: HashMap<u128, Vec<usize>> = HashMap::new();
        let mut todo: Vec<usize> = Vec::new();
        for (i, r) in replies.iter().enumerate() {
            if r.is_none() {
                let same = sharing.entry(keys[i]).or_default();
                if same.is_empty() {
                    todo.push(i);
                }
                same.push(i);
            }
        }
        let mut answers: Vec<std::result::Result<String, CallError>> =
            api::run_concurrent(&todo, self.concurrency, |&i| {
                self.ask(&self.primary, &prompts[i])
            });
        if let Some(fb) = &self.fallback {
            let failed: Vec<usize> = (0..todo.len()).filter(|&k| answers[k].is_err()).collect();
            if !failed.is_empty() {
                tracing::warn!(
                    model = fb.model(),
                    stories = failed.len(),
                    "Label requests failed on the primary model; trying the fallback."
                );
                let again = api::run_concurrent(&failed, self.concurrency, |&k| {
                    self.ask(fb, &prompts[todo[k]])
                });
                for (&k, r) in failed.iter().zip(again) {
                    if r.is_ok() {
                        self.fallback_items.fetch_add(1, Ordering::Relaxed);
                        answers[k] = r;
                    }
                }
            }
        }
        let mut puts: Vec<(u128, Vec<u8>)> = Vec::new();
        for (&i, answer) in todo.iter().zip(&answers) {
            match answer {
                Ok(text) => match self.parse(text, &stories[i].symbols) {
                    Some(r) => {
                        let mut canonical =
                            serde_json::json!({"headline": r.headline, "category": r.category});
                        if let Some(d) = &r.direction {
                            canonical["direction"] = d.direction.as_str().into();
                            canonical["symbols"] = d
                                .symbols
                                .iter()
                                .map(|s| (s.symbol.clone(), s.verdict.direction.as_str().into()))
                                .collect::<serde_json::Map<String, serde_json::Value>>()
                                .into();
                        }
                        puts.push((keys[i], canonical.to_string().into_bytes()));
                        for &j in &sharing[&keys[i]] {
                            replies[j] = Some(r.clone());
                        }
                    }
                    None => {
                        let shown: String = text.chars().take(120).collect();
                        tracing::warn!(story = %stories[i].id, reply = %shown, "LLM reply did not parse; using the extractive label.");
                    }
                },
                Err(e) => {
                    tracing::warn!(story = %stories[i].id, error = %e, "No LLM label; using the extractive label.");
                }
            }
        }
        if !puts.is_empty() {
            self.cache.put_many(&puts);
        }
        Ok(stories
            .iter()
            .zip(replies)
            .map(|(s, r)| {
                let mut label = self.extractive.one(s);
                match r {
                    Some(r) => {
                        label.label = r.headline;
                        label.category = Some(r.category);
                        if r.direction.is_none() {
                            self.direction_fallbacks.fetch_add(1, Ordering::Relaxed);
                        }
                        label.direction = r.direction;
                    }
                    None => {
                        self.label_fallbacks.fetch_add(1, Ordering::Relaxed);
                    }
                }
                label
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn labeler() -> LlmLabeler {
        let (api, label) = (ApiConfig::default(), LabelConfig::default());
        let counters = Arc::new(Counters::default());
        let breaker = Arc::new(api::Breaker::new(
            "t",
            5,
            Duration::from_secs(1),
            api::Alerts::default(),
        ));
        LlmLabeler {
            extractive: Extractive::new(3),
            primary: Client::new(
                "http://127.0.0.1:9/v1",
                "m",
                api::Secret::default(),
                api.policy(),
                breaker,
                counters.clone(),
            ),
            fallback: None,
            categories: label.llm.categories.clone(),
            articles: 5,
            max_tokens: 100,
            json_mode: true,
            concurrency: 2,
            cache: Arc::new(crate::store::memory::MemoryCache::new(10)),
            counters,
            label_fallbacks: AtomicU64::new(0),
            fallback_items: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            direction_fallbacks: AtomicU64::new(0),
        }
    }

    #[test]
    fn replies_parse_strictly() {
        let l = labeler();
        assert_eq!(
            l.parse(
                r#"{"headline": " Bybit hacked ", "category": "Security"}"#,
                &[]
            ),
            Some(Reply {
                headline: "Bybit hacked".into(),
                category: "security".into(),
                direction: None,
            })
        );
        // The direction part: exactly the story's symbols, each one of the three words.
        let syms = ["ETH".to_string(), "BTC".to_string()];
        let good = r#"{"headline": "Bybit hacked", "category": "security", "direction": "Bearish",
            "symbols": {"ETH": "bearish", "BTC": "neutral"}}"#;
        let d = l.parse(good, &syms).unwrap().direction.unwrap();
        assert_eq!(d.by, "llm");
        assert_eq!(d.direction, crate::signals::sentiment::Direction::Bearish);
        assert_eq!(
            d.symbols
                .iter()
                .map(|s| (s.symbol.as_str(), s.verdict.direction.as_str()))
                .collect::<Vec<_>>(),
            [("ETH", "bearish"), ("BTC", "neutral")]
        );
        for bad in [
            r#"{"headline": "x", "category": "crypto", "direction": "up", "symbols": {"ETH": "bearish", "BTC": "neutral"}}"#,
            r#"{"headline": "x", "category": "crypto", "direction": "bearish", "symbols": {"ETH": "bearish"}}"#,
            r#"{"headline": "x", "category": "crypto", "direction": "bearish", "symbols": {"ETH": "bearish", "SOL": "neutral"}}"#,
            r#"{"headline": "x", "category": "crypto", "direction": "bearish", "symbols": {"ETH": "bearish", "BTC": 1}}"#,
            r#"{"headline": "x", "category": "crypto", "symbols": {"ETH": "bearish", "BTC": "neutral"}}"#,
        ] {
            let r = l.parse(bad, &syms).expect("the label still parses");
            assert_eq!(r.direction, None, "{bad}");
        }
        for bad in [
            "```json\n{\"headline\": \"x\", \"category\": \"crypto\"}\n```",
            "Sure! {\"headline\": \"x\", \"category\": \"crypto\"}",
            r#"{"headline": "x", "category": "sports"}"#,
            r#"{"headline": "", "category": "crypto"}"#,
            r#"{"headline": 3, "category": "crypto"}"#,
            r#"["x", "crypto"]"#,
            "",
        ] {
            assert_eq!(l.parse(bad, &[]), None, "{bad}");
        }
    }

    #[test]
    fn chat_errors_in_200_replies_are_unusable() {
        let ok = serde_json::json!({"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}]});
        assert_eq!(chat_content(&ok).unwrap(), "hi");
        let err = serde_json::json!({"choices": [{"message": {"content": ""}, "finish_reason": "error"}]});
        assert!(chat_content(&err).is_err());
        assert!(chat_content(&serde_json::json!({})).is_err());
    }

    #[test]
    fn prompt_lists_titles_and_categories_and_keys_differ_by_model() {
        let l = labeler();
        let s = StorySnapshot {
            id: "s".into(),
            rep_title: "ETF approved".into(),
            terms: vec![],
            size: 3,
            titles: vec!["ETF approved".into(), "SEC approves spot ETF".into()],
            symbols: vec![],
        };
        let p = l.prompt(&s);
        assert!(
            p.contains("1. ETF approved\n2. SEC approves spot ETF\n"),
            "{p}"
        );
        assert!(p.contains("crypto, macro, regulation"), "{p}");
        assert_ne!(l.key("a", &p), l.key("b", &p));
    }
}
