//! Load and save of the story state, with the consumer records (`perps:story:<id>`,
//! `perps:stories`) and the last run, in one script fenced by the lock token.

use std::collections::{HashMap, HashSet};

use super::{
    LAST_RUN_KEY, Pool, STATE_CHANGES_KEY, STATE_KEY, STATE_LOCK_KEY, STATE_STORIES_KEY,
    STATE_TERMS_KEY, STATE_TERMS_LOG_KEY, STATE_VERSION_KEY, STORIES_KEY, StateLock,
};
use crate::error::{Error, Result};
use crate::story::DfMap;

/// Loads the story state and its version (a new empty state, version 0, when none), in one
/// round trip: the header (`perps:state`), the version, the active stories' records
/// (`perps:state:stories`) and the document frequencies (`perps:state:terms`, plus the
/// changes in `perps:state:terms:log`). A header of an earlier layout (one JSON value
/// holding every story, or holding the document frequencies) is read as it is; the next
/// save converts it.
///
/// # Errors
/// [`Error::Redis`] when unreachable; [`Error::State`] when the stored state is unusable or
/// made by another embedder, or a story record is missing or damaged (naming it).
pub fn load_state(
    pool: &Pool,
    fingerprint: &str,
    dim: usize,
) -> Result<(crate::story::StoryState, u64)> {
    type Reply = (
        Option<Vec<u8>>,
        Option<u64>,
        Vec<(String, Vec<u8>)>,
        Option<Vec<u8>>,
        Vec<Vec<u8>>,
    );
    let (raw, version, fields, terms, terms_log): Reply = pool.run("GET state", |c| {
        redis::pipe()
            .cmd("GET")
            .arg(STATE_KEY)
            .cmd("GET")
            .arg(STATE_VERSION_KEY)
            .cmd("HGETALL")
            .arg(STATE_STORIES_KEY)
            .cmd("GET")
            .arg(STATE_TERMS_KEY)
            .cmd("LRANGE")
            .arg(STATE_TERMS_LOG_KEY)
            .arg(0)
            .arg(-1)
            .query(c)
    })?;
    let version = version.unwrap_or(0);
    let state = assemble(
        pool,
        fingerprint,
        dim,
        raw,
        fields.into_iter().collect(),
        terms,
        &terms_log,
        None,
    )?;
    Ok((state, version))
}

/// Brings `kept`, the state as this process last saved or loaded it at version `from`, up
/// to version `to` (what Redis holds now, under this process's lock) by reading only what
/// changed since: the header, the document frequencies, and the records of the stories the
/// change log (`perps:state:changes`) names for versions `from + 1 ..= to`. None when the
/// log does not reach back that far (trimmed, or a full save since): load everything then.
/// Debug builds (every test run) check the result against a full load.
///
/// # Errors
/// As [`load_state`].
pub fn catch_up(
    pool: &Pool,
    fingerprint: &str,
    dim: usize,
    kept: crate::story::StoryState,
    from: u64,
    to: u64,
) -> Result<Option<crate::story::StoryState>> {
    let entries: Vec<String> = pool.run("LRANGE state changes", |c| {
        redis::cmd("LRANGE")
            .arg(STATE_CHANGES_KEY)
            .arg(0)
            .arg(-1)
            .query(c)
    })?;
    let Some(changed) = changed_since(&entries, from, to) else {
        return Ok(None);
    };
    type Reply = (
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Vec<Vec<u8>>,
        Vec<Option<Vec<u8>>>,
    );
    let mut pipe = redis::pipe();
    pipe.cmd("GET")
        .arg(STATE_KEY)
        .cmd("GET")
        .arg(STATE_TERMS_KEY)
        .cmd("LRANGE")
        .arg(STATE_TERMS_LOG_KEY)
        .arg(0)
        .arg(-1);
    if changed.is_empty() {
        // HMGET needs a field; ask for none that exists.
        pipe.cmd("HMGET").arg(STATE_STORIES_KEY).arg("");
    } else {
        pipe.cmd("HMGET").arg(STATE_STORIES_KEY).arg(&changed);
    }
    let (raw, terms, terms_log, values): Reply =
        pool.run("GET state changes", |c| pipe.query(c))?;
    let records: HashMap<String, Vec<u8>> = changed
        .iter()
        .zip(values)
        .filter_map(|(id, v)| Some((id.clone(), v?)))
        .collect();
    let read = records.len();
    let state = assemble(
        pool,
        fingerprint,
        dim,
        raw,
        records,
        terms,
        &terms_log,
        Some(kept),
    )?;
    tracing::debug!(
        from,
        to,
        read,
        stories = state.stories.len(),
        "Caught up with the stored state from its change log."
    );
    if cfg!(debug_assertions) {
        let (full, _) = load_state(pool, fingerprint, dim)?;
        debug_assert_eq!(
            serde_json::to_value(&full).ok(),
            serde_json::to_value(&state).ok(),
            "a state caught up from the change log differs from the stored one"
        );
        debug_assert_eq!(full.stored, state.stored);
    }
    Ok(Some(state))
}

/// The ids of the stories changed in versions `from + 1 ..= to`, from change-log entries
/// (`<version>\t<changed ids>\t<removed ids>`, ids comma-separated, or `<version>\t*` for
/// a save that wrote everything); None unless every one of those versions is there and
/// none wrote everything.
fn changed_since(entries: &[String], from: u64, to: u64) -> Option<Vec<String>> {
    if to < from {
        return None;
    }
    let mut seen = 0;
    let mut ids = std::collections::BTreeSet::new();
    for e in entries {
        let mut parts = e.split('\t');
        let v: u64 = parts.next()?.parse().ok()?;
        if v <= from || v > to {
            continue;
        }
        seen += 1;
        let changed = parts.next()?;
        if changed == "*" {
            return None;
        }
        ids.extend(
            changed
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
    }
    (seen == to - from).then(|| ids.into_iter().collect())
}

/// The state from a header, the records read and the document frequencies; stories the
/// header lists that were not read come from `kept` (with their stored digests).
#[allow(clippy::too_many_arguments)]
fn assemble(
    pool: &Pool,
    fingerprint: &str,
    dim: usize,
    raw: Option<Vec<u8>>,
    mut records: HashMap<String, Vec<u8>>,
    terms: Option<Vec<u8>>,
    terms_log: &[Vec<u8>],
    kept: Option<crate::story::StoryState>,
) -> Result<crate::story::StoryState> {
    let Some(raw) = raw else {
        let mut state = crate::story::StoryState::new(fingerprint, dim);
        // Records without a header (not written by this engine): the first save replaces them.
        state.stored = records.into_keys().map(|id| (id, 0)).collect();
        return Ok(state);
    };
    let (mut kept_stories, kept_stored) = match kept {
        Some(k) => (
            k.stories.into_iter().map(|s| (s.id.clone(), s)).collect(),
            k.stored,
        ),
        None => (HashMap::new(), HashMap::new()),
    };
    let path = std::path::PathBuf::from(format!("redis://{}/{STATE_KEY}", pool.name));
    let mut state = crate::store::file::decode(&raw, &path, fingerprint, dim)?;
    if let Some(base) = terms {
        let key = std::path::PathBuf::from(format!("redis://{}/{STATE_TERMS_KEY}", pool.name));
        let bad = |message: String| Error::State {
            path: key.clone(),
            message,
        };
        let mut df = DfMap::default();
        apply_terms(&mut df, &base).map_err(|e| bad(format!("base: {e}")))?;
        for (i, change) in terms_log.iter().enumerate() {
            apply_terms(&mut df, change)
                .map_err(|e| bad(format!("change {i} of {STATE_TERMS_LOG_KEY}: {e}")))?;
        }
        state.terms.df = df.clone();
        state.stored_df = Some(df);
        state.stored_df_log = terms_log.iter().map(Vec::len).sum();
    } else if state.terms_apart {
        return Err(Error::State {
            path: std::path::PathBuf::from(format!("redis://{}/{STATE_TERMS_KEY}", pool.name)),
            message: "missing: the header says the document frequencies are stored here".into(),
        });
    }
    state.terms_apart = false;
    match state.story_order.take() {
        Some(order) => {
            let key =
                std::path::PathBuf::from(format!("redis://{}/{STATE_STORIES_KEY}", pool.name));
            let bad = |id: &str, what: String| Error::State {
                path: key.clone(),
                message: format!("story record {id:?}: {what}"),
            };
            let mut stories = Vec::with_capacity(order.len());
            let mut json_records = 0;
            for id in order {
                let Some(value) = records.remove(&id) else {
                    let story = kept_stories
                        .remove(&id)
                        .ok_or_else(|| bad(&id, "missing (the header lists it)".into()))?;
                    let digest = kept_stored.get(&id).copied().unwrap_or(0);
                    state.stored.insert(id, digest);
                    stories.push(story);
                    continue;
                };
                let (digest, story) = decode_story(&value).map_err(|e| bad(&id, e))?;
                if story.id != id {
                    return Err(bad(&id, format!("holds story {:?}", story.id)));
                }
                json_records += usize::from(digest == 0);
                state.stored.insert(id, digest);
                stories.push(story);
            }
            if json_records > 0 {
                tracing::info!(
                    records = json_records,
                    "Read story records of the JSON codec; this run's save rewrites them in the binary one."
                );
            }
            state.stories = stories;
            state.rebuild().map_err(|message| Error::State {
                path: key.clone(),
                message,
            })?;
        }
        None if !state.stories.is_empty() => {
            tracing::info!(
                stories = state.stories.len(),
                "Read a story state of the first layout (one JSON value); this run's save stores each story as its own record."
            );
        }
        None => {}
    }
    // Records the header does not list (left by an interrupted conversion): removed by the
    // next save.
    for id in records.into_keys() {
        state.stored.insert(id, 0);
    }
    Ok(state)
}

/// Magic and codec version of a document-frequency value (base or change).
const TERMS_MAGIC: [u8; 4] = *b"PNT\x01";

/// A document-frequency value: magic, the xxh3-64 of the rest (LE), then (term id, count)
/// pairs as little-endian u32s, by id. A base holds every term; a change holds the counts
/// that changed, as their new values (so applying changes in order gives the counts).
fn encode_terms(pairs: &mut [(u32, u32)]) -> Vec<u8> {
    pairs.sort_unstable();
    let mut out = Vec::with_capacity(12 + 8 * pairs.len());
    out.extend_from_slice(&TERMS_MAGIC);
    out.extend_from_slice(&[0; 8]);
    for (id, n) in pairs.iter() {
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&n.to_le_bytes());
    }
    let digest = xxhash_rust::xxh3::xxh3_64(&out[12..]);
    out[4..12].copy_from_slice(&digest.to_le_bytes());
    out
}

/// Sets the counts a value of [`encode_terms`] holds.
fn apply_terms(df: &mut DfMap, value: &[u8]) -> std::result::Result<(), String> {
    if value.len() < 12 || value[..4] != TERMS_MAGIC {
        return Err("not a document-frequency value of this codec".into());
    }
    let body = &value[12..];
    let mut want = [0; 8];
    want.copy_from_slice(&value[4..12]);
    if xxhash_rust::xxh3::xxh3_64(body) != u64::from_le_bytes(want) || !body.len().is_multiple_of(8)
    {
        return Err("checksum mismatch".into());
    }
    df.reserve(body.len() / 8);
    for p in body.chunks_exact(8) {
        let id = u32::from_le_bytes([p[0], p[1], p[2], p[3]]);
        let n = u32::from_le_bytes([p[4], p[5], p[6], p[7]]);
        df.insert(id, n);
    }
    Ok(())
}

/// What a save writes of the document frequencies: the changed counts (appended to the
/// log), or all of them as a new base (the log cleared) when Redis holds none apart, the save
/// is a full one, or the log would outgrow the base.
fn terms_write(state: &crate::story::StoryState, full: bool) -> (&'static str, Vec<u8>, usize) {
    let df = &state.terms.df;
    let base = || {
        let mut all: Vec<(u32, u32)> = df.iter().map(|(k, v)| (*k, *v)).collect();
        ("base", encode_terms(&mut all), 0)
    };
    let Some(stored) = state.stored_df.as_ref().filter(|_| !full) else {
        return base();
    };
    let mut changed: Vec<(u32, u32)> = df
        .iter()
        .filter(|(k, v)| stored.get(k) != Some(v))
        .map(|(k, v)| (*k, *v))
        .collect();
    if changed.is_empty() && stored.len() == df.len() {
        return ("none", Vec::new(), state.stored_df_log);
    }
    // A count never drops, so every stored term is still there: the changes suffice.
    if stored.len() > df.len() || state.stored_df_log + 8 * changed.len() > 8 * df.len() {
        return base();
    }
    let value = encode_terms(&mut changed);
    let log = state.stored_df_log + value.len();
    ("change", value, log)
}

/// A story record of the first per-story layout: the 16 hex digits of the xxh3 of its JSON,
/// then the JSON. Read, never written: its digest is given as 0, so the next save rewrites
/// the story in the binary codec ([`crate::store::record`]).
fn decode_json_story(value: &[u8]) -> std::result::Result<crate::story::Story, String> {
    let (head, json) = value.split_at_checked(16).ok_or("truncated: no checksum")?;
    let want = std::str::from_utf8(head)
        .ok()
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .ok_or("damaged checksum")?;
    let got = xxhash_rust::xxh3::xxh3_64(json);
    if got != want {
        return Err(format!(
            "checksum mismatch ({got:016x}, stored {want:016x})"
        ));
    }
    serde_json::from_slice(json).map_err(|e| format!("not a story: {e}"))
}

/// A story record in either codec; the digest is 0 for the JSON one (to be rewritten).
fn decode_story(value: &[u8]) -> std::result::Result<(u64, crate::story::Story), String> {
    if crate::store::record::is_binary(value) {
        crate::store::record::decode(value)
    } else {
        decode_json_story(value).map(|s| (0, s))
    }
}

/// The story state's version (0 when none was saved yet).
///
/// # Errors
/// [`Error::Redis`] when unreachable.
pub fn state_version(pool: &Pool) -> Result<u64> {
    let v: Option<u64> = pool.run("GET state version", |c| {
        redis::cmd("GET").arg(STATE_VERSION_KEY).query(c)
    })?;
    Ok(v.unwrap_or(0))
}

/// Entries of the change log kept: a process at most this many saves behind catches up by
/// reading only what changed; further behind, it loads everything.
pub const CHANGES_KEPT: usize = 256;

/// [`SAVE_STATE`] with [`CHANGES_KEPT`] in it, hashed once.
static SAVE_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(&SAVE_STATE.replace("CHANGES_KEPT", &CHANGES_KEPT.to_string()))
});

const SAVE_STATE: &str = r"
-- KEYS: lock, state header, version, stories zset, last run, state stories hash, terms base,
-- terms log
-- ARGV: token, header, last-run json, full (1: replace the hash), n records, n changed,
-- n removed, terms mode (base / change / none), terms value, change-log entry (after the
-- version and a tab), then n x (id, json, score), n changed x (id, record), n removed ids,
-- then ids to forget
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('SET', KEYS[2], ARGV[2])
if ARGV[8] == 'base' then
  redis.call('SET', KEYS[7], ARGV[9])
  redis.call('DEL', KEYS[8])
elseif ARGV[8] == 'change' then
  redis.call('RPUSH', KEYS[8], ARGV[9])
end
local v = redis.call('INCR', KEYS[3])
redis.call('RPUSH', KEYS[9], v .. '\t' .. ARGV[10])
redis.call('LTRIM', KEYS[9], -CHANGES_KEPT, -1)
if ARGV[3] ~= '' then redis.call('SET', KEYS[5], ARGV[3]) end
if ARGV[4] == '1' then redis.call('DEL', KEYS[6]) end
local n, c, r = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local i = 11
for _ = 1, n do
  redis.call('SET', 'perps:story:' .. ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[4], ARGV[i + 2], ARGV[i])
  i = i + 3
end
for _ = 1, c do
  redis.call('HSET', KEYS[6], ARGV[i], ARGV[i + 1])
  i = i + 2
end
for _ = 1, r do
  redis.call('HDEL', KEYS[6], ARGV[i])
  i = i + 1
end
while i <= #ARGV do
  redis.call('DEL', 'perps:story:' .. ARGV[i])
  redis.call('ZREM', KEYS[4], ARGV[i])
  i = i + 1
end
return v";

/// Writes the state, the touched stories' records and the run summary in one atomic script,
/// only if `lock` is still held. Returns the new state version. An empty `last_run` leaves
/// the last run's summary as it is (a relabeling is not a run).
///
/// The state goes out as a header (everything but the active stories) and one record per
/// active story in `perps:state:stories`, of which only those that differ from what Redis
/// holds (`StoryState::stored`) are written, and those no longer active removed: a tick
/// that touches 20 stories writes 20 records, not the window. With `touched`, only those
/// stories (and any Redis does not hold yet) are encoded: the others are taken as stored
/// (checked in debug builds). On success `stored` is brought up to date.
///
/// # Errors
/// [`Error::Locked`] when the lock was lost; [`Error::Redis`] when unreachable.
pub fn save_state(
    pool: &Pool,
    lock: &StateLock,
    state: &mut crate::story::StoryState,
    records: &[(String, String, i64)],
    forgotten: &[String],
    last_run: &str,
    touched: Option<&HashSet<&str>>,
) -> Result<u64> {
    let encode_err = |e: String| Error::Redis {
        server: pool.name.clone(),
        message: format!("encode state: {e}"),
    };
    let full = state.stored.is_empty();
    let mut digests = HashMap::with_capacity(state.stories.len());
    let mut changed: Vec<(String, Vec<u8>)> = Vec::new();
    for s in &mut state.stories {
        let stored = state.stored.get(&s.id).copied().filter(|d| *d != 0);
        let untouched = touched.is_some_and(|t| !t.contains(s.id.as_str()));
        if let (true, Some(d)) = (untouched, stored) {
            // Not touched by the caller: Redis holds it as it is. Debug builds (every test
            // run) check that, so a path that changes a story without saying so is caught.
            if cfg!(debug_assertions) {
                let (digest, _) = crate::store::record::encode(s).map_err(encode_err)?;
                debug_assert_eq!(
                    digest, d,
                    "story {} changed, but the save was told it was untouched",
                    s.id
                );
            }
            digests.insert(s.id.clone(), d);
            continue;
        }
        let (digest, value) = crate::store::record::encode(s).map_err(encode_err)?;
        if stored != Some(digest) {
            changed.push((s.id.clone(), value));
        }
        digests.insert(s.id.clone(), digest);
    }
    let removed: Vec<String> = if full {
        Vec::new()
    } else {
        state
            .stored
            .keys()
            .filter(|id| !digests.contains_key(*id))
            .cloned()
            .collect()
    };
    let (terms_mode, terms_value, terms_log) = terms_write(state, full);
    // The header: the state without its stories and document frequencies (stored apart).
    let header = crate::store::file::encode_header(state, true).map_err(encode_err)?;
    tracing::debug!(
        stories = state.stories.len(),
        changed = changed.len(),
        removed = removed.len(),
        header_bytes = header.len(),
        terms = terms_mode,
        terms_bytes = terms_value.len(),
        changed_bytes = changed.iter().map(|(_, v)| v.len()).sum::<usize>(),
        "State encoded."
    );
    // The change log's entry: the stories written and removed (`*`: all of them).
    let entry = if full {
        "*".to_string()
    } else {
        let written: Vec<&str> = changed.iter().map(|(id, _)| id.as_str()).collect();
        format!("{}\t{}", written.join(","), removed.join(","))
    };
    let v: i64 = pool.run("save state", |c| {
        let script = &*SAVE_SCRIPT;
        let mut inv = script.prepare_invoke();
        inv.key(STATE_LOCK_KEY)
            .key(STATE_KEY)
            .key(STATE_VERSION_KEY)
            .key(STORIES_KEY)
            .key(LAST_RUN_KEY)
            .key(STATE_STORIES_KEY)
            .key(STATE_TERMS_KEY)
            .key(STATE_TERMS_LOG_KEY)
            .key(STATE_CHANGES_KEY);
        inv.arg(lock.token())
            .arg(&header)
            .arg(last_run)
            .arg(if full { "1" } else { "0" })
            .arg(records.len())
            .arg(changed.len())
            .arg(removed.len())
            .arg(terms_mode)
            .arg(&terms_value)
            .arg(&entry);
        for (id, record, score) in records {
            inv.arg(id).arg(record).arg(*score);
        }
        for (id, value) in &changed {
            inv.arg(id).arg(value);
        }
        for id in &removed {
            inv.arg(id);
        }
        for id in forgotten {
            inv.arg(id);
        }
        inv.invoke(c)
    })?;
    let v = u64::try_from(v)
        .map_err(|_| Error::Locked("the lock expired during the run; state not saved".into()))?;
    state.stored = digests;
    if terms_mode != "none" {
        state.stored_df = Some(state.terms.df.clone());
    }
    state.stored_df_log = terms_log;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_change_log_names_what_changed_only_when_it_reaches_back() {
        let log: Vec<String> = ["3\ts1,s2\t", "4\ts2,s9\ts1", "5\t\t", "6\t*", "7\ts4\t"]
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            changed_since(&log, 2, 5),
            Some(vec!["s1".into(), "s2".into(), "s9".into()])
        );
        assert_eq!(changed_since(&log, 4, 5), Some(vec![]));
        assert_eq!(changed_since(&log, 1, 4), None, "version 2 is trimmed");
        assert_eq!(changed_since(&log, 5, 7), None, "6 wrote everything");
        assert_eq!(changed_since(&log, 6, 7), Some(vec!["s4".into()]));
        assert_eq!(changed_since(&log, 7, 9), None, "8 and 9 are not there");
    }

    #[test]
    fn document_frequencies_go_out_as_changes_until_the_log_outgrows_the_base() {
        let mut state = crate::story::StoryState::new("fp", 4);
        state.terms.df = (0..100).map(|i| (i, 1)).collect();
        // Nothing stored apart yet: a base.
        let (mode, base, log) = terms_write(&state, false);
        assert_eq!((mode, log), ("base", 0));
        let mut df = DfMap::default();
        apply_terms(&mut df, &base).unwrap();
        assert_eq!(df, state.terms.df);
        state.stored_df = Some(df.clone());
        // Unchanged: nothing.
        assert_eq!(terms_write(&state, false).0, "none");
        // Two counts change and one term is new: a change of three pairs.
        state.terms.df.insert(3, 2);
        state.terms.df.insert(50, 7);
        state.terms.df.insert(1000, 1);
        let (mode, change, log) = terms_write(&state, false);
        assert_eq!((mode, change.len(), log), ("change", 12 + 3 * 8, 36));
        apply_terms(&mut df, &change).unwrap();
        assert_eq!(df, state.terms.df, "base then changes give the counts");
        // A full save, or a log as large as the base, writes a base again.
        assert_eq!(terms_write(&state, true).0, "base");
        state.stored_df_log = 8 * 100;
        assert_eq!(terms_write(&state, false).0, "base");
        let mut bad = change.clone();
        bad[14] ^= 1;
        assert!(apply_terms(&mut df, &bad).unwrap_err().contains("checksum"));
    }

    #[test]
    fn a_record_of_the_json_codec_is_read_and_marked_for_rewriting() {
        let (_, binary) = crate::store::record::decode(
            &crate::store::record::encode(
                &mut serde_json::from_value(serde_json::json!({
                    "id": "s1", "seq": 0, "label": "l", "top_terms": [], "size": 1,
                    "article_ids": ["a"], "url_keys": [7], "first_seen": 1, "last_seen": 1,
                    "terms": [], "centroid_sum": "AACAPw==",
                    "rep": {"id": "a", "title": "t", "vector": "AACAPw=="}, "times": [1],
                }))
                .unwrap(),
            )
            .unwrap()
            .1,
        )
        .unwrap();
        let json = serde_json::to_vec(&binary).unwrap();
        let mut old = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&json)).into_bytes();
        old.extend_from_slice(&json);
        let (digest, story) = decode_story(&old).unwrap();
        assert_eq!(digest, 0, "rewritten by the next save");
        assert_eq!(story.id, "s1");
        assert_eq!(story.centroid_sum, [1.0]);
        assert_eq!(story.url_keys, [7]);
        let (digest, again) =
            decode_story(&crate::store::record::encode(&mut story.clone()).unwrap().1).unwrap();
        assert_ne!(digest, 0);
        assert_eq!(
            serde_json::to_value(again).unwrap(),
            serde_json::to_value(story).unwrap()
        );
        old[20] ^= 1;
        assert!(decode_story(&old).unwrap_err().contains("checksum"));
    }
}
