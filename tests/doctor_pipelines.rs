//! `doctor` compares the pipeline fingerprints of recent runs: a batch run and a queue
//! worker that cluster one Redis state with different settings are reported, against a
//! real redis-server, the real worker and `perps-news enqueue`.
#![cfg(feature = "worker")]

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::redis::RedisServer;
use common::{bin, ok, root, run_in};
use perps_news::config::PipelineConfig;
use perps_news::pipeline::fingerprint::pipeline_fingerprint;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn fixture_part(dir: &std::path::Path, name: &str, range: std::ops::Range<usize>) -> String {
    let text = std::fs::read_to_string(root("fixtures/news-100.jsonl")).unwrap();
    let part: Vec<&str> = text.lines().skip(range.start).take(range.len()).collect();
    let path = dir.join(name);
    std::fs::write(&path, part.join("\n") + "\n").unwrap();
    path.to_str().unwrap().to_string()
}

/// The `pipelines` line of `doctor`.
fn doctor_line(dir: &std::path::Path, url: &str) -> String {
    let out = run_in(dir, &["doctor", "--redis-url", url], None, &[]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines()
        .find(|l| l.contains(" pipelines "))
        .unwrap_or_else(|| panic!("no pipelines check:\n{text}"))
        .to_string()
}

fn last_run(dir: &std::path::Path, url: &str) -> serde_json::Value {
    let out = run_in(dir, &["stats", "--json", "--redis-url", url], None, &[]);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    stats["lastRun"].clone()
}

#[test]
fn doctor_warns_when_a_worker_and_a_run_report_different_pipelines() {
    let redis = RedisServer::start(Some("systemd/perps-redis.conf"), &[]);
    let url = redis.url(0);
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();

    // A batch run with the default pipeline.
    let first = fixture_part(dir, "first.jsonl", 0..30);
    let out = run_in(dir, &["run", "--redis-url", &url, &first], None, &[]);
    ok(&out);
    let run_fp = pipeline_fingerprint(&PipelineConfig::load(None).unwrap());
    let last = last_run(dir, &url);
    assert_eq!(
        (
            last["origin"].as_str(),
            last["pipelineFingerprint"].as_str()
        ),
        (Some("run"), Some(run_fp.as_str()))
    );
    let line = doctor_line(dir, &url);
    assert!(
        line.starts_with("ok") && line.contains(&format!("one pipeline ({run_fp})")),
        "{line}"
    );

    // A worker started with other clustering settings, on the same state.
    let pipeline = dir.join("worker.toml");
    std::fs::write(&pipeline, "[cluster]\nthreshold = 0.2\n").unwrap();
    let worker_fp = pipeline_fingerprint(&PipelineConfig::load(Some(&pipeline)).unwrap());
    assert_ne!(worker_fp, run_fp);
    let log = std::fs::File::create(dir.join("worker.log")).unwrap();
    let worker = bin()
        .current_dir(dir)
        .args([
            "worker",
            "--redis-url",
            &url,
            "--pipeline",
            pipeline.to_str().unwrap(),
        ])
        .env("NEWS_WORKER_ALLOWED_DIRS", dir)
        .env_remove("NEWS_WORKER_CONCURRENCY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let _worker = Killed(worker);
    let second = fixture_part(dir, "second.jsonl", 30..60);
    let out = run_in(
        dir,
        &["enqueue", "clustering", &second, "--redis-url", &url],
        None,
        &[],
    );
    ok(&out);
    let deadline = Instant::now() + Duration::from_secs(60);
    while last_run(dir, &url)["origin"] != "worker" {
        assert!(
            Instant::now() < deadline,
            "the worker never finished the job:\n{}",
            std::fs::read_to_string(dir.join("worker.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        last_run(dir, &url)["pipelineFingerprint"],
        worker_fp.as_str()
    );

    let line = doctor_line(dir, &url);
    assert!(line.starts_with("warn"), "{line}");
    for needle in [
        format!("run {run_fp} (1 of the last 2"),
        format!("worker {worker_fp} (1 of the last 2"),
        "the same --pipeline".to_string(),
    ] {
        assert!(line.contains(&needle), "{needle:?} in {line}");
    }
}
