//! The articles of forgotten stories, remembered for `[cluster] dedup_days` so that a replay
//! (a re-run backfill, a redelivered job, an overlapping dump) finds them already known.
//!
//! Active and retired stories answer "is this article known?" from their own member ids and
//! url hashes. When a retired story is forgotten (its last article is `window + retain`
//! before the clock), its members' id hashes (xxh3-64) and url hashes move here, in a bucket
//! of the day (UTC, of the run's ingest time) it was forgotten, together with the story id
//! they belonged to. Buckets older than `dedup_days` before the run's ingest day are
//! dropped at the start of a run. So an article stays known for at least `dedup_days` after
//! it was last seen in the state, however old its own publication time. 8-byte hashes: the
//! chance that an unseen article is taken for a remembered one is about n / 2^64 per
//! article for n remembered ones.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One day's forgotten stories.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bucket {
    /// The forgotten stories' ids.
    pub stories: Vec<String>,
    /// (xxh3-64 of an article id, index into `stories`).
    pub ids: Vec<(u64, u32)>,
    /// (url hash, index into `stories`).
    pub urls: Vec<(u64, u32)>,
}

/// Forgotten stories' articles by the day they were forgotten.
#[derive(Debug, Clone, Default)]
pub struct SeenLog {
    buckets: BTreeMap<i64, Bucket>,
    /// Derived: article id hash → (day, story index).
    ids: HashMap<u64, (i64, u32)>,
    /// Derived: url hash → (day, story index).
    urls: HashMap<u64, (i64, u32)>,
}

/// The hash an article id is remembered by.
pub fn id_hash(id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id.as_bytes())
}

impl SeenLog {
    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Articles remembered.
    pub fn len(&self) -> usize {
        self.buckets.values().map(|b| b.ids.len()).sum()
    }

    /// Remembers the members of forgotten story `story` on `day`.
    pub fn remember(&mut self, day: i64, story: &str, article_ids: &[String], url_keys: &[u64]) {
        let b = self.buckets.entry(day).or_default();
        let idx = u32::try_from(b.stories.len()).unwrap_or(u32::MAX);
        b.stories.push(story.to_string());
        for a in article_ids {
            let h = id_hash(a);
            b.ids.push((h, idx));
            self.ids.insert(h, (day, idx));
        }
        for &u in url_keys {
            b.urls.push((u, idx));
            self.urls.insert(u, (day, idx));
        }
    }

    /// Forgets the buckets of days before `first_day`; returns how many articles went.
    pub fn prune(&mut self, first_day: i64) -> usize {
        let keep = self.buckets.split_off(&first_day);
        let gone = std::mem::replace(&mut self.buckets, keep);
        if gone.is_empty() {
            return 0;
        }
        self.rebuild();
        gone.values().map(|b| b.ids.len()).sum()
    }

    /// The forgotten story an article belonged to, by id or by url hash.
    pub fn story_of(&self, article_id: &str, url_key: Option<u64>) -> Option<&str> {
        let (day, idx) = self
            .ids
            .get(&id_hash(article_id))
            .or_else(|| url_key.and_then(|u| self.urls.get(&u)))?;
        self.buckets
            .get(day)?
            .stories
            .get(*idx as usize)
            .map(String::as_str)
    }

    /// Rebuilds the lookups from the buckets (after loading).
    pub fn rebuild(&mut self) {
        self.ids.clear();
        self.urls.clear();
        for (&day, b) in &self.buckets {
            for &(h, i) in &b.ids {
                self.ids.insert(h, (day, i));
            }
            for &(u, i) in &b.urls {
                self.urls.insert(u, (day, i));
            }
        }
    }
}

impl PartialEq for SeenLog {
    fn eq(&self, other: &Self) -> bool {
        self.buckets == other.buckets
    }
}

/// On the wire: `{day: {stories: [...], ids: b64, urls: b64}}`, each hash list base64 of
/// little-endian (lo, hi, story index) u32 triples.
#[derive(Serialize, Deserialize)]
struct WireBucket {
    stories: Vec<String>,
    ids: String,
    urls: String,
}

fn encode(v: &[(u64, u32)]) -> String {
    let mut words = Vec::with_capacity(v.len() * 3);
    for &(h, i) in v {
        words.extend([h as u32, (h >> 32) as u32, i]);
    }
    crate::store::codec::encode_u32s(&words)
}

fn decode(text: &str, stories: usize) -> Result<Vec<(u64, u32)>, String> {
    let words = crate::store::codec::decode_u32s(text).map_err(str::to_string)?;
    if words.len() % 3 != 0 {
        return Err("seen-article list of the wrong length".into());
    }
    let v: Vec<(u64, u32)> = words
        .chunks_exact(3)
        .map(|w| (u64::from(w[0]) | (u64::from(w[1]) << 32), w[2]))
        .collect();
    if v.iter().any(|&(_, i)| i as usize >= stories) {
        return Err("seen-article entry names no story".into());
    }
    Ok(v)
}

impl Serialize for SeenLog {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let wire: BTreeMap<String, WireBucket> = self
            .buckets
            .iter()
            .map(|(day, b)| {
                (
                    day.to_string(),
                    WireBucket {
                        stories: b.stories.clone(),
                        ids: encode(&b.ids),
                        urls: encode(&b.urls),
                    },
                )
            })
            .collect();
        wire.serialize(s)
    }
}

impl<'de> Deserialize<'de> for SeenLog {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = BTreeMap::<String, WireBucket>::deserialize(d)?;
        let mut log = SeenLog::default();
        for (day, w) in wire {
            let day: i64 = day.parse().map_err(serde::de::Error::custom)?;
            let n = w.stories.len();
            let b = Bucket {
                ids: decode(&w.ids, n).map_err(serde::de::Error::custom)?,
                urls: decode(&w.urls, n).map_err(serde::de::Error::custom)?,
                stories: w.stories,
            };
            log.buckets.insert(day, b);
        }
        log.rebuild();
        Ok(log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_by_id_or_url_round_trips_and_prunes_by_day() {
        let mut log = SeenLog::default();
        log.remember(100, "s1", &["a".into(), "b".into()], &[7]);
        log.remember(101, "s2", &["c".into()], &[]);
        assert_eq!(log.story_of("a", None), Some("s1"));
        assert_eq!(log.story_of("zz", Some(7)), Some("s1"));
        assert_eq!(log.story_of("c", None), Some("s2"));
        assert_eq!(log.story_of("d", Some(8)), None);
        let json = serde_json::to_string(&log).unwrap();
        let back: SeenLog = serde_json::from_str(&json).unwrap();
        assert_eq!(back, log);
        assert_eq!(back.story_of("b", None), Some("s1"));
        assert_eq!(log.prune(101), 2);
        assert_eq!(log.story_of("a", None), None);
        assert_eq!(log.story_of("c", None), Some("s2"));
        assert_eq!(log.len(), 1);
        let bad = r#"{"5":{"stories":[],"ids":"AQAAAAIAAAAAAAAA","urls":""}}"#;
        assert!(
            serde_json::from_str::<SeenLog>(bad).is_err(),
            "an entry naming no story"
        );
    }
}
