//! Story update: an article joins a story (centroid, cohesion, terms, representative) or
//! opens a new one.

use super::{Assignment, ClusteredBatch, Clusterer, Placement, StoryEvent, StoryEventKind};
use crate::article::Article;
use crate::kernels;
use crate::label::StorySnapshot;
use crate::story::{MAX_STORY_TERMS, Member, Representative, Story, StoryState};
use crate::text;

/// What an article brings to the story it was placed in, besides its vector.
pub(super) struct Placed<'a> {
    /// Its perp symbols.
    pub symbols: &'a crate::signals::symbols::ArticleSymbols,
    /// Its entities, when the embed stage found them.
    pub entities: Option<&'a crate::signals::entities::Entities>,
    /// Its direction, when the embed stage scored one.
    pub direction: Option<&'a crate::signals::sentiment::ArticleDirection>,
    /// Its syndication sketch, when detection applies to its source.
    pub sketch: Option<&'a crate::syndication::Sketch>,
    /// The original it copies (an article of this story), when it is a syndicated copy.
    pub copy_of: Option<String>,
}

impl Clusterer {
    /// Records a placement in story `slot`: the symbols, the `Opened` event of a new story,
    /// the outlet; then for an original its direction vote, its sketch (indexed for later
    /// copies) and its source, which may turn the story breaking. A copy is one more outlet,
    /// not one more source: no heat, no breaking, no vote in the direction.
    pub(super) fn record(
        &mut self,
        slot: usize,
        a: &Article,
        t: i64,
        placed: Placed<'_>,
        out: &mut ClusteredBatch,
    ) {
        let (needed, window) = (self.breaking_sources, self.breaking_window);
        let max_members = self.member_articles;
        let s = &mut self.state.stories[slot];
        crate::story::push_member(&mut s.members, Member::of(a, t), max_members);
        crate::signals::symbols::tally(&mut s.symbols, placed.symbols);
        if let Some(e) = placed.entities {
            s.entities.absorb(e);
            self.state.entity_filters[slot] = crate::signals::entities::Filter::of(&s.entities);
        }
        if s.size == 1 {
            out.events.push(StoryEvent {
                story_id: s.id.clone(),
                kind: StoryEventKind::Opened,
            });
        }
        s.note_outlet(a.source.as_deref());
        if let Some(original) = placed.copy_of {
            s.times.push(t);
            s.copies.push((a.id.clone(), original));
            return;
        }
        if let Some(d) = placed.direction {
            s.direction.add(d);
        }
        if let Some(sk) = placed.sketch {
            let member = u32::try_from(s.article_ids.len().saturating_sub(1)).unwrap_or(u32::MAX);
            s.originals.push(crate::syndication::StoredSketch {
                member,
                sketch: sk.clone(),
            });
            let seq = s.seq;
            self.state
                .copy_index
                .insert(seq, member, &a.id, t, sk.clone());
        }
        let s = &mut self.state.stories[slot];
        if s.note_source(a.source.as_deref(), t, needed, window) {
            out.events.push(StoryEvent {
                story_id: s.id.clone(),
                kind: StoryEventKind::Breaking,
            });
        }
    }

    /// What the label stage sees of story `slot`, with the batch's `titles` of it.
    pub(super) fn snapshot(&self, slot: usize, titles: Vec<String>) -> StorySnapshot {
        let s = &self.state.stories[slot];
        StorySnapshot {
            id: s.id.clone(),
            rep_title: s.rep.title.clone(),
            terms: s.terms.clone(),
            size: s.size,
            titles,
            symbols: crate::signals::symbols::story_symbols_from(&s.symbols, s.size)
                .into_iter()
                .map(|(sym, _)| sym)
                .collect(),
        }
    }

    /// The assignment of `a` to story `slot`.
    pub(super) fn assignment(&self, a: &Article, slot: usize, placement: Placement) -> Assignment {
        Assignment {
            seq: a.seq,
            article_id: a.id.clone(),
            story_id: self.state.stories[slot].id.clone(),
            placement,
            duplicate_of: None,
        }
    }

    /// Adds article `a` (vector `v`, exact terms `exact`, time span `t`) to story `slot`:
    /// centroid sum and row, cohesion, exact term sum, title terms, span, and the
    /// representative when `a` is now the member closest to the centroid.
    pub(super) fn join(
        &mut self,
        slot: usize,
        a: &Article,
        v: &[f32],
        exact: Option<&[(u32, f32)]>,
        (t, until): (i64, i64),
    ) {
        let dim = self.state.dim;
        if let Some(terms) = exact {
            let sum = crate::story::summed_term_vector(&self.state.stories[slot].term_sum, terms);
            self.state.set_term_sum(slot, sum);
        }
        let StoryState {
            stories, cohesions, ..
        } = &mut self.state;
        let s = &mut stories[slot];
        for (c, x) in s.centroid_sum.iter_mut().zip(v) {
            *c += *x;
        }
        s.size += 1;
        cohesions[slot] = crate::story::cohesion(&s.centroid_sum, s.size);
        s.article_ids.push(a.id.clone());
        s.url_keys.extend(a.url_key);
        s.first_seen = s.first_seen.min(t);
        s.last_seen = s.last_seen.max(t);
        s.last_until = s.last_until.max(until);
        let last_seen = s.last_seen;
        add_terms(&mut s.terms, &a.title);
        self.state.term_index.seen(slot, last_seen);
        // The new centroid, normalised in place in the matrix row (no scratch vector).
        let s = &mut self.state.stories[slot];
        let centroid = &mut self.state.centroids[slot * dim..(slot + 1) * dim];
        centroid.copy_from_slice(&s.centroid_sum);
        kernels::normalize(centroid);
        if kernels::dot(v, centroid) > kernels::dot(&s.rep.vector, centroid) {
            s.rep = Representative {
                id: a.id.clone(),
                title: a.title.clone(),
                vector: v.to_vec(),
            };
            s.lead = Some(Member::of(a, t));
        }
    }

    /// Opens a story with article `a` as its only member; returns its slot.
    pub(super) fn open(
        &mut self,
        a: &Article,
        v: &[f32],
        exact: Option<&[(u32, f32)]>,
        (t, until): (i64, i64),
    ) -> usize {
        let mut id = format!("s{:016x}", xxhash_rust::xxh3::xxh3_64(a.id.as_bytes()));
        if self.state.known_story(&id) {
            id = format!("{id}-{}", self.state.next_seq);
        }
        let mut terms = Vec::new();
        add_terms(&mut terms, &a.title);
        let story = Story {
            id,
            seq: self.state.next_seq,
            label: a.title.clone(),
            top_terms: Vec::new(),
            category: None,
            size: 1,
            article_ids: vec![a.id.clone()],
            url_keys: a.url_key.into_iter().collect(),
            first_seen: t,
            last_seen: t,
            last_until: until,
            terms,
            centroid_sum: v.to_vec(),
            term_sum: exact.map(<[_]>::to_vec).unwrap_or_default(),
            rep: Representative {
                id: a.id.clone(),
                title: a.title.clone(),
                vector: v.to_vec(),
            },
            symbols: Vec::new(),
            sources: Vec::new(),
            times: Vec::new(),
            breaking_at: None,
            outlets: Vec::new(),
            copies: Vec::new(),
            originals: Vec::new(),
            direction: crate::signals::sentiment::DirectionTally::default(),
            llm_direction: None,
            members: Vec::new(),
            lead: Some(Member::of(a, t)),
            entities: crate::signals::entities::Entities::default(),
            published: None,
        };
        self.state.next_seq += 1;
        // Normalised the same way a reloaded state normalises it, bit for bit.
        let mut centroid = v.to_vec();
        kernels::normalize(&mut centroid);
        self.state.push_story(story, &centroid);
        self.opened += 1;
        self.state.stories.len() - 1
    }
}

/// Adds one article's title words to a story's term weights, keeping the heaviest
/// [`MAX_STORY_TERMS`] (ties by term, so the result does not depend on anything but order).
pub(super) fn add_terms(terms: &mut Vec<(String, f32)>, title: &str) {
    for w in text::content_words(title) {
        match terms.iter_mut().find(|(t, _)| *t == w) {
            Some((_, weight)) => *weight += 1.0,
            None => terms.push((w, 1.0)),
        }
    }
    if terms.len() > MAX_STORY_TERMS {
        terms.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        terms.truncate(MAX_STORY_TERMS);
    }
}
