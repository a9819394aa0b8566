//! Cluster: assign each article to the most similar active story, or open a new one.
//!
//! Articles are taken strictly in (time, id) order, and the answer is exactly the one a
//! one-article-at-a-time pass would give, whatever the batch size or thread count:
//!
//! 1. *Candidates, in parallel.* A batch is decided in chunks (`chunk_rows`). Each chunk
//!    is scored against every active story's centroid as it stands at the chunk's start,
//!    with one matrix product split by story ranges over as many threads as the pool has
//!    ([`kernels::gemm_nt_into`](crate::kernels::gemm_nt_into)).
//!    Stories scoring below `threshold - GEMM_SLACK` cannot be the answer and are dropped.
//! 2. *Decision, in order.* Each article is re-scored with the one dispatch kernel
//!    ([`kernels::dot`](crate::kernels::dot)) against its surviving candidates that did not change during this
//!    chunk; against each story that changed, when its chunk-start score plus the distance
//!    its centroid has moved since could still reach the floor (for unit vectors the
//!    similarity cannot move further than the centroid did); and against every story opened
//!    in the chunk. Its score with a story is that similarity — times the story's cohesion
//!    under `linkage = "average"`, which makes it the mean similarity with the story's
//!    articles — minus the time penalty ([`ClusterConfig::time_penalty`]) of the hours
//!    between the article and the story's latest article, minus `conflict_penalty` when the two
//!    name different entities of one kind ([`crate::signals::entities::conflict`]); it joins
//!    the best story scoring at or above its bar (`threshold`, raised for a short text by
//!    [`ClusterConfig::threshold_for`]; ties: the older story) or opens a new one. (Cohesion
//!    is at most 1, the penalties only lower scores and the bar is never below `threshold`,
//!    so the pruning on the centroid similarity stays exact.)
//!
//! Because every decision uses the same kernel on the same vectors, the result cannot depend
//! on how the articles were split into batches or chunks, or on the product's rounding.

mod config;
pub use config::{ClusterConfig, Linkage, OFFLINE_THRESHOLD};

use std::collections::HashSet;

use crate::label::StorySnapshot;
use crate::story::StoryState;

mod batch;
mod candidates;
mod decision;
mod index;
#[cfg(test)]
mod tests;
mod update;

pub use candidates::{RESCORE_TOP, rescore_margin};
pub use index::{HEAD_TERMS, INDEX_TOP, LONG_POSTINGS, TAIL_MASS};

/// Work done by the similarity matrix products, for benches and logs.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClusterStats {
    /// Floating-point operations of the products (2 per multiply-add).
    pub product_flops: u64,
    /// Wall time spent computing them.
    pub product_time: std::time::Duration,
    /// Postings the term index walks read (offline embedder).
    pub index_postings: u64,
    /// Decisions checked against re-scoring every story of the article's time exactly
    /// (with [`Clusterer::with_candidate_check`]), and how many of them differed.
    pub checked: u64,
    /// See `checked`.
    pub differing: u64,
}

impl ClusterStats {
    /// The products' rate.
    pub fn gflops(&self) -> f64 {
        self.product_flops as f64 / self.product_time.as_secs_f64().max(1e-9) / 1e9
    }
}

/// How an article was placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// It opened a new story.
    Opened,
    /// It joined an existing story.
    Joined,
    /// It was already in the state (same id or url) and was not clustered again.
    Known,
}

/// One article's story.
#[derive(Debug, Clone)]
pub struct Assignment {
    /// The article's input position.
    pub seq: usize,
    /// Article id.
    pub article_id: String,
    /// Story id.
    pub story_id: String,
    /// How it got there.
    pub placement: Placement,
    /// The original it is a syndicated copy of (see [`crate::syndication`]).
    pub duplicate_of: Option<String>,
}

/// Per-article signals found by the embed stage, parallel to a batch's articles (an empty
/// slice means none).
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchSignals<'a> {
    /// Perp symbols.
    pub symbols: &'a [crate::signals::symbols::ArticleSymbols],
    /// Entities (see [`crate::signals::entities`]).
    pub entities: &'a [crate::signals::entities::Entities],
    /// Directions.
    pub directions: &'a [crate::signals::sentiment::ArticleDirection],
    /// Syndication sketches.
    pub sketches: &'a [Option<crate::syndication::Sketch>],
}

/// A moment traders are told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoryEventKind {
    /// A story was opened.
    Opened,
    /// A story turned breaking (once per story, ever).
    Breaking,
}

/// A story event, published as `news:story` after the run saved its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoryEvent {
    /// Story id.
    pub story_id: String,
    /// What happened.
    pub kind: StoryEventKind,
}

/// The result of clustering one batch.
#[derive(Debug, Default)]
pub struct ClusteredBatch {
    /// Stories opened or turned breaking in this batch, in order.
    pub events: Vec<StoryEvent>,
    /// One per article of the batch, in batch order.
    pub assignments: Vec<Assignment>,
    /// Stories opened or joined in this batch, in first-touched order.
    pub touched: Vec<StorySnapshot>,
}

/// The incremental clusterer: owns the story state during a run.
#[derive(Debug)]
pub struct Clusterer {
    cfg: ClusterConfig,
    breaking_sources: usize,
    breaking_window: i64,
    state: StoryState,
    opened: usize,
    /// The state's clock when this clusterer took it over (the run's start).
    start_clock: i64,
    /// The latest article time this run has processed (articles come in time order).
    run_latest: i64,
    /// Articles clustered by this run that were older than `start_clock - window`.
    late: usize,
    stats: ClusterStats,
    /// Similarity blocks kept between chunks.
    scratch: Vec<Vec<f32>>,
    /// Syndicated-copy detection settings, and the sources it is off for (lowercase).
    syndication: crate::syndication::SyndicationConfig,
    syndication_off: HashSet<String>,
    /// Member articles kept per story (`[events] member_articles`).
    member_articles: usize,
    /// Scratch of the term index walks.
    walk: index::Walk,
    /// Whether each term-index decision is checked against an exhaustive exact scan.
    check_candidates: bool,
}

impl Clusterer {
    /// Continues `state` with the given settings.
    pub fn new(cfg: ClusterConfig, state: StoryState) -> Self {
        Clusterer {
            breaking_sources: 0,
            breaking_window: 0,
            cfg,
            start_clock: state.clock,
            run_latest: i64::MIN,
            late: 0,
            state,
            opened: 0,
            stats: ClusterStats::default(),
            scratch: Vec::new(),
            // Off unless configured: callers that pass no sketches get the plain clusterer.
            syndication: crate::syndication::SyndicationConfig {
                enabled: false,
                ..Default::default()
            },
            syndication_off: HashSet::new(),
            member_articles: crate::story::DEFAULT_MEMBER_ARTICLES,
            walk: index::Walk::default(),
            check_candidates: false,
        }
    }

    /// Checks every decision made on term-index candidates against re-scoring every story
    /// of the article's time exactly, counting those that differ ([`ClusterStats`]). Costs
    /// about a full walk of the postings per article; for tests and measurements.
    pub fn with_candidate_check(mut self, on: bool) -> Self {
        self.check_candidates = on;
        self
    }

    /// Keeps the latest `n` member articles per story (for records and events).
    pub fn with_member_articles(mut self, n: usize) -> Self {
        self.member_articles = n;
        self
    }

    /// Turns on syndicated-copy detection with `cfg`, except for the `off` sources
    /// (lowercase names).
    pub fn with_syndication(
        mut self,
        cfg: crate::syndication::SyndicationConfig,
        off: HashSet<String>,
    ) -> Self {
        self.syndication = cfg;
        self.syndication_off = off;
        self
    }

    /// Whether copy detection applies to an article of this source.
    fn syndicates(&self, source: Option<&str>) -> bool {
        self.syndication.enabled
            && source.is_none_or(|s| {
                self.syndication_off.is_empty() || !self.syndication_off.contains(&s.to_lowercase())
            })
    }

    /// Work done by the similarity products so far.
    pub fn stats(&self) -> ClusterStats {
        self.stats
    }

    /// Turns on breaking detection: `sources` distinct sources within `window` seconds.
    pub fn with_breaking(mut self, sources: usize, window: i64) -> Self {
        self.breaking_sources = sources;
        self.breaking_window = window;
        self
    }

    /// Stories opened so far by this clusterer (this run's `newClusters`).
    pub fn opened(&self) -> usize {
        self.opened
    }

    /// Articles clustered so far that were late: older than the state's clock at the start
    /// of the run minus the window (a backfill, a feed delivering hours late). They were
    /// clustered against the stories of their own time.
    pub fn late(&self) -> usize {
        self.late
    }

    /// The state, for saving: stories the clock has left behind are retired. Stories
    /// forgotten are those older than `window + retain` before the run's latest article, so
    /// a late dump's stories are remembered at least until the next run.
    pub fn into_state(mut self) -> StoryState {
        let (window, retain) = self.window_retain();
        let forget_now = self.run_latest.min(self.state.clock);
        self.state
            .retire(self.state.clock, forget_now, window, retain);
        self.state
    }

    fn window_retain(&self) -> (i64, i64) {
        (
            (self.cfg.window_hours * 3600.0) as i64,
            (self.cfg.retain_hours * 3600.0) as i64,
        )
    }

    /// Read access to the state.
    pub fn state(&self) -> &StoryState {
        &self.state
    }
}

/// The cluster stage: a [`Clusterer`] on the pipeline.
pub struct ClusterStage<'a> {
    clusterer: Clusterer,
    ingest_time: i64,
    pool: &'a rayon::ThreadPool,
}

impl<'a> ClusterStage<'a> {
    /// A stage continuing `clusterer`.
    pub fn new(clusterer: Clusterer, ingest_time: i64, pool: &'a rayon::ThreadPool) -> Self {
        ClusterStage {
            clusterer,
            ingest_time,
            pool,
        }
    }

    /// The clusterer, with the advanced state.
    pub fn into_clusterer(self) -> Clusterer {
        self.clusterer
    }
}

impl crate::pipeline::Stage for ClusterStage<'_> {
    type In = super::EmbeddedBatch;
    type Out = ClusteredBatch;

    fn name(&self) -> &'static str {
        "cluster"
    }

    fn process(&mut self, batch: super::EmbeddedBatch) -> crate::Result<ClusteredBatch> {
        let signals = BatchSignals {
            symbols: &batch.symbols,
            entities: &batch.entities,
            directions: &batch.directions,
            sketches: &batch.sketches,
        };
        Ok(self.clusterer.assign_signals(
            &batch.articles,
            batch.embeddings,
            signals,
            self.ingest_time,
            self.pool,
        ))
    }
}
