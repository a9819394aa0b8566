//! `serve`, a small synchronous HTTP server for dashboards, and the numbers behind `stats`.
//!
//! `serve` endpoints: `GET /healthz`, `GET /api/cache/stats` (what `stats --json` prints),
//! `GET /api/stories?page=1&per_page=50` (stories, most recently active first), and
//! `GET /api/events` (server-sent events relayed from the news channels of the Redis bus
//! as they are published, all clients fed by one subscription). `HEAD` answers wherever
//! `GET` does; CORS headers only for the origin `[serve] cors_origin` names. Other paths get
//! a 404, other methods a 405, both as JSON. The server ([`crate::http`]) bounds connections,
//! header time and size; requests must name an allowed `Host`, and carry the bearer token
//! when one is configured (`[serve]`).

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use crate::config::PipelineConfig;
use crate::error::{Error, Result};
use crate::store::redis::{Connections, Pool, STORIES_KEY, STORY_PREFIX, stats_json};

fn query_param(url: &str, key: &str) -> Option<usize> {
    let q = url.split_once('?')?.1;
    q.split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{key}="))?.parse().ok())
}

/// Longest a response write may block: a client that stops reading is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Frames queued per event-stream client; a client this far behind is dropped (it can
/// reconnect and catch up from the stream) instead of holding memory for it.
const EVENT_QUEUE: usize = 256;

/// How often a quiet event stream gets a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The event-stream clients, fed by one Redis subscription.
struct Hub {
    clients: std::sync::Mutex<Vec<(u64, crossbeam_channel::Sender<std::sync::Arc<str>>)>>,
    next: std::sync::atomic::AtomicU64,
    max: usize,
}

impl Hub {
    fn new(max: usize) -> Self {
        Hub {
            clients: std::sync::Mutex::new(Vec::new()),
            next: std::sync::atomic::AtomicU64::new(0),
            max,
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, Vec<(u64, crossbeam_channel::Sender<std::sync::Arc<str>>)>> {
        self.clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A slot for one more client, if there is room.
    fn join(&self) -> Option<(u64, crossbeam_channel::Receiver<std::sync::Arc<str>>)> {
        let mut clients = self.lock();
        if clients.len() >= self.max {
            return None;
        }
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = crossbeam_channel::bounded(EVENT_QUEUE);
        clients.push((id, tx));
        Some((id, rx))
    }

    fn leave(&self, id: u64) {
        self.lock().retain(|(c, _)| *c != id);
    }

    /// Queues `frame` for every client; clients that are gone or too far behind are dropped.
    fn broadcast(&self, frame: &str) {
        let frame: std::sync::Arc<str> = frame.into();
        self.lock().retain(|(id, tx)| {
            let kept = tx.try_send(frame.clone()).is_ok();
            if !kept {
                tracing::debug!(client = id, "Event client dropped (gone or too slow).");
            }
            kept
        });
    }
}

/// Everything a connection handler needs.
struct Served<'a> {
    conns: &'a Connections,
    cfg: &'a PipelineConfig,
    hub: &'a Hub,
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
    let hub = Hub::new(sv.max_event_clients);
    let served = Served {
        conns: &conns,
        cfg,
        hub: &hub,
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
        s.spawn(|| relay(&conns, &cfg.serve.channels, &hub));
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

/// The one Redis subscription behind every event stream: forwards each message on the
/// configured channels to the hub, reconnecting after errors.
fn relay(conns: &Connections, channels: &[String], hub: &Hub) {
    let client = conns.main.client();
    loop {
        let err = match client.get_connection_with_timeout(Duration::from_secs(5)) {
            Err(e) => e,
            Ok(mut conn) => {
                let _ = conn.set_read_timeout(Some(KEEP_ALIVE));
                let mut pubsub = conn.as_pubsub();
                let subscribed = channels.iter().try_for_each(|c| pubsub.psubscribe(c));
                match subscribed {
                    Err(e) => e,
                    Ok(()) => loop {
                        match pubsub.get_message() {
                            Ok(msg) => {
                                let payload: String = msg.get_payload().unwrap_or_default();
                                let data = payload.replace('\n', "\ndata: ");
                                hub.broadcast(&format!(
                                    "event: {}\ndata: {data}\n\n",
                                    msg.get_channel_name()
                                ));
                            }
                            // Quiet bus: keep listening while the connection answers a ping.
                            Err(e) if e.is_timeout() => {
                                if let Err(e) = pubsub.ping::<String>() {
                                    break e;
                                }
                            }
                            Err(e) => break e,
                        }
                    },
                }
            }
        };
        tracing::warn!(error = %err, "Event relay lost its Redis subscription; reconnecting.");
        std::thread::sleep(Duration::from_secs(1));
    }
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
    ];
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
    if !known.contains(&path.as_str()) {
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
    if path != "/healthz"
        && let Some(token) = &served.token
    {
        let given = request
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
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
    let (status, body) = match path.as_str() {
        "/healthz" => {
            let redis = conns.main.ping().is_ok();
            let body = serde_json::json!({"status": if redis { "ok" } else { "degraded" }, "redis": redis});
            (if redis { 200 } else { 503 }, body)
        }
        "/api/cache/stats" => answer(stats_json(conns, &cfg.redis)),
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
            let Some((id, rx)) = served.hub.join() else {
                reply(
                    &mut stream,
                    503,
                    serde_json::json!({"error": "too many event clients (see [serve] max_event_clients)"}),
                );
                release();
                return;
            };
            release();
            events(stream, &rx, &cors);
            served.hub.leave(id);
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

/// Streams the hub's frames to one client as server-sent events, flushing each at once,
/// until the client goes away or falls too far behind.
fn events(
    mut out: TcpStream,
    rx: &crossbeam_channel::Receiver<std::sync::Arc<str>>,
    cors: &[(&str, &str)],
) {
    let mut head = String::from(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n",
    );
    for (k, v) in cors {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n: connected\n\n");
    if out
        .write_all(head.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        return;
    }
    loop {
        let frame = match rx.recv_timeout(KEEP_ALIVE) {
            Ok(f) => f,
            // A comment line keeps proxies from closing the stream and tells us when the
            // client has gone.
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => ": keep-alive\n\n".into(),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
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
