//! Worker throughput: 200 clustering jobs of 20 inline articles each, added at once by the
//! Node producer (tests/bullmq) to a throwaway local Redis, processed at concurrency 10 by
//!
//! 1. `perps-news worker` (release build): warm the cache, take the state lock, load the
//!    story state (unless this process saved it last), cluster, save, publish, per job; then
//!    the same payloads as `categorization` jobs (rule categorizer: no state, no lock);
//! 2. the Node BullMQ worker in `bench` mode (tests/bullmq/worker.js): a light in-memory
//!    title-overlap grouping, no embedding, no shared state, no lock.
//!
//! Prints jobs/s (first enqueue to last completion) and p50/p99 enqueue→completion latency
//! from the job timestamps Redis recorded. Each side's results are checked first: every job
//! completed and every article counted once.
//!
//!     cargo bench --features worker --bench worker
//!
//! Needs `npm ci` in tests/bullmq.

#[path = "../tests/common/redis.rs"]
mod server;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const JOBS: usize = 200;
const ARTICLES_PER_JOB: usize = 20;
const CONCURRENCY: usize = 10;

fn node_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bullmq");
    assert!(
        dir.join("node_modules/bullmq").is_dir(),
        "run `npm ci` in tests/bullmq first"
    );
    dir
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `child` wrote `needle` into `log`.
fn wait_for(log: &Path, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains(needle)
    {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn produce(url: &str, queue: &str, jobs: &[Value]) -> Vec<Value> {
    let spec = json!({"url": url, "queue": queue, "jobs": jobs, "timeoutMs": 600_000});
    // Through a file: 200 inline jobs exceed the 128 KiB limit of one argument.
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), spec.to_string()).expect("write spec");
    let out = Command::new("node")
        .arg(node_dir().join("producer.js"))
        .arg(format!("@{}", file.path().display()))
        .output()
        .expect("node");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .expect("producer output")
        .as_array()
        .expect("array")
        .clone()
}

fn report(side: &str, results: &[Value]) {
    assert!(
        results.iter().all(|r| r["state"] == "completed"),
        "{side}: not all completed"
    );
    let articles: u64 = results
        .iter()
        .map(|r| {
            let v = &r["returnvalue"];
            v["totalProcessed"].as_u64().unwrap_or(0)
                + v["alreadyKnown"].as_u64().unwrap_or(0)
                + v["categories"].as_array().map_or(0, |c| c.len() as u64)
        })
        .sum();
    assert_eq!(
        articles as usize,
        JOBS * ARTICLES_PER_JOB,
        "{side}: articles"
    );
    let mut lat: Vec<u64> = results
        .iter()
        .map(|r| r["finishedOn"].as_u64().unwrap_or(0) - r["timestamp"].as_u64().unwrap_or(0))
        .collect();
    lat.sort_unstable();
    let first = results
        .iter()
        .filter_map(|r| r["timestamp"].as_u64())
        .min()
        .unwrap_or(0);
    let last = results
        .iter()
        .filter_map(|r| r["finishedOn"].as_u64())
        .max()
        .unwrap_or(0);
    let secs = (last - first).max(1) as f64 / 1000.0;
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize];
    println!(
        "{side:<38} {:>8.1} jobs/s   p50 {:>6} ms   p99 {:>6} ms   ({JOBS} jobs x {ARTICLES_PER_JOB} articles, concurrency {CONCURRENCY}, all enqueued at once)",
        JOBS as f64 / secs,
        pct(0.50),
        pct(0.99)
    );
}

fn main() {
    let redis = server::RedisServer::start(None, &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let dump = dir.path().join("all.jsonl");
    let st = Command::new(env!("CARGO_BIN_EXE_perps-news"))
        .args([
            "generate",
            "--articles",
            &(JOBS * ARTICLES_PER_JOB).to_string(),
        ])
        .args(["--seed", "5", "--span-hours", "48", "-o"])
        .arg(&dump)
        .status()
        .expect("generate");
    assert!(st.success());
    let records: Vec<Value> = std::fs::read_to_string(&dump)
        .expect("dump")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let jobs: Vec<Value> = records
        .chunks(ARTICLES_PER_JOB)
        .map(|c| json!({"name": "clustering", "data": {"articles": c}}))
        .collect();
    let url = redis.url(2);

    // Rust worker.
    let log = dir.path().join("rust.log");
    let child = Command::new(env!("CARGO_BIN_EXE_perps-news"))
        .current_dir(dir.path())
        .args(["worker", "--queues", "clustering,categorization"])
        .args(["--redis-url", &redis.url(0)])
        .args(["--concurrency", &CONCURRENCY.to_string()])
        .env("RUST_LOG", "perps_news::worker=info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("worker");
    let rust = Killed(child);
    wait_for(&log, "Worker started.");
    let results = produce(&url, "clustering", &jobs);
    report("perps-news worker (Rust), clustering", &results);
    // The same payloads as categorization jobs: no story state, no lock, so this is the
    // queue machinery plus a light job, like the Node side.
    let cat_jobs: Vec<Value> = jobs
        .iter()
        .map(|j| json!({"name": "categorization", "data": j["data"]}))
        .collect();
    let results = produce(&url, "categorization", &cat_jobs);
    drop(rust);
    report("perps-news worker (Rust), categorize", &results);

    // Node worker, same Redis, its own queue.
    let spec = json!({"url": url, "queue": "clustering-node", "concurrency": CONCURRENCY, "mode": "bench"});
    let nlog = dir.path().join("node.log");
    let child = Command::new("node")
        .arg(node_dir().join("worker.js"))
        .arg(spec.to_string())
        .stdout(std::fs::File::create(&nlog).expect("log"))
        .spawn()
        .expect("node worker");
    let node = Killed(child);
    wait_for(&nlog, "ready");
    let results = produce(&url, "clustering-node", &jobs);
    drop(node);
    report("Node bullmq worker (light stand-in)", &results);
}
