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

pub use run::{RunInput, RunOptions, RunOutcome, run};

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

#[cfg(test)]
mod tests {
    use super::*;

    /// Doubles numbers; fails on `fail_on`; emits the count of what it saw at the end.
    struct Doubler {
        fail_on: Option<u32>,
        seen: u32,
    }

    impl Stage for Doubler {
        type In = u32;
        type Out = u32;
        fn name(&self) -> &'static str {
            "doubler"
        }
        fn process(&mut self, n: u32) -> Result<u32> {
            if Some(n) == self.fail_on {
                return Err(Error::Strict(format!("bad {n}")));
            }
            self.seen += 1;
            Ok(n * 2)
        }
        fn finish(&mut self) -> Result<Option<u32>> {
            Ok(Some(1000 + self.seen))
        }
    }

    fn run(fail_on: Option<u32>) -> (Vec<u32>, Option<Error>) {
        let (tx_in, rx_in) = crossbeam_channel::bounded(CHANNEL_CAPACITY);
        let (tx_out, rx_out) = crossbeam_channel::unbounded();
        let fail = FirstError::default();
        std::thread::scope(|s| {
            s.spawn(|| {
                for n in 1..=5 {
                    if tx_in.send(n).is_err() {
                        break;
                    }
                }
                drop(tx_in);
            });
            drive(Doubler { fail_on, seen: 0 }, rx_in, Some(tx_out), &fail);
        });
        (rx_out.iter().collect(), fail.take())
    }

    #[test]
    fn drive_passes_every_batch_then_what_finish_sends() {
        let (out, err) = run(None);
        assert!(err.is_none());
        assert_eq!(out, [2, 4, 6, 8, 10, 1005]);
    }

    #[test]
    fn the_first_error_stops_the_stage_and_skips_finish() {
        let (out, err) = run(Some(3));
        assert_eq!(out, [2, 4]);
        assert!(matches!(err, Some(Error::Strict(m)) if m == "bad 3"));
    }

    #[test]
    fn first_error_keeps_the_first() {
        let f = FirstError::default();
        f.set(Error::Strict("one".into()));
        f.set(Error::Strict("two".into()));
        assert!(matches!(f.take(), Some(Error::Strict(m)) if m == "one"));
    }

    #[test]
    fn auto_batch_grows_only_for_big_runs() {
        assert_eq!(auto_batch(64, 100), 64);
        assert_eq!(auto_batch(64, 80_000), 4096);
        assert_eq!(auto_batch(64, 8_000), 1000);
    }
}
