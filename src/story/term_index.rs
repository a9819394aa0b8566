//! An inverted index over the active stories' exact term sums ([`super::Story::term_sum`]):
//! term id → the stories holding it, with the story's summed weight of that term. The
//! offline embedder's candidates come from it (see `stages/cluster/index.rs`).
//!
//! Stories are identified by a key of their own (reused once the story retires), not by
//! their slot, so a story moving slots (`swap_remove` on retire) moves no posting. Each story
//! remembers where each of its terms sits in that term's postings, so a join updates its
//! weights in place and dropping a posting is a `swap_remove` plus one back-pointer.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::Story;

/// One story holding a term.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Posting {
    /// The story's key (see [`TermIndex::slot`]).
    pub key: u32,
    /// Its summed weight of the term (as in its `term_sum`).
    pub weight: f32,
}

/// Per story key: where its terms sit in the postings, parallel to its `term_sum`.
#[derive(Debug, Clone, Default)]
struct KeyEntry {
    /// `pos[i]` is the index of the story's posting in the list of `term_sum[i].0`.
    pos: Vec<u32>,
    /// The story's slot, or `u32::MAX` while the key is free.
    slot: u32,
    /// The norm of its term sum (for centroid linkage).
    norm: f32,
    /// Whether its postings are in the index (not evicted, see [`TermIndex::evict`]).
    live: bool,
}

/// The index (derived data of [`super::StoryState`], rebuilt on load).
#[derive(Debug, Clone, Default)]
pub struct TermIndex {
    postings: Lists,
    keys: Vec<KeyEntry>,
    free: Vec<u32>,
    /// Per slot (parallel to the stories), its key.
    key_of_slot: Vec<u32>,
    /// Postings held, over all terms.
    entries: usize,
    /// Stories without terms (not findable through the index).
    termless: usize,
    /// (latest article time, key) of every story as it was pushed or joined, earliest
    /// first: the stories to evict (entries made stale by a later join are skipped).
    by_time: BinaryHeap<Reverse<(i64, u32)>>,
    /// The highest cutoff evicted by so far.
    evicted_to: i64,
}

/// No list (in [`Lists::of_term`]): zero, so that a fresh table comes from zeroed pages
/// (`calloc`) instead of being filled, which a fresh state (every CLI tick rebuilds its
/// index) would otherwise pay for with 4 MiB of writes.
const NONE: u32 = 0;

/// The postings lists, found by term id through a table rather than a hash map: the walk
/// looks up every term of every article, and a table of `2^TERM_ID_BITS` list numbers
/// (4 MiB) stays in cache where a map of a million lists does not.
#[derive(Debug, Clone, Default)]
struct Lists {
    /// Per term id, its list's number in `lists` plus one, or [`NONE`].
    of_term: Vec<u32>,
    lists: Vec<Vec<Posting>>,
    /// Numbers of emptied lists, for reuse (with their memory).
    free: Vec<u32>,
}

impl Lists {
    #[inline]
    fn get(&self, t: u32) -> &[Posting] {
        match self.of_term.get(t as usize) {
            Some(&i) if i != NONE => &self.lists[i as usize - 1],
            _ => &[],
        }
    }

    #[inline]
    fn get_mut(&mut self, t: u32) -> Option<&mut Vec<Posting>> {
        match self.of_term.get(t as usize) {
            Some(&i) if i != NONE => Some(&mut self.lists[i as usize - 1]),
            _ => None,
        }
    }

    /// The list of `t`, made when it has none.
    fn entry(&mut self, t: u32) -> &mut Vec<Posting> {
        let t = t as usize;
        if t >= self.of_term.len() {
            let len = (t + 1).max(1 << crate::embed::TERM_ID_BITS);
            if self.of_term.is_empty() {
                self.of_term = vec![NONE; len];
            } else {
                self.of_term.resize(len, NONE);
            }
        }
        if self.of_term[t] == NONE {
            self.of_term[t] = 1 + self.free.pop().unwrap_or_else(|| {
                self.lists.push(Vec::new());
                (self.lists.len() - 1) as u32
            });
        }
        &mut self.lists[self.of_term[t] as usize - 1]
    }

    /// Frees the (empty) list of `t`.
    fn release(&mut self, t: u32) {
        if let Some(i) = self.of_term.get_mut(t as usize)
            && *i != NONE
        {
            self.lists[*i as usize - 1].clear();
            self.free.push(*i - 1);
            *i = NONE;
        }
    }
}

fn norm(terms: &[(u32, f32)]) -> f32 {
    terms.iter().map(|(_, w)| w * w).sum::<f32>().sqrt()
}

impl TermIndex {
    /// An index over `stories` (slot order).
    pub fn build(stories: &[Story]) -> Self {
        let mut ix = TermIndex {
            evicted_to: i64::MIN,
            ..TermIndex::default()
        };
        for s in stories {
            ix.push(&s.term_sum, s.last_seen);
        }
        ix
    }

    /// The highest cutoff [`Self::evict`] was called with since the index was built: a
    /// story whose latest article is before it may be missing.
    pub fn evicted_to(&self) -> i64 {
        self.evicted_to
    }

    /// Records that the story in `slot` now has its latest article at `last_seen`. Stories
    /// without postings are not recorded: there is nothing to evict, and dense embeddings
    /// (which never evict) would grow the heap by an entry a join for as long as a worker
    /// holds its state.
    pub fn seen(&mut self, slot: usize, last_seen: i64) {
        let key = self.key_of_slot[slot];
        if !self.keys[key as usize].pos.is_empty() {
            self.by_time.push(Reverse((last_seen, key)));
        }
    }

    /// Entries waiting in the eviction heap (for tests).
    #[cfg(test)]
    fn pending(&self) -> usize {
        self.by_time.len()
    }

    /// Takes the postings of every story whose latest article is before `cutoff` out of
    /// the index (they stay in their slots until the state retires them). The clusterer
    /// evicts up to each article's own window, so the postings it reads are exactly those
    /// of the stories of its time, however its batches retire stories.
    pub fn evict(&mut self, cutoff: i64, stories: &[Story]) {
        self.evicted_to = self.evicted_to.max(cutoff);
        while let Some(&Reverse((at, key))) = self.by_time.peek() {
            if at >= cutoff {
                break;
            }
            self.by_time.pop();
            let entry = &self.keys[key as usize];
            if !entry.live || entry.slot == u32::MAX {
                continue;
            }
            let slot = entry.slot as usize;
            if stories[slot].last_seen >= cutoff {
                // Joined since: a later entry stands for it.
                continue;
            }
            self.take_postings(key, &stories[slot].term_sum, stories);
        }
    }

    /// Removes every posting of `key` (its story holding `terms`).
    fn take_postings(&mut self, key: u32, terms: &[(u32, f32)], stories: &[Story]) {
        let pos = std::mem::take(&mut self.keys[key as usize].pos);
        for (&(t, _), &at) in terms.iter().zip(&pos) {
            self.drop_posting(t, at, stories);
        }
        self.keys[key as usize].live = false;
    }

    /// Whether the index covers exactly `slots` stories (a state whose stories were
    /// replaced without it is rebuilt by its user).
    pub fn covers(&self, slots: usize) -> bool {
        self.key_of_slot.len() == slots
    }

    /// Postings of `term` (empty when no active story holds it).
    #[inline]
    pub fn postings(&self, term: u32) -> &[Posting] {
        self.postings.get(term)
    }

    /// The slot of the story with `key`.
    #[inline]
    pub fn slot(&self, key: u32) -> usize {
        self.keys[key as usize].slot as usize
    }

    /// The key of the story in `slot`.
    #[inline]
    pub fn key(&self, slot: usize) -> u32 {
        self.key_of_slot[slot]
    }

    /// One past the largest key in use (the size of a table indexed by key).
    pub fn key_space(&self) -> usize {
        self.keys.len()
    }

    /// The norm of the term sum of the story with `key`.
    #[inline]
    pub fn norm(&self, key: u32) -> f32 {
        self.keys[key as usize].norm
    }

    /// Postings held (memory is about 16 bytes each, with the back-pointers).
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// How many stories have no terms: the caller scores those another way.
    pub fn termless(&self) -> usize {
        self.termless
    }

    /// Adds a story at the next slot with terms `terms` (sorted by id) and its latest
    /// article at `last_seen`.
    pub fn push(&mut self, terms: &[(u32, f32)], last_seen: i64) {
        self.termless += usize::from(terms.is_empty());
        let slot = self.key_of_slot.len() as u32;
        let key = self.free.pop().unwrap_or_else(|| {
            self.keys.push(KeyEntry::default());
            (self.keys.len() - 1) as u32
        });
        let mut pos = Vec::with_capacity(terms.len());
        for &(t, w) in terms {
            let list = self.postings.entry(t);
            pos.push(list.len() as u32);
            list.push(Posting { key, weight: w });
        }
        self.entries += terms.len();
        self.keys[key as usize] = KeyEntry {
            pos,
            slot,
            norm: norm(terms),
            live: true,
        };
        self.key_of_slot.push(key);
        if !terms.is_empty() {
            self.by_time.push(Reverse((last_seen, key)));
        }
    }

    /// Drops the posting of `key` for `term` at `at`; the story whose posting moves into
    /// its place learns its new position (`stories` by slot, holding its `term_sum`).
    fn drop_posting(&mut self, term: u32, at: u32, stories: &[Story]) {
        let Some(list) = self.postings.get_mut(term) else {
            return;
        };
        list.swap_remove(at as usize);
        self.entries -= 1;
        if let Some(moved) = list.get(at as usize) {
            let entry = &mut self.keys[moved.key as usize];
            let terms = &stories[entry.slot as usize].term_sum;
            if let Ok(i) = terms.binary_search_by_key(&term, |p| p.0) {
                entry.pos[i] = at;
            }
        }
        if list.is_empty() {
            self.postings.release(term);
        }
    }

    /// The story in `slot` now has terms `new` (sorted by id) instead of its
    /// `stories[slot].term_sum` (which must still be the old terms). Only the postings of
    /// terms gained, lost or reweighted are touched (a join changes the article's terms, and
    /// drops a few light ones from a story at [`super::MAX_TERM_SUM`]).
    pub fn update(&mut self, slot: usize, new: &[(u32, f32)], stories: &[Story]) {
        let key = self.key_of_slot[slot];
        let old: &[(u32, f32)] = if self.keys[key as usize].live {
            &stories[slot].term_sum
        } else {
            // Evicted (not joinable by the articles it was evicted for): all back.
            &[]
        };
        let old_pos = std::mem::take(&mut self.keys[key as usize].pos);
        let was_termless = stories[slot].term_sum.is_empty();
        self.termless = self.termless + usize::from(new.is_empty()) - usize::from(was_termless);
        // Terms the story no longer holds go first: their removal moves only other
        // stories' postings (a list holds one per story), so the positions of the terms
        // kept stay valid.
        let mut j = 0;
        for (&(t, _), &at) in old.iter().zip(&old_pos) {
            while j < new.len() && new[j].0 < t {
                j += 1;
            }
            if j >= new.len() || new[j].0 != t {
                self.drop_posting(t, at, stories);
            }
        }
        let mut pos = Vec::with_capacity(new.len());
        let mut i = 0;
        for &(t, w) in new {
            while i < old.len() && old[i].0 < t {
                i += 1;
            }
            if i < old.len() && old[i].0 == t {
                let at = old_pos[i];
                if old[i].1.to_bits() != w.to_bits()
                    && let Some(p) = self
                        .postings
                        .get_mut(t)
                        .and_then(|l| l.get_mut(at as usize))
                {
                    p.weight = w;
                }
                pos.push(at);
            } else {
                let list = self.postings.entry(t);
                pos.push(list.len() as u32);
                list.push(Posting { key, weight: w });
                self.entries += 1;
            }
        }
        let entry = &mut self.keys[key as usize];
        entry.pos = pos;
        entry.norm = norm(new);
        entry.live = true;
    }

    /// Removes the story in `slot` the way `stories.swap_remove(slot)` removes it: the last
    /// slot's story takes its place. Call before removing it from `stories`.
    pub fn swap_remove(&mut self, slot: usize, stories: &[Story]) {
        let key = self.key_of_slot[slot];
        self.take_postings(key, &stories[slot].term_sum, stories);
        self.termless -= usize::from(stories[slot].term_sum.is_empty());
        self.keys[key as usize].slot = u32::MAX;
        self.free.push(key);
        self.key_of_slot.swap_remove(slot);
        if let Some(&moved) = self.key_of_slot.get(slot) {
            self.keys[moved as usize].slot = slot as u32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn story(terms: &[(u32, f32)]) -> Story {
        let json = serde_json::json!({
            "id": "s", "seq": 0, "label": "", "top_terms": [], "size": 1,
            "article_ids": [], "url_keys": [], "first_seen": 0, "last_seen": 0,
            "terms": [], "centroid_sum": "", "rep": {"id": "", "title": "", "vector": ""},
        });
        let mut s: Story = serde_json::from_value(json).unwrap();
        s.term_sum = terms.to_vec();
        s
    }

    /// Every story's postings, as (term, slot, weight), sorted: what a fresh build gives.
    fn contents(ix: &TermIndex) -> Vec<(u32, usize, u32)> {
        let lists = &ix.postings;
        let mut out: Vec<_> = (0..lists.of_term.len() as u32)
            .flat_map(|t| lists.get(t).iter().map(move |p| (t, p.key, p.weight)))
            .map(|(t, k, w)| (t, ix.slot(k), w.to_bits()))
            .collect();
        out.sort_unstable();
        out
    }

    #[test]
    fn updates_and_removals_keep_the_index_equal_to_a_fresh_build() {
        let mut stories = vec![
            story(&[(1, 1.0), (2, 2.0), (5, 1.0)]),
            story(&[(2, 1.0), (3, 1.0)]),
            story(&[(1, 0.5), (2, 0.5), (3, 0.5), (9, 4.0)]),
        ];
        let mut ix = TermIndex::build(&stories);
        assert_eq!(ix.entries(), 9);
        // Story 1 gains term 1, keeps 2 with a new weight, loses 3.
        let new = vec![(1, 3.0), (2, 7.0)];
        ix.update(1, &new, &stories);
        stories[1].term_sum = new;
        assert_eq!(contents(&ix), contents(&TermIndex::build(&stories)));
        // Story 0 retires: story 2 moves to slot 0.
        ix.swap_remove(0, &stories);
        stories.swap_remove(0);
        assert_eq!(contents(&ix), contents(&TermIndex::build(&stories)));
        // A new story reuses the freed key.
        let s = story(&[(2, 1.0), (4, 1.0)]);
        ix.push(&s.term_sum, 0);
        stories.push(s);
        assert_eq!(contents(&ix), contents(&TermIndex::build(&stories)));
        let new = vec![(4, 2.0)];
        ix.update(2, &new, &stories);
        stories[2].term_sum = new;
        assert_eq!(contents(&ix), contents(&TermIndex::build(&stories)));
        assert_eq!(ix.entries(), contents(&ix).len());
        // Evicting and joining again.
        stories[0].last_seen = 5;
        ix.seen(0, 5);
        ix.evict(3, &stories);
        let mut live = stories.clone();
        live.retain(|s| s.last_seen >= 3);
        let mut want = contents(&TermIndex::build(&live));
        want.iter_mut().for_each(|p| p.1 = 0);
        assert_eq!(contents(&ix), want);
        let new = vec![(4, 2.0), (7, 1.0)];
        ix.update(1, &new, &stories);
        stories[1].term_sum = new;
        stories[1].last_seen = 6;
        ix.seen(1, 6);
        ix.evict(4, &stories);
        // Story 1, evicted, is back with its new terms; story 2 (slot 2) is out now.
        assert_eq!(contents(&ix), contents(&TermIndex::build(&stories[..2])));
        assert_eq!(ix.evicted_to(), 4);
        assert_eq!(ix.termless(), 0);
        let pending = ix.pending();
        ix.push(&[], 7);
        assert_eq!(ix.termless(), 1);
        // A story without terms (dense embeddings) never enters the eviction heap.
        ix.seen(stories.len(), 8);
        assert_eq!(ix.pending(), pending);
        for (slot, s) in stories.iter().enumerate() {
            let k = ix.key(slot);
            assert_eq!(ix.slot(k), slot);
            assert_eq!(ix.norm(k), norm(&s.term_sum));
        }
    }
}
