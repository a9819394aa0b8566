//! The one engine every entry point runs: `run`, the spool run, `sweep` and the queue worker.
//!
//! An [`Engine`] holds what a run needs and does not change between runs: the resolved
//! pipeline, its embedder and labeler, the symbol book, the breaker alerts and the CPU pool.
//! [`Engine::run`] takes inputs, a story state and a cache and returns the outcome with its
//! summary finished; where the state lives (nowhere, a file, Redis) is the caller's choice,
//! and [`Engine::run_shared`] is the Redis-held case of the worker.

use std::sync::Arc;

use crate::api::{Alerts, Context};
use crate::config::PipelineConfig;
use crate::embed::Embedder;
use crate::error::Result;
use crate::label::Labeler;
use crate::pipeline::{self, RunInput, RunOptions, RunOutcome};
use crate::signals::symbols::SymbolBook;
use crate::store::session::{Session, SessionMode};
use crate::store::{self, Cache};
use crate::story::{DeferredRecord, StoryState};

/// Runs an article may be deferred before it is given up.
pub const MAX_DEFERRED_ATTEMPTS: u32 = 20;

/// Input name of the articles earlier runs deferred.
pub const DEFERRED_INPUT: &str = "(deferred by earlier runs)";

/// What a run needs, built once per process.
pub struct Engine {
    /// The resolved pipeline (file, environment, flags).
    pub cfg: PipelineConfig,
    /// The pipeline's embedder.
    pub embedder: Box<dyn Embedder>,
    /// The pipeline's labeler.
    pub labeler: Box<dyn Labeler>,
    /// Perp symbols.
    pub symbols: SymbolBook,
    /// The importance scorer (with the source tiers).
    pub importance: crate::signals::importance::Importance,
    /// Circuit-breaker openings of the remote providers (see [`crate::bus::forward_alerts`]).
    pub alerts: Alerts,
    /// CPU work of every stage.
    pub pool: Arc<rayon::ThreadPool>,
}

impl Engine {
    /// Builds the embedder, labeler and symbol book `cfg` names. `llm_cache` caches chat
    /// replies (the Redis cache DB; None: in memory).
    ///
    /// # Errors
    /// [`crate::Error::Config`] for an unknown provider, a missing API key or an unreadable
    /// symbol file.
    pub fn build(
        cfg: PipelineConfig,
        llm_cache: Option<Arc<dyn Cache>>,
        pool: Arc<rayon::ThreadPool>,
    ) -> Result<Self> {
        let alerts = Alerts::default();
        let ctx = Context {
            alerts: alerts.clone(),
            llm_cache,
        };
        Ok(Engine {
            embedder: crate::embed::build(&cfg.embed, &cfg.api, &ctx)?,
            labeler: crate::label::build(&cfg.label, &cfg.api, &ctx)?,
            symbols: SymbolBook::from_config(&cfg.signals)?,
            importance: crate::signals::importance::Importance::from_config(&cfg.signals)?,
            alerts,
            pool,
            cfg,
        })
    }

    /// The engine with its labeler rebuilt to cache chat replies in `llm_cache` (a Redis
    /// session's cache DB, known only once the session has connected).
    ///
    /// # Errors
    /// As [`Engine::build`].
    pub fn with_llm_cache(mut self, llm_cache: Arc<dyn Cache>) -> Result<Self> {
        let ctx = Context {
            alerts: self.alerts.clone(),
            llm_cache: Some(llm_cache),
        };
        self.labeler = crate::label::build(&self.cfg.label, &self.cfg.api, &ctx)?;
        Ok(self)
    }

    /// The embedder's fingerprint: a stored state or cache entry of another one is not used.
    pub fn fingerprint(&self) -> String {
        self.embedder.fingerprint()
    }

    /// The embedder's vector dimension.
    pub fn dim(&self) -> usize {
        self.embedder.dim()
    }

    /// An empty story state for this engine's embedder.
    pub fn new_state(&self) -> StoryState {
        StoryState::new(self.fingerprint(), self.dim())
    }

    /// Runs the pipeline over `inputs`, continuing `state`, with `cache` for embeddings.
    ///
    /// With `retry_deferred`, the articles earlier runs could not embed (kept in the state)
    /// go first, and this run's own such articles are kept in the state for the next run
    /// (each given up after [`MAX_DEFERRED_ATTEMPTS`]). The worker passes false: a job whose
    /// articles got no embedding fails and BullMQ retries it.
    ///
    /// The outcome's summary is finished here (the API report included); a Redis session
    /// adds its own report when it saves.
    ///
    /// # Errors
    /// An unreadable input, a failing stage, or (with `strict`) the first rejected record.
    pub fn run(
        &self,
        mut inputs: Vec<RunInput>,
        mut state: StoryState,
        cache: &dyn Cache,
        opts: &RunOptions,
        retry_deferred: bool,
    ) -> Result<RunOutcome> {
        let earlier = if retry_deferred {
            std::mem::take(&mut state.deferred)
        } else {
            Vec::new()
        };
        if !earlier.is_empty() {
            tracing::info!(
                articles = earlier.len(),
                "Retrying articles deferred by earlier runs."
            );
            let mut bytes = Vec::new();
            for d in &earlier {
                bytes.extend(d.record.to_string().into_bytes());
                bytes.push(b'\n');
            }
            inputs.insert(
                0,
                RunInput::Bytes {
                    name: DEFERRED_INPUT.into(),
                    bytes,
                },
            );
        }
        let mut outcome = pipeline::run(
            &self.cfg,
            inputs,
            state,
            &*self.embedder,
            cache,
            &*self.labeler,
            &self.symbols,
            &self.importance,
            opts,
            &self.pool,
        )?;
        if retry_deferred {
            keep_deferred(&mut outcome, &earlier);
        }
        let mut api = self.embedder.api_report();
        if let Some(l) = self.labeler.api_report() {
            api.get_or_insert_default().add(&l);
        }
        if let Some(a) = api.as_mut() {
            a.deferred = outcome.deferred.len() as u64;
        }
        outcome.summary.api = api;
        Ok(outcome)
    }

    /// One batch against the story state in Redis, on connections the caller keeps across
    /// batches (the queue worker): takes the state lock, loads the state, runs, saves
    /// (fenced by the lock token), releases the lock, then publishes `news:story` and
    /// `news:clustered`. Unlike `run --redis` nothing falls back to local files.
    ///
    /// `reuse` is the state (and its version) the caller kept from its previous batch: when
    /// Redis is still at that version it stands in for loading. Keep `outcome.state` with
    /// `outcome.summary.redis.state_version` for the next call.
    ///
    /// # Errors
    /// [`crate::Error::Redis`] when Redis is unreachable past the retry window;
    /// [`crate::Error::Locked`] when another run held the state for `lock_wait_secs` or the
    /// lock was lost before the save (nothing was written); [`crate::Error::State`] for a
    /// stored state of another embedder; input and stage errors as [`Engine::run`].
    pub fn run_shared(
        &self,
        conns: &store::redis::Connections,
        inputs: Vec<RunInput>,
        ingest_time: i64,
        reuse: Option<(u64, StoryState)>,
    ) -> Result<RunOutcome> {
        let mut session = Session::connect(
            conns.clone(),
            &self.cfg.redis,
            SessionMode::Worker {
                reuse: reuse.map(Box::new),
            },
            &self.fingerprint(),
            self.dim(),
        )?;
        let state = session.load_state(&self.fingerprint(), self.dim())?;
        let opts = RunOptions {
            strict: false,
            progress: false,
            ingest_time,
        };
        let mut outcome = self.run(inputs, state, session.cache(), &opts, false)?;
        outcome.summary.origin = "worker";
        session.finish(&mut outcome, self.cfg.events.symbol_channels, None)?;
        Ok(outcome)
    }
}

/// Articles deferred by this run go into the state for the next run, unless they have been
/// tried [`MAX_DEFERRED_ATTEMPTS`] times (then they are given up, with an error each).
fn keep_deferred(outcome: &mut RunOutcome, earlier: &[DeferredRecord]) {
    use std::io::Write;
    let tried: std::collections::HashMap<&str, u32> = earlier
        .iter()
        .filter_map(|d| Some((d.record.get("id")?.as_str()?, d.attempts)))
        .collect();
    let mut stderr = std::io::stderr().lock();
    for d in &outcome.deferred {
        let attempts = tried.get(d.article.id.as_str()).copied().unwrap_or(0) + 1;
        if attempts >= MAX_DEFERRED_ATTEMPTS {
            tracing::error!(id = %d.article.id, origin = %d.article.origin, attempts, reason = %d.reason, "Giving up on an article no run could embed.");
            continue;
        }
        let _ = writeln!(
            stderr,
            "deferred {}: {} (no embedding: {})",
            d.article.origin, d.article.id, d.reason
        );
        outcome.state.deferred.push(DeferredRecord {
            record: d.record(),
            reason: d.reason.clone(),
            attempts,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let pool = Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap(),
        );
        Engine::build(PipelineConfig::default(), None, pool).unwrap()
    }

    fn input(lines: &[&str]) -> RunInput {
        RunInput::Bytes {
            name: "t.jsonl".into(),
            bytes: lines.join("\n").into_bytes(),
        }
    }

    fn opts() -> RunOptions {
        RunOptions {
            strict: false,
            progress: false,
            ingest_time: 1_767_225_600,
        }
    }

    const A: &str = r#"{"id":"a1","title":"Exchange hacked, ether drained from hot wallet","body":"Attackers drained ether from the exchange hot wallet overnight.","source":"wire","published_at":"2026-01-01T00:00:00Z"}"#;
    const B: &str = r#"{"id":"a2","title":"Exchange hacked: ether drained from its hot wallet","body":"The exchange said attackers drained ether from a hot wallet.","source":"desk","published_at":"2026-01-01T00:10:00Z"}"#;

    #[test]
    fn a_run_continues_its_state_and_counts_known_articles() {
        let e = engine();
        let cache = store::memory::MemoryCache::default();
        let first = e
            .run(vec![input(&[A])], e.new_state(), &cache, &opts(), true)
            .unwrap();
        assert_eq!(first.summary.total_processed, 1);
        assert_eq!(first.summary.new_clusters, 1);
        let second = e
            .run(vec![input(&[A, B])], first.state, &cache, &opts(), true)
            .unwrap();
        assert_eq!(second.summary.already_known, 1);
        assert_eq!(second.summary.total_processed, 1);
        // The offline providers report no API use.
        assert!(second.summary.api.is_none());
    }

    #[test]
    fn parsed_articles_run_as_their_bytes_do() {
        let e = engine();
        let cache = store::memory::MemoryCache::default();
        let from_bytes = e
            .run(vec![input(&[A, B])], e.new_state(), &cache, &opts(), true)
            .unwrap();
        let parsed = crate::stages::ingest::parse_inputs(
            &[crate::stages::ingest::input_from_bytes(
                "t.jsonl",
                [A, B].join("\n").into_bytes(),
            )],
            e.cfg.ingest.max_article_bytes,
            &e.pool,
        );
        let from_articles = e
            .run(
                vec![RunInput::Parsed(parsed)],
                e.new_state(),
                &cache,
                &opts(),
                true,
            )
            .unwrap();
        assert_eq!(from_bytes.assignments, from_articles.assignments);
        assert_eq!(from_bytes.per_input, from_articles.per_input);
    }
}
