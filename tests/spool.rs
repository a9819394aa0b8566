//! Timer-driven batch runs from a spool directory: claim, done, failed, and crash recovery,
//! with the story state in a real redis-server.

mod common;

use std::process::Stdio;

use common::redis::RedisServer;
use common::{bin, generated, json, root, run_in};

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn spool_files_are_claimed_processed_and_moved_to_done_or_failed() {
    let redis = RedisServer::start(Some("systemd/perps-redis.conf"), &[]);
    let url = redis.url(0);
    let t = tempfile::tempdir().unwrap();
    let spool = t.path().join("spool");
    std::fs::create_dir_all(spool.join("inbox")).unwrap();
    std::fs::copy(
        root("fixtures/news-100.jsonl"),
        spool.join("inbox/001-news.jsonl"),
    )
    .unwrap();
    std::fs::copy(
        root("fixtures/bad-lines.jsonl"),
        spool.join("inbox/002-mixed.jsonl"),
    )
    .unwrap();
    std::fs::write(
        spool.join("inbox/003-garbage.jsonl"),
        b"\x00\x01 not json at all\n<html>\n",
    )
    .unwrap();
    std::fs::write(
        spool.join("inbox/004-partial.jsonl.tmp"),
        b"{\"title\":\"still being written\"",
    )
    .unwrap();
    let sp = spool.to_str().unwrap();

    let v = json(&run_in(
        t.path(),
        &["run", "--json", "--redis-url", &url, "--spool", sp],
        None,
        &[],
    ));
    assert_eq!(v["totalProcessed"], 105, "{v}");
    assert_eq!(
        names(&spool.join("done")),
        ["001-news.jsonl", "002-mixed.jsonl"]
    );
    assert_eq!(
        names(&spool.join("failed")),
        ["003-garbage.jsonl", "003-garbage.jsonl.err"]
    );
    let why = std::fs::read_to_string(spool.join("failed/003-garbage.jsonl.err")).unwrap();
    assert!(
        why.contains("no usable record") && why.contains("003-garbage.jsonl:1"),
        "{why}"
    );
    assert_eq!(
        names(&spool.join("inbox")),
        ["004-partial.jsonl.tmp"],
        "files being written are left alone"
    );
    assert!(names(&spool.join("claimed")).is_empty());

    // Nothing new: an empty run. Then a new file with some articles seen before.
    let v = json(&run_in(
        t.path(),
        &["run", "--json", "--redis-url", &url, "--spool", sp],
        None,
        &[],
    ));
    assert_eq!(v["records"], 0);
    std::fs::copy(
        root("fixtures/news-100.jsonl"),
        spool.join("inbox/005-again.jsonl"),
    )
    .unwrap();
    let v = json(&run_in(
        t.path(),
        &["run", "--json", "--redis-url", &url, "--spool", sp],
        None,
        &[],
    ));
    assert_eq!(
        (v["alreadyKnown"].as_u64(), v["totalProcessed"].as_u64()),
        (Some(100), Some(0))
    );
    assert_eq!(
        names(&spool.join("done")),
        ["001-news.jsonl", "002-mixed.jsonl", "005-again.jsonl"]
    );
}

#[test]
fn a_run_killed_mid_file_loses_nothing_and_doubles_nothing() {
    let redis = RedisServer::start(Some("systemd/perps-redis.conf"), &[]);
    let url = redis.url(0);
    let t = tempfile::tempdir().unwrap();
    let spool = t.path().join("spool");
    std::fs::create_dir_all(spool.join("inbox")).unwrap();
    let dump = generated(t.path(), "big.jsonl", 5000, 17);
    std::fs::rename(&dump, spool.join("inbox/big.jsonl")).unwrap();
    let sp = spool.to_str().unwrap();

    // Kill the run once it is busy with the file (small batches keep it busy a while).
    let mut child = bin()
        .current_dir(t.path())
        .args([
            "run",
            "--json",
            "--batch-size",
            "5",
            "--redis-url",
            &url,
            "--spool",
            sp,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    redis.wait_for_keys(1, 300, "the run never got going");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        names(&spool.join("claimed")),
        ["big.jsonl"],
        "the claimed file stays for the next run"
    );
    // The killed run held the state lock; the next run waits for its lease to run out.
    let v = json(&run_in(
        t.path(),
        &["run", "--json", "--redis-url", &url, "--spool", sp],
        None,
        &[],
    ));
    assert_eq!(v["totalProcessed"], 5000, "{v}");
    assert_eq!(names(&spool.join("done")), ["big.jsonl"]);
    // Every article is in the state exactly once.
    let again = json(&run_in(
        t.path(),
        &[
            "run",
            "--json",
            "--redis-url",
            &url,
            spool.join("done/big.jsonl").to_str().unwrap(),
        ],
        None,
        &[],
    ));
    assert_eq!(
        (
            again["alreadyKnown"].as_u64(),
            again["totalProcessed"].as_u64(),
            again["newClusters"].as_u64()
        ),
        (Some(5000), Some(0), Some(0))
    );
}

#[test]
fn a_run_without_inputs_or_spool_says_what_it_needs() {
    let t = tempfile::tempdir().unwrap();
    let out = run_in(t.path(), &["run"], None, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no input"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
