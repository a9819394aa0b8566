//! Candidates, in parallel: each chunk of articles against every active story's centroid as
//! it stands at the chunk's start (one matrix product, split by story ranges over the pool's
//! threads), keeping the stories that might still reach the threshold.

use ndarray::{ArrayView2, ArrayViewMut2};

use super::Clusterer;
use crate::kernels;

/// Below this many active stories, candidates are scored with per-pair dots: the matrix
/// product's packing costs more than it saves.
pub(super) const DIRECT_MAX_STORIES: usize = 16;

/// Articles scored per matrix product with `active` stories. The product costs
/// `rows × active` dots at its (fast) rate; every article is also re-scored per pair, at the
/// much slower per-pair rate, against the stories opened earlier in its chunk (up to
/// `rows`). A quarter of the active set keeps the second below the first, 1,024 bounds the
/// similarity block, and 64 keeps a product worth its packing.
pub(super) fn chunk_rows(active: usize) -> usize {
    (active / 4).clamp(64, 1024)
}

/// Euclidean distance between two vectors.
pub(super) fn distance(a: &[f32], b: &[f32]) -> f32 {
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
pub(super) const PARALLEL_MIN_WORK: usize = 4_000_000;

/// A chunk's similarities to the stories at its start.
pub(super) struct Scored {
    /// Per article, the slots scoring at least the floor `candidates` was given.
    pub(super) hits: Vec<Vec<u32>>,
    /// Similarities, one row-major block per range of `step` stories (row stride `step`):
    /// slot `s` is column `s % step` of part `s / step`.
    pub(super) parts: Vec<Vec<f32>>,
    pub(super) step: usize,
}

impl Scored {
    /// No similarities: for chunks whose candidates come from the term index.
    pub(super) fn none(rows: usize) -> Self {
        Scored {
            hits: vec![Vec::new(); rows],
            parts: Vec::new(),
            step: 1,
        }
    }
}

impl Clusterer {
    /// Each article's similarity to every active story's centroid as it stands now (one
    /// matrix product, split by story ranges over as many threads as the pool has), and the
    /// slots that might reach the threshold.
    pub(super) fn candidates(
        &mut self,
        vectors: &[Vec<f32>],
        floor: f32,
        pool: &rayon::ThreadPool,
    ) -> Scored {
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
}
