//! The story state in a local JSON file, written atomically (temp file, fsync, rename) so a
//! crash mid-write leaves the previous state intact.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};
use crate::story::{STATE_VERSION, StoryState};

/// Loads the state at `path`, or a new empty one when the file does not exist.
///
/// # Errors
/// [`Error::State`] when the file is unreadable as a state, was made by another embedder
/// (`fingerprint`) or another format version; [`Error::Io`] on read errors.
pub fn load(path: &Path, fingerprint: &str, dim: usize) -> Result<StoryState> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(StoryState::new(fingerprint, dim));
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    decode(&bytes, path, fingerprint, dim)
}

/// Decodes and checks a saved state (from a file or from Redis; `path` names it in errors).
///
/// # Errors
/// [`Error::State`] when it is not a state, has another format version, or was made by
/// another embedder.
pub fn decode(bytes: &[u8], path: &Path, fingerprint: &str, dim: usize) -> Result<StoryState> {
    let bad = |message: String| Error::State {
        path: path.to_path_buf(),
        message,
    };
    let mut state: StoryState =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("not a story state: {e}")))?;
    if state.version != STATE_VERSION {
        return Err(bad(format!(
            "format version {} (expected {STATE_VERSION})",
            state.version
        )));
    }
    if state.fingerprint != fingerprint || state.dim != dim {
        return Err(bad(format!(
            "made by embedder {:?} (dim {}), this pipeline uses {fingerprint:?} (dim {dim}); \
             vectors are not comparable: use a new state file",
            state.fingerprint, state.dim
        )));
    }
    state.rebuild().map_err(bad)?;
    Ok(state)
}

/// Writes `state` to `path` atomically.
///
/// # Errors
/// [`Error::Io`] naming the file that could not be written.
pub fn save(path: &Path, state: &StoryState) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        serde_json::to_writer(&mut f, state)?;
        f.write_all(b"\n")?;
        let f = f
            .into_inner()
            .map_err(std::io::IntoInnerError::into_error)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}
