//! Syndicated copies: the same report republished under another headline, with a standfirst
//! added or removed, a footer, or cut short. A copy joins its original's story but is not a
//! new source: it never raises `heat`, never turns a story `breaking`, and is not counted in
//! the story's direction.
//!
//! # Sketches
//!
//! An article's text is its body when the body has at least [`MIN_BODY_WORDS`] words (the
//! first [`MAX_WORDS`], boilerplate sentences dropped, since headlines are what syndication
//! rewrites), else its title plus the body's lead sentence. The text's lowercase words form
//! shingles of [`SHINGLE_WORDS`] consecutive words, each hashed to 32 bits; the sketch keeps
//! the [`SKETCH_SIZE`] smallest distinct hashes (a bottom-k MinHash) and the number of
//! distinct shingles. Texts with fewer than [`MIN_SHINGLES`] shingles get no sketch: there
//! is too little to tell a copy from a coincidence.
//!
//! # Deciding
//!
//! For sketches A and B, let τ be the smaller of their largest kept hashes (a sketch holding
//! all of its set's hashes has τ = ∞). The hashes of A ≤ τ are a uniform sample of A's
//! shingles, and such a hash is in B exactly when it is in B's sketch, so the share of the
//! smaller text's sampled hashes found in the other sketch estimates the **containment** of
//! the smaller text in the larger: 1 for a truncated copy, near 1 for a copy with a new
//! headline or a footer, a few percent for two articles of the same event. An article is a
//! copy when its containment with an indexed original reaches `syndication.threshold`
//! (default [`DEFAULT_THRESHOLD`]) and at least [`MIN_SAMPLE`] hashes were compared.
//!
//! # The index
//!
//! A copy is looked for only among the originals of the story the article joins (the
//! clusterer decides that first, on the text's terms; copy detection never moves an article).
//! Each story's originals are indexed by the [`INDEX_HASHES`] smallest hashes of their
//! sketch, in one sorted list of (hash, original) pairs. An article's candidates are the
//! originals sharing at least [`MIN_SHARED`] of its own [`INDEX_HASHES`] smallest hashes: the
//! smallest hashes are where a copy and its original agree (a copy half as long as its
//! original still shares about half of them). A hash carried by more than [`MAX_POSTING`]
//! originals of the story (a phrase all its reports use) is skipped. A candidate whose shared
//! count, plus every hash the index could not answer for, cannot reach the threshold is
//! dropped unchecked; the others get the full containment estimate from both sketches, so
//! indexing fewer hashes narrows the search, not the estimate. Copies are not indexed: every
//! copy of a wire story is compared with the one original, so a story republished a hundred
//! times keeps short lists. The best candidate is the highest containment, ties the earliest
//! original by (time, id), which for a time-ordered stream is the earliest publication.
//!
//! Per story rather than across the window: a story's list is small and read in one place,
//! where a table of every original's hashes was probed at random 16 times per original
//! indexed, per article looked up and per original retired, on the clusterer's thread; and a
//! phrase common to many stories no longer hides the copies of one of them.
//!
//! Sketches live in the story state (with their story, dropped when it retires), and the index
//! is rebuilt from them on load, so a copy arriving in the next run is found exactly as in
//! one long run, and nothing depends on batch size or thread count.
//!
//! # Cost
//!
//! An ASCII body is read in one pass into buffers reused per thread (the general reader,
//! kept for other text, gives the same words), repeated shingles are dropped with a small
//! hash table rather than a sort of them all, and an article that opens a story is not looked
//! up. On a 100,000-article generated dump (`perps-news generate --articles 100000 --seed 7
//! --span-hours 480`), `perps-news run -q --now 2026-12-31T00:00:00Z --pipeline P` with `P`
//! empty versus `[syndication] enabled = false`, alternated, detection costs about 10% more
//! wall and CPU time than without it (README, "Syndicated copies").

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Words per shingle.
pub const SHINGLE_WORDS: usize = 4;
/// Hashes kept per sketch.
pub const SKETCH_SIZE: usize = 64;
/// Body words read. Enough that a copy without a long first paragraph still overlaps the
/// original (a 400-word cap missed those); a pathological page costs no more than this.
pub const MAX_WORDS: usize = 1500;
/// Bodies shorter than this fall back to the title plus the lead sentence.
pub const MIN_BODY_WORDS: usize = 40;
/// Fewer distinct shingles than this: no sketch.
pub const MIN_SHINGLES: u32 = 12;
/// Fewest sampled hashes a containment estimate may rest on.
pub const MIN_SAMPLE: usize = 8;
/// Fewest shared hashes that make an original a candidate.
pub const MIN_SHARED: usize = 2;
/// Hashes of an original's sketch that are indexed (its smallest), and hashes of a new
/// article's sketch that are looked up (its smallest). Each is a probe of a large table,
/// the bulk of the copy check's cost; 16 find every copy the full 64 found on the labelled
/// checks.
pub const INDEX_HASHES: usize = 16;
/// Hashes carried by more originals of one story than this are a phrase all its reports use:
/// not used to find candidates.
pub const MAX_POSTING: usize = 16;
/// Candidates checked per article: those sharing the most hashes (ties: the earliest). A copy
/// shares far more hashes with its original than look-alikes sharing a sentence do.
pub const MAX_CANDIDATES: usize = 8;
/// Default containment needed to call an article a copy.
pub const DEFAULT_THRESHOLD: f32 = 0.6;

/// `[syndication]`: near-duplicate detection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyndicationConfig {
    /// Detect syndicated copies at all. Per source, `[sources."name"] syndication = false`
    /// turns it off for one feed.
    pub enabled: bool,
    /// Estimated containment of the shorter text in the longer one (0..1) at which an
    /// article is a copy of an indexed original.
    pub threshold: f32,
}

impl Default for SyndicationConfig {
    fn default() -> Self {
        SyndicationConfig {
            enabled: true,
            threshold: DEFAULT_THRESHOLD,
        }
    }
}

/// A bottom-k MinHash sketch of an article's shingles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sketch {
    /// The smallest distinct shingle hashes, ascending, at most [`SKETCH_SIZE`].
    pub hashes: Vec<u32>,
    /// Distinct shingles of the text.
    pub shingles: u32,
}

/// Buffers reused by [`sketch`] on one thread: word hashes, one sentence's word hashes,
/// shingle hashes and a lowercased word.
#[derive(Default)]
struct Scratch {
    words: Vec<u64>,
    sentence: Vec<u64>,
    hashes: Vec<u32>,
    lower: Vec<u8>,
    table: Vec<u64>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

/// The sketch of an article (see the module docs), or `None` when its text is too short.
pub fn sketch(title: &str, body: &str) -> Option<Sketch> {
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut s) => sketch_with(&mut s, title, body),
        Err(_) => sketch_with(&mut Scratch::default(), title, body),
    })
}

fn sketch_with(s: &mut Scratch, title: &str, body: &str) -> Option<Sketch> {
    let Scratch {
        words,
        sentence,
        hashes,
        lower,
        table,
    } = s;
    words.clear();
    if body.is_ascii() {
        ascii_body_words(body.as_bytes(), words, sentence, lower);
    } else {
        body_words(body, words, sentence);
    }
    if words.len() < MIN_BODY_WORDS {
        words.clear();
        let mut buf = String::new();
        push_words(title, words, &mut buf);
        let lead = crate::text::sentences(body).next().unwrap_or("");
        push_words(lead, words, &mut buf);
    }
    if words.len() < SHINGLE_WORDS {
        return None;
    }
    hashes.clear();
    hashes.extend(words.windows(SHINGLE_WORDS).map(|w| {
        let mut h = 0u64;
        for (k, x) in w.iter().enumerate() {
            h ^= x.rotate_left(13 * k as u32);
        }
        (mix(h) >> 32) as u32
    }));
    dedup_unordered(hashes, table);
    let shingles = u32::try_from(hashes.len()).unwrap_or(u32::MAX);
    if shingles < MIN_SHINGLES {
        return None;
    }
    // The SKETCH_SIZE smallest: a selection, then a sort of those only.
    if hashes.len() > SKETCH_SIZE {
        hashes.select_nth_unstable(SKETCH_SIZE - 1);
        hashes.truncate(SKETCH_SIZE);
    }
    hashes.sort_unstable();
    Some(Sketch {
        hashes: hashes.clone(),
        shingles,
    })
}

/// Drops repeated values from `v`, order not kept: an open-addressing table at most half
/// full, cheaper than sorting all of an article's shingles when only the smallest are kept.
fn dedup_unordered(v: &mut Vec<u32>, table: &mut Vec<u64>) {
    let size = (v.len() * 2).next_power_of_two().max(16);
    table.clear();
    table.resize(size, 0);
    let mask = size - 1;
    let mut kept = 0;
    for k in 0..v.len() {
        let h = v[k];
        // Occupied slots hold the value with bit 32 set, so 0 means empty.
        let tagged = u64::from(h) | 1 << 32;
        let mut i = (u64::from(h).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & mask;
        loop {
            let slot = table[i];
            if slot == 0 {
                table[i] = tagged;
                v[kept] = h;
                kept += 1;
                break;
            }
            if slot == tagged {
                break;
            }
            i = (i + 1) & mask;
        }
    }
    v.truncate(kept);
}

/// splitmix64's finaliser: spreads the combined word hashes over all 64 bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Lowercased word hashes of `text` appended to `out`.
fn push_words(text: &str, out: &mut Vec<u64>, buf: &mut String) {
    for tok in crate::text::tokens(text) {
        let w = crate::text::lower_into(tok.raw, buf);
        out.push(crate::text::word_hash(w));
    }
}

/// The body's words, boilerplate sentences ("Follow us on X", disclaimers) left out, up to
/// [`MAX_WORDS`].
fn body_words(body: &str, out: &mut Vec<u64>, sentence: &mut Vec<u64>) {
    let mut buf = String::new();
    for s in crate::text::sentences(body) {
        if out.len() >= MAX_WORDS {
            return;
        }
        sentence.clear();
        push_words(s, sentence, &mut buf);
        keep_sentence(sentence, out);
    }
}

/// Appends a sentence's words to `out` unless it is boilerplate, up to [`MAX_WORDS`].
fn keep_sentence(sentence: &[u64], out: &mut Vec<u64>) {
    if !sentence.is_empty() && !crate::text::is_boilerplate(sentence) {
        let room = MAX_WORDS - out.len();
        out.extend(sentence.iter().take(room));
    }
}

/// [`body_words`] of an ASCII body in one pass: the same sentences (split at a line break
/// and at `.`, `!`, `?` before whitespace or the end) and the same words as
/// [`crate::text::tokens`] (alphanumeric runs, digits joined across `.` and `,`, an
/// apostrophe and what follows dropped), lowercased into one reused buffer instead of an
/// iterator and a string per word.
fn ascii_body_words(b: &[u8], out: &mut Vec<u64>, sentence: &mut Vec<u64>, lower: &mut Vec<u8>) {
    sentence.clear();
    let n = b.len();
    let mut i = 0;
    while i < n {
        let c = b[i];
        if c.is_ascii_alphanumeric() {
            let start = i;
            i += 1;
            loop {
                while i < n && b[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                // Keep numbers whole: "12.6", "100,000".
                if crate::text::joins_digits(b, i) {
                    i += 1;
                    continue;
                }
                break;
            }
            lower.clear();
            lower.extend(b[start..i].iter().map(u8::to_ascii_lowercase));
            sentence.push(crate::text::word_hash_bytes(lower));
            // "Binance's" → "Binance".
            if i < n && b[i] == b'\'' {
                i += 1;
                while i < n && b[i].is_ascii_alphanumeric() {
                    i += 1;
                }
            }
            continue;
        }
        i += 1;
        let ends = match c {
            b'\n' => true,
            b'.' | b'!' | b'?' => i >= n || b[i].is_ascii_whitespace(),
            _ => false,
        };
        if ends {
            keep_sentence(sentence, out);
            sentence.clear();
            if out.len() >= MAX_WORDS {
                return;
            }
        }
    }
    keep_sentence(sentence, out);
}

/// τ of two sketches and how many hashes of each are at or below it.
fn below_tau(a: &Sketch, b: &Sketch) -> (usize, usize) {
    let cap = |s: &Sketch| {
        if s.hashes.len() >= SKETCH_SIZE {
            s.hashes.last().copied().unwrap_or(u32::MAX)
        } else {
            u32::MAX
        }
    };
    let tau = cap(a).min(cap(b));
    let below = |s: &Sketch| s.hashes.partition_point(|&h| h <= tau);
    (below(a), below(b))
}

/// Estimated containment of the smaller text in the larger (see the module docs), with the
/// number of sampled hashes it rests on.
pub fn containment(a: &Sketch, b: &Sketch) -> (f32, usize) {
    let (na, nb) = below_tau(a, b);
    // Shared hashes at or below tau: a merge of two sorted lists, without branches on the
    // comparison (they are unpredictable, and this is the copy check's inner loop).
    let (a_h, b_h) = (&a.hashes[..na], &b.hashes[..nb]);
    let (mut i, mut j, mut shared) = (0, 0, 0usize);
    while i < a_h.len() && j < b_h.len() {
        let (x, y) = (a_h[i], b_h[j]);
        shared += usize::from(x == y);
        i += usize::from(x <= y);
        j += usize::from(y <= x);
    }
    let sample = if a.shingles <= b.shingles { na } else { nb };
    if sample == 0 {
        return (0.0, 0);
    }
    (shared as f32 / sample as f32, sample)
}

/// An indexed original.
#[derive(Debug, Clone)]
struct Entry {
    member: u32,
    article_id: String,
    time: i64,
    sketch: Sketch,
}

/// The indexed originals of one story.
#[derive(Debug, Clone, Default)]
struct StoryOriginals {
    entries: Vec<Entry>,
    /// (hash, entry) for the [`INDEX_HASHES`] smallest hashes of every entry, ascending: the
    /// originals carrying a hash are one run, found by binary search.
    postings: Vec<(u32, u32)>,
}

impl StoryOriginals {
    /// Adds an original's entry (its pairs are the caller's).
    fn push(&mut self, member: u32, article_id: &str, time: i64, sketch: Sketch) {
        self.entries.push(Entry {
            member,
            article_id: article_id.to_string(),
            time,
            sketch,
        });
    }
}

/// What a copy was matched to.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyMatch {
    /// The original's position among its story's members.
    pub member: u32,
    /// The original's article id.
    pub original: String,
    /// The estimated containment.
    pub containment: f32,
}

/// What [`CopyIndex::find_with`] reuses from one lookup to the next.
#[derive(Debug, Default)]
pub struct LookupScratch {
    /// Per original of the story looked in: (lookup stamp, hashes shared).
    seen: Vec<(u32, u32)>,
    stamp: u32,
    /// The originals sharing a hash, in the order first met.
    touched: Vec<u32>,
}

/// The originals of the active stories, indexed per story by sketch hash.
#[derive(Debug, Clone, Default)]
pub struct CopyIndex {
    /// Story `seq` → its originals.
    stories: HashMap<u64, StoryOriginals>,
    len: usize,
}

impl CopyIndex {
    /// Originals indexed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Indexes an original: member `member` (article `article_id`, time `time`) of story
    /// `story`.
    pub fn insert(&mut self, story: u64, member: u32, article_id: &str, time: i64, sketch: Sketch) {
        let mine = self.stories.entry(story).or_default();
        let Ok(id) = u32::try_from(mine.entries.len()) else {
            return;
        };
        // The new pairs (ascending, as the sketch is) merged in from the back: one pass over
        // the story's list, where inserting them one by one would shift it once per hash.
        let new = &sketch.hashes[..sketch.hashes.len().min(INDEX_HASHES)];
        let list = &mut mine.postings;
        let old = list.len();
        list.resize(old + new.len(), (0, 0));
        let (mut i, mut j) = (old, new.len());
        while j > 0 {
            let w = i + j - 1;
            // The new id is the story's highest, so its pair goes after an equal hash.
            if i > 0 && list[i - 1].0 > new[j - 1] {
                list[w] = list[i - 1];
                i -= 1;
            } else {
                list[w] = (new[j - 1], id);
                j -= 1;
            }
        }
        mine.push(member, article_id, time, sketch);
        self.len += 1;
    }

    /// Indexes the originals of `story` at once, as (member, article id, time, sketch) in
    /// joining order: what [`Self::insert`] of each in turn gives, with one sort (a state's
    /// load, where a large story would otherwise merge its list once per original).
    pub fn insert_story<'a>(
        &mut self,
        story: u64,
        originals: impl IntoIterator<Item = (u32, &'a str, i64, Sketch)>,
    ) {
        let mine = self.stories.entry(story).or_default();
        let mut fresh = Vec::new();
        for (member, article_id, time, sketch) in originals {
            let Ok(id) = u32::try_from(mine.entries.len()) else {
                break;
            };
            let n = sketch.hashes.len().min(INDEX_HASHES);
            fresh.extend(sketch.hashes[..n].iter().map(|&h| (h, id)));
            mine.push(member, article_id, time, sketch);
            self.len += 1;
        }
        mine.postings.extend(fresh);
        mine.postings.sort_unstable();
    }

    /// Forgets every original of `story` (it retired).
    pub fn remove_story(&mut self, story: u64) {
        if let Some(mine) = self.stories.remove(&story) {
            self.len -= mine.entries.len();
        }
    }

    /// The original of story `story` that `sketch` copies, if any reaches `threshold` (see
    /// the module docs).
    pub fn find(&self, story: u64, sketch: &Sketch, threshold: f32) -> Option<CopyMatch> {
        self.find_with(&mut LookupScratch::default(), story, sketch, threshold)
    }

    /// [`Self::find`] with caller-kept scratch buffers (no allocation per article).
    pub fn find_with(
        &self,
        scratch: &mut LookupScratch,
        story: u64,
        sketch: &Sketch,
        threshold: f32,
    ) -> Option<CopyMatch> {
        let mine = self.stories.get(&story)?;
        // Each original's shared count, stamped per lookup (no clearing, no sort).
        let LookupScratch {
            seen,
            stamp,
            touched,
        } = scratch;
        *stamp = stamp.wrapping_add(1);
        if *stamp == 0 {
            seen.fill((0, 0));
            *stamp = 1;
        }
        if seen.len() < mine.entries.len() {
            seen.resize(mine.entries.len(), (0, 0));
        }
        touched.clear();
        // Query hashes whose runs were skipped: a candidate may share those too.
        let mut skipped = 0usize;
        // The query's hashes ascend, so each search starts where the last one ended.
        let mut rest = &mine.postings[..];
        for &h in sketch.hashes.iter().take(INDEX_HASHES) {
            let lo = rest.partition_point(|p| p.0 < h);
            rest = &rest[lo..];
            let n = rest.partition_point(|p| p.0 == h);
            if n > MAX_POSTING {
                skipped += 1;
                continue;
            }
            for &(_, id) in &rest[..n] {
                let c = &mut seen[id as usize];
                if c.0 != *stamp {
                    *c = (*stamp, 0);
                    touched.push(id);
                }
                c.1 += 1;
            }
        }
        // (shared hashes, entry) of the candidates, most shared first, ties the earliest.
        let mut cands: Vec<(usize, &Entry)> = touched
            .iter()
            .map(|&id| (seen[id as usize].1 as usize, id))
            .filter(|&(n, _)| n >= MIN_SHARED)
            .filter_map(|(n, id)| Some((n, mine.entries.get(id as usize)?)))
            .collect();
        let order = |a: &(usize, &Entry), b: &(usize, &Entry)| {
            b.0.cmp(&a.0)
                .then(a.1.time.cmp(&b.1.time))
                .then_with(|| a.1.article_id.cmp(&b.1.article_id))
        };
        if cands.len() > MAX_CANDIDATES {
            cands.select_nth_unstable_by(MAX_CANDIDATES - 1, order);
            cands.truncate(MAX_CANDIDATES);
        }
        let mut best: Option<(&Entry, f32)> = None;
        for (n, e) in cands {
            // It shares at most `n + skipped` hashes among those the index answered for (the
            // query's first INDEX_HASHES up to the original's last indexed hash), plus every
            // other query hash at or below τ: when even that cannot reach the threshold, the
            // exact estimate is not needed (most look-alikes end here).
            let (na, nb) = below_tau(sketch, &e.sketch);
            let sample = if sketch.shingles <= e.sketch.shingles {
                na
            } else {
                nb
            };
            if sample < MIN_SAMPLE {
                continue;
            }
            let asked = &sketch.hashes[..na.min(INDEX_HASHES)];
            let answered = match e.sketch.hashes.get(INDEX_HASHES - 1) {
                Some(&cap) if e.sketch.hashes.len() > INDEX_HASHES => {
                    asked.partition_point(|&h| h <= cap)
                }
                _ => asked.len(),
            };
            let bound = n + skipped + (na - answered);
            if (bound as f32) < threshold * sample as f32 {
                continue;
            }
            let (c, sample) = containment(sketch, &e.sketch);
            if sample < MIN_SAMPLE || c < threshold {
                continue;
            }
            let better = match best {
                None => true,
                Some((b, bc)) => {
                    c > bc || (c == bc && (e.time, &e.article_id) < (b.time, &b.article_id))
                }
            };
            if better {
                best = Some((e, c));
            }
        }
        best.map(|(e, c)| CopyMatch {
            member: e.member,
            original: e.article_id.clone(),
            containment: c,
        })
    }
}

/// An original's sketch as kept with its story: (member, distinct shingles, hashes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSketch {
    /// Position among the story's members.
    pub member: u32,
    /// The sketch.
    pub sketch: Sketch,
}

/// A story's stored sketches as `u32` words: per sketch its member, shingle count, hash
/// count, then the hashes (the state's encoding, in base64 in JSON and raw in binary records).
pub fn stored_words(v: &[StoredSketch]) -> Vec<u32> {
    let mut words = Vec::with_capacity(v.len() * (SKETCH_SIZE + 3));
    for x in v {
        words.push(x.member);
        words.push(x.sketch.shingles);
        words.push(x.sketch.hashes.len() as u32);
        words.extend_from_slice(&x.sketch.hashes);
    }
    words
}

/// Reads what [`stored_words`] wrote, checking every length and that hashes ascend.
///
/// # Errors
/// `"malformed stored sketch"` otherwise.
pub fn from_stored_words(words: &[u32]) -> Result<Vec<StoredSketch>, &'static str> {
    const BAD: &str = "malformed stored sketch";
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let head = words.get(i..i + 3).ok_or(BAD)?;
        let n = head[2] as usize;
        if n > SKETCH_SIZE {
            return Err(BAD);
        }
        let hashes = words.get(i + 3..i + 3 + n).ok_or(BAD)?.to_vec();
        if hashes.windows(2).any(|w| w[0] >= w[1]) {
            return Err(BAD);
        }
        out.push(StoredSketch {
            member: head[0],
            sketch: Sketch {
                hashes,
                shingles: head[1],
            },
        });
        i += 3 + n;
    }
    Ok(out)
}

/// Serde adapter: a story's stored sketches as base64 of [`stored_words`].
pub mod stored_b64 {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::StoredSketch;
    use crate::store::codec;

    /// Encodes.
    pub fn serialize<S: Serializer>(v: &[StoredSketch], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&codec::encode_u32s(&super::stored_words(v)))
    }

    /// Decodes, checking every length and that hashes ascend.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<StoredSketch>, D::Error> {
        let text = String::deserialize(d)?;
        let words = codec::decode_u32s(&text).map_err(serde::de::Error::custom)?;
        super::from_stored_words(&words).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "The exchange said on Tuesday that attackers had drained about $1.5 billion \
        in ether from one of its cold wallets during a routine transfer to a warm wallet. \
        Withdrawals were paused for several hours while the security team traced the funds, \
        and the chief executive said customer assets were backed one to one. Blockchain \
        analysts linked the addresses to a group behind several earlier thefts, and \
        other exchanges froze deposits they could tie to the attack. The company said it \
        would cover any losses from its own treasury and resume normal service by Wednesday.";

    #[test]
    fn copies_contain_their_original_and_other_reports_do_not() {
        let orig = sketch("Exchange hacked for $1.5 billion", BODY).unwrap();
        // New headline and a footer.
        let copy = sketch(
            "Hackers steal $1.5bn in ether",
            &format!(
                "{BODY} This story was syndicated from a wire service and has not been edited."
            ),
        )
        .unwrap();
        // Truncated to its first half.
        let cut = &BODY[..BODY.len() / 2];
        let short = sketch("Exchange loses ether", cut).unwrap();
        let other = sketch(
            "Exchange hacked for $1.5 billion",
            "Security researchers said the theft of ether from the exchange was among the \
             largest ever recorded, and warned that the attackers had used a new technique \
             to trick the signers of the cold wallet. The exchange has asked for help from \
             other platforms to freeze the stolen funds, and analysts expect the price of \
             ether to stay under pressure while the coins are laundered over the coming weeks.",
        )
        .unwrap();
        assert!(
            containment(&copy, &orig).0 >= 0.9,
            "{:?}",
            containment(&copy, &orig)
        );
        assert!(
            containment(&short, &orig).0 >= 0.9,
            "{:?}",
            containment(&short, &orig)
        );
        assert!(
            containment(&other, &orig).0 < 0.2,
            "{:?}",
            containment(&other, &orig)
        );
        assert_eq!(containment(&orig, &orig), (1.0, orig.hashes.len()));
    }

    #[test]
    fn the_ascii_reader_reads_the_words_the_general_one_does() {
        let long = format!("{BODY}\n").repeat(20);
        let texts = [
            BODY,
            long.as_str(),
            "BTC hit $100,000.50, up 2.5%. Done.\nBinance's CEO said U.S. rates 3. 5 ... ok!",
            "Follow us on X for more!\nThis is not financial advice. ETH rose 12.6% to 4,000.",
            "rock 'n' roll. x'y z?no 1,2,3 4.5.6 '' . ! ?\n\n end 7.",
            "Trailing digits 5, and 5.",
            "",
        ];
        for t in texts {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            ascii_body_words(t.as_bytes(), &mut a, &mut Vec::new(), &mut Vec::new());
            body_words(t, &mut b, &mut Vec::new());
            assert_eq!(a, b, "{t}");
        }
    }

    #[test]
    fn unordered_dedup_keeps_each_value_once() {
        let mut x = 12345u32;
        let mut v: Vec<u32> = (0..3000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x % 1500
            })
            .chain([0, 0, u32::MAX, u32::MAX])
            .collect();
        let mut want = v.clone();
        want.sort_unstable();
        want.dedup();
        dedup_unordered(&mut v, &mut Vec::new());
        v.sort_unstable();
        assert_eq!(v, want);
    }

    #[test]
    fn short_bodies_fall_back_to_title_and_lead_and_tiny_texts_get_no_sketch() {
        assert!(sketch("Bitcoin up", "").is_none());
        let a = sketch(
            "Bitcoin tops $110,000 as ETF inflows accelerate sharply",
            "Spot funds took in $1 billion on Monday. More to follow.",
        );
        let b = sketch(
            "Bitcoin tops $110,000 as ETF inflows accelerate sharply",
            "Spot funds took in $1 billion on Monday. Different second sentence here.",
        );
        assert!(a.is_some());
        assert_eq!(a, b, "only the lead sentence of a short body counts");
    }

    #[test]
    fn a_storys_postings_stay_sorted_as_originals_come() {
        let mut rng = crate::testing::xorshift(5);
        let mut idx = CopyIndex::default();
        let mut want = Vec::new();
        for id in 0..200u32 {
            // Small values so that hashes repeat across originals, as shared phrases do.
            let mut hashes: Vec<u32> = (0..(rng() % 40) as usize)
                .map(|_| (rng() % 300) as u32)
                .collect();
            hashes.sort_unstable();
            hashes.dedup();
            want.extend(hashes.iter().take(INDEX_HASHES).map(|&h| (h, id)));
            let sketch = Sketch {
                hashes,
                shingles: 50,
            };
            idx.insert(1, id, &format!("a{id}"), 0, sketch);
        }
        want.sort_unstable();
        assert_eq!(idx.stories[&1].postings, want);
    }

    #[test]
    fn a_story_indexed_at_once_equals_one_indexed_original_by_original() {
        let mut rng = crate::testing::xorshift(11);
        let sketches: Vec<Sketch> = (0..50)
            .map(|_| {
                let mut hashes: Vec<u32> = (0..30).map(|_| (rng() % 500) as u32).collect();
                hashes.sort_unstable();
                hashes.dedup();
                Sketch {
                    hashes,
                    shingles: 40,
                }
            })
            .collect();
        let ids: Vec<String> = (0..50).map(|i| format!("a{i}")).collect();
        let (mut one, mut all) = (CopyIndex::default(), CopyIndex::default());
        for (i, sk) in sketches.iter().enumerate() {
            one.insert(3, i as u32 * 2, &ids[i], i as i64, sk.clone());
        }
        all.insert_story(
            3,
            sketches
                .iter()
                .enumerate()
                .map(|(i, sk)| (i as u32 * 2, ids[i].as_str(), i as i64, sk.clone())),
        );
        assert_eq!(one.stories[&3].postings, all.stories[&3].postings);
        assert_eq!(one.len(), all.len());
        for sk in &sketches {
            assert_eq!(one.find(3, sk, 0.5), all.find(3, sk, 0.5));
        }
    }

    #[test]
    fn index_finds_the_earliest_best_original_of_the_story_and_forgets_retired_ones() {
        let orig = sketch("Exchange hacked", BODY).unwrap();
        let mut idx = CopyIndex::default();
        idx.insert(7, 0, "a2", 100, orig.clone());
        idx.insert(7, 3, "a1", 100, orig.clone());
        idx.insert(9, 1, "a0", 50, orig.clone());
        let copy = sketch("Another headline", BODY).unwrap();
        let m = idx.find(7, &copy, 0.5).unwrap();
        assert_eq!((m.member, m.original.as_str()), (3, "a1"));
        // Only the story it joins: another story's earlier original is not its original.
        assert_eq!(idx.find(9, &copy, 0.5).unwrap().original, "a0");
        assert!(idx.find(8, &copy, 0.5).is_none());
        assert_eq!(idx.len(), 3);
        idx.remove_story(7);
        assert!(idx.find(7, &copy, 0.5).is_none());
        idx.remove_story(9);
        assert!(idx.is_empty());
    }

    #[test]
    fn stored_sketches_round_trip_and_bad_ones_are_refused() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct W(#[serde(with = "stored_b64")] Vec<StoredSketch>);
        let s = StoredSketch {
            member: 4,
            sketch: sketch("Exchange hacked", BODY).unwrap(),
        };
        let w = W(vec![s.clone(), StoredSketch { member: 9, ..s }]);
        let json = serde_json::to_string(&w).unwrap();
        assert_eq!(serde_json::from_str::<W>(&json).unwrap(), w);
        let truncated = format!(
            "\"{}\"",
            crate::store::codec::encode_u32s(&[1, 20, 5, 1, 2])
        );
        assert!(serde_json::from_str::<W>(&truncated).is_err());
        let unsorted = format!(
            "\"{}\"",
            crate::store::codec::encode_u32s(&[1, 20, 2, 9, 3])
        );
        assert!(serde_json::from_str::<W>(&unsorted).is_err());
    }
}
