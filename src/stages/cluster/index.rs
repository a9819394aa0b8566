//! Candidates for the offline embedder from the term index ([`crate::story::TermIndex`]):
//! no matrix product, and a cost set by the article's own terms and the postings of its
//! rarer ones rather than by how many stories the window holds.
//!
//! An article's exact score with a story is `Σ_t a_t · S_t / size` (average linkage; the
//! term-sum norm instead of `size` under centroid linkage) minus the time penalty, over the
//! terms both hold: a story sharing no term with the article scores 0. The walk reads the
//! postings of the article's heaviest terms (by weight, ties by id) until the terms left
//! hold at most [`TAIL_MASS`] of its squared weight (at most [`HEAD_TERMS`] terms), skipping
//! terms lighter than [`HEAVY_TERM`] held by more than [`LONG_POSTINGS`] stories of its time
//! (frequent words), and sums
//! each story's share of the score over the terms read. Each story also gets a bound on its
//! exact score (Cauchy-Schwarz over the terms not read); stories whose bound is below the
//! threshold are dropped, and of the rest the [`INDEX_TOP`] best by partial score are
//! re-scored exactly ([`super::decision`]), skipping those whose bound is below the best
//! exact score found. The ranking on partial scores is not exact: the share of decisions
//! differing from re-scoring every story of the article's time is measured by the tests and
//! by `perps-news run` with `PERPS_NEWS_CHECK_CANDIDATES=1` (none of 10,000, 50,000 or
//! 100,000 on the window bench's dumps, see ARCHITECTURE.md).
//!
//! What the walk reads depends on the article and the stories of its time only: the index
//! evicts stories out of each article's window before its walk (so posting lengths do not
//! depend on when batches retire stories), the head is chosen from the article's weights and
//! those lengths, and ties go to the older story. Results therefore do not depend on
//! batching.

use super::decision::{Candidate, better, decide_top};
use super::{ClusterConfig, Clusterer, Linkage};
use crate::story::StoryState;

/// The walk stops once the article's terms not yet read hold at most this share of its
/// squared weight (its vector has norm 1).
pub const TAIL_MASS: f32 = 0.02;

/// Most terms whose postings one article reads.
pub const HEAD_TERMS: usize = 400;

/// Terms held by more stories of the article's time than this are not read unless they
/// weigh at least `HEAVY_TERM` in the article (frequent words: long postings, light
/// weights).
pub const LONG_POSTINGS: usize = 32;

/// An article's terms of at least this weight (its vector has norm 1, so there are at most
/// 100) are read however many stories hold them: a word most stories of a busy window share
/// (the coin every story is about) can still be one of an article's heaviest.
pub const HEAVY_TERM: f32 = 0.1;

/// Stories re-scored exactly per article: the best by partial score.
pub const INDEX_TOP: usize = 16;

/// Scratch reused by every walk (sized by the index's key space).
#[derive(Debug, Default)]
pub(super) struct Walk {
    /// Partial dot per story key, and the story's squared weight over the terms read.
    acc: Vec<(f32, f32)>,
    /// The walk that last touched each key (so `acc` need not be cleared).
    stamp: Vec<u32>,
    epoch: u32,
    touched: Vec<u32>,
    /// The article's terms, heaviest first.
    head: Vec<(u32, f32)>,
    /// Postings read by the walks so far.
    pub(super) postings: u64,
}

/// When an article appeared, and which stories are of its time.
#[derive(Debug, Clone, Copy)]
pub(super) struct Span {
    pub(super) t: i64,
    pub(super) until: i64,
    /// Stories whose latest article is before this are out of the window.
    pub(super) cutoff: i64,
    /// Stories begun after this are too.
    pub(super) horizon: i64,
}

impl Walk {
    /// Keeps in `self.head` the article's terms the walk reads, heaviest first: by weight
    /// until those left hold at most [`TAIL_MASS`] of its squared weight, at most
    /// [`HEAD_TERMS`], skipping terms held by more than [`LONG_POSTINGS`] stories of its
    /// time. Returns the norm of the terms left out.
    fn head(&mut self, terms: &[(u32, f32)], index: &crate::story::TermIndex) -> f32 {
        self.head.clear();
        self.head.extend_from_slice(terms);
        self.head
            .sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let total: f32 = self.head.iter().map(|(_, w)| w * w).sum();
        let (mut left, mut skipped) = (total, 0.0f32);
        let mut n = 0;
        while n < self.head.len() && n < HEAD_TERMS && left > TAIL_MASS * total {
            let (t, w) = self.head[n];
            left -= w * w;
            n += 1;
            if w < HEAVY_TERM && index.postings(t).len() > LONG_POSTINGS {
                skipped += w * w;
            }
        }
        self.head.truncate(n);
        (left.max(0.0) + skipped).sqrt()
    }

    /// Pushes onto `out` every story of the article's time that shares a head term with
    /// `terms` (sorted by id), scored on the head terms (`score` is that partial score,
    /// `time` the penalty in it). Stories without term sums are not in the index (see the
    /// caller).
    pub(super) fn search(
        &mut self,
        state: &StoryState,
        terms: &[(u32, f32)],
        span: Span,
        cfg: &ClusterConfig,
        out: &mut Vec<Candidate>,
    ) {
        self.search_with(state, terms, span, cfg, false, out);
    }

    /// [`Self::search`], over every term of the article when `whole` (partial scores are
    /// then the exact ones up to rounding).
    fn search_with(
        &mut self,
        state: &StoryState,
        terms: &[(u32, f32)],
        span: Span,
        cfg: &ClusterConfig,
        whole: bool,
        out: &mut Vec<Candidate>,
    ) {
        let index = &state.term_index;
        let keys = index.key_space();
        if self.acc.len() < keys {
            self.acc.resize(keys, (0.0, 0.0));
            self.stamp.resize(keys, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.stamp.fill(0);
            self.epoch = 1;
        }
        let epoch = self.epoch;
        let (tail, long) = if whole {
            self.head.clear();
            self.head.extend_from_slice(terms);
            (0.0, usize::MAX)
        } else {
            (self.head(terms, &state.term_index), LONG_POSTINGS)
        };
        let heavy = HEAVY_TERM;
        self.touched.clear();
        let (acc, stamp, touched) = (&mut self.acc, &mut self.stamp, &mut self.touched);
        let mut read = 0u64;
        for &(t, a) in &self.head {
            let list = index.postings(t);
            if a < heavy && list.len() > long {
                continue;
            }
            read += list.len() as u64;
            for p in list {
                let k = p.key as usize;
                if stamp[k] != epoch {
                    stamp[k] = epoch;
                    acc[k] = (0.0, 0.0);
                    touched.push(p.key);
                }
                let e = &mut acc[k];
                e.0 += a * p.weight;
                e.1 += p.weight * p.weight;
            }
        }
        self.postings += read;
        for &key in touched.iter() {
            let slot = index.slot(key);
            let s = &state.stories[slot];
            if s.last_seen < span.cutoff || s.first_seen > span.horizon {
                continue;
            }
            let time = cfg.time_penalty(s.gap_hours(span.t, span.until));
            let (dot, read) = acc[key as usize];
            let norm = index.norm(key);
            // The terms not read add at most `‖a_tail‖ · ‖S_rest‖` to the dot
            // (Cauchy-Schwarz), where `S_rest`, the story's weight outside the terms read,
            // has the squared norm `‖S‖² - read` at most (a little more, for rounding).
            let rest = tail * (norm * norm * 1.0001 - read).max(0.0).sqrt();
            let (link, rest) = match cfg.linkage {
                Linkage::Average => {
                    let n = s.size.max(1) as f32;
                    (dot / n, rest / n)
                }
                Linkage::Centroid if norm > 0.0 => (dot / norm, rest / norm),
                Linkage::Centroid => (0.0, 0.0),
            };
            let bound = link + rest - time;
            if bound + 1e-4 < cfg.threshold() {
                // Cannot reach the threshold, whatever the terms not read hold.
                continue;
            }
            out.push(Candidate {
                score: link - time,
                seq: s.seq,
                slot,
                time,
                bound,
            });
        }
    }
}

impl Clusterer {
    /// Counts whether `best`, decided on the term index's candidates for an article with
    /// terms `terms` (dense vector `v`), is what re-scoring every story of its time exactly
    /// gives. Stories sharing no term score 0 (below any threshold that matters: a
    /// threshold at or below 0 is not checked); the others are found by walking every
    /// term's postings and re-scored exactly when that sum comes within rounding of the
    /// threshold.
    pub(super) fn check_exhaustive(
        &mut self,
        terms: &[(u32, f32)],
        v: &[f32],
        span: Span,
        unindexed: &[usize],
        ents: Option<&crate::signals::entities::Entities>,
        best: Option<usize>,
    ) {
        let cfg = self.cfg.clone();
        if cfg.threshold() <= 0.0 {
            return;
        }
        let mut walk = Walk::default();
        let mut all = Vec::new();
        walk.search_with(&self.state, terms, span, &cfg, true, &mut all);
        penalize_conflicts(&mut all, ents, &self.state, cfg.conflict_penalty);
        all.retain(|c| c.score >= cfg.threshold() - 1e-3);
        for &slot in unindexed {
            let s = &self.state.stories[slot];
            if s.last_seen < span.cutoff || s.first_seen > span.horizon {
                continue;
            }
            let time = cfg.time_penalty(s.gap_hours(span.t, span.until));
            let link = match cfg.linkage {
                Linkage::Average => self.state.cohesions[slot],
                Linkage::Centroid => 1.0,
            };
            all.push(Candidate {
                score: crate::kernels::dot(v, self.state.centroid(slot)) * link - time,
                seq: s.seq,
                slot,
                time,
                bound: f32::INFINITY,
            });
        }
        let top = all.len();
        let want = decide_top(
            &mut all,
            Some(terms),
            &self.state,
            cfg.linkage,
            cfg.threshold_for(Some(terms.len())),
            top,
        );
        self.stats.checked += 1;
        self.stats.differing += u64::from(want != best);
    }
}

/// Lowers the score (and its bound) of every candidate whose story names different entities
/// of one kind than the article ([`crate::signals::entities::conflict`]) by `penalty`, as
/// the dense path does: a penalty only lowers a score, so candidates kept on the threshold
/// before it stay a superset of those that can still win.
pub(super) fn penalize_conflicts(
    pre: &mut [Candidate],
    ents: Option<&crate::signals::entities::Entities>,
    state: &StoryState,
    penalty: f32,
) {
    let Some(e) = ents.filter(|_| penalty > 0.0) else {
        return;
    };
    let probe = crate::signals::entities::Probe::new(e);
    for c in pre {
        if state.conflict(&probe, c.slot) {
            c.penalize(penalty);
        }
    }
}

/// Brings to the front of `pre` the `top` best candidates (by [`better`]) once the conflict
/// penalty is taken off their scores, penalized, and returns how many candidates the front
/// holds (at least those `top`; [`decide_top`] picks them out). It gives the same front as
/// [`penalize_conflicts`] over every candidate followed by that pick, and looks for
/// conflicts beyond the best `top` only when one of those has one (see [`front_by`]).
pub(super) fn front_penalized(
    pre: &mut [Candidate],
    top: usize,
    ents: Option<&crate::signals::entities::Entities>,
    state: &StoryState,
    penalty: f32,
) -> usize {
    // An article whose title names nothing conflicts with no story.
    match ents.filter(|e| penalty > 0.0 && !e.title.is_empty()) {
        Some(e) => {
            let probe = crate::signals::entities::Probe::new(e);
            front_by(pre, top, penalty, |c| state.conflict(&probe, c.slot))
        }
        None => pre.len(),
    }
}

/// [`front_penalized`] with `conflicts` saying which candidates take the penalty: checks the
/// best `top` candidates, and only when fewer than `top` of them have no conflict, all of
/// them. The best `top` are better than every other candidate, and a penalty only lowers a
/// score, so when none of them takes it, they are the front.
fn front_by(
    pre: &mut [Candidate],
    top: usize,
    penalty: f32,
    mut conflicts: impl FnMut(&Candidate) -> bool,
) -> usize {
    let mut penalize = |c: &mut Candidate| {
        let hit = conflicts(c);
        if hit {
            c.penalize(penalty);
        }
        hit
    };
    let k = top.min(pre.len());
    if pre.len() > k && k > 0 {
        pre.select_nth_unstable_by(k - 1, better);
    }
    let mut hits = 0;
    for c in &mut pre[..k] {
        hits += usize::from(penalize(c));
    }
    if hits == 0 {
        return k;
    }
    for c in &mut pre[k..] {
        penalize(c);
    }
    pre.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The best `top` by [`better`], as (seq, score) pairs in that order.
    fn best(pre: &mut [Candidate], top: usize) -> Vec<(u64, f32)> {
        pre.sort_unstable_by(better);
        pre.iter().take(top).map(|c| (c.seq, c.score)).collect()
    }

    #[test]
    fn the_front_is_the_best_after_every_penalty() {
        let mut next = crate::testing::xorshift(0x2545_f491_4f6c_dd1du64);
        let mut checked_less = 0;
        for round in 0..3000 {
            let n = (next() % 300) as usize;
            let share = next() % 11; // conflicts among candidates, in tenths
            let penalty = [0.05, 0.3, 1.0][round % 3];
            let pre: Vec<Candidate> = (0..n)
                .map(|i| Candidate {
                    // Coarse scores, so that ties (decided by seq) are common.
                    score: (next() % 40) as f32 / 40.0,
                    seq: i as u64,
                    slot: i,
                    time: 0.0,
                    bound: 1.0,
                })
                .collect();
            let conflicting: Vec<bool> = (0..n).map(|_| next() % 10 < share).collect();
            let mut all = pre.clone();
            for c in &mut all {
                if conflicting[c.slot] {
                    c.score -= penalty;
                }
            }
            let mut lazy = pre.clone();
            let mut calls = 0;
            let front = front_by(&mut lazy, INDEX_TOP, penalty, |c| {
                calls += 1;
                conflicting[c.slot]
            });
            assert!(front >= INDEX_TOP.min(n) && front <= n);
            assert_eq!(calls, front, "each candidate in the front checked once");
            assert_eq!(
                best(&mut lazy[..front], INDEX_TOP),
                best(&mut all, INDEX_TOP),
                "round {round}"
            );
            checked_less += usize::from(front < n);
        }
        // Rounds without a conflict in the best check fewer candidates than they hold.
        assert!(checked_less > 200, "{checked_less}");
    }
}
