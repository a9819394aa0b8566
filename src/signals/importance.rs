//! PROVISIONAL (replaced by the real module): importance 0..100.
#![allow(missing_docs)]
pub struct ImportanceInputs<'a> {
    pub heat: f64,
    pub heat_rise: f64,
    pub sources: &'a [String],
    pub category: Option<&'a str>,
    pub symbols: &'a [String],
    pub breaking: bool,
}
#[derive(Debug, Default)]
pub struct Importance;
impl Importance {
    pub fn from_config(_c: &crate::signals::SignalsConfig) -> crate::error::Result<Self> {
        Ok(Importance)
    }
    pub fn score(&self, x: &ImportanceInputs<'_>) -> f64 {
        let s = x.heat + x.heat_rise + x.sources.len() as f64 + if x.breaking { 3.0 } else { 0.0 };
        (100.0 * (1.0 - (-s / 10.0).exp()) * 10.0).round() / 10.0
    }
}
