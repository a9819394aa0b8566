//! What a run reports: the summary (whose leading fields are exactly the `news:clustered`
//! event), story records, and the writers for `--assignments` and `--stories`.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::article::Reject;
use crate::error::{Error, Result};
use crate::label::StoryLabel;
use crate::stages::publish::Collected;
use crate::store::CacheStats;
use crate::story::StoryState;
use crate::time::{format_rfc3339, format_rfc3339_millis, now_millis};

/// Rejections beyond this many are counted but not logged one by one.
pub const MAX_REJECTS_LOGGED: usize = 20;

/// Milliseconds per stage: time in each stage's `process`, and the run's wall clock.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StageMs {
    /// Ingest.
    pub ingest: f64,
    /// Embed.
    pub embed: f64,
    /// Cluster.
    pub cluster: f64,
    /// Label.
    pub label: f64,
    /// Publish.
    pub publish: f64,
    /// Whole run, wall clock.
    pub wall: f64,
}

impl StageMs {
    /// From the durations of ingest, embed, cluster, label, publish and the whole run, in
    /// that order (rounded to microseconds).
    pub fn from_durations(d: [std::time::Duration; 6]) -> Self {
        let ms = |d: std::time::Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
        StageMs {
            ingest: ms(d[0]),
            embed: ms(d[1]),
            cluster: ms(d[2]),
            label: ms(d[3]),
            publish: ms(d[4]),
            wall: ms(d[5]),
        }
    }
}

/// The run summary. The first four fields are the `news:clustered` event, exactly.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// When the run finished, RFC 3339 UTC with milliseconds.
    pub timestamp: String,
    /// Articles clustered by this run (new to the state; excludes rejects, duplicates and
    /// articles already known).
    pub total_processed: usize,
    /// Stories opened by this run.
    pub new_clusters: usize,
    /// Embedding cache counters.
    pub cache_stats: CacheStats,
    /// Input records read.
    pub records: usize,
    /// Records accepted (including duplicates).
    pub accepted: usize,
    /// Records rejected.
    pub rejected: usize,
    /// Rejections per reason.
    pub rejected_by_reason: BTreeMap<&'static str, usize>,
    /// Records folded into an earlier identical one.
    pub duplicates: usize,
    /// Articles already in the state from an earlier run.
    pub already_known: usize,
    /// Articles clustered that were older than the state's clock minus the window (a
    /// backfill, a feed hours behind): clustered among the stories of their own time.
    pub late: usize,
    /// Articles dated later than the run's wall clock plus `ingest.max_future_secs`:
    /// clustered at their ingest time instead.
    pub future_dated: usize,
    /// Articles whose id another article with other content had taken: kept under a
    /// qualified id (`ID@SOURCE`).
    pub id_collisions: usize,
    /// Stories opened or joined by this run.
    pub stories_touched: usize,
    /// Stories active in the state after the run.
    pub active_stories: usize,
    /// Time per stage.
    pub stage_ms: StageMs,
    /// What the run did with Redis (absent for a local run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisReport>,
    /// Articles with no vector (the embedding API failed for them), kept for the next run.
    #[serde(skip_serializing_if = "is_zero")]
    pub deferred: usize,
    /// Requests, bytes and fallbacks of the remote API providers (absent when none is used).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api: Option<crate::api::ApiReport>,
    /// The hash of the settings that shaped the run
    /// ([`crate::pipeline::fingerprint::pipeline_fingerprint`]).
    pub pipeline_fingerprint: String,
    /// Which command ran it: `run`, or `worker` for a queue job.
    pub origin: &'static str,
    /// `news:story` events the run published (and spooled), with p50/p99 of ingest →
    /// publish and of the causing article's publication → publish (absent when no event
    /// went out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_latency: Option<EventLatency>,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Summary {
    /// Assembles the summary from the run's parts.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        records: usize,
        rejects: &[Reject],
        duplicates: usize,
        collected: &Collected,
        opened: usize,
        state: &StoryState,
        cache_stats: CacheStats,
        stage_ms: StageMs,
    ) -> Self {
        let mut by_reason = BTreeMap::new();
        for r in rejects {
            *by_reason.entry(r.kind.as_str()).or_insert(0) += 1;
        }
        Summary {
            timestamp: format_rfc3339_millis(now_millis()),
            total_processed: collected.processed,
            new_clusters: opened,
            cache_stats,
            records,
            accepted: records - rejects.len().min(records),
            rejected: rejects.len(),
            rejected_by_reason: by_reason,
            duplicates,
            already_known: collected.known,
            late: 0,
            future_dated: 0,
            id_collisions: 0,
            stories_touched: collected.touched.len(),
            active_stories: state.stories.len(),
            redis: None,
            deferred: 0,
            api: None,
            pipeline_fingerprint: String::new(),
            origin: "run",
            event_latency: None,
            stage_ms,
        }
    }

    /// A short human summary.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let reasons: Vec<String> = self
            .rejected_by_reason
            .iter()
            .map(|(k, v)| format!("{k} {}", count(*v as u64)))
            .collect();
        let reasons = if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join(", "))
        };
        let n = |v: usize| count(v as u64);
        out.push_str(&format!(
            "articles: {} read, {} accepted, {} rejected{reasons}, {} folded, {} already known\n",
            n(self.records),
            n(self.accepted),
            n(self.rejected),
            counted(self.duplicates as u64, "duplicate", "duplicates"),
            n(self.already_known)
        ));
        out.push_str(&format!(
            "stories:  {} clustered into {} ({} new); {} active\n",
            n(self.total_processed),
            counted(self.stories_touched as u64, "story", "stories"),
            n(self.new_clusters),
            n(self.active_stories)
        ));
        let mut times = Vec::new();
        if self.late > 0 {
            times.push(format!(
                "{} late (older than the state's window; clustered among the stories of their own time)",
                self.late
            ));
        }
        if self.future_dated > 0 {
            times.push(format!(
                "{} future-dated (clustered at the ingest time)",
                self.future_dated
            ));
        }
        if self.id_collisions > 0 {
            times.push(format!(
                "{} id collisions (reused ids kept as ID@SOURCE)",
                self.id_collisions
            ));
        }
        if !times.is_empty() {
            out.push_str(&format!("input:    {}\n", times.join("; ")));
        }
        out.push_str(&match &self.redis {
            // `cacheStats` holds the shared counters of every run: say whose numbers are whose.
            Some(r) => format!(
                "cache:    {} (this run); shared cache totals {}\n",
                cache_counts(&r.run_cache_stats),
                cache_counts(&self.cache_stats)
            ),
            None => format!("cache:    {}\n", cache_counts(&self.cache_stats)),
        });
        let s = &self.stage_ms;
        out.push_str(&format!(
            "time:     ingest {:.1} ms, embed {:.1} ms, cluster {:.1} ms, label {:.1} ms, publish {:.1} ms; total {:.1} ms\n",
            s.ingest, s.embed, s.cluster, s.label, s.publish, s.wall
        ));
        if let Some(r) = &self.redis {
            out.push_str(&format!("redis:    {}\n", r.describe()));
        }
        if let Some(a) = &self.api {
            out.push_str(&format!(
                "api:      {} requests ({} retries, {} failed), {} bytes sent, {} received; {} from fallback, {} deferred, {} label fallbacks\n",
                a.requests, a.retries, a.failures, a.bytes_sent, a.bytes_received, a.fallback_items, self.deferred, a.label_fallbacks
            ));
        }
        out
    }
}

fn cache_counts(c: &CacheStats) -> String {
    format!(
        "{}, {} ({:.1}% hit rate)",
        counted(c.hits, "hit", "hits"),
        counted(c.misses, "miss", "misses"),
        c.hit_rate * 100.0
    )
}

/// `n` with thousands separators, for people: 3438 → "3,438".
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// `n` (as [`count`]) and the noun for it, singular for one: "1 duplicate", "2 duplicates".
pub fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", count(n), if n == 1 { one } else { many })
}

/// What a run did with Redis, reported in the summary.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RedisReport {
    /// `host:port/db` of the main server.
    pub server: String,
    /// `redis`, or `memory` when the cache fell back during the run.
    pub cache: String,
    /// `redis`, `file` (--state), or `mirror` (Redis was down: the local copy was used).
    pub state: String,
    /// State version written (0 when not written to Redis).
    pub state_version: u64,
    /// This run's own cache hits and misses (`cacheStats` holds the shared counters).
    pub run_cache_stats: CacheStats,
    /// Cache entries found but not used (another model's, stored under another key,
    /// corrupt or truncated): each counted as a miss.
    pub cache_invalid: u64,
    /// Whether `news:clustered` reached the bus (false: spooled).
    pub published: bool,
    /// Spooled events from earlier runs delivered at the start of this one.
    pub spool_delivered: usize,
    /// `news:story` events published.
    pub story_events: usize,
    /// Articles of earlier runs on this host whose work never reached Redis, run again by
    /// this one on the newer Redis state.
    pub reapplied: usize,
    /// Requests sent to Redis by this run (a pipeline or script counts once), not counting
    /// the final publish.
    pub round_trips: u64,
}

impl RedisReport {
    /// One line for the human summary: what the run did with Redis, so a run that fell back
    /// to its mirror cannot pass for one that reached the server.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        match self.state.as_str() {
            "mirror" => parts.push(format!(
                "{} unreachable: state from this host's mirror, work kept there for the next \
                 run that reaches Redis",
                self.server
            )),
            "file" => parts.push(format!("{} (state in the local file)", self.server)),
            _ if self.state_version > 0 => parts.push(format!(
                "{}: state saved (version {})",
                self.server, self.state_version
            )),
            _ => parts.push(format!("{}: state not saved", self.server)),
        }
        if self.cache == "memory" {
            parts.push("cache in memory".into());
        }
        parts.push(if self.published {
            format!(
                "news:clustered and {} published",
                plural(self.story_events, "news:story event", "news:story events")
            )
        } else {
            "events not published (spooled)".into()
        });
        if self.spool_delivered > 0 {
            parts.push(format!(
                "{} of earlier runs delivered",
                plural(self.spool_delivered, "spooled event", "spooled events")
            ));
        }
        if self.reapplied > 0 {
            parts.push(format!(
                "{} of earlier runs re-applied",
                plural(self.reapplied, "article", "articles")
            ));
        }
        parts.join("; ")
    }
}

/// `n` and the noun for it, singular for one.
fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// One story as written by `--stories`, stored in Redis for consumers, and listed by
/// `perps-news stories`.
#[derive(Debug, Clone, Serialize)]
pub struct StoryRecord {
    /// Story id.
    pub id: String,
    /// Label.
    pub label: String,
    /// Category: the labeler's, else the rule categorizer's for the label (absent when no
    /// rule matches).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Number of articles.
    pub size: usize,
    /// Member ids, in joining order.
    pub articles: Vec<String>,
    /// Earliest member time, RFC 3339.
    pub first_published_at: String,
    /// Latest member time, RFC 3339.
    pub last_published_at: String,
    /// The same time in epoch seconds (not serialised): the score of `perps:stories`.
    #[serde(skip)]
    pub last_seen: i64,
    /// Characteristic terms.
    pub top_terms: Vec<String>,
    /// Perp symbols the story touches, heaviest first.
    pub symbols: Vec<String>,
    /// Distinct sources with an original article (syndicated copies do not count).
    pub sources: usize,
    /// Distinct outlets, syndicated copies included.
    pub outlets: usize,
    /// Members that are syndicated copies, with their originals.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<CopyRecord>,
    /// Which way the story points, overall and per symbol.
    pub direction: crate::signals::sentiment::StoryDirection,
    /// Articles in the hour up to the state's clock.
    pub articles_last_hour: usize,
    /// Heat at the state's clock (see `Story::heat`).
    pub heat: f64,
    /// Whether (and since when) the story is breaking.
    pub breaking: bool,
    /// Whether it is still active (takes new articles).
    pub active: bool,
    /// Importance 0..100 at the state's clock (see [`crate::signals::importance`]).
    pub importance: f64,
    /// Its `news:story` events so far (the latest event's revision; 0 before any).
    pub revision: u64,
    /// The story's lead article (its representative).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lead: Option<MemberRecord>,
    /// The latest member articles, oldest first (at most `[events] member_articles`).
    pub members: Vec<MemberRecord>,
    /// Members not in `members` (older ones).
    pub members_omitted: usize,
}

/// The rule categorizer's category of a story label, for stories no labeler categorized
/// (None when no rule matches): cheap, and what importance weighs.
fn rule_category(label: &str) -> Option<String> {
    static RULES: std::sync::OnceLock<crate::label::category::RuleCategorizer> =
        std::sync::OnceLock::new();
    let c = RULES.get_or_init(Default::default).categorize(label, "");
    (c.category != crate::label::category::FALLBACK).then_some(c.category)
}

/// How stale a run's events were when they went out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventLatency {
    /// Events published.
    pub events: usize,
    /// From the run reading its input to the events going out.
    pub ingest_to_publish_ms: Percentiles,
    /// From the causing article's publication time to the event going out.
    pub publication_to_publish_ms: Percentiles,
}

/// p50 and p99 of a sample (nearest rank), in ms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50: i64,
    /// 99th percentile.
    pub p99: i64,
}

impl Percentiles {
    /// Of `sample` (zeros when empty).
    pub fn of(mut sample: Vec<i64>) -> Self {
        if sample.is_empty() {
            return Percentiles::default();
        }
        sample.sort_unstable();
        let rank =
            |q: f64| sample[((q * sample.len() as f64).ceil() as usize).clamp(1, sample.len()) - 1];
        Percentiles {
            p50: rank(0.5),
            p99: rank(0.99),
        }
    }
}

/// A member article of a story record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemberRecord {
    /// Article id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Url, when the input gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Source, when the input gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Publication time, RFC 3339.
    pub published_at: String,
}

impl MemberRecord {
    /// The record of member `m`.
    pub fn of(m: &crate::story::Member) -> Self {
        MemberRecord {
            id: m.id.clone(),
            title: m.title.clone(),
            url: m.url.clone(),
            source: m.source.clone(),
            published_at: format_rfc3339(m.published),
        }
    }
}

/// What a story record is read with: the reference time, the heat decay and the importance
/// scorer.
#[derive(Clone, Copy)]
pub struct RecordContext<'a> {
    /// The state's clock: heat and importance are measured at it.
    pub now: i64,
    /// Heat decay (`signals.heat_tau_hours`).
    pub tau_hours: f64,
    /// The importance scorer.
    pub importance: &'a crate::signals::importance::Importance,
}

impl StoryRecord {
    /// The record of an active story at time `now`.
    pub fn from_story(
        s: &crate::story::Story,
        ctx: RecordContext<'_>,
        terms: Option<Vec<String>>,
    ) -> Self {
        let symbols: Vec<String> = crate::signals::symbols::story_symbols_from(&s.symbols, s.size)
            .into_iter()
            .map(|(sym, _)| sym)
            .collect();
        let heat = (s.heat(ctx.now, ctx.tau_hours) * 1000.0).round() / 1000.0;
        let names: Vec<String> = s.sources.iter().map(|(n, _)| n.clone()).collect();
        let category = s.category.clone().or_else(|| rule_category(&s.label));
        let importance = ctx
            .importance
            .score(&crate::signals::importance::ImportanceInputs {
                heat,
                heat_rise: crate::signals::heat::heat_rise(&s.sources, ctx.now, ctx.tau_hours),
                sources: &names,
                category: category.as_deref(),
                symbols: &symbols,
                breaking: s.breaking_at.is_some(),
            });
        StoryRecord {
            id: s.id.clone(),
            label: s.label.clone(),
            category,
            size: s.size,
            articles: s.article_ids.clone(),
            first_published_at: format_rfc3339(s.first_seen),
            last_published_at: format_rfc3339(s.last_seen),
            last_seen: s.last_seen,
            top_terms: terms
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| s.top_terms.clone()),
            direction: s.direction(&symbols),
            symbols,
            sources: s.sources.len(),
            outlets: s.outlets.len(),
            copies: copy_records(&s.copies),
            articles_last_hour: s.last_hour(ctx.now),
            heat,
            breaking: s.breaking_at.is_some(),
            active: true,
            importance,
            revision: 0,
            lead: s.lead.as_ref().map(MemberRecord::of),
            members: s.members.iter().map(MemberRecord::of).collect(),
            members_omitted: s.size.saturating_sub(s.members.len()),
        }
    }

    /// The record of retired story `r`: no heat (it is past the window), importance from
    /// the rest.
    pub fn from_retired(
        r: &crate::story::RetiredStory,
        ctx: RecordContext<'_>,
        terms: Option<Vec<String>>,
        category: Option<String>,
    ) -> Self {
        let category = category
            .or_else(|| r.category.clone())
            .or_else(|| rule_category(&r.label));
        let importance = ctx
            .importance
            .score(&crate::signals::importance::ImportanceInputs {
                heat: 0.0,
                heat_rise: 0.0,
                sources: &r.source_names,
                category: category.as_deref(),
                symbols: &r.symbols,
                breaking: r.breaking,
            });
        StoryRecord {
            id: r.id.clone(),
            label: r.label.clone(),
            category,
            size: r.size,
            articles: r.article_ids.clone(),
            first_published_at: format_rfc3339(r.first_seen),
            last_published_at: format_rfc3339(r.last_seen),
            last_seen: r.last_seen,
            top_terms: terms.unwrap_or_default(),
            symbols: r.symbols.clone(),
            sources: r.sources,
            outlets: r.outlets,
            copies: copy_records(&r.copies),
            direction: r.direction.clone().unwrap_or_else(|| {
                crate::signals::sentiment::DirectionTally::default().story_direction(&r.symbols)
            }),
            articles_last_hour: 0,
            heat: 0.0,
            breaking: r.breaking,
            active: false,
            importance,
            revision: 0,
            lead: r.lead.as_ref().map(MemberRecord::of),
            members: r.members.iter().map(MemberRecord::of).collect(),
            members_omitted: r.size.saturating_sub(r.members.len()),
        }
    }

    /// The record of active story `s`, with its event revision.
    pub fn of_active(s: &crate::story::Story, ctx: RecordContext<'_>) -> Self {
        let mut rec = Self::from_story(s, ctx, None);
        rec.revision = s.published.as_ref().map_or(0, |p| p.revision);
        rec
    }

    /// Records for `ids` from the state (active or retired), with this run's labels, heat
    /// and importance measured at the state's clock, and each story's event revision.
    pub fn collect(
        state: &StoryState,
        ids: &[String],
        labels: &HashMap<String, StoryLabel>,
        ctx: RecordContext<'_>,
    ) -> Vec<Self> {
        let active = state.slots_by_id();
        // Forgotten during this run: still a story the run opened or joined.
        let retired: HashMap<&str, &crate::story::RetiredStory> = state
            .retired
            .iter()
            .chain(&state.forgotten_stories)
            .map(|s| (s.id.as_str(), s))
            .collect();
        ids.iter()
            .filter_map(|id| {
                let terms = labels.get(id).map(|l| l.top_terms.clone());
                let (mut rec, published) = if let Some(&i) = active.get(id.as_str()) {
                    let s = &state.stories[i];
                    (Self::from_story(s, ctx, terms), s.published.as_ref())
                } else {
                    let category = labels.get(id).and_then(|l| l.category.clone());
                    let rec = Self::from_retired(retired.get(id.as_str())?, ctx, terms, category);
                    (rec, state.published.get(id))
                };
                rec.revision = published.map_or(0, |p| p.revision);
                Some(rec)
            })
            .collect()
    }
}

/// Writes JSON Lines of `items` to `path` (`-` = stdout).
///
/// # Errors
/// [`Error::Io`] naming the path.
pub fn write_jsonl<T: Serialize>(path: &Path, items: impl IntoIterator<Item = T>) -> Result<()> {
    let write = |w: &mut dyn Write| -> std::io::Result<()> {
        for item in items {
            serde_json::to_writer(&mut *w, &item)?;
            w.write_all(b"\n")?;
        }
        w.flush()
    };
    if path.as_os_str() == "-" {
        let stdout = std::io::stdout();
        let mut lock = std::io::BufWriter::new(stdout.lock());
        write(&mut lock).map_err(|e| Error::io(path, e))
    } else {
        let f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
        write(&mut std::io::BufWriter::new(f)).map_err(|e| Error::io(path, e))
    }
}

/// One line of `--assignments`.
#[derive(Debug, Serialize)]
pub struct AssignmentLine<'a> {
    /// Article id.
    pub id: &'a str,
    /// Story id.
    pub cluster: &'a str,
    /// The original this article is a syndicated copy of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<&'a str>,
}

/// A syndicated copy in a story record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyRecord {
    /// The copy's article id.
    pub id: String,
    /// The original's article id.
    pub duplicate_of: String,
}

fn copy_records(copies: &[(String, String)]) -> Vec<CopyRecord> {
    copies
        .iter()
        .map(|(id, of)| CopyRecord {
            id: id.clone(),
            duplicate_of: of.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_formatted_for_people() {
        for (n, s) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (3438, "3,438"),
            (50_000, "50,000"),
            (1_234_567, "1,234,567"),
        ] {
            assert_eq!(count(n), s);
        }
        assert_eq!(counted(1, "duplicate", "duplicates"), "1 duplicate");
        assert_eq!(counted(0, "duplicate", "duplicates"), "0 duplicates");
        assert_eq!(counted(3438, "story", "stories"), "3,438 stories");
    }
}
