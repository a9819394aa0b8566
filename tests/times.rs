//! Records that are well formed but wrong: future dates, late dumps, reused ids. None of them
//! may poison the state, in a file or in Redis.

mod common;

use std::path::Path;

use common::redis::RedisServer;
use common::{assignments, generated, json, ok, partition, root, run, run_in};

fn fixture(name: &str) -> String {
    root(name).to_str().unwrap().to_string()
}

/// The story state's header in a state file (its clock, term statistics, ...).
fn state_of(path: &str) -> serde_json::Value {
    common::state_header(Path::new(path))["state"].clone()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

const FUTURE: &str = "{\"id\":\"f\",\"title\":\"x\",\"published_at\":\"2099-01-01T00:00:00Z\"}\n";

/// The stories the fixture forms on an empty state.
fn fixture_stories_alone() -> serde_json::Value {
    json(&run(
        &["run", "--json", &fixture("fixtures/news-100.jsonl")],
        None,
        &[],
    ))["newClusters"]
        .clone()
}

/// The sequence: one future-dated article, then the fixture into the same state. The
/// fixture must form the stories it forms on an empty state (it formed 100 singletons).
#[test]
fn one_future_date_does_not_move_the_clock_of_a_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let fut = write(dir.path(), "fut.jsonl", FUTURE);
    let state = dir.path().join("s.json");
    let state = state.to_str().unwrap();
    let first = run(&["run", "--json", &fut, "--state", state], None, &[]);
    let err = ok(&first);
    let v: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(v["futureDated"], 1, "{v}");
    assert!(
        err.contains("future-dated") && err.contains("fut.jsonl:1: field `published_at`"),
        "{err}"
    );
    let saved = state_of(state);
    let now = perps_news::time::now_millis() / 1000;
    assert!(
        saved["clock"].as_i64().unwrap() <= now + 3600,
        "clock {}",
        saved["clock"]
    );

    let v = json(&run(
        &[
            "run",
            "--json",
            &fixture("fixtures/news-100.jsonl"),
            "--state",
            state,
        ],
        None,
        &[],
    ));
    assert_eq!(v["newClusters"], fixture_stories_alone(), "{v}");
    assert_eq!(v["totalProcessed"], 100, "{v}");
    // The fixture (2026-11-20) is older than the clamped article's story window.
    assert_eq!(v["late"], 100, "{v}");
    assert_eq!(v["futureDated"], 0, "{v}");
}

#[test]
fn one_future_date_does_not_move_the_clock_of_the_redis_state() {
    let redis = RedisServer::start(Some("systemd/perps-redis.conf"), &[]);
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url(0);
    let fut = write(dir.path(), "fut.jsonl", FUTURE);
    ok(&run_in(
        dir.path(),
        &["run", "-q", "--redis-url", &url, &fut],
        None,
        &[],
    ));
    let v = json(&run_in(
        dir.path(),
        &[
            "run",
            "--json",
            "--redis-url",
            &url,
            &fixture("fixtures/news-100.jsonl"),
        ],
        None,
        &[],
    ));
    assert_eq!(v["newClusters"], fixture_stories_alone(), "{v}");
    assert_eq!(v["late"], 100, "{v}");
}

/// A state written with a clock in the future (as an earlier version let one article do) is
/// repaired on load, with a warning saying what changed.
#[test]
fn a_state_with_a_clock_in_the_future_is_repaired_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let fut = write(dir.path(), "fut.jsonl", FUTURE);
    let state = dir.path().join("p.json");
    let state = state.to_str().unwrap();
    // A run whose wall clock is 2099 takes the date as it is: the state's clock is 2099.
    ok(&run(
        &[
            "run",
            "-q",
            &fut,
            "--state",
            state,
            "--now",
            "2099-01-01T00:00:00Z",
        ],
        None,
        &[],
    ));
    let saved = state_of(state);
    assert_eq!(saved["clock"], 4_070_908_800i64);

    let out = run(
        &[
            "run",
            "--json",
            &fixture("fixtures/news-100.jsonl"),
            "--state",
            state,
        ],
        None,
        &[],
    );
    let err = ok(&out);
    assert!(
        err.contains("Repaired the story state")
            && err.contains("2099-01-01T00:00:00Z (in the future)")
            && err.contains("1 stories later than now"),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["newClusters"], fixture_stories_alone(), "{v}");
    let saved = state_of(state);
    let now = perps_news::time::now_millis() / 1000;
    assert!(saved["clock"].as_i64().unwrap() <= now + 60);
}

/// Two feeds that reuse an id: both articles are clustered, and the collision is counted and
/// listed like a reject.
#[test]
fn a_reused_id_with_other_content_is_a_collision_not_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let dump = write(
        dir.path(),
        "ids.jsonl",
        "{\"id\":1,\"title\":\"Bitcoin ETF sees record inflows\",\"source\":\"feed-a\"}\n\
         {\"id\":1,\"title\":\"Solana network halts block production\",\"source\":\"feed-b\"}\n",
    );
    let a = dir.path().join("a.jsonl");
    let out = run(
        &["run", "--json", &dump, "--assignments", a.to_str().unwrap()],
        None,
        &[],
    );
    let err = ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["totalProcessed"], 2, "{v}");
    assert_eq!(v["idCollisions"], 1, "{v}");
    assert_eq!(v["duplicates"], 0, "{v}");
    let ids: Vec<String> = assignments(&a).into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, ["1", "1@feed-b"]);
    assert!(
        err.contains("id collision") && err.contains("ids.jsonl:2: field `id`"),
        "{err}"
    );
    // The human summary names it.
    let human = run(&["run", &dump], None, &[]);
    assert!(
        String::from_utf8_lossy(&human.stdout).contains("1 id collisions"),
        "{}",
        String::from_utf8_lossy(&human.stdout)
    );
}

#[test]
fn generated_dumps_of_two_seeds_share_no_id() {
    let dir = tempfile::tempdir().unwrap();
    let a = generated(dir.path(), "a.jsonl", 50, 1);
    let b = generated(dir.path(), "b.jsonl", 50, 2);
    let ids = |p: &Path| -> std::collections::HashSet<String> {
        common::jsonl(p)
            .into_iter()
            .map(|v| v["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (a, b) = (ids(&a), ids(&b));
    assert_eq!(a.len(), 50);
    assert!(a.is_disjoint(&b));
    assert!(a.contains("g1-a000000"), "{a:?}");
}

/// A late dump (older than the state's window) groups among itself as it would on an empty
/// state, whatever the batch size and thread count.
#[test]
fn a_late_dump_clusters_as_on_an_empty_state_whatever_the_batching() {
    let dir = tempfile::tempdir().unwrap();
    let dump = generated(dir.path(), "old.jsonl", 1200, 31);
    let dump = dump.to_str().unwrap();
    let fresh = dir.path().join("fresh.jsonl");
    ok(&run(
        &["run", "-q", dump, "--assignments", fresh.to_str().unwrap()],
        None,
        &[],
    ));
    let fresh = partition(&assignments(&fresh));
    // A live state a month after the dump.
    let live = write(
        dir.path(),
        "live.jsonl",
        "{\"id\":\"live\",\"title\":\"Markets open higher\",\"published_at\":\"2026-12-20T00:00:00Z\"}\n",
    );
    let mut seen = Vec::new();
    for (batch, threads) in [("1", "1"), ("7", "2"), ("5000", "2")] {
        let state = dir.path().join(format!("s{batch}.json"));
        let state = state.to_str().unwrap();
        ok(&run(
            &[
                "run",
                "-q",
                &live,
                "--state",
                state,
                "--now",
                "2026-12-20T00:00:00Z",
            ],
            None,
            &[],
        ));
        let a = dir.path().join(format!("a{batch}.jsonl"));
        let v = json(&run(
            &[
                "run",
                "--json",
                dump,
                "--state",
                state,
                "--batch-size",
                batch,
                "--now",
                "2026-12-20T00:00:00Z",
                "--assignments",
                a.to_str().unwrap(),
            ],
            None,
            &[("RAYON_NUM_THREADS", threads)],
        ));
        assert_eq!(v["late"], 1200, "{v}");
        assert_eq!(v["totalProcessed"], 1200, "{v}");
        seen.push(partition(&assignments(&a)));
    }
    assert_eq!(seen[0], seen[1], "batch 1 vs 7");
    assert_eq!(seen[0], seen[2], "batch 1 vs all");
    // Not bit-equal to the empty state (the live state's document frequencies weigh the
    // terms), but the same grouping up to a handful of articles.
    let pairs = |p: &Vec<Vec<String>>| -> std::collections::HashSet<(String, String)> {
        p.iter()
            .flat_map(|g| {
                g.iter().flat_map(move |a| {
                    g.iter()
                        .filter(move |b| a < *b)
                        .map(move |b| (a.clone(), b.clone()))
                })
            })
            .collect()
    };
    let (x, y) = (pairs(&fresh), pairs(&seen[0]));
    let common = x.intersection(&y).count() as f64;
    let agreement = common / x.len().max(y.len()).max(1) as f64;
    assert!(
        agreement >= 0.95,
        "pair agreement with the empty state {agreement:.3}"
    );
}
