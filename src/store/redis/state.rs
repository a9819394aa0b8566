//! Load and save of the story state, with the consumer records (`perps:story:<id>`,
//! `perps:stories`) and the last run, in one script fenced by the lock token.

use super::{
    LAST_RUN_KEY, Pool, STATE_KEY, STATE_LOCK_KEY, STATE_VERSION_KEY, STORIES_KEY, StateLock,
};
use crate::error::{Error, Result};

/// Loads the story state and its version (a new empty state, version 0, when none).
///
/// # Errors
/// [`Error::Redis`] when unreachable; [`Error::State`] when the stored state is unusable or
/// made by another embedder.
pub fn load_state(
    pool: &Pool,
    fingerprint: &str,
    dim: usize,
) -> Result<(crate::story::StoryState, u64)> {
    let (raw, version): (Option<Vec<u8>>, Option<u64>) = pool.run("GET state", |c| {
        redis::pipe()
            .cmd("GET")
            .arg(STATE_KEY)
            .cmd("GET")
            .arg(STATE_VERSION_KEY)
            .query(c)
    })?;
    let version = version.unwrap_or(0);
    let Some(raw) = raw else {
        return Ok((crate::story::StoryState::new(fingerprint, dim), version));
    };
    let path = std::path::PathBuf::from(format!("redis://{}/{STATE_KEY}", pool.name));
    let state = crate::store::file::decode(&raw, &path, fingerprint, dim)?;
    Ok((state, version))
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
-- KEYS: lock, state, version, stories zset, last run
-- ARGV: token, state json, last-run json, n records, then n x (id, json, score), then ids to forget
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('SET', KEYS[2], ARGV[2])
local v = redis.call('INCR', KEYS[3])
if ARGV[3] ~= '' then redis.call('SET', KEYS[5], ARGV[3]) end
local n = tonumber(ARGV[4])
local i = 5
for _ = 1, n do
  redis.call('SET', 'perps:story:' .. ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[4], ARGV[i + 2], ARGV[i])
  i = i + 3
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
/// # Errors
/// [`Error::Locked`] when the lock was lost; [`Error::Redis`] when unreachable.
pub fn save_state(
    pool: &Pool,
    lock: &StateLock,
    state: &crate::story::StoryState,
    records: &[(String, String, i64)],
    forgotten: &[String],
    last_run: &str,
) -> Result<u64> {
    let json = crate::store::file::encode(state).map_err(|e| Error::Redis {
        server: pool.name.clone(),
        message: format!("encode state: {e}"),
    })?;
    let v: i64 = pool.run("save state", |c| {
        let script = redis::Script::new(SAVE_STATE);
        let mut inv = script.prepare_invoke();
        inv.key(STATE_LOCK_KEY)
            .key(STATE_KEY)
            .key(STATE_VERSION_KEY)
            .key(STORIES_KEY)
            .key(LAST_RUN_KEY);
        inv.arg(lock.token())
            .arg(&json)
            .arg(last_run)
            .arg(records.len());
        for (id, record, score) in records {
            inv.arg(id).arg(record).arg(*score);
        }
        for id in forgotten {
            inv.arg(id);
        }
        inv.invoke(c)
    })?;
    u64::try_from(v)
        .map_err(|_| Error::Locked("the lock expired during the run; state not saved".into()))
}
