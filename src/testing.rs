//! Helpers shared by the unit tests.

/// A xorshift64 generator from `seed` (non-zero): the tests' deterministic random inputs.
pub fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}
