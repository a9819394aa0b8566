//! The three job kinds: payload parsing and the synchronous handlers that run on a blocking
//! thread (no tokio in here).
//!
//! | job name | payload | return value |
//! |---|---|---|
//! | `clustering` | `{"articles": [...]}` or `{"path": "dump.jsonl"}` | `{totalProcessed, newClusters, stories, rejected, alreadyKnown, stateVersion}` |
//! | `categorization` | the same, plus optional `"categories": [...]` | `{categories: [{id, category, score, matched}], rejected}` |
//! | `labeling` | `{"stories": ["s…", ...]}` | `{labeled: [{id, label, topTerms}], missing, stateVersion}` |
//!
//! A payload that does not parse is [`JobError::Bad`] (the job fails at once, no retries);
//! Redis trouble or a busy state lock is [`JobError::Transient`] (the producer's `attempts`
//! and `backoff` apply).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};

use crate::config::PipelineConfig;
use crate::engine::Engine;
use crate::error::Error;
use crate::label::category::RuleCategorizer;
use crate::pipeline::{RunInput, Stage};
use crate::report::StoryRecord;
use crate::stages::Batch;
use crate::stages::embed::EmbedStage;
use crate::stages::ingest;
use crate::store::Cache;
use crate::store::redis::{Connections, RedisCache, StateLock, load_state, save_state};

/// The job kinds, by job name: the queue names.
pub const KINDS: &[&str] = crate::store::redis::QUEUES;

/// Rejected records named in a failure reason.
const REASONS_SHOWN: usize = 3;

/// Why a job failed.
#[derive(Debug, Clone, PartialEq)]
pub enum JobError {
    /// Bad input: retrying cannot help (BullMQ's `UnrecoverableError`).
    Bad(String),
    /// Something outside the job failed (Redis, the state lock, an API): retry.
    Transient(String),
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobError::Bad(m) | JobError::Transient(m) => f.write_str(m),
        }
    }
}

impl From<Error> for JobError {
    fn from(e: Error) -> Self {
        match e {
            // Servers and locks come back; the embedder's API may too.
            Error::Redis { .. }
            | Error::Locked(_)
            | Error::NotSaved { .. }
            | Error::Embed { .. }
            | Error::Queue { .. }
            | Error::StagePanic { .. } => JobError::Transient(e.to_string()),
            // A file error inside a job is the path the producer gave.
            Error::Io { .. }
            | Error::Config { .. }
            | Error::State { .. }
            | Error::Strict(_)
            | Error::Eval(_) => JobError::Bad(e.to_string()),
        }
    }
}

/// What every job needs, built once per worker process and shared by the job threads.
pub struct Jobs {
    /// The engine every entry point runs (pipeline, embedder, labeler, symbols, pool).
    pub engine: Engine,
    /// Redis: state and bus (DB `db`), cache.
    pub conns: Connections,
    /// Per-article categories from the chat model (when `label.provider = "llm"`).
    pub llm_categorizer: Option<crate::label::llm_category::LlmCategorizer>,
    /// One job of this process at a time in the step that holds the Redis state lock: the
    /// others wait here instead of polling Redis. It keeps the state this process saved last,
    /// with its version, so the next job skips loading it when nobody wrote since.
    pub state_gate: Mutex<Option<(u64, crate::story::StoryState)>>,
    /// Which files path jobs may read, and how much of them.
    pub paths: PathPolicy,
    /// Test knob (env `PERPS_NEWS_TEST_JOB_DELAY_MS`, documented as test-only): every job
    /// sleeps this long before its work, so tests can kill a worker mid-job.
    pub test_delay: Duration,
}

impl Jobs {
    /// Runs job `name` with payload `data`.
    ///
    /// # Errors
    /// [`JobError::Bad`] for an unknown name or a payload that does not parse,
    /// [`JobError::Transient`] for failures worth retrying.
    pub fn handle(&self, name: &str, data: &Value) -> Result<Value, JobError> {
        if !self.test_delay.is_zero() {
            std::thread::sleep(self.test_delay);
        }
        match name {
            "clustering" => self.clustering(data),
            "categorization" => self.categorization(data),
            "labeling" => self.labeling(data),
            other => Err(JobError::Bad(format!(
                "unknown job name {other:?}; expected one of {}",
                KINDS.join(", ")
            ))),
        }
    }

    /// Embeds the articles into the cache outside the lock, then clusters them under it.
    fn clustering(&self, data: &Value) -> Result<Value, JobError> {
        let (name, bytes) = articles_input(data, &self.paths)?;
        // Parsed once: embedded into the cache here, clustered from the same articles below.
        let parsed = self.parse(&name, bytes);
        if parsed.articles.is_empty() && !parsed.rejects.is_empty() {
            return Err(JobError::Bad(nothing_usable(&parsed.rejects)));
        }
        self.warm(&parsed.articles)?;
        let ingest_time = crate::time::now_millis() / 1000;
        let outcome = {
            let mut kept = self
                .state_gate
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut outcome = self.engine.run_shared(
                &self.conns,
                vec![RunInput::Parsed(parsed)],
                ingest_time,
                kept.take(),
            )?;
            if let Some(v) = outcome.summary.redis.as_ref().map(|r| r.state_version) {
                let empty = crate::story::StoryState::new(String::new(), 0);
                *kept = Some((v, std::mem::replace(&mut outcome.state, empty)));
            }
            outcome
        };
        // Articles the embedding API failed for were not clustered: the job is retried (its
        // other articles are in the saved state now, so the retry skips them as known).
        if let Some(first) = outcome.deferred.first() {
            return Err(JobError::Transient(format!(
                "{} article(s) got no embedding (first: {}: {}); retrying the job",
                outcome.deferred.len(),
                first.article.id,
                first.reason
            )));
        }
        // Every story the job's articles are in, also those already known (a redelivered
        // job returns the same stories).
        let mut stories: Vec<&str> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (_, story) in &outcome.assignments {
            if seen.insert(story.as_str()) {
                stories.push(story);
            }
        }
        let s = &outcome.summary;
        Ok(json!({
            "totalProcessed": s.total_processed,
            "newClusters": s.new_clusters,
            "stories": stories,
            "rejected": s.rejected,
            "alreadyKnown": s.already_known,
            "stateVersion": s.redis.as_ref().map_or(0, |r| r.state_version),
        }))
    }

    /// A category per article, in input order; no Redis, no lock.
    fn categorization(&self, data: &Value) -> Result<Value, JobError> {
        let categories: Vec<String> = match data.get("categories") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
                JobError::Bad("`categories` must be an array of category names".into())
            })?,
        };
        let categorizer = RuleCategorizer::with_categories(&categories)
            .map_err(|e| JobError::Bad(e.to_string()))?;
        let (name, bytes) = articles_input(data, &self.paths)?;
        let parsed = self.parse(&name, bytes);
        if parsed.articles.is_empty() && !parsed.rejects.is_empty() {
            return Err(JobError::Bad(nothing_usable(&parsed.rejects)));
        }
        let rejects: Vec<String> = parsed.rejects.iter().map(ToString::to_string).collect();
        let out: Vec<Value> = match &self.llm_categorizer {
            // The chat model, with the rules for groups it cannot answer.
            Some(llm) => {
                let names: Vec<String> = if categories.is_empty() {
                    self.engine.cfg.label.llm.categories.clone()
                } else {
                    categories.clone()
                };
                let items: Vec<(&str, &str)> = parsed
                    .articles
                    .iter()
                    .map(|a| (a.title.as_str(), a.body.as_str()))
                    .collect();
                llm.categorize(&items, &names, &categorizer)
                    .into_iter()
                    .zip(&parsed.articles)
                    .map(|((c, by), a)| {
                        let by = match by {
                            crate::label::llm_category::DecidedBy::Llm => "llm",
                            crate::label::llm_category::DecidedBy::Rules => "rules",
                        };
                        json!({"id": a.id, "category": c.category, "score": c.score, "matched": c.matched, "by": by})
                    })
                    .collect()
            }
            None => parsed
                .articles
                .iter()
                .map(|a| {
                    let c = categorizer.categorize(&a.title, &a.body);
                    json!({"id": a.id, "category": c.category, "score": c.score, "matched": c.matched, "by": "rules"})
                })
                .collect(),
        };
        Ok(json!({"categories": out, "rejected": rejects}))
    }

    /// Fresh labels for the given stories, computed outside the lock and stored with the
    /// stories under it.
    fn labeling(&self, data: &Value) -> Result<Value, JobError> {
        let ids: Vec<String> = data
            .get("stories")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .filter(|ids: &Vec<String>| !ids.is_empty())
            .ok_or_else(|| {
                JobError::Bad("payload must be {\"stories\": [\"<story id>\", ...]}".into())
            })?;
        let fingerprint = self.engine.fingerprint();
        let dim = self.engine.dim();
        // Outside the lock: the (possibly slow) labeler on the stories as they are now.
        let (before, _) = load_state(&self.conns.main, &fingerprint, dim)?;
        let snapshots: Vec<_> = ids.iter().filter_map(|id| snapshot(&before, id)).collect();
        let labels = self.engine.labeler.label(&snapshots)?;
        let mut kept = self
            .state_gate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // This job writes the state: whatever the process kept is stale after it.
        *kept = None;
        let wait = Duration::from_secs(self.engine.cfg.redis.lock_wait_secs);
        let lease = Duration::from_millis(self.engine.cfg.redis.lock_lease_ms);
        let lock = StateLock::acquire(&self.conns.main, wait, lease)?;
        let (mut state, _) = load_state(&self.conns.main, &fingerprint, dim)?;
        let mut labeled = Vec::new();
        let mut missing = Vec::new();
        for id in &ids {
            let Some(i) = state.stories.iter().position(|s| &s.id == id) else {
                missing.push(id.clone());
                continue;
            };
            // A story that took articles since the snapshot is labeled again, here.
            let fresh = snapshots
                .iter()
                .zip(&labels)
                .find(|(s, _)| &s.id == id)
                .filter(|(s, _)| s.size == state.stories[i].size)
                .map(|(_, l)| l.clone());
            let label = match fresh {
                Some(l) => l,
                None => {
                    let Some(snap) = snapshot(&state, id) else {
                        missing.push(id.clone());
                        continue;
                    };
                    let mut l = self.engine.labeler.label(&[snap])?;
                    match l.pop() {
                        Some(l) => l,
                        None => {
                            missing.push(id.clone());
                            continue;
                        }
                    }
                }
            };
            // The same write-back as a run's: label, terms, category, direction.
            label.apply_to(&mut state.stories[i]);
            labeled.push(i);
        }
        let ctx = crate::report::RecordContext {
            now: state.clock,
            tau_hours: self.engine.cfg.signals.heat_tau_hours,
            importance: &self.engine.importance,
        };
        let records: Vec<(String, String, i64)> = labeled
            .iter()
            .map(|&i| {
                let s = &state.stories[i];
                let rec = StoryRecord::of_active(s, ctx);
                let json = serde_json::to_string(&rec).unwrap_or_default();
                (s.id.clone(), json, s.last_seen)
            })
            .collect();
        let touched: std::collections::HashSet<&str> =
            records.iter().map(|(id, _, _)| id.as_str()).collect();
        let version = save_state(
            &self.conns.main,
            &lock,
            &mut state,
            &records,
            &[],
            "",
            Some(&touched),
        )?;
        drop(lock);
        let out: Vec<Value> = labeled
            .iter()
            .map(|&i| {
                let s = &state.stories[i];
                json!({"id": s.id, "label": s.label, "topTerms": s.top_terms})
            })
            .collect();
        *kept = Some((version, state));
        Ok(json!({"labeled": out, "missing": missing, "stateVersion": version}))
    }

    fn parse(&self, name: &str, bytes: Vec<u8>) -> ingest::Parsed {
        let input = ingest::input_from_bytes(name, bytes);
        ingest::parse_inputs(
            &[input],
            self.engine.cfg.ingest.max_article_bytes,
            &self.engine.pool,
        )
    }

    /// Embeds `articles` through the Redis cache, so the locked run only reads it.
    fn warm(&self, articles: &[crate::article::Article]) -> Result<(), JobError> {
        let e = &self.engine;
        let cache = RedisCache::new(
            self.conns.cache.clone(),
            &e.cfg.redis,
            &e.fingerprint(),
            e.dim(),
        );
        // Failures here are only logged: the locked run asks again and reports them.
        let deferred = std::sync::Mutex::new(Vec::new());
        let mut stage = EmbedStage::new(
            &*e.embedder,
            &cache,
            &e.pool,
            &e.symbols,
            e.cfg.signals.symbols_body_chars,
            &deferred,
        );
        for chunk in articles.chunks(e.cfg.ingest.batch_size.max(1)) {
            stage.process(Batch {
                articles: chunk.to_vec(),
            })?;
        }
        cache.flush();
        Ok(())
    }
}

/// What the labeler sees of an active story.
fn snapshot(state: &crate::story::StoryState, id: &str) -> Option<crate::label::StorySnapshot> {
    state
        .stories
        .iter()
        .find(|s| s.id == id)
        .map(|s| crate::label::StorySnapshot {
            id: s.id.clone(),
            rep_title: s.rep.title.clone(),
            terms: s.terms.clone(),
            size: s.size,
            titles: Vec::new(),
            symbols: crate::signals::symbols::story_symbols_from(&s.symbols, s.size)
                .into_iter()
                .map(|(sym, _)| sym)
                .collect(),
        })
}

/// Which files `{"path": ...}` jobs may read: regular files under the allowed directories
/// (`[worker] allowed_dirs`, else the spool directory), at most `max_job_bytes` long.
#[derive(Debug, Clone)]
pub struct PathPolicy {
    /// Each allowed directory as configured (made absolute) and with symlinks resolved.
    allowed: Vec<(PathBuf, PathBuf)>,
    /// What the refusal names.
    shown: String,
    max_bytes: u64,
}

impl PathPolicy {
    /// The policy of `cfg`. A configured directory that does not exist allows nothing (it
    /// is logged).
    pub fn new(cfg: &PipelineConfig) -> Self {
        let dirs: Vec<String> = if !cfg.worker.allowed_dirs.is_empty() {
            cfg.worker.allowed_dirs.clone()
        } else if !cfg.spool.dir.is_empty() {
            vec![cfg.spool.dir.clone()]
        } else {
            Vec::new()
        };
        let allowed = dirs
            .iter()
            .filter_map(|d| {
                let abs = std::path::absolute(d).ok()?;
                match std::fs::canonicalize(&abs) {
                    Ok(real) => Some((normalize(&abs)?, real)),
                    Err(e) => {
                        tracing::warn!(dir = %d, error = %e, "A [worker] allowed_dirs entry is not usable; path jobs cannot read from it.");
                        None
                    }
                }
            })
            .collect();
        let shown = if dirs.is_empty() {
            "none: set [worker] allowed_dirs or [spool] dir".to_string()
        } else {
            dirs.join(", ")
        };
        PathPolicy {
            allowed,
            shown,
            max_bytes: cfg.worker.max_job_bytes,
        }
    }

    /// The one answer for every path outside the allowed directories, whether or not it
    /// exists (the check looks at the path before it touches the file system).
    fn refused(&self, path: &str) -> JobError {
        JobError::Bad(format!(
            "path {path:?} refused: path jobs read only regular files under [worker] \
             allowed_dirs ({})",
            self.shown
        ))
    }

    /// Reads the file a path job names.
    ///
    /// # Errors
    /// [`JobError::Bad`]: a path outside the allowed directories (also through a symlink),
    /// not absolute, with `.`/`..` parts, not a regular file (a FIFO, a device, a
    /// directory), larger than `max_job_bytes`, or unreadable.
    pub fn read(&self, path: &str) -> Result<Vec<u8>, JobError> {
        use std::io::Read;
        let p = Path::new(path);
        let Some(lexical) = normalize(p) else {
            return Err(self.refused(path));
        };
        if !self
            .allowed
            .iter()
            .any(|(abs, real)| lexical.starts_with(abs) || lexical.starts_with(real))
        {
            return Err(self.refused(path));
        }
        let unreadable = |e: std::io::Error| JobError::Bad(format!("cannot read {path}: {e}"));
        // Symlinks resolved: the file itself must be inside too.
        let real = std::fs::canonicalize(p).map_err(unreadable)?;
        if !self.allowed.iter().any(|(_, dir)| real.starts_with(dir)) {
            return Err(self.refused(path));
        }
        let mut options = std::fs::OpenOptions::new();
        options.read(true);
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::fs::OpenOptionsExt;
            // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below).
            options.custom_flags(0o4000);
        }
        let file = options.open(&real).map_err(unreadable)?;
        let meta = file.metadata().map_err(unreadable)?;
        if !meta.is_file() {
            return Err(JobError::Bad(format!(
                "{path} is not a regular file (a FIFO, device or directory); path jobs read dump files"
            )));
        }
        let too_big = |n: u64| {
            JobError::Bad(format!(
                "{path} is {n} bytes, more than [worker] max_job_bytes ({})",
                self.max_bytes
            ))
        };
        if meta.len() > self.max_bytes {
            return Err(too_big(meta.len()));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        file.take(self.max_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(unreadable)?;
        if bytes.len() as u64 > self.max_bytes {
            return Err(too_big(bytes.len() as u64));
        }
        Ok(bytes)
    }
}

/// `p` when it is absolute and has no `.` or `..` parts (which would let a path look
/// inside a directory and point outside it).
fn normalize(p: &Path) -> Option<PathBuf> {
    use std::path::Component;
    (p.is_absolute()
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_))))
    .then(|| p.components().collect())
}

/// The dump a `clustering` or `categorization` payload names: `{"articles": [...]}` (the
/// records, serialised back to a JSON array for the ingest stage) or `{"path": "..."}`
/// (read under `paths`).
///
/// # Errors
/// [`JobError::Bad`] for any other shape, or a path `paths` refuses or cannot read.
pub fn articles_input(data: &Value, paths: &PathPolicy) -> Result<(String, Vec<u8>), JobError> {
    let shape = || {
        JobError::Bad(
            "payload must be {\"articles\": [ {...}, ... ]} or {\"path\": \"<dump file>\"}".into(),
        )
    };
    let obj = data.as_object().ok_or_else(shape)?;
    match (obj.get("articles"), obj.get("path")) {
        (Some(Value::Array(records)), None) => {
            let bytes = serde_json::to_vec(records).map_err(|_| shape())?;
            Ok(("job articles".into(), bytes))
        }
        (None, Some(Value::String(path))) => Ok((path.clone(), paths.read(path)?)),
        _ => Err(shape()),
    }
}

/// The reason a clustering or categorization job with nothing usable fails with.
pub fn nothing_usable(rejects: &[crate::article::Reject]) -> String {
    format!(
        "no usable article ({} rejected): {}",
        rejects.len(),
        rejects
            .iter()
            .take(REASONS_SHOWN)
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(dir: &Path, max: u64) -> PathPolicy {
        let mut cfg = PipelineConfig::default();
        cfg.worker.allowed_dirs = vec![dir.display().to_string()];
        cfg.worker.max_job_bytes = max;
        PathPolicy::new(&cfg)
    }

    #[test]
    fn payload_shapes() {
        let t = tempfile::tempdir().unwrap();
        let paths = policy(t.path(), 1 << 20);
        let (name, bytes) = articles_input(&json!({"articles": [{"title": "a"}]}), &paths).unwrap();
        assert_eq!(name, "job articles");
        assert_eq!(bytes, br#"[{"title":"a"}]"#);
        for bad in [
            json!(null),
            json!([1]),
            json!({}),
            json!({"articles": {"title": "a"}}),
            json!({"articles": [], "path": "x"}),
            json!({"path": 3}),
        ] {
            assert!(
                matches!(articles_input(&bad, &paths), Err(JobError::Bad(_))),
                "{bad}"
            );
        }
        let missing = t.path().join("missing.jsonl");
        let Err(JobError::Bad(m)) =
            articles_input(&json!({"path": missing.display().to_string()}), &paths)
        else {
            panic!("a missing file is bad input");
        };
        assert!(m.contains("missing.jsonl"), "{m}");
    }

    #[test]
    fn path_jobs_read_only_regular_files_inside_the_allowed_dirs() {
        let t = tempfile::tempdir().unwrap();
        let inside = t.path().join("in");
        std::fs::create_dir(&inside).unwrap();
        let secret = t.path().join("secret.jsonl");
        std::fs::write(&secret, "{\"title\":\"DB_PASSWORD=x\"}\n").unwrap();
        std::fs::write(inside.join("ok.jsonl"), "{\"title\":\"a\"}\n").unwrap();
        std::fs::write(inside.join("big.jsonl"), vec![b' '; 100]).unwrap();
        std::os::unix::fs::symlink(&secret, inside.join("link.jsonl")).unwrap();
        let paths = policy(&inside, 64);
        let s = |p: &Path| p.display().to_string();
        assert!(paths.read(&s(&inside.join("ok.jsonl"))).is_ok());
        let refused = |p: String| match paths.read(&p) {
            Err(JobError::Bad(m)) => m.replace(&p, "P"),
            other => panic!("{p}: {other:?}"),
        };
        // Outside, existing or not, through `..` or a symlink: the same answer.
        let answers = [
            refused(s(&secret)),
            refused(s(&t.path().join("nope.jsonl"))),
            refused(format!("{}/../secret.jsonl", inside.display())),
            refused(format!("{}/../nope.jsonl", inside.display())),
            refused(s(&inside.join("link.jsonl"))),
            refused("relative.jsonl".into()),
        ];
        assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
        assert!(answers[0].contains("refused"), "{}", answers[0]);
        assert!(refused(s(&inside.join("big.jsonl"))).contains("max_job_bytes"));
        assert!(refused(s(&inside)).contains("not a regular file"));
        // No allowed dir at all: every path job is refused.
        let none = PathPolicy::new(&PipelineConfig::default());
        assert!(matches!(
            none.read(&s(&inside.join("ok.jsonl"))),
            Err(JobError::Bad(_))
        ));
    }

    #[test]
    fn redis_and_lock_errors_are_transient_input_errors_are_not() {
        let redis = Error::Redis {
            server: "h:1/0".into(),
            message: "down".into(),
        };
        assert!(matches!(JobError::from(redis), JobError::Transient(_)));
        assert!(matches!(
            JobError::from(Error::Locked("busy".into())),
            JobError::Transient(_)
        ));
        let io = Error::io("x", std::io::Error::other("gone"));
        assert!(matches!(JobError::from(io), JobError::Bad(_)));
    }
}
