//! A category per article from the `[label.llm]` chat model: one prompt per group of up to
//! [`GROUP`] headlines (numbered; the reply lists one category per number), groups in
//! flight at once, replies cached by model + prompt like the labels. A group whose reply
//! fails or does not parse strictly gets the rule categorizer's answers, counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use xxhash_rust::xxh3::xxh3_128;

use super::LlmConfig;
use super::category::{Category, RuleCategorizer};
use crate::api::ApiConfig;
use crate::api::{self, CallError, Client, Context};
use crate::error::Result;
use crate::store::Cache;

/// Headlines per request.
pub const GROUP: usize = 20;

/// Who decided an article's category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecidedBy {
    /// The chat model.
    Llm,
    /// The keyword rules (the model failed or its reply did not parse).
    Rules,
}

/// The LLM categorizer.
pub struct LlmCategorizer {
    clients: api::Clients,
    concurrency: usize,
    json_mode: bool,
    cache: Arc<dyn Cache>,
    /// Groups that fell back to the rules.
    pub fallbacks: AtomicU64,
}

impl LlmCategorizer {
    /// Built from `[label.llm]` and `[api]`.
    ///
    /// # Errors
    /// As [`super::llm::chat_clients`].
    pub fn build(cfg: &LlmConfig, api: &ApiConfig, ctx: &Context) -> Result<Self> {
        Ok(LlmCategorizer {
            clients: super::llm::chat_clients(cfg, api, ctx)?,
            concurrency: api.concurrency.max(1),
            json_mode: cfg.json_mode,
            cache: ctx.llm_cache_or_memory(),
            fallbacks: AtomicU64::new(0),
        })
    }

    /// Requests and bytes so far.
    pub fn report(&self) -> api::ApiReport {
        let mut r = self.clients.counters.report();
        r.label_fallbacks = self.fallbacks.load(Ordering::Relaxed);
        r
    }

    fn prompt(titles: &[&str], categories: &[String]) -> String {
        let mut p = format!(
            "Classify each crypto/financial news headline into exactly one of these categories: {}.\n\n",
            categories.join(", ")
        );
        for (i, t) in titles.iter().enumerate() {
            p.push_str(&format!("{}. {}\n", i + 1, t.trim()));
        }
        p.push_str(&format!(
            "\nReply with only: {{\"categories\": [...]}}, {} names in headline order.",
            titles.len()
        ));
        p
    }

    /// Strict: an object whose `categories` is an array of exactly `n` listed names.
    fn parse(content: &str, n: usize, categories: &[String]) -> Option<Vec<String>> {
        let v: serde_json::Value = serde_json::from_str(content.trim()).ok()?;
        let list = v.get("categories")?.as_array()?;
        if list.len() != n {
            return None;
        }
        list.iter()
            .map(|c| {
                let c = c.as_str()?.trim();
                categories
                    .iter()
                    .find(|k| k.eq_ignore_ascii_case(c))
                    .cloned()
            })
            .collect()
    }

    fn ask(&self, client: &Client, prompt: &str) -> std::result::Result<String, CallError> {
        const SYSTEM: &str =
            "You categorise news headlines for a trading desk. Reply with only a JSON object.";
        super::llm::chat(
            client,
            SYSTEM,
            prompt,
            16 * GROUP as u32 + 32,
            self.json_mode,
        )
    }

    /// One category per `(title, body)`, in order, from `categories` (which the rules
    /// must also know); groups the model cannot answer get `rules`' answers.
    pub fn categorize(
        &self,
        articles: &[(&str, &str)],
        categories: &[String],
        rules: &RuleCategorizer,
    ) -> Vec<(Category, DecidedBy)> {
        let groups: Vec<&[(&str, &str)]> = articles.chunks(GROUP).collect();
        let prompts: Vec<String> = groups
            .iter()
            .map(|g| Self::prompt(&g.iter().map(|a| a.0).collect::<Vec<_>>(), categories))
            .collect();
        let model = self.clients.primary.model();
        let keys: Vec<u128> = prompts
            .iter()
            .map(|p| xxh3_128(format!("categories-v1\0{model}\0{p}").as_bytes()))
            .collect();
        let mut answers: Vec<Option<Vec<String>>> = self
            .cache
            .get_many(&keys)
            .into_iter()
            .zip(&groups)
            .map(|(b, g)| {
                b.and_then(|b| Self::parse(&String::from_utf8_lossy(&b), g.len(), categories))
            })
            .collect();
        let todo: Vec<usize> = (0..groups.len())
            .filter(|&i| answers[i].is_none())
            .collect();
        let mut replies = api::run_concurrent(&todo, self.concurrency, |&i| {
            self.ask(&self.clients.primary, &prompts[i])
        });
        if let Some(fb) = &self.clients.fallback {
            let failed: Vec<usize> = (0..todo.len()).filter(|&k| replies[k].is_err()).collect();
            let again = api::run_concurrent(&failed, self.concurrency, |&k| {
                self.ask(fb, &prompts[todo[k]])
            });
            for (&k, r) in failed.iter().zip(again) {
                if r.is_ok() {
                    replies[k] = r;
                }
            }
        }
        let mut puts = Vec::new();
        for (&i, r) in todo.iter().zip(&replies) {
            match r
                .as_ref()
                .ok()
                .and_then(|t| Self::parse(t, groups[i].len(), categories))
            {
                Some(list) => {
                    let canonical = serde_json::json!({ "categories": list });
                    puts.push((keys[i], canonical.to_string().into_bytes()));
                    answers[i] = Some(list);
                }
                None => {
                    let why = match r {
                        Err(e) => e.to_string(),
                        Ok(_) => "reply did not parse".into(),
                    };
                    tracing::warn!(group = i, reason = %why, "No LLM categories; using the rules.");
                    self.fallbacks.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if !puts.is_empty() {
            self.cache.put_many(&puts);
        }
        groups
            .iter()
            .zip(answers)
            .flat_map(|(g, a)| {
                g.iter()
                    .enumerate()
                    .map(move |(j, (title, body))| match &a {
                        Some(list) => (
                            Category {
                                category: list[j].clone(),
                                score: 0,
                                matched: Vec::new(),
                            },
                            DecidedBy::Llm,
                        ),
                        None => (rules.categorize(title, body), DecidedBy::Rules),
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_strictly_and_prompts_number_the_headlines() {
        let cats: Vec<String> = ["crypto", "regulation", "other"].map(String::from).to_vec();
        assert_eq!(
            LlmCategorizer::parse(r#"{"categories": ["Crypto", "regulation"]}"#, 2, &cats),
            Some(vec!["crypto".to_string(), "regulation".to_string()])
        );
        for bad in [
            r#"{"categories": ["crypto"]}"#,
            r#"{"categories": ["crypto", "sports"]}"#,
            r#"["crypto", "crypto"]"#,
            "crypto, crypto",
        ] {
            assert_eq!(LlmCategorizer::parse(bad, 2, &cats), None, "{bad}");
        }
        let p = LlmCategorizer::prompt(&["BTC up", "SEC sues"], &cats);
        assert!(p.contains("1. BTC up\n2. SEC sues\n"), "{p}");
        assert!(p.contains("crypto, regulation, other"));
    }
}
