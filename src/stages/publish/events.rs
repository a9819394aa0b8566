//! The run's `news:story` events: which stories consumers hear about, and as what.
//!
//! Decided once per run, after the cluster stage, from the records of the stories the run
//! touched or closed and what consumers last heard of each (`StoryState::published`, saved
//! with the state, so the next run continues the revisions):
//!
//! - at most one event per story per run, of the strongest kind that applies:
//!   `breaking` (the story turned breaking in this run) > `opened` (it is new) >
//!   `updated` (a material change since its last event);
//! - a material change is a new distinct source, a new symbol, the importance crossing a
//!   multiple of `[events] importance_step`, or the size doubling. A story gets at most one
//!   `updated` per `update_min_secs` of the state's clock; a change held back is not lost:
//!   the baseline stays, so it goes out with the story's next event;
//! - a story that left the active window in this run gets `closed` after its other event,
//!   so a backfill that opens and closes a story in one run sends both, in that order;
//! - `revision` counts a story's events, 1 for its first, strictly increasing.
//!
//! The events carry the story's lead article and the article that caused them (the
//! story's latest article of this run; none for `closed`). `publishedAt` is stamped when
//! they are published (see [`crate::bus::story_messages`]).

use std::collections::{HashMap, HashSet};

use super::EventsConfig;
pub use crate::bus::EventKind;
use crate::bus::{EventArticle, NewsStory};
use crate::report::StoryRecord;
use crate::story::{Published, StoryState};
use crate::time::format_rfc3339_millis;

/// What the run did that events are decided from.
#[derive(Debug, Default)]
pub struct RunChanges<'a> {
    /// Stories the run opened.
    pub opened: HashSet<&'a str>,
    /// Stories that turned breaking in the run.
    pub breaking: HashSet<&'a str>,
    /// Per story, the id of its latest article placed by this run.
    pub cause: HashMap<&'a str, &'a str>,
}

impl<'a> RunChanges<'a> {
    /// What the publish stage collected: the opened and breaking events, and each story's
    /// latest article placed (not already known) by the run.
    pub fn of(c: &'a super::Collected) -> Self {
        use crate::stages::cluster::{Placement, StoryEventKind};
        let mut r = RunChanges::default();
        for e in &c.events {
            match e.kind {
                StoryEventKind::Opened => r.opened.insert(e.story_id.as_str()),
                StoryEventKind::Breaking => r.breaking.insert(e.story_id.as_str()),
            };
        }
        for a in &c.assignments {
            if a.placement != Placement::Known {
                r.cause.insert(a.story_id.as_str(), a.article_id.as_str());
            }
        }
        r
    }
}

/// The events of a run, in order: for each record (touched stories first, in first-touched
/// order, then stories only closed), its event if any, then its `closed` if it closed.
/// Updates `state.published` and each record's `revision`. `ingested_at_ms` is when the
/// run read its input (wall clock, ms).
pub fn decide(
    state: &mut StoryState,
    records: &mut [StoryRecord],
    run: &RunChanges<'_>,
    cfg: &EventsConfig,
    ingested_at_ms: i64,
) -> Vec<NewsStory> {
    let clock = state.clock;
    let closed: HashSet<&str> = state.closed_in_run.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    // An active story keeps its own event memory, a retired one's is in `state.published`.
    let slots: Vec<Option<usize>> = {
        let active = state.slots_by_id();
        records
            .iter()
            .map(|r| active.get(r.id.as_str()).copied())
            .collect()
    };
    for (rec, slot) in records.iter_mut().zip(slots) {
        let id = rec.id.as_str();
        let before = match slot {
            Some(i) => state.stories[i].published.clone(),
            None => state.published.get(id).cloned(),
        };
        let mut now = before.clone().unwrap_or_default();
        let step = importance_step(rec.importance, cfg.importance_step);
        let kind = if run.breaking.contains(id) && !now.breaking {
            Some(EventKind::Breaking)
        } else if before.is_none() && run.opened.contains(id) {
            Some(EventKind::Opened)
        } else if run.cause.contains_key(id) && material(&now, rec, step, before.is_none()) {
            let spaced = now
                .updated_at
                .is_none_or(|t| clock.saturating_sub(t) >= cfg.update_min_secs as i64);
            spaced.then_some(EventKind::Updated)
        } else {
            None
        };
        if let Some(kind) = kind {
            now.revision += 1;
            now.sources = rec.sources;
            now.symbols = rec.symbols.clone();
            now.step = step;
            now.size = rec.size;
            now.breaking |= rec.breaking;
            if kind == EventKind::Updated {
                now.updated_at = Some(clock);
            }
            let cause = run.cause.get(id).and_then(|a| article(rec, a));
            out.push(event(rec, kind, now.revision, cause, ingested_at_ms));
        }
        if closed.contains(id) && !rec.active && !now.closed {
            now.revision += 1;
            now.closed = true;
            out.push(event(
                rec,
                EventKind::Closed,
                now.revision,
                None,
                ingested_at_ms,
            ));
        }
        rec.revision = now.revision;
        if Some(&now) != before.as_ref() && now.revision > 0 {
            match slot {
                Some(i) => state.stories[i].published = Some(now),
                None => {
                    state.published.insert(rec.id.clone(), now);
                }
            }
        }
    }
    // A story forgotten within the run (by the clusterer) keeps no memory: the one place
    // that drops it.
    for r in &state.forgotten_stories {
        state.published.remove(&r.id);
    }
    out
}

/// `importance / step`, rounded down (0 when importance steps are off).
fn importance_step(importance: f64, step: f64) -> u32 {
    if step > 0.0 {
        (importance / step).floor().clamp(0.0, f64::from(u32::MAX)) as u32
    } else {
        0
    }
}

/// Whether `rec` differs materially from what consumers heard last (`last`); a story they
/// never heard of (a state from before events had kinds) always does.
fn material(last: &Published, rec: &StoryRecord, step: u32, never_published: bool) -> bool {
    never_published
        || rec.sources > last.sources
        || rec.symbols.iter().any(|s| !last.symbols.contains(s))
        || step != last.step
        || rec.size >= last.size.saturating_mul(2).max(2)
}

/// The member `id` of `rec`, as an event article.
fn article(rec: &StoryRecord, id: &str) -> Option<EventArticle> {
    rec.members
        .iter()
        .rev()
        .find(|m| m.id == id)
        .map(EventArticle::from_record)
}

fn event(
    rec: &StoryRecord,
    kind: EventKind,
    revision: u64,
    cause: Option<EventArticle>,
    ingested_at_ms: i64,
) -> NewsStory {
    NewsStory {
        story_id: rec.id.clone(),
        label: rec.label.clone(),
        symbols: rec.symbols.clone(),
        size: rec.size,
        sources: rec.sources,
        heat: rec.heat,
        first_seen: rec.first_published_at.clone(),
        last_seen: rec.last_published_at.clone(),
        breaking: rec.breaking,
        outlets: rec.outlets,
        direction: Some(rec.direction.clone()),
        event: Some(kind),
        revision: revision.max(1),
        category: rec.category.clone(),
        importance: rec.importance,
        active: rec.active,
        lead: rec.lead.as_ref().map(EventArticle::from_record),
        cause,
        ingested_at: Some(format_rfc3339_millis(ingested_at_ms)),
        published_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::MemberRecord;

    fn rec(
        id: &str,
        sources: usize,
        symbols: &[&str],
        size: usize,
        importance: f64,
    ) -> StoryRecord {
        let symbols: Vec<String> = symbols.iter().map(|s| (*s).to_string()).collect();
        let members = (0..size.min(3))
            .map(|i| MemberRecord {
                id: format!("{id}-a{i}"),
                title: format!("title {i}"),
                url: Some(format!("https://x.example/{id}/{i}")),
                source: Some(format!("src{i}")),
                published_at: format_rfc3339_millis(1_000_000),
            })
            .collect::<Vec<_>>();
        StoryRecord {
            id: id.into(),
            label: format!("story {id}"),
            category: None,
            size,
            articles: vec![],
            first_published_at: String::new(),
            last_published_at: String::new(),
            last_seen: 0,
            top_terms: vec![],
            direction: crate::signals::sentiment::DirectionTally::default()
                .story_direction(&symbols),
            symbols,
            sources,
            outlets: sources,
            copies: vec![],
            articles_last_hour: 0,
            heat: 0.0,
            breaking: false,
            active: true,
            importance,
            revision: 0,
            lead: members.first().cloned(),
            members,
            members_omitted: 0,
        }
    }

    /// A run at `clock` over `records`: `opened`/`breaking` story ids, and the stories an
    /// article joined (their latest member is the cause).
    fn run(
        state: &mut StoryState,
        clock: i64,
        records: &mut [StoryRecord],
        opened: &[&str],
        breaking: &[&str],
    ) -> Vec<(String, EventKind, u64)> {
        state.clock = clock;
        let causes: Vec<(String, String)> = records
            .iter()
            .map(|r| {
                (
                    r.id.clone(),
                    r.members.last().map(|m| m.id.clone()).unwrap_or_default(),
                )
            })
            .collect();
        let changes = RunChanges {
            opened: opened.iter().copied().collect(),
            breaking: breaking.iter().copied().collect(),
            cause: causes
                .iter()
                .map(|(s, a)| (s.as_str(), a.as_str()))
                .collect(),
        };
        let out = decide(state, records, &changes, &EventsConfig::default(), 0);
        state.closed_in_run.clear();
        out.into_iter()
            .map(|e| (e.story_id, e.event.unwrap(), e.revision))
            .collect()
    }

    fn ev(id: &str, k: EventKind, rev: u64) -> (String, EventKind, u64) {
        (id.into(), k, rev)
    }

    #[test]
    fn a_story_opening_breaking_gets_one_breaking_event() {
        let mut st = StoryState::new("f", 4);
        let mut r = [rec("s1", 3, &["BTC"], 3, 40.0)];
        r[0].breaking = true;
        let out = run(&mut st, 1000, &mut r, &["s1"], &["s1"]);
        assert_eq!(out, vec![ev("s1", EventKind::Breaking, 1)]);
        assert_eq!(r[0].revision, 1);
        // Breaking fires once: the next run with no change sends nothing.
        let out = run(&mut st, 2000, &mut r, &[], &[]);
        assert_eq!(out, vec![]);
    }

    #[test]
    fn updates_go_out_only_on_material_changes() {
        let mut st = StoryState::new("f", 4);
        let out = run(
            &mut st,
            1000,
            &mut [rec("s1", 1, &["BTC"], 1, 5.0)],
            &["s1"],
            &[],
        );
        assert_eq!(out, vec![ev("s1", EventKind::Opened, 1)]);
        // Another article from a known source: not material.
        let out = run(
            &mut st,
            2000,
            &mut [rec("s1", 1, &["BTC"], 1, 5.0)],
            &[],
            &[],
        );
        assert_eq!(out, vec![]);
        // A new source.
        let out = run(
            &mut st,
            3000,
            &mut [rec("s1", 2, &["BTC"], 2, 6.0)],
            &[],
            &[],
        );
        assert_eq!(out, vec![ev("s1", EventKind::Updated, 2)]);
        // A new symbol.
        let out = run(
            &mut st,
            4000,
            &mut [rec("s1", 2, &["BTC", "ETH"], 3, 6.0)],
            &[],
            &[],
        );
        assert_eq!(out, vec![ev("s1", EventKind::Updated, 3)]);
        // Importance crossing a step of 10.
        let out = run(
            &mut st,
            5000,
            &mut [rec("s1", 2, &["BTC", "ETH"], 3, 12.0)],
            &[],
            &[],
        );
        assert_eq!(out, vec![ev("s1", EventKind::Updated, 4)]);
        // The size doubling (3 → 6).
        let out = run(
            &mut st,
            6000,
            &mut [rec("s1", 2, &["ETH", "BTC"], 5, 12.0)],
            &[],
            &[],
        );
        assert_eq!(out, vec![]);
        let out = run(
            &mut st,
            7000,
            &mut [rec("s1", 2, &["ETH", "BTC"], 6, 12.0)],
            &[],
            &[],
        );
        assert_eq!(out, vec![ev("s1", EventKind::Updated, 5)]);
    }

    #[test]
    fn updates_are_spaced_and_held_changes_go_out_later() {
        let mut st = StoryState::new("f", 4);
        run(
            &mut st,
            1000,
            &mut [rec("s1", 1, &[], 1, 5.0)],
            &["s1"],
            &[],
        );
        let out = run(&mut st, 1010, &mut [rec("s1", 2, &[], 2, 5.0)], &[], &[]);
        assert_eq!(out, vec![ev("s1", EventKind::Updated, 2)]);
        // 30 s later, a new source: held back (update_min_secs = 60).
        let out = run(&mut st, 1040, &mut [rec("s1", 3, &[], 3, 5.0)], &[], &[]);
        assert_eq!(out, vec![]);
        // The next article, 60 s after the last update, brings nothing new itself: the held
        // change goes out with it.
        let out = run(&mut st, 1070, &mut [rec("s1", 3, &[], 3, 5.0)], &[], &[]);
        assert_eq!(out, vec![ev("s1", EventKind::Updated, 3)]);
        // Breaking is never held back.
        let mut r = [rec("s1", 4, &[], 4, 5.0)];
        r[0].breaking = true;
        let out = run(&mut st, 1075, &mut r, &[], &["s1"]);
        assert_eq!(out, vec![ev("s1", EventKind::Breaking, 4)]);
    }

    #[test]
    fn a_story_opened_and_closed_in_one_run_gets_both_in_order() {
        let mut st = StoryState::new("f", 4);
        let mut r = [rec("s1", 1, &["SOL"], 2, 5.0), rec("s2", 1, &[], 1, 5.0)];
        r[0].active = false;
        st.closed_in_run.push("s1".into());
        // Keep s1 known to the state as retired, as the clusterer leaves it.
        st.retired.push(crate::story::RetiredStory {
            id: "s1".into(),
            label: String::new(),
            size: 2,
            article_ids: vec![],
            url_keys: vec![],
            first_seen: 0,
            last_seen: 0,
            symbols: vec![],
            sources: 1,
            breaking: false,
            outlets: 1,
            copies: vec![],
            direction: None,
            category: None,
            source_names: vec![],
            members: vec![],
            lead: None,
        });
        let out = run(&mut st, 1000, &mut r, &["s1", "s2"], &[]);
        assert_eq!(
            out,
            vec![
                ev("s1", EventKind::Opened, 1),
                ev("s1", EventKind::Closed, 2),
                ev("s2", EventKind::Opened, 1),
            ]
        );
        assert!(st.published["s1"].closed);
        // A story forgotten within the run keeps no memory.
        let r1 = st.retired.pop().unwrap();
        st.forgotten_stories.push(r1);
        let mut r = [rec("s1", 1, &["SOL"], 2, 5.0)];
        r[0].active = false;
        assert_eq!(run(&mut st, 2000, &mut r, &[], &[]), vec![]);
        assert!(!st.published.contains_key("s1"));
    }

    #[test]
    fn events_carry_the_lead_and_the_cause() {
        let mut st = StoryState::new("f", 4);
        st.clock = 1000;
        let mut r = [rec("s1", 3, &["BTC"], 3, 40.0)];
        let changes = RunChanges {
            opened: ["s1"].into_iter().collect(),
            breaking: HashSet::new(),
            cause: [("s1", "s1-a2")].into_iter().collect(),
        };
        let out = decide(&mut st, &mut r, &changes, &EventsConfig::default(), 5_000);
        let e = &out[0];
        assert_eq!(e.lead.as_ref().unwrap().id, "s1-a0");
        let cause = e.cause.as_ref().unwrap();
        assert_eq!(
            (cause.id.as_str(), cause.url.as_deref()),
            ("s1-a2", Some("https://x.example/s1/2"))
        );
        assert_eq!(e.ingested_at.as_deref(), Some("1970-01-01T00:00:05.000Z"));
        let json = serde_json::to_value(e).unwrap();
        assert_eq!(json["event"], "opened");
        assert_eq!(json["cause"]["publishedAt"], "1970-01-01T00:16:40.000Z");
    }
}
