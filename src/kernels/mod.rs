//! Similarity kernels: one dispatch point ([`dot`]) with a SIMD path behind it and a scalar
//! path that is always compiled and tested against it, plus the matrix form ([`gemm_nt_into`]) used
//! to score a whole batch against every story at once.
//!
//! Vectors are L2-normalised once, when they are made, so cosine similarity is a dot product.
//! Names say which way they point: these return similarities (higher is closer); simsimd's
//! own `cosine` is a *distance* and is not used.
//!
//! Which kernel [`dot`] uses is decided once per process (`PERPS_NEWS_KERNEL=scalar|simd`
//! forces one), so every similarity the clusterer compares comes from the same arithmetic.

pub mod scalar;
mod simd;

use std::sync::OnceLock;

use ndarray::ArrayView2;

/// Below this length the call overhead of the SIMD library outweighs its speed.
const SIMD_MIN_LEN: usize = 16;

/// The kernel implementations [`dot`] can dispatch to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Portable Rust with independent accumulators (auto-vectorised).
    Scalar,
    /// simsimd's runtime-dispatched SIMD kernels (AVX2/AVX-512/NEON).
    Simd,
}

/// The kernel chosen for this process.
pub fn active() -> Kernel {
    static CHOSEN: OnceLock<Kernel> = OnceLock::new();
    *CHOSEN.get_or_init(|| match std::env::var("PERPS_NEWS_KERNEL").as_deref() {
        Ok("scalar") => Kernel::Scalar,
        Ok("simd") => Kernel::Simd,
        _ if simd::available() => Kernel::Simd,
        _ => Kernel::Scalar,
    })
}

/// Dot product of two equal-length vectors; for normalised vectors, their cosine similarity.
/// Slices of different lengths are compared over the shorter length.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    match active() {
        Kernel::Simd if n >= SIMD_MIN_LEN => simd::dot(a, b).unwrap_or_else(|| scalar::dot(a, b)),
        _ => scalar::dot(a, b),
    }
}

/// Dot product of two sparse vectors, each a list of `(index, value)` sorted by index with no
/// repeats: a merge of the two lists. Summed in index order, so the result depends on the
/// values alone, never on how they were produced.
pub fn sparse_dot(a: &[(u32, f32)], b: &[(u32, f32)]) -> f32 {
    let (mut i, mut j, mut sum) = (0, 0, 0.0f32);
    // Without branches on the ids (a mispredicted one per step dominated the merge): both
    // sides step past the smaller id, a match adds its product and a miss adds zero.
    while i < a.len() && j < b.len() {
        let ((x, wa), (y, wb)) = (a[i], b[j]);
        sum += if x == y { wa * wb } else { 0.0 };
        i += usize::from(x <= y);
        j += usize::from(y <= x);
    }
    sum
}

/// Scales `v` to unit length in place and returns its original norm. A zero (or non-finite)
/// vector is left as zeros, so it is similar to nothing rather than NaN to everything.
pub fn normalize(v: &mut [f32]) -> f32 {
    let norm = scalar::dot(v, v).sqrt();
    if norm > 0.0 && norm.is_finite() {
        let inv = 1.0 / norm;
        v.iter_mut().for_each(|x| *x *= inv);
        norm
    } else {
        v.iter_mut().for_each(|x| *x = 0.0);
        0.0
    }
}

/// `c = a · bᵀ`: every row of `a` against every row of `b`, as one matrix product into `c`
/// (shape `a.rows × b.rows`, its memory reused). It is the fast way to score a batch against
/// all stories: a GEMM runs several times faster than per-pair dots. Results can differ from
/// [`dot`] in the last bits, so callers use them to find candidates and re-score the
/// candidates with [`dot`].
pub fn gemm_nt_into(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    c: &mut ndarray::ArrayViewMut2<'_, f32>,
) {
    ndarray::linalg::general_mat_mul(1.0, &a, &b.t(), 0.0, c);
}

/// Worst-case gap between a [`gemm_nt_into`] entry and [`dot`] on the same unit vectors, with a
/// wide margin (f32 rounding over ≤ 65,536 terms is below 1e-4 for unit vectors).
pub const GEMM_SLACK: f32 = 1e-3;

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn simd_matches_scalar_on_odd_lengths() {
        for n in [0, 1, 3, 15, 16, 17, 31, 64, 100, 383, 384, 1023, 1024, 4099] {
            let a = pseudo_random(n, 1 + n as u64);
            let b = pseudo_random(n, 7 + n as u64);
            let s = scalar::dot(&a, &b);
            let naive: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum();
            assert!(
                (f64::from(s) - naive).abs() < 1e-3 * (1.0 + naive.abs()),
                "scalar n={n}"
            );
            if simd::available() && n > 0 {
                let v = simd::dot(&a, &b).unwrap();
                assert!(
                    (v - s).abs() < 1e-3 * (1.0 + s.abs()),
                    "n={n}: simd {v} scalar {s}"
                );
            }
            assert!((dot(&a, &b) - s).abs() < 1e-3 * (1.0 + s.abs()));
        }
    }

    #[test]
    fn sparse_dot_equals_the_dense_dot() {
        let a = [(1u32, 0.5f32), (4, -2.0), (9, 1.5), (30, 3.0)];
        let b = [(0u32, 7.0f32), (4, 0.25), (9, 2.0), (31, 1.0)];
        let dense = |v: &[(u32, f32)]| {
            let mut d = vec![0.0f32; 32];
            v.iter().for_each(|&(i, w)| d[i as usize] = w);
            d
        };
        let want = scalar::dot(&dense(&a), &dense(&b));
        assert_eq!(sparse_dot(&a, &b), want);
        assert_eq!(sparse_dot(&b, &a), want);
        assert_eq!(sparse_dot(&a, &[]), 0.0);
    }

    #[test]
    fn normalize_handles_zero_and_nan() {
        let mut v = vec![3.0, 4.0];
        assert_eq!(normalize(&mut v), 5.0);
        assert!((dot(&v, &v) - 1.0).abs() < 1e-6);
        let mut z = vec![0.0; 8];
        assert_eq!(normalize(&mut z), 0.0);
        let mut bad = vec![f32::NAN, 1.0];
        normalize(&mut bad);
        assert_eq!(bad, vec![0.0, 0.0]);
    }

    #[test]
    fn gemm_agrees_with_dot_within_slack() {
        let dim = 384;
        let rows = |k: usize, seed: u64| {
            let mut m = Array2::<f32>::zeros((k, dim));
            for (i, mut row) in m.rows_mut().into_iter().enumerate() {
                let mut v = pseudo_random(dim, seed + i as u64);
                normalize(&mut v);
                row.assign(&ndarray::ArrayView1::from(&v[..]));
            }
            m
        };
        let a = rows(13, 100);
        let b = rows(29, 900);
        let mut g = Array2::<f32>::zeros((13, 29));
        gemm_nt_into(a.view(), b.view(), &mut g.view_mut());
        for i in 0..13 {
            for j in 0..29 {
                let d = dot(a.row(i).as_slice().unwrap(), b.row(j).as_slice().unwrap());
                assert!((g[[i, j]] - d).abs() < GEMM_SLACK / 10.0);
            }
        }
    }
}
