//! A loopback server speaking the OpenAI `/embeddings` and `/chat/completions` API the way
//! OpenRouter does, with faults to inject: latency, 429 with `Retry-After`, 500s, hangs past
//! the client's timeout, malformed JSON, errors inside 200 replies, wrong dimensions and
//! results out of order. Every request is recorded (path, model, inputs, auth header, time).
//!
//! The HTTP/1.1 side is a few lines on `std::net`, a thread per connection with keep-alive
//! (tiny_http's fixed pool of connection threads held replies back under concurrent load,
//! which would have measured the fake rather than the client).
//!
//! Embeddings are bag-of-words vectors (each lowercase word adds 1 to a hashed bucket), so
//! articles sharing words get similar vectors and clustering over them is meaningful. Chat
//! replies name the story after the first headline in the prompt.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the server does with one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Status with a JSON error body, and an optional `Retry-After` header (seconds).
    Status(u16, Option<&'static str>),
    /// Sleep this long before answering normally (past the client's timeout: a hang).
    Hang(Duration),
    /// 200 with a body that is not JSON.
    Malformed,
    /// 200 with an OpenRouter-style `{"error": {...}}` body.
    ErrorIn200(u16),
    /// Vectors of this dimension instead of the right one.
    WrongDim(usize),
    /// Results in reverse order (with correct `index` fields).
    Reversed,
    /// Chat only: a reply whose content is not the JSON asked for.
    Prose,
    /// This status with an error body that echoes the request's `Authorization` header (as
    /// a careless proxy might).
    EchoAuth(u16),
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `/v1/embeddings` or `/v1/chat/completions`.
    pub path: String,
    /// The `model` field.
    pub model: String,
    /// Number of inputs (embeddings) or 1 (chat).
    pub inputs: usize,
    /// The texts sent (embeddings) or the user prompt (chat).
    pub texts: Vec<String>,
    /// The `Authorization` header.
    pub auth: Option<String>,
    /// Arrival, relative to the server's start.
    pub at: Duration,
    /// Requests being handled at arrival (this one included).
    pub in_flight: usize,
}

#[derive(Default)]
struct Script {
    /// Faults for the next requests of a model, consumed one per request.
    once: HashMap<String, VecDeque<Fault>>,
    /// A fault for every request of a model (after `once` is spent).
    always: HashMap<String, Fault>,
}

/// The server; stops when dropped.
pub struct FakeApi {
    port: u16,
    dim: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
    latency: Arc<Mutex<Duration>>,
    script: Arc<Mutex<Script>>,
    log: Arc<Mutex<Vec<Recorded>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What the connection threads share.
#[derive(Clone)]
struct Shared {
    dim: usize,
    started: Instant,
    latency: Arc<Mutex<Duration>>,
    script: Arc<Mutex<Script>>,
    log: Arc<Mutex<Vec<Recorded>>>,
    in_flight: Arc<Mutex<usize>>,
}

impl FakeApi {
    /// A server on a free loopback port answering with `dim`-dimensional vectors.
    pub fn start(dim: usize) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("address").port();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let shared = Shared {
            dim,
            started: Instant::now(),
            latency: Arc::default(),
            script: Arc::default(),
            log: Arc::default(),
            in_flight: Arc::default(),
        };
        let thread = {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let shared = shared.clone();
                    std::thread::spawn(move || serve_connection(conn, &shared));
                }
            })
        };
        FakeApi {
            port,
            dim,
            stop,
            latency: shared.latency,
            script: shared.script,
            log: shared.log,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT/v1`
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// Delay added to every reply.
    pub fn set_latency(&self, d: Duration) {
        *self.latency.lock().unwrap() = d;
    }

    /// Faults for the next requests for `model`, in order.
    pub fn fail_next(&self, model: &str, faults: &[Fault]) {
        self.script
            .lock()
            .unwrap()
            .once
            .entry(model.to_string())
            .or_default()
            .extend(faults.iter().cloned());
    }

    /// A fault for every request for `model` (None: healthy again).
    pub fn always(&self, model: &str, fault: Option<Fault>) {
        let mut s = self.script.lock().unwrap();
        match fault {
            Some(f) => s.always.insert(model.to_string(), f),
            None => s.always.remove(model),
        };
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    /// Requests so far for `path_suffix` (e.g. `embeddings`).
    pub fn count(&self, path_suffix: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path.ends_with(path_suffix))
            .count()
    }

    /// The vector this server returns for `text`.
    pub fn vector(&self, text: &str) -> Vec<f32> {
        embed(text, self.dim)
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One request off the wire: path, headers (lowercased names), body.
struct Request {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one HTTP/1.1 request with a `Content-Length` body; None at end of stream.
fn read_request(r: &mut impl std::io::BufRead) -> Option<Request> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Request {
        path,
        headers,
        body,
    })
}

/// Answers requests on one connection until the client closes it.
fn serve_connection(conn: std::net::TcpStream, shared: &Shared) {
    let Ok(write_half) = conn.try_clone() else {
        return;
    };
    let mut reader = std::io::BufReader::new(conn);
    let mut writer = write_half;
    while let Some(req) = read_request(&mut reader) {
        let (status, body, extra) = handle(&req, shared);
        let reason = match status {
            200 => "OK",
            400 => "Bad Request",
            429 => "Too Many Requests",
            500 => "Internal Server Error",
            503 => "Service Unavailable",
            _ => "Status",
        };
        let mut head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        use std::io::Write;
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(body.as_bytes()).is_err()
        {
            break;
        }
    }
}

fn embed(text: &str, dim: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; dim];
    const STOP: &[&str] = &[
        "that", "with", "from", "this", "have", "will", "been", "were", "said", "their", "after",
        "about", "into", "more", "than", "which", "they", "also", "over",
    ];
    for w in text
        .split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| w.len() > 3 && !STOP.contains(&w.as_str()))
    {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        w.hash(&mut h);
        v[(h.finish() % dim as u64) as usize] += 1.0;
    }
    if v.iter().all(|x| *x == 0.0) {
        v[0] = 1.0;
    }
    v
}

/// Records `req` and builds its reply: (status, body, extra headers).
fn handle(req: &Request, shared: &Shared) -> (u16, String, Vec<(&'static str, String)>) {
    let now_in_flight = {
        let mut n = shared.in_flight.lock().unwrap();
        *n += 1;
        *n
    };
    let json: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
    let model = json["model"].as_str().unwrap_or("").to_string();
    let chat = req.path.ends_with("/chat/completions");
    let texts: Vec<String> = if chat {
        json["messages"]
            .as_array()
            .and_then(|m| m.last())
            .and_then(|m| m["content"].as_str())
            .map(|s| vec![s.to_string()])
            .unwrap_or_default()
    } else {
        json["input"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|t| t.as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let auth = req.header("authorization").map(str::to_string);
    shared.log.lock().unwrap().push(Recorded {
        path: req.path.clone(),
        model: model.clone(),
        inputs: texts.len(),
        texts: texts.clone(),
        auth: auth.clone(),
        at: shared.started.elapsed(),
        in_flight: now_in_flight,
    });
    let fault = {
        let mut s = shared.script.lock().unwrap();
        let once = s.once.get_mut(&model).and_then(VecDeque::pop_front);
        once.or_else(|| s.always.get(&model).cloned())
    };
    // Copied out first: sleeping in the statement that locks would hold the lock and
    // serialise every reply.
    let delay = *shared.latency.lock().unwrap();
    std::thread::sleep(delay);
    let dim = shared.dim;
    let error = |code: u16, message: &str| {
        serde_json::json!({"error": {"message": message, "code": code}}).to_string()
    };
    let reply = match fault {
        Some(Fault::Status(code, retry_after)) => (
            code,
            error(code, &format!("injected {code}")),
            retry_after
                .map(|v| vec![("Retry-After", v.to_string())])
                .unwrap_or_default(),
        ),
        Some(Fault::Hang(d)) => {
            std::thread::sleep(d);
            (200, ok_body(chat, &texts, dim, false), vec![])
        }
        Some(Fault::Malformed) => (200, r#"{"data": [{"index": 0, "embe"#.into(), vec![]),
        Some(Fault::ErrorIn200(code)) => (200, error(code, "upstream failed"), vec![]),
        Some(Fault::WrongDim(d)) => (200, ok_body(chat, &texts, d, false), vec![]),
        Some(Fault::Reversed) => (200, ok_body(chat, &texts, dim, true), vec![]),
        Some(Fault::EchoAuth(code)) => (
            code,
            error(
                code,
                &format!(
                    "bad request with Authorization: {}",
                    auth.unwrap_or_default()
                ),
            ),
            vec![],
        ),
        Some(Fault::Prose) => (
            200,
            chat_body("Sure! Here is a headline: Something happened.").to_string(),
            vec![],
        ),
        None => (200, ok_body(chat, &texts, dim, false), vec![]),
    };
    *shared.in_flight.lock().unwrap() -= 1;
    reply
}

fn chat_body(content: &str) -> serde_json::Value {
    serde_json::json!({
        "id": "gen-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}
    })
}

fn ok_body(chat: bool, texts: &[String], dim: usize, reversed: bool) -> String {
    if chat
        && texts
            .first()
            .is_some_and(|p| p.starts_with("Classify each"))
    {
        // A categorisation prompt: one category per numbered headline.
        let cats: Vec<&str> = texts[0]
            .lines()
            .filter(|l| {
                l.split_once(". ")
                    .is_some_and(|(n, _)| n.parse::<usize>().is_ok())
            })
            .map(|l| {
                if l.contains("SEC") {
                    "regulation"
                } else {
                    "crypto"
                }
            })
            .collect();
        let content = serde_json::json!({ "categories": cats });
        return chat_body(&content.to_string()).to_string();
    }
    if chat {
        // "1. <first headline>" from the prompt names the story.
        let first = texts
            .first()
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("1. ")))
            .unwrap_or("untitled");
        // A direction for the story and each market the prompt lists: bearish when the
        // first headline says "hack", else bullish.
        let markets: Vec<&str> = texts
            .first()
            .and_then(|p| {
                p.lines()
                    .find_map(|l| l.strip_prefix("Perp markets it touches: "))
            })
            .map(|l| l.trim_end_matches('.').split(", ").collect())
            .unwrap_or_default();
        let way = if first.to_lowercase().contains("hack") {
            "bearish"
        } else {
            "bullish"
        };
        let symbols: serde_json::Map<String, serde_json::Value> = markets
            .iter()
            .map(|m| (m.to_string(), way.into()))
            .collect();
        let content = serde_json::json!({"headline": format!("LLM: {first}"), "category": "crypto",
            "direction": way, "symbols": symbols});
        return chat_body(&content.to_string()).to_string();
    }
    // Typed, so the server's own cost stays small next to the client's.
    #[derive(serde::Serialize)]
    struct Item {
        object: &'static str,
        index: usize,
        embedding: Vec<f32>,
    }
    #[derive(serde::Serialize)]
    struct Reply {
        object: &'static str,
        data: Vec<Item>,
        model: &'static str,
    }
    let mut data: Vec<Item> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| Item {
            object: "embedding",
            index: i,
            embedding: embed(t, dim),
        })
        .collect();
    if reversed {
        data.reverse();
    }
    serde_json::to_string(&Reply {
        object: "list",
        data,
        model: "m",
    })
    .unwrap_or_default()
}
