//! The Redis side of one run: lock, state, cache, publishing, and the fallbacks when the
//! server is down (this host's state mirror, an in-memory cache, the event spool).
//!
//! ```text
//! connect ─▶ load_state ─▶ (the engine runs) ─▶ finish: save (fenced) ─▶ publish ─▶ mirror
//! ```
//!
//! A [`SessionMode`] says which fallbacks apply: a batch run keeps a mirror of the state on
//! its host and may continue from it, the worker (several of them, on several hosts) must
//! not, and a run whose state is a local file uses Redis only for the cache and the bus.

use crate::bus::Event;
use crate::error::{Error, Result};
use crate::pipeline::RunInput;
use crate::report::RedisReport;
use crate::store::{self, memory::MemoryCache};
use crate::story::StoryState;

/// Which fallbacks a session has, and where its state lives.
#[derive(Debug)]
pub enum SessionMode {
    /// A batch run (`run --redis`, the spool, the timer) that owns the Redis state and keeps
    /// a mirror of it on this host: with Redis down it continues from the mirror and keeps
    /// its work and events there for the next run that reaches Redis.
    Run,
    /// A run whose state is a local file (`run --redis --state FILE`): Redis holds the cache
    /// and carries the events, nothing else.
    CacheAndBus,
    /// The queue worker: no local fallbacks (with several workers a local copy would fork the
    /// stories), so Redis down or a lost lock is an error the job retries. `reuse` is the
    /// state (and its version) the worker kept from its last save, used instead of loading
    /// when Redis is still at that version.
    Worker {
        /// The kept state and its version.
        reuse: Option<Box<(u64, StoryState)>>,
    },
}

/// Reads a run's inputs again, for the mirror's journal, when its work cannot reach Redis:
/// only then is the work copied (a run that saves pays nothing).
pub trait Journal {
    /// The accepted records of the run's inputs (with its spool files when `with_spool`),
    /// times made explicit.
    ///
    /// # Errors
    /// An input that can no longer be read.
    fn records(&self, with_spool: bool) -> Result<Vec<serde_json::Value>>;
}

/// The Redis side of one run (see the module documentation).
pub struct Session {
    cfg: crate::store::redis::RedisConfig,
    conns: store::redis::Connections,
    bus: crate::bus::Bus,
    lock: Option<store::redis::StateLock>,
    state: Option<StoryState>,
    cache: store::redis::RedisCache,
    fallback: MemoryCache,
    down: bool,
    owns_state: bool,
    /// The host's mirror (runs that own the state and may fall back to it; not the worker).
    mirror: Option<store::mirror::Mirror>,
    /// What this run does with the mirror's pending work.
    mirror_work: MirrorWork,
    /// The journal of pending work to run again, handed to the pipeline as its first input.
    pending_input: Option<RunInput>,
    /// The Redis state version this run loaded (its work sits on it).
    loaded_version: u64,
    /// The caller's state from its last save, with that version (the worker).
    reuse: Option<(u64, StoryState)>,
    report: RedisReport,
}

/// What a run does with work of earlier runs that is only in the host's mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MirrorWork {
    /// Nothing is pending.
    None,
    /// Redis is still at the version the work sits on: the mirror is that state plus the
    /// work, so this run continues it and publishes the work's events after its save.
    Continued,
    /// Redis moved on: the work's articles are run again on the newer state and its old
    /// events dropped (the re-run publishes its own).
    Reapplied,
}

impl Session {
    /// Connects: pings both servers (a refused password is an error at once), delivers
    /// events spooled by earlier runs, and checks that a run that may fall back to its mirror
    /// has one to continue when Redis is down. The state is loaded by
    /// [`Session::load_state`].
    ///
    /// # Errors
    /// [`Error::Config`] for refused credentials; [`Error::Redis`] when the server is down
    /// and this mode has no fallback (the worker), or the host has no mirror to continue.
    pub fn connect(
        conns: store::redis::Connections,
        cfg: &crate::store::redis::RedisConfig,
        mode: SessionMode,
        fingerprint: &str,
        dim: usize,
    ) -> Result<Self> {
        let (owns_state, use_mirror, reuse) = match mode {
            SessionMode::Run => (true, true, None),
            SessionMode::CacheAndBus => (false, true, None),
            SessionMode::Worker { reuse } => (true, false, reuse.map(|b| *b)),
        };
        let bus = crate::bus::Bus::new(conns.main.clone(), cfg.stream_maxlen, &cfg.spool_path);
        let cache = store::redis::RedisCache::new(conns.cache.clone(), cfg, fingerprint, dim);
        let mirror =
            (use_mirror && owns_state).then(|| store::mirror::Mirror::new(&cfg.state_mirror_path));
        let mut session = Session {
            cfg: cfg.clone(),
            conns,
            bus,
            lock: None,
            state: None,
            cache,
            fallback: MemoryCache::default(),
            down: false,
            owns_state,
            reuse,
            mirror,
            mirror_work: MirrorWork::None,
            pending_input: None,
            loaded_version: 0,
            report: RedisReport::default(),
        };
        session.report = RedisReport {
            server: session.conns.main.name.clone(),
            cache: "redis".into(),
            ..RedisReport::default()
        };
        match session.conns.main.ping() {
            // Credentials refused: a configuration error, not an outage to ride out.
            Err(e @ Error::Config { .. }) => return Err(e),
            Err(e) if !use_mirror => return Err(e),
            Err(e) => {
                if let Some(m) = session.mirror.as_ref().filter(|m| !m.exists()) {
                    // Clustering against an empty state would count every article again
                    // once its events reach the bus: there is nothing to continue.
                    return Err(Error::Redis {
                        server: session.conns.main.name.clone(),
                        message: format!(
                            "unreachable ({e}), and this host has no state mirror ({}) to \
                             continue: nothing was done; the input waits for a run that \
                             reaches Redis",
                            m.path().display()
                        ),
                    });
                }
                tracing::warn!(error = %e, "Redis is down: using the local state mirror and an in-memory cache; events will be spooled.");
                session.down = true;
                session.report.cache = "memory".into();
            }
            Ok(()) => {
                if let Err(e @ Error::Config { .. }) = session.conns.cache.ping() {
                    return Err(e);
                }
                session.report.spool_delivered = session.bus.deliver_spool()?;
            }
        }
        if !owns_state {
            session.report.state = "file".into();
        }
        Ok(session)
    }

    /// The story state this session runs on (of the embedder it was connected for):
    /// with Redis up, takes the state lock and loads the stored state (or reuses the
    /// caller's copy when Redis is still at its version), continuing or re-applying work
    /// this host's mirror holds; with Redis down, the mirror's state. A session whose state
    /// lives elsewhere returns an empty state.
    ///
    /// # Errors
    /// [`Error::Locked`] when another run holds the lock past `lock_wait_secs`;
    /// [`Error::State`] for a stored state of another embedder or one that does not decode.
    pub fn load_state(&mut self, fingerprint: &str, dim: usize) -> Result<StoryState> {
        if self.owns_state {
            self.load(fingerprint, dim)?;
        }
        Ok(self
            .state
            .take()
            .unwrap_or_else(|| StoryState::new(fingerprint, dim)))
    }

    fn load(&mut self, fingerprint: &str, dim: usize) -> Result<()> {
        let cfg = &self.cfg;
        let report = &mut self.report;
        if self.down {
            if let Some(m) = &self.mirror {
                self.state = Some(m.load(fingerprint, dim)?);
            }
            report.state = "mirror".into();
        } else {
            let wait = std::time::Duration::from_secs(cfg.lock_wait_secs);
            let lease = std::time::Duration::from_millis(cfg.lock_lease_ms);
            self.lock = Some(store::redis::StateLock::acquire(
                &self.conns.main,
                wait,
                lease,
            )?);
            // The caller's copy of the state at a version is that version (every write
            // bumps it under this lock): skip fetching and decoding the whole state.
            // Behind (another process saved since): read only what changed, if the change
            // log reaches back to it.
            let current = match self.reuse.take() {
                Some((v, kept)) => {
                    let now = store::redis::state_version(&self.conns.main)?;
                    if now == v {
                        tracing::debug!(
                            version = v,
                            "State unchanged since this process saved it; not reloaded."
                        );
                        Some((kept, v))
                    } else {
                        store::redis::catch_up(&self.conns.main, fingerprint, dim, kept, v, now)?
                            .map(|s| (s, now))
                    }
                }
                None => None,
            };
            let (mut state, version) = match current {
                Some(c) => c,
                None => store::redis::load_state(&self.conns.main, fingerprint, dim)?,
            };
            if let Some(m) = &self.mirror
                && let Some(pending) = m.pending()
            {
                let local = if pending.base == Some(version) {
                    m.load(fingerprint, dim)
                        .inspect_err(|e| {
                            tracing::error!(error = %e, "The local state mirror is unusable; re-applying its work on Redis's state instead.");
                        })
                        .ok()
                } else {
                    None
                };
                if let Some(local) = local {
                    tracing::info!(
                        version,
                        "Continuing the state saved locally while its work could not reach Redis."
                    );
                    state = local;
                    self.mirror_work = MirrorWork::Continued;
                } else {
                    let work = m.work()?.unwrap_or_default();
                    report.reapplied = work
                        .split(|&b| b == b'\n')
                        .filter(|l| !l.trim_ascii().is_empty())
                        .count();
                    tracing::warn!(base = ?pending.base, version, articles = report.reapplied, mirror = %m.path().display(),
                        "Redis moved on since this host's unsaved work; running that work again on the newer state.");
                    if !work.is_empty() {
                        self.pending_input = Some(RunInput::Bytes {
                            name: store::mirror::PENDING_INPUT.into(),
                            bytes: work,
                        });
                    }
                    self.mirror_work = MirrorWork::Reapplied;
                }
            }
            self.loaded_version = version;
            report.state_version = version;
            self.state = Some(state);
            report.state = "redis".into();
        }
        Ok(())
    }

    /// Work of earlier runs on this host that never reached Redis, to run first on the
    /// state Redis has now (see [`Session::load_state`]).
    pub fn take_pending_input(&mut self) -> Option<RunInput> {
        self.pending_input.take()
    }

    /// The bus this session publishes on (events it cannot deliver go to the spool file).
    pub fn bus(&self) -> crate::bus::Bus {
        self.bus.clone()
    }

    /// Whether this session keeps the host's state mirror (then a failed save journals the
    /// run's inputs there).
    pub fn has_mirror(&self) -> bool {
        self.mirror.is_some()
    }

    /// The LLM reply cache in the cache DB (None while Redis is down).
    pub fn llm_cache(&self) -> Option<std::sync::Arc<dyn store::Cache>> {
        (!self.down).then(|| {
            std::sync::Arc::new(store::redis::RedisCache::llm(
                self.conns.cache.clone(),
                &self.cfg,
            )) as std::sync::Arc<dyn store::Cache>
        })
    }

    /// The embedding cache: Redis, or memory while Redis is down.
    pub fn cache(&self) -> &dyn store::Cache {
        if self.down {
            &self.fallback
        } else {
            &self.cache
        }
    }

    /// Saves the state to Redis, then publishes `events` (the run's `news:story` events, from
    /// [`crate::bus::story_messages`]) and `news:clustered`, then updates the local mirror;
    /// adds the Redis report to the summary.
    ///
    /// When the work cannot reach Redis nothing is published for it: with Redis down from
    /// the start the work and its events are kept beside the mirror (the run succeeds, as a
    /// local run); when the save itself fails (lost lock, a refused write) they are kept the
    /// same way and the run fails with [`Error::NotSaved`]. `journal` reads the run's inputs
    /// again for the mirror's journal (a failed run leaves its spool files in `claimed/`
    /// instead of journaling them); None for callers without a mirror.
    ///
    /// # Errors
    /// [`Error::NotSaved`] when the save failed (the caller must not report success or move
    /// spool files on); [`Error::Io`] when neither the bus nor the local files could take
    /// what had to be kept.
    pub fn finish(
        &mut self,
        outcome: &mut crate::pipeline::RunOutcome,
        symbol_channels: bool,
        journal: Option<&dyn Journal>,
    ) -> Result<()> {
        if !self.down {
            self.report.run_cache_stats = self.cache.run_stats();
            self.report.cache_invalid = self.cache.invalid();
            if self.cache.degraded() {
                self.report.cache = "memory".into();
            }
        }
        let mut saved_to_redis = false;
        if self.owns_state {
            let Some(lock) = self.lock.take() else {
                // Redis was down from the start: the work stays with the mirror until a run
                // reaches Redis, which continues it or runs it again.
                self.report.round_trips =
                    self.conns.main.round_trips() + self.conns.cache.round_trips();
                outcome.summary.redis = Some(self.report.clone());
                if let Some(m) = &self.mirror {
                    let records = match journal {
                        Some(j) => j.records(true)?,
                        None => Vec::new(),
                    };
                    let mut kept = story_messages(outcome, symbol_channels, false);
                    let (channel, payload) = outcome.summary.message();
                    kept.push((channel.to_string(), payload));
                    m.keep(&mut outcome.state, m.base(), &records, &refs(&kept), false)?;
                    tracing::warn!(articles = records.len(), mirror = %m.path().display(),
                        "Redis is down: the run's work and events are kept with the local mirror; events spooled for the next run that reaches Redis.");
                }
                return Ok(());
            };
            let records: Vec<(String, String, i64)> = outcome
                .stories
                .iter()
                .map(|s| {
                    let json = serde_json::to_string(s).unwrap_or_default();
                    (s.id.clone(), json, s.last_seen)
                })
                .collect();
            let forgotten = std::mem::take(&mut outcome.state.forgotten);
            let last_run = serde_json::to_string(&outcome.summary).unwrap_or_default();
            // The stories the run opened, joined, labelled or closed: the only ones it changed.
            let touched: std::collections::HashSet<&str> =
                records.iter().map(|(id, _, _)| id.as_str()).collect();
            let t0 = std::time::Instant::now();
            let saved = store::redis::save_state(
                &self.conns.main,
                &lock,
                &mut outcome.state,
                &records,
                &forgotten,
                &last_run,
                Some(&touched),
            );
            tracing::debug!(ms = t0.elapsed().as_millis() as u64, "State save returned.");
            drop(lock);
            match saved {
                Ok(v) => {
                    self.report.state_version = v;
                    saved_to_redis = true;
                }
                Err(e) => {
                    outcome.state.forgotten = forgotten;
                    let events = story_messages(outcome, symbol_channels, false);
                    return Err(self.not_saved(e, outcome, journal, events));
                }
            }
        }
        self.lock = None;
        let mut delivered = 0;
        if saved_to_redis && let Some(m) = &self.mirror {
            // The continued work is in the saved state now: its events go out first.
            if self.mirror_work == MirrorWork::Continued {
                let pending = m.events()?;
                let refs: Vec<(&str, serde_json::Value)> = pending
                    .iter()
                    .map(|(c, p)| (c.as_str(), p.clone()))
                    .collect();
                if self.bus.publish_all_or_spool(&refs)? == crate::bus::Delivery::Published {
                    delivered = refs.len();
                }
            }
            if self.mirror_work != MirrorWork::None
                && let Err(e) = m.clear_pending()
            {
                // The next run then re-applies work that is already saved (every article is
                // known) and drops its events: nothing is counted twice.
                tracing::error!(error = %e, "Pending mirror work could not be cleared.");
            }
        }
        self.report.spool_delivered += delivered;
        // Story events go out after the state is saved (so a consumer can read the story),
        // all in one round trip, stamped with the time they go out.
        let events = story_messages(outcome, symbol_channels, true);
        if self.bus.publish_all_or_spool(&refs(&events))? == crate::bus::Delivery::Published {
            self.report.story_events = outcome.story_events.len();
        }
        self.report.round_trips = self.conns.main.round_trips() + self.conns.cache.round_trips();
        outcome.summary.redis = Some(self.report.clone());
        let (channel, payload) = outcome.summary.message();
        let delivery = self.bus.publish_or_spool(channel, &payload)?;
        self.report.published = delivery == crate::bus::Delivery::Published;
        if let Some(r) = outcome.summary.redis.as_mut() {
            r.published = self.report.published;
        }
        // The mirror last: a consumer hears of the run as soon as it is saved, and a mirror
        // behind Redis is only ever a fallback (it is compared by version when used).
        if saved_to_redis && let Some(m) = &self.mirror {
            m.saved(&mut outcome.state, self.report.state_version);
        }
        tracing::info!(
            saved_to_redis,
            published = self.report.published,
            "Redis run finished."
        );
        Ok(())
    }

    /// A save that failed: keeps the run's work with the mirror (when this run has one) and
    /// says where it waits.
    fn not_saved(
        &self,
        e: Error,
        outcome: &mut crate::pipeline::RunOutcome,
        journal: Option<&dyn Journal>,
        events: Vec<(String, serde_json::Value)>,
    ) -> Error {
        let Some(m) = &self.mirror else {
            return e;
        };
        let records = match journal.map(|j| j.records(false)).transpose() {
            Ok(r) => r.unwrap_or_default(),
            Err(k) => {
                return Error::NotSaved {
                    reason: e.to_string(),
                    kept: format!(
                        "nothing was published, and the inputs could not be read again for \
                         the journal ({k}): spool files stay in claimed/, other inputs must be \
                         run again"
                    ),
                };
            }
        };
        let mut summary = outcome.summary.clone();
        summary.redis = Some(self.report.clone());
        let mut kept = events;
        let (channel, payload) = summary.message();
        kept.push((channel.to_string(), payload));
        let kept = refs(&kept);
        let reason = e.to_string();
        // Re-applied work has new events (in `kept`); the old ones described it on a state
        // that lost the race.
        let supersede = self.mirror_work == MirrorWork::Reapplied;
        match m.keep(
            &mut outcome.state,
            Some(self.loaded_version),
            &records,
            &kept,
            supersede,
        ) {
            Ok(()) => {
                tracing::error!(error = %reason, mirror = %m.path().display(), articles = records.len(),
                    "State not saved to Redis; the run's work waits with the local mirror and is re-applied by the next run.");
                Error::NotSaved {
                    reason,
                    kept: format!(
                        "nothing was published; the work waits in {} ({} articles journaled in {}; \
                         spool files stay in claimed/) for the next run, which re-applies it",
                        m.path().display(),
                        records.len(),
                        m.work_path().display()
                    ),
                }
            }
            Err(k) => Error::NotSaved {
                reason,
                kept: format!(
                    "nothing was published, and the work could not be kept locally either \
                     ({k}): spool files stay in claimed/, other inputs must be run again"
                ),
            },
        }
    }
}

/// The run's `news:story` messages, stamped now; with `published` (they go out now) the
/// summary records their latency.
fn story_messages(
    outcome: &mut crate::pipeline::RunOutcome,
    symbol_channels: bool,
    published: bool,
) -> Vec<(String, serde_json::Value)> {
    let (messages, latency) = crate::bus::story_messages(
        &mut outcome.story_events,
        outcome.ingested_at_ms,
        crate::time::now_millis(),
        symbol_channels,
    );
    if published {
        outcome.summary.event_latency = latency;
    }
    messages
}

/// `(channel, payload)` pairs as [`crate::bus::Bus::publish_all_or_spool`] takes them.
fn refs(events: &[(String, serde_json::Value)]) -> Vec<(&str, serde_json::Value)> {
    events
        .iter()
        .map(|(c, p)| (c.as_str(), p.clone()))
        .collect()
}
