//! What the engine reads off stories for traders, beside the clustering itself: perp
//! symbols and their per-story tallies ([`symbols`]), heat and breaking ([`heat`]), and
//! direction ([`sentiment`]). The embed stage finds each article's symbols and direction, the
//! cluster stage tallies them into its story, and the outputs read them back.

mod config;
pub mod heat;
pub mod importance;
pub mod sentiment;
pub mod symbols;

pub use config::{CategoryWeights, ImportanceConfig, SignalsConfig};
