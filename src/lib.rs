//! perps-news: the news engine of a crypto perpetual-futures trading system.
//!
//! A batch of articles flows through a synchronous staged pipeline, each stage on its own
//! thread, joined by bounded channels carrying batches:
//!
//! ```text
//! ingest ──▶ embed (+cache) ──▶ cluster ──▶ label ──▶ publish
//! ```
//!
//! Map of the crate (ARCHITECTURE.md walks one article through it):
//! - [`engine`]: the [`engine::Engine`] every entry point runs (the CLI, the spool, `sweep`,
//!   the worker); [`config`]: the pipeline file, its environment and [`config::resolve`].
//! - [`pipeline`]: the stage trait, channel wiring and the run loop; [`stages`]: one file
//!   per stage (the clusterer is a folder).
//! - [`embed`], [`label`]: the provider traits, registries and one file per provider.
//! - [`signals`]: symbols, heat and breaking, direction; [`syndication`]: copies.
//! - [`kernels`]: similarity kernels behind one dispatch point, scalar path always compiled.
//! - [`story`]: the story state; [`store`]: caches, the state file, the host mirror, the
//!   Redis session and everything that speaks Redis.
//! - [`bus`]: the channels and their typed payloads; [`report`]: summaries and story records.
//! - [`serve`] and [`http`]: the dashboard server (events, metrics, the page).
//! - `worker` (feature `worker`): the BullMQ queue worker and `enqueue`, on tokio, handing
//!   each job to the engine.
//! - [`eval`]: B-cubed / pairwise scoring against gold labels.
//!
//! The command line is not here: `src/commands/` belongs to the binary, which is the only
//! user of the library's entry points.

pub mod api;
pub mod article;
pub mod bus;
pub mod config;
pub mod embed;
pub mod engine;
pub mod error;
pub mod eval;
pub mod http;
pub mod kernels;
pub mod label;
pub mod pipeline;
pub mod report;
pub mod serve;
pub mod signals;
pub mod spool;
pub mod stages;
pub mod store;
pub mod story;
pub mod syndication;
#[cfg(test)]
mod testing;
pub mod text;
pub mod time;
#[cfg(feature = "worker")]
pub mod worker;

pub use error::{Error, Result};
