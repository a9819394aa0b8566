//! Replays change nothing: a dump run again (a re-run backfill, a redelivered job, an
//! overlapping dump) finds every article already known, even those of stories the state has
//! long forgotten, for `[cluster] dedup_days`; through a state file and through Redis.

mod common;

use std::path::Path;

use common::redis::RedisServer;
use common::{assignments, json, run_in};
use serde_json::Value;

/// A generated dump of `articles` over 60 days.
fn sixty_days(dir: &Path, articles: usize) -> String {
    let p = dir.join("sixty.jsonl");
    let out = run_in(
        dir,
        &[
            "generate",
            "--articles",
            &articles.to_string(),
            "--seed",
            "11",
            "--span-hours",
            "1440",
            "-o",
            p.to_str().unwrap(),
        ],
        None,
        &[],
    );
    assert!(out.status.success());
    p.to_str().unwrap().to_string()
}

fn run(dir: &Path, args: &[&str], dump: &str, assignments: &Path) -> Value {
    let mut a = vec!["run", "--json", "--now", "2027-01-20T00:00:00Z"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["--assignments", assignments.to_str().unwrap(), dump]);
    json(&run_in(dir, &a, None, &[]))
}

fn check_replay(first: &Value, second: &Value, dir: &Path) {
    assert!(first["newClusters"].as_u64().unwrap() > 10, "{first}");
    assert_eq!(second["totalProcessed"], 0, "{second}");
    assert_eq!(second["newClusters"], 0, "{second}");
    assert_eq!(
        second["alreadyKnown"], first["totalProcessed"],
        "every article of the dump is already known: {second}"
    );
    // And known as the member of the story it joined the first time, forgotten or not.
    assert_eq!(
        assignments(&dir.join("a1.jsonl")),
        assignments(&dir.join("a2.jsonl"))
    );
}

#[test]
fn a_sixty_day_dump_run_twice_opens_nothing_the_second_time() {
    let t = tempfile::tempdir().unwrap();
    let dump = sixty_days(t.path(), 600);
    let state = t.path().join("state.json");
    let s = state.to_str().unwrap();
    let first = run(t.path(), &["--state", s], &dump, &t.path().join("a1.jsonl"));
    let second = run(t.path(), &["--state", s], &dump, &t.path().join("a2.jsonl"));
    check_replay(&first, &second, t.path());
    // The memory is bounded: 31 days later (dedup_days = 30) the stories forgotten by the
    // first run are forgotten for good, and their articles cluster again.
    let later = json(&run_in(
        t.path(),
        &[
            "run",
            "--json",
            "--now",
            "2027-02-21T00:00:00Z",
            "--state",
            s,
            &dump,
        ],
        None,
        &[],
    ));
    assert!(later["totalProcessed"].as_u64().unwrap() > 0, "{later}");
}

#[test]
fn a_sixty_day_dump_run_twice_through_redis_opens_nothing_the_second_time() {
    let redis = RedisServer::start(None, &[]);
    let url = redis.url(0);
    let t = tempfile::tempdir().unwrap();
    let dump = sixty_days(t.path(), 600);
    let first = run(
        t.path(),
        &["--redis-url", &url],
        &dump,
        &t.path().join("a1.jsonl"),
    );
    let second = run(
        t.path(),
        &["--redis-url", &url],
        &dump,
        &t.path().join("a2.jsonl"),
    );
    check_replay(&first, &second, t.path());
    assert_eq!(
        second["redis"]["storyEvents"], 0,
        "a replay tells consumers nothing"
    );
}
