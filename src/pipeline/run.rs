//! One batch run: wire the stages, run them, and assemble the outcome.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{CHANNEL_CAPACITY, FirstError, drive};
use crate::article::{Notice, NoticeKind, Reject};
use crate::config::PipelineConfig;
use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::label::Labeler;
use crate::report::{StageMs, StoryRecord, Summary};
use crate::stages::Batch;
use crate::stages::cluster::{ClusterStage, Clusterer};
use crate::stages::embed::EmbedStage;
use crate::stages::ingest::{self, Duplicate};
use crate::stages::label::LabelStage;
use crate::stages::publish::PublishStage;
use crate::store::Cache;
use crate::story::StoryState;

/// One input of a run.
#[derive(Debug)]
pub enum RunInput {
    /// A file path, or `-` for stdin.
    Path(String),
    /// Bytes already in memory (benches, tests, job payloads).
    Bytes {
        /// Display name for messages.
        name: String,
        /// The dump.
        bytes: Vec<u8>,
    },
    /// Records parsed already (the worker parses a job once, to embed it before taking the
    /// state lock), with their rejects.
    Parsed(ingest::Parsed),
}

/// Settings of one run that are not part of the pipeline declaration.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Fail on the first rejected record instead of skipping it.
    pub strict: bool,
    /// Show a progress bar (callers pass "stderr is a terminal and not --quiet").
    pub progress: bool,
    /// The run's ingest time (epoch seconds), standing in for missing publication times.
    pub ingest_time: i64,
}

/// Everything a run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// Counters and timings.
    pub summary: Summary,
    /// (article id, story id) for every accepted article, in input order, each id once.
    pub assignments: Vec<(String, String)>,
    /// Article id → the original it copies, for this run's syndicated copies (and records
    /// folded into one of them or into an earlier copy's original).
    pub duplicate_of: HashMap<String, String>,
    /// The stories this run opened or joined, in first-touched order.
    pub stories: Vec<StoryRecord>,
    /// Rejected records, in input order.
    pub rejects: Vec<Reject>,
    /// Records folded into an earlier identical one.
    pub duplicates: Vec<Duplicate>,
    /// Accepted records changed to be usable (future dates clamped, reused ids qualified),
    /// in input order.
    pub notices: Vec<Notice>,
    /// Per input, in order: (name, records, accepted).
    pub per_input: Vec<(String, usize, usize)>,
    /// Stories opened or turned breaking, in order.
    pub events: Vec<crate::stages::cluster::StoryEvent>,
    /// The run's `news:story` events (see [`crate::stages::publish::events`]), not yet
    /// stamped with their publication time.
    pub story_events: Vec<crate::bus::NewsStory>,
    /// When the run started reading its input (wall clock, ms).
    pub ingested_at_ms: i64,
    /// Articles the embedder failed for, in processing order: not clustered, to be tried
    /// again by the next run.
    pub deferred: Vec<crate::stages::embed::Deferred>,
    /// The advanced state, to be saved.
    pub state: StoryState,
    /// Work of the similarity products.
    pub cluster: crate::stages::cluster::ClusterStats,
}

/// Set (to anything) to check every term-index decision against an exhaustive exact scan
/// and log the share that differ (slow: a measurement, see ARCHITECTURE.md).
pub const CHECK_CANDIDATES_ENV: &str = "PERPS_NEWS_CHECK_CANDIDATES";

struct Ingested {
    records: usize,
    per_input: Vec<(String, usize, usize)>,
    rejects: Vec<Reject>,
    duplicates: Vec<Duplicate>,
    notices: Vec<Notice>,
    time: Duration,
}

/// Runs the pipeline over `inputs`, continuing `state`.
///
/// # Errors
/// An unreadable input, a failing stage, or (with `strict`) the first rejected record.
#[allow(clippy::too_many_arguments)]
pub fn run(
    cfg: &PipelineConfig,
    inputs: Vec<RunInput>,
    state: StoryState,
    embedder: &dyn Embedder,
    cache: &dyn Cache,
    labeler: &dyn Labeler,
    symbols: &crate::signals::symbols::SymbolBook,
    importance: &crate::signals::importance::Importance,
    opts: &RunOptions,
    pool: &rayon::ThreadPool,
) -> Result<RunOutcome> {
    let started = Instant::now();
    let mut state = state;
    // Only this run's forgotten stories belong in its `--stories`.
    state.forgotten_stories.clear();
    state.closed_in_run.clear();
    state.run_day = opts.ingest_time.div_euclid(86_400);
    let dedup_days = cfg.cluster.dedup_days.clamp(0.0, 36_500.0).ceil() as i64;
    let pruned = state.seen.prune(state.run_day - dedup_days);
    if pruned > 0 {
        tracing::debug!(
            articles = pruned,
            "Forgot the articles of stories pruned over dedup_days ago."
        );
    }
    let ingested_at_ms = crate::time::now_millis();
    if let Some(what) = state.repair_future(opts.ingest_time, cfg.ingest.max_future_secs) {
        tracing::warn!("Repaired the story state: {what}.");
        // Any story may have changed: the next Redis save writes them all.
        state.stored.clear();
    }
    let fail = FirstError::default();
    let progress = opts.progress.then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {bar:40} {human_pos}/{human_len} articles {rate} eta {eta}",
            )
            .map_or_else(
                |_| indicatif::ProgressStyle::default_bar(),
                |st| {
                    st.with_key(
                        "rate",
                        |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                            let _ = write!(w, "{}/s", crate::report::count(s.per_sec() as u64));
                        },
                    )
                },
            ),
        );
        bar
    });

    let (tx_in, rx_in) = crossbeam_channel::bounded::<Batch>(CHANNEL_CAPACITY);
    let (tx_emb, rx_emb) = crossbeam_channel::bounded(CHANNEL_CAPACITY);
    let (tx_clu, rx_clu) = crossbeam_channel::bounded(CHANNEL_CAPACITY);
    let (tx_lab, rx_lab) = crossbeam_channel::bounded(CHANNEL_CAPACITY);

    let deferred = std::sync::Mutex::new(Vec::new());
    let embed = EmbedStage::new(
        embedder,
        cache,
        pool,
        symbols,
        cfg.signals.symbols_body_chars,
        &deferred,
    )
    .with_sketches(cfg.syndication.enabled)
    .with_entities(cfg.cluster.conflict_penalty > 0.0);
    // A remote embedder fills its concurrent requests from one batch.
    let batch_size = cfg.ingest.batch_size.max(embedder.preferred_batch());
    let breaking_window = (cfg.signals.breaking_window_minutes * 60.0) as i64;
    let (cluster_cfg, warning) = cfg.cluster_settings();
    if let Some(w) = warning {
        tracing::warn!(threshold = ?cluster_cfg.threshold, "{w}");
    }
    let cluster = ClusterStage::new(
        Clusterer::new(cluster_cfg, state)
            .with_breaking(cfg.signals.breaking_sources, breaking_window)
            .with_syndication(cfg.syndication.clone(), cfg.syndication_off())
            .with_member_articles(cfg.events.member_articles)
            .with_candidate_check(std::env::var_os(CHECK_CANDIDATES_ENV).is_some()),
        opts.ingest_time,
        pool,
    );
    let label = LabelStage::new(labeler);
    let publish = PublishStage::new(progress.clone());

    let (ingested, joined) = std::thread::scope(|s| {
        let fail = &fail;
        let ingest = s.spawn(|| {
            ingest_source(
                cfg,
                batch_size,
                inputs,
                opts,
                pool,
                tx_in,
                fail,
                progress.as_ref(),
            )
        });
        let e = s.spawn(move || drive(embed, rx_in, Some(tx_emb), fail).1);
        let c = s.spawn(move || drive(cluster, rx_emb, Some(tx_clu), fail));
        let l = s.spawn(move || drive(label, rx_clu, Some(tx_lab), fail).1);
        let p = s.spawn(move || drive(publish, rx_lab, None, fail));
        let join = |name: &'static str| move |_| Error::StagePanic { stage: name };
        let ingested = ingest.join().map_err(join("ingest"));
        let rest = (
            e.join().map_err(join("embed")),
            c.join().map_err(join("cluster")),
            l.join().map_err(join("label")),
            p.join().map_err(join("publish")),
        );
        (ingested, rest)
    });
    if let Some(p) = &progress {
        p.finish_and_clear();
    }
    if let Some(e) = fail.take() {
        return Err(e);
    }
    let ingested = ingested?;
    let (embed_t, cluster, label_t, publish) = joined;
    let (embed_t, (cluster, cluster_t), label_t, (publish, publish_t)) =
        (embed_t?, cluster?, label_t?, publish?);
    let ingested = ingested.ok_or(Error::StagePanic { stage: "ingest" })?;

    let clusterer = cluster.into_clusterer();
    let opened = clusterer.opened();
    let late = clusterer.late();
    let cluster_stats = clusterer.stats();
    if cluster_stats.checked > 0 {
        tracing::info!(
            checked = cluster_stats.checked,
            differing = cluster_stats.differing,
            share = cluster_stats.differing as f64 / cluster_stats.checked as f64,
            postings = cluster_stats.index_postings,
            "Term-index decisions checked against an exhaustive exact scan."
        );
    }
    let mut state = clusterer.into_state();
    let collected = publish.into_collected();

    // Labels go back into the state, active or already retired.
    for s in &mut state.stories {
        if let Some(l) = collected.labels.get(&s.id) {
            l.apply_to(s);
        }
    }
    for r in &mut state.retired {
        if let Some(l) = collected.labels.get(&r.id) {
            r.label.clone_from(&l.label);
            if l.category.is_some() {
                r.category.clone_from(&l.category);
            }
        }
    }

    // Assignments in input order; duplicates take their original's story.
    let story_of: HashMap<&str, &str> = collected
        .assignments
        .iter()
        .map(|a| (a.article_id.as_str(), a.story_id.as_str()))
        .collect();
    let mut ordered: Vec<(usize, &str, &str)> = collected
        .assignments
        .iter()
        .map(|a| (a.seq, a.article_id.as_str(), a.story_id.as_str()))
        .collect();
    for d in &ingested.duplicates {
        if let Some(story) = story_of.get(d.of.as_str()) {
            ordered.push((d.seq, d.id.as_str(), story));
        }
    }
    ordered.sort_unstable_by_key(|x| x.0);
    let mut duplicate_of: HashMap<String, String> = collected
        .assignments
        .iter()
        .filter_map(|a| Some((a.article_id.clone(), a.duplicate_of.clone()?)))
        .collect();
    // A record folded by ingest is a copy of what it was folded into (or of that one's
    // original).
    for d in &ingested.duplicates {
        let root = duplicate_of
            .get(&d.of)
            .cloned()
            .unwrap_or_else(|| d.of.clone());
        if root != d.id {
            duplicate_of.insert(d.id.clone(), root);
        }
    }
    let mut seen = std::collections::HashSet::new();
    let assignments: Vec<(String, String)> = ordered
        .into_iter()
        .filter(|(_, id, _)| seen.insert(*id))
        .map(|(_, id, story)| (id.to_string(), story.to_string()))
        .collect();

    cache.flush();
    // Records of the stories the run touched, then of those it only closed; the run's
    // events are decided from them (and set their revisions).
    let mut ids = collected.touched.clone();
    let touched: std::collections::HashSet<&str> =
        collected.touched.iter().map(String::as_str).collect();
    let only_closed: Vec<String> = state
        .closed_in_run
        .iter()
        .filter(|id| !touched.contains(id.as_str()))
        .cloned()
        .collect();
    ids.extend(only_closed);
    let ctx = crate::report::RecordContext {
        now: state.clock,
        tau_hours: cfg.signals.heat_tau_hours,
        importance,
    };
    let mut stories = StoryRecord::collect(&state, &ids, &collected.labels, ctx);
    let changes = crate::stages::publish::events::RunChanges::of(&collected);
    let story_events = crate::stages::publish::events::decide(
        &mut state,
        &mut stories,
        &changes,
        &cfg.events,
        ingested_at_ms,
    );
    state.closed_in_run.clear();
    state.forgotten_stories = Vec::new();
    let times = StageMs::from_durations([
        ingested.time,
        embed_t,
        cluster_t,
        label_t,
        publish_t,
        started.elapsed(),
    ]);
    let deferred = deferred
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut summary = Summary::build(
        ingested.records,
        &ingested.rejects,
        ingested.duplicates.len(),
        &collected,
        opened,
        &state,
        cache.stats(),
        times,
    );
    summary.deferred = deferred.len();
    summary.late = late;
    summary.pipeline_fingerprint = super::fingerprint::pipeline_fingerprint(cfg);
    let count = |k| ingested.notices.iter().filter(|n| n.kind == k).count();
    summary.future_dated = count(NoticeKind::FutureDated);
    summary.id_collisions = count(NoticeKind::IdCollision);
    tracing::info!(
        pipeline = %cfg.name,
        processed = summary.total_processed,
        new_clusters = summary.new_clusters,
        rejected = summary.rejected,
        wall_ms = times.wall,
        "Run finished."
    );
    Ok(RunOutcome {
        summary,
        assignments,
        duplicate_of,
        stories,
        rejects: ingested.rejects,
        duplicates: ingested.duplicates,
        notices: ingested.notices,
        per_input: ingested.per_input,
        events: collected.events.clone(),
        story_events,
        ingested_at_ms,
        deferred,
        state,
        cluster: cluster_stats,
    })
}

/// The source: read, parse, deduplicate, order, and send batches.
#[allow(clippy::too_many_arguments)]
fn ingest_source(
    cfg: &PipelineConfig,
    batch_size: usize,
    inputs: Vec<RunInput>,
    opts: &RunOptions,
    pool: &rayon::ThreadPool,
    tx: crossbeam_channel::Sender<Batch>,
    fail: &FirstError,
    progress: Option<&indicatif::ProgressBar>,
) -> Option<Ingested> {
    let t0 = Instant::now();
    let mut parsed = ingest::Parsed::default();
    for input in inputs {
        let read = match input {
            RunInput::Parsed(p) => {
                parsed.append(p);
                continue;
            }
            RunInput::Path(p) => match ingest::read_input(&p) {
                Ok(i) => i,
                Err(e) => {
                    fail.set(e);
                    return None;
                }
            },
            RunInput::Bytes { name, bytes } => ingest::input_from_bytes(&name, bytes),
        };
        parsed.append(ingest::parse_inputs(
            &[read],
            cfg.ingest.max_article_bytes,
            pool,
        ));
    }
    if opts.strict
        && let Some(first) = parsed.rejects.first()
    {
        fail.set(Error::Strict(first.to_string()));
        return None;
    }
    // The callers report every reject once (`run` on stderr, the worker in the job's
    // result); a warning here printed each of them a second time.
    for r in parsed
        .rejects
        .iter()
        .take(crate::report::MAX_REJECTS_LOGGED)
    {
        tracing::debug!(origin = %r.origin, kind = r.kind.as_str(), field = r.field, "Rejected record: {}", r.reason);
    }
    let mut articles = parsed.articles;
    let mut notices =
        ingest::clamp_future(&mut articles, opts.ingest_time, cfg.ingest.max_future_secs);
    let deduped = ingest::dedup_and_order(articles, opts.ingest_time);
    notices.extend(deduped.collisions);
    notices.sort_by(|a, b| {
        (a.origin.file.as_ref(), a.origin.line).cmp(&(b.origin.file.as_ref(), b.origin.line))
    });
    let (articles, duplicates) = (deduped.articles, deduped.duplicates);
    if let Some(p) = progress {
        p.set_length(articles.len() as u64);
    }
    let time = t0.elapsed();
    // Big runs take bigger batches (the result does not depend on it).
    let batch_size = if cfg.ingest.auto_batch {
        super::auto_batch(batch_size, articles.len())
    } else {
        batch_size
    };
    let mut it = articles.into_iter();
    loop {
        let articles: Vec<_> = it.by_ref().take(batch_size).collect();
        if articles.is_empty() || tx.send(Batch { articles }).is_err() {
            break;
        }
    }
    Some(Ingested {
        per_input: parsed.per_input,
        records: parsed.records,
        rejects: parsed.rejects,
        duplicates,
        notices,
        time,
    })
}
