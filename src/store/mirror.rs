//! The host's local mirror of the Redis story state, and the work it holds that has not
//! reached Redis yet.
//!
//! Files, beside `state_mirror_path` (`M`):
//! - `M`: a copy of the state (atomic JSON, like `--state`). After a successful Redis save it
//!   is the state at the version in `M.version`; a run while Redis is down continues it.
//! - `M.digests`: what `M` holds per story, so the save after a Redis save appends what
//!   changed without reading `M` (see `store::file`; ignored when it does not fit `M`).
//! - `M.version`: the Redis state version `M` equals. Removed before `M` is rewritten, so a
//!   crash in between leaves "unknown", never a wrong version.
//! - `M.pending`: the Redis version the pending work sits on (`unknown` when not known).
//! - `M.work.jsonl`: the articles of that work as input records (times made explicit), so
//!   they can be run again on a newer state.
//! - `M.events.jsonl`: the bus events that work produced, not published yet.
//!
//! Work is pending when any of the last three exists. The next run that holds the Redis lock
//! either continues `M` (Redis is still at the pending base version: `M` is exactly that
//! state plus the work, so the events are published after its save) or re-applies
//! `M.work.jsonl` on top of the newer Redis state (the events are dropped: the re-run
//! publishes its own, so no article is counted twice). Only a successful save clears them.
//! Write order keeps every crash point safe: the marker is removed first and written last,
//! so a crash in between leaves work without a known base, which is re-applied.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::story::StoryState;

/// Input name of the re-applied work in messages and rejects.
pub const PENDING_INPUT: &str = "(pending work of earlier runs)";

/// The mirror files of one `state_mirror_path`.
#[derive(Debug, Clone)]
pub struct Mirror {
    path: PathBuf,
}

/// Pending work: the version it sits on (None when unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// The Redis state version the mirror's pending work continues, if known.
    pub base: Option<u64>,
}

impl Mirror {
    /// The mirror at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Mirror { path: path.into() }
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn side(&self, suffix: &str) -> PathBuf {
        let mut p = self.path.as_os_str().to_owned();
        p.push(suffix);
        PathBuf::from(p)
    }

    fn version_path(&self) -> PathBuf {
        self.side(".version")
    }

    fn pending_path(&self) -> PathBuf {
        self.side(".pending")
    }

    /// The journal of pending articles.
    pub fn work_path(&self) -> PathBuf {
        self.side(".work.jsonl")
    }

    fn events_path(&self) -> PathBuf {
        self.side(".events.jsonl")
    }

    /// Whether a mirrored state exists at all.
    pub fn exists(&self) -> bool {
        self.path.is_file()
    }

    /// Loads the mirrored state.
    ///
    /// # Errors
    /// As [`super::file::load`].
    pub fn load(&self, fingerprint: &str, dim: usize) -> Result<StoryState> {
        super::file::load(&self.path, fingerprint, dim)
    }

    /// The pending work, if any.
    pub fn pending(&self) -> Option<Pending> {
        let marker = std::fs::read_to_string(self.pending_path()).ok();
        if marker.is_none() && !self.work_path().exists() && !self.events_path().exists() {
            return None;
        }
        Some(Pending {
            base: marker.and_then(|m| m.trim().parse().ok()),
        })
    }

    /// The Redis version the mirror equals when nothing is pending (None: unknown).
    pub fn saved_version(&self) -> Option<u64> {
        std::fs::read_to_string(self.version_path())
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The base a new piece of pending work on top of the mirror sits on: the pending base,
    /// else the version the mirror was saved at.
    pub fn base(&self) -> Option<u64> {
        match self.pending() {
            Some(p) => p.base,
            None => self.saved_version(),
        }
    }

    /// The journal's bytes (None when there is no journal).
    ///
    /// # Errors
    /// [`Error::Io`] when it exists but cannot be read.
    pub fn work(&self) -> Result<Option<Vec<u8>>> {
        let p = self.work_path();
        match std::fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(p, e)),
        }
    }

    /// The pending events, in order.
    ///
    /// # Errors
    /// [`Error::Io`] when the file exists but cannot be read; unreadable lines are skipped
    /// with an error logged.
    pub fn events(&self) -> Result<Vec<(String, serde_json::Value)>> {
        let p = self.events_path();
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(p, e)),
        };
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<(String, serde_json::Value)>(line) {
                Ok(ev) => out.push(ev),
                Err(e) => {
                    tracing::error!(file = %p.display(), line = i + 1, error = %e, "Unreadable pending event skipped.");
                }
            }
        }
        Ok(out)
    }

    /// Keeps a run's work that did not reach Redis: appends `records` to the journal and
    /// `events` to the pending events (replacing those kept so far when `supersede`: the
    /// run re-applied that work and its events cover it), writes `state` as the mirror, and
    /// marks it pending on `base`.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file that could not be written.
    pub fn keep(
        &self,
        state: &mut StoryState,
        base: Option<u64>,
        records: &[serde_json::Value],
        events: &[(&str, serde_json::Value)],
        supersede: bool,
    ) -> Result<()> {
        super::file::create_parent(&self.path)?;
        let marker = self.pending_path();
        remove(&marker)?;
        if supersede {
            remove(&self.events_path())?;
        }
        let mut lines = String::new();
        for r in records {
            lines.push_str(&r.to_string());
            lines.push('\n');
        }
        append(&self.work_path(), &lines)?;
        let mut lines = String::new();
        for (channel, payload) in events {
            lines.push_str(&serde_json::json!([channel, payload]).to_string());
            lines.push('\n');
        }
        append(&self.events_path(), &lines)?;
        remove(&self.version_path())?;
        super::file::save(&self.path, state)?;
        let text = base.map_or_else(|| "unknown".to_string(), |v| v.to_string());
        write_atomic(&marker, &format!("{text}\n"))
    }

    /// Forgets the pending work (it reached Redis).
    ///
    /// # Errors
    /// [`Error::Io`] when a file cannot be removed (the work would be applied again, which
    /// finds every article known, but the events would be dropped, so this is reported).
    pub fn clear_pending(&self) -> Result<()> {
        // The marker first: without it the rest counts as work of unknown base.
        remove(&self.pending_path())?;
        remove(&self.events_path())?;
        remove(&self.work_path())
    }

    /// Records `state` as the Redis state at `version`. Best effort: a full disk must not
    /// fail a run whose state Redis has; the mirror is then marked unknown (a later run while
    /// Redis is down would re-apply its work instead of trusting a stale copy).
    pub fn saved(&self, state: &mut StoryState, version: u64) {
        let mut write = || -> Result<()> {
            super::file::create_parent(&self.path)?;
            remove(&self.version_path())?;
            super::file::save_after_redis(&self.path, state)?;
            write_atomic(&self.version_path(), &format!("{version}\n"))
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(self.version_path());
            tracing::warn!(error = %e, mirror = %self.path.display(), "Local state mirror not updated (the state is in Redis).");
        }
    }
}

fn remove(p: &Path) -> Result<()> {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(p, e)),
    }
}

fn append(p: &Path, text: &str) -> Result<()> {
    if text.is_empty() {
        return Ok(());
    }
    super::file::create_parent(p)?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .map_err(|e| Error::io(p, e))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(p, e))
}

fn write_atomic(p: &Path, text: &str) -> Result<()> {
    let mut tmp = p.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, p)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(p, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_work_round_trips_and_clears() {
        let t = tempfile::tempdir().unwrap();
        let m = Mirror::new(t.path().join("m.json"));
        assert_eq!(m.pending(), None);
        assert_eq!(m.base(), None);
        let mut state = StoryState::new("fp", 4);
        m.saved(&mut state, 7);
        assert_eq!((m.pending(), m.base()), (None, Some(7)));
        let rec = serde_json::json!({"id": "a", "title": "t"});
        m.keep(
            &mut state,
            Some(7),
            std::slice::from_ref(&rec),
            &[("news:story", rec.clone())],
            false,
        )
        .unwrap();
        assert_eq!(m.pending(), Some(Pending { base: Some(7) }));
        assert_eq!(
            m.saved_version(),
            None,
            "a pending mirror is not a saved version"
        );
        m.keep(&mut state, None, std::slice::from_ref(&rec), &[], false)
            .unwrap();
        assert_eq!(m.pending(), Some(Pending { base: None }));
        let work = String::from_utf8(m.work().unwrap().unwrap()).unwrap();
        assert_eq!(work.lines().count(), 2);
        assert_eq!(m.events().unwrap(), vec![("news:story".to_string(), rec)]);
        m.clear_pending().unwrap();
        assert_eq!(m.pending(), None);
        assert!(m.work().unwrap().is_none());
        // Work without a marker (a crash before the marker was written) has no known base.
        std::fs::write(m.work_path(), "{}\n").unwrap();
        assert_eq!(m.pending(), Some(Pending { base: None }));
    }
}
