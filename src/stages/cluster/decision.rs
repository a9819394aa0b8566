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
}

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
