//! `serve`, a small synchronous HTTP server for dashboards, and the numbers behind `stats`.
//!
//! `serve` endpoints: `GET /healthz`, `GET /api/cache/stats` (what `stats --json` prints),
//! `GET /api/stories?page=1&per_page=50` (stories, most recently active first), and
//! `GET /api/events` (server-sent events read from the bus streams of the news channels as
//! they are appended, all clients fed by one relay, each event with an `id:` a client
//! resumes from with `Last-Event-ID`: [`crate::serve::events`]), `GET /metrics`
//! (Prometheus: [`crate::serve::metrics`]) and the dashboard page at `/`
//! ([`crate::serve::dashboard`]). `HEAD` answers wherever
//! `GET` does; CORS headers only for the origin `[serve] cors_origin` names. Other paths get
//! a 404, other methods a 405, both as JSON. The server ([`crate::http`]) bounds connections,
//! header time and size; requests must name an allowed `Host`, and carry the bearer token
//! when one is configured (`[serve]`).

pub mod dashboard;
pub mod events;
pub mod metrics;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use crate::config::PipelineConfig;
use crate::error::{Error, Result};
use crate::store::redis::{Connections, Pool, STORIES_KEY, STORY_PREFIX, stats_json};

/// What `serve` answers: every route, named once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// `GET /healthz`: whether Redis answers (no token needed).
    Healthz,
    /// `GET /api/cache/stats`: what `stats --json` prints.
    CacheStats,
    /// `GET /api/stories?page=&per_page=`: stories, most recently active first.
    Stories,
    /// `GET /api/events`: server-sent events from the bus streams ([`events`]).
    Events,
    /// `GET /metrics`: Prometheus text ([`metrics`]).
    Metrics,
    /// The dashboard's files ([`dashboard`]): content type and body.
    Asset(&'static str, &'static str),
}

impl Route {
    fn of(path: &str) -> Option<Route> {
        Some(match path {
            "/healthz" => Route::Healthz,
            "/api/cache/stats" => Route::CacheStats,
            "/api/stories" => Route::Stories,
            "/api/events" => Route::Events,
            "/metrics" => Route::Metrics,
            _ => {
                let (ctype, body) = dashboard::asset(path)?;
                Route::Asset(ctype, body)
            }
        })
    }

    /// With `[serve]` token set, every route but the health check and the dashboard's files
    /// (which hold no data: the page itself asks for the token) needs it.
    fn needs_token(self) -> bool {
        !matches!(self, Route::Healthz | Route::Asset(..))
    }
}

fn query_param(url: &str, key: &str) -> Option<usize> {
    let q = url.split_once('?')?.1;
    q.split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{key}="))?.parse().ok())
}

/// The raw value of query parameter `key` (percent-decoded).
fn query_text(url: &str, key: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    let raw = q
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))?;
    let mut out = Vec::with_capacity(raw.len());
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                out.push(u8::from_str_radix(raw.get(i + 1..i + 3)?, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Longest a response write may block: a client that stops reading is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a connection handler needs.
struct Served<'a> {
    conns: &'a Connections,
    cfg: &'a PipelineConfig,
    hub: &'a crate::serve::events::Hub,
    metrics: &'a crate::serve::metrics::Metrics,
    token: Option<String>,
    hosts: Vec<String>,
    limits: crate::http::Limits,
}

/// `perps-news serve`: answers until the process is stopped.
///
/// Bounded in every direction: at most `[serve] max_connections` requests and
/// `max_event_clients` event streams at once (more get a 503 at once), one Redis
/// subscription for all event streams, `header_timeout_ms` and `max_header_bytes` for each
/// request header, a write timeout for each response.
///
/// # Errors
/// The port cannot be bound, or the pipeline file is unusable.
pub fn serve(cfg: &PipelineConfig, bind: &str, port: u16) -> Result<i32> {
    let conns = Connections::new(&cfg.redis)?;
    let addr = format!("{bind}:{port}");
    let listener = std::net::TcpListener::bind(&addr).map_err(|e| Error::io(addr.clone(), e))?;
    let sv = &cfg.serve;
    let token = std::env::var(&sv.token_env)
        .ok()
        .filter(|t| !t.trim().is_empty());
    let hub = crate::serve::events::Hub::new(sv.max_event_clients);
    let metrics = crate::serve::metrics::Metrics::default();
    // With Redis down the server still starts at once: the relay finds the streams and the
    // first scrape counts the retained summaries when it is back.
    if conns.main.ping().is_ok() {
        crate::serve::events::prime(&conns.main, &sv.channels, &hub);
        // Seeded from the summaries the stream still holds.
        let _ = metrics.refresh(&conns.main);
    }
    let served = Served {
        conns: &conns,
        cfg,
        hub: &hub,
        metrics: &metrics,
        token,
        hosts: sv
            .allowed_hosts
            .iter()
            .map(|h| crate::http::host_name(h))
            .collect(),
        limits: crate::http::Limits {
            header_timeout: Duration::from_millis(sv.header_timeout_ms),
            max_header_bytes: sv.max_header_bytes,
        },
    };
    tracing::info!(addr, redis = %conns.main.name, channels = ?sv.channels, auth = served.token.is_some(), "Serving.");
    eprintln!("perps-news: serving on http://{addr}");
    let busy = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        s.spawn(|| crate::serve::events::relay(&conns.main, &cfg.serve.channels, &hub));
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
            if busy.fetch_add(1, std::sync::atomic::Ordering::AcqRel) >= sv.max_connections {
                busy.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
                // Refused from the accept loop: a short write into an empty socket buffer.
                let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
                let _ = crate::http::respond_json(
                    &mut stream,
                    503,
                    &serde_json::json!({"error": "too many connections"}),
                    &[("Retry-After", "1")],
                );
                // Whatever of the request has arrived is read and dropped without waiting,
                // so the close is less likely to be a reset that eats the answer.
                let _ = stream.set_nonblocking(true);
                let _ = std::io::Read::read(&mut stream, &mut [0u8; 8192]);
                let _ = stream.shutdown(std::net::Shutdown::Write);
                continue;
            }
            let (served, busy) = (&served, &busy);
            s.spawn(move || {
                // The slot is held while the request is read and answered; an event stream
                // moves to its own slot in the hub.
                let release = || busy.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
                handle(stream, served, release);
            });
        }
    });
    Ok(0)
}

fn handle(mut stream: TcpStream, served: &Served<'_>, release: impl FnOnce() -> usize) {
    let reply = |stream: &mut TcpStream, status: u16, body: serde_json::Value| {
        let _ = crate::http::respond_json(stream, status, &body, &[]);
    };
    let request = match crate::http::read_request(&mut stream, &served.limits) {
        Ok(r) => r,
        Err(e) => {
            let (status, what) = match e {
                crate::http::ReadError::Timeout => (408, "request header not received in time"),
                crate::http::ReadError::TooLarge => (431, "request header too large"),
                crate::http::ReadError::Malformed => (400, "not an HTTP/1.x request"),
                crate::http::ReadError::Closed => {
                    release();
                    return;
                }
            };
            reply(&mut stream, status, serde_json::json!({ "error": what }));
            crate::http::close_unread(stream);
            release();
            return;
        }
    };
    // DNS rebinding: a page of another origin reaches us under its own name.
    let host_ok = request
        .header("host")
        .is_some_and(|h| served.hosts.contains(&crate::http::host_name(h)));
    if !host_ok {
        reply(
            &mut stream,
            403,
            serde_json::json!({"error": "host not allowed (see [serve] allowed_hosts)"}),
        );
        release();
        return;
    }
    let path = request.path().to_string();
    let route = Route::of(&path);
    // Opt-in CORS ([serve] cors_origin): the configured origin, or any with `*`.
    let allowed_origin = &served.cfg.serve.cors_origin;
    let cors: Vec<(&str, &str)> = match request.header("origin") {
        Some(o) if !allowed_origin.is_empty() && (allowed_origin == "*" || o == allowed_origin) => {
            vec![
                ("Access-Control-Allow-Origin", allowed_origin.as_str()),
                ("Vary", "Origin"),
            ]
        }
        _ => Vec::new(),
    };
    let head_only = request.method == "HEAD";
    let reply = |stream: &mut TcpStream, status: u16, body: serde_json::Value| {
        let _ = crate::http::respond_json_as(stream, head_only, status, &body, &cors);
    };
    let Some(route) = route else {
        // Never echo the request back: 1 MiB in must not mean 1 MiB out.
        reply(&mut stream, 404, serde_json::json!({"error": "not found"}));
        release();
        return;
    };
    if request.method == "OPTIONS" && !cors.is_empty() {
        // A browser's preflight for a request with the bearer token.
        let mut headers = cors.clone();
        headers.extend([
            ("Access-Control-Allow-Methods", "GET, HEAD"),
            (
                "Access-Control-Allow-Headers",
                "Authorization, Last-Event-ID",
            ),
            ("Access-Control-Max-Age", "600"),
        ]);
        // No body on a 204.
        let _ =
            crate::http::respond_json_as(&mut stream, true, 204, &serde_json::json!({}), &headers);
        release();
        return;
    }
    if request.method != "GET" && !head_only {
        let body = serde_json::json!({"error": "method not allowed", "allowed": ["GET", "HEAD"]});
        let mut headers = cors.clone();
        headers.push(("Allow", "GET, HEAD"));
        let _ = crate::http::respond_json(&mut stream, 405, &body, &headers);
        release();
        return;
    }
    served.metrics.request(&path);
    if route.needs_token()
        && let Some(token) = &served.token
    {
        // `EventSource` cannot send a header: the event stream also takes the token as the
        // `access_token` query parameter (RFC 6750, 2.3).
        let query = (route == Route::Events)
            .then(|| query_text(&request.target, "access_token"))
            .flatten();
        let given = request
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .or(query.as_deref())
            .unwrap_or("");
        if !crate::http::same_secret(given.trim().as_bytes(), token.as_bytes()) {
            let mut headers = cors.clone();
            headers.push(("WWW-Authenticate", "Bearer"));
            let _ = crate::http::respond_json_as(
                &mut stream,
                head_only,
                401,
                &serde_json::json!({"error": "a bearer token is required"}),
                &headers,
            );
            release();
            return;
        }
    }
    let (conns, cfg) = (served.conns, served.cfg);
    let answer = |r: Result<serde_json::Value>| match r {
        Ok(v) => (200, v),
        Err(e) => (503, serde_json::json!({"error": e.to_string()})),
    };
    if let Route::Asset(content_type, body) = route {
        let mut headers = cors.clone();
        headers.push(("Content-Security-Policy", crate::serve::dashboard::CSP));
        let _ = crate::http::respond_text(&mut stream, head_only, content_type, body, &headers);
        release();
        return;
    }
    if route == Route::Metrics {
        let text = served
            .metrics
            .render(&conns.main, || stats_json(conns, &cfg.redis));
        let ctype = crate::serve::metrics::CONTENT_TYPE;
        let _ = crate::http::respond_text(&mut stream, head_only, ctype, &text, &cors);
        release();
        return;
    }
    let (status, body) = match route {
        Route::Healthz => {
            let redis = conns.main.ping().is_ok();
            let body = serde_json::json!({"status": if redis { "ok" } else { "degraded" }, "redis": redis});
            (if redis { 200 } else { 503 }, body)
        }
        Route::CacheStats => answer(stats_json(conns, &cfg.redis)),
        Route::Stories => {
            let page = query_param(&request.target, "page").unwrap_or(1).max(1);
            let per_page = query_param(&request.target, "per_page")
                .unwrap_or(50)
                .clamp(1, 500);
            let filter = story_filter(&request.target);
            answer(stories_page(&conns.main, page, per_page, &filter))
        }
        _ if head_only => {
            let mut head = String::from(
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n",
            );
            for (k, v) in &cors {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let _ = stream.write_all(head.as_bytes());
            release();
            return;
        }
        _ => {
            let Some(joined) = served.hub.join() else {
                reply(
                    &mut stream,
                    503,
                    serde_json::json!({"error": "too many event clients (see [serve] max_event_clients)"}),
                );
                release();
                return;
            };
            release();
            let last = request.header("last-event-id");
            let filter = story_filter(&request.target);
            crate::serve::events::stream_to(stream, &joined, &conns.main, last, &cors, &filter);
            served.hub.leave(&joined);
            return;
        }
    };
    reply(&mut stream, status, body);
    release();
}

/// The story filter of a request: `symbol`, `min_importance`, `event` (comma-separated
/// kinds) and `since` (RFC 3339 or epoch seconds). Unparsable values are ignored.
fn story_filter(target: &str) -> crate::bus::StoryFilter {
    crate::bus::StoryFilter {
        symbol: query_text(target, "symbol").filter(|s| !s.is_empty()),
        min_importance: query_text(target, "min_importance").and_then(|v| v.parse().ok()),
        events: query_text(target, "event")
            .map(|v| {
                v.split(',')
                    .filter_map(crate::bus::EventKind::parse)
                    .collect()
            })
            .unwrap_or_default(),
        since: query_text(target, "since").and_then(|v| crate::time::parse_instant(&v).ok()),
    }
}

/// Stories, most recently active first; with a filter, only the stories whose latest
/// article is at or after `since` that touch `symbol` and reach `min_importance` (the
/// event kind does not apply to stories).
fn stories_page(
    pool: &Pool,
    page: usize,
    per_page: usize,
    filter: &crate::bus::StoryFilter,
) -> Result<serde_json::Value> {
    let start = (page - 1) * per_page;
    let min = filter.since.map_or("-inf".to_string(), |t| t.to_string());
    let by_record = filter.symbol.is_some() || filter.min_importance.is_some();
    if !by_record {
        let (total, ids): (u64, Vec<String>) = pool.run("stories", |c| {
            redis::pipe()
                .cmd("ZCOUNT")
                .arg(STORIES_KEY)
                .arg(&min)
                .arg("+inf")
                .cmd("ZREVRANGEBYSCORE")
                .arg(STORIES_KEY)
                .arg("+inf")
                .arg(&min)
                .arg("LIMIT")
                .arg(start)
                .arg(per_page)
                .query(c)
        })?;
        let stories = records(pool, &ids)?;
        return Ok(
            serde_json::json!({"page": page, "perPage": per_page, "total": total, "stories": stories}),
        );
    }
    // Filtering on the records: read them newest first in chunks, keep the matches (the
    // time is the sorted set's score; kinds are for events).
    const CHUNK: usize = 500;
    let by_story = crate::bus::StoryFilter {
        symbol: filter.symbol.clone(),
        min_importance: filter.min_importance,
        ..Default::default()
    };
    let mut matched = Vec::new();
    let mut offset = 0;
    loop {
        let ids: Vec<String> = pool.run("stories", |c| {
            redis::cmd("ZREVRANGEBYSCORE")
                .arg(STORIES_KEY)
                .arg("+inf")
                .arg(&min)
                .arg("LIMIT")
                .arg(offset)
                .arg(CHUNK)
                .query(c)
        })?;
        let n = ids.len();
        matched.extend(
            records(pool, &ids)?
                .into_iter()
                .filter(|r| by_story.matches_story(r)),
        );
        offset += n;
        if n < CHUNK {
            break;
        }
    }
    let total = matched.len();
    let stories: Vec<serde_json::Value> = matched.into_iter().skip(start).take(per_page).collect();
    Ok(serde_json::json!({"page": page, "perPage": per_page, "total": total, "stories": stories}))
}

/// The consumer records of story `ids`, in order (missing ones skipped).
fn records(pool: &Pool, ids: &[String]) -> Result<Vec<serde_json::Value>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = ids.iter().map(|i| format!("{STORY_PREFIX}{i}")).collect();
    let raw: Vec<Option<String>> =
        pool.run("MGET stories", |c| redis::cmd("MGET").arg(&keys).query(c))?;
    Ok(raw
        .into_iter()
        .flatten()
        .filter_map(|r| serde_json::from_str(&r).ok())
        .collect())
}
