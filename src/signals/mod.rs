//! What the engine reads off stories for traders, beside the clustering itself: perp
//! symbols and their per-story tallies ([`symbols`]), the entities that keep look-alike events
//! apart ([`entities`]), heat and breaking ([`heat`]), and
//! direction ([`sentiment`]). The embed stage finds each article's symbols and direction, the
//! cluster stage tallies them into its story, and the outputs read them back.

mod config;
pub mod entities;
pub mod heat;
pub mod importance;
pub mod sentiment;
pub mod symbols;

pub use config::{CategoryWeights, ImportanceConfig, SignalsConfig};
