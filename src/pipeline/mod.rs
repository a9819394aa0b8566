//! The engine: stages on their own threads, joined by bounded channels carrying batches.
//!
//! ```text
//! ingest ──▶ embed ──▶ cluster ──▶ label ──▶ publish
//!   (source)                                   (sink)
//! ```
//!
//! Ending is dropping a sender: each stage's `for batch in rx` drains and returns. The first
//! fatal error wins: the failing stage stops reading, its upstream sees a closed channel and
//! stops too, and the error is returned after the scope. CPU work inside a stage runs on the
//! rayon pool passed in; the library never builds the global pool.

pub mod fingerprint;
mod run;

pub use run::{RunInput, RunOptions, RunOutcome, StageTimes, run};

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::error::{Error, Result};

/// Batches in flight between two stages. Two lets a stage work on one batch while the next
/// is queued, without letting a fast stage buffer the whole input ahead of a slow one.
pub const CHANNEL_CAPACITY: usize = 2;

/// The batch size a run of `total` articles uses: the configured one, or a larger one for big
/// runs, where the per-batch overhead and the small matrix products of small batches would
/// dominate (results do not depend on it).
pub fn auto_batch(configured: usize, total: usize) -> usize {
    configured.max((total / 8).min(4096))
}

/// One step of the pipeline: a batch in, a batch out.
pub trait Stage: Send {
    /// The batch it consumes.
    type In: Send;
    /// The batch it produces.
    type Out: Send;
    /// Name for timings and logs.
    fn name(&self) -> &'static str;
    /// Processes one batch.
    ///
    /// # Errors
    /// A fatal error that ends the run (per-article problems are not errors).
    fn process(&mut self, batch: Self::In) -> Result<Self::Out>;

    /// Called once after the last batch (not after an error): a stage that gathers work
    /// across batches (one LLM request per story per run) sends its result on here.
    ///
    /// # Errors
    /// A fatal error that ends the run.
    fn finish(&mut self) -> Result<Option<Self::Out>> {
        Ok(None)
    }
}

/// Holds the first fatal error of a run.
#[derive(Debug, Default)]
pub struct FirstError(Mutex<Option<Error>>);

impl FirstError {
    /// Records `e` unless an error was recorded already.
    pub fn set(&self, e: Error) {
        let mut slot = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(e);
        }
    }

    /// The recorded error, if any.
    pub fn take(self) -> Option<Error> {
        self.0
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Drives `stage` over `rx`, sending results to `tx` (or dropping them when `tx` is `None`,
/// for the sink). Returns the stage and the time it spent in `process`.
pub fn drive<S: Stage>(
    mut stage: S,
    rx: Receiver<S::In>,
    tx: Option<Sender<S::Out>>,
    fail: &FirstError,
) -> (S, Duration) {
    let mut busy = Duration::ZERO;
    let mut failed = false;
    for batch in rx {
        let t0 = Instant::now();
        let result = stage.process(batch);
        busy += t0.elapsed();
        match result {
            Ok(out) => {
                if let Some(tx) = &tx
                    && tx.send(out).is_err()
                {
                    failed = true;
                    break;
                }
            }
            Err(e) => {
                tracing::error!(stage = stage.name(), error = %e, "Stage failed; stopping the run.");
                fail.set(e);
                failed = true;
                break;
            }
        }
    }
    if !failed {
        let t0 = Instant::now();
        let result = stage.finish();
        busy += t0.elapsed();
        match result {
            Ok(Some(out)) => {
                if let Some(tx) = &tx {
                    let _ = tx.send(out);
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(stage = stage.name(), error = %e, "Stage failed at the end of the run.");
                fail.set(e);
            }
        }
    }
    tracing::debug!(
        stage = stage.name(),
        busy_ms = busy.as_secs_f64() * 1e3,
        "Stage finished."
    );
    (stage, busy)
}
