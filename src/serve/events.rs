//! `/api/events`: server-sent events read from the bus streams, each with an `id:` a
//! reconnecting client sends back as `Last-Event-ID` to resume where it stopped.
//!
//! Why the streams and not pub/sub: a pub/sub message carries no position, so a client that
//! reconnects cannot say what it has seen. Every bus event is also appended to the capped
//! stream of the same name ([`crate::bus::Bus`]), and a stream entry id is a position. One
//! relay thread follows the streams matching `[serve] channels` with a blocking `XREAD`
//! (which wakes at the `XADD`, as fast as a subscription) and hands each entry to every
//! client (one Redis connection for all of them).
//!
//! An SSE id is a *cursor*: the last entry id of every relayed stream, e.g.
//! `news:clustered=1733140000000-0,news:story=1733140000123-4`. One entry id alone cannot
//! serve: ids are per stream, and two streams hand out the same id in the same millisecond.
//! On a reconnect the client's cursor is replayed with `XRANGE` after each position, then
//! the live entries follow, those at or before the cursor dropped: no duplicates and, as
//! long as the stream still holds the entries (`redis.stream_maxlen`), no gaps.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::store::redis::Pool;

/// A stream entry id, `ms-seq`, ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct EntryId(pub u64, pub u64);

impl EntryId {
    /// Parses `ms-seq` (or `ms`, as Redis accepts).
    pub fn parse(s: &str) -> Option<Self> {
        let (ms, seq) = s.split_once('-').unwrap_or((s, "0"));
        Some(EntryId(ms.parse().ok()?, seq.parse().ok()?))
    }
}

impl std::fmt::Display for EntryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// The last entry id seen of each stream: what an SSE id encodes.
pub type Cursor = BTreeMap<String, EntryId>;

/// Stream names may hold any byte; the few that would break the id's syntax (or the SSE
/// line) are percent-encoded.
fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '%' | ',' | '=' => out.push_str(&format!("%{:02X}", c as u32)),
            c if c.is_control() => {
                let mut b = [0u8; 4];
                for byte in c.encode_utf8(&mut b).bytes() {
                    out.push_str(&format!("%{byte:02X}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

fn unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The SSE id of `cursor`: `stream=ms-seq` pairs joined by `,`.
pub fn encode_cursor(cursor: &Cursor) -> String {
    cursor
        .iter()
        .map(|(s, id)| format!("{}={id}", escape(s)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Reads a `Last-Event-ID` back; None when it is not one this server wrote.
pub fn decode_cursor(text: &str) -> Option<Cursor> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    text.split(',')
        .map(|pair| {
            let (name, id) = pair.rsplit_once('=')?;
            Some((unescape(name)?, EntryId::parse(id)?))
        })
        .collect()
}

/// One stream entry, as relayed.
#[derive(Debug)]
pub struct Event {
    /// The stream (= channel) it was appended to.
    pub stream: String,
    /// Its entry id.
    pub id: EntryId,
    /// Its `payload` field.
    pub payload: String,
}

/// Frames queued per event-stream client; a client this far behind is dropped (it
/// reconnects and resumes from its cursor) instead of holding memory for it.
const EVENT_QUEUE: usize = 256;

/// How often a quiet event stream gets a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How long one `XREAD` blocks; between two, the relay looks for new streams (at most
/// every [`RESCAN`]).
const BLOCK: Duration = Duration::from_millis(1000);

/// How often streams matching a glob pattern are looked for with `SCAN` (the bus's own
/// `news:story` and `news:clustered` are followed from the start, existing or not).
const RESCAN: Duration = Duration::from_secs(5);

/// Entries read per `XREAD` and per replay `XRANGE` call.
const BATCH: usize = 500;

/// Most entries one reconnect replays (a stream holds `redis.stream_maxlen` at most anyway).
const REPLAY_MAX: usize = 50_000;

type Clients = Vec<(u64, crossbeam_channel::Sender<Arc<Event>>)>;

struct Inner {
    clients: Clients,
    next: u64,
    /// Where the relay is in each stream it follows.
    positions: Cursor,
    /// Whether the streams were looked for once: streams found later are new, and are
    /// relayed from their first entry.
    primed: bool,
}

/// The event-stream clients and the relay's positions.
pub struct Hub {
    inner: Mutex<Inner>,
    max: usize,
    /// When the server started, as a stream position: what was appended before is history.
    started: EntryId,
}

/// One client's slot in the [`Hub`].
pub struct Joined {
    id: u64,
    rx: crossbeam_channel::Receiver<Arc<Event>>,
    /// The relay's positions when the client joined: its cursor if it does not resume.
    start: Cursor,
}

impl Hub {
    /// A hub for at most `max` clients at once.
    pub fn new(max: usize) -> Self {
        Hub {
            inner: Mutex::new(Inner {
                clients: Vec::new(),
                next: 0,
                positions: Cursor::new(),
                primed: false,
            }),
            max,
            started: EntryId(u64::try_from(crate::time::now_millis()).unwrap_or(0), 0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for one more client, if there is room.
    pub fn join(&self) -> Option<Joined> {
        let mut inner = self.lock();
        if inner.clients.len() >= self.max {
            return None;
        }
        let id = inner.next;
        inner.next += 1;
        let (tx, rx) = crossbeam_channel::bounded(EVENT_QUEUE);
        inner.clients.push((id, tx));
        Some(Joined {
            id,
            rx,
            start: inner.positions.clone(),
        })
    }

    /// Gives the slot back.
    pub fn leave(&self, joined: &Joined) {
        self.lock().clients.retain(|(c, _)| *c != joined.id);
    }

    /// Queues `ev` for every client and moves the relay's position; clients that are gone
    /// or too far behind are dropped.
    fn broadcast(&self, ev: Event) {
        let ev = Arc::new(ev);
        let mut inner = self.lock();
        inner.positions.insert(ev.stream.clone(), ev.id);
        inner.clients.retain(|(id, tx)| {
            let kept = tx.try_send(ev.clone()).is_ok();
            if !kept {
                tracing::debug!(client = id, "Event client dropped (gone or too slow).");
            }
            kept
        });
    }
}

/// Whether Redis glob `pattern` matches `name` (`*` and `?`; a pattern with `[` or `\`
/// matches nothing here and is left to `SCAN MATCH`).
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob(&pattern[1..], name) || (!name.is_empty() && glob(pattern, &name[1..]))
        }
        (Some(b'?'), Some(_)) => glob(&pattern[1..], &name[1..]),
        (Some(b'[' | b'\\'), _) => false,
        (Some(p), Some(n)) if p == n => glob(&pattern[1..], &name[1..]),
        _ => false,
    }
}

fn is_glob(p: &str) -> bool {
    p.contains(['*', '?', '[', '\\'])
}

/// The streams to follow now: named ones and the bus's own (when a pattern matches them)
/// whether or not they exist yet, and existing streams matching the glob patterns.
fn streams_now(c: &mut redis::Connection, patterns: &[String]) -> redis::RedisResult<Vec<String>> {
    let mut names: Vec<String> = patterns.iter().filter(|p| !is_glob(p)).cloned().collect();
    for known in [crate::bus::NEWS_STORY, crate::bus::NEWS_CLUSTERED] {
        if patterns
            .iter()
            .any(|p| glob(p.as_bytes(), known.as_bytes()))
        {
            names.push(known.to_string());
        }
    }
    for p in patterns.iter().filter(|p| is_glob(p)) {
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(p)
                .arg("TYPE")
                .arg("stream")
                .arg("COUNT")
                .arg(1000)
                .query(c)?;
            names.extend(keys);
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    names.sort();
    names.dedup();
    // A named key of another type would fail every XREAD.
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        let t: String = redis::cmd("TYPE").arg(&n).query(c)?;
        if t == "stream" || t == "none" {
            out.push(n);
        }
    }
    Ok(out)
}

/// The last entry id of `stream` (0-0 when it is empty or absent).
fn last_entry(c: &mut redis::Connection, stream: &str) -> redis::RedisResult<EntryId> {
    let r: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(stream)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query(c)?;
    Ok(r.ids
        .first()
        .and_then(|e| EntryId::parse(&e.id))
        .unwrap_or_default())
}

/// Adds the streams that match now to the hub's positions. At the first look a stream is
/// followed from its last entry (what came before is history), or from the server's start
/// when entries came after it (Redis was down when the server started, and came back with
/// news before this look); streams found later are followed from their first entry. Stream
/// ids are the Redis server's clock, compared here with this host's: equal on one host.
fn rescan(c: &mut redis::Connection, patterns: &[String], hub: &Hub) -> redis::RedisResult<()> {
    let names = streams_now(c, patterns)?;
    let (primed, known) = {
        let inner = hub.lock();
        (inner.primed, inner.positions.clone())
    };
    let mut add = Vec::new();
    for n in names.into_iter().filter(|n| !known.contains_key(n)) {
        let start = if primed {
            EntryId::default()
        } else {
            last_entry(c, &n)?.min(hub.started)
        };
        add.push((n, start));
    }
    let mut inner = hub.lock();
    for (n, start) in add {
        inner.positions.entry(n).or_insert(start);
    }
    inner.primed = true;
    Ok(())
}

/// Looks for the streams once before the server answers, so that the first clients already
/// get a cursor naming them. A failure is left to the relay, which retries.
pub fn prime(pool: &Pool, patterns: &[String], hub: &Hub) {
    if let Err(e) = pool.run("find event streams", |c| rescan(c, patterns, hub)) {
        tracing::warn!(error = %e, "Event streams not found yet; the relay keeps trying.");
    }
}

/// The entries of `reply` in id order (then stream order).
fn entries(reply: Vec<(String, redis::streams::StreamId)>) -> Vec<Event> {
    let mut out: Vec<Event> = reply
        .into_iter()
        .filter_map(|(stream, e)| {
            let id = EntryId::parse(&e.id)?;
            let payload = e
                .map
                .get("payload")
                .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
                .unwrap_or_default();
            Some(Event {
                stream,
                id,
                payload,
            })
        })
        .collect();
    out.sort_by(|a, b| (a.id, &a.stream).cmp(&(b.id, &b.stream)));
    out
}

fn follow(
    c: &mut redis::Connection,
    patterns: &[String],
    hub: &Hub,
) -> redis::RedisResult<std::convert::Infallible> {
    let mut scanned: Option<Instant> = None;
    loop {
        if scanned.is_none_or(|t| t.elapsed() >= RESCAN) {
            rescan(c, patterns, hub)?;
            scanned = Some(Instant::now());
        }
        let positions = hub.lock().positions.clone();
        if positions.is_empty() {
            std::thread::sleep(BLOCK);
            let _: String = redis::cmd("PING").query(c)?;
            continue;
        }
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(BATCH)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS");
        for name in positions.keys() {
            cmd.arg(name);
        }
        for id in positions.values() {
            cmd.arg(id.to_string());
        }
        let reply: Option<redis::streams::StreamReadReply> = cmd.query(c)?;
        let flat: Vec<(String, redis::streams::StreamId)> = reply
            .map(|r| {
                r.keys
                    .into_iter()
                    .flat_map(|k| {
                        let key = k.key;
                        k.ids.into_iter().map(move |e| (key.clone(), e))
                    })
                    .collect()
            })
            .unwrap_or_default();
        for ev in entries(flat) {
            hub.broadcast(ev);
        }
    }
}

/// The relay behind every event stream: follows the streams matching `patterns` and hands
/// each entry to the hub, reconnecting after errors (at the positions it had reached, so a
/// lost connection loses no event).
pub fn relay(pool: &Pool, patterns: &[String], hub: &Hub) {
    let client = pool.client();
    loop {
        let err = match client.get_connection_with_timeout(Duration::from_secs(5)) {
            Err(e) => e,
            Ok(mut conn) => {
                let _ = conn.set_read_timeout(Some(BLOCK + Duration::from_secs(5)));
                match follow(&mut conn, patterns, hub) {
                    Err(e) => e,
                }
            }
        };
        tracing::warn!(error = %err, "Event relay lost its Redis connection; reconnecting.");
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The entries of `cursor`'s streams after its positions, in order (at most
/// [`REPLAY_MAX`]).
fn replay(pool: &Pool, cursor: &Cursor) -> crate::Result<Vec<Event>> {
    let mut all = Vec::new();
    for (stream, from) in cursor {
        let mut after = *from;
        loop {
            let got: Vec<(String, redis::streams::StreamId)> = pool.run("replay events", |c| {
                let r: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                    .arg(stream)
                    .arg(format!("({after}"))
                    .arg("+")
                    .arg("COUNT")
                    .arg(BATCH)
                    .query(c)?;
                Ok(r.ids.into_iter().map(|e| (stream.clone(), e)).collect())
            })?;
            let n = got.len();
            let evs = entries(got);
            if let Some(last) = evs.last() {
                after = last.id;
            }
            all.extend(evs);
            if n < BATCH || all.len() >= REPLAY_MAX {
                break;
            }
        }
    }
    all.sort_by(|a, b| (a.id, &a.stream).cmp(&(b.id, &b.stream)));
    all.truncate(REPLAY_MAX);
    Ok(all)
}

/// One SSE message: the cursor after `ev` as its id, the stream as its event name.
fn frame(cursor: &Cursor, ev: &Event) -> String {
    let name: String = ev
        .stream
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    let mut out = format!("id: {}\nevent: {name}\n", encode_cursor(cursor));
    // Each line of the payload is a data line (SSE ends a line at CR, LF or CRLF).
    for line in ev.payload.replace("\r\n", "\n").split(['\n', '\r']) {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out
}

/// Sends `ev` if the client has not had it and `filter` passes it; moves the client's
/// cursor either way (a filtered-out event is not news to it on a resume).
fn send(
    out: &mut TcpStream,
    cursor: &mut Cursor,
    ev: &Event,
    filter: &crate::bus::StoryFilter,
) -> std::io::Result<()> {
    if cursor.get(&ev.stream).is_some_and(|seen| ev.id <= *seen) {
        return Ok(());
    }
    cursor.insert(ev.stream.clone(), ev.id);
    if !filter.is_empty() {
        let payload: serde_json::Value =
            serde_json::from_str(&ev.payload).unwrap_or(serde_json::Value::Null);
        if !filter.matches(&ev.stream, &payload) {
            return Ok(());
        }
    }
    out.write_all(frame(cursor, ev).as_bytes())?;
    out.flush()
}

/// Streams events to one client until it goes away or falls too far behind: with
/// `last_event_id` (a cursor this server sent) first what it missed, then the live ones;
/// only those `filter` passes (`?symbol=&min_importance=&event=&since=`).
///
/// The client joined the hub before this is called, so nothing appended after the replay's
/// read can be missed, and what the replay and the live feed both hold is sent once.
pub fn stream_to(
    mut out: TcpStream,
    joined: &Joined,
    pool: &Pool,
    last_event_id: Option<&str>,
    cors: &[(&str, &str)],
    filter: &crate::bus::StoryFilter,
) {
    let mut head = String::from(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n",
    );
    for (k, v) in cors {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n: connected\n\n");
    let resume = last_event_id.and_then(decode_cursor);
    let mut cursor = match &resume {
        // Streams the client's cursor does not name appeared after it was written: all of
        // their entries are news to it. Streams this relay does not follow are ignored.
        Some(r) => joined
            .start
            .keys()
            .map(|s| (s.clone(), r.get(s).copied().unwrap_or_default()))
            .collect(),
        None => joined.start.clone(),
    };
    if resume.is_none() && !cursor.is_empty() {
        // An id alone sets the client's last event id (no event is dispatched): a client
        // that reconnects before its first event still resumes from here.
        head.push_str(&format!("id: {}\n\n", encode_cursor(&cursor)));
    }
    if out
        .write_all(head.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        return;
    }
    if resume.is_some() {
        let missed = match replay(pool, &cursor) {
            Ok(m) => m,
            Err(e) => {
                // Closing makes the client retry with the same id: nothing is skipped.
                tracing::warn!(error = %e, "Event replay failed; closing the stream.");
                return;
            }
        };
        tracing::debug!(events = missed.len(), "Event stream resumed.");
        for ev in &missed {
            if send(&mut out, &mut cursor, ev, filter).is_err() {
                return;
            }
        }
    }
    loop {
        let result = match joined.rx.recv_timeout(KEEP_ALIVE) {
            Ok(ev) => send(&mut out, &mut cursor, &ev, filter),
            // A comment line keeps proxies from closing the stream and tells us when the
            // client has gone.
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => out
                .write_all(b": keep-alive\n\n")
                .and_then(|()| out.flush()),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        };
        if result.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_order() {
        let mut c = Cursor::new();
        c.insert("news:story".into(), EntryId(1733140000123, 4));
        c.insert("odd,name=%\n".into(), EntryId(7, 0));
        let text = encode_cursor(&c);
        assert!(!text.contains('\n'), "{text}");
        assert_eq!(decode_cursor(&text), Some(c));
        assert_eq!(decode_cursor(""), None);
        assert_eq!(decode_cursor("news:story=abc"), None);
        assert_eq!(decode_cursor("nonsense"), None);
        assert!(EntryId(5, 9) < EntryId(6, 0) && EntryId(6, 0) < EntryId(6, 1));
        assert_eq!(EntryId::parse("12"), Some(EntryId(12, 0)));
    }

    #[test]
    fn payload_lines_become_data_lines() {
        let ev = Event {
            stream: "news:story".into(),
            id: EntryId(1, 2),
            payload: "a\r\nb\nc\rd".into(),
        };
        let mut c = Cursor::new();
        c.insert("news:story".into(), EntryId(1, 2));
        assert_eq!(
            frame(&c, &ev),
            "id: news:story=1-2\nevent: news:story\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
        );
    }

    #[test]
    fn globs_match_like_redis() {
        assert!(glob(b"news:*", b"news:story"));
        assert!(glob(b"*", b"anything"));
        assert!(glob(b"news:?tory", b"news:story"));
        assert!(!glob(b"news:*", b"execution:filled"));
        assert!(!glob(b"news:[s]tory", b"news:story"), "left to SCAN");
    }
}
