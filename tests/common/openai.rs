//! A loopback server speaking the OpenAI `/embeddings` and `/chat/completions` API the way
//! OpenRouter does, with faults to inject: latency, 429 with `Retry-After`, 500s, hangs past
//! the client's timeout, malformed JSON, errors inside 200 replies, wrong dimensions and
//! results out of order. Every request is recorded (path, model, inputs, auth header, time).
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
    server: Arc<tiny_http::Server>,
    port: u16,
    dim: usize,
    latency: Arc<Mutex<Duration>>,
    script: Arc<Mutex<Script>>,
    log: Arc<Mutex<Vec<Recorded>>>,
    in_flight: Arc<Mutex<usize>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeApi {
    /// A server on a free loopback port answering with `dim`-dimensional vectors.
    pub fn start(dim: usize) -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind loopback"));
        let port = server.server_addr().to_ip().expect("ip address").port();
        let latency = Arc::new(Mutex::new(Duration::ZERO));
        let script = Arc::new(Mutex::new(Script::default()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let in_flight = Arc::new(Mutex::new(0usize));
        let started = Instant::now();
        let thread = {
            let (server, latency, script, log, in_flight) = (
                server.clone(),
                latency.clone(),
                script.clone(),
                log.clone(),
                in_flight.clone(),
            );
            std::thread::spawn(move || {
                for req in server.incoming_requests() {
                    let (latency, script, log, in_flight) = (
                        latency.clone(),
                        script.clone(),
                        log.clone(),
                        in_flight.clone(),
                    );
                    std::thread::spawn(move || {
                        handle(req, dim, started, &latency, &script, &log, &in_flight);
                    });
                }
            })
        };
        FakeApi {
            server,
            port,
            dim,
            latency,
            script,
            log,
            in_flight,
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
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
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

fn handle(
    mut req: tiny_http::Request,
    dim: usize,
    started: Instant,
    latency: &Mutex<Duration>,
    script: &Mutex<Script>,
    log: &Mutex<Vec<Recorded>>,
    in_flight: &Mutex<usize>,
) {
    let now_in_flight = {
        let mut n = in_flight.lock().unwrap();
        *n += 1;
        *n
    };
    let mut body = String::new();
    let _ = req.as_reader().read_to_string(&mut body);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let path = req.url().to_string();
    let model = json["model"].as_str().unwrap_or("").to_string();
    let chat = path.ends_with("/chat/completions");
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
    let auth = req
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .map(|h| h.value.to_string());
    log.lock().unwrap().push(Recorded {
        path: path.clone(),
        model: model.clone(),
        inputs: texts.len(),
        texts: texts.clone(),
        auth,
        at: started.elapsed(),
        in_flight: now_in_flight,
    });
    let fault = {
        let mut s = script.lock().unwrap();
        let once = s.once.get_mut(&model).and_then(VecDeque::pop_front);
        once.or_else(|| s.always.get(&model).cloned())
    };
    std::thread::sleep(*latency.lock().unwrap());
    let json_header =
        tiny_http::Header::from_bytes("Content-Type", "application/json").expect("header");
    let reply = |status: u16, body: String, extra: Option<tiny_http::Header>| {
        let mut r = tiny_http::Response::from_string(body)
            .with_status_code(status)
            .with_header(json_header.clone());
        if let Some(h) = extra {
            r = r.with_header(h);
        }
        r
    };
    let response = match fault {
        Some(Fault::Status(code, retry_after)) => reply(
            code,
            format!(r#"{{"error":{{"message":"injected {code}","code":{code}}}}}"#),
            retry_after.map(|v| tiny_http::Header::from_bytes("Retry-After", v).expect("header")),
        ),
        Some(Fault::Hang(d)) => {
            std::thread::sleep(d);
            reply(200, ok_body(chat, &texts, dim, false), None)
        }
        Some(Fault::Malformed) => reply(200, r#"{"data": [{"index": 0, "embe"#.into(), None),
        Some(Fault::ErrorIn200(code)) => reply(
            200,
            format!(r#"{{"error":{{"message":"upstream failed","code":{code}}}}}"#),
            None,
        ),
        Some(Fault::WrongDim(d)) => reply(200, ok_body(chat, &texts, d, false), None),
        Some(Fault::Reversed) => reply(200, ok_body(chat, &texts, dim, true), None),
        Some(Fault::EchoAuth(code)) => {
            let auth = log.lock().unwrap().last().and_then(|r| r.auth.clone());
            reply(
                code,
                serde_json::json!({"error": {"message": format!("bad request with Authorization: {}", auth.unwrap_or_default()), "code": code}}).to_string(),
                None,
            )
        }
        Some(Fault::Prose) => reply(
            200,
            chat_body("Sure! Here is a headline: Something happened.").to_string(),
            None,
        ),
        None => reply(200, ok_body(chat, &texts, dim, false), None),
    };
    let _ = req.respond(response);
    *in_flight.lock().unwrap() -= 1;
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
    if chat {
        // "1. <first headline>" from the prompt names the story.
        let first = texts
            .first()
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("1. ")))
            .unwrap_or("untitled");
        let content =
            serde_json::json!({"headline": format!("LLM: {first}"), "category": "crypto"});
        return chat_body(&content.to_string()).to_string();
    }
    let mut data: Vec<serde_json::Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| serde_json::json!({"object": "embedding", "index": i, "embedding": embed(t, dim)}))
        .collect();
    if reversed {
        data.reverse();
    }
    serde_json::json!({"object": "list", "data": data, "model": "m",
                       "usage": {"prompt_tokens": 1, "total_tokens": 1}})
    .to_string()
}
