//! Embedders turn articles into [`Embedding`]s: a normalised dense vector (remote models),
//! or weighted hashed terms (the offline embedder), which the cluster stage turns into a
//! dense vector with inverse document frequencies learned from the stream so far
//! (see [`crate::story::TermStats`]).
//!
//! # Adding a provider
//! Write `src/embed/<name>.rs` with a type implementing [`Embedder`] and a `build` function,
//! then add one [`Provider`] line to [`PROVIDERS`]. Its `example` must be a pipeline snippet
//! that selects it; a test parses every example.

mod config;
pub use config::{EmbedConfig, HashingConfig, OpenAiEmbedConfig};

pub mod hashing;
pub mod openai;

use crate::error::Result;

/// The text of one article as an embedder sees it.
#[derive(Debug, Clone, Copy)]
pub struct Doc<'a> {
    /// Headline.
    pub title: &'a str,
    /// Body (may be empty).
    pub body: &'a str,
}

/// Number of hashed term ids: terms are identified by 20 bits of their hash.
pub const TERM_ID_BITS: u32 = 20;

/// What an embedder returns for one document.
#[derive(Debug, Clone, PartialEq)]
pub enum Embedding {
    /// An L2-normalised dense vector, ready to compare.
    Dense(Vec<f32>),
    /// Hashed term ids (below `1 << TERM_ID_BITS`, sorted, unique) with term-frequency
    /// weights; weighted by inverse document frequency and projected to a dense vector in
    /// stream order by the cluster stage.
    Terms(Vec<(u32, f32)>),
}

const TAG_DENSE: u8 = 1;
const TAG_TERMS: u8 = 2;

impl Embedding {
    /// Compact bytes for caches: a tag, then little-endian `f32`s (dense) or
    /// (`u32` id, `f32` weight) pairs (terms).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Embedding::Dense(v) => {
                let mut out = Vec::with_capacity(1 + 4 * v.len());
                out.push(TAG_DENSE);
                out.extend(v.iter().flat_map(|x| x.to_le_bytes()));
                out
            }
            Embedding::Terms(t) => {
                let mut out = Vec::with_capacity(1 + 8 * t.len());
                out.push(TAG_TERMS);
                for (id, w) in t {
                    out.extend(id.to_le_bytes());
                    out.extend(w.to_le_bytes());
                }
                out
            }
        }
    }

    /// Decodes [`Self::to_bytes`]; `None` for anything malformed or a dense vector whose
    /// dimension is not `dim` (a corrupt or foreign cache entry is a miss, never a wrong
    /// vector).
    pub fn from_bytes(bytes: &[u8], dim: usize) -> Option<Self> {
        let (tag, rest) = bytes.split_first()?;
        let f32_at = |c: &[u8]| f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        match *tag {
            TAG_DENSE if rest.len() == 4 * dim => {
                let v: Vec<f32> = rest.chunks_exact(4).map(f32_at).collect();
                v.iter()
                    .all(|x| x.is_finite())
                    .then_some(Embedding::Dense(v))
            }
            TAG_TERMS if rest.len() % 8 == 0 => {
                let t: Vec<(u32, f32)> = rest
                    .chunks_exact(8)
                    .map(|c| {
                        (
                            u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                            f32_at(&c[4..]),
                        )
                    })
                    .collect();
                let ok = t
                    .iter()
                    .all(|(id, w)| *id < (1 << TERM_ID_BITS) && w.is_finite())
                    && t.windows(2).all(|p| p[0].0 < p[1].0);
                ok.then_some(Embedding::Terms(t))
            }
            _ => None,
        }
    }
}

/// A sparse vector: `(term id, weight)` sorted by id, no id twice.
pub type SparseVector = Vec<(u32, f32)>;

impl Embedding {
    /// The vectors the clusterer compares: a dense, normalised one, and for term embeddings
    /// also the exact sparse one. Term embeddings are weighted by the inverse document
    /// frequency in `stats` (which counts every article before this one) and then counted
    /// into `stats`; the sparse vector is those weights normalised (sorted by term id), the
    /// dense one their projection to `dim` signed hash buckets, normalised. Must be called
    /// once per article, in processing order: that is what makes the result independent of
    /// batching.
    ///
    /// The projection lets a whole batch be scored against every story with one matrix
    /// product, but colliding terms add noise of about `1/sqrt(dim)` to every similarity;
    /// the clusterer therefore only prunes with the dense vector and decides with the
    /// sparse one.
    pub fn into_vectors(
        self,
        stats: &mut crate::story::TermStats,
        dim: usize,
    ) -> (Vec<f32>, Option<SparseVector>) {
        match self {
            Embedding::Dense(v) => (v, None),
            Embedding::Terms(terms) => {
                let mut v = vec![0.0f32; dim];
                let mut sparse = Vec::with_capacity(terms.len());
                stats.weigh_and_add(&terms, |id, w, idf| {
                    let m = u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    let bucket = ((m >> 32) % dim as u64) as usize;
                    let sign = if m >> 63 == 0 { 1.0 } else { -1.0 };
                    v[bucket] += sign * w * idf;
                    sparse.push((id, w * idf));
                });
                crate::kernels::normalize(&mut v);
                let norm = sparse.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
                if norm > 0.0 && norm.is_finite() {
                    sparse.iter_mut().for_each(|(_, w)| *w /= norm);
                } else {
                    sparse.clear();
                }
                (v, Some(sparse))
            }
        }
    }

    /// The dense vector of [`Self::into_vectors`].
    pub fn into_dense(self, stats: &mut crate::story::TermStats, dim: usize) -> Vec<f32> {
        self.into_vectors(stats, dim).0
    }
}

/// Turns documents into embeddings.
pub trait Embedder: Send + Sync {
    /// The provider name (as in the pipeline file).
    fn provider(&self) -> &'static str;
    /// A fingerprint of everything that changes the vectors (model, dimension, weights). It
    /// keys the cache and is stored with the story state: vectors from different
    /// fingerprints are not comparable.
    fn fingerprint(&self) -> String;
    /// Vector dimension.
    fn dim(&self) -> usize;
    /// Embeds `docs`, one embedding per doc, in order. CPU-bound providers may use `pool`;
    /// network-bound ones must not.
    ///
    /// # Errors
    /// [`crate::Error::Embed`] when the whole batch failed.
    fn embed(&self, docs: &[Doc<'_>], pool: &rayon::ThreadPool) -> Result<Vec<Embedding>>;

    /// Like [`Self::embed`], but one result per doc: a provider that can fail for some inputs
    /// (a remote API) says why for each, and the run keeps those articles for the next run
    /// instead of clustering them with a wrong vector.
    ///
    /// # Errors
    /// When the whole batch failed.
    fn embed_each(
        &self,
        docs: &[Doc<'_>],
        pool: &rayon::ThreadPool,
    ) -> Result<Vec<std::result::Result<Embedding, String>>> {
        Ok(self.embed(docs, pool)?.into_iter().map(Ok).collect())
    }

    /// Articles per pipeline batch this provider works best with (0: no preference). A
    /// remote provider asks for enough to fill its concurrent requests; results do not
    /// depend on batch sizes.
    fn preferred_batch(&self) -> usize {
        0
    }

    /// Network counters, for providers that call an API.
    fn api_report(&self) -> Option<crate::api::ApiReport> {
        None
    }
}

/// A registry entry: how to build a provider from the `[embed]` section.
pub struct Provider {
    /// The name used in `embed.provider`.
    pub name: &'static str,
    /// A pipeline snippet selecting this provider (checked by a test).
    pub example: &'static str,
    /// The `cluster.threshold` a run uses with this provider when the pipeline sets none:
    /// similarities of different embedders live on different scales.
    pub default_threshold: f32,
    /// Builds the provider from `[embed]` and `[api]`.
    pub build:
        fn(&EmbedConfig, &crate::api::ApiConfig, &crate::api::Context) -> Result<Box<dyn Embedder>>,
}

/// Every embedder the engine knows. One line per provider.
pub const PROVIDERS: &[Provider] = &[
    Provider {
        name: "hashing",
        example: "[embed]\nprovider = \"hashing\"\ndim = 256\n",
        // Tuned on the dev set (README, "Quality"); TF-IDF cosines of unrelated articles are
        // near zero.
        default_threshold: 0.12,
        build: hashing::build,
    },
    Provider {
        name: "openai",
        example: "[embed]\nprovider = \"openai\"\ndim = 384\n[embed.openai]\nmodel = \"m\"\n[api]\nbase_url = \"http://127.0.0.1:9/v1\"\n",
        // Neural sentence embeddings (text-embedding-3, MiniLM and kin) give unrelated news
        // cosines of about 0.1-0.3 and reports of one event about 0.6-0.8: a prior from the
        // models' published behaviour, not measured here (no network on the build machine).
        default_threshold: 0.55,
        build: openai::build,
    },
];

/// The default `cluster.threshold` of the provider named `provider` (the offline
/// embedder's for an unknown name, which the config check rejects anyway).
pub fn default_threshold(provider: &str) -> f32 {
    PROVIDERS
        .iter()
        .find(|p| p.name == provider)
        .map_or(crate::stages::cluster::OFFLINE_THRESHOLD, |p| {
            p.default_threshold
        })
}

/// A warning when `threshold` clearly belongs to another provider's scale than
/// `provider`'s: it is at least twice as close to that provider's default as to its own
/// (0.12 with `openai`, whose default is 0.55; 0.5 with `hashing`).
pub fn threshold_warning(provider: &str, threshold: f32) -> Option<String> {
    let own = default_threshold(provider);
    PROVIDERS
        .iter()
        .filter(|p| p.name != provider)
        .find(|p| 2.0 * (threshold - p.default_threshold).abs() < (threshold - own).abs())
        .map(|p| {
            format!(
                "cluster.threshold {threshold} is on the scale of the {} embedder (default {}), \
                 not of {provider} (default {own}): expect far too few or far too many stories; \
                 unset it to use {provider}'s default",
                p.name, p.default_threshold
            )
        })
}

/// Builds the embedder `[embed] provider` names.
///
/// # Errors
/// [`crate::Error::Config`] for an unknown provider, or what the provider's `build` returns.
pub fn build(
    cfg: &EmbedConfig,
    api: &crate::api::ApiConfig,
    ctx: &crate::api::Context,
) -> Result<Box<dyn Embedder>> {
    let provider = PROVIDERS
        .iter()
        .find(|p| p.name == cfg.provider)
        .ok_or_else(|| crate::Error::Config {
            origin: "embed.provider".into(),
            message: format!("unknown embedder {:?}", cfg.provider),
        })?;
    (provider.build)(cfg, api, ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sections a registry example may hold (the pipeline file parses them the same way;
    /// `config.rs` checks the examples as whole pipelines too).
    #[derive(serde::Deserialize)]
    struct Example {
        embed: EmbedConfig,
        #[serde(default)]
        api: crate::api::ApiConfig,
    }

    #[test]
    fn every_registry_example_parses_and_builds() {
        for p in PROVIDERS {
            let ex: Example = toml::from_str(p.example).unwrap();
            assert_eq!(ex.embed.provider, p.name);
            let e = build(&ex.embed, &ex.api, &crate::api::Context::default()).unwrap();
            assert_eq!(e.provider(), p.name);
        }
    }

    #[test]
    fn embeddings_round_trip_through_bytes_and_reject_garbage() {
        let d = Embedding::Dense(vec![0.6, -0.8]);
        assert_eq!(Embedding::from_bytes(&d.to_bytes(), 2), Some(d.clone()));
        assert_eq!(
            Embedding::from_bytes(&d.to_bytes(), 3),
            None,
            "wrong dimension is a miss"
        );
        let t = Embedding::Terms(vec![(3, 1.5), (9, 1.0)]);
        assert_eq!(Embedding::from_bytes(&t.to_bytes(), 2), Some(t));
        assert_eq!(Embedding::from_bytes(&[], 2), None);
        assert_eq!(Embedding::from_bytes(&[2, 1, 0, 0], 2), None);
        let unsorted = Embedding::Terms(vec![(9, 1.0), (3, 1.0)]).to_bytes();
        assert_eq!(Embedding::from_bytes(&unsorted, 2), None);
        let mut nan = d.to_bytes();
        nan[1..5].copy_from_slice(&f32::NAN.to_le_bytes());
        assert_eq!(Embedding::from_bytes(&nan, 2), None);
    }
}
