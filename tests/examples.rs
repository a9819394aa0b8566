//! The consumers in `examples/` (Python redis-py, Node ioredis) against a real redis-server
//! and a real `perps-news run`: each, started before the run, receives every `news:story`
//! event and the run's `news:clustered`; started after it, replays them from the streams.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::redis::RedisServer;
use common::{json, root, run_in};

/// A venv with redis-py, made once under `target/` (PyPI is asked only the first time).
fn python_with_redis() -> PathBuf {
    let venv = root("target/examples-venv");
    let python = venv.join("bin/python");
    let has_redis = |p: &Path| {
        Command::new(p)
            .args(["-c", "import redis"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if has_redis(&python) {
        return python;
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .expect("python3 runs");
    assert!(made.success(), "python3 -m venv {} failed", venv.display());
    let pip = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "redis>=5,<9"])
        .output()
        .expect("pip runs");
    assert!(
        pip.status.success() && has_redis(&python),
        "EXAMPLE NOT TESTED: pip could not install redis-py into {} (it needs PyPI once): {}",
        venv.display(),
        String::from_utf8_lossy(&pip.stderr)
    );
    python
}

/// The command running one example consumer with `args`.
fn consumer(lang: &str, url: &str, args: &[&str]) -> Command {
    let mut c = match lang {
        "python" => {
            let mut c = Command::new(python_with_redis());
            c.arg(root("examples/consumer.py"));
            c
        }
        _ => {
            let mut c = Command::new("node");
            c.arg(root("examples/consumer.js"))
                .env("NODE_PATH", root("tests/bullmq/node_modules"));
            c
        }
    };
    c.args(args)
        .env("REDIS_URL", url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Reads the consumer's lines until it exits (bounded), returning the events.
fn events(child: std::process::Child, lang: &str) -> Vec<serde_json::Value> {
    let out = wait_bounded(child, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "{lang}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{lang}: {e}: {l}")))
        .filter(|v: &serde_json::Value| v.get("ready").is_none())
        .collect()
}

fn wait_bounded(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("consumer still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn check(lang: &str, got: &[serde_json::Value], story_events: u64) {
    let stories: Vec<_> = got
        .iter()
        .filter(|e| e["channel"] == "news:story")
        .collect();
    let clustered: Vec<_> = got
        .iter()
        .filter(|e| e["channel"] == "news:clustered")
        .collect();
    assert_eq!(stories.len() as u64, story_events, "{lang}: {got:?}");
    assert!(
        stories.iter().all(|e| e["event"]["storyId"]
            .as_str()
            .is_some_and(|s| s.starts_with('s'))
            && e["event"]["label"].is_string()),
        "{lang}: {stories:?}"
    );
    assert_eq!(clustered.len(), 1, "{lang}: {got:?}");
    assert_eq!(clustered[0]["event"]["totalProcessed"], 100, "{lang}");
}

#[test]
fn python_and_node_consumers_receive_the_events_of_a_run() {
    let redis = RedisServer::start(None, &[]);
    let url = redis.url(0);
    let dir = tempfile::tempdir().unwrap();
    // Live: both consumers wait for the run.
    let mut live = Vec::new();
    for lang in ["python", "node"] {
        let mut child = consumer(lang, &url, &["--until-clustered"])
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.contains("ready"), "{lang}: {line}");
        live.push((lang, child));
    }
    let f = root("fixtures/news-100.jsonl");
    let out = run_in(
        dir.path(),
        &["run", "--json", "--redis-url", &url, f.to_str().unwrap()],
        None,
        &[],
    );
    let summary = json(&out);
    let story_events = summary["redis"]["storyEvents"].as_u64().unwrap();
    assert!(story_events >= 9, "{summary}");
    for (lang, child) in live {
        check(lang, &events(child, lang), story_events);
    }
    // Late: they replay the streams.
    for lang in ["python", "node"] {
        let child = consumer(lang, &url, &["--from-start", "--until-clustered"])
            .spawn()
            .unwrap();
        check(lang, &events(child, lang), story_events);
    }
    // Filtered: only the breaking events of stories touching one symbol, as the stream
    // holds them.
    let all: Vec<serde_json::Value> = {
        let child = consumer("python", &url, &["--from-start", "--until-clustered"])
            .spawn()
            .unwrap();
        events(child, "python")
            .into_iter()
            .filter(|e| e["channel"] == "news:story")
            .map(|e| e["event"].clone())
            .collect()
    };
    let symbol = all
        .iter()
        .find_map(|e| e["symbols"][0].as_str())
        .expect("a story with a symbol in news-100")
        .to_string();
    let want: Vec<&serde_json::Value> = all
        .iter()
        .filter(|e| {
            e["event"] == "opened"
                && e["symbols"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| *s == *symbol)
        })
        .collect();
    assert!(!want.is_empty());
    for lang in ["python", "node"] {
        let args = [
            "--from-start",
            "--until-clustered",
            "--symbol",
            &symbol,
            "--event",
            "opened",
        ];
        let child = consumer(lang, &url, &args).spawn().unwrap();
        let got: Vec<serde_json::Value> = events(child, lang)
            .into_iter()
            .filter(|e| e["channel"] == "news:story")
            .map(|e| e["event"].clone())
            .collect();
        let got: Vec<&serde_json::Value> = got.iter().collect();
        assert_eq!(got, want, "{lang} --symbol {symbol} --event opened");
    }
}
