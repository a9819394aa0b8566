//! The digest list beside the host's state mirror (`M.digests`): per story, the digest and
//! length of the record the file holds, and the file's device, inode and length when the
//! list was written. A save right after a Redis save knows every story's digest
//! ([`crate::story::StoryState::stored`]), so with this list it appends what changed
//! without reading the file, which a timer tick would otherwise read whole (tens of MB on a
//! busy window) to learn what it holds.
//!
//! The list is written after the file's append is synced, by temp file and rename; it is
//! trusted only when the file's device, inode and length are still those it names, so a
//! save that did not update it (a plain `save`, an older binary, a whole rewrite) or a
//! crash before it was written sends the next save back to reading the file. A list that is
//! missing, cut short or fails its checksum is ignored the same way.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::xxh3_64;

const MAGIC: &[u8] = b"PNSDIG1\n";

/// What a state file held when its digest list was written.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Digests {
    /// The file's device, inode and length.
    pub file: (u64, u64, u64),
    /// Per story id: its record's digest and length.
    pub records: HashMap<String, (u64, u32)>,
}

/// The list's path beside the state file `state`.
pub(super) fn path_of(state: &Path) -> PathBuf {
    let mut p = state.as_os_str().to_owned();
    p.push(".digests");
    PathBuf::from(p)
}

/// A file's device, inode and length.
pub(super) fn identity(meta: &std::fs::Metadata) -> (u64, u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino(), meta.len())
}

/// The digest a record carries (its bytes 4..12, see `store::record`).
pub(super) fn of_record(record: &[u8]) -> u64 {
    record
        .get(4..12)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (a, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(a)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
}

impl Digests {
    fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        for x in [self.file.0, self.file.1, self.file.2] {
            out.extend_from_slice(&x.to_le_bytes());
        }
        out.extend_from_slice(&(self.records.len() as u32).to_le_bytes());
        let mut ids: Vec<(&String, &(u64, u32))> = self.records.iter().collect();
        ids.sort_unstable();
        for (id, (digest, len)) in ids {
            let id = &id.as_bytes()[..id.len().min(usize::from(u16::MAX))];
            out.extend_from_slice(&(id.len() as u16).to_le_bytes());
            out.extend_from_slice(id);
            out.extend_from_slice(&digest.to_le_bytes());
            out.extend_from_slice(&len.to_le_bytes());
        }
        let sum = xxh3_64(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Digests> {
        let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(8)?)?;
        if xxh3_64(body).to_le_bytes()[..] != *sum || !body.starts_with(MAGIC) {
            return None;
        }
        let mut r = Reader(&body[MAGIC.len()..]);
        let file = (r.u64()?, r.u64()?, r.u64()?);
        let n = r.u32()? as usize;
        let mut records = HashMap::with_capacity(n.min(1 << 20));
        for _ in 0..n {
            let len = u16::from_le_bytes(r.take(2)?.try_into().ok()?);
            let id = std::str::from_utf8(r.take(usize::from(len))?).ok()?;
            records.insert(id.to_string(), (r.u64()?, r.u32()?));
        }
        r.0.is_empty().then_some(Digests { file, records })
    }
}

/// The list beside `state`, when there is a whole one.
pub(super) fn read(state: &Path) -> Option<Digests> {
    Digests::decode(&std::fs::read(path_of(state)).ok()?)
}

/// Writes the list beside `state` (temp file and rename; no sync: a list lost in a crash
/// only sends the next save back to reading the file). Best effort: on failure the old list
/// is removed, and a list that cannot be removed names another length and is not trusted.
pub(super) fn write(state: &Path, list: &Digests) {
    let p = path_of(state);
    let mut tmp = p.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let written = std::fs::write(&tmp, list.encode()).and_then(|()| std::fs::rename(&tmp, &p));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        let _ = std::fs::remove_file(&p);
        tracing::debug!(error = %e, list = %p.display(), "State digest list not written.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_round_trip_and_damaged_ones_are_ignored() {
        let list = Digests {
            file: (1, 2, 3),
            records: [("s1".to_string(), (9, 100)), ("s2".to_string(), (7, 5))].into(),
        };
        let bytes = list.encode();
        assert_eq!(Digests::decode(&bytes), Some(list));
        for cut in 0..bytes.len() {
            assert_eq!(Digests::decode(&bytes[..cut]), None, "cut at {cut}");
        }
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert_eq!(Digests::decode(&bad), None, "flip at {i}");
        }
    }
}
