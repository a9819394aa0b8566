//! `perps-news serve` beyond its JSON endpoints, against a real redis-server over real HTTP
//! on loopback: event ids and resuming with `Last-Event-ID`, and the Prometheus metrics
//! after real runs, checked against the exposition grammar.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::redis::{RedisServer, free_port};
use common::{bin, root, run_in};

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
    while ureq::get(&format!("http://{addr}/healthz")).call().is_err() {
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
        assert_eq!((m.event.as_str(), m.data.as_str()), (sent[i].0, sent[i].1.as_str()));
        // The id is the cursor after this event: this entry's id for its stream.
        assert_eq!(position(&m.id, sent[i].0), Some(ids[i].as_str()), "{m:?}");
    }
    assert_eq!(position(&got[2].id, "news:clustered"), Some(ids[1].as_str()));
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
    let want: Vec<(&str, &str)> = sent[2..6].iter().map(|(c, p)| (*c, p.as_str())).collect();
    let have: Vec<(&str, &str)> = replayed
        .iter()
        .map(|m| (m.event.as_str(), m.data.as_str()))
        .collect();
    assert_eq!(have, want, "the replay is what was missed, in order");
    // Then live, with nothing sent twice.
    ids.push(publish(&mut c, "news:story", r#"{"n":6}"#));
    let live = back.expect();
    assert_eq!(live.data, r#"{"n":6}"#);
    assert_eq!(position(&live.id, "news:story"), ids.last().map(String::as_str));
    assert_eq!(position(&live.id, "news:clustered"), Some(ids[3].as_str()));
    assert_eq!(back.quiet_for(Duration::from_millis(800)), None, "no duplicate");

    // Resuming from the last id gets nothing old; resuming from a client's first cursor
    // (sent before any event) gets everything.
    let mut caught_up = Events::open(&addr, Some(&live.id));
    publish(&mut c, "news:clustered", r#"{"n":7}"#);
    assert_eq!(caught_up.expect().data, r#"{"n":7}"#);
    let mut from_start = Events::open(&addr, Some("news:clustered=0-0,news:story=0-0"));
    let all: Vec<String> = (0..8).map(|_| from_start.expect().data).collect();
    let want: Vec<String> = (0..8).map(|i| format!(r#"{{"n":{i}}}"#)).collect();
    assert_eq!(all, want);

    // An id this server did not write is ignored: live events only.
    let mut stranger = Events::open(&addr, Some("garbage"));
    publish(&mut c, "news:story", r#"{"n":8}"#);
    assert_eq!(stranger.expect().data, r#"{"n":8}"#);
}
