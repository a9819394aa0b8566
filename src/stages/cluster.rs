//! Cluster: assign each article to the most similar active story, or open a new one.
//!
//! Articles are taken strictly in (time, id) order, and the answer is exactly the one a
//! one-article-at-a-time pass would give, whatever the batch size or thread count:
//!
//! 1. *Candidates, in parallel.* A batch is decided in chunks (`chunk_rows`). Each chunk
//!    is scored against every active story's centroid as it stands at the chunk's start,
//!    with one matrix product split by story ranges over as many threads as the pool has
//!    ([`kernels::gemm_nt_into`]).
//!    Stories scoring below `threshold - GEMM_SLACK` cannot be the answer and are dropped.
//! 2. *Decision, in order.* Each article is re-scored with the one dispatch kernel
//!    ([`kernels::dot`]) against its surviving candidates that did not change during this
//!    chunk; against each story that changed, when its chunk-start score plus the distance
//!    its centroid has moved since could still reach the floor (for unit vectors the
//!    similarity cannot move further than the centroid did); and against every story opened
//!    in the chunk. Its score with a story is that similarity — times the story's cohesion
//!    under `linkage = "average"`, which makes it the mean similarity with the story's
//!    articles — minus the time penalty ([`ClusterConfig::time_penalty`]) of the hours
//!    between the article and the story's latest article; it joins the best story scoring at or above `threshold` (ties:
//!    the older story) or opens a new one. (Cohesion is at most 1 and the penalty only lowers
//!    scores, so the pruning on the centroid similarity stays exact.)
//!
//! Because every decision uses the same kernel on the same vectors, the result cannot depend
//! on how the articles were split into batches or chunks, or on the product's rounding.

mod config;
pub use config::{ClusterConfig, Linkage};

use std::collections::{HashMap, HashSet};

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::article::Article;

use crate::embed::{Embedding, SparseVector};
use crate::kernels::{self, GEMM_SLACK};
use crate::label::{SNAPSHOT_TITLES, StorySnapshot};
use crate::story::{MAX_STORY_TERMS, Representative, Story, StoryState};
use crate::text;

/// Below this many active stories, candidates are scored with per-pair dots: the matrix
/// product's packing costs more than it saves.
const DIRECT_MAX_STORIES: usize = 16;

/// Articles scored per matrix product with `active` stories. The product costs
/// `rows × active` dots at its (fast) rate; every article is also re-scored per pair, at the
/// much slower per-pair rate, against the stories opened earlier in its chunk (up to
/// `rows`). A quarter of the active set keeps the second below the first, 1,024 bounds the
/// similarity block, and 64 keeps a product worth its packing.
fn chunk_rows(active: usize) -> usize {
    (active / 4).clamp(64, 1024)
}

/// Euclidean distance between two vectors.
fn distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}

/// How far below the threshold an article's dense (hashed) score with a story may be for the
/// story still to be re-scored on the exact term vectors: 3.5 standard deviations of the
/// hashing noise (about `1/sqrt(dim)` for unit vectors).
pub fn rescore_margin(dim: usize) -> f32 {
    3.5 / (dim.max(1) as f32).sqrt()
}

/// Stories re-scored on the exact term vectors per article: the best by dense score.
pub const RESCORE_TOP: usize = 8;

/// Below this many multiply-adds a batch is scored on the calling thread.
const PARALLEL_MIN_WORK: usize = 4_000_000;

/// A chunk's similarities to the stories at its start.
struct Scored {
    /// Per article, the slots scoring at least the floor `candidates` was given.
    hits: Vec<Vec<u32>>,
    /// Similarities, one row-major block per range of `step` stories (row stride `step`):
    /// slot `s` is column `s % step` of part `s / step`.
    parts: Vec<Vec<f32>>,
    step: usize,
}

/// Work done by the similarity matrix products, for benches and logs.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClusterStats {
    /// Floating-point operations of the products (2 per multiply-add).
    pub product_flops: u64,
    /// Wall time spent computing them.
    pub product_time: std::time::Duration,
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
        }
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

    /// Places `articles` (in processing order; `embeddings` parallel to them).
    /// `ingest_time` stands in for a missing publication time.
    pub fn assign_batch(
        &mut self,
        articles: &[Article],
        embeddings: Vec<Embedding>,
        symbols: &[crate::signals::symbols::ArticleSymbols],
        ingest_time: i64,
        pool: &rayon::ThreadPool,
    ) -> ClusteredBatch {
        let signals = BatchSignals {
            symbols,
            ..BatchSignals::default()
        };
        self.assign_signals(articles, embeddings, signals, ingest_time, pool)
    }

    /// [`Self::assign_batch`] with every per-article signal: symbols, directions and
    /// syndication sketches. An article that copies an original of the story it joins is
    /// recorded as a copy (the assignment's `duplicate_of`, the story's `copies`) and counts
    /// as an outlet, not as a source, and not in the story's direction. Which story an
    /// article joins does not depend on copy detection.
    pub fn assign_signals(
        &mut self,
        articles: &[Article],
        embeddings: Vec<Embedding>,
        signals: BatchSignals<'_>,
        ingest_time: i64,
        pool: &rayon::ThreadPool,
    ) -> ClusteredBatch {
        let symbols = signals.symbols;
        // Reused by every copy lookup of the batch.
        let mut copy_scratch: Vec<u32> = Vec::new();
        // Story slots by `seq`, for copies found in the index (slots only change when a
        // batch ends and stories retire, or when a story opens, which is added below).
        let mut slot_of: HashMap<u64, usize> = self
            .state
            .stories
            .iter()
            .enumerate()
            .map(|(i, s)| (s.seq, i))
            .collect();
        // Articles already in the state are neither counted nor clustered again. (Ingest has
        // folded duplicates within the run, so no article of this batch can make another one
        // of it known.)
        let known: Vec<Option<String>> = articles
            .iter()
            .map(|a| self.state.known(&a.id, a.url_key).map(str::to_string))
            .collect();
        // Vectors in order: each term embedding is weighted by the document frequencies of
        // the articles before it, whatever the batching.
        let dim = self.state.dim;
        let (vectors, sparse): (Vec<Vec<f32>>, Vec<Option<SparseVector>>) = embeddings
            .into_iter()
            .zip(&known)
            .map(|(e, k)| match k {
                Some(_) => (Vec::new(), None),
                None => e.into_vectors(&mut self.state.terms, dim),
            })
            .unzip();
        let margin = rescore_margin(dim);
        let cfg = self.cfg.clone();
        let threshold = cfg.threshold;
        let linkage = cfg.linkage;
        let (window, retain) = self.window_retain();
        let late_before = self.start_clock.saturating_sub(window);
        let mut touched_order: Vec<usize> = Vec::new();
        let mut touched_set: HashSet<usize> = HashSet::new();
        let mut titles: HashMap<usize, Vec<String>> = HashMap::new();
        let mut out = ClusteredBatch {
            assignments: Vec::with_capacity(articles.len()),
            touched: vec![],
            events: vec![],
        };

        // The batch is decided in chunks (see `chunk_rows`). Each chunk is scored
        // against the stories as they stand at its start with one matrix product. A story that
        // changes within the chunk is re-scored exactly only when it could have reached the
        // threshold: its centroid moved by `drift` (Euclidean) since the product, so for a
        // unit vector the similarity moved by at most that much. Stories opened within the
        // chunk are re-scored exactly. Chunking therefore cannot change the result either.
        // Per article: the stories reaching the candidate score.
        let mut pre: Vec<Candidate> = Vec::new();
        let mut lo = 0;
        while lo < articles.len() {
            let hi = (lo + chunk_rows(self.state.stories.len())).min(articles.len());
            let chunk_start_slots = self.state.stories.len();
            let t0 = std::time::Instant::now();
            // Articles with exact term vectors keep the stories within `margin` of the
            // threshold as candidates too.
            let exact_chunk = sparse[lo..hi].iter().any(Option::is_some);
            let chunk_floor = threshold - GEMM_SLACK - if exact_chunk { margin } else { 0.0 };
            let scored = self.candidates(&vectors[lo..hi], chunk_floor, pool);
            self.stats.product_time += t0.elapsed();
            self.stats.product_flops += 2 * ((hi - lo) * chunk_start_slots * dim) as u64;
            // Stories that existed at the chunk's start and changed since: their centroid
            // then, and how far it has moved.
            let mut moved: Vec<(usize, usize, usize)> = Vec::new();
            // Start centroids of moved stories, one row each in `start_rows`.
            let mut start_rows: Vec<f32> = Vec::new();
            let mut start_row = vec![u32::MAX; chunk_start_slots];
            let mut drift = vec![0.0f32; chunk_start_slots];

            for i in lo..hi {
                let (a, v) = (&articles[i], &vectors[i]);
                let (t, until) = (a.time(ingest_time), a.time_until(ingest_time));
                self.state.clock = self.state.clock.max(t);
                self.run_latest = self.run_latest.max(t);
                let ukey = a.url_key;
                if let Some(story) = &known[i] {
                    let duplicate_of = self
                        .state
                        .stories
                        .iter()
                        .find(|s| s.id == *story)
                        .and_then(|s| s.copies.iter().find(|c| c.0 == a.id))
                        .map(|c| c.1.clone());
                    out.assignments.push(Assignment {
                        seq: a.seq,
                        article_id: a.id.clone(),
                        story_id: story.clone(),
                        placement: Placement::Known,
                        duplicate_of,
                    });
                    continue;
                }
                // The stories of the article's own time: active within the window before
                // it, and not begun more than a window after it. For articles in time order
                // that is the window before the clock; a late article (a backfill, a feed
                // hours behind) is thereby clustered among the stories of its time instead
                // of opening a story that is closed at once.
                let (cutoff, horizon) = (t.saturating_sub(window), until.saturating_add(window));
                if t < late_before {
                    self.late += 1;
                }
                // A syndicated copy of an original of a story still in the window: marked as
                // a copy when the scores place it in that story too (look-alike reports that
                // share boilerplate but land elsewhere are not copies, and copy detection
                // never changes which story an article joins).
                let sketch = signals
                    .sketches
                    .get(i)
                    .and_then(Option::as_ref)
                    .filter(|_| self.syndicates(a.source.as_deref()));
                let copy = sketch.and_then(|sk| {
                    let stories = &self.state.stories;
                    let live = |seq: u64| {
                        slot_of.get(&seq).is_some_and(|&slot| {
                            stories[slot].last_seen >= cutoff && stories[slot].first_seen <= horizon
                        })
                    };
                    let m = self.state.copy_index.find_with(
                        &mut copy_scratch,
                        sk,
                        self.syndication.threshold,
                        live,
                    )?;
                    Some((slot_of[&m.story], m.original))
                });
                let exact = sparse[i].as_deref();
                let best = {
                    // Stories whose dense score reaches `reach` are candidates: the threshold
                    // itself, or `margin` below it when the decision is made on exact vectors.
                    let reach = threshold - if exact.is_some() { margin } else { 0.0 };
                    let floor = reach - GEMM_SLACK;
                    pre.clear();
                    let mut consider = |slot: usize, state: &StoryState| {
                        let s = &state.stories[slot];
                        if s.last_seen < cutoff || s.first_seen > horizon {
                            return;
                        }
                        let time = cfg.time_penalty(s.gap_hours(t, until));
                        let link = match linkage {
                            Linkage::Average => state.cohesions[slot],
                            Linkage::Centroid => 1.0,
                        };
                        let score = kernels::dot(v, state.centroid(slot)) * link - time;
                        if score >= reach {
                            pre.push(Candidate {
                                score,
                                seq: s.seq,
                                slot,
                                time,
                            });
                        }
                    };
                    let row = i - lo;
                    for &slot in &scored.hits[row] {
                        let slot = slot as usize;
                        if start_row[slot] == u32::MAX {
                            consider(slot, &self.state);
                        }
                    }
                    for &(slot, part, col) in &moved {
                        if scored.parts[part][row * scored.step + col] + drift[slot] >= floor {
                            consider(slot, &self.state);
                        }
                    }
                    for slot in chunk_start_slots..self.state.stories.len() {
                        consider(slot, &self.state);
                    }
                    decide(&mut pre, exact, &self.state, linkage, threshold)
                };
                let copy = copy.filter(|(slot, _)| best == Some(*slot));

                let no_symbols = crate::signals::symbols::ArticleSymbols::default();
                let syms = symbols.get(i).unwrap_or(&no_symbols);
                let slot = match best {
                    Some(slot) => {
                        if slot < chunk_start_slots && start_row[slot] == u32::MAX {
                            start_row[slot] = moved.len() as u32;
                            start_rows.extend_from_slice(self.state.centroid(slot));
                            moved.push((slot, slot / scored.step, slot % scored.step));
                        }
                        self.join(slot, a, v, exact, (t, until));
                        if slot < chunk_start_slots {
                            let r = start_row[slot] as usize * dim;
                            let c0 = &start_rows[r..r + dim];
                            // A little over the f32 rounding of the distance itself.
                            drift[slot] = distance(self.state.centroid(slot), c0) * 1.0001 + 1e-6;
                        }
                        let mut asg = self.assignment(a, slot, Placement::Joined);
                        asg.duplicate_of = copy.as_ref().map(|c| c.1.clone());
                        out.assignments.push(asg);
                        slot
                    }
                    None => {
                        let slot = self.open(a, v, exact, (t, until));
                        slot_of.insert(self.state.stories[slot].seq, slot);
                        out.assignments
                            .push(self.assignment(a, slot, Placement::Opened));
                        slot
                    }
                };
                self.state
                    .remember(&a.id, ukey, &self.state.stories[slot].id.clone());
                let (needed, window) = (self.breaking_sources, self.breaking_window);
                let s = &mut self.state.stories[slot];
                crate::signals::symbols::tally(&mut s.symbols, syms);
                if s.size == 1 {
                    out.events.push(StoryEvent {
                        story_id: s.id.clone(),
                        kind: StoryEventKind::Opened,
                    });
                }
                s.note_outlet(a.source.as_deref());
                if let Some((_, original)) = copy {
                    // A copy is one more outlet, not one more source: no heat, no
                    // breaking, no vote in the direction.
                    s.times.push(t);
                    s.copies.push((a.id.clone(), original));
                } else {
                    if let Some(d) = signals.directions.get(i) {
                        s.direction.add(d);
                    }
                    if let Some(sk) = sketch {
                        let member = u32::try_from(s.article_ids.len().saturating_sub(1))
                            .unwrap_or(u32::MAX);
                        s.originals.push(crate::syndication::StoredSketch {
                            member,
                            sketch: sk.clone(),
                        });
                        let seq = s.seq;
                        self.state
                            .copy_index
                            .insert(seq, member, &a.id, t, sk.clone());
                    }
                    let s = &mut self.state.stories[slot];
                    if s.note_source(a.source.as_deref(), t, needed, window) {
                        out.events.push(StoryEvent {
                            story_id: s.id.clone(),
                            kind: StoryEventKind::Breaking,
                        });
                    }
                }
                if touched_set.insert(slot) {
                    touched_order.push(slot);
                }
                let seen = titles.entry(slot).or_default();
                if seen.len() < SNAPSHOT_TITLES && !seen.contains(&a.title) {
                    seen.push(a.title.clone());
                }
            }
            // The similarity blocks are reused by the next chunk (no fresh pages per chunk).
            self.scratch = scored.parts;
            lo = hi;
        }

        out.touched = touched_order
            .iter()
            .map(|&slot| {
                let s = &self.state.stories[slot];
                StorySnapshot {
                    id: s.id.clone(),
                    rep_title: s.rep.title.clone(),
                    terms: s.terms.clone(),
                    size: s.size,
                    titles: titles.remove(&slot).unwrap_or_default(),
                    symbols: crate::signals::symbols::story_symbols_from(&s.symbols, s.size)
                        .into_iter()
                        .map(|(sym, _)| sym)
                        .collect(),
                }
            })
            .collect();
        // Retired by the run's latest article, not the state's clock: a late dump's stories
        // stay joinable by the rest of it whatever the batching (later articles of the run
        // can only reach stories within the window before them).
        let now = self.run_latest.min(self.state.clock);
        self.state.retire(now, now, window, retain);
        out
    }

    fn assignment(&self, a: &Article, slot: usize, placement: Placement) -> Assignment {
        Assignment {
            seq: a.seq,
            article_id: a.id.clone(),
            story_id: self.state.stories[slot].id.clone(),
            placement,
            duplicate_of: None,
        }
    }

    /// Each article's similarity to every active story's centroid as it stands now (one
    /// matrix product, split by story ranges over as many threads as the pool has), and the
    /// slots that might reach the threshold.
    fn candidates(&mut self, vectors: &[Vec<f32>], floor: f32, pool: &rayon::ThreadPool) -> Scored {
        let m = self.state.stories.len();
        let d = self.state.dim;
        let threads = pool.current_num_threads().max(1);
        let parallel = threads > 1 && vectors.len() * m * d >= PARALLEL_MIN_WORK;
        // Parts of `step` stories each (the last may be shorter); row stride `step`.
        let step = if parallel { m.div_ceil(threads) } else { m }.max(1);
        let n_parts = m.div_ceil(step);
        let mut parts = std::mem::take(&mut self.scratch);
        parts.resize_with(n_parts, Vec::new);
        parts.truncate(n_parts);
        let rows = vectors.len();
        for p in &mut parts {
            p.clear();
            p.resize(rows * step, 0.0);
        }
        let mut scored = Scored {
            hits: vec![Vec::new(); rows],
            parts,
            step,
        };
        if m == 0 || rows == 0 {
            return scored;
        }
        let state = &self.state;
        let mut flat = Vec::with_capacity(rows * d);
        for r in vectors {
            // Known articles carry no vector; a zero row matches nothing.
            flat.extend_from_slice(&r[..d.min(r.len())]);
            flat.resize(flat.len() + d.saturating_sub(r.len()), 0.0);
        }
        let views = (
            ArrayView2::from_shape((rows, d), &flat),
            ArrayView2::from_shape((m, d), &state.centroids[..m * d]),
        );
        let (Ok(a), Ok(stories)) = views else {
            // Cannot happen (shapes are built above); stay correct regardless.
            scored.hits = vec![(0..m as u32).collect(); rows];
            for p in &mut scored.parts {
                p.fill(f32::INFINITY);
            }
            return scored;
        };
        // The articles against the stories of part `t`, into its block.
        let fill = |t: usize, block: &mut Vec<f32>| {
            let (lo, hi) = (t * step, ((t + 1) * step).min(m));
            let Ok(mut c) = ArrayViewMut2::from_shape((rows, step), &mut block[..]) else {
                return;
            };
            let mut c = c.slice_mut(ndarray::s![.., ..hi - lo]);
            if m < DIRECT_MAX_STORIES {
                // Few stories: packing them for a matrix product costs more than the dots.
                for ((i, j), out) in c.indexed_iter_mut() {
                    *out = if vectors[i].is_empty() {
                        0.0
                    } else {
                        kernels::dot(&vectors[i], state.centroid(lo + j))
                    };
                }
                return;
            }
            kernels::gemm_nt_into(a, stories.slice(ndarray::s![lo..hi, ..]), &mut c);
        };
        if parallel {
            // Split the stories, not the articles: each thread packs only its share of the
            // story matrix once, and every product keeps all the chunk's rows.
            // On scoped threads of their own, the caller taking the first part: the pool's
            // workers sleep while the chunk is decided, and a product handed to them waited
            // for a wake-up that often never came before the first worker had done it all.
            std::thread::scope(|s| {
                let mut parts = scored.parts.iter_mut().enumerate();
                let first = parts.next();
                for (t, block) in parts {
                    let fill = &fill;
                    s.spawn(move || fill(t, block));
                }
                if let Some((t, block)) = first {
                    fill(t, block);
                }
            });
        } else {
            for (t, block) in scored.parts.iter_mut().enumerate() {
                fill(t, block);
            }
        }
        for (t, part) in scored.parts.iter().enumerate() {
            let (lo, width) = (t * step, (((t + 1) * step).min(m)) - t * step);
            for (hits, row) in scored.hits.iter_mut().zip(part.chunks_exact(step)) {
                for (j, s) in row[..width].iter().enumerate() {
                    if *s >= floor {
                        hits.push((lo + j) as u32);
                    }
                }
            }
        }
        scored
    }

    fn join(
        &mut self,
        slot: usize,
        a: &Article,
        v: &[f32],
        exact: Option<&[(u32, f32)]>,
        (t, until): (i64, i64),
    ) {
        let dim = self.state.dim;
        let StoryState {
            stories,
            centroids,
            cohesions,
            ..
        } = &mut self.state;
        let s = &mut stories[slot];
        for (c, x) in s.centroid_sum.iter_mut().zip(v) {
            *c += *x;
        }
        s.size += 1;
        cohesions[slot] = crate::story::cohesion(&s.centroid_sum, s.size);
        if let Some(terms) = exact {
            crate::story::add_term_vector(&mut s.term_sum, terms);
        }
        s.article_ids.push(a.id.clone());
        s.url_keys.extend(a.url_key);
        s.first_seen = s.first_seen.min(t);
        s.last_seen = s.last_seen.max(t);
        s.last_until = s.last_until.max(until);
        add_terms(&mut s.terms, &a.title);
        // The new centroid, normalised in place in the matrix row (no scratch vector).
        let centroid = &mut centroids[slot * dim..(slot + 1) * dim];
        centroid.copy_from_slice(&s.centroid_sum);
        kernels::normalize(centroid);
        if kernels::dot(v, centroid) > kernels::dot(&s.rep.vector, centroid) {
            s.rep = Representative {
                id: a.id.clone(),
                title: a.title.clone(),
                vector: v.to_vec(),
            };
        }
    }

    fn open(
        &mut self,
        a: &Article,
        v: &[f32],
        exact: Option<&[(u32, f32)]>,
        (t, until): (i64, i64),
    ) -> usize {
        let mut id = format!("s{:016x}", xxhash_rust::xxh3::xxh3_64(a.id.as_bytes()));
        if self.state.known_story(&id) {
            id = format!("{id}-{}", self.state.next_seq);
        }
        let mut terms = Vec::new();
        add_terms(&mut terms, &a.title);
        let story = Story {
            id,
            seq: self.state.next_seq,
            label: a.title.clone(),
            top_terms: Vec::new(),
            category: None,
            size: 1,
            article_ids: vec![a.id.clone()],
            url_keys: a.url_key.into_iter().collect(),
            first_seen: t,
            last_seen: t,
            last_until: until,
            terms,
            centroid_sum: v.to_vec(),
            term_sum: exact.map(<[_]>::to_vec).unwrap_or_default(),
            rep: Representative {
                id: a.id.clone(),
                title: a.title.clone(),
                vector: v.to_vec(),
            },
            symbols: Vec::new(),
            sources: Vec::new(),
            times: Vec::new(),
            breaking_at: None,
            outlets: Vec::new(),
            copies: Vec::new(),
            originals: Vec::new(),
            direction: crate::signals::sentiment::DirectionTally::default(),
            llm_direction: None,
        };
        self.state.next_seq += 1;
        // Normalised the same way a reloaded state normalises it, bit for bit.
        let mut centroid = v.to_vec();
        kernels::normalize(&mut centroid);
        self.state.push_story(story, &centroid);
        self.opened += 1;
        self.state.stories.len() - 1
    }
}

/// A story an article might join.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    /// Dense score (similarity × linkage factor − `time`), or the exact one once re-scored.
    score: f32,
    /// The story's creation order: ties go to the older story.
    seq: u64,
    slot: usize,
    /// The time penalty already in `score`.
    time: f32,
}

/// Higher score first, then the older story.
fn better(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    b.score.total_cmp(&a.score).then(a.seq.cmp(&b.seq))
}

/// The story an article joins, from the candidates `pre`, or `None` to open a new one.
/// Without exact vectors: the best dense score at or above `threshold` (ties: the older
/// story). With them (`exact`): the [`RESCORE_TOP`] best candidates by dense score are
/// re-scored on the term vectors (the mean of the article's exact similarities with the
/// members under average linkage, the similarity with the exact centroid under centroid
/// linkage, minus the same time penalty), and the best at or above `threshold` wins (ties:
/// the older story). A story without term vectors (from a state written before they were
/// kept) keeps its dense score.
fn decide(
    pre: &mut [Candidate],
    exact: Option<&[(u32, f32)]>,
    state: &StoryState,
    linkage: Linkage,
    threshold: f32,
) -> Option<usize> {
    let rescored = |c: &Candidate| {
        let s = &state.stories[c.slot];
        let Some(terms) = exact.filter(|_| !s.term_sum.is_empty()) else {
            return *c;
        };
        let dot = kernels::sparse_dot(terms, &s.term_sum);
        let link = match linkage {
            Linkage::Average => dot / s.size.max(1) as f32,
            Linkage::Centroid => {
                let norm = s.term_sum.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
                if norm > 0.0 { dot / norm } else { 0.0 }
            }
        };
        Candidate {
            score: link - c.time,
            ..*c
        }
    };
    let top = if exact.is_some() {
        pre.sort_unstable_by(better);
        RESCORE_TOP
    } else {
        pre.len()
    };
    pre.iter()
        .take(top)
        .map(rescored)
        .filter(|c| c.score >= threshold)
        .min_by(better)
        .map(|c| c.slot)
}

/// Adds one article's title words to a story's term weights, keeping the heaviest
/// [`MAX_STORY_TERMS`] (ties by term, so the result does not depend on anything but order).
fn add_terms(terms: &mut Vec<(String, f32)>, title: &str) {
    for w in text::content_words(title) {
        match terms.iter_mut().find(|(t, _)| *t == w) {
            Some((_, weight)) => *weight += 1.0,
            None => terms.push((w, 1.0)),
        }
    }
    if terms.len() > MAX_STORY_TERMS {
        terms.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        terms.truncate(MAX_STORY_TERMS);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::article::Origin;

    fn article(i: usize, t: i64) -> Article {
        Article {
            id: format!("a{i:05}"),
            title: format!("title {i}"),
            body: String::new(),
            url: None,
            url_key: None,
            source: None,
            published_at: Some(t),
            day_only: false,
            lang: None,
            origin: Origin {
                file: "t".into(),
                line: i + 1,
            },
            seq: i,
        }
    }

    /// Unit vectors around `k` planted directions, so there are real stories to find.
    fn planted(n: usize, dim: usize, k: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut s = seed | 1;
        let mut rnd = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 20_001) as f32 / 10_000.0 - 1.0
        };
        let centers: Vec<Vec<f32>> = (0..k).map(|_| (0..dim).map(|_| rnd()).collect()).collect();
        (0..n)
            .map(|i| {
                let c = &centers[(i * 7 + i / 3) % k];
                let mut v: Vec<f32> = c.iter().map(|x| x + 1.1 * rnd()).collect();
                kernels::normalize(&mut v);
                v
            })
            .collect()
    }

    /// The specification, written as plainly as possible: every article against every
    /// active story, one at a time.
    fn reference(cfg: &ClusterConfig, arts: &[Article], vecs: &[Vec<f32>]) -> Vec<usize> {
        struct S {
            sum: Vec<f32>,
            members: Vec<usize>,
            last: i64,
        }
        let mut stories: Vec<S> = Vec::new();
        let mut out = Vec::new();
        let window = (cfg.window_hours * 3600.0) as i64;
        for (i, (a, v)) in arts.iter().zip(vecs).enumerate() {
            let t = a.published_at.unwrap_or(0);
            let mut best: Option<(f32, usize)> = None;
            for (j, s) in stories.iter().enumerate() {
                if s.last < t - window {
                    continue;
                }
                let link = match cfg.linkage {
                    // The mean similarity with the story's articles, one by one.
                    Linkage::Average => {
                        let total: f32 = s.members.iter().map(|&m| kernels::dot(v, &vecs[m])).sum();
                        total / s.members.len() as f32
                    }
                    Linkage::Centroid => {
                        let mut c = s.sum.clone();
                        kernels::normalize(&mut c);
                        kernels::dot(v, &c)
                    }
                };
                let gap = ((t - s.last).abs() as f32 / 3600.0).min(cfg.window_hours as f32);
                let sim = link - cfg.time_penalty(gap);
                if sim >= cfg.threshold && best.is_none_or(|(b, _)| sim > b) {
                    best = Some((sim, j));
                }
            }
            match best {
                Some((_, j)) => {
                    stories[j].sum.iter_mut().zip(v).for_each(|(c, x)| *c += *x);
                    stories[j].members.push(i);
                    stories[j].last = stories[j].last.max(t);
                    out.push(j);
                }
                None => {
                    stories.push(S {
                        sum: v.clone(),
                        members: vec![i],
                        last: t,
                    });
                    out.push(stories.len() - 1);
                }
            }
        }
        out
    }

    fn run(
        cfg: &ClusterConfig,
        arts: &[Article],
        vecs: &[Vec<f32>],
        batch: usize,
        threads: usize,
    ) -> Vec<String> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let dim = vecs[0].len();
        let mut c = Clusterer::new(cfg.clone(), StoryState::new("test", dim));
        let mut out = Vec::new();
        for (a, v) in arts.chunks(batch).zip(vecs.chunks(batch)) {
            let e = v.iter().cloned().map(Embedding::Dense).collect();
            out.extend(
                c.assign_batch(a, e, &[], 0, &pool)
                    .assignments
                    .into_iter()
                    .map(|x| x.story_id),
            );
        }
        out
    }

    /// Relabels story ids by first appearance, so partitions compare directly.
    fn canonical<T: PartialEq + Clone>(ids: &[T]) -> Vec<usize> {
        let mut seen: Vec<T> = Vec::new();
        ids.iter()
            .map(|x| match seen.iter().position(|s| s == x) {
                Some(p) => p,
                None => {
                    seen.push(x.clone());
                    seen.len() - 1
                }
            })
            .collect()
    }

    #[test]
    fn pruned_batched_parallel_equals_the_one_at_a_time_reference() {
        let n = 700;
        let vecs = planted(n, 96, 60, 99);
        // Times spread over three days so the window retires stories mid-run.
        let arts: Vec<Article> = (0..n)
            .map(|i| article(i, 1_000_000 + i as i64 * 400))
            .collect();
        for (linkage, penalty, plateau, cap) in [
            (Linkage::Average, 0.0, 0.0, f32::INFINITY),
            (Linkage::Average, 0.05, 0.0, f32::INFINITY),
            (Linkage::Average, 0.05, 1.0, 0.1),
            (Linkage::Centroid, 0.0, 0.0, f32::INFINITY),
            (Linkage::Centroid, 0.05, 0.0, f32::INFINITY),
        ] {
            let cfg = ClusterConfig {
                threshold: 0.25,
                linkage,
                time_penalty_per_hour: penalty,
                time_plateau_hours: plateau,
                time_penalty_max: cap,
                window_hours: 24.0,
                ..ClusterConfig::default()
            };
            let want = reference(&cfg, &arts, &vecs);
            let stories = want.iter().max().unwrap() + 1;
            assert!(
                stories > 30 && stories < 600,
                "{stories} stories: the test needs real groups"
            );
            for (batch, threads) in [(1, 1), (20, 2), (64, 2), (700, 1), (700, 2)] {
                let got = run(&cfg, &arts, &vecs, batch, threads);
                assert_eq!(
                    canonical(&got),
                    canonical(&want),
                    "batch {batch} threads {threads} {linkage} penalty {penalty}"
                );
            }
        }
    }

    /// Term embeddings around `k` planted topics: each article draws most of its terms from
    /// its topic's vocabulary and the rest from a shared one.
    fn planted_terms(n: usize, k: usize, seed: u64) -> Vec<Vec<(u32, f32)>> {
        let mut s = seed | 1;
        let mut rnd = move |m: u64| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s % m
        };
        (0..n)
            .map(|i| {
                let topic = ((i * 7 + i / 3) % k) as u64;
                let mut t: Vec<(u32, f32)> = (0..40)
                    .map(|j| {
                        let id = if j % 5 < 4 {
                            100_000 + topic * 30 + rnd(30)
                        } else {
                            rnd(5_000)
                        };
                        (id as u32, 1.0 + rnd(3) as f32)
                    })
                    .collect();
                t.sort_unstable_by_key(|x| x.0);
                t.dedup_by_key(|x| x.0);
                t
            })
            .collect()
    }

    /// The rule for term embeddings, written plainly: every article against every active
    /// story; dense candidates within the margin, the best [`RESCORE_TOP`] re-scored on the
    /// exact term sums. Also counts the articles for which re-scoring every story (brute
    /// force) would have chosen otherwise.
    fn terms_reference(
        cfg: &ClusterConfig,
        arts: &[Article],
        terms: &[Vec<(u32, f32)>],
        dim: usize,
    ) -> (Vec<usize>, usize) {
        struct S {
            sum: Vec<f32>,
            terms: Vec<(u32, f32)>,
            n: usize,
            last: i64,
            seq: u64,
        }
        let mut stats = crate::story::TermStats::default();
        let mut stories: Vec<S> = Vec::new();
        let mut out = Vec::new();
        let mut differ = 0;
        let window = (cfg.window_hours * 3600.0) as i64;
        for (a, t) in arts.iter().zip(terms) {
            let (v, exact) = Embedding::Terms(t.clone()).into_vectors(&mut stats, dim);
            let exact = exact.unwrap();
            let at = a.published_at.unwrap_or(0);
            let mut pre = Vec::new();
            for (j, s) in stories.iter().enumerate() {
                if s.last < at - window {
                    continue;
                }
                let gap = ((at - s.last).abs() as f32 / 3600.0).min(cfg.window_hours as f32);
                let pen = cfg.time_penalty(gap);
                let mut c = s.sum.clone();
                kernels::normalize(&mut c);
                let coh = crate::story::cohesion(&s.sum, s.n);
                let dense = kernels::dot(&v, &c) * coh - pen;
                let exact_score = kernels::sparse_dot(&exact, &s.terms) / s.n as f32 - pen;
                let candidate = dense >= cfg.threshold - rescore_margin(dim);
                pre.push((dense, s.seq, j, exact_score, candidate));
            }
            let pick = |c: &mut dyn Iterator<Item = &(f32, u64, usize, f32, bool)>| {
                c.filter(|c| c.3 >= cfg.threshold)
                    .min_by(|x, y| y.3.total_cmp(&x.3).then(x.1.cmp(&y.1)))
                    .copied()
            };
            let brute = pick(&mut pre.iter()).map(|c| c.2);
            pre.retain(|c| c.4);
            pre.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
            let best = pick(&mut pre.iter().take(RESCORE_TOP));
            differ += usize::from(best.map(|c| c.2) != brute);
            match best {
                Some((_, _, j, _, _)) => {
                    let s = &mut stories[j];
                    s.sum.iter_mut().zip(&v).for_each(|(c, x)| *c += *x);
                    crate::story::add_term_vector(&mut s.terms, &exact);
                    s.n += 1;
                    s.last = s.last.max(at);
                    out.push(j);
                }
                None => {
                    let seq = stories.len() as u64;
                    stories.push(S {
                        sum: v,
                        terms: exact,
                        n: 1,
                        last: at,
                        seq,
                    });
                    out.push(stories.len() - 1);
                }
            }
        }
        (out, differ)
    }

    #[test]
    fn term_embeddings_are_decided_on_exact_vectors_whatever_the_batching() {
        let n = 600;
        let dim = 64; // much hashing noise: the dense scores alone would decide differently
        let terms = planted_terms(n, 50, 7);
        let arts: Vec<Article> = (0..n)
            .map(|i| article(i, 1_000_000 + i as i64 * 300))
            .collect();
        let cfg = ClusterConfig {
            threshold: 0.2,
            time_penalty_per_hour: 0.02,
            time_plateau_hours: 0.0,
            time_penalty_max: f32::INFINITY,
            window_hours: 24.0,
            ..ClusterConfig::default()
        };
        let (want, differ) = terms_reference(&cfg, &arts, &terms, dim);
        let stories = want.iter().max().unwrap() + 1;
        assert!(
            stories > 30 && stories < 400,
            "{stories} stories: the test needs real groups"
        );
        for (batch, threads) in [(1, 1), (20, 2), (600, 1), (600, 2)] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut c = Clusterer::new(cfg.clone(), StoryState::new("test", dim));
            let mut got = Vec::new();
            for (a, t) in arts.chunks(batch).zip(terms.chunks(batch)) {
                let e = t.iter().cloned().map(Embedding::Terms).collect();
                let out = c.assign_batch(a, e, &[], 0, &pool);
                got.extend(out.assignments.into_iter().map(|x| x.story_id));
            }
            assert_eq!(
                canonical(&got),
                canonical(&want),
                "batch {batch} threads {threads}"
            );
        }
        // The dense pruning changes (almost) no decision against re-scoring every story.
        assert!(
            differ * 100 <= n,
            "{differ} of {n} decided otherwise than brute force"
        );
    }

    #[test]
    fn a_day_only_time_is_as_close_as_its_day_allows() {
        // Three copies of one text a day apart: with exact times the time penalty keeps them
        // apart; given as days (a bare date), consecutive days can be hours apart, so they
        // form one story. Two days apart stays apart: the days do not touch. An exact time
        // is measured from a day-only story's midnight, so one midnight stamp cannot lift
        // the penalty for a whole day of exactly timed articles.
        let cfg = ClusterConfig {
            threshold: 0.5,
            time_penalty_per_hour: 0.1,
            time_plateau_hours: 0.0,
            time_penalty_max: f32::INFINITY,
            window_hours: 96.0,
            ..ClusterConfig::default()
        };
        let day = 86_400;
        let v = {
            let mut v = vec![1.0f32; 8];
            kernels::normalize(&mut v);
            v
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        // (day only, seconds after the first midnight) per article.
        let place = |times: &[(bool, i64)]| {
            let arts: Vec<Article> = times
                .iter()
                .enumerate()
                .map(|(i, &(day_only, secs))| Article {
                    day_only,
                    ..article(i, 100 * day + secs)
                })
                .collect();
            let e = arts.iter().map(|_| Embedding::Dense(v.clone())).collect();
            let mut c = Clusterer::new(cfg.clone(), StoryState::new("t", 8));
            let ids: Vec<String> = c
                .assign_batch(&arts, e, &[], 0, &pool)
                .assignments
                .into_iter()
                .map(|x| x.story_id)
                .collect();
            canonical(&ids)
        };
        let days =
            |day_only: bool, ds: &[i64]| ds.iter().map(|d| (day_only, d * day)).collect::<Vec<_>>();
        assert_eq!(place(&days(false, &[0, 1, 2])), vec![0, 1, 2]);
        assert_eq!(place(&days(true, &[0, 1, 2])), vec![0, 0, 0]);
        assert_eq!(place(&days(true, &[0, 2])), vec![0, 1]);
        assert_eq!(place(&[(true, 0), (false, 20 * 3600)]), vec![0, 1]);
        assert_eq!(place(&[(true, 0), (false, 3600)]), vec![0, 0]);
    }

    #[test]
    fn known_articles_are_not_clustered_again() {
        let vecs = planted(40, 32, 4, 5);
        let arts: Vec<Article> = (0..40).map(|i| article(i, 1000 + i as i64)).collect();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let mut c = Clusterer::new(ClusterConfig::default(), StoryState::new("test", 32));
        let dense = |v: &[Vec<f32>]| v.iter().cloned().map(Embedding::Dense).collect();
        let first = c.assign_batch(&arts, dense(&vecs), &[], 0, &pool);
        let opened = c.opened();
        let again = c.assign_batch(&arts, dense(&vecs), &[], 0, &pool);
        assert_eq!(c.opened(), opened);
        assert!(
            again
                .assignments
                .iter()
                .all(|a| a.placement == Placement::Known)
        );
        let ids = |b: &ClusteredBatch| {
            b.assignments
                .iter()
                .map(|a| a.story_id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&first), ids(&again));
        assert!(again.touched.is_empty());
    }
}
