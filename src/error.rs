//! The library's one error type. Every variant carries the context a user needs to act on it
//! (a path, a line, a field, what was expected), so messages read as one line.

use std::path::PathBuf;

/// Everything that can stop a run. Per-article problems are *not* errors: they are
/// [`crate::article::Reject`]s, counted and reported while the rest of the batch goes on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The pipeline file or an environment override is invalid.
    #[error("config {origin}: {message}")]
    Config {
        /// Where the bad value came from: a file path or an environment variable name.
        origin: String,
        /// What is wrong and what was expected.
        message: String,
    },
    /// A saved story state could not be used.
    #[error("state {path}: {message}")]
    State {
        /// The state file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A Redis server could not be used (after retries).
    #[error("redis {server}: {message}")]
    Redis {
        /// `host:port/db`.
        server: String,
        /// What failed.
        message: String,
    },
    /// A job queue (BullMQ) could not be used: connecting, adding a job, starting a worker.
    #[error("queue {queue}: {message}")]
    Queue {
        /// The queue name (with its prefix).
        queue: String,
        /// What failed.
        message: String,
    },
    /// Another run holds the story state.
    #[error("state is locked by another run ({0}); try again later")]
    Locked(String),
    /// The run's work did not reach the story state in Redis (the lock was lost, or the save
    /// failed): nothing was published for it, and it waits locally for the next run.
    #[error("state not saved to Redis: {reason}; {kept}")]
    NotSaved {
        /// Why the save failed.
        reason: String,
        /// Where the work waits and what happens to it.
        kept: String,
    },
    /// `--strict` and an input record was rejected.
    #[error("rejected input (--strict): {0}")]
    Strict(String),
    /// An embedder failed for a whole batch.
    #[error("embedder {provider}: {message}")]
    Embed {
        /// The provider name.
        provider: String,
        /// What went wrong.
        message: String,
    },
    /// Scoring against gold labels failed.
    #[error(transparent)]
    Eval(#[from] crate::eval::EvalError),
    /// A pipeline stage thread ended abnormally (a bug: stages do not panic by design).
    #[error("stage {stage} panicked")]
    StagePanic {
        /// The stage's name.
        stage: &'static str,
    },
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The process exit code this error maps to: 1 for rejected input under `--strict`,
    /// 2 for everything that prevented the run.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Strict(_) => 1,
            _ => 2,
        }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
