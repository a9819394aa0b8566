//! Load and save of the story state, with the consumer records (`perps:story:<id>`,
//! `perps:stories`) and the last run, in one script fenced by the lock token.

use std::collections::{HashMap, HashSet};

use super::{
    LAST_RUN_KEY, Pool, STATE_KEY, STATE_LOCK_KEY, STATE_STORIES_KEY, STATE_VERSION_KEY,
    STORIES_KEY, StateLock,
};
use crate::error::{Error, Result};

/// Loads the story state and its version (a new empty state, version 0, when none), in one
/// round trip: the header (`perps:state`), the version and the active stories' records
/// (`perps:state:stories`). A header of the first layout (one JSON value holding every
/// story) is read as it is; the next save converts it.
///
/// # Errors
/// [`Error::Redis`] when unreachable; [`Error::State`] when the stored state is unusable or
/// made by another embedder, or a story record is missing or damaged (naming it).
pub fn load_state(
    pool: &Pool,
    fingerprint: &str,
    dim: usize,
) -> Result<(crate::story::StoryState, u64)> {
    type Reply = (Option<Vec<u8>>, Option<u64>, Vec<(String, Vec<u8>)>);
    let (raw, version, fields): Reply = pool.run("GET state", |c| {
        redis::pipe()
            .cmd("GET")
            .arg(STATE_KEY)
            .cmd("GET")
            .arg(STATE_VERSION_KEY)
            .cmd("HGETALL")
            .arg(STATE_STORIES_KEY)
            .query(c)
    })?;
    let version = version.unwrap_or(0);
    let Some(raw) = raw else {
        let mut state = crate::story::StoryState::new(fingerprint, dim);
        // Records without a header (not written by this engine): the first save replaces them.
        state.stored = fields.into_iter().map(|(id, _)| (id, 0)).collect();
        return Ok((state, version));
    };
    let path = std::path::PathBuf::from(format!("redis://{}/{STATE_KEY}", pool.name));
    let mut state = crate::store::file::decode(&raw, &path, fingerprint, dim)?;
    let mut records: HashMap<String, Vec<u8>> = fields.into_iter().collect();
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
                let value = records
                    .remove(&id)
                    .ok_or_else(|| bad(&id, "missing (the header lists it)".into()))?;
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
    Ok((state, version))
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

const SAVE_STATE: &str = r"
-- KEYS: lock, state header, version, stories zset, last run, state stories hash
-- ARGV: token, header, last-run json, full (1: replace the hash), n records, n changed,
-- n removed, then n x (id, json, score), n changed x (id, record), n removed ids, then ids
-- to forget
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('SET', KEYS[2], ARGV[2])
local v = redis.call('INCR', KEYS[3])
if ARGV[3] ~= '' then redis.call('SET', KEYS[5], ARGV[3]) end
if ARGV[4] == '1' then redis.call('DEL', KEYS[6]) end
local n, c, r = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local i = 8
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
    let stories = std::mem::take(&mut state.stories);
    state.story_order = Some(stories.iter().map(|s| s.id.clone()).collect());
    let header = crate::store::file::encode(state);
    state.stories = stories;
    state.story_order = None;
    let header = header.map_err(encode_err)?;
    tracing::debug!(
        stories = state.stories.len(),
        changed = changed.len(),
        removed = removed.len(),
        header_bytes = header.len(),
        changed_bytes = changed.iter().map(|(_, v)| v.len()).sum::<usize>(),
        "State encoded."
    );
    let v: i64 = pool.run("save state", |c| {
        let script = redis::Script::new(SAVE_STATE);
        let mut inv = script.prepare_invoke();
        inv.key(STATE_LOCK_KEY)
            .key(STATE_KEY)
            .key(STATE_VERSION_KEY)
            .key(STORIES_KEY)
            .key(LAST_RUN_KEY)
            .key(STATE_STORIES_KEY);
        inv.arg(lock.token())
            .arg(&header)
            .arg(last_run)
            .arg(if full { "1" } else { "0" })
            .arg(records.len())
            .arg(changed.len())
            .arg(removed.len());
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
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

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
