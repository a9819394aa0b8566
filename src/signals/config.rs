//! `[signals]`: symbols, heat and breaking, and `[signals.importance]`.

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
    /// `[signals.importance]`: the story importance score (see
    /// [`crate::signals::importance`]).
    pub importance: ImportanceConfig,
}

impl Default for SignalsConfig {
    fn default() -> Self {
        SignalsConfig {
            symbols_path: String::new(),
            symbols_body_chars: 120,
            breaking_sources: 3,
            breaking_window_minutes: 30.0,
            heat_tau_hours: 6.0,
            importance: ImportanceConfig::default(),
        }
    }
}

/// `[signals.importance]`: the weights of the importance score (the formula is in
/// [`crate::signals::importance`]). Every weight must be finite and non-negative, so that no
/// input can lower the score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImportanceConfig {
    /// Source tier file; empty = the shipped `pipelines/sources.toml`.
    pub sources_path: String,
    /// What one distinct source of tier 1, 2 and 3 (unlisted) adds to coverage; must not
    /// increase from tier 1 to tier 3.
    pub tier_weights: [f64; 3],
    /// Coverage per unit of heat (heat is at most the number of sources).
    pub heat_weight: f64,
    /// Coverage per unit of heat gained over the last hour.
    pub rise_weight: f64,
    /// Coverage a breaking story gets on top.
    pub breaking_weight: f64,
    /// The category factor: coverage is multiplied by the weight of the story's category.
    pub categories: CategoryWeights,
    /// The majors: symbols weighing `major_weight` (uppercase; compared case-insensitively).
    pub majors: Vec<String>,
    /// Symbol factor term of a story carrying a major: coverage is multiplied by
    /// `1 + major_weight`.
    pub major_weight: f64,
    /// Symbol factor term of a story whose symbols are all outside `majors`.
    pub symbol_weight: f64,
    /// Saturation scale `k` in `100 * (1 - exp(-S / k))`: the weighted score `S` at which
    /// importance reaches 63.
    pub scale: f64,
}

impl Default for ImportanceConfig {
    fn default() -> Self {
        ImportanceConfig {
            sources_path: String::new(),
            tier_weights: [1.0, 0.5, 0.2],
            heat_weight: 0.5,
            rise_weight: 1.0,
            breaking_weight: 2.0,
            categories: CategoryWeights::default(),
            majors: ["BTC", "ETH", "SOL", "XRP", "BNB"]
                .map(String::from)
                .to_vec(),
            major_weight: 0.5,
            symbol_weight: 0.2,
            scale: 10.0,
        }
    }
}

impl ImportanceConfig {
    /// Checks the weights: finite and non-negative, tier weights not increasing from tier 1
    /// to tier 3, a positive `scale`, the symbol weight of a major not below the long tail's.
    ///
    /// # Errors
    /// A message naming the offending key (under `signals.importance`).
    pub fn check(&self) -> Result<(), String> {
        let c = &self.categories;
        let weights = [
            ("tier_weights[0]", self.tier_weights[0]),
            ("tier_weights[1]", self.tier_weights[1]),
            ("tier_weights[2]", self.tier_weights[2]),
            ("heat_weight", self.heat_weight),
            ("rise_weight", self.rise_weight),
            ("breaking_weight", self.breaking_weight),
            ("major_weight", self.major_weight),
            ("symbol_weight", self.symbol_weight),
            ("categories.security", c.security),
            ("categories.regulation", c.regulation),
            ("categories.exchange", c.exchange),
            ("categories.macro", c.macro_),
            ("categories.crypto", c.crypto),
            ("categories.other", c.other),
        ];
        for (key, w) in weights {
            if !(w.is_finite() && w >= 0.0) {
                return Err(format!(
                    "signals.importance.{key} = {w}: must be a finite number >= 0"
                ));
            }
        }
        if !(self.tier_weights[0] >= self.tier_weights[1]
            && self.tier_weights[1] >= self.tier_weights[2])
        {
            return Err(format!(
                "signals.importance.tier_weights = {:?}: a better tier must not weigh less",
                self.tier_weights
            ));
        }
        if self.major_weight < self.symbol_weight {
            return Err(
                "signals.importance.major_weight must not be below symbol_weight".to_string(),
            );
        }
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(format!(
                "signals.importance.scale = {}: must be a finite number > 0",
                self.scale
            ));
        }
        Ok(())
    }
}

/// `[signals.importance.categories]`: the factor of each category of
/// [`crate::label::category::CATEGORIES`]; a story without a category, or with one not
/// listed here, weighs as `other`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CategoryWeights {
    /// Hacks, exploits, thefts.
    pub security: f64,
    /// Regulators, courts, laws, approvals.
    pub regulation: f64,
    /// Exchanges, listings and delistings, withdrawals, derivatives venues.
    pub exchange: f64,
    /// Central banks, rates, inflation, jobs.
    #[serde(rename = "macro")]
    pub macro_: f64,
    /// Other crypto news (networks, tokens, funds).
    pub crypto: f64,
    /// Everything else, and stories without a category.
    pub other: f64,
}

impl Default for CategoryWeights {
    fn default() -> Self {
        CategoryWeights {
            security: 1.5,
            regulation: 1.4,
            exchange: 1.3,
            macro_: 1.15,
            crypto: 1.0,
            other: 0.8,
        }
    }
}

impl CategoryWeights {
    /// The factor of `category` (case-insensitive); `other` for `None` or an unknown name.
    pub fn of(&self, category: Option<&str>) -> f64 {
        let Some(c) = category else {
            return self.other;
        };
        match c.trim().to_ascii_lowercase().as_str() {
            "security" => self.security,
            "regulation" => self.regulation,
            "exchange" => self.exchange,
            "macro" => self.macro_,
            "crypto" => self.crypto,
            _ => self.other,
        }
    }
}
