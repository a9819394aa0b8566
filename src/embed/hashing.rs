//! The offline embedder: hashed bag of words and bigrams, TF-IDF weighted. No network, no
//! model.
//!
//! Features: non-stop-word unigrams and adjacent bigrams of the title (weighted by
//! `title_weight`) and of the first `body_max_tokens` body words outside boilerplate
//! sentences; capitalised words inside a sentence and numbers (names, amounts) weigh
//! `name_weight`. Each feature's summed weight `w` becomes `1 + ln w` (sublinear: a word
//! repeated ten times is not ten times as telling). This module emits those term weights
//! ([`Embedding::Terms`], a pure function of the text, so cacheable); the cluster stage
//! multiplies them by inverse document frequencies learned from the stream and projects
//! them to `dim` signed hash buckets (collisions cancel on average instead of adding up)
//! — see [`Embedding::into_dense`].

use rayon::prelude::*;

use super::HashingConfig;
use super::{Doc, Embedder, Embedding, TERM_ID_BITS};
use crate::error::Result;
use crate::text;

/// Below this many docs a batch is embedded on the calling thread: waking the pool costs
/// more than the work.
const PARALLEL_MIN_DOCS: usize = 32;

/// Bumped whenever the feature extraction changes, so old caches and states are not mixed in.
const VERSION: u32 = 2;

/// One word of a text, as the embedder sees it.
#[derive(Debug, Clone, Copy)]
struct Word {
    /// [`text::word_hash`] of the lowercased word.
    hash: u64,
    /// A stop word (skipped, and breaks bigrams).
    stop: bool,
    /// Written like a name, an acronym or a number.
    name: bool,
}

/// The offline feature-hashing embedder.
#[derive(Debug, Clone)]
pub struct HashingEmbedder {
    dim: usize,
    cfg: HashingConfig,
}

/// Registry constructor.
///
/// # Errors
/// Never fails today; the signature matches [`super::Provider::build`].
pub fn build(
    cfg: &super::EmbedConfig,
    _: &crate::api::ApiConfig,
    _: &crate::api::Context,
) -> Result<Box<dyn Embedder>> {
    Ok(Box::new(HashingEmbedder::new(cfg.dim, cfg.hashing.clone())))
}

impl HashingEmbedder {
    /// An embedder of dimension `dim`.
    pub fn new(dim: usize, cfg: HashingConfig) -> Self {
        HashingEmbedder {
            dim: dim.max(1),
            cfg,
        }
    }

    /// The term weights of one document: sorted, unique term ids with sublinear weights.
    pub fn terms(&self, doc: &Doc<'_>) -> Vec<(u32, f32)> {
        let mut buf = String::new();
        let mut sentence: Vec<Word> = Vec::with_capacity(64);
        let mut hashes: Vec<u64> = Vec::with_capacity(64);
        let mut read = |text: &str, out: &mut Vec<Word>| {
            out.clear();
            out.extend(text::tokens(text).map(|tok| {
                let raw = tok.raw.as_bytes();
                // Short ASCII words (nearly all) are lowercased on the stack.
                let mut stack = [0u8; 32];
                let (hash, len, acronym) = if raw.len() <= stack.len() && tok.raw.is_ascii() {
                    let mut upper = 0;
                    for (d, b) in stack.iter_mut().zip(raw) {
                        upper += usize::from(b.is_ascii_uppercase() || b.is_ascii_digit());
                        *d = b.to_ascii_lowercase();
                    }
                    let lower = &stack[..raw.len()];
                    (
                        text::word_hash_bytes(lower),
                        raw.len(),
                        raw.len() >= 2 && upper == raw.len(),
                    )
                } else {
                    let lower = text::lower_into(tok.raw, &mut buf);
                    let acronym = tok
                        .raw
                        .chars()
                        .all(|c| c.is_uppercase() || c.is_ascii_digit());
                    (text::word_hash(lower), lower.len(), acronym)
                };
                Word {
                    hash,
                    stop: len < 2 || text::is_stop_hash(hash),
                    name: tok.name_like || tok.numeric || acronym,
                }
            }));
        };
        let mut title = Vec::with_capacity(24);
        read(doc.title, &mut title);
        let mut body: Vec<Word> = Vec::with_capacity(self.cfg.body_max_tokens);
        for s in text::sentences(doc.body) {
            if body.len() >= self.cfg.body_max_tokens {
                break;
            }
            read(s, &mut sentence);
            hashes.clear();
            hashes.extend(sentence.iter().map(|w| w.hash));
            if !text::is_boilerplate(&hashes) {
                let room = self.cfg.body_max_tokens - body.len();
                body.extend(sentence.iter().take(room).copied());
            }
        }
        // Words written as names inside body sentences are names in the title too, where
        // title case hides them.
        let names = text::HashSet64::new(body.iter().filter(|w| w.name && !w.stop).map(|w| w.hash));

        let mut feats: Vec<(u64, f32)> = Vec::with_capacity(2 * (title.len() + body.len()));
        for (ws, base) in [(&title, self.cfg.title_weight), (&body, 1.0)] {
            let mut prev: Option<u64> = None;
            for w in ws {
                if w.stop {
                    prev = None;
                    continue;
                }
                let h = w.hash;
                let name = w.name || names.contains(h);
                let boost = if name { self.cfg.name_weight } else { 1.0 };
                feats.push((h, base * boost));
                if let Some(p) = prev {
                    let pair = p.rotate_left(17) ^ h.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    feats.push((pair, base * self.cfg.bigram_weight));
                }
                prev = Some(h);
            }
        }

        for f in &mut feats {
            f.0 >>= 64 - TERM_ID_BITS;
        }
        feats.sort_unstable_by_key(|f| f.0);
        let mut out: Vec<(u32, f32)> = Vec::with_capacity(feats.len());
        for (id, w) in feats {
            match out.last_mut() {
                Some(last) if u64::from(last.0) == id => last.1 += w,
                _ => out.push((id as u32, w)),
            }
        }
        for t in &mut out {
            if t.1 > 1.0 {
                t.1 = 1.0 + t.1.ln();
            }
        }
        out
    }
}

impl Embedder for HashingEmbedder {
    fn provider(&self) -> &'static str {
        "hashing"
    }

    fn fingerprint(&self) -> String {
        let c = &self.cfg;
        format!(
            "hashing-v{VERSION}:d{}:t{}:b{}:n{}:m{}",
            self.dim, c.title_weight, c.bigram_weight, c.name_weight, c.body_max_tokens
        )
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embed(&self, docs: &[Doc<'_>], pool: &rayon::ThreadPool) -> Result<Vec<Embedding>> {
        let one = |d: &Doc<'_>| Embedding::Terms(self.terms(d));
        if docs.len() < PARALLEL_MIN_DOCS {
            return Ok(docs.iter().map(one).collect());
        }
        Ok(pool.install(|| docs.par_iter().map(one).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels;
    use crate::story::TermStats;

    fn emb() -> HashingEmbedder {
        HashingEmbedder::new(1024, HashingConfig::default())
    }

    fn doc<'a>(title: &'a str, body: &'a str) -> Doc<'a> {
        Doc { title, body }
    }

    fn dense(terms: Vec<(u32, f32)>, stats: &mut TermStats) -> Vec<f32> {
        Embedding::Terms(terms).into_dense(stats, 1024)
    }

    #[test]
    fn terms_are_sorted_unique_and_deterministic() {
        let e = emb();
        let d = doc(
            "Bybit hacked for $1.4B in ETH",
            "Bybit said cold wallets were hit. Bybit hacked.",
        );
        let t = e.terms(&d);
        assert!(t.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(t.iter().all(|(id, w)| *id < 1 << TERM_ID_BITS && *w > 0.0));
        assert_eq!(t, e.terms(&d));
        let mut stats = TermStats::default();
        let v = dense(t, &mut stats);
        assert!((kernels::dot(&v, &v) - 1.0).abs() < 1e-5);
        assert_eq!(stats.docs, 1);
    }

    #[test]
    fn related_articles_are_closer_than_unrelated() {
        let e = emb();
        let mut stats = TermStats::default();
        let mut v = |t: &str, b: &str| dense(e.terms(&doc(t, b)), &mut stats);
        let a = v(
            "Bybit hacked, $1.4B in Ether drained",
            "Hackers drained cold wallets of Bybit on Friday.",
        );
        let b = v(
            "Hackers drain $1.4 billion from Bybit",
            "Bybit confirmed that a cold wallet was drained by hackers.",
        );
        let c = v(
            "Fed holds rates steady",
            "The Federal Reserve kept interest rates unchanged on Wednesday.",
        );
        let (ab, ac) = (kernels::dot(&a, &b), kernels::dot(&a, &c));
        assert!(ab > 0.3 && ac < 0.1, "ab={ab} ac={ac}");
    }

    #[test]
    fn words_seen_everywhere_weigh_less() {
        let e = emb();
        let mut stats = TermStats::default();
        for i in 0..50 {
            stats.add(&e.terms(&doc(&format!("Market update {i}"), "")));
        }
        let market = e.terms(&doc("market", ""))[0].0;
        let bybit = e.terms(&doc("bybit", ""))[0].0;
        assert!(stats.idf(market) < 1.1 && stats.idf(bybit) > 4.0);
    }

    #[test]
    fn empty_or_stopword_text_gives_zero_vector() {
        let t = emb().terms(&doc("The of and", ""));
        assert!(t.is_empty());
        assert!(
            dense(t, &mut TermStats::default())
                .iter()
                .all(|x| *x == 0.0)
        );
    }

    #[test]
    fn batch_matches_single_whatever_the_pool() {
        let e = emb();
        let texts: Vec<String> = (0..100)
            .map(|i| format!("Token {i} listed on exchange {}", i % 7))
            .collect();
        let docs: Vec<Doc<'_>> = texts.iter().map(|t| doc(t, "body text here")).collect();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let batch = e.embed(&docs, &pool).unwrap();
        for (d, v) in docs.iter().zip(&batch) {
            assert_eq!(&Embedding::Terms(e.terms(d)), v);
        }
    }
}
