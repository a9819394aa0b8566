//! The batch loop: known articles set aside, vectors in order, then chunk by chunk the
//! candidates (in parallel) and the decisions (in order), with the signals each placement
//! records (symbols, sources and breaking, direction, syndicated copies).

use std::collections::{HashMap, HashSet};

use super::candidates::{Scored, chunk_rows, distance, rescore_margin};
use super::decision::{Candidate, decide, decide_top};
use super::index::{INDEX_TOP, Span, front_penalized};
use super::update::Placed;
use super::{Assignment, BatchSignals, ClusteredBatch, Clusterer, Linkage, Placement};
use crate::article::Article;
use crate::embed::{Embedding, SparseVector};
use crate::kernels::{self, GEMM_SLACK};
use crate::label::SNAPSHOT_TITLES;
use crate::story::StoryState;

impl Clusterer {
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
        let mut copy_scratch = crate::syndication::LookupScratch::default();
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
        // The offline embedder's articles (exact term vectors) take their candidates from
        // the term index; dense embeddings from the matrix product.
        let offline = sparse.iter().any(Option::is_some)
            && sparse
                .iter()
                .zip(&known)
                .all(|(s, k)| s.is_some() || k.is_some());
        self.state.ensure_term_index();
        // Stories without a term sum (from a state written before they were kept, or
        // opened by an article with no terms) are not in the index: scored densely.
        let mut unindexed: Vec<usize> = if offline && self.state.term_index.termless() > 0 {
            (0..self.state.stories.len())
                .filter(|&i| self.state.stories[i].term_sum.is_empty())
                .collect()
        } else {
            Vec::new()
        };
        let mut walk = std::mem::take(&mut self.walk);
        let margin = rescore_margin(dim);
        let cfg = self.cfg.clone();
        let threshold = cfg.threshold();
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
            let scored = if offline {
                Scored::none(hi - lo)
            } else {
                let scored = self.candidates(&vectors[lo..hi], chunk_floor, pool);
                self.stats.product_time += t0.elapsed();
                self.stats.product_flops += 2 * ((hi - lo) * chunk_start_slots * dim) as u64;
                scored
            };
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
                // A syndicated copy of an original of the story the scores place it in (a
                // look-alike report that shares boilerplate but lands elsewhere is not a copy,
                // and copy detection never changes which story an article joins).
                let sketch = signals
                    .sketches
                    .get(i)
                    .and_then(Option::as_ref)
                    .filter(|_| self.syndicates(a.source.as_deref()));
                let exact = sparse[i].as_deref();
                let ents = signals.entities.get(i);
                let best = if offline {
                    pre.clear();
                    let terms = exact.unwrap_or_default();
                    let span = Span {
                        t,
                        until,
                        cutoff,
                        horizon,
                    };
                    self.state.evict_terms(cutoff);
                    walk.search(&self.state, terms, span, &cfg, &mut pre);
                    for &slot in &unindexed {
                        let s = &self.state.stories[slot];
                        if s.last_seen < cutoff || s.first_seen > horizon {
                            continue;
                        }
                        let time = cfg.time_penalty(s.gap_hours(t, until));
                        let link = match linkage {
                            Linkage::Average => self.state.cohesions[slot],
                            Linkage::Centroid => 1.0,
                        };
                        pre.push(Candidate {
                            score: kernels::dot(v, self.state.centroid(slot)) * link - time,
                            seq: s.seq,
                            slot,
                            time,
                            bound: f32::INFINITY,
                        });
                    }
                    // The conflict penalty, and a short text's higher bar (candidates were kept
                    // on the base threshold: both only lower a score or raise the bar).
                    let front = front_penalized(
                        &mut pre,
                        INDEX_TOP,
                        ents,
                        &self.state,
                        cfg.conflict_penalty,
                    );
                    let bar = cfg.threshold_for(Some(terms.len()));
                    let best = decide_top(
                        &mut pre[..front],
                        Some(terms),
                        &self.state,
                        linkage,
                        bar,
                        INDEX_TOP,
                    );
                    if self.check_candidates {
                        self.check_exhaustive(terms, v, span, &unindexed, ents, best);
                    }
                    best
                } else {
                    // Stories whose dense score reaches `reach` are candidates: the threshold
                    // itself, or `margin` below it when the decision is made on exact vectors.
                    let reach = threshold - if exact.is_some() { margin } else { 0.0 };
                    let floor = reach - GEMM_SLACK;
                    pre.clear();
                    let probe = ents.map(crate::signals::entities::Probe::new);
                    let mut consider = |slot: usize, state: &StoryState| {
                        let s = &state.stories[slot];
                        if s.last_seen < cutoff || s.first_seen > horizon {
                            return;
                        }
                        let link = match linkage {
                            Linkage::Average => state.cohesions[slot],
                            Linkage::Centroid => 1.0,
                        };
                        let sim = kernels::dot(v, state.centroid(slot)) * link;
                        let mut time = cfg.time_penalty(s.gap_hours(t, until));
                        if sim - time < reach {
                            return;
                        }
                        // The conflict penalty when the two name different entities of one
                        // kind (looked at only for a story the article could still join: it
                        // only lowers the score).
                        if probe.as_ref().is_some_and(|p| state.conflict(p, slot)) {
                            time += cfg.conflict_penalty;
                        }
                        let score = sim - time;
                        if score >= reach {
                            pre.push(Candidate {
                                score,
                                seq: s.seq,
                                slot,
                                time,
                                bound: f32::INFINITY,
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
                    // A short text's bar is higher (never lower): candidates were kept on
                    // the base threshold, so the pruning stays exact.
                    let bar = cfg.threshold_for(exact.map(<[_]>::len));
                    decide(&mut pre, exact, &self.state, linkage, bar)
                };
                // Looked up only once the article joins a story: one that opens a story
                // copies nothing, and the decision above never depends on the copy.
                let copy = sketch.zip(best).and_then(|(sk, joined)| {
                    let m = self.state.copy_index.find_with(
                        &mut copy_scratch,
                        self.state.stories[joined].seq,
                        sk,
                        self.syndication.threshold,
                    )?;
                    Some((joined, m.original))
                });

                let no_symbols = crate::signals::symbols::ArticleSymbols::default();
                let syms = symbols.get(i).unwrap_or(&no_symbols);
                let slot = match best {
                    Some(slot) if offline => {
                        self.join(slot, a, v, exact, (t, until));
                        let mut asg = self.assignment(a, slot, Placement::Joined);
                        asg.duplicate_of = copy.as_ref().map(|c| c.1.clone());
                        out.assignments.push(asg);
                        slot
                    }
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
                        if offline && self.state.stories[slot].term_sum.is_empty() {
                            unindexed.push(slot);
                        }
                        out.assignments
                            .push(self.assignment(a, slot, Placement::Opened));
                        slot
                    }
                };
                self.state
                    .remember(&a.id, ukey, &self.state.stories[slot].id.clone());
                let placed = Placed {
                    symbols: syms,
                    entities: ents,
                    direction: signals.directions.get(i),
                    sketch,
                    copy_of: copy.map(|(_, original)| original),
                };
                self.record(slot, a, t, placed, &mut out);
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

        self.stats.index_postings += walk.postings;
        walk.postings = 0;
        self.walk = walk;
        out.touched = touched_order
            .iter()
            .map(|&slot| self.snapshot(slot, titles.remove(&slot).unwrap_or_default()))
            .collect();
        // Retired by the run's latest article, not the state's clock: a late dump's stories
        // stay joinable by the rest of it whatever the batching (later articles of the run
        // can only reach stories within the window before them).
        let now = self.run_latest.min(self.state.clock);
        self.state.retire(now, now, window, retain);
        out
    }
}
