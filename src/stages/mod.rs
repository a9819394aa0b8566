//! One file per pipeline stage, in pipeline order: ingest → embed → cluster → label → publish.
//! Each stage's `process` takes one batch and returns the next stage's batch; the wiring
//! (threads, channels, timing) is in [`crate::pipeline`].

pub mod cluster;
pub mod embed;
pub mod ingest;
pub mod label;
pub mod publish;

use crate::article::Article;
use crate::embed::Embedding;

/// Articles in processing order, as ingest emits them.
#[derive(Debug, Default)]
pub struct Batch {
    /// The articles.
    pub articles: Vec<Article>,
}

/// A batch with one embedding per article.
#[derive(Debug, Default)]
pub struct EmbeddedBatch {
    /// The articles.
    pub articles: Vec<Article>,
    /// Their embeddings, parallel to `articles`.
    pub embeddings: Vec<Embedding>,
    /// Their perp symbols, parallel to `articles`.
    pub symbols: Vec<crate::signals::symbols::ArticleSymbols>,
    /// The assets, institutions and names their titles and leads name, parallel to
    /// `articles`.
    pub entities: Vec<crate::signals::entities::Entities>,
    /// Their directions, parallel to `articles`.
    pub directions: Vec<crate::signals::sentiment::ArticleDirection>,
    /// Their syndication sketches (`None`: too short), parallel to `articles`.
    pub sketches: Vec<Option<crate::syndication::Sketch>>,
}
