//! `perps-news serve` beyond its JSON endpoints, against a real redis-server over real HTTP
//! on loopback: event ids and resuming with `Last-Event-ID`, and the Prometheus metrics
//! after real runs, checked against the exposition grammar.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::redis::{RedisServer, free_port};
use common::{bin, json, root, run_in};

struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(url: &str, envs: &[(&str, &str)]) -> (Served, String) {
    let port = free_port();
    let child = bin()
        .args(["serve", "--port", &port.to_string(), "--redis-url", url])
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    // Any answer will do (a 503 says Redis is down, and the server is up).
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    while agent.get(&format!("http://{addr}/healthz")).call().is_err() {
        assert!(Instant::now() < deadline, "serve did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    (Served(child), addr)
}

/// What the bus does with an event: `PUBLISH` on the channel, `XADD` to its stream.
/// Returns the stream entry id.
fn publish(c: &mut redis::Connection, channel: &str, payload: &str) -> String {
    let (id,): (String,) = redis::pipe()
        .cmd("PUBLISH")
        .arg(channel)
        .arg(payload)
        .ignore()
        .cmd("XADD")
        .arg(channel)
        .arg("*")
        .arg("payload")
        .arg(payload)
        .query(c)
        .unwrap();
    // A millisecond apart, so that entries of different streams get ids in publish order
    // (within one millisecond each stream numbers its own entries from 0).
    std::thread::sleep(Duration::from_millis(2));
    id
}

/// One SSE message with data.
#[derive(Debug, Clone, PartialEq)]
struct Msg {
    id: String,
    event: String,
    data: String,
}

struct Events {
    r: BufReader<TcpStream>,
    /// The last `id:` seen (what a browser would send back).
    last_id: Option<String>,
}

impl Events {
    fn open(addr: &str, last_event_id: Option<&str>) -> Events {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let resume = last_event_id
            .map(|id| format!("Last-Event-ID: {id}\r\n"))
            .unwrap_or_default();
        write!(
            c,
            "GET /api/events HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n{resume}\r\n"
        )
        .unwrap();
        let mut r = BufReader::new(c);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            assert!(r.read_line(&mut line).unwrap() > 0, "closed: {head}");
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        Events { r, last_id: None }
    }

    /// The next message with data; `None` when none comes within the read timeout.
    fn next(&mut self) -> Option<Msg> {
        let (mut id, mut event, mut data) = (None, String::new(), Vec::new());
        loop {
            let mut line = String::new();
            match self.r.read_line(&mut line) {
                Ok(0) => panic!("stream closed"),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None;
                }
                Err(e) => panic!("{e}"),
            }
            let line = line.trim_end_matches('\n');
            if line.is_empty() {
                if let Some(i) = id.take() {
                    self.last_id = Some(i);
                }
                if !data.is_empty() {
                    return Some(Msg {
                        id: self.last_id.clone().unwrap_or_default(),
                        event: std::mem::take(&mut event),
                        data: data.join("\n"),
                    });
                }
            } else if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.to_string());
            } else if let Some(v) = line.strip_prefix("event: ") {
                event = v.to_string();
            } else if let Some(v) = line.strip_prefix("data: ") {
                data.push(v.to_string());
            }
        }
    }

    fn expect(&mut self) -> Msg {
        self.next().expect("an event within 5 s")
    }

    fn quiet_for(&mut self, d: Duration) -> Option<Msg> {
        self.r.get_ref().set_read_timeout(Some(d)).unwrap();
        let m = self.next();
        self.r
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        m
    }
}

/// The stream entry id a cursor holds for `stream`.
fn position<'a>(cursor: &'a str, stream: &str) -> Option<&'a str> {
    cursor
        .split(',')
        .find_map(|p| p.strip_prefix(&format!("{stream}=")))
}

/// Payloads per stream, in order. Across streams the order of entries appended in the same
/// millisecond is not defined (each stream numbers its own), so only this is compared.
fn per_stream<'a>(msgs: &'a [(&'a str, String)]) -> BTreeMap<&'a str, Vec<&'a str>> {
    let mut out: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (stream, data) in msgs {
        out.entry(stream).or_default().push(data);
    }
    out
}

#[test]
fn event_ids_are_stream_positions_and_a_reconnect_resumes_without_duplicates_or_gaps() {
    let redis = RedisServer::start(Some("systemd/perps-redis.conf"), &[]);
    let (_server, addr) = serve(&redis.url(0), &[]);
    let mut c = redis.client(0);

    let mut first = Events::open(&addr, None);
    // Before any event the client already holds a cursor naming the bus's streams.
    let mut ids = Vec::new();
    let mut sent = Vec::new();
    for (i, channel) in ["news:story", "news:clustered", "news:story"]
        .into_iter()
        .enumerate()
    {
        let payload = format!(r#"{{"n":{i}}}"#);
        ids.push(publish(&mut c, channel, &payload));
        sent.push((channel, payload));
    }
    let got: Vec<Msg> = (0..3).map(|_| first.expect()).collect();
    for (i, m) in got.iter().enumerate() {
        assert_eq!(
            (m.event.as_str(), m.data.as_str()),
            (sent[i].0, sent[i].1.as_str())
        );
        // The id is the cursor after this event: this entry's id for its stream.
        assert_eq!(position(&m.id, sent[i].0), Some(ids[i].as_str()), "{m:?}");
    }
    assert_eq!(
        position(&got[2].id, "news:clustered"),
        Some(ids[1].as_str())
    );
    let resume_at = got[1].id.clone();
    drop(first);

    // Missed while away: event 2 (read, but after the resume point) and 3..5.
    for (i, channel) in ["news:clustered", "news:story", "news:story"]
        .into_iter()
        .enumerate()
    {
        let payload = format!(r#"{{"n":{}}}"#, i + 3);
        ids.push(publish(&mut c, channel, &payload));
        sent.push((channel, payload));
    }
    let mut back = Events::open(&addr, Some(&resume_at));
    let replayed: Vec<Msg> = (2..6).map(|_| back.expect()).collect();
    let want: Vec<(&str, String)> = sent[2..6].iter().map(|(c, p)| (*c, p.clone())).collect();
    let have: Vec<(&str, String)> = replayed
        .iter()
        .map(|m| (m.event.as_str(), m.data.clone()))
        .collect();
    assert_eq!(
        per_stream(&have),
        per_stream(&want),
        "the replay is what was missed, in each stream's order"
    );
    // Then live, with nothing sent twice.
    ids.push(publish(&mut c, "news:story", r#"{"n":6}"#));
    let live = back.expect();
    assert_eq!(live.data, r#"{"n":6}"#);
    assert_eq!(
        position(&live.id, "news:story"),
        ids.last().map(String::as_str)
    );
    assert_eq!(position(&live.id, "news:clustered"), Some(ids[3].as_str()));
    assert_eq!(
        back.quiet_for(Duration::from_millis(800)),
        None,
        "no duplicate"
    );

    // Resuming from the last id gets nothing old; resuming from a client's first cursor
    // (sent before any event) gets everything.
    let mut caught_up = Events::open(&addr, Some(&live.id));
    publish(&mut c, "news:clustered", r#"{"n":7}"#);
    assert_eq!(caught_up.expect().data, r#"{"n":7}"#);
    let mut from_start = Events::open(&addr, Some("news:clustered=0-0,news:story=0-0"));
    let all: Vec<(&str, String)> = (0..8)
        .map(|_| {
            let m = from_start.expect();
            (
                if m.event == "news:story" {
                    "news:story"
                } else {
                    "news:clustered"
                },
                m.data,
            )
        })
        .collect();
    let mut want: Vec<(&str, String)> = sent.iter().map(|(c, p)| (*c, p.clone())).collect();
    want.push(("news:story", r#"{"n":6}"#.into()));
    want.push(("news:clustered", r#"{"n":7}"#.into()));
    assert_eq!(per_stream(&all), per_stream(&want));

    // An id this server did not write is ignored: live events only.
    let mut stranger = Events::open(&addr, Some("garbage"));
    publish(&mut c, "news:story", r#"{"n":8}"#);
    assert_eq!(stranger.expect().data, r#"{"n":8}"#);
}

/// One parsed sample line.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text exposition format strictly: every line is a `# HELP`, a `# TYPE` or a
/// sample matching the grammar, every sample's family has HELP and TYPE before its first
/// sample, counters end in `_total`, histogram buckets are cumulative and end with `+Inf`
/// equal to `_count`. Returns the samples and the type of each family.
fn parse_exposition(text: &str) -> (Vec<Sample>, HashMap<String, String>) {
    let name_ok = |n: &str| {
        let mut cs = n.chars();
        cs.next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut help: HashMap<String, String> = HashMap::new();
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = Vec::new();
    assert!(text.ends_with('\n'), "ends with a newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (n, h) = rest.split_once(' ').expect("HELP name text");
            assert!(name_ok(n) && !h.is_empty(), "{line}");
            assert!(
                help.insert(n.into(), h.into()).is_none(),
                "one HELP: {line}"
            );
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (n, t) = rest.split_once(' ').expect("TYPE name type");
            assert!(name_ok(n), "{line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t),
                "{line}"
            );
            assert!(help.contains_key(n), "HELP before TYPE: {line}");
            assert!(
                types.insert(n.into(), t.into()).is_none(),
                "one TYPE: {line}"
            );
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line {line:?}"
        );
        // name{label="value",...} value
        let (series, value) = line.rsplit_once(' ').expect("sample value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value in {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((n, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
                let mut labels = BTreeMap::new();
                let mut chars = body.chars().peekable();
                while chars.peek().is_some() {
                    let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
                    assert!(name_ok(&key), "label name in {line}");
                    assert_eq!(chars.next(), Some('"'), "{line}");
                    let mut val = String::new();
                    loop {
                        match chars.next().unwrap_or_else(|| panic!("{line}")) {
                            '\\' => match chars.next() {
                                Some('n') => val.push('\n'),
                                Some(c @ ('\\' | '"')) => val.push(c),
                                _ => panic!("bad escape in {line}"),
                            },
                            '"' => break,
                            c => val.push(c),
                        }
                    }
                    labels.insert(key, val);
                    match chars.next() {
                        None => {}
                        Some(',') => {}
                        Some(c) => panic!("{c:?} after a label in {line}"),
                    }
                }
                (n, labels)
            }
        };
        assert!(name_ok(name), "{line}");
        let family = types
            .keys()
            .filter(|f| {
                name == f.as_str()
                    || ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name.strip_suffix(s) == Some(f.as_str()))
            })
            .max_by_key(|f| f.len())
            .unwrap_or_else(|| panic!("no TYPE before {line}"))
            .clone();
        if types[&family] == "counter" {
            assert!(name.ends_with("_total"), "counter {name}");
        }
        samples.push(Sample {
            name: name.into(),
            labels,
            value,
        });
    }
    // Histograms: cumulative buckets, +Inf last and equal to _count.
    for (family, t) in &types {
        if t != "histogram" {
            continue;
        }
        let buckets: Vec<(f64, f64)> = samples
            .iter()
            .filter(|s| s.name == format!("{family}_bucket"))
            .map(|s| {
                let le = &s.labels["le"];
                (
                    if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().unwrap()
                    },
                    s.value,
                )
            })
            .collect();
        assert!(buckets.len() > 1, "{family} has buckets");
        assert!(
            buckets
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
        );
        let count = samples
            .iter()
            .find(|s| s.name == format!("{family}_count"))
            .expect("_count")
            .value;
        assert_eq!(buckets.last().unwrap(), &(f64::INFINITY, count));
    }
    (samples, types)
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
        .value
}

fn scrape(addr: &str) -> (String, String) {
    let mut r = ureq::get(&format!("http://{addr}/metrics")).call().unwrap();
    let ctype = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (ctype, r.body_mut().read_to_string().unwrap())
}

#[test]
fn metrics_come_from_what_redis_holds_after_real_runs() {
    let redis = RedisServer::start(Some("systemd/perps-redis.conf"), &[]);
    let url = redis.url(0);
    let t = tempfile::tempdir().unwrap();
    let fixture = std::fs::read_to_string(root("fixtures/news-100.jsonl")).unwrap();
    let lines: Vec<&str> = fixture.lines().collect();
    let first = t.path().join("first.jsonl");
    std::fs::write(
        &first,
        format!(
            "{}\nnot json\n{{\"id\":\"x1\",\"title\":\"\",\"body\":\"\"}}\n",
            lines[..40].join("\n")
        ),
    )
    .unwrap();
    let second = t.path().join("second.jsonl");
    std::fs::write(&second, format!("{}\n{{broken\n", lines[30..70].join("\n"))).unwrap();
    let third = t.path().join("third.jsonl");
    std::fs::write(&third, format!("{}\n", lines[70..].join("\n"))).unwrap();
    let run = |input: &std::path::Path| -> serde_json::Value {
        let out = run_in(
            t.path(),
            &[
                "run",
                "--json",
                "--redis-url",
                &url,
                input.to_str().unwrap(),
            ],
            None,
            &[],
        );
        json(&out)
    };
    // Two runs before serve starts (it seeds from the stream), one after (seen at a scrape).
    let mut summaries = vec![run(&first), run(&second)];
    let (_server, addr) = serve(&url, &[]);
    let (_, early) = scrape(&addr);
    let (early, _) = parse_exposition(&early);
    assert_eq!(value(&early, "perps_news_runs_total", &[]), 2.0);
    summaries.push(run(&third));
    let mut c = redis.client(0);
    publish(
        &mut c,
        "circuit:breaker:open",
        r#"{"breakerName":"embed","reason":"5 failures in a row"}"#,
    );
    // Two jobs waiting in the queue DB (2 by default), as BullMQ keeps them.
    let _: () = redis::cmd("RPUSH")
        .arg("bull:clustering:wait")
        .arg("job-1")
        .arg("job-2")
        .query(&mut redis.client(2))
        .unwrap();
    for _ in 0..2 {
        ureq::get(&format!("http://{addr}/api/stories"))
            .call()
            .unwrap();
    }

    let (ctype, text) = scrape(&addr);
    assert_eq!(ctype, "text/plain; version=0.0.4; charset=utf-8");
    let (samples, types) = parse_exposition(&text);
    for (family, t) in [
        ("perps_news_runs_total", "counter"),
        ("perps_news_articles_processed_total", "counter"),
        ("perps_news_records_read_total", "counter"),
        ("perps_news_rejects_total", "counter"),
        ("perps_news_stories_opened_total", "counter"),
        ("perps_news_api_requests_total", "counter"),
        ("perps_news_api_retries_total", "counter"),
        ("perps_news_breaker_openings_total", "counter"),
        ("perps_news_breaker_last_open_timestamp_seconds", "gauge"),
        ("perps_news_run_duration_seconds", "histogram"),
        ("perps_news_cache_hits_total", "counter"),
        ("perps_news_cache_misses_total", "counter"),
        ("perps_news_queue_jobs", "gauge"),
        ("perps_news_state_version", "gauge"),
        ("perps_news_stories", "gauge"),
        ("perps_news_http_requests_total", "counter"),
        ("perps_news_redis_up", "gauge"),
    ] {
        assert_eq!(
            types.get(family).map(String::as_str),
            Some(t),
            "{family}\n{text}"
        );
    }
    let sum = |f: &dyn Fn(&serde_json::Value) -> f64| summaries.iter().map(f).sum::<f64>();
    let num = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
    assert_eq!(value(&samples, "perps_news_runs_total", &[]), 3.0);
    assert_eq!(
        value(&samples, "perps_news_articles_processed_total", &[]),
        sum(&|s| num(&s["totalProcessed"]))
    );
    assert_eq!(
        value(&samples, "perps_news_articles_processed_total", &[]),
        100.0
    );
    assert_eq!(
        value(&samples, "perps_news_records_read_total", &[]),
        sum(&|s| num(&s["records"]))
    );
    assert_eq!(
        value(&samples, "perps_news_stories_opened_total", &[]),
        sum(&|s| num(&s["newClusters"]))
    );
    assert_eq!(
        value(
            &samples,
            "perps_news_rejects_total",
            &[("reason", "malformed")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &samples,
            "perps_news_rejects_total",
            &[("reason", "missing_title")]
        ),
        1.0
    );
    assert_eq!(
        value(&samples, "perps_news_run_duration_seconds_count", &[]),
        3.0
    );
    let wall = sum(&|s| num(&s["stageMs"]["wall"]) / 1000.0);
    let got = value(&samples, "perps_news_run_duration_seconds_sum", &[]);
    assert!((got - wall).abs() < 1e-9, "{got} vs {wall}");
    assert_eq!(
        value(
            &samples,
            "perps_news_breaker_openings_total",
            &[("breaker", "embed")]
        ),
        1.0
    );
    assert!(
        value(
            &samples,
            "perps_news_breaker_last_open_timestamp_seconds",
            &[("breaker", "embed")]
        ) > 1.7e9
    );
    // The gauges and cache counters are what `stats --json` reads.
    let stats = json(&run_in(
        t.path(),
        &["stats", "--json", "--redis-url", &url],
        None,
        &[],
    ));
    assert_eq!(
        value(&samples, "perps_news_cache_hits_total", &[]),
        num(&stats["cacheStats"]["hits"])
    );
    assert_eq!(
        value(&samples, "perps_news_cache_misses_total", &[]),
        num(&stats["cacheStats"]["misses"])
    );
    assert_eq!(value(&samples, "perps_news_cache_misses_total", &[]), 100.0);
    assert!(
        value(&samples, "perps_news_cache_hits_total", &[]) >= 10.0,
        "lines 30..40 twice"
    );
    assert_eq!(
        value(&samples, "perps_news_state_version", &[]),
        num(&stats["stateVersion"])
    );
    assert_eq!(value(&samples, "perps_news_state_version", &[]), 3.0);
    assert_eq!(
        value(&samples, "perps_news_stories", &[]),
        num(&stats["stories"])
    );
    assert_eq!(
        value(
            &samples,
            "perps_news_queue_jobs",
            &[("queue", "clustering"), ("state", "waiting")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &samples,
            "perps_news_queue_jobs",
            &[("queue", "labeling"), ("state", "active")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &samples,
            "perps_news_http_requests_total",
            &[("path", "/api/stories")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &samples,
            "perps_news_http_requests_total",
            &[("path", "/metrics")]
        ),
        2.0
    );
    assert_eq!(value(&samples, "perps_news_redis_up", &[]), 1.0);

    // A scrape counts nothing twice.
    let (_, again) = scrape(&addr);
    let (again, _) = parse_exposition(&again);
    assert_eq!(value(&again, "perps_news_runs_total", &[]), 3.0);
    assert_eq!(
        value(&again, "perps_news_run_duration_seconds_count", &[]),
        3.0
    );

    // Redis gone: a prompt answer that says so and keeps what was counted.
    let mut redis = redis;
    redis.kill();
    let t0 = Instant::now();
    let (_, down) = scrape(&addr);
    let took = t0.elapsed();
    let (down, types) = parse_exposition(&down);
    assert!(took < Duration::from_secs(5), "scraped in {took:?}");
    assert_eq!(value(&down, "perps_news_redis_up", &[]), 0.0);
    assert_eq!(value(&down, "perps_news_runs_total", &[]), 3.0);
    assert!(
        !types.contains_key("perps_news_state_version"),
        "no stale gauges"
    );
}

#[test]
fn serve_starts_with_redis_down_and_relays_once_it_is_back() {
    let mut redis = RedisServer::start(Some("systemd/perps-redis.conf"), &[]);
    let url = redis.url(0);
    redis.stop();
    let t0 = Instant::now();
    let (_server, addr) = serve(&url, &[]);
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "up in {:?}",
        t0.elapsed()
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let health = agent.get(&format!("http://{addr}/healthz")).call().unwrap();
    assert_eq!(
        health.status().as_u16(),
        503,
        "degraded while Redis is down"
    );

    redis.restart();
    let mut c = redis.client(0);
    let mut events = Events::open(&addr, None);
    // Published at once, maybe before the relay (retrying every second) is back: it follows
    // the streams from the server's start, so nothing appended since is lost.
    publish(&mut c, "news:story", r#"{"n":"back"}"#);
    let got = events.next().or_else(|| events.next()).expect("relayed");
    assert_eq!(
        (got.event.as_str(), got.data.as_str()),
        ("news:story", r#"{"n":"back"}"#)
    );
    let (_, text) = scrape(&addr);
    let (samples, _) = parse_exposition(&text);
    assert_eq!(value(&samples, "perps_news_redis_up", &[]), 1.0);
}
