//! The spool directory: the source of timer-driven batch runs. A news fetcher drops dump
//! files into `inbox/` (writing them elsewhere and renaming them in, so a file is whole when it
//! appears); a run claims them by renaming them into `claimed/`, processes them, and moves
//! them to `done/`, or to `failed/` with a `.err` file saying why.
//!
//! Crash safety: a run holds an exclusive lock on `<dir>/.lock` for its whole life, so runs
//! take turns; files a crashed run left in `claimed/` are taken up again by the next run.
//! Files are moved to `done/` only after the state was saved, and a file processed twice
//! (after a crash between saving and moving) changes nothing: its articles are already known.

mod config;
pub use config::SpoolConfig;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// An opened, locked spool directory.
#[derive(Debug)]
pub struct SpoolDir {
    root: PathBuf,
    _lock: File,
}

const SUBDIRS: [&str; 4] = ["inbox", "claimed", "done", "failed"];

impl SpoolDir {
    /// Opens `root` (creating its subdirectories) and takes its lock, waiting up to `wait`.
    ///
    /// # Errors
    /// [`Error::Io`] naming the directory when it cannot be created or locked;
    /// [`Error::Locked`] when another run keeps the lock past `wait`.
    pub fn open(root: &Path, wait: Duration) -> Result<SpoolDir> {
        for sub in SUBDIRS {
            let d = root.join(sub);
            fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
        }
        let lock_path = root.join(".lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        let start = Instant::now();
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) if start.elapsed() < wait => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(Error::Locked(format!(
                        "spool {} is in use by another run",
                        root.display()
                    )));
                }
                Err(fs::TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
            }
        }
        Ok(SpoolDir {
            root: root.to_path_buf(),
            _lock: lock,
        })
    }

    /// Claims work: files a crashed run left in `claimed/` first, then every regular file in
    /// `inbox/` (hidden files and `*.tmp` are still being written and are skipped), each
    /// list in name order. Anything else in `inbox/` (a directory, a symlink, a FIFO) goes to
    /// `failed/` with a note.
    ///
    /// # Errors
    /// [`Error::Io`] when a directory cannot be read or a file cannot be moved.
    pub fn claim(&self) -> Result<Vec<PathBuf>> {
        let claimed_dir = self.root.join("claimed");
        let mut claimed = list(&claimed_dir)?;
        if !claimed.is_empty() {
            tracing::warn!(
                files = claimed.len(),
                "Taking up files a previous run claimed but did not finish."
            );
        }
        let inbox = self.root.join("inbox");
        // Directories, symlinks, FIFOs, sockets: never read (a symlink could point anywhere,
        // a FIFO would block), but not left to sit there unnoticed either.
        for (f, kind) in irregular(&inbox)? {
            let why = format!(
                "not a regular file ({kind}): spool inputs must be regular files written \
                 elsewhere and renamed into inbox/"
            );
            match self.fail(&f, &why) {
                Ok(_) => {}
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        for f in list(&inbox)? {
            let to = free_name(&claimed_dir, &f);
            match fs::rename(&f, &to) {
                Ok(()) => claimed.push(to),
                // Someone else took it (or the fetcher removed it): not ours.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&f, e)),
            }
        }
        Ok(claimed)
    }

    /// Moves a processed file to `done/`.
    ///
    /// # Errors
    /// [`Error::Io`] when the move fails.
    pub fn done(&self, file: &Path) -> Result<PathBuf> {
        let to = free_name(&self.root.join("done"), file);
        fs::rename(file, &to).map_err(|e| Error::io(file, e))?;
        Ok(to)
    }

    /// Moves a file that could not be processed to `failed/` and writes `why` beside it.
    ///
    /// # Errors
    /// [`Error::Io`] when the move or the note fails.
    pub fn fail(&self, file: &Path, why: &str) -> Result<PathBuf> {
        let to = free_name(&self.root.join("failed"), file);
        fs::rename(file, &to).map_err(|e| Error::io(file, e))?;
        let mut note = to.as_os_str().to_owned();
        note.push(".err");
        fs::write(&note, format!("{why}\n")).map_err(|e| Error::io(PathBuf::from(&note), e))?;
        tracing::warn!(file = %to.display(), reason = why, "Spool file failed.");
        Ok(to)
    }
}

/// Regular, visible, finished files in `dir`, by name.
fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.')
            || name.ends_with(".tmp")
            || !entry.file_type().is_ok_and(|t| t.is_file())
        {
            continue;
        }
        out.push(entry.path());
    }
    out.sort();
    Ok(out)
}

/// Visible entries of `dir` that are not regular files, by name, with what they are.
fn irregular(dir: &Path) -> Result<Vec<(PathBuf, &'static str)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.ends_with(".tmp") {
            continue;
        }
        // `file_type` does not follow symlinks: a link to a regular file is still a link.
        let Ok(t) = entry.file_type() else { continue };
        let kind = if t.is_file() {
            continue;
        } else if t.is_dir() {
            "a directory"
        } else if t.is_symlink() {
            "a symbolic link"
        } else {
            "a FIFO, socket or device"
        };
        out.push((entry.path(), kind));
    }
    out.sort();
    Ok(out)
}

/// `dir/<file name>`, or `dir/<file name>.N` when that exists already.
fn free_name(dir: &Path, file: &Path) -> PathBuf {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut candidate = dir.join(&name);
    let mut n = 1;
    while fs::symlink_metadata(&candidate).is_ok() {
        candidate = dir.join(format!("{name}.{n}"));
        n += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_leftovers_then_inbox_and_moves_files_on() {
        let t = tempfile::tempdir().unwrap();
        let s = SpoolDir::open(t.path(), Duration::ZERO).unwrap();
        fs::write(t.path().join("inbox/b.jsonl"), "{}").unwrap();
        fs::write(t.path().join("inbox/a.jsonl"), "{}").unwrap();
        fs::write(t.path().join("inbox/c.jsonl.tmp"), "{}").unwrap();
        fs::write(t.path().join("inbox/.hidden"), "{}").unwrap();
        fs::write(t.path().join("claimed/old.jsonl"), "{}").unwrap();
        let got = s.claim().unwrap();
        let names: Vec<_> = got
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["old.jsonl", "a.jsonl", "b.jsonl"]);
        assert!(t.path().join("inbox/c.jsonl.tmp").exists());
        s.done(&got[1]).unwrap();
        let failed = s.fail(&got[2], "not a dump").unwrap();
        assert!(t.path().join("done/a.jsonl").exists());
        assert_eq!(
            fs::read_to_string(format!("{}.err", failed.display())).unwrap(),
            "not a dump\n"
        );
        // Same name again: nothing is overwritten.
        fs::write(t.path().join("inbox/a.jsonl"), "{}").unwrap();
        let again = s.claim().unwrap();
        s.done(&again[1]).unwrap();
        assert!(t.path().join("done/a.jsonl.1").exists());
    }

    #[test]
    fn directories_and_symlinks_in_the_inbox_go_to_failed_with_a_note() {
        let t = tempfile::tempdir().unwrap();
        let s = SpoolDir::open(t.path(), Duration::ZERO).unwrap();
        let outside = t.path().join("secret.jsonl");
        fs::write(&outside, "{\"title\":\"DB_PASSWORD=x\"}").unwrap();
        fs::create_dir(t.path().join("inbox/sub.jsonl")).unwrap();
        std::os::unix::fs::symlink(&outside, t.path().join("inbox/link.jsonl")).unwrap();
        fs::write(t.path().join("inbox/ok.jsonl"), "{}").unwrap();
        let got = s.claim().unwrap();
        assert_eq!(got, [t.path().join("claimed/ok.jsonl")]);
        for (name, kind) in [("sub.jsonl", "directory"), ("link.jsonl", "symbolic link")] {
            let note = fs::read_to_string(t.path().join(format!("failed/{name}.err"))).unwrap();
            assert!(note.contains(kind), "{note}");
        }
        assert!(
            fs::symlink_metadata(t.path().join("failed/link.jsonl"))
                .unwrap()
                .file_type()
                .is_symlink(),
            "the link itself moved, its target untouched"
        );
        assert!(outside.exists());
    }

    #[test]
    fn a_second_opener_is_refused_while_the_lock_is_held() {
        let t = tempfile::tempdir().unwrap();
        let _first = SpoolDir::open(t.path(), Duration::ZERO).unwrap();
        let err = SpoolDir::open(t.path(), Duration::from_millis(150)).unwrap_err();
        assert!(err.to_string().contains("in use by another run"), "{err}");
    }
}
