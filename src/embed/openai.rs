//! Remote embeddings from any OpenAI-compatible `/embeddings` endpoint (OpenRouter by
//! default), through [`crate::api`]: many texts per request, several requests in flight,
//! each reply checked (count, `index` order, dimension, finite numbers) before a vector is
//! used or cached. A request the primary model failed goes to the fallback, all failed
//! requests at once; an article that still has no vector is reported and kept for the next
//! run.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::EmbedConfig;
use super::{Doc, Embedder, Embedding};
use crate::api::ApiConfig;
use crate::api::{self, CallError, Client, Context, Counters, Invalid};
use crate::error::{Error, Result};

/// The `openai` embedder.
#[derive(Debug)]
pub struct OpenAiEmbedder {
    dim: usize,
    batch: usize,
    concurrency: usize,
    send_dimensions: bool,
    max_chars: usize,
    primary: Client,
    fallback: Option<Client>,
    counters: Arc<Counters>,
    fallback_items: AtomicU64,
    deferred: AtomicU64,
}

/// Registry constructor.
///
/// # Errors
/// [`Error::Config`] when no model is named, or OpenRouter is the endpoint and its key is
/// not set (other endpoints, such as a local server, may need no key).
pub fn build(cfg: &EmbedConfig, api: &ApiConfig, ctx: &Context) -> Result<Box<dyn Embedder>> {
    let o = &cfg.openai;
    let api::Clients {
        primary,
        fallback,
        counters,
    } = api::Clients::build(
        api,
        ctx,
        "embed.openai",
        "embeddings",
        (&o.model, "OPENROUTER_EMBED_MODEL"),
        &o.fallback_model,
        &o.fallback_base_url,
    )?;
    Ok(Box::new(OpenAiEmbedder {
        dim: cfg.dim,
        batch: o.batch_size.max(1),
        concurrency: api.concurrency.max(1),
        send_dimensions: o.send_dimensions,
        max_chars: o.max_input_chars.max(1),
        primary,
        fallback,
        counters,
        fallback_items: AtomicU64::new(0),
        deferred: AtomicU64::new(0),
    }))
}

impl OpenAiEmbedder {
    /// What is sent for one article: the title, then the lead of the body.
    fn text(&self, d: &Doc<'_>) -> String {
        let mut t = String::with_capacity(d.title.len() + 2 + d.body.len().min(self.max_chars));
        t.push_str(d.title.trim());
        if !d.body.trim().is_empty() {
            t.push_str("\n\n");
            t.push_str(d.body.trim());
        }
        let keep = crate::text::prefix_chars(&t, self.max_chars).len();
        t.truncate(keep);
        t
    }

    /// One `/embeddings` request for `texts`, checked, vectors normalised, in input order.
    fn request(
        &self,
        client: &Client,
        texts: &[&str],
    ) -> std::result::Result<Vec<Vec<f32>>, CallError> {
        let mut body = serde_json::json!({
            "model": client.model(),
            "input": texts,
            "encoding_format": "float",
        });
        if self.send_dimensions {
            body["dimensions"] = self.dim.into();
        }
        let (n, dim) = (texts.len(), self.dim);
        client.post("/embeddings", &body, |reply| {
            parse_embeddings(reply, n, dim)
        })
    }
}

/// The parts of an embeddings reply that are read (typed: a reply is megabytes of numbers,
/// and a generic JSON tree of them costs more than the rest of the run).
#[derive(serde::Deserialize)]
struct EmbeddingsReply {
    data: Vec<EmbeddingItem>,
}

#[derive(serde::Deserialize)]
struct EmbeddingItem {
    #[serde(default)]
    index: Option<u64>,
    /// `None` for a null; numbers that are not finite in f32 are caught below.
    embedding: Vec<Option<f64>>,
}

/// Checks an embeddings reply for `n` inputs of dimension `dim` and returns the vectors in
/// input order (by `index`), normalised.
fn parse_embeddings(
    body: &[u8],
    n: usize,
    dim: usize,
) -> std::result::Result<Vec<Vec<f32>>, Invalid> {
    let reply: EmbeddingsReply = serde_json::from_slice(body)
        .map_err(|e| Invalid::Retry(format!("not an embeddings reply: {e}")))?;
    let data = reply.data;
    if data.len() != n {
        return Err(Invalid::Retry(format!(
            "{} embeddings for {n} inputs",
            data.len()
        )));
    }
    let mut out: Vec<Option<Vec<f32>>> = vec![None; n];
    for (pos, item) in data.into_iter().enumerate() {
        let index = match item.index {
            None => pos,
            Some(i) => usize::try_from(i)
                .ok()
                .filter(|&i| i < n)
                .ok_or_else(|| Invalid::Retry(format!("data[{pos}].index {i} is not in 0..{n}")))?,
        };
        if item.embedding.len() != dim {
            let got = item.embedding.len();
            return Err(Invalid::Config(format!(
                "the model returns {got}-dimensional vectors; this pipeline expects embed.dim = {dim} \
                 (set embed.dim = {got}, or embed.openai.send_dimensions for models that can shorten)"
            )));
        }
        let mut v = Vec::with_capacity(dim);
        for x in item.embedding {
            match x {
                Some(f) if f.is_finite() && f.abs() <= f64::from(f32::MAX) => v.push(f as f32),
                _ => {
                    return Err(Invalid::Retry(format!(
                        "data[{pos}].embedding holds a value that is not a finite number"
                    )));
                }
            }
        }
        let norm = crate::kernels::dot(&v, &v).sqrt();
        if norm.is_nan() || norm <= 0.0 || !norm.is_finite() {
            return Err(Invalid::Retry(format!(
                "data[{pos}].embedding is all zeros"
            )));
        }
        crate::kernels::normalize(&mut v);
        if out[index].replace(v).is_some() {
            return Err(Invalid::Retry(format!("index {index} appears twice")));
        }
    }
    // n items, n distinct indices below n: every slot is filled.
    Ok(out.into_iter().flatten().collect())
}

impl Embedder for OpenAiEmbedder {
    fn provider(&self) -> &'static str {
        "openai"
    }

    fn fingerprint(&self) -> String {
        // The model and what is sent define the vectors; the endpoint does not.
        format!(
            "openai:{}:d{}:c{}",
            self.primary.model(),
            self.dim,
            self.max_chars
        )
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn preferred_batch(&self) -> usize {
        self.batch * self.concurrency
    }

    fn api_report(&self) -> Option<api::ApiReport> {
        let mut r = self.counters.report();
        r.fallback_items = self.fallback_items.load(Ordering::Relaxed);
        r.deferred = self.deferred.load(Ordering::Relaxed);
        Some(r)
    }

    fn embed(&self, docs: &[Doc<'_>], pool: &rayon::ThreadPool) -> Result<Vec<Embedding>> {
        self.embed_each(docs, pool)?
            .into_iter()
            .map(|r| {
                r.map_err(|message| Error::Embed {
                    provider: "openai".into(),
                    message,
                })
            })
            .collect()
    }

    fn embed_each(
        &self,
        docs: &[Doc<'_>],
        _pool: &rayon::ThreadPool,
    ) -> Result<Vec<std::result::Result<Embedding, String>>> {
        // Each distinct text is sent once.
        let texts: Vec<String> = docs.iter().map(|d| self.text(d)).collect();
        let mut unique: Vec<&str> = Vec::new();
        let mut first: HashMap<&str, usize> = HashMap::new();
        let slot: Vec<usize> = texts
            .iter()
            .map(|t| {
                *first.entry(t.as_str()).or_insert_with(|| {
                    unique.push(t);
                    unique.len() - 1
                })
            })
            .collect();
        let chunks: Vec<&[&str]> = unique.chunks(self.batch).collect();
        let mut results = api::run_concurrent(&chunks, self.concurrency, |c| {
            self.request(&self.primary, c)
        });
        if let Some(fb) = &self.fallback {
            let failed: Vec<usize> = (0..chunks.len()).filter(|&i| results[i].is_err()).collect();
            if !failed.is_empty() {
                tracing::warn!(
                    model = fb.model(),
                    requests = failed.len(),
                    "Embedding requests failed on the primary model; trying the fallback."
                );
                let again = api::run_concurrent(&failed, self.concurrency, |&i| {
                    self.request(fb, chunks[i])
                });
                for (&i, r) in failed.iter().zip(again) {
                    match r {
                        Ok(v) => {
                            self.fallback_items
                                .fetch_add(chunks[i].len() as u64, Ordering::Relaxed);
                            results[i] = Ok(v);
                        }
                        // The fallback can never work either: stop below.
                        Err(e @ CallError::Config(_)) => results[i] = Err(e),
                        Err(e) => {
                            let first = results[i].as_ref().err().map(ToString::to_string);
                            results[i] = Err(CallError::Transient(format!(
                                "{}; fallback {}: {e}",
                                first.unwrap_or_default(),
                                fb.model()
                            )));
                        }
                    }
                }
            }
        }
        // A refused key or a model of another dimension fails every request of every run:
        // deferring the articles "for the next run" would only hide it.
        if let Some(CallError::Config(m)) = results.iter().find_map(|r| {
            r.as_ref()
                .err()
                .filter(|e| matches!(e, CallError::Config(_)))
        }) {
            return Err(Error::Config {
                origin: "embed.openai".into(),
                message: m.clone(),
            });
        }
        let mut per_unique: Vec<std::result::Result<&[f32], String>> =
            Vec::with_capacity(unique.len());
        for (chunk, r) in chunks.iter().zip(&results) {
            match r {
                Ok(vs) => per_unique.extend(vs.iter().map(|v| Ok(v.as_slice()))),
                Err(e) => per_unique.extend(chunk.iter().map(|_| Err(e.to_string()))),
            }
        }
        let out: Vec<std::result::Result<Embedding, String>> = slot
            .iter()
            .map(|&u| per_unique[u].clone().map(|v| Embedding::Dense(v.to_vec())))
            .collect();
        let failed = out.iter().filter(|r| r.is_err()).count() as u64;
        self.deferred.fetch_add(failed, Ordering::Relaxed);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_embeddings(
        r: &serde_json::Value,
        n: usize,
        dim: usize,
    ) -> std::result::Result<Vec<Vec<f32>>, Invalid> {
        super::parse_embeddings(r.to_string().as_bytes(), n, dim)
    }

    #[test]
    fn replies_are_ordered_by_index_and_checked() {
        let r = json!({"data": [
            {"index": 1, "embedding": [0.0, 2.0]},
            {"index": 0, "embedding": [3.0, 4.0]},
        ]});
        let v = parse_embeddings(&r, 2, 2).unwrap();
        assert_eq!(v, vec![vec![0.6, 0.8], vec![0.0, 1.0]]);
        let wrong_dim = json!({"data": [{"index": 0, "embedding": [1.0, 0.0, 0.0]}]});
        assert!(
            matches!(parse_embeddings(&wrong_dim, 1, 2), Err(Invalid::Config(m)) if m.contains("3-dimensional"))
        );
        let short = json!({"data": [{"index": 0, "embedding": [1.0, 0.0]}]});
        assert!(matches!(
            parse_embeddings(&short, 2, 2),
            Err(Invalid::Retry(_))
        ));
        let dup = json!({"data": [
            {"index": 0, "embedding": [1.0, 0.0]},
            {"index": 0, "embedding": [1.0, 0.0]},
        ]});
        assert!(parse_embeddings(&dup, 2, 2).is_err());
        let nan = json!({"data": [{"index": 0, "embedding": [null, 1.0]}]});
        assert!(parse_embeddings(&nan, 1, 2).is_err());
        let zero = json!({"data": [{"index": 0, "embedding": [0.0, 0.0]}]});
        assert!(parse_embeddings(&zero, 1, 2).is_err());
        let out_of_range = json!({"data": [{"index": 5, "embedding": [1.0, 0.0]}]});
        assert!(parse_embeddings(&out_of_range, 1, 2).is_err());
    }
}
