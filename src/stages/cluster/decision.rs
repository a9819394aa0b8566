//! Decision: which candidate an article joins, on the dense score or, with term vectors, on
//! the exact re-score of the best few.

use super::Linkage;
use super::candidates::RESCORE_TOP;
use crate::kernels;
use crate::story::StoryState;

/// A story an article might join.
#[derive(Debug, Clone, Copy)]
pub(super) struct Candidate {
    /// Dense score (similarity × linkage factor − `time`), or the exact one once re-scored.
    pub(super) score: f32,
    /// The story's creation order: ties go to the older story.
    pub(super) seq: u64,
    pub(super) slot: usize,
    /// The penalties already in `score`: the time penalty, plus the conflict penalty when
    /// the article and the story name different entities.
    pub(super) time: f32,
    /// An upper bound of the exact score (infinite when there is none): a candidate whose
    /// bound is below the best exact score found so far is not re-scored.
    pub(super) bound: f32,
}

impl Candidate {
    /// Takes `penalty` off the score and its bound (it joins the penalties in `time`).
    pub(super) fn penalize(&mut self, penalty: f32) {
        self.time += penalty;
        self.score -= penalty;
        self.bound -= penalty;
    }
}

/// Rounding allowed for between a bound and the exact score it bounds (sums taken in
/// another order).
const BOUND_SLACK: f32 = 1e-4;

/// Higher score first, then the older story.
pub(super) fn better(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    b.score.total_cmp(&a.score).then(a.seq.cmp(&b.seq))
}

/// The story an article joins, from the candidates `pre`, or `None` to open a new one.
/// Without exact vectors: the best dense score at or above `threshold` (ties: the older
/// story). With them (`exact`): the [`RESCORE_TOP`] best candidates by dense score are
/// re-scored on the term vectors (the mean of the article's exact similarities with the
/// members under average linkage, the similarity with the exact centroid under centroid
/// linkage, minus the same penalties), and the best at or above `threshold` wins (ties:
/// the older story). A story without term vectors (from a state written before they were
/// kept) keeps its dense score.
pub(super) fn decide(
    pre: &mut [Candidate],
    exact: Option<&[(u32, f32)]>,
    state: &StoryState,
    linkage: Linkage,
    threshold: f32,
) -> Option<usize> {
    decide_top(pre, exact, state, linkage, threshold, RESCORE_TOP)
}

/// [`decide`] with the `top` best candidates re-scored on exact vectors (the term index's
/// candidates come with partial exact scores instead of dense ones).
pub(super) fn decide_top(
    pre: &mut [Candidate],
    exact: Option<&[(u32, f32)]>,
    state: &StoryState,
    linkage: Linkage,
    threshold: f32,
    top: usize,
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
    if exact.is_none() {
        return pre
            .iter()
            .filter(|c| c.score >= threshold)
            .min_by(|a, b| better(a, b))
            .map(|c| c.slot);
    }
    if pre.len() > top {
        pre.select_nth_unstable_by(top, better);
    }
    let keep = top.min(pre.len());
    let pre = &mut pre[..keep];
    // The best first, so the bar rises early and the bounds skip the rest.
    pre.sort_unstable_by(better);
    let mut best: Option<Candidate> = None;
    for c in pre.iter() {
        let bar = best.map_or(threshold, |b| b.score);
        if c.bound + BOUND_SLACK < bar {
            continue;
        }
        let r = rescored(c);
        if r.score >= threshold && best.is_none_or(|b| better(&r, &b).is_lt()) {
            best = Some(r);
        }
    }
    best.map(|c| c.slot)
}
