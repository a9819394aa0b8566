//! perps-news: the news engine of a crypto perpetual-futures trading system.
//!
//! A batch of articles flows through a synchronous staged pipeline, each stage on its own
//! thread, joined by bounded channels carrying batches:
//!
//! ```text
//! ingest ──▶ embed (+cache) ──▶ cluster ──▶ label ──▶ publish
//! ```
//!
//! Map of the crate:
//! - [`pipeline`]: the stage trait, channel wiring and the run loop.
//! - [`stages`]: one file per stage.
//! - [`embed`]: the [`embed::Embedder`] trait and one file per provider.
//! - [`label`]: the [`label::Labeler`] trait and one file per provider.
//! - [`kernels`]: similarity kernels behind one dispatch point, scalar path always compiled.
//! - [`store`]: caches and state persistence; [`story`]: the story state itself.
//! - [`config`]: the pipeline file and environment overrides; [`cli`] and [`app`]: the
//!   command line.
//! - `worker` (feature `worker`): the BullMQ queue worker and `enqueue`, on tokio, handing
//!   each job to the synchronous pipeline.
//! - [`sentiment`]: the offline direction scorer (bullish / bearish / neutral per article,
//!   per symbol and per story).
//! - [`syndication`]: syndicated-copy detection (MinHash sketches, an index over the active
//!   stories' originals).
//! - [`serve`]: what `perps-news serve` adds to its JSON endpoints: resumable server-sent
//!   events, Prometheus metrics, the dashboard page.
//! - [`eval`]: B-cubed / pairwise scoring against gold labels; [`synth`]: synthetic dumps
//!   for tests and benches.

pub mod api;
pub mod app;
pub mod article;
pub mod bus;
pub mod cli;
pub mod config;
pub mod embed;
pub mod error;
pub mod eval;
pub mod http;
pub mod kernels;
pub mod label;
pub mod ops;
pub mod pipeline;
pub mod report;
pub mod sentiment;
pub mod serve;
pub mod spool;
pub mod stages;
pub mod store;
pub mod story;
pub mod symbols;
pub mod syndication;
pub mod synth;
pub mod text;
pub mod time;
#[cfg(feature = "worker")]
pub mod worker;

pub use error::{Error, Result};
