//! The story state in a local file: a snapshot plus an append-only log, so a save writes
//! what the run changed, not the window.
//!
//! The file is `PNSLOG1\n` followed by frames, each `kind` (one byte: `S` a story record,
//! `H` a header), the payload's length (u32 LE), the payload's xxh3-64 (u64 LE), then the
//! payload:
//! - `S`: the story id's length (u16 LE), the id, then the story's binary record
//!   ([`crate::store::record`]);
//! - `H`: the state without its stories, listing their ids in order (`story_order`), in the
//!   checksummed JSON below, the same value Redis holds in `perps:state`.
//!
//! A save appends the records whose digest differs from what the file holds, then a header:
//! the header is the commit. Loading takes, for every id the last complete header lists, the
//! latest record before it; frames after the last complete header (a save killed midway) are
//! ignored, with a warning, and cut off by the next save. When the file has grown past three
//! times what it holds, or is not a log yet (a state of the earlier JSON format, read once
//! and converted with one log line), a save writes it whole instead: temp file, fsync,
//! rename, so a crash mid-write leaves the previous state intact. A temp file left by a
//! writer killed mid-save is removed by the next save. Saves take an exclusive lock on the
//! file.
//!
//! The JSON encoding (a header, `perps:state` in Redis, and the earlier file format):
//! `{"xxh3":"<16 hex digits>","state":<state JSON>}` followed by a newline, where the digest
//! is xxh3-64 of the state JSON's exact bytes; a state without the wrapper (written before
//! the checksum) loads as it is.

mod digests;

use std::io::Write;
use std::path::Path;

use xxhash_rust::xxh3::xxh3_64;

use crate::error::{Error, Result};
use crate::story::{STATE_VERSION, StoryState};

/// Loads the state at `path`, or a new empty one when the file does not exist.
///
/// # Errors
/// [`Error::State`] when the file is unreadable as a state, was made by another embedder
/// (`fingerprint`) or another format version, or a record the header lists is missing or
/// damaged; [`Error::Io`] on read errors.
pub fn load(path: &Path, fingerprint: &str, dim: usize) -> Result<StoryState> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(StoryState::new(fingerprint, dim));
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    if bytes.is_empty() {
        // Created by a save that was killed before it wrote anything.
        return Ok(StoryState::new(fingerprint, dim));
    }
    if !bytes.starts_with(LOG_MAGIC) {
        let state = decode(&bytes, path, fingerprint, dim)?;
        tracing::info!(file = %path.display(), stories = state.stories.len(),
            "Read a state file of the JSON format; the next save rewrites it as a snapshot plus log.");
        return Ok(state);
    }
    let bad = |message: String| Error::State {
        path: path.to_path_buf(),
        message,
    };
    let scan = scan(&bytes).map_err(bad)?;
    if scan.damaged_at.is_some_and(|_| scan.clean) {
        return Err(bad(format!(
            "checksum mismatch in the frame at byte {}: the state was damaged after it was \
             written; restore it from a copy or start a new state",
            scan.damaged_at.unwrap_or(0)
        )));
    }
    let Some(header) = scan.header else {
        return Err(bad(
            "no complete save in the file (a first save killed midway?)".into(),
        ));
    };
    if !scan.clean && scan.committed_end < bytes.len() {
        tracing::warn!(file = %path.display(), bytes = bytes.len() - scan.committed_end,
            "Ignored the end of the state file after its last complete save (a save killed midway); the next save cuts it off.");
    }
    let mut state = decode(header, path, fingerprint, dim)?;
    let order = state.story_order.take().unwrap_or_default();
    let mut stories = Vec::with_capacity(order.len());
    for id in order {
        let record = scan.records.get(id.as_str()).ok_or_else(|| {
            bad(format!(
                "story record {id:?}: missing (the header lists it)"
            ))
        })?;
        let (_, story) =
            super::record::decode(record).map_err(|e| bad(format!("story record {id:?}: {e}")))?;
        if story.id != id {
            return Err(bad(format!(
                "story record {id:?}: holds story {:?}",
                story.id
            )));
        }
        stories.push(story);
    }
    if !stories.is_empty() {
        state.stories = stories;
        state.rebuild().map_err(bad)?;
    }
    Ok(state)
}

/// The first bytes of a state file in the snapshot-plus-log format.
const LOG_MAGIC: &[u8] = b"PNSLOG1\n";
/// A frame's kind, length and checksum.
const FRAME_HEAD: usize = 13;
/// The end mark a save writes last: an `E` frame holding the file's length (u64 LE).
const END_FRAME: usize = FRAME_HEAD + 8;

/// What a log file holds at its last complete save.
struct Scan<'a> {
    /// The file ends with the end mark of a complete save: nothing in it may be cut short or
    /// fail its checksum (that would be damage, not a save killed midway).
    clean: bool,
    /// Where the first frame cut short or failing its checksum starts.
    damaged_at: Option<usize>,
    /// The last complete header's payload.
    header: Option<&'a [u8]>,
    /// Per story id, its latest record before that header.
    records: std::collections::HashMap<&'a str, &'a [u8]>,
    /// Where the last complete save ends.
    committed_end: usize,
}

/// Reads the frames of a log file up to the last complete save. A frame cut short or
/// failing its checksum ends the scan (in a file without its end mark: a save killed
/// midway).
fn scan(bytes: &[u8]) -> std::result::Result<Scan<'_>, String> {
    let clean = bytes.len() >= LOG_MAGIC.len() + END_FRAME && {
        let end = &bytes[bytes.len() - END_FRAME..];
        end[0] == b'E'
            && end[1..5] == 8u32.to_le_bytes()
            && end[5..13] == xxh3_64(&end[13..]).to_le_bytes()
            && end[13..] == (bytes.len() as u64).to_le_bytes()
    };
    let mut out = Scan {
        clean,
        damaged_at: None,
        header: None,
        records: std::collections::HashMap::new(),
        committed_end: LOG_MAGIC.len(),
    };
    let mut pending: Vec<(&str, &[u8])> = Vec::new();
    let mut at = LOG_MAGIC.len();
    while at < bytes.len() {
        let Some(head) = bytes.get(at..at + FRAME_HEAD) else {
            out.damaged_at = Some(at);
            break;
        };
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut want = [0; 8];
        want.copy_from_slice(&head[5..13]);
        let payload = bytes.get(at + FRAME_HEAD..at + FRAME_HEAD + len);
        let Some(payload) = payload.filter(|p| xxh3_64(p) == u64::from_le_bytes(want)) else {
            out.damaged_at = Some(at);
            break;
        };
        match head[0] {
            b'S' => {
                let (n, rest) = payload
                    .split_at_checked(2)
                    .ok_or("story frame without an id")?;
                let n = usize::from(u16::from_le_bytes([n[0], n[1]]));
                let (id, record) = rest.split_at_checked(n).ok_or("story frame id cut short")?;
                let id = std::str::from_utf8(id).map_err(|_| "story frame id not UTF-8")?;
                pending.push((id, record));
            }
            b'H' => {
                out.records.extend(pending.drain(..));
                out.header = Some(payload);
                out.committed_end = at + FRAME_HEAD + len;
            }
            b'E' => {}
            k => return Err(format!("unknown frame kind {k:#04x} at byte {at}")),
        }
        at += FRAME_HEAD + len;
    }
    Ok(out)
}

fn push_frame(out: &mut Vec<u8>, kind: u8, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let start = out.len();
    out.push(kind);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    for p in parts {
        out.extend_from_slice(p);
    }
    let digest = xxh3_64(&out[start + FRAME_HEAD..]);
    out[start + 5..start + FRAME_HEAD].copy_from_slice(&digest.to_le_bytes());
}

/// The state's header: [`encode`] of the state without its stories, listing their ids in
/// order (`story_order`), and, with `terms_apart`, without its document frequencies (Redis
/// stores them apart). The state is left as it was.
///
/// # Errors
/// As [`encode`].
pub fn encode_header(
    state: &mut StoryState,
    terms_apart: bool,
) -> std::result::Result<Vec<u8>, String> {
    let stories = std::mem::take(&mut state.stories);
    let df = if terms_apart {
        std::mem::take(&mut state.terms.df)
    } else {
        Default::default()
    };
    state.story_order = Some(stories.iter().map(|s| s.id.clone()).collect());
    state.terms_apart = terms_apart;
    let header = encode(state);
    state.terms_apart = false;
    state.story_order = None;
    state.stories = stories;
    if terms_apart {
        state.terms.df = df;
    }
    header
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
    let mut state = decode_unbuilt(bytes, path, fingerprint, dim)?;
    state.rebuild().map_err(|message| Error::State {
        path: path.to_path_buf(),
        message,
    })?;
    Ok(state)
}

/// As [`decode`], without rebuilding what is derived (for a header whose stories come apart).
fn decode_unbuilt(bytes: &[u8], path: &Path, fingerprint: &str, dim: usize) -> Result<StoryState> {
    let bad = |message: String| Error::State {
        path: path.to_path_buf(),
        message,
    };
    let body = unwrap_checked(bytes).map_err(bad)?;
    let state: StoryState =
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
    Ok(state)
}

/// Saves `state` to `path`: appends the stories that differ from what the file holds and a
/// header, or writes the file whole (atomically) when it is not a log yet or has grown past
/// three times what it holds. The state is left as it was.
///
/// # Errors
/// [`Error::Io`] naming the file that could not be written.
pub fn save(path: &Path, state: &mut StoryState) -> Result<()> {
    save_inner(path, state, false)
}

/// [`save`] right after a Redis save, when [`StoryState::stored`] holds the digest of every
/// story's current record: a story the file holds with that digest is not encoded again
/// (the host's mirror after a timer tick: a few stories changed, the window's hundreds not).
///
/// # Errors
/// As [`save`].
pub fn save_after_redis(path: &Path, state: &mut StoryState) -> Result<()> {
    save_inner(path, state, true)
}

fn save_inner(path: &Path, state: &mut StoryState, digests_known: bool) -> Result<()> {
    let io = |e: std::io::Error| Error::io(path, e);
    let encode_err = |e: String| Error::io(path, std::io::Error::other(e));
    let mut file = lock_current(path).map_err(io)?;
    if digests_known && append_by_digests(path, &mut file, state)? {
        return Ok(());
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes).map_err(io)?;
    let held = if bytes.starts_with(LOG_MAGIC) {
        scan(&bytes).ok().filter(|s| s.header.is_some())
    } else {
        None
    };
    // Every story's record, and whether the file holds it already (same digest).
    let StoryState {
        stories, stored, ..
    } = &mut *state;
    let mut records: Vec<(bool, std::borrow::Cow<'_, [u8]>)> = Vec::with_capacity(stories.len());
    for s in stories.iter_mut() {
        let in_file: Option<&[u8]> = held
            .as_ref()
            .and_then(|h| h.records.get(s.id.as_str()).copied());
        let holds = |digest: u64| in_file.is_some_and(|r| digests::of_record(r) == digest);
        let saved = digests_known
            .then(|| stored.get(&s.id).copied())
            .flatten()
            .filter(|d| *d != 0);
        if let (Some(r), Some(d)) = (in_file, saved)
            && holds(d)
        {
            check_saved_digest(s, d).map_err(encode_err)?;
            records.push((true, std::borrow::Cow::Borrowed(r)));
            continue;
        }
        let (digest, record) = super::record::encode(s).map_err(encode_err)?;
        records.push((holds(digest), std::borrow::Cow::Owned(record)));
    }
    let header = encode_header(state, false).map_err(encode_err)?;
    let frame = |id: &str, record: &[u8]| FRAME_HEAD + 2 + id.len() + record.len();
    let whole_len = LOG_MAGIC.len()
        + state
            .stories
            .iter()
            .zip(&records)
            .map(|(s, (_, r))| frame(&s.id, r))
            .sum::<usize>()
        + FRAME_HEAD
        + header.len()
        + END_FRAME;
    // The frames of `stories` (all, or those the file lacks), the header, the end mark.
    let frames = |start: usize, all: bool| {
        let mut out = Vec::new();
        for (s, (held_already, record)) in state.stories.iter().zip(&records) {
            if all || !held_already {
                push_story_frame(&mut out, &s.id, record);
            }
        }
        push_frame(&mut out, b'H', &[&header]);
        let total = (start + out.len() + END_FRAME) as u64;
        push_frame(&mut out, b'E', &[&total.to_le_bytes()]);
        out
    };
    let listed = digests_known.then(|| {
        state
            .stories
            .iter()
            .zip(&records)
            .map(|(s, (_, r))| (s.id.clone(), (digests::of_record(r), r.len() as u32)))
            .collect()
    });
    let saved = match held {
        Some(h) => {
            let end = h.committed_end;
            drop(h);
            let appended = frames(end, false);
            if end + appended.len() > 3 * whole_len {
                write_whole_log(path, &frames)
            } else {
                append(&mut file, end, &appended).map_err(io)?;
                let changed = records.iter().filter(|(h, _)| !h).count();
                tracing::debug!(file = %path.display(), changed, bytes = appended.len(), "State appended.");
                Ok(())
            }
        }
        None => write_whole_log(path, &frames),
    };
    if saved.is_ok()
        && let Some(records) = listed
    {
        // The file as it is now (a whole rewrite made a new one).
        match std::fs::metadata(path) {
            Ok(meta) => digests::write(
                path,
                &digests::Digests {
                    file: digests::identity(&meta),
                    records,
                },
            ),
            Err(_) => {
                let _ = std::fs::remove_file(digests::path_of(path));
            }
        }
    }
    saved
}

/// Cuts off what a killed save left after the last commit at `end`, appends `bytes` and
/// syncs.
fn append(file: &mut std::fs::File, end: usize, bytes: &[u8]) -> std::io::Result<()> {
    file.set_len(end as u64)?;
    std::io::Seek::seek(file, std::io::SeekFrom::Start(end as u64))?;
    file.write_all(bytes)?;
    file.sync_data()
}

/// Debug builds (every test run): that story `s` still encodes to `digest`, the digest its
/// Redis save left, so a path that changes a story after the save without saying so is
/// caught. Release builds take the digest as it is.
fn check_saved_digest(s: &mut crate::story::Story, digest: u64) -> std::result::Result<(), String> {
    if cfg!(debug_assertions) {
        let (now, _) = super::record::encode(s)?;
        debug_assert_eq!(now, digest, "story {} changed after its Redis save", s.id);
    }
    Ok(())
}

/// Appends a story frame: the id's length, the id, the record.
fn push_story_frame(out: &mut Vec<u8>, id: &str, record: &[u8]) {
    // Ids are short story ids; a longer one would not load back, so it never fits.
    let id = &id.as_bytes()[..id.len().min(usize::from(u16::MAX))];
    push_frame(out, b'S', &[&(id.len() as u16).to_le_bytes(), id, record]);
}

/// The save after a Redis save by the file's digest list (see [`digests`]): the stories
/// whose saved digest the list gives are held, the others are encoded and appended with a
/// header and an end mark, without reading the file. `false` when the list is missing or
/// does not describe the file as it is, or when the file is due to be written whole: the
/// caller then saves by reading the file.
fn append_by_digests(
    path: &Path,
    file: &mut std::fs::File,
    state: &mut StoryState,
) -> Result<bool> {
    let io = |e: std::io::Error| Error::io(path, e);
    let encode_err = |e: String| Error::io(path, std::io::Error::other(e));
    let Some(list) = digests::read(path) else {
        return Ok(false);
    };
    let meta = file.metadata().map_err(io)?;
    if digests::identity(&meta) != list.file {
        return Ok(false);
    }
    let Ok(end) = usize::try_from(list.file.2) else {
        return Ok(false);
    };
    let StoryState {
        stories, stored, ..
    } = &mut *state;
    let mut listed = std::collections::HashMap::with_capacity(stories.len());
    let mut fresh: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut whole_len = LOG_MAGIC.len();
    for (i, s) in stories.iter_mut().enumerate() {
        let saved = stored.get(&s.id).copied().filter(|d| *d != 0);
        let len = match (saved, list.records.get(&s.id)) {
            (Some(d), Some(&(held, len))) if d == held => {
                check_saved_digest(s, d).map_err(encode_err)?;
                listed.insert(s.id.clone(), (d, len));
                len as usize
            }
            _ => {
                let (digest, record) = super::record::encode(s).map_err(encode_err)?;
                listed.insert(s.id.clone(), (digest, record.len() as u32));
                let len = record.len();
                fresh.push((i, record));
                len
            }
        };
        whole_len += FRAME_HEAD + 2 + s.id.len() + len;
    }
    let header = encode_header(state, false).map_err(encode_err)?;
    whole_len += FRAME_HEAD + header.len() + END_FRAME;
    let mut out = Vec::new();
    for (i, record) in &fresh {
        push_story_frame(&mut out, &state.stories[*i].id, record);
    }
    push_frame(&mut out, b'H', &[&header]);
    let total = (end + out.len() + END_FRAME) as u64;
    push_frame(&mut out, b'E', &[&total.to_le_bytes()]);
    if end + out.len() > 3 * whole_len {
        return Ok(false);
    }
    append(file, end, &out).map_err(io)?;
    let (dev, ino, _) = list.file;
    digests::write(
        path,
        &digests::Digests {
            file: (dev, ino, total),
            records: listed,
        },
    );
    tracing::debug!(file = %path.display(), changed = fresh.len(), bytes = out.len(), "State appended (by its digest list).");
    Ok(true)
}

/// Writes the whole log (the magic, then every frame `frames` gives) atomically.
fn write_whole_log(path: &Path, frames: &dyn Fn(usize, bool) -> Vec<u8>) -> Result<()> {
    let mut whole = LOG_MAGIC.to_vec();
    whole.extend_from_slice(&frames(LOG_MAGIC.len(), true));
    write_whole(path, &whole)?;
    tracing::debug!(file = %path.display(), bytes = whole.len(), "State written whole.");
    Ok(())
}

/// Opens (creating) the file at `path` and takes an exclusive lock on it, retrying when a
/// save that held the lock replaced the file meanwhile (so the lock is on the current file).
fn lock_current(path: &Path) -> std::io::Result<std::fs::File> {
    loop {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        file.lock()?;
        let same = {
            use std::os::unix::fs::MetadataExt;
            let (a, b) = (file.metadata()?, std::fs::metadata(path)?);
            (a.dev(), a.ino()) == (b.dev(), b.ino())
        };
        if same {
            return Ok(file);
        }
    }
}

/// Writes `bytes` as the file at `path` atomically: temp file, fsync, rename.
fn write_whole(path: &Path, bytes: &[u8]) -> Result<()> {
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
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
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

    fn story(id: &str, seq: u64, size: usize) -> crate::story::Story {
        let ids: Vec<String> = (0..size).map(|i| format!("{id}-a{i}")).collect();
        serde_json::from_value(serde_json::json!({
            "id": id, "seq": seq, "label": format!("story {id}"), "top_terms": [], "size": size,
            "article_ids": ids, "url_keys": (0..size as u64).map(|i| seq * 1000 + i).collect::<Vec<_>>(),
            "first_seen": 100, "last_seen": 200, "terms": [],
            "centroid_sum": crate::store::codec::encode_f32s(&[seq as f32, 1.0, 0.5, -0.25]),
            "rep": {"id": format!("{id}-a0"), "title": "t",
                    "vector": crate::store::codec::encode_f32s(&[0.5, 0.5, 0.5, 0.5])},
            "times": vec![150; size],
        }))
        .unwrap()
    }

    fn state(n: usize) -> StoryState {
        let mut s = StoryState::new("fp", 4);
        s.clock = 200;
        s.stories = (0..n)
            .map(|i| story(&format!("s{i}"), i as u64, 3))
            .collect();
        s.rebuild().unwrap();
        s
    }

    fn same(a: &StoryState, b: &StoryState) {
        assert_eq!(
            serde_json::to_value(a).unwrap(),
            serde_json::to_value(b).unwrap()
        );
    }

    /// After a Redis save every story's digest is known: the mirror's save encodes only the
    /// stories whose record the file does not hold with that digest, including a story
    /// another process wrote differently meanwhile, and the file then loads as the state.
    #[test]
    fn a_save_after_redis_writes_what_the_file_lacks_and_loads_back_equal() {
        let digests = |s: &mut StoryState| -> std::collections::HashMap<String, u64> {
            s.stories
                .iter_mut()
                .map(|st| {
                    let d = crate::store::record::encode(st).unwrap().0;
                    (st.id.clone(), d)
                })
                .collect()
        };
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mirror");
        let mut s = state(4);
        save(&p, &mut s).unwrap();
        // Another writer's version of s2 lands in the file.
        let mut other = s.clone();
        other.stories[2].label = "someone else's".into();
        save(&p, &mut other).unwrap();
        // This run changed s1; its Redis save left every digest in `stored`.
        s.stories[1].label = "changed".into();
        s.stored = digests(&mut s);
        let before = std::fs::metadata(&p).unwrap().len();
        save_after_redis(&p, &mut s).unwrap();
        assert_eq!(s.stored.len(), 4, "the digests are kept");
        let grown = std::fs::metadata(&p).unwrap().len() - before;
        let record = |i: usize, s: &mut StoryState| {
            crate::store::record::encode(&mut s.stories[i])
                .unwrap()
                .1
                .len() as u64
        };
        assert!(
            grown < record(1, &mut s) + record(2, &mut s) + 4096,
            "only s1 and s2 appended: {grown} bytes"
        );
        let back = load(&p, "fp", 4).unwrap();
        same(&back, &s);
    }

    /// Saves after Redis saves by the digest list, interleaved with what must send a save
    /// back to reading the file (another writer's plain save, a lost or damaged list, a
    /// whole rewrite): the file always loads as the state just saved, and a save by the list
    /// appends only the stories that changed.
    #[test]
    fn saves_by_the_digest_list_load_back_equal_whatever_happened_to_the_list() {
        let refresh = |s: &mut StoryState| {
            s.stored = s
                .stories
                .iter_mut()
                .map(|st| (st.id.clone(), crate::store::record::encode(st).unwrap().0))
                .collect();
        };
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mirror");
        let list = digests::path_of(&p);
        let mut s = state(6);
        refresh(&mut s);
        save_after_redis(&p, &mut s).unwrap();
        assert!(
            digests::read(&p).is_some(),
            "the first save writes the list"
        );
        same(&load(&p, "fp", 4).unwrap(), &s);
        let mut by_lists = 0;
        for round in 0..12 {
            let k = round % 6;
            s.stories[k].label = format!("round {round}");
            match round % 4 {
                // Another writer's plain save of a different s5: the list no longer fits.
                1 => {
                    let mut other = s.clone();
                    other.stories[5].label = format!("other {round}");
                    save(&p, &mut other).unwrap();
                }
                2 => std::fs::remove_file(&list).unwrap(),
                3 => {
                    let mut b = std::fs::read(&list).unwrap();
                    let at = b.len() / 2;
                    b[at] ^= 1;
                    std::fs::write(&list, b).unwrap();
                }
                _ => {}
            }
            refresh(&mut s);
            let before = std::fs::metadata(&p).unwrap().len();
            let by_list = digests::read(&p)
                .is_some_and(|l| l.file == digests::identity(&std::fs::metadata(&p).unwrap()));
            save_after_redis(&p, &mut s).unwrap();
            same(&load(&p, "fp", 4).unwrap(), &s);
            let list_now = digests::read(&p).expect("every save after Redis leaves a list");
            assert_eq!(
                list_now.file,
                digests::identity(&std::fs::metadata(&p).unwrap()),
                "round {round}"
            );
            if by_list {
                by_lists += 1;
                let one = crate::store::record::encode(&mut s.stories[k])
                    .unwrap()
                    .1
                    .len() as u64;
                let grown = std::fs::metadata(&p).unwrap().len() - before;
                assert!(
                    grown < one + 1024,
                    "round {round}: {grown} bytes for one story"
                );
            }
        }
        assert!(by_lists >= 3, "saves by the list: {by_lists}");
    }

    #[test]
    fn active_stories_keep_their_event_memory_in_their_records() {
        let memory = |revision| crate::story::Published {
            revision,
            sources: 1,
            ..Default::default()
        };
        // A state from before: the event memory of every story in the header's map, a
        // retired story's among it.
        let mut s = state(3);
        s.published.insert("s1".into(), memory(3));
        s.published.insert("gone".into(), memory(5));
        s.rebuild().unwrap();
        assert_eq!(s.stories[1].published, Some(memory(3)));
        assert_eq!(s.published.keys().collect::<Vec<_>>(), ["gone"]);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state");
        save(&p, &mut s).unwrap();
        let back = load(&p, "fp", 4).unwrap();
        same(&back, &s);
        assert_eq!(back.stories[1].published, Some(memory(3)));
        // Retiring hands it back to the map, where closed and forgotten stories are found.
        s.retire(10_000, 10_000, 100, 1_000_000);
        assert!(s.stories.is_empty());
        assert_eq!(s.published.get("s1"), Some(&memory(3)));
        assert_eq!(s.published.get("gone"), Some(&memory(5)));
    }

    #[test]
    fn a_save_appends_what_changed_and_loads_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state");
        let mut s = state(40);
        save(&p, &mut s).unwrap();
        let first = std::fs::metadata(&p).unwrap().len();
        same(&load(&p, "fp", 4).unwrap(), &s);
        // One story changes: the file grows by about one record and a header.
        s.stories[7].label = "changed".into();
        s.stories[7].size += 1;
        s.clock = 300;
        save(&p, &mut s).unwrap();
        let second = std::fs::metadata(&p).unwrap().len();
        assert!(second - first < first / 4, "{first} then {second}");
        let back = load(&p, "fp", 4).unwrap();
        same(&back, &s);
        assert_eq!(back.stories[7].label, "changed");
        // A story gone and one new.
        s.stories.remove(3);
        s.stories.push(story("s99", 99, 2));
        s.rebuild().unwrap();
        save(&p, &mut s).unwrap();
        same(&load(&p, "fp", 4).unwrap(), &s);
        // Saving the same state again writes only a header.
        let before = std::fs::metadata(&p).unwrap().len();
        save(&p, &mut s).unwrap();
        let header = std::fs::metadata(&p).unwrap().len() - before;
        assert!(header < 2_000, "{header} bytes");
    }

    #[test]
    fn a_save_killed_midway_leaves_the_previous_state_and_is_cut_off_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state");
        let mut s = state(10);
        save(&p, &mut s).unwrap();
        let committed = std::fs::read(&p).unwrap();
        let before = s.clone();
        s.stories[2].label = "after".into();
        save(&p, &mut s).unwrap();
        let full = std::fs::read(&p).unwrap();
        // Every cut inside the second save's frames loads the first state; once its header
        // is whole (only the end mark cut), the second.
        for cut in (committed.len()..full.len())
            .step_by(37)
            .chain([full.len() - 3])
        {
            std::fs::write(&p, &full[..cut]).unwrap();
            let want = if cut > full.len() - END_FRAME {
                &s
            } else {
                &before
            };
            same(&load(&p, "fp", 4).unwrap(), want);
        }
        // The next save cuts the torn end off and appends after the last commit.
        std::fs::write(&p, &full[..full.len() - 5]).unwrap();
        s.stories[4].label = "next".into();
        save(&p, &mut s).unwrap();
        same(&load(&p, "fp", 4).unwrap(), &s);
        assert!(std::fs::metadata(&p).unwrap().len() < full.len() as u64 * 2);
    }

    #[test]
    fn a_file_grown_past_three_times_its_state_is_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state");
        let mut s = state(5);
        save(&p, &mut s).unwrap();
        let whole = std::fs::metadata(&p).unwrap().len();
        let mut largest = whole;
        for i in 0..40 {
            for st in &mut s.stories {
                st.label = format!("rev {i}");
            }
            save(&p, &mut s).unwrap();
            largest = largest.max(std::fs::metadata(&p).unwrap().len());
        }
        assert!(largest <= 3 * whole + 2_000, "{largest} vs {whole}");
        same(&load(&p, "fp", 4).unwrap(), &s);
    }

    #[test]
    fn a_state_file_of_the_json_format_loads_and_is_converted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state");
        let mut s = state(6);
        std::fs::write(&p, encode(&s).unwrap()).unwrap();
        let back = load(&p, "fp", 4).unwrap();
        same(&back, &s);
        save(&p, &mut s).unwrap();
        assert!(std::fs::read(&p).unwrap().starts_with(LOG_MAGIC));
        same(&load(&p, "fp", 4).unwrap(), &s);
    }

    #[test]
    fn a_damaged_or_missing_record_names_the_story() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state");
        let mut s = state(3);
        save(&p, &mut s).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        // Drop the first story's frame: the header lists a record the file lacks.
        let len = u32::from_le_bytes(bytes[9..13].try_into().unwrap()) as usize;
        let mut missing = LOG_MAGIC.to_vec();
        missing.extend_from_slice(&bytes[LOG_MAGIC.len() + FRAME_HEAD + len..]);
        std::fs::write(&p, &missing).unwrap();
        let e = load(&p, "fp", 4).unwrap_err().to_string();
        assert!(e.contains("\"s0\"") && e.contains("missing"), "{e}");
        // A bit flipped in a complete file is damage, not a save killed midway.
        for at in [
            LOG_MAGIC.len() + 40,
            bytes.len() / 2,
            bytes.len() - END_FRAME - 30,
        ] {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x10;
            std::fs::write(&p, &flipped).unwrap();
            let e = load(&p, "fp", 4).unwrap_err().to_string();
            assert!(e.contains("checksum mismatch"), "{at}: {e}");
        }
        // A file with no complete save is an error, not an empty state.
        std::fs::write(&p, &bytes[..LOG_MAGIC.len() + 20]).unwrap();
        assert!(
            load(&p, "fp", 4)
                .unwrap_err()
                .to_string()
                .contains("no complete save")
        );
    }
}
