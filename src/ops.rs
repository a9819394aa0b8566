//! Operator commands: `doctor` (is this host set up safely?), the numbers behind `stats`, and
//! `serve`, a small synchronous HTTP server for dashboards.
//!
//! `serve` endpoints: `GET /healthz`, `GET /api/cache/stats` (what `stats --json` prints),
//! `GET /api/stories?page=1&per_page=50` (stories, most recently active first), and
//! `GET /api/events` (server-sent events relayed from the Redis bus as they are published).
//! Other paths get a 404, other methods a 405, both as JSON.

use std::io::Write;
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
    if cfg.spool.dir.is_empty() {
        add(Level::Ok, "spool", "no spool directory configured".into());
    } else {
        let inbox = Path::new(&cfg.spool.dir).join("inbox");
        let probe = inbox.join(".doctor-probe.tmp");
        match std::fs::create_dir_all(&inbox)
            .and_then(|()| std::fs::write(&probe, b"x"))
            .and_then(|()| std::fs::remove_file(&probe))
        {
            Ok(()) => add(Level::Ok, "spool", format!("{} is writable", cfg.spool.dir)),
            Err(e) => add(Level::Fail, "spool", format!("{}: {e}", inbox.display())),
        }
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

fn json_response(
    status: u16,
    body: &serde_json::Value,
) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let mut r =
        tiny_http::Response::from_data(body.to_string().into_bytes()).with_status_code(status);
    if let Ok(h) = tiny_http::Header::from_bytes("Content-Type", "application/json") {
        r.add_header(h);
    }
    r
}

fn query_param(url: &str, key: &str) -> Option<usize> {
    let q = url.split_once('?')?.1;
    q.split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{key}="))?.parse().ok())
}

/// `perps-news serve`: answers until the process is stopped.
///
/// # Errors
/// The port cannot be bound, or the pipeline file is unusable.
pub fn serve(args: &ServeArgs) -> Result<i32> {
    let cfg = config(args.pipeline.as_deref(), args.redis_url.as_ref())?;
    let conns = Connections::new(&cfg.redis)?;
    let addr = format!("{}:{}", args.bind, args.port);
    let server = tiny_http::Server::http(&addr)
        .map_err(|e| Error::io(addr.clone(), std::io::Error::other(e.to_string())))?;
    tracing::info!(addr, redis = %conns.main.name, "Serving.");
    eprintln!("perps-news: serving on http://{addr}");
    std::thread::scope(|s| {
        for request in server.incoming_requests() {
            let (conns, cfg) = (&conns, &cfg);
            // One thread per request: event streams hold theirs for as long as they last.
            s.spawn(move || handle(request, conns, cfg));
        }
    });
    Ok(0)
}

fn handle(request: tiny_http::Request, conns: &Connections, cfg: &PipelineConfig) {
    let url = request.url().to_string();
    let path = url.split('?').next().unwrap_or("").to_string();
    let known = [
        "/healthz",
        "/api/cache/stats",
        "/api/stories",
        "/api/events",
    ];
    if !known.contains(&path.as_str()) {
        let _ = request.respond(json_response(
            404,
            &serde_json::json!({"error": "not found", "path": path}),
        ));
        return;
    }
    if *request.method() != tiny_http::Method::Get {
        let body = serde_json::json!({"error": "method not allowed", "allowed": ["GET"]});
        let mut r = json_response(405, &body);
        if let Ok(h) = tiny_http::Header::from_bytes("Allow", "GET") {
            r.add_header(h);
        }
        let _ = request.respond(r);
        return;
    }
    let reply = |r: Result<serde_json::Value>| match r {
        Ok(v) => json_response(200, &v),
        Err(e) => json_response(503, &serde_json::json!({"error": e.to_string()})),
    };
    match path.as_str() {
        "/healthz" => {
            let redis = conns.main.ping().is_ok();
            let body = serde_json::json!({"status": if redis { "ok" } else { "degraded" }, "redis": redis});
            let _ = request.respond(json_response(if redis { 200 } else { 503 }, &body));
        }
        "/api/cache/stats" => {
            let _ = request.respond(reply(stats_json(conns, cfg)));
        }
        "/api/stories" => {
            let page = query_param(&url, "page").unwrap_or(1).max(1);
            let per_page = query_param(&url, "per_page").unwrap_or(50).clamp(1, 500);
            let _ = request.respond(reply(stories_page(&conns.main, page, per_page)));
        }
        _ => events(request, conns),
    }
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

/// Relays every bus message to the client as a server-sent event, flushing each one at once.
fn events(request: tiny_http::Request, conns: &Connections) {
    let client = conns.main.client();
    let mut conn = match client.get_connection_with_timeout(Duration::from_secs(5)) {
        Ok(c) => c,
        Err(e) => {
            let _ = request.respond(json_response(
                503,
                &serde_json::json!({"error": e.to_string()}),
            ));
            return;
        }
    };
    let mut out = request.into_writer();
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n: connected\n\n";
    if out
        .write_all(head.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        return;
    }
    let _ = conn.set_read_timeout(Some(Duration::from_secs(15)));
    let mut pubsub = conn.as_pubsub();
    if pubsub.psubscribe("*").is_err() {
        return;
    }
    loop {
        let frame = match pubsub.get_message() {
            Ok(msg) => {
                let payload: String = msg.get_payload().unwrap_or_default();
                let data = payload.replace('\n', "\ndata: ");
                format!("event: {}\ndata: {data}\n\n", msg.get_channel_name())
            }
            // Quiet bus: a comment line keeps proxies from closing the stream and tells us
            // when the client has gone.
            Err(e) if e.is_timeout() => ": keep-alive\n\n".to_string(),
            Err(_) => return,
        };
        if out
            .write_all(frame.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            return;
        }
    }
}
