//! Operator commands: `doctor` (is this host set up safely?), the numbers behind `stats`, and
//! `serve`, a small synchronous HTTP server for dashboards.
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

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use crate::cli::{DoctorArgs, ServeArgs};
use crate::config::PipelineConfig;
use crate::error::{Error, Result};
use crate::store::redis::{
    Connections, LAST_RUN_KEY, Pool, RedisCache, STATE_VERSION_KEY, STORIES_KEY, STORY_PREFIX,
};

fn config(pipeline: Option<&Path>, redis_url: Option<&String>) -> Result<PipelineConfig> {
    let mut cfg = PipelineConfig::load(pipeline)?;
    cfg.apply_env(|k| std::env::var(k).ok())?;
    cfg.redis
        .set_url_from_command_line(redis_url.map(String::as_str));
    Ok(cfg)
}

/// The numbers of `stats --json` and `/api/cache/stats`.
///
/// # Errors
/// [`Error::Redis`] when a server cannot be reached.
pub fn stats_json(conns: &Connections, cfg: &PipelineConfig) -> Result<serde_json::Value> {
    let cache = RedisCache::shared_stats(&conns.cache, &cfg.redis.cache_prefix)?;
    let cache_keys: u64 = conns
        .cache
        .run("DBSIZE", |c| redis::cmd("DBSIZE").query(c))?;
    let (stories, version, last): (u64, Option<u64>, Option<String>) =
        conns.main.run("stats", |c| {
            redis::pipe()
                .cmd("ZCARD")
                .arg(STORIES_KEY)
                .cmd("GET")
                .arg(STATE_VERSION_KEY)
                .cmd("GET")
                .arg(LAST_RUN_KEY)
                .query(c)
        })?;
    let queues = queue_depths(&conns.queue)?;
    let last: Option<serde_json::Value> = last.and_then(|l| serde_json::from_str(&l).ok());
    Ok(serde_json::json!({
        "cacheStats": cache,
        "cacheKeys": cache_keys,
        "stories": stories,
        "stateVersion": version.unwrap_or(0),
        "queues": queues,
        "lastRun": last.as_ref().map(|l| serde_json::json!({
            "timestamp": l["timestamp"],
            "totalProcessed": l["totalProcessed"],
            "newClusters": l["newClusters"],
            "durationMs": l["stageMs"]["wall"],
            "pipelineFingerprint": l["pipelineFingerprint"],
            "origin": l["origin"],
        })),
    }))
}

/// Waiting + active jobs of the news queues (BullMQ's `bull:<queue>:wait` list and
/// `bull:<queue>:active` list, `prioritized`/`delayed` sorted sets).
fn queue_depths(pool: &Pool) -> Result<serde_json::Value> {
    let mut out = serde_json::Map::new();
    for q in ["clustering", "categorization", "labeling"] {
        let (wait, active, prio, delayed): (u64, u64, u64, u64) = pool.run("queue depth", |c| {
            redis::pipe()
                .cmd("LLEN")
                .arg(format!("bull:{q}:wait"))
                .cmd("LLEN")
                .arg(format!("bull:{q}:active"))
                .cmd("ZCARD")
                .arg(format!("bull:{q}:prioritized"))
                .cmd("ZCARD")
                .arg(format!("bull:{q}:delayed"))
                .query(c)
        })?;
        out.insert(
            q.into(),
            serde_json::json!({"waiting": wait + prio, "active": active, "delayed": delayed}),
        );
    }
    Ok(serde_json::Value::Object(out))
}

/// Run summaries `doctor` compares the pipeline fingerprints of (newest first).
const RECENT_RUNS: usize = 50;

/// One doctor finding.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Level {
    Ok,
    Warn,
    Fail,
}

fn config_get(pool: &Pool, name: &str) -> Result<String> {
    let v: Vec<String> = pool.run("CONFIG GET", |c| {
        redis::cmd("CONFIG").arg("GET").arg(name).query(c)
    })?;
    Ok(v.get(1).cloned().unwrap_or_default())
}

fn info_field(pool: &Pool, section: &str, field: &str) -> Result<String> {
    let info: String = pool.run("INFO", |c| redis::cmd("INFO").arg(section).query(c))?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or("?")
        .trim()
        .to_string())
}

/// Whether `dir` exists as a directory the permission bits let someone write to, without
/// creating or writing anything.
fn dir_check(dir: &Path) -> (Level, String) {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
            Level::Fail,
            format!(
                "{} does not exist (doctor creates nothing: `install -d` it with the service \
                 user as owner)",
                dir.display()
            ),
        ),
        Err(e) => (Level::Fail, format!("{}: {e}", dir.display())),
        Ok(m) if !m.is_dir() => (Level::Fail, format!("{} is not a directory", dir.display())),
        Ok(m) if m.permissions().readonly() => {
            (Level::Fail, format!("{} is read-only", dir.display()))
        }
        Ok(_) => (Level::Ok, format!("{} exists", dir.display())),
    }
}

/// `perps-news doctor`: prints one line per check; exit code 1 when any check fails.
///
/// # Errors
/// Only for an unusable pipeline file; unreachable servers are failed checks.
pub fn doctor(args: &DoctorArgs) -> Result<i32> {
    let mut cfg = config(args.pipeline.as_deref(), args.redis_url.as_ref())?;
    // Probes answer fast: a doctor that hangs is no help.
    cfg.redis.retry_ms = 0;
    let conns = Connections::new(&cfg.redis)?;
    let mut findings: Vec<(Level, String, String)> = Vec::new();
    let mut add =
        |l: Level, what: &str, detail: String| findings.push((l, what.to_string(), detail));

    // The main instance holds the bus, the story state and the job queues.
    match conns.main.ping() {
        Err(e) => add(Level::Fail, "main redis", e.to_string()),
        Ok(()) => {
            let version = info_field(&conns.main, "server", "redis_version")
                .unwrap_or_else(|e| e.to_string());
            add(
                Level::Ok,
                "main redis",
                format!("{} answers (redis {version})", conns.main.name),
            );
            match config_get(&conns.main, "maxmemory-policy") {
                Ok(p) if p == "noeviction" => add(Level::Ok, "main eviction", "noeviction".into()),
                Ok(p) => add(
                    Level::Fail,
                    "main eviction",
                    format!(
                        "maxmemory-policy is {p}: Redis evicts across the whole instance, so queued jobs and story state can vanish; use noeviction and put the cache on its own instance"
                    ),
                ),
                Err(e) => add(Level::Fail, "main eviction", e.to_string()),
            }
            match config_get(&conns.main, "appendonly") {
                Ok(a) if a == "yes" => add(
                    Level::Ok,
                    "main persistence",
                    format!(
                        "appendonly yes, appendfsync {}",
                        config_get(&conns.main, "appendfsync").unwrap_or_default()
                    ),
                ),
                Ok(a) => add(
                    Level::Fail,
                    "main persistence",
                    format!("appendonly {a}: a restart loses every queued job and the story state"),
                ),
                Err(e) => add(Level::Fail, "main persistence", e.to_string()),
            }
            // The shipped users file is a template: its CHANGE-ME passwords must not work.
            let template = [
                ("perps-news", "CHANGE-ME-app-password"),
                ("admin", "CHANGE-ME-admin-password"),
            ];
            let open: Vec<&str> = template
                .iter()
                .filter(|(u, p)| conns.main.accepts(u, p))
                .map(|(u, _)| *u)
                .collect();
            if open.is_empty() {
                add(
                    Level::Ok,
                    "main passwords",
                    "no template password accepted".into(),
                );
            } else {
                add(
                    Level::Fail,
                    "main passwords",
                    format!(
                        "user(s) {} still have the CHANGE-ME password of systemd/perps-redis-users.conf: set real ones",
                        open.join(", ")
                    ),
                );
            }
            match crate::bus::recent(&conns.main, crate::bus::NEWS_CLUSTERED, RECENT_RUNS) {
                Ok(summaries) => match crate::pipeline::fingerprint::compare(&summaries) {
                    Ok(detail) => add(Level::Ok, "pipelines", detail),
                    Err(warning) => add(Level::Warn, "pipelines", warning),
                },
                Err(e) => add(Level::Warn, "pipelines", e.to_string()),
            }
            for (label, pool) in [("bus/state DB", &conns.main), ("queue DB", &conns.queue)] {
                match pool.run("DBSIZE", |c| redis::cmd("DBSIZE").query::<u64>(c)) {
                    Ok(n) => add(Level::Ok, label, format!("{}: {n} keys", pool.name)),
                    Err(e) => add(Level::Fail, label, e.to_string()),
                }
            }
        }
    }
    match conns.cache.ping() {
        Err(e) => add(Level::Fail, "cache redis", e.to_string()),
        Ok(()) => {
            let keys = conns
                .cache
                .run("DBSIZE", |c| redis::cmd("DBSIZE").query::<u64>(c))
                .unwrap_or(0);
            add(
                Level::Ok,
                "cache redis",
                format!("{} answers, {keys} keys", conns.cache.name),
            );
            let same_server = host_port(&conns.cache.name) == host_port(&conns.main.name);
            if same_server {
                add(Level::Warn, "cache placement", "the cache shares the instance that holds queues and state: fine for development; in production give it its own instance (REDIS_CACHE_URL) with allkeys-lru".into());
            } else {
                match config_get(&conns.cache, "maxmemory-policy") {
                    Ok(p) if p.starts_with("allkeys") || p.starts_with("volatile") => {
                        add(Level::Ok, "cache eviction", p)
                    }
                    Ok(p) => add(
                        Level::Warn,
                        "cache eviction",
                        format!("{p}: a full cache will refuse writes; allkeys-lru lets it evict"),
                    ),
                    Err(e) => add(Level::Warn, "cache eviction", e.to_string()),
                }
            }
        }
    }
    // The key's presence only; its value is never printed.
    let var = &cfg.api.api_key_env;
    let key = std::env::var(var).is_ok_and(|k| !k.trim().is_empty());
    let remote = cfg.embed.provider != "hashing" || cfg.label.provider == "llm";
    match (key, remote) {
        (true, _) => add(Level::Ok, "api key", format!("{var} is set")),
        (false, true) => add(
            Level::Fail,
            "api key",
            format!(
                "{var} is not set but embed.provider is {} and label.provider is {}",
                cfg.embed.provider, cfg.label.provider
            ),
        ),
        (false, false) => add(
            Level::Ok,
            "api key",
            "not set (not needed: offline embedder)".into(),
        ),
    }
    // Read-only: a doctor that creates what it checks hides the missing directory it was
    // run to find (and may create it with the wrong owner).
    if cfg.spool.dir.is_empty() {
        add(Level::Ok, "spool", "no spool directory configured".into());
    } else {
        let (level, detail) = dir_check(&Path::new(&cfg.spool.dir).join("inbox"));
        add(level, "spool", detail);
    }
    for (what, file) in [
        ("state mirror dir", &cfg.redis.state_mirror_path),
        ("event spool dir", &cfg.redis.spool_path),
    ] {
        let dir = Path::new(file)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let (level, detail) = dir_check(dir);
        add(level, what, detail);
    }

    let mut out = std::io::stdout().lock();
    let mut failed = 0;
    for (level, what, detail) in &findings {
        let tag = match level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => {
                failed += 1;
                "FAIL"
            }
        };
        let _ = writeln!(out, "{tag}  {what:<18} {detail}");
    }
    let _ = writeln!(out, "{} checks, {failed} failed", findings.len());
    Ok(if failed > 0 { 1 } else { 0 })
}

fn host_port(name: &str) -> &str {
    name.rsplit_once('/').map_or(name, |(hp, _)| hp)
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
pub fn serve(args: &ServeArgs) -> Result<i32> {
    let cfg = config(args.pipeline.as_deref(), args.redis_url.as_ref())?;
    let conns = Connections::new(&cfg.redis)?;
    let addr = format!("{}:{}", args.bind, args.port);
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
        cfg: &cfg,
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
    let known = [
        "/healthz",
        "/api/cache/stats",
        "/api/stories",
        "/api/events",
        "/metrics",
    ];
    let asset = crate::serve::dashboard::asset(&path);
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
    if !known.contains(&path.as_str()) && asset.is_none() {
        // Never echo the request back: 1 MiB in must not mean 1 MiB out.
        reply(&mut stream, 404, serde_json::json!({"error": "not found"}));
        release();
        return;
    }
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
    // The dashboard's files hold no data: the page itself asks for the token.
    if path != "/healthz"
        && asset.is_none()
        && let Some(token) = &served.token
    {
        // `EventSource` cannot send a header: the event stream also takes the token as the
        // `access_token` query parameter (RFC 6750, 2.3).
        let query = (path == "/api/events")
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
    if let Some((content_type, body)) = asset {
        let mut headers = cors.clone();
        headers.push(("Content-Security-Policy", crate::serve::dashboard::CSP));
        let _ = crate::http::respond_text(&mut stream, head_only, content_type, body, &headers);
        release();
        return;
    }
    if path == "/metrics" {
        let text = served
            .metrics
            .render(&conns.main, || stats_json(conns, cfg));
        let ctype = crate::serve::metrics::CONTENT_TYPE;
        let _ = crate::http::respond_text(&mut stream, head_only, ctype, &text, &cors);
        release();
        return;
    }
    let (status, body) = match path.as_str() {
        "/healthz" => {
            let redis = conns.main.ping().is_ok();
            let body = serde_json::json!({"status": if redis { "ok" } else { "degraded" }, "redis": redis});
            (if redis { 200 } else { 503 }, body)
        }
        "/api/cache/stats" => answer(stats_json(conns, cfg)),
        "/api/stories" => {
            let page = query_param(&request.target, "page").unwrap_or(1).max(1);
            let per_page = query_param(&request.target, "per_page")
                .unwrap_or(50)
                .clamp(1, 500);
            answer(stories_page(&conns.main, page, per_page))
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
            crate::serve::events::stream_to(stream, &joined, &conns.main, last, &cors);
            served.hub.leave(&joined);
            return;
        }
    };
    reply(&mut stream, status, body);
    release();
}

/// Stories, most recently active first.
fn stories_page(pool: &Pool, page: usize, per_page: usize) -> Result<serde_json::Value> {
    let start = (page - 1) * per_page;
    let (total, ids): (u64, Vec<String>) = pool.run("stories", |c| {
        redis::pipe()
            .cmd("ZCARD")
            .arg(STORIES_KEY)
            .cmd("ZREVRANGE")
            .arg(STORIES_KEY)
            .arg(start)
            .arg(start + per_page - 1)
            .query(c)
    })?;
    let records: Vec<Option<String>> = if ids.is_empty() {
        Vec::new()
    } else {
        let keys: Vec<String> = ids.iter().map(|i| format!("{STORY_PREFIX}{i}")).collect();
        pool.run("MGET stories", |c| redis::cmd("MGET").arg(&keys).query(c))?
    };
    let stories: Vec<serde_json::Value> = records
        .into_iter()
        .flatten()
        .filter_map(|r| serde_json::from_str(&r).ok())
        .collect();
    Ok(serde_json::json!({"page": page, "perPage": per_page, "total": total, "stories": stories}))
}
