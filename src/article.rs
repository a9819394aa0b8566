//! The article model shared by every stage, and the record of a rejected input.

use std::fmt;
use std::sync::Arc;

/// One accepted, validated article.
#[derive(Debug, Clone)]
pub struct Article {
    /// Stable identifier: the input's `id`, else derived from the url, else from the text.
    pub id: String,
    /// Headline (required, non-empty).
    pub title: String,
    /// Body text: the first of `body`, `description`, `content` that is present.
    pub body: String,
    /// Canonical url, if any.
    pub url: Option<String>,
    /// [`crate::stages::ingest::url_key`] of `url`, computed once.
    pub url_key: Option<u64>,
    /// Publisher (domain or name), if any.
    pub source: Option<String>,
    /// Publication time in epoch seconds, if the input had a valid one.
    pub published_at: Option<i64>,
    /// `published_at` gives only the day (a bare date, or exactly midnight): the article
    /// appeared some time in the 24 hours from it.
    pub day_only: bool,
    /// Language tag, if given.
    pub lang: Option<String>,
    /// Where the record came from (file and line), for messages.
    pub origin: Origin,
    /// Position in the run's input (0-based over accepted and duplicate records), so outputs
    /// can be written in input order after time-ordered processing.
    pub seq: usize,
}

impl Article {
    /// The time the engine orders and windows by: publication time, else the run's ingest time.
    pub fn time(&self, ingest_time: i64) -> i64 {
        self.published_at.unwrap_or(ingest_time)
    }

    /// The latest moment the article may have appeared: [`Self::time`], or the end of its
    /// day when the input gave only the day.
    pub fn time_until(&self, ingest_time: i64) -> i64 {
        let t = self.time(ingest_time);
        if self.day_only && self.published_at.is_some() {
            t + 86_399
        } else {
            t
        }
    }
}

impl Article {
    /// The article as an input record (`id`, `title`, `body`, `url`, `source`,
    /// `published_at`, `lang`), to be read again by a later run; `published_at` is the time
    /// to write, if any.
    pub fn to_record(&self, published_at: Option<i64>) -> serde_json::Value {
        let mut o = serde_json::Map::new();
        o.insert("id".into(), self.id.clone().into());
        o.insert("title".into(), self.title.clone().into());
        o.insert("body".into(), self.body.clone().into());
        if let Some(u) = &self.url {
            o.insert("url".into(), u.clone().into());
        }
        if let Some(s) = &self.source {
            o.insert("source".into(), s.clone().into());
        }
        if let Some(t) = published_at {
            o.insert("published_at".into(), crate::time::format_rfc3339(t).into());
        }
        if let Some(l) = &self.lang {
            o.insert("lang".into(), l.clone().into());
        }
        serde_json::Value::Object(o)
    }
}

/// A position in the input: file (or `-` for stdin) and 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The input's display name.
    pub file: Arc<str>,
    /// 1-based line number where the record starts.
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// Why an input record was not accepted. Each kind is counted separately in the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectKind {
    /// Not valid JSON, or not a JSON object.
    Malformed,
    /// Bytes that are not UTF-8.
    InvalidUtf8,
    /// No usable `title`.
    MissingTitle,
    /// A field had the wrong type (e.g. `body` a number).
    BadField,
    /// `published_at` is not RFC 3339 or epoch seconds.
    BadDate,
    /// The record is larger than the configured maximum.
    Oversized,
}

impl RejectKind {
    /// Stable snake_case name used in summaries and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectKind::Malformed => "malformed",
            RejectKind::InvalidUtf8 => "invalid_utf8",
            RejectKind::MissingTitle => "missing_title",
            RejectKind::BadField => "bad_field",
            RejectKind::BadDate => "bad_date",
            RejectKind::Oversized => "oversized",
        }
    }
}

/// A rejected input record: where, which field, and why.
#[derive(Debug, Clone)]
pub struct Reject {
    /// File and line of the record.
    pub origin: Origin,
    /// The category, for counting.
    pub kind: RejectKind,
    /// The offending field, when one field is to blame.
    pub field: Option<&'static str>,
    /// Human-readable detail.
    pub reason: String,
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Some(field) => write!(f, "{}: field `{field}`: {}", self.origin, self.reason),
            None => write!(f, "{}: {}", self.origin, self.reason),
        }
    }
}

/// Why an accepted record was not taken exactly as it came. Each kind is counted in the
/// summary and listed like a reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NoticeKind {
    /// `published_at` was later than the run's wall clock plus `ingest.max_future_secs`: the
    /// article was clustered at its ingest time instead.
    FutureDated,
    /// The id was already taken by another article with different content (another url,
    /// another title and body): the article was kept under a qualified id.
    IdCollision,
}

impl NoticeKind {
    /// Stable camelCase name used in summaries and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::FutureDated => "futureDated",
            NoticeKind::IdCollision => "idCollision",
        }
    }
}

/// An accepted record that was changed to be usable: where, which article, and what was done.
#[derive(Debug, Clone)]
pub struct Notice {
    /// File and line of the record.
    pub origin: Origin,
    /// The kind, for counting.
    pub kind: NoticeKind,
    /// The article's id as the engine now knows it.
    pub id: String,
    /// Human-readable detail.
    pub detail: String,
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = match self.kind {
            NoticeKind::FutureDated => "published_at",
            NoticeKind::IdCollision => "id",
        };
        write!(f, "{}: field `{field}`: {}", self.origin, self.detail)
    }
}
