//! The message bus of the wider trading system: typed payloads for every channel, publishing
//! (pub/sub plus a capped stream of the same name, because pub/sub drops messages while a
//! subscriber is away), a local spool for events Redis could not take, and the subscriber
//! behind `perps-news subscribe`.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::CacheStats;
use crate::store::redis::Pool;

/// `news:clustered`: published after every batch run.
pub const NEWS_CLUSTERED: &str = "news:clustered";
/// `news:story`: a story opened, changed materially, turned breaking, or closed.
pub const NEWS_STORY: &str = "news:story";
/// `news:symbol:<SYMBOL>`: every `news:story` event again, once per symbol of its story
/// (pub/sub only; the durable stream is `news:story`).
pub const NEWS_SYMBOL_PREFIX: &str = "news:symbol:";
/// `trading:cycle:complete`
pub const TRADING_CYCLE_COMPLETE: &str = "trading:cycle:complete";
/// `execution:filled`
pub const EXECUTION_FILLED: &str = "execution:filled";
/// `execution:failed`
pub const EXECUTION_FAILED: &str = "execution:failed";
/// `circuit:breaker:open`
pub const CIRCUIT_BREAKER_OPEN: &str = "circuit:breaker:open";
/// `position:opened`
pub const POSITION_OPENED: &str = "position:opened";
/// `position:closed`
pub const POSITION_CLOSED: &str = "position:closed";

/// `news:clustered` payload (more fields may follow these in what is published).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewsClustered {
    /// RFC 3339 UTC with milliseconds.
    pub timestamp: String,
    /// Articles clustered by the run.
    pub total_processed: usize,
    /// Stories opened by the run.
    pub new_clusters: usize,
    /// Cache counters.
    pub cache_stats: CacheStats,
}

/// What happened to a story.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// The story is new.
    Opened,
    /// A material change (see the module doc).
    Updated,
    /// The story turned breaking (once per story, ever).
    Breaking,
    /// The story left the active window: it takes no more articles.
    Closed,
}

impl EventKind {
    /// Every kind, in the order of the contract.
    pub const ALL: [EventKind; 4] = [
        EventKind::Opened,
        EventKind::Updated,
        EventKind::Breaking,
        EventKind::Closed,
    ];

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Opened => "opened",
            EventKind::Updated => "updated",
            EventKind::Breaking => "breaking",
            EventKind::Closed => "closed",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// `news:story` payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewsStory {
    /// Story id.
    pub story_id: String,
    /// Label.
    pub label: String,
    /// Perp symbols, heaviest first.
    pub symbols: Vec<String>,
    /// Articles.
    pub size: usize,
    /// Distinct sources.
    pub sources: usize,
    /// Heat at the state's clock (the latest article time the engine has seen), the same
    /// figure as in the story's record and `perps-news stories`.
    pub heat: f64,
    /// First article time, RFC 3339.
    pub first_seen: String,
    /// Latest article time, RFC 3339.
    pub last_seen: String,
    /// Whether the story is breaking.
    pub breaking: bool,
    /// Distinct outlets, syndicated copies included (`sources` counts originals only).
    #[serde(default)]
    pub outlets: usize,
    /// Which way the story points, overall and per symbol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<crate::signals::sentiment::StoryDirection>,
    /// What happened (absent only in events of versions before kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventKind>,
    /// The story's event count: 1 for its first event, strictly increasing.
    #[serde(default)]
    pub revision: u64,
    /// Category, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Importance 0..100 (see [`crate::signals::importance`]).
    #[serde(default)]
    pub importance: f64,
    /// Whether the story still takes articles (false in `closed`).
    #[serde(default = "yes")]
    pub active: bool,
    /// The story's lead article.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead: Option<EventArticle>,
    /// The article that caused the event (the story's latest article of the run; none for
    /// `closed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<EventArticle>,
    /// When the run read the input that caused the event, RFC 3339 UTC with milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingested_at: Option<String>,
    /// When the event was published, RFC 3339 UTC with milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<String>,
}

fn yes() -> bool {
    true
}

/// An article in a `news:story` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventArticle {
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
    /// Publication time, RFC 3339.
    pub published_at: String,
}

impl EventArticle {
    /// From a story record's member.
    pub fn from_record(m: &crate::report::MemberRecord) -> Self {
        EventArticle {
            id: m.id.clone(),
            title: m.title.clone(),
            url: m.url.clone(),
            source: m.source.clone(),
            published_at: m.published_at.clone(),
        }
    }
}

/// `trading:cycle:complete` payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TradingCycleComplete {
    /// Cycle id.
    pub cycle_id: String,
    /// Market symbol.
    pub symbol: String,
    /// Whether the cycle succeeded.
    pub success: bool,
    /// Whether a trade was executed.
    pub trade_executed: bool,
}

/// `execution:filled` payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionFilled {
    /// Market symbol.
    pub symbol: String,
    /// `buy`/`sell` (or `long`/`short`).
    pub side: String,
    /// Filled size.
    pub size: f64,
    /// Fill price.
    pub price: f64,
}

/// `execution:failed` payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionFailed {
    /// What failed.
    pub error: String,
}

/// `circuit:breaker:open` payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CircuitBreakerOpen {
    /// Which breaker.
    pub breaker_name: String,
    /// Why it opened.
    pub reason: String,
}

/// `position:opened` payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionOpened {
    /// Market symbol.
    pub symbol: String,
    /// Side.
    pub side: String,
    /// Size.
    pub size: f64,
}

/// `position:closed` payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionClosed {
    /// Market symbol.
    pub symbol: String,
    /// Realised profit and loss.
    pub pnl: f64,
}

/// A bus payload. The type names its channel, so what goes out on a channel is always that
/// channel's type: [`NewsStory`] on `news:story`, the run [`crate::report::Summary`] on
/// `news:clustered` ([`NewsClustered`] is what a consumer reads of it).
pub trait Event: Serialize {
    /// The channel (and stream) it is published on.
    const CHANNEL: &'static str;

    /// The channel and the JSON payload, as [`Bus::publish_all_or_spool`] takes them.
    fn message(&self) -> (&'static str, serde_json::Value) {
        (
            Self::CHANNEL,
            serde_json::to_value(self).unwrap_or_default(),
        )
    }
}

impl Event for crate::report::Summary {
    const CHANNEL: &'static str = NEWS_CLUSTERED;
}
impl Event for NewsClustered {
    const CHANNEL: &'static str = NEWS_CLUSTERED;
}
impl Event for NewsStory {
    const CHANNEL: &'static str = NEWS_STORY;
}
impl Event for TradingCycleComplete {
    const CHANNEL: &'static str = TRADING_CYCLE_COMPLETE;
}
impl Event for ExecutionFilled {
    const CHANNEL: &'static str = EXECUTION_FILLED;
}
impl Event for ExecutionFailed {
    const CHANNEL: &'static str = EXECUTION_FAILED;
}
impl Event for CircuitBreakerOpen {
    const CHANNEL: &'static str = CIRCUIT_BREAKER_OPEN;
}
impl Event for PositionOpened {
    const CHANNEL: &'static str = POSITION_OPENED;
}
impl Event for PositionClosed {
    const CHANNEL: &'static str = POSITION_CLOSED;
}

/// Stamps the run's `news:story` events with their publication time `now_ms` and turns
/// them into messages: each on `news:story` (pub/sub and the stream), then, with
/// `symbol_channels`, on `news:symbol:<SYMBOL>` for each of its symbols. Returns the
/// messages and the latency of the events (see [`crate::report::EventLatency`]).
pub fn story_messages(
    events: &mut [NewsStory],
    ingested_at_ms: i64,
    now_ms: i64,
    symbol_channels: bool,
) -> (
    Vec<(String, serde_json::Value)>,
    Option<crate::report::EventLatency>,
) {
    let stamp = crate::time::format_rfc3339_millis(now_ms);
    let mut out = Vec::new();
    let mut publication = Vec::new();
    for e in events.iter_mut() {
        e.published_at = Some(stamp.clone());
        if let Some(c) = &e.cause
            && let Ok(t) = crate::time::parse_rfc3339(&c.published_at)
        {
            publication.push(now_ms.saturating_sub(t.saturating_mul(1000)));
        }
        let (channel, payload) = e.message();
        out.push((channel.to_string(), payload.clone()));
        if symbol_channels {
            for sym in &e.symbols {
                out.push((format!("{NEWS_SYMBOL_PREFIX}{sym}"), payload.clone()));
            }
        }
    }
    let latency = (!events.is_empty()).then(|| {
        // One run reads its input once: every event has the same ingest → publish time.
        let ingest = now_ms.saturating_sub(ingested_at_ms);
        crate::report::EventLatency {
            events: events.len(),
            ingest_to_publish_ms: crate::report::Percentiles {
                p50: ingest,
                p99: ingest,
            },
            publication_to_publish_ms: crate::report::Percentiles::of(publication),
        }
    });
    (out, latency)
}

/// Which `news:story` events a consumer wants (`subscribe`, `serve`'s `/api/events`). An
/// empty filter passes everything; a non-empty one passes only story events (on
/// `news:story` or `news:symbol:*`) that meet every condition set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoryFilter {
    /// Only stories touching this symbol (any case).
    pub symbol: Option<String>,
    /// Only stories of at least this importance.
    pub min_importance: Option<f64>,
    /// Only these kinds (empty: all).
    pub events: Vec<EventKind>,
    /// Only events published at or after this time (epoch seconds).
    pub since: Option<i64>,
}

impl StoryFilter {
    /// Whether no condition is set.
    pub fn is_empty(&self) -> bool {
        *self == StoryFilter::default()
    }

    /// Whether the message `payload` on `channel` passes.
    pub fn matches(&self, channel: &str, payload: &serde_json::Value) -> bool {
        if channel != NEWS_STORY && !channel.starts_with(NEWS_SYMBOL_PREFIX) {
            return self.is_empty();
        }
        self.matches_story(payload)
    }

    /// Whether a story event, or a story record (which has the same `symbols` and
    /// `importance` fields, and no `event` or `publishedAt`: filter those on events only),
    /// passes.
    pub fn matches_story(&self, payload: &serde_json::Value) -> bool {
        if let Some(sym) = &self.symbol {
            let hit = payload["symbols"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(sym)))
            });
            if !hit {
                return false;
            }
        }
        if let Some(min) = self.min_importance
            && payload["importance"].as_f64().unwrap_or(0.0) < min
        {
            return false;
        }
        if !self.events.is_empty() {
            let kind = payload["event"].as_str().and_then(EventKind::parse);
            if !kind.is_some_and(|k| self.events.contains(&k)) {
                return false;
            }
        }
        if let Some(since) = self.since {
            let at = payload["publishedAt"]
                .as_str()
                .and_then(|t| crate::time::parse_rfc3339(t).ok());
            if at.is_none_or(|t| t < since) {
                return false;
            }
        }
        true
    }
}

/// Sends every circuit-breaker opening `alerts` raises to `circuit:breaker:open` on `bus`
/// (spooled if Redis is down).
pub fn forward_alerts(alerts: &crate::api::Alerts, bus: Bus) {
    alerts.connect(move |name, reason| {
        let (channel, payload) = CircuitBreakerOpen {
            breaker_name: name.to_string(),
            reason: reason.to_string(),
        }
        .message();
        if let Err(e) = bus.publish_or_spool(channel, &payload) {
            tracing::error!(error = %e, breaker = name, "circuit:breaker:open could not be published or spooled.");
        }
    });
}

/// One line of the spool file.
#[derive(Debug, Serialize, Deserialize)]
struct Spooled {
    channel: String,
    payload: serde_json::Value,
}

/// Publishes events; keeps what it could not publish in a local spool file.
#[derive(Debug, Clone)]
pub struct Bus {
    pool: Pool,
    stream_maxlen: u64,
    spool: PathBuf,
    /// Set at the first failed publish: later events go straight to the spool instead of
    /// each waiting out the retry window.
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// What happened to an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// On the channel and its stream.
    Published,
    /// Redis was unreachable: kept in the spool for the next run.
    Spooled,
}

impl Bus {
    /// A bus on `pool` (the main server's DB 0) with a spool file at `spool`.
    pub fn new(pool: Pool, stream_maxlen: u64, spool: impl Into<PathBuf>) -> Self {
        Bus {
            pool,
            stream_maxlen,
            spool: spool.into(),
            down: Default::default(),
        }
    }

    /// Publishes `payload` on `channel` and appends it to the stream of the same name, in one
    /// round trip.
    ///
    /// # Errors
    /// [`Error::Redis`] when the server cannot be reached (after retries).
    pub fn publish(&self, channel: &str, payload: &str) -> Result<()> {
        self.publish_texts(&[(channel, payload)])
    }

    /// Each `(channel, payload)` on its channel and its stream, in order, in one round trip.
    fn publish_texts(&self, events: &[(&str, &str)]) -> Result<()> {
        let maxlen = self.stream_maxlen;
        self.pool.run("PUBLISH", |c| {
            let mut p = redis::pipe();
            for (channel, text) in events {
                p.cmd("PUBLISH").arg(*channel).arg(*text).ignore();
                if channel.starts_with(NEWS_SYMBOL_PREFIX) {
                    continue;
                }
                p.cmd("XADD")
                    .arg(*channel)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(maxlen)
                    .arg("*");
                p.arg("payload").arg(*text).ignore();
            }
            p.query::<()>(c)
        })
    }

    /// Publishes, or appends to the spool when Redis is unreachable (nothing is lost).
    ///
    /// # Errors
    /// [`Error::Io`] when the spool cannot be written either: the event would be lost.
    pub fn publish_or_spool(&self, channel: &str, payload: &serde_json::Value) -> Result<Delivery> {
        self.publish_all_or_spool(&[(channel, payload.clone())])
    }

    /// Publishes several events in one round trip (each on its channel and its stream, in
    /// order), or appends them all to the spool when Redis is unreachable.
    ///
    /// # Errors
    /// [`Error::Io`] when the spool cannot be written either: the events would be lost.
    pub fn publish_all_or_spool(&self, events: &[(&str, serde_json::Value)]) -> Result<Delivery> {
        if events.is_empty() {
            return Ok(Delivery::Published);
        }
        let texts: Vec<String> = events.iter().map(|(_, p)| p.to_string()).collect();
        let result = if self.down.load(std::sync::atomic::Ordering::Relaxed) {
            Err(Error::Redis {
                server: self.pool.name.clone(),
                message: "unreachable earlier in this run".into(),
            })
        } else {
            let pairs: Vec<(&str, &str)> = events
                .iter()
                .zip(&texts)
                .map(|((ch, _), t)| (*ch, t.as_str()))
                .collect();
            self.publish_texts(&pairs)
        };
        let Err(e) = result else {
            return Ok(Delivery::Published);
        };
        self.down.store(true, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(events = events.len(), error = %e, spool = %self.spool.display(), "Events not published; spooled for the next run.");
        let mut lines = String::new();
        for (channel, payload) in events {
            let line = serde_json::to_string(&Spooled {
                channel: (*channel).into(),
                payload: payload.clone(),
            })
            .map_err(|e| Error::io(&self.spool, std::io::Error::other(e)))?;
            lines.push_str(&line);
            lines.push('\n');
        }
        crate::store::file::create_parent(&self.spool)?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.spool)
            .map_err(|e| Error::io(&self.spool, e))?;
        f.write_all(lines.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::io(&self.spool, e))?;
        Ok(Delivery::Spooled)
    }

    /// Delivers spooled events in order and removes the spool; on failure keeps what was not
    /// delivered. Returns how many were delivered.
    ///
    /// # Errors
    /// [`Error::Io`] for an unreadable spool; Redis failures leave the spool in place and
    /// return the count so far.
    pub fn deliver_spool(&self) -> Result<usize> {
        let f = match std::fs::File::open(&self.spool) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io(&self.spool, e)),
        };
        let lines: Vec<String> = std::io::BufReader::new(f)
            .lines()
            .collect::<std::io::Result<_>>()
            .map_err(|e| Error::io(&self.spool, e))?;
        let mut delivered = 0;
        for (i, line) in lines.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let Ok(ev) = serde_json::from_str::<Spooled>(line) else {
                tracing::error!(spool = %self.spool.display(), line = i + 1, "Unreadable spooled event skipped.");
                continue;
            };
            if let Err(e) = self.publish(&ev.channel, &ev.payload.to_string()) {
                tracing::warn!(error = %e, "Spool delivery stopped; the rest stays spooled.");
                rewrite(&self.spool, &lines[i..])?;
                return Ok(delivered);
            }
            delivered += 1;
        }
        std::fs::remove_file(&self.spool).map_err(|e| Error::io(&self.spool, e))?;
        Ok(delivered)
    }
}

fn rewrite(path: &Path, lines: &[String]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| Error::io(path, e))
}

/// The payloads of the last `n` entries of `stream`, newest first (entries that are not
/// JSON are skipped).
///
/// # Errors
/// [`Error::Redis`] when the server cannot be read.
pub fn recent(pool: &Pool, stream: &str, n: usize) -> Result<Vec<serde_json::Value>> {
    pool.run("XREVRANGE", |c| {
        let reply: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(n)
            .query(c)?;
        Ok(reply
            .ids
            .iter()
            .filter_map(|e| {
                let text: String = e
                    .map
                    .get("payload")
                    .and_then(|v| redis::from_redis_value_ref(v).ok())?;
                serde_json::from_str(&text).ok()
            })
            .collect())
    })
}

/// Tails the bus: prints one JSON line `{"channel", "payload"}` per message on `patterns`
/// (glob patterns, `*` = everything). With `from_stream`, first replays the streams of the
/// named channels (for `*`, every stream found with `SCAN`). Reconnects after errors; ends
/// after `limit` messages when given.
///
/// # Errors
/// [`Error::Redis`] when the server cannot be reached at the start.
pub fn subscribe(
    pool: &Pool,
    client: &redis::Client,
    patterns: &[String],
    from_stream: bool,
    limit: Option<usize>,
    filter: &StoryFilter,
    out: &mut dyn Write,
) -> Result<()> {
    let mut left = limit;
    let mut first = true;
    loop {
        match subscribe_once(
            pool,
            client,
            patterns,
            first && from_stream,
            left,
            filter,
            out,
        ) {
            Ok(None) => return Ok(()),
            Ok(Some(printed)) => left = left.map(|l| l.saturating_sub(printed)),
            Err(e) if first => return Err(e),
            Err(e) => tracing::warn!(error = %e, "Reconnect failed; trying again."),
        }
        first = false;
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// One connection's worth of [`subscribe`]: `Ok(None)` when `limit` was reached,
/// `Ok(Some(printed))` when the connection was lost.
fn subscribe_once(
    pool: &Pool,
    client: &redis::Client,
    patterns: &[String],
    from_stream: bool,
    limit: Option<usize>,
    filter: &StoryFilter,
    out: &mut dyn Write,
) -> Result<Option<usize>> {
    let mut printed = 0usize;
    let mut emit = |channel: &str, payload: &str, out: &mut dyn Write| -> bool {
        let payload: serde_json::Value = serde_json::from_str(payload)
            .unwrap_or_else(|_| serde_json::Value::String(payload.to_string()));
        if !filter.matches(channel, &payload) {
            return false;
        }
        let line = serde_json::json!({"channel": channel, "payload": payload});
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
        printed += 1;
        limit.is_some_and(|l| printed >= l)
    };
    let redis_err = |e: redis::RedisError| Error::Redis {
        server: pool.name.clone(),
        message: e.to_string(),
    };
    // Subscribe first, then replay: a message published in between is seen (possibly twice)
    // rather than lost.
    let mut conn = client
        .get_connection_with_timeout(Duration::from_secs(5))
        .map_err(redis_err)?;
    // A read timeout on the blocking receive, so a silently dead connection is noticed
    // (the loop below simply waits again on a timeout).
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(redis_err)?;
    let mut pubsub = conn.as_pubsub();
    for p in patterns {
        pubsub.psubscribe(p).map_err(redis_err)?;
    }
    if from_stream {
        let mut streams: Vec<String> = patterns
            .iter()
            .filter(|p| !p.contains(['*', '?', '[']))
            .cloned()
            .collect();
        if streams.len() < patterns.len() {
            let found: Vec<String> = pool.run("SCAN streams", |c| {
                let mut cursor = 0u64;
                let mut all = Vec::new();
                loop {
                    let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("TYPE")
                        .arg("stream")
                        .arg("COUNT")
                        .arg(1000)
                        .query(c)?;
                    all.extend(keys);
                    if next == 0 {
                        return Ok(all);
                    }
                    cursor = next;
                }
            })?;
            streams.extend(found);
        }
        streams.sort();
        streams.dedup();
        for s in &streams {
            let entries: Vec<(String, Vec<(String, String)>)> = pool.run("XRANGE", |c| {
                let reply: redis::streams::StreamRangeReply =
                    redis::cmd("XRANGE").arg(s).arg("-").arg("+").query(c)?;
                Ok(reply
                    .ids
                    .into_iter()
                    .map(|id| {
                        let fields = id
                            .map
                            .iter()
                            .filter_map(|(k, v)| {
                                redis::from_redis_value_ref::<String>(v)
                                    .ok()
                                    .map(|v| (k.clone(), v))
                            })
                            .collect();
                        (id.id, fields)
                    })
                    .collect())
            })?;
            for (_, fields) in entries {
                if let Some((_, payload)) = fields.iter().find(|(k, _)| k == "payload")
                    && emit(s, payload, out)
                {
                    return Ok(None);
                }
            }
        }
    }
    loop {
        match pubsub.get_message() {
            Ok(msg) => {
                let payload: String = msg.get_payload().unwrap_or_default();
                if emit(msg.get_channel_name(), &payload, out) {
                    return Ok(None);
                }
            }
            // Quiet bus: keep listening while the connection answers a ping.
            Err(e) if e.is_timeout() && pubsub.ping::<String>().is_ok() => {}
            Err(e) => {
                tracing::warn!(error = %e, "Subscription lost; reconnecting.");
                return Ok(Some(printed));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn story_filters_pass_only_matching_story_events() {
        use EventKind;
        let e = serde_json::json!({"storyId": "s1", "event": "breaking", "symbols": ["BTC", "ETH"],
            "importance": 55.0, "publishedAt": "2026-11-20T10:00:00.250Z"});
        let all = StoryFilter::default();
        assert!(all.matches(NEWS_STORY, &e) && all.matches(NEWS_CLUSTERED, &e));
        let f =
            |symbol: Option<&str>, min: Option<f64>, kinds: &[EventKind], since: Option<i64>| {
                StoryFilter {
                    symbol: symbol.map(str::to_string),
                    min_importance: min,
                    events: kinds.to_vec(),
                    since,
                }
            };
        assert!(f(Some("eth"), None, &[], None).matches(NEWS_STORY, &e));
        assert!(f(Some("eth"), None, &[], None).matches("news:symbol:ETH", &e));
        assert!(!f(Some("SOL"), None, &[], None).matches(NEWS_STORY, &e));
        assert!(f(None, Some(55.0), &[], None).matches(NEWS_STORY, &e));
        assert!(!f(None, Some(55.1), &[], None).matches(NEWS_STORY, &e));
        assert!(
            f(None, None, &[EventKind::Opened, EventKind::Breaking], None).matches(NEWS_STORY, &e)
        );
        assert!(!f(None, None, &[EventKind::Closed], None).matches(NEWS_STORY, &e));
        let t = crate::time::parse_rfc3339("2026-11-20T10:00:00Z").unwrap();
        assert!(f(None, None, &[], Some(t)).matches(NEWS_STORY, &e));
        assert!(!f(None, None, &[], Some(t + 1)).matches(NEWS_STORY, &e));
        // A filter is about stories: other channels do not pass it.
        assert!(!f(Some("BTC"), None, &[], None).matches(NEWS_CLUSTERED, &e));
        // An event from before kinds has none: a kind filter drops it.
        let old = serde_json::json!({"storyId": "s0", "symbols": ["BTC"]});
        assert!(!f(None, None, &[EventKind::Opened], None).matches(NEWS_STORY, &old));
    }

    #[test]
    fn story_messages_stamp_copy_per_symbol_and_measure_latency() {
        let mut events = vec![NewsStory {
            story_id: "s1".into(),
            label: "l".into(),
            symbols: vec!["BTC".into(), "ETH".into()],
            size: 2,
            sources: 2,
            heat: 1.0,
            first_seen: "2026-11-20T10:00:00Z".into(),
            last_seen: "2026-11-20T10:01:00Z".into(),
            breaking: false,
            outlets: 2,
            direction: None,
            event: Some(EventKind::Opened),
            revision: 1,
            category: None,
            importance: 10.0,
            active: true,
            lead: None,
            cause: Some(EventArticle {
                id: "a2".into(),
                title: "t".into(),
                url: None,
                source: None,
                published_at: "2026-11-20T10:01:00Z".into(),
            }),
            ingested_at: None,
            published_at: None,
        }];
        let published = crate::time::parse_rfc3339("2026-11-20T10:01:00Z").unwrap() * 1000 + 1500;
        let (msgs, lat) = story_messages(&mut events, published - 40, published, true);
        let channels: Vec<&str> = msgs.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(
            channels,
            ["news:story", "news:symbol:BTC", "news:symbol:ETH"]
        );
        assert!(msgs.iter().all(|(_, p)| *p == msgs[0].1));
        assert_eq!(msgs[0].1["publishedAt"], "2026-11-20T10:01:01.500Z");
        let lat = lat.unwrap();
        assert_eq!((lat.events, lat.ingest_to_publish_ms.p99), (1, 40));
        assert_eq!(lat.publication_to_publish_ms.p50, 1500);
        let (msgs, _) = story_messages(&mut events, 0, published, false);
        assert_eq!(msgs.len(), 1, "no symbol channels when they are off");
        assert_eq!(
            crate::report::Percentiles::of((1..=100).collect()),
            crate::report::Percentiles { p50: 50, p99: 99 }
        );
    }

    #[test]
    fn payloads_use_the_wire_names() {
        let v = serde_json::to_value(TradingCycleComplete {
            cycle_id: "c1".into(),
            symbol: "BTC".into(),
            success: true,
            trade_executed: false,
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"cycleId": "c1", "symbol": "BTC", "success": true, "tradeExecuted": false})
        );
        let v = serde_json::to_value(CircuitBreakerOpen {
            breaker_name: "openrouter".into(),
            reason: "5 failures".into(),
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"breakerName": "openrouter", "reason": "5 failures"})
        );
        let v = serde_json::to_value(NewsClustered {
            timestamp: "t".into(),
            total_processed: 3,
            new_clusters: 1,
            cache_stats: CacheStats::new(1, 3),
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"timestamp": "t", "totalProcessed": 3, "newClusters": 1,
                "cacheStats": {"hits": 1, "misses": 3, "hitRate": 0.25}})
        );
        for (v, want) in [
            (
                serde_json::to_value(ExecutionFilled {
                    symbol: "ETH".into(),
                    side: "buy".into(),
                    size: 1.5,
                    price: 3000.0,
                })
                .unwrap(),
                serde_json::json!({"symbol": "ETH", "side": "buy", "size": 1.5, "price": 3000.0}),
            ),
            (
                serde_json::to_value(ExecutionFailed {
                    error: "rejected".into(),
                })
                .unwrap(),
                serde_json::json!({"error": "rejected"}),
            ),
            (
                serde_json::to_value(PositionOpened {
                    symbol: "SOL".into(),
                    side: "long".into(),
                    size: 2.0,
                })
                .unwrap(),
                serde_json::json!({"symbol": "SOL", "side": "long", "size": 2.0}),
            ),
            (
                serde_json::to_value(PositionClosed {
                    symbol: "SOL".into(),
                    pnl: -12.5,
                })
                .unwrap(),
                serde_json::json!({"symbol": "SOL", "pnl": -12.5}),
            ),
        ] {
            assert_eq!(v, want);
        }
    }
}
