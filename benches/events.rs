//! Ingest → publish of `news:story` events for a timer tick: a window of articles already in
//! a Redis story state, then ticks of 20 articles, each a whole `perps-news run` process
//! against a redis-server this bench starts itself (the production config, AOF on).
//!
//!     cargo bench --bench events                  # 10,000-article window, 30 ticks
//!     cargo bench --bench events -- 2000 10       # window size, ticks
//!
//! The dump is `perps-news generate --articles N+20·ticks --span-hours 49 --seed 5`, sorted
//! by time: the first N articles build the window, the rest come in ticks. Each event's
//! latency is its `publishedAt` − `ingestedAt` (both stamped by the run), read back from the
//! `news:story` stream. Before a figure is printed the bench checks that every tick
//! processed its 20 articles, saved, and published its summary and its events. It also
//! prints the bytes each tick sent Redis (`INFO stats` `total_net_input_bytes` deltas) and
//! what it appended to the AOF (`INFO persistence` `aof_current_size` deltas).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

#[path = "../tests/common/redis.rs"]
mod server;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .map(|a| a.parse().expect("a number"))
        .collect();
    let window = args.first().copied().unwrap_or(10_000);
    let ticks = args.get(1).copied().unwrap_or(30);
    let bin = env!("CARGO_BIN_EXE_perps-news");
    let dir = tempfile::tempdir().expect("temp dir");
    let redis = server::RedisServer::start(Some("systemd/perps-redis.conf"), &[]);
    let url = redis.url(0);

    let dump = dir.path().join("dump.jsonl");
    let status = Command::new(bin)
        .args(["generate", "--articles", &(window + 20 * ticks).to_string()])
        .args(["--span-hours", "49", "--seed", "5", "-o"])
        .arg(&dump)
        .status()
        .expect("generate");
    assert!(status.success());
    let mut articles: Vec<(String, String)> = std::fs::read_to_string(&dump)
        .expect("dump")
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("generated json");
            (
                v["published_at"].as_str().unwrap_or("").to_string(),
                l.to_string(),
            )
        })
        .collect();
    articles.sort();
    let write = |name: &str, lines: &[(String, String)]| {
        let p = dir.path().join(name);
        let text: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
        std::fs::write(&p, text).expect("write");
        p
    };
    let first = write("window.jsonl", &articles[..window]);
    run(bin, dir.path(), &url, &first);
    let mut c = redis.client(0);
    let before = stream_len(&mut c, "news:story");
    let mut walls = Vec::new();
    let mut stages = Vec::new();
    let mut sent = Vec::new();
    let mut aof = Vec::new();
    for k in 0..ticks {
        let start = window + 20 * k;
        let tick = write(&format!("tick{k}.jsonl"), &articles[start..start + 20]);
        let (b0, a0) = (bytes_in(&mut c), aof_size(&mut c));
        let t0 = std::time::Instant::now();
        let summary = run(bin, dir.path(), &url, &tick);
        sent.push(bytes_in(&mut c) - b0);
        // A tick during which the AOF was rewritten tells nothing of what the tick appended.
        if let Some(grew) = aof_size(&mut c).checked_sub(a0) {
            aof.push(grew);
        }
        walls.push(t0.elapsed().as_secs_f64() * 1000.0);
        stages.push(summary["stageMs"]["wall"].as_f64().unwrap_or(0.0));
        let redis_report = &summary["redis"];
        assert_eq!(
            summary["totalProcessed"].as_u64().unwrap_or(0)
                + summary["alreadyKnown"].as_u64().unwrap_or(0),
            20,
            "tick {k}: {summary}"
        );
        assert!(
            redis_report["stateVersion"].as_u64().unwrap_or(0) > 0,
            "tick {k} saved: {summary}"
        );
        assert_eq!(redis_report["published"], true, "tick {k} published");
    }
    let events = events_after(&mut c, "news:story", before);
    assert!(!events.is_empty(), "the ticks published no story events");
    let ms = |v: &Value| {
        v.as_str()
            .and_then(|t| perps_news::time::parse_rfc3339_millis(t).ok())
    };
    let mut lat: Vec<i64> = events
        .iter()
        .map(|e| {
            let (i, p) = (ms(&e["ingestedAt"]), ms(&e["publishedAt"]));
            p.expect("publishedAt") - i.expect("ingestedAt")
        })
        .collect();
    lat.sort_unstable();
    walls.sort_by(f64::total_cmp);
    stages.sort_by(f64::total_cmp);
    sent.sort_unstable();
    aof.sort_unstable();
    let pick = |q: f64| lat[((q * lat.len() as f64).ceil() as usize).clamp(1, lat.len()) - 1];
    println!(
        "window {window} articles, {ticks} ticks of 20: {} events; ingest → publish p50 {} ms, \
         p99 {} ms, max {} ms; per tick median: pipeline stages {:.0} ms, whole process {:.0} ms, \
         {} KB sent to Redis, the AOF grew {} KB",
        lat.len(),
        pick(0.5),
        pick(0.99),
        lat[lat.len() - 1],
        stages[stages.len() / 2],
        walls[walls.len() / 2],
        sent[sent.len() / 2] / 1000,
        aof.get(aof.len() / 2).copied().unwrap_or(0) / 1000
    );
}

/// `perps-news run --json` on `input` against `url`; its summary.
fn run(bin: &str, dir: &Path, url: &str, input: &Path) -> Value {
    let out = Command::new(bin)
        .current_dir(dir)
        .args(["run", "--json", "-q", "--redis-url", url])
        .arg(input)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("summary json")
}

/// `total_net_input_bytes`: what clients have sent the server.
fn bytes_in(c: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("stats").query(c).expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("total_net_input_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("total_net_input_bytes")
}

/// `aof_current_size`: the append-only file's size.
fn aof_size(c: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("persistence")
        .query(c)
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("aof_current_size:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("aof_current_size (the production config has AOF on)")
}

fn stream_len(c: &mut redis::Connection, stream: &str) -> usize {
    redis::cmd("XLEN").arg(stream).query(c).expect("XLEN")
}

/// The payloads of `stream` after its first `skip` entries.
fn events_after(c: &mut redis::Connection, stream: &str, skip: usize) -> Vec<Value> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query(c)
        .expect("XRANGE");
    reply
        .ids
        .iter()
        .skip(skip)
        .filter_map(|e| {
            let p: String = redis::from_redis_value_ref(e.map.get("payload")?).ok()?;
            serde_json::from_str(&p).ok()
        })
        .collect()
}
