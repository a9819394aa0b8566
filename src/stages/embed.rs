//! Embed: vectors for a batch, through the cache. Only misses reach the embedder, and each
//! distinct text is embedded once per batch.

use std::collections::HashMap;

use xxhash_rust::xxh3::Xxh3;

use super::{Batch, EmbeddedBatch};
use crate::embed::{Doc, Embedder, Embedding};
use crate::error::{Error, Result};
use crate::pipeline::Stage;
use crate::store::Cache;

/// An article that got no vector (its provider failed for it): kept for the next run.
#[derive(Debug, Clone)]
pub struct Deferred {
    /// The article.
    pub article: crate::article::Article,
    /// Why it has no vector.
    pub reason: String,
}

impl Deferred {
    /// The article as an input record, to be read again by a later run.
    pub fn record(&self) -> serde_json::Value {
        self.article.to_record(self.article.published_at)
    }
}

/// The embed stage: embeddings through the cache, and each article's perp symbols.
pub struct EmbedStage<'a> {
    embedder: &'a dyn Embedder,
    cache: &'a dyn Cache,
    pool: &'a rayon::ThreadPool,
    symbols: &'a crate::signals::symbols::SymbolBook,
    symbols_body_chars: usize,
    fingerprint: String,
    deferred: &'a std::sync::Mutex<Vec<Deferred>>,
    /// Compute syndication sketches (off when copy detection is).
    sketches: bool,
    /// Extract entities (off when the cluster stage's conflict penalty is).
    entities: bool,
}

impl<'a> EmbedStage<'a> {
    /// A stage embedding with `embedder` through `cache`, CPU work on `pool`, finding symbols
    /// with `symbols` in titles and the first `symbols_body_chars` of bodies. Articles the
    /// embedder fails for are taken out of their batch and added to `deferred`.
    pub fn new(
        embedder: &'a dyn Embedder,
        cache: &'a dyn Cache,
        pool: &'a rayon::ThreadPool,
        symbols: &'a crate::signals::symbols::SymbolBook,
        symbols_body_chars: usize,
        deferred: &'a std::sync::Mutex<Vec<Deferred>>,
    ) -> Self {
        EmbedStage {
            embedder,
            cache,
            pool,
            symbols,
            symbols_body_chars,
            fingerprint: embedder.fingerprint(),
            deferred,
            sketches: true,
            entities: true,
        }
    }

    /// Whether to compute syndication sketches (not needed when detection is off).
    pub fn with_sketches(mut self, on: bool) -> Self {
        self.sketches = on;
        self
    }

    /// Whether to extract entities (not needed when no conflict penalty uses them).
    pub fn with_entities(mut self, on: bool) -> Self {
        self.entities = on;
        self
    }
}

impl EmbedStage<'_> {
    /// One embedding per article, or why there is none.
    fn embed_articles(
        &self,
        articles: &[crate::article::Article],
    ) -> Result<Vec<std::result::Result<Embedding, String>>> {
        let dim = self.embedder.dim();
        let docs: Vec<Doc<'_>> = articles
            .iter()
            .map(|a| Doc {
                title: &a.title,
                body: &a.body,
            })
            .collect();
        let keys: Vec<u128> = docs
            .iter()
            .map(|d| cache_key(&self.fingerprint, d))
            .collect();
        // A cached value that does not decode (corrupt, or another dimension) is a miss.
        let mut found: Vec<Option<std::result::Result<Embedding, String>>> = self
            .cache
            .get_many(&keys)
            .into_iter()
            .map(|b| b.and_then(|b| Embedding::from_bytes(&b, dim)).map(Ok))
            .collect();

        // Distinct missing texts, each embedded once.
        let mut first_of: HashMap<u128, usize> = HashMap::new();
        let mut todo: Vec<usize> = Vec::new();
        for (i, e) in found.iter().enumerate() {
            // The first position of each text; a later duplicate must not move it.
            if e.is_none()
                && let std::collections::hash_map::Entry::Vacant(slot) = first_of.entry(keys[i])
            {
                slot.insert(todo.len());
                todo.push(i);
            }
        }
        if !todo.is_empty() {
            let miss_docs: Vec<Doc<'_>> = todo.iter().map(|&i| docs[i]).collect();
            let fresh = self.embedder.embed_each(&miss_docs, self.pool)?;
            let wrong = fresh
                .iter()
                .any(|e| matches!(e, Ok(Embedding::Dense(v)) if v.len() != dim));
            if fresh.len() != todo.len() || wrong {
                return Err(Error::Embed {
                    provider: self.embedder.provider().into(),
                    message: format!(
                        "returned {} embeddings for {} texts, or a vector whose dimension is not {dim}",
                        fresh.len(),
                        todo.len()
                    ),
                });
            }
            // Only vectors are cached; a failure is asked again next time.
            let puts: Vec<(u128, Vec<u8>)> = todo
                .iter()
                .zip(&fresh)
                .filter_map(|(&i, e)| e.as_ref().ok().map(|e| (keys[i], e.to_bytes())))
                .collect();
            if !puts.is_empty() {
                self.cache.put_many(&puts);
            }
            for (i, e) in found.iter_mut().enumerate() {
                if e.is_none() {
                    *e = Some(fresh[first_of[&keys[i]]].clone());
                }
            }
        }
        Ok(found
            .into_iter()
            .map(|e| e.unwrap_or_else(|| Err("no embedding".into())))
            .collect())
    }

    /// Each article's symbols, direction and syndication sketch.
    fn article_signals(&self, articles: &[crate::article::Article]) -> Signals {
        let scorer = crate::signals::sentiment::Scorer::builtin();
        let mut out = Signals::default();
        for a in articles {
            // Symbols and direction of the title and the lead: where a story says which
            // markets it is about and which way.
            let lead = crate::text::prefix_chars(&a.body, self.symbols_body_chars);
            let (syms, in_title, in_lead) =
                self.symbols.article_symbols_and_mentions(&a.title, lead);
            out.directions
                .push(scorer.score(&a.title, lead, &in_title, &in_lead));
            out.entities.push(if self.entities {
                crate::signals::entities::article_entities(self.symbols, &syms, &a.title, &a.body)
            } else {
                crate::signals::entities::Entities::default()
            });
            out.symbols.push(syms);
            out.sketches.push(if self.sketches {
                crate::syndication::sketch(&a.title, &a.body)
            } else {
                None
            });
        }
        out
    }
}

/// Per-article signals of a batch, parallel to its articles.
#[derive(Debug, Default)]
struct Signals {
    symbols: Vec<crate::signals::symbols::ArticleSymbols>,
    entities: Vec<crate::signals::entities::Entities>,
    directions: Vec<crate::signals::sentiment::ArticleDirection>,
    sketches: Vec<Option<crate::syndication::Sketch>>,
}

/// The cache key of a document under an embedder fingerprint.
pub fn cache_key(fingerprint: &str, doc: &Doc<'_>) -> u128 {
    let mut h = Xxh3::new();
    h.update(fingerprint.as_bytes());
    h.update(&[0]);
    h.update(doc.title.as_bytes());
    h.update(&[0]);
    h.update(doc.body.as_bytes());
    h.digest128()
}

impl Stage for EmbedStage<'_> {
    type In = Batch;
    type Out = EmbeddedBatch;

    fn name(&self) -> &'static str {
        "embed"
    }

    fn process(&mut self, batch: Batch) -> Result<EmbeddedBatch> {
        // Symbols are found on a second worker while the batch is embedded: the pipeline is
        // otherwise mostly one thread busy at a time on this 2-core budget.
        let this = &*self;
        let (embeddings, signals) = self.pool.join(
            || this.embed_articles(&batch.articles),
            || this.article_signals(&batch.articles),
        );
        let embeddings = embeddings?;
        let n = batch.articles.len();
        let mut out = EmbeddedBatch {
            articles: Vec::with_capacity(n),
            embeddings: Vec::with_capacity(n),
            symbols: Vec::with_capacity(n),
            entities: Vec::with_capacity(n),
            directions: Vec::with_capacity(n),
            sketches: Vec::with_capacity(n),
        };
        let mut deferred = Vec::new();
        let per_article = signals
            .symbols
            .into_iter()
            .zip(signals.entities)
            .zip(signals.directions)
            .zip(signals.sketches);
        for ((article, e), (((sym, ents), dir), sk)) in
            batch.articles.into_iter().zip(embeddings).zip(per_article)
        {
            match e {
                Ok(e) => {
                    out.articles.push(article);
                    out.embeddings.push(e);
                    out.symbols.push(sym);
                    out.entities.push(ents);
                    out.directions.push(dir);
                    out.sketches.push(sk);
                }
                Err(reason) => {
                    tracing::warn!(origin = %article.origin, id = %article.id, %reason, "No embedding; the article is kept for the next run.");
                    deferred.push(Deferred { article, reason });
                }
            }
        }
        if !deferred.is_empty() {
            self.deferred
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend(deferred);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::Doc;
    use std::sync::Mutex;

    /// A 2-d embedder that records the titles it is asked for and fails for "FAIL" ones.
    struct Recorder(Mutex<Vec<String>>);

    impl Embedder for Recorder {
        fn provider(&self) -> &'static str {
            "recorder"
        }
        fn fingerprint(&self) -> String {
            "recorder-2".into()
        }
        fn dim(&self) -> usize {
            2
        }
        fn embed(&self, docs: &[Doc<'_>], pool: &rayon::ThreadPool) -> Result<Vec<Embedding>> {
            Ok(self
                .embed_each(docs, pool)?
                .into_iter()
                .map(|e| e.unwrap_or(Embedding::Dense(vec![0.0, 0.0])))
                .collect())
        }
        fn embed_each(
            &self,
            docs: &[Doc<'_>],
            _: &rayon::ThreadPool,
        ) -> Result<Vec<std::result::Result<Embedding, String>>> {
            let mut seen = self.0.lock().unwrap();
            Ok(docs
                .iter()
                .map(|d| {
                    seen.push(d.title.to_string());
                    if d.title.contains("FAIL") {
                        Err("the model refused".to_string())
                    } else {
                        Ok(Embedding::Dense(vec![1.0, 0.0]))
                    }
                })
                .collect())
        }
    }

    fn batch(titles: &[&str], pool: &rayon::ThreadPool) -> Batch {
        let lines: Vec<String> = titles
            .iter()
            .enumerate()
            .map(|(i, t)| {
                format!(
                    r#"{{"id":"a{i}","title":"{t}","body":"Body text of the article about {t}.","published_at":"2026-01-01T00:00:00Z"}}"#
                )
            })
            .collect();
        let input = crate::stages::ingest::input_from_bytes("t.jsonl", lines.join("\n").into());
        let parsed = crate::stages::ingest::parse_inputs(&[input], 1 << 20, pool);
        assert!(parsed.rejects.is_empty(), "{:?}", parsed.rejects);
        Batch {
            articles: parsed.articles,
        }
    }

    #[test]
    fn distinct_misses_are_embedded_once_then_served_from_the_cache_and_failures_deferred() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let embedder = Recorder(Mutex::new(Vec::new()));
        let cache = crate::store::memory::MemoryCache::default();
        let symbols = crate::signals::symbols::SymbolBook::builtin();
        let deferred = Mutex::new(Vec::new());
        let mut stage = EmbedStage::new(&embedder, &cache, &pool, &symbols, 120, &deferred);
        let out = stage
            .process(batch(&["Same title", "Same title", "FAIL here"], &pool))
            .unwrap();
        // Both copies of the repeated text get its vector (a later duplicate once moved the
        // index of the first to the next distinct text's result).
        assert_eq!(out.articles.len(), 2, "{:?}", embedder.0.lock().unwrap());
        assert_eq!(out.embeddings.len(), out.symbols.len());
        // One request per distinct text.
        assert_eq!(embedder.0.lock().unwrap().len(), 2);
        {
            let d = deferred.lock().unwrap();
            assert_eq!(d.len(), 1);
            assert_eq!(d[0].reason, "the model refused");
            assert_eq!(d[0].record()["title"], "FAIL here");
        }
        // The next batch finds the text in the cache: only the failed one is asked again.
        stage
            .process(batch(&["Same title", "FAIL here"], &pool))
            .unwrap();
        assert_eq!(embedder.0.lock().unwrap().len(), 3);
    }
}
