//! Ingest: read dumps (JSON Lines or JSON arrays, files or stdin, gzip or not), validate each
//! record into an [`Article`], fold exact duplicates, and order the run by (time, id).
//!
//! A bad record never stops the run: it becomes a [`Reject`] naming file, line, field and
//! reason. Records are split first (cheap byte scans) and parsed in parallel when there are
//! many.

mod config;
pub use config::IngestConfig;

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;
use serde_json::{Map, Value};
use xxhash_rust::xxh3::Xxh3;

use crate::article::{Article, Notice, NoticeKind, Origin, Reject, RejectKind};
use crate::error::{Error, Result};

/// Below this many records parsing stays on the calling thread: waking the pool costs more
/// than it saves (measured: no gain at 100 records).
const PARALLEL_MIN_RECORDS: usize = 2048;

/// Published times outside this range (1970 .. 2200) are treated as bad dates.
const MAX_EPOCH: i64 = 7_258_118_400;

/// Epoch values at or above this are taken as milliseconds (2286 in seconds).
const MILLIS_THRESHOLD: f64 = 1e10;

/// One input's raw bytes.
#[derive(Debug)]
pub struct Input {
    /// Display name (path, or `-` for stdin).
    pub name: Arc<str>,
    /// Decompressed content.
    pub bytes: Vec<u8>,
    /// A problem reading the input after some bytes were read (e.g. a truncated gzip).
    pub read_error: Option<String>,
}

/// Reads `path` (`-` = stdin), decompressing gzip (by content, not by name).
///
/// # Errors
/// [`Error::Io`] when the file cannot be opened or read at all.
pub fn read_input(path: &str) -> Result<Input> {
    let mut raw = Vec::new();
    if path == "-" {
        std::io::stdin()
            .lock()
            .read_to_end(&mut raw)
            .map_err(|e| Error::io("-", e))?;
    } else {
        raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    }
    Ok(decode(Arc::from(path), raw))
}

/// Wraps in-memory bytes as an input (gzip is detected the same way).
pub fn input_from_bytes(name: &str, raw: Vec<u8>) -> Input {
    decode(Arc::from(name), raw)
}

fn decode(name: Arc<str>, raw: Vec<u8>) -> Input {
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        let mut dec = flate2::read::MultiGzDecoder::new(&raw[..]);
        let read_error = dec
            .read_to_end(&mut out)
            .err()
            .map(|e| format!("gzip: {e}"));
        Input {
            name,
            bytes: out,
            read_error,
        }
    } else {
        Input {
            name,
            bytes: raw,
            read_error: None,
        }
    }
}

/// One record's bytes and where it starts.
struct Record<'a> {
    bytes: &'a [u8],
    line: usize,
}

/// Splits JSON Lines on newlines, skipping blank lines.
fn split_lines(bytes: &[u8]) -> Vec<Record<'_>> {
    bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
        .map(|(i, l)| Record {
            bytes: l,
            line: i + 1,
        })
        .collect()
}

/// Splits a top-level JSON array into its elements by scanning brackets and strings, so one
/// broken element is one reject, not a lost file. Returns an error record for structure
/// problems (e.g. a missing closing bracket), as `Err(line)`.
fn split_array(bytes: &[u8]) -> (Vec<Record<'_>>, Option<(usize, &'static str)>) {
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = bytes
        .iter()
        .position(|b| *b == b'[')
        .map_or(bytes.len(), |p| p + 1);
    line += bytes[..i.min(bytes.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count();
    let (mut depth, mut in_str, mut esc) = (0usize, false, false);
    let mut start: Option<(usize, usize)> = None;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\n' {
            line += 1;
        }
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_str = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth > 0 => depth -= 1,
                b']' => {
                    if let Some((s, l)) = start.take() {
                        out.push(Record {
                            bytes: &bytes[s..i],
                            line: l,
                        });
                    }
                    let trailing = bytes[i + 1..].iter().any(|b| !b.is_ascii_whitespace());
                    return (
                        out,
                        trailing.then_some((line, "data after the closing `]`")),
                    );
                }
                b',' if depth == 0 => {
                    match start.take() {
                        Some((s, l)) => out.push(Record {
                            bytes: &bytes[s..i],
                            line: l,
                        }),
                        None => out.push(Record {
                            bytes: &bytes[i..i],
                            line,
                        }),
                    }
                    i += 1;
                    continue;
                }
                _ => {}
            }
            if start.is_none() && !b.is_ascii_whitespace() {
                start = Some((i, line));
            }
        }
        i += 1;
    }
    if let Some((s, l)) = start {
        out.push(Record {
            bytes: &bytes[s..],
            line: l,
        });
    }
    (out, Some((line, "unterminated JSON array (missing `]`)")))
}

/// What parsing a set of inputs produced.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Accepted articles, in input order (`seq` set).
    pub articles: Vec<Article>,
    /// Rejected records, in input order.
    pub rejects: Vec<Reject>,
    /// Records seen (accepted + rejected). A problem of a whole input (a truncated gzip, an
    /// unterminated JSON array) counts as one unreadable record, so the counts add up.
    pub records: usize,
    /// Per input, in order: (name, records, accepted).
    pub per_input: Vec<(String, usize, usize)>,
}

impl Parsed {
    /// Appends `other` (inputs that come after this one's), numbering its articles on.
    pub fn append(&mut self, other: Parsed) {
        let base = self.articles.len();
        if base == 0 {
            // The common case (one input): take the articles without moving them.
            self.articles = other.articles;
        } else {
            self.articles.extend(other.articles);
        }
        for (i, a) in self.articles.iter_mut().enumerate().skip(base) {
            a.seq = i;
        }
        self.rejects.extend(other.rejects);
        self.records += other.records;
        self.per_input.extend(other.per_input);
    }
}

/// Parses every record of `inputs`. `seq` numbers accepted articles across all inputs.
pub fn parse_inputs(inputs: &[Input], max_bytes: usize, pool: &rayon::ThreadPool) -> Parsed {
    let mut parsed = Parsed::default();
    for input in inputs {
        let text_start = input.bytes.iter().position(|b| !b.is_ascii_whitespace());
        let body = match text_start {
            Some(p) if input.bytes[p..].starts_with(b"\xEF\xBB\xBF") => &input.bytes[p + 3..],
            Some(p) => &input.bytes[p..],
            None => &[][..],
        };
        let skipped_lines = text_start.map_or(0, |p| {
            input.bytes[..p].iter().filter(|b| **b == b'\n').count()
        });
        let is_array = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
        let (mut records, structure) = if is_array {
            split_array(body)
        } else {
            (split_lines(body), None)
        };
        for r in &mut records {
            r.line += skipped_lines;
        }
        let origin = |line| Origin {
            file: input.name.clone(),
            line,
        };
        let results: Vec<Result<Article, Reject>> = if records.len() >= PARALLEL_MIN_RECORDS {
            pool.install(|| {
                records
                    .par_iter()
                    .map(|r| parse_record(r.bytes, origin(r.line), max_bytes))
                    .collect()
            })
        } else {
            records
                .iter()
                .map(|r| parse_record(r.bytes, origin(r.line), max_bytes))
                .collect()
        };
        parsed.records += results.len();
        let accepted = results.iter().filter(|r| r.is_ok()).count();
        parsed
            .per_input
            .push((input.name.to_string(), results.len(), accepted));
        for r in results {
            match r {
                Ok(a) => parsed.articles.push(a),
                Err(e) => parsed.rejects.push(e),
            }
        }
        if let Some((line, reason)) = structure {
            parsed.records += 1;
            parsed.rejects.push(Reject {
                origin: origin(line + skipped_lines),
                kind: RejectKind::Malformed,
                field: None,
                reason: reason.into(),
            });
        }
        if let Some(e) = &input.read_error {
            let line = input.bytes.iter().filter(|b| **b == b'\n').count() + 1;
            // The record cut off by the truncation is the same problem: one reject, not two.
            match parsed.rejects.last_mut().filter(|r| {
                r.origin.line == line
                    && Arc::ptr_eq(&r.origin.file, &input.name)
                    && r.kind == RejectKind::Malformed
            }) {
                Some(cut) => {
                    cut.reason = format!("input truncated: {e} (the last record is cut off)");
                }
                None => {
                    parsed.records += 1;
                    parsed.rejects.push(Reject {
                        origin: origin(line),
                        kind: RejectKind::Malformed,
                        field: None,
                        reason: format!("input truncated: {e}"),
                    });
                }
            }
        }
    }
    for (i, a) in parsed.articles.iter_mut().enumerate() {
        a.seq = i;
    }
    parsed
}

fn reject(
    origin: Origin,
    kind: RejectKind,
    field: Option<&'static str>,
    reason: impl Into<String>,
) -> Reject {
    Reject {
        origin,
        kind,
        field,
        reason: reason.into(),
    }
}

/// Validates one record.
fn parse_record(bytes: &[u8], origin: Origin, max_bytes: usize) -> Result<Article, Reject> {
    if bytes.len() > max_bytes {
        return Err(reject(
            origin,
            RejectKind::Oversized,
            None,
            format!("record is {} bytes, the limit is {max_bytes}", bytes.len()),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        reject(
            origin.clone(),
            RejectKind::InvalidUtf8,
            None,
            format!("invalid UTF-8 at byte {}", e.valid_up_to()),
        )
    })?;
    if text.trim().is_empty() {
        return Err(reject(
            origin,
            RejectKind::Malformed,
            None,
            "empty array element",
        ));
    }
    let value: Value = serde_json::from_str(text.trim()).map_err(|e| {
        reject(
            origin.clone(),
            RejectKind::Malformed,
            None,
            format!("invalid JSON: {e}"),
        )
    })?;
    let Value::Object(obj) = value else {
        return Err(reject(
            origin,
            RejectKind::Malformed,
            None,
            "expected a JSON object",
        ));
    };

    let string = |field: &'static str| -> Result<Option<String>, Reject> {
        match obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
            Some(other) => Err(reject(
                origin.clone(),
                RejectKind::BadField,
                Some(field),
                format!("expected a string, got {}", type_name(other)),
            )),
        }
    };

    let title = match obj.get("title") {
        None | Some(Value::Null) => {
            return Err(reject(
                origin,
                RejectKind::MissingTitle,
                Some("title"),
                "missing",
            ));
        }
        Some(_) => string("title")?.ok_or_else(|| {
            reject(
                origin.clone(),
                RejectKind::MissingTitle,
                Some("title"),
                "empty",
            )
        })?,
    };
    let mut body = String::new();
    for field in ["body", "description", "content"] {
        if let Some(s) = string(field)?
            && body.is_empty()
        {
            body = s;
        }
    }
    let url = string("url")?;
    let lang = string("lang")?;
    let source = source_field(&obj, &origin)?;
    let (published_at, day_only) = match date_field(&obj, &origin)? {
        Some((t, day)) => (Some(t), day),
        None => (None, false),
    };
    let id = match obj.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => {
            return Err(reject(
                origin,
                RejectKind::BadField,
                Some("id"),
                format!(
                    "expected a non-empty string or a number, got {}",
                    type_name(other)
                ),
            ));
        }
    };
    let ukey = url.as_deref().map(url_key);
    let id = id.unwrap_or_else(|| match ukey {
        Some(u) => format!("u{u:016x}"),
        None => format!("h{:016x}", text_key(&title, &body) as u64),
    });
    Ok(Article {
        id,
        title,
        body,
        url,
        url_key: ukey,
        source,
        published_at,
        day_only,
        lang,
        origin,
        seq: 0,
    })
}

/// `source` as a string, or NewsAPI's `{"id": …, "name": …}` object.
fn source_field(obj: &Map<String, Value>, origin: &Origin) -> Result<Option<String>, Reject> {
    match obj.get("source") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
        Some(Value::Object(o)) => match o.get("name").or_else(|| o.get("id")) {
            Some(Value::String(s)) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
            _ => Ok(None),
        },
        Some(other) => Err(reject(
            origin.clone(),
            RejectKind::BadField,
            Some("source"),
            format!(
                "expected a string or an object with `name`, got {}",
                type_name(other)
            ),
        )),
    }
}

/// `published_at` (or NewsAPI's `publishedAt`): RFC 3339, or epoch seconds as a number or a
/// numeric string; values of 1e10 and more are taken as epoch milliseconds. With whether it
/// gives only the day ([`crate::time::parse_rfc3339_precision`]; epoch numbers never do).
fn date_field(obj: &Map<String, Value>, origin: &Origin) -> Result<Option<(i64, bool)>, Reject> {
    let (field, value) = match (obj.get("published_at"), obj.get("publishedAt")) {
        (Some(v), _) if !v.is_null() => ("published_at", v),
        (_, Some(v)) if !v.is_null() => ("publishedAt", v),
        _ => return Ok(None),
    };
    let bad = |reason: String| reject(origin.clone(), RejectKind::BadDate, Some(field), reason);
    let from_number = |x: f64| -> Result<i64, Reject> {
        let secs = if x.abs() >= MILLIS_THRESHOLD {
            x / 1000.0
        } else {
            x
        };
        if !secs.is_finite() || !(0.0..MAX_EPOCH as f64).contains(&secs) {
            return Err(bad(format!("epoch {x} is out of range (1970..2200)")));
        }
        Ok(secs.floor() as i64)
    };
    let (secs, day_only) = match value {
        Value::Number(n) => (from_number(n.as_f64().unwrap_or(f64::NAN))?, false),
        Value::String(s) => match s.trim().parse::<f64>() {
            Ok(x) => (from_number(x)?, false),
            Err(_) => crate::time::parse_rfc3339_precision(s)
                .map_err(|why| bad(format!("{why}: {s:?}")))?,
        },
        other => {
            return Err(bad(format!(
                "expected a string or a number, got {}",
                type_name(other)
            )));
        }
    };
    if !(0..MAX_EPOCH).contains(&secs) {
        return Err(bad(format!("{secs} is out of range (1970..2200)")));
    }
    Ok(Some((secs, day_only)))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Hash of a url with the parts that do not change the page removed: scheme, `www.`, case of
/// the host, fragment, tracking parameters and a trailing slash.
pub fn url_key(url: &str) -> u64 {
    let u = url.trim();
    let u = u.split('#').next().unwrap_or(u);
    let rest = u.split_once("://").map_or(u, |(_, r)| r);
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = if host.len() >= 4 && host[..4].eq_ignore_ascii_case("www.") {
        &host[4..]
    } else {
        host
    };
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let mut h = Xxh3::new();
    for b in host.bytes() {
        h.update(&[b.to_ascii_lowercase()]);
    }
    h.update(b"/");
    h.update(path.trim_end_matches('/').as_bytes());
    h.update(b"?");
    if !query.is_empty() {
        let mut params: Vec<&str> = query
            .split('&')
            .filter(|p| {
                !p.is_empty()
                    && !p.starts_with("utm_")
                    && !p.starts_with("fbclid")
                    && !p.starts_with("gclid")
            })
            .collect();
        params.sort_unstable();
        for (i, p) in params.iter().enumerate() {
            if i > 0 {
                h.update(b"&");
            }
            h.update(p.as_bytes());
        }
    }
    h.digest()
}

/// Hash of the title and body lowercased, with runs of non-alphanumerics collapsed to one
/// space: equal for texts that differ only in case, spacing or punctuation. Streams the text
/// through the hasher without building the normalised copy.
pub fn text_key(title: &str, body: &str) -> u128 {
    let mut h = Xxh3::new();
    let mut buf = [0u8; 512];
    let mut len = 0;
    for (i, part) in [title, body].into_iter().enumerate() {
        if i == 1 {
            buf[len] = 1;
            len += 1;
        }
        let bytes = part.as_bytes();
        let mut gap = false;
        let mut j = 0;
        while j < bytes.len() {
            let b = bytes[j];
            // ASCII is handled byte by byte; anything else goes through `char`.
            let (alnum, width) = if b < 128 {
                (b.is_ascii_alphanumeric(), 1)
            } else {
                let c = part[j..].chars().next().unwrap_or(' ');
                (c.is_alphanumeric(), c.len_utf8())
            };
            if alnum {
                if gap && len > 0 {
                    buf[len] = b' ';
                    len += 1;
                }
                gap = false;
                if width == 1 {
                    buf[len] = b.to_ascii_lowercase();
                    len += 1;
                } else {
                    for l in part[j..j + width].chars().flat_map(char::to_lowercase) {
                        len += l.encode_utf8(&mut buf[len..]).len();
                    }
                }
            } else {
                gap = true;
            }
            j += width;
            if len > buf.len() - 16 {
                h.update(&buf[..len]);
                len = 0;
            }
        }
    }
    h.update(&buf[..len]);
    h.digest128()
}

/// A record folded into an earlier one.
#[derive(Debug, Clone)]
pub struct Duplicate {
    /// The duplicate's input position.
    pub seq: usize,
    /// The duplicate's id.
    pub id: String,
    /// Id of the article it was folded into.
    pub of: String,
    /// Where it came from.
    pub origin: Origin,
}

/// A day-only date names a day that may begin up to 14 hours before midnight UTC (UTC+14):
/// only a day starting later than that past the tolerance is in the future.
const DAY_ONLY_SLACK_SECS: i64 = 14 * 3600;

/// Clamps publication times later than `now + max_future` to `now` (the run's ingest time):
/// such a time cannot be true, and one of them would move the state's clock into the future,
/// where every later article is too old for any story. Returns one notice per article.
pub fn clamp_future(articles: &mut [Article], now: i64, max_future: i64) -> Vec<Notice> {
    let limit = now.saturating_add(max_future);
    let mut notices = Vec::new();
    for a in articles.iter_mut() {
        let Some(t) = a.published_at else { continue };
        let earliest = if a.day_only {
            t.saturating_sub(DAY_ONLY_SLACK_SECS)
        } else {
            t
        };
        if earliest > limit {
            notices.push(Notice {
                origin: a.origin.clone(),
                kind: NoticeKind::FutureDated,
                id: a.id.clone(),
                detail: format!(
                    "{} is {} in the future (limit ingest.max_future_secs = {max_future}); \
                     clustered at the ingest time {}",
                    crate::time::format_rfc3339(t),
                    human_secs(t - now),
                    crate::time::format_rfc3339(now),
                ),
            });
            a.published_at = Some(now);
            a.day_only = false;
        }
    }
    notices
}

/// `90061` → "1d 1h", `5400` → "1h 30m", `42` → "42s".
fn human_secs(secs: i64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// The id a reused id is kept under: `ID@SOURCE`, or `ID@` and a content hash when the
/// article has no source (or that id is taken too).
fn qualified_id(
    a: &Article,
    text: u128,
    url: Option<u64>,
    taken: &HashMap<String, usize>,
    kept: &[Article],
    texts: &[u128],
) -> String {
    let Some(id) = a.source.as_deref().map(|s| format!("{}@{s}", a.id)) else {
        return format!("{}@{:08x}", a.id, text as u32);
    };
    match taken.get(&id) {
        // Free, or taken by this same article (a repeat): `ID@SOURCE`.
        None => id,
        Some(&k) if texts[k] == text || (url.is_some() && kept[k].url_key == url) => id,
        Some(_) => format!("{id}#{:08x}", text as u32),
    }
}

/// What [`dedup_and_order`] made of a run's articles.
#[derive(Debug, Default)]
pub struct Deduped {
    /// The articles to cluster, in (time, id) order.
    pub articles: Vec<Article>,
    /// Records folded into an earlier one.
    pub duplicates: Vec<Duplicate>,
    /// Articles whose id another article with other content had taken: kept under a
    /// qualified id ([`NoticeKind::IdCollision`]).
    pub collisions: Vec<Notice>,
}

/// Removes exact duplicates (same id with the same url or text, same url, or same normalised
/// text), keeping the first in input order, then orders the rest by (time, id) — the order
/// clustering requires.
///
/// Ids are only unique within a feed: an article whose id is taken by an article with other
/// content (another url, or no shared url and another title and body) is not a duplicate. It
/// is kept as `ID@SOURCE` (see `qualified_id`) and reported as a collision.
pub fn dedup_and_order(articles: Vec<Article>, ingest_time: i64) -> Deduped {
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut by_url: HashMap<u64, usize> = HashMap::new();
    let mut by_text: HashMap<u128, usize> = HashMap::new();
    let mut keep: Vec<Article> = Vec::with_capacity(articles.len());
    let mut texts: Vec<u128> = Vec::with_capacity(articles.len());
    let mut dups = Vec::new();
    let mut collisions = Vec::new();
    for mut a in articles {
        let u = a.url_key;
        let t = text_key(&a.title, &a.body);
        if let Some(&k) = by_id.get(&a.id) {
            let same_url = u.is_some() && u == keep[k].url_key;
            if !same_url && texts[k] != t {
                let id = qualified_id(&a, t, u, &by_id, &keep, &texts);
                // A repeat of an article already kept under the qualified id is a duplicate
                // of it, not another collision.
                let repeat = by_id.contains_key(&id);
                if repeat {
                    a.id = id;
                } else {
                    collisions.push(Notice {
                        origin: a.origin.clone(),
                        kind: NoticeKind::IdCollision,
                        id: id.clone(),
                        detail: format!(
                            "id {:?} is also used by {} ({:?}) with other content; kept as {id:?}",
                            a.id, keep[k].origin, keep[k].title
                        ),
                    });
                    a.id = id;
                }
            }
        }
        let first = by_id
            .get(&a.id)
            .or_else(|| u.and_then(|u| by_url.get(&u)))
            .or_else(|| by_text.get(&t))
            .copied();
        if let Some(k) = first {
            dups.push(Duplicate {
                seq: a.seq,
                id: a.id,
                of: keep[k].id.clone(),
                origin: a.origin,
            });
            continue;
        }
        let k = keep.len();
        by_id.insert(a.id.clone(), k);
        if let Some(u) = u {
            by_url.insert(u, k);
        }
        by_text.insert(t, k);
        keep.push(a);
        texts.push(t);
    }
    keep.sort_by(|a, b| {
        a.time(ingest_time)
            .cmp(&b.time(ingest_time))
            .then_with(|| a.id.cmp(&b.id))
    });
    Deduped {
        articles: keep,
        duplicates: dups,
        collisions,
    }
}

/// Whether a path names an existing readable input (or stdin).
pub fn check_input_exists(path: &str) -> Result<()> {
    if path == "-" || Path::new(path).is_file() {
        Ok(())
    } else {
        Err(Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "input not found or not a file",
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap()
    }

    fn parse(name: &str, text: &[u8]) -> Parsed {
        parse_inputs(&[input_from_bytes(name, text.to_vec())], 1 << 20, &pool())
    }

    #[test]
    fn jsonl_with_every_kind_of_bad_line() {
        let text = b"{\"title\":\"Good one\",\"url\":\"https://x.io/a\",\"published_at\":\"2026-11-20T00:00:00Z\"}\n\
\n\
{not json}\n\
{\"body\":\"no title\"}\n\
{\"title\":\"Bad date\",\"published_at\":\"next tuesday\"}\n\
{\"title\":\"Bad \xff utf8\"}\n\
[1,2]\n\
{\"title\":\"Bad body\",\"body\":42}\n\
{\"title\":\"Epoch\",\"published_at\":1795132800,\"source\":{\"id\":null,\"name\":\"CoinDesk\"}}\n";
        let p = parse("dump.jsonl", text);
        assert_eq!(p.records, 8);
        assert_eq!(p.articles.len(), 2);
        let got: Vec<(usize, RejectKind, Option<&str>)> = p
            .rejects
            .iter()
            .map(|r| (r.origin.line, r.kind, r.field))
            .collect();
        assert_eq!(
            got,
            vec![
                (3, RejectKind::Malformed, None),
                (4, RejectKind::MissingTitle, Some("title")),
                (5, RejectKind::BadDate, Some("published_at")),
                (6, RejectKind::InvalidUtf8, None),
                (7, RejectKind::Malformed, None),
                (8, RejectKind::BadField, Some("body")),
            ]
        );
        assert!(
            p.rejects[2]
                .to_string()
                .starts_with("dump.jsonl:5: field `published_at`:")
        );
        assert_eq!(p.articles[1].published_at, Some(1_795_132_800));
        // The same instant as midnight text gives only a day; as an epoch number it is exact.
        assert_eq!(p.articles[0].published_at, Some(1_795_132_800));
        assert!(p.articles[0].day_only);
        assert!(!p.articles[1].day_only);
        assert_eq!(p.articles[1].source.as_deref(), Some("CoinDesk"));
        assert_eq!(
            p.articles[0].id,
            format!("u{:016x}", url_key("https://x.io/a"))
        );
    }

    #[test]
    fn json_array_elements_fail_alone() {
        let text = b"[\n  {\"title\": \"A\", \"body\": \"x, [y]\"},\n  {\"title\": },\n  {\"title\": \"C\"}\n]\n";
        let p = parse("dump.json", text);
        assert_eq!(
            p.articles
                .iter()
                .map(|a| a.title.as_str())
                .collect::<Vec<_>>(),
            ["A", "C"]
        );
        assert_eq!(p.rejects.len(), 1);
        assert_eq!(p.rejects[0].origin.line, 3);
        let truncated = parse("t.json", b"[{\"title\":\"A\"},\n{\"title\":\"B\"");
        assert_eq!(truncated.articles.len(), 1);
        assert_eq!(truncated.rejects.len(), 2, "{:?}", truncated.rejects);
        assert_eq!(truncated.records, 3, "read = accepted + rejected");
    }

    #[test]
    fn empty_inputs_are_valid() {
        for t in [&b""[..], b"   \n\n", b"[]", b"[ ]\n"] {
            let p = parse("e", t);
            assert!(
                p.articles.is_empty() && p.rejects.is_empty(),
                "{:?}",
                String::from_utf8_lossy(t)
            );
        }
    }

    #[test]
    fn oversized_records_are_rejected() {
        let big = format!(
            "{{\"title\":\"{}\"}}\n{{\"title\":\"ok\"}}\n",
            "x".repeat(100)
        );
        let p = parse_inputs(&[input_from_bytes("b", big.into_bytes())], 50, &pool());
        assert_eq!(p.articles.len(), 1);
        assert_eq!(p.rejects[0].kind, RejectKind::Oversized);
    }

    #[test]
    fn gzip_is_read_transparently() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"{\"title\":\"zipped\"}\n").unwrap();
        let gz = enc.finish().unwrap();
        let p = parse("a.jsonl.gz", &gz);
        assert_eq!(p.articles[0].title, "zipped");
        let p = parse("cut.gz", &gz[..gz.len() - 6]);
        assert!(
            p.rejects.iter().any(|r| r.reason.contains("truncated")),
            "{:?}",
            p.rejects
        );
        // Cut inside a record and at a line end: the counts add up either way, and the cut
        // record is one reject, not two.
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        for i in 0..400 {
            writeln!(enc, "{{\"title\":\"article number {i} of a long dump\"}}").unwrap();
        }
        let gz = enc.finish().unwrap();
        for cut in [gz.len() / 3, gz.len() / 2, gz.len() - 9] {
            let p = parse("cut.gz", &gz[..cut]);
            assert!(!p.articles.is_empty() && !p.rejects.is_empty());
            assert_eq!(
                p.records,
                p.articles.len() + p.rejects.len(),
                "cut at {cut}"
            );
            let lines: std::collections::HashSet<usize> =
                p.rejects.iter().map(|r| r.origin.line).collect();
            assert_eq!(
                lines.len(),
                p.rejects.len(),
                "one reject per line: {:?}",
                p.rejects
            );
        }
    }

    #[test]
    fn duplicates_fold_into_the_first_and_order_is_time_then_id() {
        let text = b"{\"id\":\"b\",\"title\":\"Same story\",\"published_at\":20}\n\
{\"id\":\"a\",\"title\":\"Other\",\"published_at\":20,\"url\":\"https://www.x.io/p/?utm_source=t\"}\n\
{\"id\":\"c\",\"title\":\"SAME   story!\",\"published_at\":10}\n\
{\"id\":\"d\",\"title\":\"Different text\",\"url\":\"http://x.io/p\"}\n\
{\"id\":\"a\",\"title\":\"Reused id\"}\n\
{\"id\":\"e\",\"title\":\"Early\",\"published_at\":5}\n";
        let p = parse("d", text);
        let out = dedup_and_order(p.articles, 1000);
        // "a" is reused with other content (no url, another title): a collision, kept under
        // a qualified id (no source: a content hash), ordered by its ingest time.
        let reused = &out.collisions[0].id;
        assert!(reused.starts_with("a@"), "{reused}");
        assert_eq!(
            out.articles
                .iter()
                .map(|a| a.id.as_str())
                .collect::<Vec<_>>(),
            ["e", "a", "b", reused.as_str()]
        );
        let d: Vec<(&str, &str)> = out
            .duplicates
            .iter()
            .map(|d| (d.id.as_str(), d.of.as_str()))
            .collect();
        assert_eq!(d, [("c", "b"), ("d", "a")]);
        assert_eq!(out.collisions.len(), 1);
        assert_eq!(out.collisions[0].origin.line, 5);
    }

    #[test]
    fn reused_ids_with_other_content_are_collisions_qualified_by_source() {
        let text =
            b"{\"id\":1,\"title\":\"Bitcoin ETF sees record inflows\",\"source\":\"feed-a\"}\n\
{\"id\":1,\"title\":\"Solana network halts block production\",\"source\":\"feed-b\"}\n\
{\"id\":1,\"title\":\"Bitcoin ETF sees record inflows!\",\"source\":\"feed-c\"}\n\
{\"id\":2,\"title\":\"One\",\"url\":\"https://x.io/2\"}\n\
{\"id\":2,\"title\":\"One, edited\",\"url\":\"https://x.io/2?utm_source=t\"}\n\
{\"id\":1,\"title\":\"Solana network halts block production\",\"source\":\"feed-b\"}\n";
        let out = dedup_and_order(parse("c", text).articles, 0);
        let ids: Vec<&str> = out.articles.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["1", "1@feed-b", "2"]);
        // The same text (up to punctuation) under the same id, the same url under the same
        // id, and a repeat of the collision are duplicates.
        let d: Vec<(&str, &str)> = out
            .duplicates
            .iter()
            .map(|d| (d.id.as_str(), d.of.as_str()))
            .collect();
        assert_eq!(d, [("1", "1"), ("2", "2"), ("1@feed-b", "1@feed-b")]);
        assert_eq!(out.collisions.len(), 1, "{:?}", out.collisions);
        assert!(
            out.collisions[0]
                .to_string()
                .starts_with("c:2: field `id`: id \"1\" is also used by c:1"),
            "{}",
            out.collisions[0]
        );
    }

    #[test]
    fn future_dates_are_clamped_to_the_ingest_time_and_noted() {
        let now = 1_795_132_800; // 2026-11-20T00:00:00Z
        let text = format!(
            "{{\"id\":\"f\",\"title\":\"x\",\"published_at\":\"2099-01-01T00:00:00Z\"}}\n\
{{\"id\":\"ok\",\"title\":\"y\",\"published_at\":{}}}\n\
{{\"id\":\"soon\",\"title\":\"z\",\"published_at\":{}}}\n\
{{\"id\":\"day\",\"title\":\"w\",\"published_at\":\"2026-11-20\"}}\n",
            now + 3600,
            now + 3601
        );
        let mut arts = parse("t.jsonl", text.as_bytes()).articles;
        // A day-only date whose day has begun east of UTC (12 hours before its UTC midnight)
        // is not in the future either.
        let mut day = vec![arts[3].clone()];
        assert!(clamp_future(&mut day, now - 12 * 3600, 3600).is_empty());
        let notes = clamp_future(&mut arts, now, 3600);
        let ids: Vec<&str> = notes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["f", "soon"]);
        assert_eq!(notes[0].kind, NoticeKind::FutureDated);
        assert!(
            notes[0]
                .to_string()
                .starts_with("t.jsonl:1: field `published_at`: 2099-01-01T00:00:00Z is"),
            "{}",
            notes[0]
        );
        assert_eq!(arts[0].published_at, Some(now));
        assert_eq!(arts[1].published_at, Some(now + 3600));
        // Today's date, given as a day only, is not in the future.
        assert!(arts[3].day_only && arts[3].published_at == Some(now));
    }
}
