//! `[signals]`: symbols, heat and breaking.

use serde::{Deserialize, Serialize};

/// `[signals]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignalsConfig {
    /// Symbol dictionary file; empty = the shipped `pipelines/symbols.toml`.
    pub symbols_path: String,
    /// Body characters scanned for symbols (the lead; titles are always scanned).
    pub symbols_body_chars: usize,
    /// A story turns breaking when this many distinct sources carry it within
    /// `breaking_window_minutes` (0 disables).
    pub breaking_sources: usize,
    /// The window for `breaking_sources`.
    pub breaking_window_minutes: f64,
    /// Heat time constant: a source's contribution decays as `exp(-age / tau)`.
    pub heat_tau_hours: f64,
}

impl Default for SignalsConfig {
    fn default() -> Self {
        SignalsConfig {
            symbols_path: String::new(),
            symbols_body_chars: 120,
            breaking_sources: 3,
            breaking_window_minutes: 30.0,
            heat_tau_hours: 6.0,
        }
    }
}
