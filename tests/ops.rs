//! Operator commands against real redis-servers: doctor on a good and a misconfigured setup,
//! and the HTTP server with a real HTTP client, including server-sent events.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::redis::{RedisServer, free_port};
use common::{bin, json, root, run_in};

fn text(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

#[test]
fn doctor_passes_a_proper_setup_and_fails_a_dangerous_one() {
    let main = RedisServer::start(Some("systemd/perps-redis.conf"), &[]);
    let cache = RedisServer::start(Some("systemd/perps-redis-cache.conf"), &[]);
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("p.toml");
    std::fs::write(
        &p,
        format!("[spool]\ndir = \"{}\"\n", t.path().join("spool").display()),
    )
    .unwrap();
    std::fs::create_dir_all(t.path().join("spool/inbox")).unwrap();
    let envs = [("REDIS_CACHE_URL", cache.url(1))];
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = run_in(
        t.path(),
        &[
            "doctor",
            "--pipeline",
            p.to_str().unwrap(),
            "--redis-url",
            &main.url(0),
        ],
        None,
        &envs,
    );
    let report = text(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    for needle in [
        "ok    main redis",
        "noeviction",
        "appendonly yes",
        "ok    cache eviction",
        "allkeys-lru",
        "ok    spool",
        "ok    state mirror dir",
        "ok    main passwords",
        "0 failed",
    ] {
        assert!(report.contains(needle), "missing {needle:?}:\n{report}");
    }

    // The users file installed without replacing its template passwords.
    let template = RedisServer::start(
        None,
        &[
            "--user",
            "perps-news",
            "on",
            ">CHANGE-ME-app-password",
            "~*",
            "&*",
            "+@all",
        ],
    );
    let url = format!(
        "redis://perps-news:CHANGE-ME-app-password@127.0.0.1:{}/0",
        template.port()
    );
    let out = run_in(t.path(), &["doctor", "--redis-url", &url], None, &[]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("FAIL  main passwords") && report.contains("perps-news"),
        "{report}"
    );

    // An LRU, non-persistent instance holding the queues, shared with the cache.
    let bad = RedisServer::start(
        None,
        &["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"],
    );
    let out = run_in(t.path(), &["doctor", "--redis-url", &bad.url(0)], None, &[]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("FAIL  main eviction") && report.contains("allkeys-lru"),
        "{report}"
    );
    assert!(report.contains("FAIL  main persistence"), "{report}");
    assert!(report.contains("warn  cache placement"), "{report}");

    // Nobody there at all.
    let port = free_port();
    let out = run_in(
        t.path(),
        &[
            "doctor",
            "--redis-url",
            &format!("redis://127.0.0.1:{port}/0"),
        ],
        None,
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains(&format!("127.0.0.1:{port}")),
        "{}",
        text(&out)
    );
}

/// `doctor` only looks: a missing spool or state directory is a failed check naming it, and
/// it is still missing afterwards (it used to create `/var/lib/perps-news/...`).
#[test]
fn doctor_reports_missing_directories_and_creates_nothing() {
    let main = RedisServer::start(Some("systemd/perps-redis.conf"), &[]);
    let t = tempfile::tempdir().unwrap();
    let spool = t.path().join("no-spool");
    let state = t.path().join("no-state");
    let p = t.path().join("p.toml");
    std::fs::write(
        &p,
        format!(
            "[spool]\ndir = \"{}\"\n[redis]\nstate_mirror_path = \"{}\"\n",
            spool.display(),
            state.join("state.json").display()
        ),
    )
    .unwrap();
    let before = std::fs::read_dir(t.path()).unwrap().count();
    let out = run_in(
        t.path(),
        &[
            "doctor",
            "--pipeline",
            p.to_str().unwrap(),
            "--redis-url",
            &main.url(0),
        ],
        None,
        &[],
    );
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let inbox = spool.join("inbox");
    for needle in [
        format!(
            "FAIL  spool              {} does not exist",
            inbox.display()
        ),
        format!(
            "FAIL  state mirror dir   {} does not exist",
            state.display()
        ),
    ] {
        assert!(report.contains(&needle), "missing {needle:?}:\n{report}");
    }
    assert!(!spool.exists() && !state.exists(), "nothing created");
    assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), before);
}

struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(url: &str) -> (Served, String) {
    serve_with(url, &[], &[])
}

fn serve_with(url: &str, args: &[&str], envs: &[(&str, &str)]) -> (Served, String) {
    let port = free_port();
    let child = bin()
        .args(["serve", "--port", &port.to_string(), "--redis-url", url])
        .args(args)
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while ureq::get(&format!("{base}/healthz")).call().is_err() {
        assert!(Instant::now() < deadline, "serve did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    (Served(child), base)
}

fn get_json(url: &str) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent.get(url).call().unwrap();
    let status = r.status().as_u16();
    (status, r.body_mut().read_json().unwrap())
}

#[test]
fn http_endpoints_answer_with_json_and_relay_events() {
    let redis = RedisServer::start(Some("systemd/perps-redis.conf"), &[]);
    let url = redis.url(0);
    let t = tempfile::tempdir().unwrap();
    let out = run_in(
        t.path(),
        &[
            "run",
            "--json",
            "--redis-url",
            &url,
            root("fixtures/news-100.jsonl").to_str().unwrap(),
        ],
        None,
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let (_server, base) = serve(&url);

    let (s, health) = get_json(&format!("{base}/healthz"));
    assert_eq!((s, health["status"].as_str()), (200, Some("ok")));

    let (s, stats) = get_json(&format!("{base}/api/cache/stats"));
    assert_eq!(s, 200);
    let cli = json(&run_in(
        t.path(),
        &["stats", "--json", "--redis-url", &url],
        None,
        &[],
    ));
    assert_eq!(stats, cli, "the endpoint and `stats --json` agree");
    assert_eq!(stats["cacheStats"]["misses"], 100);
    assert_eq!(stats["lastRun"]["totalProcessed"], 100);

    let (s, page) = get_json(&format!("{base}/api/stories?page=1&per_page=5"));
    assert_eq!(s, 200);
    let stories = page["stories"].as_array().unwrap();
    assert_eq!(stories.len(), 5);
    assert_eq!(page["total"], stats["stories"]);
    let last: Vec<&str> = stories
        .iter()
        .map(|s| s["last_published_at"].as_str().unwrap())
        .collect();
    assert!(
        last.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {last:?}"
    );
    // Every story says which way it points, overall and per symbol, and counts outlets.
    for st in stories {
        let d = &st["direction"];
        assert!(
            ["bullish", "bearish", "neutral"].contains(&d["direction"].as_str().unwrap_or("")),
            "{st}"
        );
        assert_eq!(
            d["symbols"].as_array().map(Vec::len),
            st["symbols"].as_array().map(Vec::len),
            "{st}"
        );
        assert!(st["outlets"].as_u64() >= st["sources"].as_u64(), "{st}");
    }
    let (_, page2) = get_json(&format!("{base}/api/stories?page=2&per_page=5"));
    assert_ne!(page2["stories"][0]["id"], stories[0]["id"]);

    let (s, e) = get_json(&format!("{base}/nope"));
    assert_eq!((s, e["error"].as_str()), (404, Some("not found")));
    // A 404 does not echo the request: a long path in, a short body out.
    let long = "x".repeat(4000);
    let (s, e) = get_json(&format!("{base}/{long}"));
    assert_eq!(s, 404);
    assert!(
        e.to_string().len() < 100 && !e.to_string().contains("xxxx"),
        "{e}"
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let r = agent.post(&format!("{base}/api/stories")).send("").unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(
        r.headers().get("allow").and_then(|v| v.to_str().ok()),
        Some("GET, HEAD")
    );

    // Server-sent events: a published message reaches an open stream.
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET /api/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut head = String::new();
    while !head.contains(": connected") {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "stream closed: {head}"
        );
        head.push_str(&line);
    }
    assert!(
        head.starts_with("HTTP/1.1 200") && head.contains("text/event-stream"),
        "{head}"
    );
    let mut c = redis.client(0);
    let sent = Instant::now();
    publish(&mut c, "news:clustered", r#"{"totalProcessed":7}"#);
    let mut event = String::new();
    while !event.contains("data: ") {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0);
        if !line.starts_with(':') {
            event.push_str(&line);
        }
    }
    let latency = sent.elapsed();
    assert!(
        event.contains("event: news:clustered") && event.contains(r#"data: {"totalProcessed":7}"#),
        "{event}"
    );
    eprintln!("SSE relay latency: {latency:?}");
    // Functional bound only (a loaded CI machine must not fail it); the latency itself is
    // printed and reported, measured well under the 100 ms target.
    assert!(latency < Duration::from_secs(2), "relayed in {latency:?}");
}

/// What the bus does with an event: `PUBLISH` on the channel and `XADD` to its stream.
fn publish(c: &mut redis::Connection, channel: &str, payload: &str) {
    let _: () = redis::pipe()
        .cmd("PUBLISH")
        .arg(channel)
        .arg(payload)
        .ignore()
        .cmd("XADD")
        .arg(channel)
        .arg("*")
        .arg("payload")
        .arg(payload)
        .ignore()
        .query(c)
        .unwrap();
}

/// Sends `request` on a new connection and reads the whole answer (the server closes).
/// `HEAD` answers where `GET` does (headers, no body), and CORS is opt-in: no
/// `Access-Control-Allow-Origin` unless `[serve] cors_origin` names the page's origin.
#[test]
fn head_works_where_get_does_and_cors_is_opt_in() {
    let redis = RedisServer::start(Some("systemd/perps-redis.conf"), &[]);
    let url = redis.url(0);
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("p.toml");
    std::fs::write(&p, "[serve]\ncors_origin = \"https://desk.example\"\n").unwrap();
    let (_plain, plain) = serve(&url);
    let (_cors, with_cors) = serve_with(&url, &["--pipeline", p.to_str().unwrap()], &[]);
    let host = |base: &str| base.trim_start_matches("http://").to_string();
    for path in [
        "/healthz",
        "/api/cache/stats",
        "/api/stories",
        "/api/events",
    ] {
        let get = exchange(
            &host(&plain),
            &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
        );
        let head = exchange(
            &host(&plain),
            &format!("HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
        );
        assert!(head.starts_with("HTTP/1.1 200"), "HEAD {path}: {head}");
        let (head_lines, body) = head.split_once("\r\n\r\n").unwrap();
        assert!(body.is_empty(), "HEAD {path} has no body: {body:?}");
        let ctype = |r: &str| {
            r.lines()
                .find(|l| l.to_ascii_lowercase().starts_with("content-type"))
                .map(str::to_string)
        };
        if path != "/api/events" {
            assert_eq!(ctype(head_lines), ctype(&get), "{path}");
        } else {
            assert!(head_lines.contains("text/event-stream"));
        }
    }
    let origin = |base: &str, o: &str| {
        exchange(
            &host(base),
            &format!("GET /api/stories HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: {o}\r\n\r\n"),
        )
    };
    assert!(!origin(&plain, "https://desk.example").contains("Access-Control"));
    assert!(
        origin(&with_cors, "https://desk.example")
            .contains("Access-Control-Allow-Origin: https://desk.example")
    );
    assert!(!origin(&with_cors, "https://evil.example").contains("Access-Control"));
    let preflight = exchange(
        &host(&with_cors),
        "OPTIONS /api/stories HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://desk.example\r\n\r\n",
    );
    assert!(
        preflight.starts_with("HTTP/1.1 204") && preflight.contains("Authorization"),
        "{preflight}"
    );
}

fn exchange(addr: &str, request: &str) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    out
}

/// An event stream, open after its `: connected` line.
fn open_events(addr: &str, token: &str) -> BufReader<TcpStream> {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        c,
        "GET /api/events HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(c);
    let mut head = String::new();
    while !head.contains(": connected") {
        let mut line = String::new();
        assert!(r.read_line(&mut line).unwrap() > 0, "closed: {head}");
        head.push_str(&line);
    }
    r
}

/// The next event's `event:` line, skipping comments.
fn next_event(r: &mut BufReader<TcpStream>) -> String {
    loop {
        let mut line = String::new();
        assert!(r.read_line(&mut line).unwrap() > 0, "stream closed");
        if let Some(name) = line.strip_prefix("event: ") {
            return name.trim().to_string();
        }
    }
}

fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count()
}

fn redis_clients(c: &mut redis::Connection) -> usize {
    let list: String = redis::cmd("CLIENT").arg("LIST").query(c).unwrap();
    list.lines().count()
}

#[test]
fn serve_is_bounded_checks_host_and_token_and_relays_only_news() {
    let redis = RedisServer::start(Some("systemd/perps-redis.conf"), &[]);
    let url = redis.url(0);
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("serve.toml");
    std::fs::write(
        &p,
        "[serve]\nmax_event_clients = 4\nmax_connections = 8\nheader_timeout_ms = 1500\n",
    )
    .unwrap();
    let token = "t0k-3n";
    let (server, base) = serve_with(
        &url,
        &["--pipeline", p.to_str().unwrap()],
        &[("PERPS_NEWS_SERVE_TOKEN", token)],
    );
    let pid = server.0.id();
    let addr = base.trim_start_matches("http://").to_string();
    let get = |path: &str, host: &str, auth: &str| {
        exchange(
            &addr,
            &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n"),
        )
    };
    let bearer = format!("Authorization: Bearer {token}\r\n");

    // Host allow-list (DNS rebinding) and the token.
    assert!(get("/api/stories", "evil.example:3001", &bearer).starts_with("HTTP/1.1 403"));
    assert!(get("/api/stories", &addr, "").starts_with("HTTP/1.1 401"));
    assert!(
        get("/api/stories", &addr, "Authorization: Bearer nope\r\n").starts_with("HTTP/1.1 401")
    );
    assert!(get("/api/stories", &addr, &bearer).starts_with("HTTP/1.1 200"));
    assert!(get("/api/stories", "[::1]:9", &bearer).starts_with("HTTP/1.1 200"));
    assert!(
        get("/healthz", "localhost", "").starts_with("HTTP/1.1 200"),
        "health needs no token"
    );

    // Event streams: bounded, one Redis subscription for all, only the news channels.
    let mut c = redis.client(0);
    let before_clients = redis_clients(&mut c);
    let mut streams: Vec<_> = (0..4).map(|_| open_events(&addr, token)).collect();
    let fifth = get("/api/events", "localhost", &bearer);
    assert!(fifth.starts_with("HTTP/1.1 503"), "{fifth}");
    // `cmd` is a client's last command: the relay is in XREAD but for its short rescans.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut c).unwrap();
        let readers = list.lines().filter(|l| l.contains("cmd=xread")).count();
        assert!(
            readers <= 1,
            "one relay reads the streams for all clients:\n{list}"
        );
        if readers == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no relay reading the streams:\n{list}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        redis_clients(&mut c),
        before_clients,
        "no Redis connection per client"
    );
    for (channel, payload) in [
        (
            "execution:filled",
            r#"{"symbol":"BTC","side":"buy","size":1,"price":1}"#,
        ),
        ("news:clustered", r#"{"totalProcessed":7}"#),
    ] {
        publish(&mut c, channel, payload);
    }
    for s in &mut streams {
        assert_eq!(
            next_event(s),
            "news:clustered",
            "execution:filled is not relayed"
        );
    }
    drop(streams);

    // Slow headers are cut at the header timeout; the threads stay bounded meanwhile.
    let idle_threads = threads(pid);
    let mut slow: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut c = TcpStream::connect(&addr).unwrap();
            c.write_all(b"GET /healthz HTTP/1.1\r\nHo").unwrap();
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        threads(pid) <= idle_threads + 8,
        "{} threads for 40 slow clients (idle: {idle_threads})",
        threads(pid)
    );
    // Over the connection cap: refused at once (a 503, or a reset when the close beat it).
    let t0 = Instant::now();
    let mut c = TcpStream::connect(&addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = c.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let mut answer = Vec::new();
    match c.read_to_end(&mut answer) {
        Ok(_) => assert!(
            answer.starts_with(b"HTTP/1.1 503"),
            "{}",
            String::from_utf8_lossy(&answer)
        ),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "refused in {:?}",
        t0.elapsed()
    );
    std::thread::sleep(Duration::from_millis(2000));
    let mut closed = 0;
    for c in &mut slow {
        c.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut buf = Vec::new();
        // Closed: an end of stream, or a reset (the server closed with our bytes unread);
        // still open: the read times out.
        match c.read_to_end(&mut buf) {
            Ok(_) => closed += 1,
            Err(e)
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                closed += 1;
            }
            Err(_) => {}
        }
    }
    assert_eq!(closed, 40, "every slow client was closed by the server");
    assert!(get("/healthz", "localhost", "").starts_with("HTTP/1.1 200"));

    // A huge header is refused without being read whole.
    let mut c = TcpStream::connect(&addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = c.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: ");
    let big = vec![b'a'; 64 << 10];
    let _ = c.write_all(&big);
    let mut answer = String::new();
    let _ = c.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "{}",
        &answer[..answer.len().min(200)]
    );
    assert!(get("/healthz", "localhost", "").starts_with("HTTP/1.1 200"));
}
