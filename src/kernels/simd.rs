//! The SIMD path: simsimd, which picks AVX2/AVX-512/NEON kernels at run time. The only file
//! in the crate that calls simsimd.

use simsimd::SpatialSimilarity;

/// Whether simsimd found a SIMD kernel for this CPU.
pub fn available() -> bool {
    use simsimd::capabilities as c;
    c::uses_haswell() || c::uses_skylake() || c::uses_neon() || c::uses_sve()
}

/// Dot product; `None` when the lengths differ.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> Option<f32> {
    <f32 as SpatialSimilarity>::dot(a, b).map(|d| d as f32)
}
