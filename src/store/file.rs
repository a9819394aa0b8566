//! The story state in a local JSON file, written atomically (temp file, fsync, rename) so a
//! crash mid-write leaves the previous state intact, and checksummed so a damaged file fails
//! loudly instead of loading wrong vectors.
//!
//! Encoding (also the value of `perps:state` in Redis): `{"xxh3":"<16 hex digits>","state":
//! <state JSON>}` followed by a newline, where the digest is xxh3-64 of the state JSON's exact
//! bytes. It is still JSON; a state without the wrapper (written before the checksum) loads
//! as it is. A temp file left by a writer killed mid-save is removed by the next save.

use std::io::Write;
use std::path::Path;

use xxhash_rust::xxh3::xxh3_64;

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

/// The start of a checksummed state, up to the digest.
const HEAD: &[u8] = b"{\"xxh3\":\"";
/// Between the digest and the state.
const MID: &[u8] = b"\",\"state\":";

/// Encodes `state` with its checksum (see the module docs).
///
/// # Errors
/// A serialisation failure (not expected for a well-formed state), as its message.
pub fn encode(state: &StoryState) -> std::result::Result<Vec<u8>, String> {
    let json = serde_json::to_vec(state).map_err(|e| e.to_string())?;
    let digest = format!("{:016x}", xxh3_64(&json));
    let mut out = Vec::with_capacity(json.len() + 48);
    out.extend_from_slice(HEAD);
    out.extend_from_slice(digest.as_bytes());
    out.extend_from_slice(MID);
    out.extend_from_slice(&json);
    out.extend_from_slice(b"}\n");
    Ok(out)
}

/// The state JSON inside a checksummed encoding, checked against its digest; the bytes
/// as they are when there is no wrapper.
fn unwrap_checked(bytes: &[u8]) -> std::result::Result<&[u8], String> {
    let Some(rest) = bytes.strip_prefix(HEAD) else {
        return Ok(bytes);
    };
    let (digest, rest) = rest
        .split_at_checked(16)
        .ok_or("truncated checksum header")?;
    let body = rest
        .strip_prefix(MID)
        .ok_or("damaged checksum header")?
        .trim_ascii_end()
        .strip_suffix(b"}")
        .ok_or("truncated: the end of the state is missing")?;
    let want = std::str::from_utf8(digest)
        .ok()
        .and_then(|d| u64::from_str_radix(d, 16).ok())
        .ok_or("damaged checksum header")?;
    let got = xxh3_64(body);
    if got != want {
        return Err(format!(
            "checksum mismatch (stored {want:016x}, content {got:016x}): the state was damaged \
             after it was written; restore it from a copy or start a new state"
        ));
    }
    Ok(body)
}

/// Decodes and checks a saved state (from a file or from Redis; `path` names it in errors).
///
/// # Errors
/// [`Error::State`] when its checksum does not match, it is not a state, has another format
/// version, or was made by another embedder.
pub fn decode(bytes: &[u8], path: &Path, fingerprint: &str, dim: usize) -> Result<StoryState> {
    let bad = |message: String| Error::State {
        path: path.to_path_buf(),
        message,
    };
    let body = unwrap_checked(bytes).map_err(bad)?;
    let mut state: StoryState =
        serde_json::from_slice(body).map_err(|e| bad(format!("not a story state: {e}")))?;
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

/// Writes `state` to `path` atomically, checksummed.
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
    remove_stale_temps(dir, &name);
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let bytes = encode(state).map_err(|e| Error::io(path, std::io::Error::other(e)))?;
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Removes `.<name>.<pid>.tmp` files in `dir` whose writer is gone (killed mid-save): each
/// is as large as the state, and nothing else would ever delete them. A temp file of a live
/// process (another run saving right now) is left alone.
fn remove_stale_temps(dir: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = format!(".{name}.");
    // Liveness is read from /proc; without it nothing is judged stale.
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return;
    }
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(pid) = file
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|f| f.strip_suffix(".tmp"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !proc.join(pid.to_string()).exists() {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::info!(file = %entry.path().display(), "Removed a temp file left by a run killed while saving.");
                }
                Err(e) => {
                    tracing::warn!(file = %entry.path().display(), error = %e, "Cannot remove a stale temp file.");
                }
            }
        }
    }
}

/// Creates the directory `path` goes in, when it is missing (the state directory of a host
/// whose first run finds Redis down or writes its first mirror).
///
/// # Errors
/// [`Error::Io`] naming the directory.
pub fn create_parent(path: &Path) -> Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) if !dir.is_dir() => std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksummed_states_round_trip_and_any_flip_is_caught() {
        let state = StoryState::new("fp", 4);
        let bytes = encode(&state).unwrap();
        let p = Path::new("s.json");
        assert!(decode(&bytes, p, "fp", 4).is_ok());
        // Without the wrapper (older files) it still loads.
        let plain = serde_json::to_vec(&state).unwrap();
        assert!(decode(&plain, p, "fp", 4).is_ok());
        for i in HEAD.len() + 16 + MID.len()..bytes.len() - 2 {
            let mut bad = bytes.clone();
            bad[i] ^= 0x04;
            let e = decode(&bad, p, "fp", 4).unwrap_err().to_string();
            assert!(e.contains("s.json") && e.contains("checksum"), "{i}: {e}");
        }
        let cut = &bytes[..bytes.len() - 10];
        assert!(decode(cut, p, "fp", 4).is_err());
    }
}
