//! The story state: every active story with its centroid, plus a memory of recently retired
//! ones. It is a plain value: loaded before a run, advanced by the cluster stage, saved after,
//! so a run over dump A then dump B gives the stories of A+B.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::BuildHasherDefault;

use serde::{Deserialize, Serialize};

use crate::store::codec;

mod seen;
pub use seen::SeenLog;
mod term_index;
pub use term_index::{Posting, TermIndex};

/// Current state format version.
pub const STATE_VERSION: u32 = 1;

/// Most distinct title terms remembered per story for its top terms.
pub const MAX_STORY_TERMS: usize = 24;

/// One active story.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Story {
    /// Stable id, derived from the first article's id.
    pub id: String,
    /// Creation order across the state's whole life; breaks similarity ties.
    pub seq: u64,
    /// Human label (extractive: the most central title).
    pub label: String,
    /// A few characteristic terms.
    pub top_terms: Vec<String>,
    /// Category, when the labeler gives one (the `llm` labeler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Number of articles.
    pub size: usize,
    /// Member article ids, in joining order.
    pub article_ids: Vec<String>,
    /// Hashes of member urls, to recognise an article seen before under another id.
    pub url_keys: Vec<u64>,
    /// Earliest member time (epoch seconds).
    pub first_seen: i64,
    /// Latest member time (epoch seconds); drives going inactive.
    pub last_seen: i64,
    /// The latest moment a member may have appeared: `last_seen`, or the end of a member's
    /// day when its input gave only the day (see [`crate::article::Article::day_only`]).
    #[serde(default)]
    pub last_until: i64,
    /// Title-term weights accumulated over members (bounded), for top terms.
    pub terms: Vec<(String, f32)>,
    /// Sum of member vectors (unnormalised), base64 little-endian f32.
    #[serde(with = "vec_b64")]
    pub centroid_sum: Vec<f32>,
    /// Offline embedder only: the sum of the members' exact term vectors (see
    /// [`crate::embed::Embedding::into_vectors`]), sorted by term id, keeping the
    /// [`MAX_TERM_SUM`] heaviest terms. The clusterer decides on it; the dense centroid only
    /// prunes. Empty for dense embedders (and for stories from before it existed, which are
    /// then scored on the centroid).
    #[serde(default, with = "pairs_b64", skip_serializing_if = "Vec::is_empty")]
    pub term_sum: Vec<(u32, f32)>,
    /// The member closest to the centroid: its id, title and vector.
    pub rep: Representative,
    /// Perp-symbol tallies over the members.
    #[serde(default)]
    pub symbols: Vec<crate::signals::symbols::SymbolTally>,
    /// Distinct sources with the time of their latest article (at most [`MAX_SOURCES`]).
    #[serde(default)]
    pub sources: Vec<(String, i64)>,
    /// Member article times, in joining order.
    #[serde(default)]
    pub times: Vec<i64>,
    /// When the story turned breaking (fires once, ever).
    #[serde(default)]
    pub breaking_at: Option<i64>,
    /// Distinct outlets that ran an article of the story, syndicated copies included (at
    /// most [`MAX_SOURCES`]); `sources` counts only those with an original.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outlets: Vec<String>,
    /// Syndicated copies among the members: (copy id, original id), in joining order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<(String, String)>,
    /// Sketches of the members that are originals (see [`crate::syndication`]), so copies
    /// arriving in a later run are still recognised.
    #[serde(
        default,
        with = "crate::syndication::stored_b64",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub originals: Vec<crate::syndication::StoredSketch>,
    /// The direction of the story's original articles (see [`crate::signals::sentiment`]).
    #[serde(default)]
    pub direction: crate::signals::sentiment::DirectionTally,
    /// The chat model's direction for the story (`--labeler llm`), when it gave one; it
    /// wins over the offline tally in outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_direction: Option<crate::signals::sentiment::StoryDirection>,
    /// The latest member articles (at most `[events] member_articles`), oldest first: what
    /// consumers read instead of joining ids back to the dump.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<Member>,
    /// The representative's article (the story's lead), with its url and source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead: Option<Member>,
    /// The assets, institutions and names its members' titles and leads name (see
    /// [`crate::signals::entities`]): an article naming others of a kind conflicts with the
    /// story. Empty for stories from before it was kept, which then conflict with nothing.
    #[serde(
        default,
        skip_serializing_if = "crate::signals::entities::Entities::is_empty"
    )]
    pub entities: crate::signals::entities::Entities,
    /// What consumers last heard of it on `news:story` ([`Published`]); kept with the story
    /// so that a save writes it only with the story's own record. Once the story retires it
    /// moves to [`StoryState::published`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<Published>,
}

/// A member article as consumers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Article id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Url, when the input gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Source, when the input gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Publication time (epoch seconds; the run's ingest time when the input gave none).
    pub published: i64,
}

impl Member {
    /// Article `a`, published at `t`.
    pub fn of(a: &crate::article::Article, t: i64) -> Self {
        Member {
            id: a.id.clone(),
            title: a.title.clone(),
            url: a.url.clone(),
            source: a.source.clone(),
            published: t,
        }
    }
}

/// Appends `m` to `members`, keeping the latest `max` (0 keeps none).
pub fn push_member(members: &mut Vec<Member>, m: Member, max: usize) {
    members.push(m);
    if members.len() > max {
        let extra = members.len() - max;
        members.drain(..extra);
    }
}

/// Member articles a story keeps for its record and events unless configured
/// (`[events] member_articles`).
pub const DEFAULT_MEMBER_ARTICLES: usize = 50;

/// Most distinct sources remembered per story.
pub const MAX_SOURCES: usize = 256;

/// Most terms kept in a story's [`Story::term_sum`]: a story of two or three articles keeps
/// all of its terms; a big one keeps its heaviest (its light terms barely move a score).
pub const MAX_TERM_SUM: usize = 2048;

/// Adds the sparse vector `terms` into `sum` (both sorted by term id), then keeps the
/// [`MAX_TERM_SUM`] heaviest terms (ties: the lower id), still sorted by id.
pub fn add_term_vector(sum: &mut Vec<(u32, f32)>, terms: &[(u32, f32)]) {
    *sum = summed_term_vector(sum, terms);
}

/// [`add_term_vector`] into a new vector: `sum + terms`, the [`MAX_TERM_SUM`] heaviest kept.
pub fn summed_term_vector(sum: &[(u32, f32)], terms: &[(u32, f32)]) -> Vec<(u32, f32)> {
    let mut out = Vec::with_capacity(sum.len() + terms.len());
    let (mut i, mut j) = (0, 0);
    while i < sum.len() || j < terms.len() {
        let next = match (sum.get(i), terms.get(j)) {
            (Some(a), Some(b)) if a.0 == b.0 => {
                i += 1;
                j += 1;
                (a.0, a.1 + b.1)
            }
            (Some(a), Some(b)) if a.0 < b.0 => {
                i += 1;
                *a
            }
            (Some(a), None) => {
                i += 1;
                *a
            }
            (_, Some(b)) => {
                j += 1;
                *b
            }
            (None, None) => break,
        };
        out.push(next);
    }
    if out.len() > MAX_TERM_SUM {
        // The lightest of those kept, found in linear time (a join of a big story lands
        // here every time; two sorts of its terms cost more than the rest of the join), then
        // the heavier ones kept in id order.
        let heavier =
            |a: &(u32, f32), b: &(u32, f32)| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0));
        let mut order = out.clone();
        let (_, &mut last, _) = order.select_nth_unstable_by(MAX_TERM_SUM - 1, heavier);
        out.retain(|t| heavier(t, &last).is_le());
    }
    out
}

impl Story {
    /// Hours between an article that appeared in `[t, until]` and the story's latest article:
    /// the gap between the two spans, zero when they can overlap. A story's day-only member
    /// (see `last_until`) widens it only for an article that is day-only too: an exactly
    /// timed article is measured from `last_seen`, so one midnight stamp in a precise feed
    /// cannot lift the time penalty of its story for a whole day. With exact times and an
    /// article after the story, `t - last_seen`; an article inside the story's span has no
    /// gap, and one before it is measured to `first_seen`.
    pub fn gap_hours(&self, t: i64, until: i64) -> f32 {
        let secs = if t >= self.last_seen {
            // A story's day-only member widens it only for an article that is day-only too.
            t - if until > t {
                self.last_until.max(self.last_seen)
            } else {
                self.last_seen
            }
        } else if until >= self.first_seen {
            // Within the story's span (a late article among the story's own): no gap.
            0
        } else {
            // Before the story began (a late article against a later story).
            self.first_seen - until
        };
        secs.max(0) as f32 / 3600.0
    }

    /// Heat at time `now`: each distinct source counts `exp(-age / tau)`, where `age` is the
    /// time since its latest article in this story. So a story many outlets are writing
    /// about right now is hot, and it cools with a time constant `tau` once they stop.
    pub fn heat(&self, now: i64, tau_hours: f64) -> f64 {
        crate::signals::heat::heat(&self.sources, now, tau_hours)
    }

    /// Articles with a time in the hour up to `now`.
    pub fn last_hour(&self, now: i64) -> usize {
        self.times
            .iter()
            .filter(|t| **t > now - 3600 && **t <= now)
            .count()
    }

    /// Records the outlet of an article, original or copy.
    pub fn note_outlet(&mut self, source: Option<&str>) {
        if let Some(src) = source
            && !self.outlets.iter().any(|s| s == src)
            && self.outlets.len() < MAX_SOURCES
        {
            self.outlets.push(src.to_string());
        }
    }

    /// The story's direction with one verdict per symbol in `symbols`: the chat model's
    /// when it gave one, else the offline tally's.
    pub fn direction(&self, symbols: &[String]) -> crate::signals::sentiment::StoryDirection {
        match &self.llm_direction {
            Some(d) => d.clone(),
            None => self.direction.story_direction(symbols),
        }
    }

    /// Records an article's source and time; returns whether the story just turned
    /// breaking: `sources_needed` distinct sources within `window` seconds up to `t`.
    pub fn note_source(
        &mut self,
        source: Option<&str>,
        t: i64,
        sources_needed: usize,
        window: i64,
    ) -> bool {
        self.times.push(t);
        if let Some(src) = source {
            match self.sources.iter().position(|(s, _)| s == src) {
                Some(i) => self.sources[i].1 = self.sources[i].1.max(t),
                None if self.sources.len() < MAX_SOURCES => self.sources.push((src.to_string(), t)),
                None => {}
            }
        }
        if self.breaking_at.is_none()
            && crate::signals::heat::is_breaking(&self.sources, t, sources_needed, window)
        {
            self.breaking_at = Some(t);
            return true;
        }
        false
    }
}

/// The most central member of a story, kept so later runs can compare newcomers with it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Representative {
    /// Article id.
    pub id: String,
    /// Its title (the extractive label).
    pub title: String,
    /// Its vector.
    #[serde(with = "vec_b64")]
    pub vector: Vec<f32>,
}

/// A story that went inactive: no vectors, only what lookups and outputs need.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RetiredStory {
    /// Story id.
    pub id: String,
    /// Last label.
    pub label: String,
    /// Number of articles.
    pub size: usize,
    /// Member ids.
    pub article_ids: Vec<String>,
    /// Member url hashes.
    pub url_keys: Vec<u64>,
    /// Earliest member time.
    pub first_seen: i64,
    /// Latest member time.
    pub last_seen: i64,
    /// Its symbols when it retired.
    #[serde(default)]
    pub symbols: Vec<String>,
    /// Distinct sources.
    #[serde(default)]
    pub sources: usize,
    /// Whether it had turned breaking.
    #[serde(default)]
    pub breaking: bool,
    /// Distinct outlets, syndicated copies included.
    #[serde(default)]
    pub outlets: usize,
    /// Syndicated copies: (copy id, original id).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<(String, String)>,
    /// Its direction when it retired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<crate::signals::sentiment::StoryDirection>,
    /// Its category, when the labeler gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Its distinct sources (originals only), for its importance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_names: Vec<String>,
    /// Its latest member articles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<Member>,
    /// Its lead article.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead: Option<Member>,
}

/// Where a known article lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// Its story's id.
    pub story_id: String,
}

/// Document frequencies of hashed terms over every article clustered so far, for the
/// offline embedder's inverse document frequency: a word in every article says nothing about
/// which story an article belongs to. Learned from the stream and kept with the state, so
/// it improves as the stream grows and is identical whether the stream came in one run or
/// many.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TermStats {
    /// Articles counted.
    pub docs: u64,
    /// Per term id, the number of counted articles containing it. A map, not a table of
    /// 2^20 counters: a small run touches a few thousand terms, and a table's page faults
    /// and its 4 MiB in every state file would cost more than the whole run.
    #[serde(with = "df_b64")]
    pub df: DfMap,
}

/// Document frequencies by term id.
pub type DfMap = HashMap<u32, u32, BuildHasherDefault<crate::text::IdHasher>>;

impl TermStats {
    /// Smoothed inverse document frequency of `id`, counting the article being weighted
    /// itself: `ln((docs + 2) / (df + 2)) + 1`. Ranges from 1 (in every article) upwards.
    #[inline]
    pub fn idf(&self, id: u32) -> f32 {
        let df = self.df.get(&id).copied().unwrap_or(0);
        (((self.docs + 2) as f32) / (df.saturating_add(2) as f32)).ln() + 1.0
    }

    /// Calls `f(id, weight, idf)` for each of an article's distinct terms, with the idf
    /// [`Self::idf`] gives before the article is counted, and counts it: one map lookup per
    /// term instead of two.
    pub fn weigh_and_add(&mut self, terms: &[(u32, f32)], mut f: impl FnMut(u32, f32, f32)) {
        let docs = (self.docs + 2) as f32;
        for &(id, w) in terms {
            let c = self.df.entry(id).or_insert(0);
            f(id, w, (docs / (c.saturating_add(2) as f32)).ln() + 1.0);
            *c = c.saturating_add(1);
        }
        self.docs += 1;
    }

    /// Counts one article's distinct terms.
    pub fn add(&mut self, terms: &[(u32, f32)]) {
        for &(id, _) in terms {
            let c = self.df.entry(id).or_insert(0);
            *c = c.saturating_add(1);
        }
        self.docs += 1;
    }
}

/// An article kept for the next run because it got no vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeferredRecord {
    /// The article as an input record (`id`, `title`, `body`, `url`, `source`,
    /// `published_at`, `lang`).
    pub record: serde_json::Value,
    /// Why it got no vector, the last time.
    pub reason: String,
    /// Runs that have tried it.
    pub attempts: u32,
}

/// How closely a story's articles agree: the length of the mean of its `size` unit vectors
/// (`centroid_sum`), 1 when they all point one way, towards 0 when they point every way.
/// The mean cosine similarity of a unit vector `v` with the articles is then
/// `dot(v, normalised centroid) × cohesion`. Capped at 1 so rounding cannot lift a score
/// above the centroid similarity (the candidate pruning relies on that).
pub fn cohesion(centroid_sum: &[f32], size: usize) -> f32 {
    let norm = crate::kernels::dot(centroid_sum, centroid_sum).sqrt();
    (norm / size.max(1) as f32).min(1.0)
}

/// The whole clustering state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoryState {
    /// Format version.
    pub version: u32,
    /// Embedder fingerprint the vectors were made with.
    pub fingerprint: String,
    /// Vector dimension.
    pub dim: usize,
    /// Latest article time processed so far (epoch seconds); only moves forward.
    pub clock: i64,
    /// Next story creation sequence number.
    pub next_seq: u64,
    /// Active stories, in no particular order (use `seq` for order).
    pub stories: Vec<Story>,
    /// Recently retired stories.
    pub retired: Vec<RetiredStory>,
    /// Term document frequencies (offline embedder only).
    #[serde(default)]
    pub terms: TermStats,
    /// Articles an earlier run could not embed (the API failed for them), as input records:
    /// the next run processes them first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deferred: Vec<DeferredRecord>,
    /// Derived: normalised centroids of `stories`, row-major, one row per story.
    #[serde(skip)]
    pub centroids: Vec<f32>,
    /// Derived: per story, its cohesion [`cohesion`] (parallel to `stories`).
    #[serde(skip)]
    pub cohesions: Vec<f32>,
    /// Derived: per story, the filter of its entities
    /// ([`crate::signals::entities::Filter`], parallel to `stories`).
    #[serde(skip)]
    pub entity_filters: Vec<crate::signals::entities::Filter>,
    /// Derived: article id → story id, over active and retired stories.
    #[serde(skip)]
    ids: HashMap<String, String>,
    /// Derived: url hash → story id.
    #[serde(skip)]
    urls: HashMap<u64, String>,
    /// Ids of stories forgotten since this value was loaded (for stores that keep a record
    /// per story).
    #[serde(skip)]
    pub forgotten: Vec<String>,
    /// The records of the stories forgotten during the current run, so that the run's
    /// `--stories` still lists a story it opened or joined and forgot before its end.
    /// Cleared by the run that reads them.
    #[serde(skip)]
    pub forgotten_stories: Vec<RetiredStory>,
    /// Derived: ids of all stories, active and retired.
    #[serde(skip)]
    story_ids: HashSet<String>,
    /// Derived: the originals of the active stories, for finding syndicated copies.
    #[serde(skip)]
    pub copy_index: crate::syndication::CopyIndex,
    /// Derived: the active stories' exact term sums by term (the offline embedder's
    /// candidates).
    #[serde(skip)]
    pub term_index: TermIndex,
    /// What consumers last heard of each retired story on `news:story` (see
    /// [`crate::stages::publish::events`]; an active story keeps its own in
    /// [`Story::published`]); dropped when the story is forgotten.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub published: BTreeMap<String, Published>,
    /// Stories retired during the current run, in order (their `closed` events).
    #[serde(skip)]
    pub closed_in_run: Vec<String>,
    /// The articles of forgotten stories, remembered for `[cluster] dedup_days` (see
    /// [`SeenLog`]).
    #[serde(default, skip_serializing_if = "SeenLog::is_empty")]
    pub seen: SeenLog,
    /// The current run's ingest day (UTC days since the epoch): the bucket stories forgotten
    /// by this run are remembered in.
    #[serde(skip)]
    pub run_day: i64,
    /// In a Redis header (the stories stored apart, one record each): the ids of `stories`
    /// in their order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub story_order: Option<Vec<String>>,
    /// In a Redis header: the document frequencies are stored apart (`perps:state:terms`),
    /// so a header without them is not an empty vocabulary.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub terms_apart: bool,
    /// Derived: per active story, the digest of its record as Redis holds it (loaded or last
    /// saved), so a save writes only the stories that changed.
    #[serde(skip)]
    pub stored: HashMap<String, u64>,
    /// Derived: the document frequencies as Redis holds them (its base plus its log of
    /// changes), so a save writes only the counts that changed; None when Redis holds none
    /// apart from the header.
    #[serde(skip)]
    pub stored_df: Option<DfMap>,
    /// Derived: the bytes of changes Redis holds on top of its document-frequency base.
    #[serde(skip)]
    pub stored_df_log: usize,
}

/// What the last `news:story` event of a story told consumers: the baseline a material
/// change is measured against.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Published {
    /// The last event's revision (1 for the first event).
    pub revision: u64,
    /// Distinct sources then.
    pub sources: usize,
    /// Symbols then.
    pub symbols: Vec<String>,
    /// Importance step then (`importance / importance_step`, rounded down).
    pub step: u32,
    /// Size then.
    pub size: usize,
    /// The state's clock at the last `updated` event (the `update_min_secs` spacing).
    pub updated_at: Option<i64>,
    /// Whether it was told that the story turned breaking.
    pub breaking: bool,
    /// Whether it was told that the story closed.
    pub closed: bool,
}

impl StoryState {
    /// An empty state for vectors of `dim` made by the embedder with `fingerprint`.
    pub fn new(fingerprint: impl Into<String>, dim: usize) -> Self {
        StoryState {
            version: STATE_VERSION,
            fingerprint: fingerprint.into(),
            dim,
            clock: i64::MIN,
            next_seq: 0,
            stories: Vec::new(),
            retired: Vec::new(),
            terms: TermStats::default(),
            deferred: Vec::new(),
            centroids: Vec::new(),
            cohesions: Vec::new(),
            entity_filters: Vec::new(),
            ids: HashMap::new(),
            urls: HashMap::new(),
            story_ids: HashSet::new(),
            forgotten: Vec::new(),
            copy_index: crate::syndication::CopyIndex::default(),
            term_index: TermIndex::default(),
            published: BTreeMap::new(),
            closed_in_run: Vec::new(),
            seen: SeenLog::default(),
            run_day: 0,
            story_order: None,
            stored: HashMap::new(),
            stored_df: None,
            stored_df_log: 0,
            terms_apart: false,
            forgotten_stories: Vec::new(),
        }
    }

    /// Rebuilds derived data (centroid matrix, term index, lookups) after deserialising.
    ///
    /// # Errors
    /// A reason when a stored vector has the wrong dimension.
    pub fn rebuild(&mut self) -> Result<(), String> {
        // A state saved before active stories kept their own event memory holds it all in
        // `published`: each active story takes its entry back, and its stored record is
        // then out of date (the next save writes it).
        if !self.published.is_empty() {
            let mut moved = 0;
            for s in &mut self.stories {
                if let Some(p) = self.published.remove(&s.id) {
                    s.published.get_or_insert(p);
                    moved += 1;
                    if let Some(d) = self.stored.get_mut(&s.id) {
                        *d = 0;
                    }
                }
            }
            if moved > 0 {
                tracing::info!(
                    stories = moved,
                    "Moved the event memory of active stories from the state header into their records; the next save writes those records."
                );
            }
        }
        self.centroids = Vec::with_capacity(self.stories.len() * self.dim);
        self.cohesions = Vec::with_capacity(self.stories.len());
        self.entity_filters = Vec::with_capacity(self.stories.len());
        self.ids.clear();
        self.urls.clear();
        for s in &self.stories {
            if s.centroid_sum.len() != self.dim || s.rep.vector.len() != self.dim {
                return Err(format!(
                    "story {} has a vector of the wrong dimension",
                    s.id
                ));
            }
            let mut c = s.centroid_sum.clone();
            crate::kernels::normalize(&mut c);
            self.centroids.extend_from_slice(&c);
            self.cohesions.push(cohesion(&s.centroid_sum, s.size));
            self.entity_filters
                .push(crate::signals::entities::Filter::of(&s.entities));
        }
        let active = self
            .stories
            .iter()
            .map(|s| (&s.id, &s.article_ids, &s.url_keys));
        let retired = self
            .retired
            .iter()
            .map(|s| (&s.id, &s.article_ids, &s.url_keys));
        self.term_index = TermIndex::build(&self.stories);
        self.copy_index = crate::syndication::CopyIndex::default();
        for s in self.stories.iter().filter(|s| !s.originals.is_empty()) {
            if let Some(o) = s
                .originals
                .iter()
                .find(|o| o.member as usize >= s.article_ids.len())
            {
                return Err(format!(
                    "story {} has a sketch of member {} it lacks",
                    s.id, o.member
                ));
            }
            self.copy_index.insert_story(
                s.seq,
                s.originals.iter().map(|o| {
                    let m = o.member as usize;
                    let t = s.times.get(m).copied().unwrap_or(s.first_seen);
                    (o.member, s.article_ids[m].as_str(), t, o.sketch.clone())
                }),
            );
        }
        self.story_ids.clear();
        for (id, articles, urls) in active.chain(retired) {
            self.story_ids.insert(id.clone());
            for a in articles {
                self.ids.insert(a.clone(), id.clone());
            }
            for u in urls {
                self.urls.insert(*u, id.clone());
            }
        }
        Ok(())
    }

    /// Repairs a state whose clock is later than `now + max_future` (written by a version
    /// that let one future-dated article move the clock): every time later than `now` is
    /// set to `now`, and so is the clock. Returns what changed, for a warning, or `None`
    /// when the state was sound.
    pub fn repair_future(&mut self, now: i64, max_future: i64) -> Option<String> {
        if self.clock <= now.saturating_add(max_future) {
            return None;
        }
        let was = self.clock;
        let clamp = |t: &mut i64| *t = (*t).min(now);
        let mut stories = 0;
        for s in &mut self.stories {
            if s.last_seen.max(s.last_until) > now {
                stories += 1;
            }
            clamp(&mut s.first_seen);
            clamp(&mut s.last_seen);
            clamp(&mut s.last_until);
            s.times.iter_mut().for_each(clamp);
            s.sources.iter_mut().for_each(|(_, t)| clamp(t));
            if let Some(t) = s.breaking_at.as_mut() {
                clamp(t);
            }
        }
        for r in &mut self.retired {
            if r.last_seen > now {
                stories += 1;
            }
            clamp(&mut r.first_seen);
            clamp(&mut r.last_seen);
        }
        self.clock = now;
        Some(format!(
            "the state's clock was {} (in the future); set to now ({}), and the times of {stories} \
             stories later than now set to now",
            crate::time::format_rfc3339(was),
            crate::time::format_rfc3339(now),
        ))
    }

    /// The story an article already belongs to, by id or by url hash: an active or retired
    /// story, or one forgotten within `dedup_days` (see [`SeenLog`]).
    pub fn known(&self, article_id: &str, url_key: Option<u64>) -> Option<&str> {
        self.ids
            .get(article_id)
            .or_else(|| url_key.and_then(|u| self.urls.get(&u)))
            .map(String::as_str)
            .or_else(|| self.seen.story_of(article_id, url_key))
    }

    /// Whether a story with this id exists (active or retired).
    pub fn known_story(&self, story_id: &str) -> bool {
        self.story_ids.contains(story_id)
    }

    /// Whether the article of `probe` and the story in `slot` name different entities of
    /// one kind ([`crate::signals::entities::conflict`]), read through the story's filter.
    pub fn conflict(&self, probe: &crate::signals::entities::Probe<'_>, slot: usize) -> bool {
        probe.conflict(&self.entity_filters[slot], &self.stories[slot].entities)
    }

    /// Each active story's slot by its id.
    pub fn slots_by_id(&self) -> HashMap<&str, usize> {
        self.stories
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect()
    }

    /// Adds a newly opened story to the active set.
    pub fn push_story(&mut self, story: Story, centroid: &[f32]) {
        self.story_ids.insert(story.id.clone());
        self.cohesions
            .push(cohesion(&story.centroid_sum, story.size));
        self.entity_filters
            .push(crate::signals::entities::Filter::of(&story.entities));
        if !self.term_index.covers(self.stories.len()) {
            self.term_index = TermIndex::build(&self.stories);
        }
        self.term_index.push(&story.term_sum, story.last_seen);
        self.stories.push(story);
        self.centroids.extend_from_slice(centroid);
    }

    /// Replaces the term sum of the story in `slot`, keeping the term index in step.
    pub fn set_term_sum(&mut self, slot: usize, terms: Vec<(u32, f32)>) {
        self.ensure_term_index();
        self.term_index.update(slot, &terms, &self.stories);
        self.stories[slot].term_sum = terms;
    }

    /// Takes the stories whose latest article is before `cutoff` out of the term index (see
    /// [`TermIndex::evict`]); first rebuilds it when an earlier eviction went past `cutoff`.
    pub fn evict_terms(&mut self, cutoff: i64) {
        if cutoff < self.term_index.evicted_to() {
            self.term_index = TermIndex::build(&self.stories);
        }
        self.term_index.evict(cutoff, &self.stories);
    }

    /// Rebuilds the term index when it does not cover the active stories (a state whose
    /// stories were set without it, as tests and converters do).
    pub fn ensure_term_index(&mut self) {
        if !self.term_index.covers(self.stories.len()) {
            self.term_index = TermIndex::build(&self.stories);
        }
    }

    /// Records that an article belongs to a story (for [`Self::known`]).
    pub fn remember(&mut self, article_id: &str, url_key: Option<u64>, story_id: &str) {
        self.ids
            .insert(article_id.to_string(), story_id.to_string());
        if let Some(u) = url_key {
            self.urls.insert(u, story_id.to_string());
        }
    }

    /// The normalised centroid of the story in slot `i`.
    pub fn centroid(&self, i: usize) -> &[f32] {
        &self.centroids[i * self.dim..(i + 1) * self.dim]
    }

    /// Mutable access to the centroid row of slot `i`.
    pub fn centroid_mut(&mut self, i: usize) -> &mut [f32] {
        &mut self.centroids[i * self.dim..(i + 1) * self.dim]
    }

    /// Moves stories whose last article is older than `window` seconds before `now` out of
    /// the active set, and forgets retired stories whose last article is older than
    /// `window + retain` before `forget_now`. Returns how many stories were retired.
    ///
    /// The clusterer passes the latest article time of its run for both while a run is in
    /// progress (a late dump's stories stay joinable by the later articles of that dump),
    /// then the state's clock for `now` at the end of the run.
    pub fn retire(&mut self, now: i64, forget_now: i64, window: i64, retain: i64) -> usize {
        let cutoff = now.saturating_sub(window);
        let mut retired = 0;
        let mut i = 0;
        self.ensure_term_index();
        while i < self.stories.len() {
            if self.stories[i].last_seen < cutoff {
                self.term_index.swap_remove(i, &self.stories);
                let mut s = self.stories.swap_remove(i);
                if let Some(p) = s.published.take() {
                    self.published.insert(s.id.clone(), p);
                }
                self.cohesions.swap_remove(i);
                self.entity_filters.swap_remove(i);
                self.copy_index.remove_story(s.seq);
                let symbols: Vec<String> =
                    crate::signals::symbols::story_symbols_from(&s.symbols, s.size)
                        .into_iter()
                        .map(|(sym, _)| sym)
                        .collect();
                let direction = Some(s.direction(&symbols));
                let last = self.stories.len();
                if i != last {
                    let (head, tail) = self.centroids.split_at_mut(last * self.dim);
                    head[i * self.dim..(i + 1) * self.dim].copy_from_slice(&tail[..self.dim]);
                }
                self.centroids.truncate(last * self.dim);
                self.closed_in_run.push(s.id.clone());
                self.retired.push(RetiredStory {
                    id: s.id,
                    label: s.label,
                    size: s.size,
                    article_ids: s.article_ids,
                    url_keys: s.url_keys,
                    first_seen: s.first_seen,
                    last_seen: s.last_seen,
                    symbols,
                    sources: s.sources.len(),
                    breaking: s.breaking_at.is_some(),
                    outlets: s.outlets.len(),
                    copies: s.copies,
                    direction,
                    category: s.category,
                    source_names: s.sources.into_iter().map(|(name, _)| name).collect(),
                    members: s.members,
                    lead: s.lead,
                });
                retired += 1;
            } else {
                i += 1;
            }
        }
        let forget = forget_now.saturating_sub(window).saturating_sub(retain);
        // In place: this runs after every batch, and most batches forget nothing.
        let mut dropped = Vec::new();
        self.retired.retain(|r| {
            let keep = r.last_seen >= forget;
            if !keep {
                dropped.push(r.clone());
            }
            keep
        });
        for r in dropped {
            self.seen
                .remember(self.run_day, &r.id, &r.article_ids, &r.url_keys);
            for a in &r.article_ids {
                self.ids.remove(a);
            }
            for u in &r.url_keys {
                self.urls.remove(u);
            }
            self.story_ids.remove(&r.id);
            self.forgotten.push(r.id.clone());
            self.forgotten_stories.push(r);
        }
        retired
    }
}

/// Serde adapter: `Vec<f32>` as base64 (see [`codec`]).
mod vec_b64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[f32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::codec::encode_f32s(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
        let text = String::deserialize(d)?;
        super::codec::decode_f32s(&text).map_err(serde::de::Error::custom)
    }
}

/// Serde adapter: a sparse vector as base64 of its (id, `f32` bits) `u32` pairs.
mod pairs_b64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[(u32, f32)], s: S) -> Result<S::Ok, S::Error> {
        let pairs = v.iter().map(|(k, w)| (*k, w.to_bits()));
        s.serialize_str(&super::codec::encode_u32_pairs(pairs))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(u32, f32)>, D::Error> {
        let text = String::deserialize(d)?;
        let pairs = super::codec::decode_u32_pairs(&text).map_err(serde::de::Error::custom)?;
        let v: Vec<(u32, f32)> = pairs
            .into_iter()
            .map(|(k, w)| (k, f32::from_bits(w)))
            .collect();
        let ok = v.windows(2).all(|p| p[0].0 < p[1].0) && v.iter().all(|(_, w)| w.is_finite());
        if !ok {
            return Err(serde::de::Error::custom(
                "sparse vector not sorted by id or not finite",
            ));
        }
        Ok(v)
    }
}

/// Serde adapter: the document-frequency map as base64 of sorted (id, count) `u32` pairs.
mod df_b64 {
    use std::collections::HashMap;
    use std::hash::BuildHasherDefault;

    use serde::{Deserialize, Deserializer, Serializer};

    type Map = HashMap<u32, u32, BuildHasherDefault<crate::text::IdHasher>>;

    pub fn serialize<S: Serializer>(m: &Map, s: S) -> Result<S::Ok, S::Error> {
        let mut pairs: Vec<(u32, u32)> = m.iter().map(|(k, v)| (*k, *v)).collect();
        pairs.sort_unstable();
        s.serialize_str(&super::codec::encode_u32_pairs(pairs))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Map, D::Error> {
        let text = String::deserialize(d)?;
        let pairs = super::codec::decode_u32_pairs(&text).map_err(serde::de::Error::custom)?;
        Ok(pairs.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn term_vectors_add_up_by_id_and_keep_the_heaviest() {
        let mut sum = vec![(2u32, 1.0f32), (5, 2.0)];
        add_term_vector(&mut sum, &[(1, 0.5), (5, 1.0), (9, -4.0)]);
        assert_eq!(sum, vec![(1, 0.5), (2, 1.0), (5, 3.0), (9, -4.0)]);

        // Over the cap: the lightest terms go (by absolute weight), the rest stay sorted.
        let big: Vec<(u32, f32)> = (0..MAX_TERM_SUM as u32 + 10)
            .map(|i| (i * 2, 1.0 + i as f32))
            .collect();
        let mut sum = Vec::new();
        add_term_vector(&mut sum, &big);
        assert_eq!(sum.len(), MAX_TERM_SUM);
        assert_eq!(sum[0], (20, 11.0));
        assert!(sum.windows(2).all(|p| p[0].0 < p[1].0));
    }

    #[test]
    fn cohesion_is_one_for_agreeing_members_and_small_for_opposed_ones() {
        assert!((cohesion(&[2.0, 0.0], 2) - 1.0).abs() < 1e-6);
        assert!(cohesion(&[0.0, 0.0], 2) < 1e-6);
        assert!((cohesion(&[1.0, 1.0], 2) - 0.5f32.sqrt()).abs() < 1e-6);
        assert!(cohesion(&[1.0000001, 0.0], 1) <= 1.0);
    }
}
