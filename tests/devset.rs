//! Checks on the labelled dev set, which is not part of the repository: it lives in
//! `../shared/data/` beside the checkout. They run as their own step:
//!
//!     cargo test --features devset --test devset
//!
//! Without the data they fail, naming the missing path; they are never skipped.

mod common;

use std::path::{Path, PathBuf};

use common::root;

/// A file of `../shared/`, which must exist.
fn data(rel: &str) -> PathBuf {
    let p = common::shared(rel);
    assert!(
        p.is_file(),
        "{} is missing: these checks need the labelled dev set beside the checkout \
         (../shared, not part of the repository)",
        p.display()
    );
    p
}

/// B-cubed F1 of `assignments` against the dev set's labels.
fn f1(gold: &Path, assignments: &Path) -> f64 {
    common::eval_json(gold, assignments)["bcubed_f1"]
        .as_f64()
        .unwrap()
}

fn cluster(input: &Path, state: Option<&Path>, out: &Path) {
    let mut extra = vec!["--assignments", out.to_str().unwrap()];
    if let Some(s) = state {
        extra.extend(["--state", s.to_str().unwrap()]);
    }
    common::run_quiet(input, &extra);
}

/// FNV-1a: a hash that is the same on every platform and release.
fn fnv(text: &str, salt: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in salt.bytes().chain(text.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[test]
fn eval_matches_the_reference_scorer_on_the_dev_set() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.jsonl");
    let gold = data("data/news-events-dev.jsonl");
    cluster(&gold, None, &a);
    let ours = common::eval_json(&gold, &a);
    let reference = std::process::Command::new("python3")
        .arg(data("tools/bcubed.py"))
        .args([gold.to_str().unwrap(), a.to_str().unwrap(), "--json"])
        .output()
        .expect("python3 runs the reference scorer");
    assert!(
        reference.status.success(),
        "{}",
        String::from_utf8_lossy(&reference.stderr)
    );
    let reference: serde_json::Value = serde_json::from_slice(&reference.stdout).unwrap();
    for key in [
        "bcubed_p",
        "bcubed_r",
        "bcubed_f1",
        "pair_p",
        "pair_r",
        "pair_f1",
    ] {
        let (x, y) = (
            ours[key].as_f64().unwrap(),
            reference[key].as_f64().unwrap(),
        );
        assert!((x - y).abs() < 1e-12, "{key}: ours {x} reference {y}");
    }
    for key in [
        "docs",
        "gold_clusters",
        "pred_clusters",
        "pair_tp",
        "pair_fp",
        "pair_fn",
    ] {
        assert_eq!(ours[key], reference[key], "{key}");
    }
    // With the defaults (measured 0.8947 before the entity gate of issue 21, 0.8926 with it;
    // 0.9005 with the steep time penalty the dev set's
    // bunched crawl times rewarded, issue 14 keeps it >= 0.89): above every method tuned on
    // this very file in the data README (best 0.846), far above every-article-alone (0.47)
    // and all-in-one (0.02).
    let f1 = ours["bcubed_f1"].as_f64().unwrap();
    assert!(f1 >= 0.89, "dev-set B-cubed F1 {f1:.4}");
}

/// Backfilling an old dump into a live state: the dev set (2014) after the fixture (2026)
/// in one state scores within 0.01 of the dev set on an empty state.
#[test]
fn the_dev_set_after_the_fixture_in_one_state_scores_as_on_an_empty_state() {
    let dir = tempfile::tempdir().unwrap();
    let gold = data("data/news-events-dev.jsonl");
    let empty = dir.path().join("empty.jsonl");
    cluster(&gold, None, &empty);
    let state = dir.path().join("m.json");
    cluster(
        &root("fixtures/news-100.jsonl"),
        Some(&state),
        &dir.path().join("fx.jsonl"),
    );
    let after = dir.path().join("after.jsonl");
    cluster(&gold, Some(&state), &after);
    let (a, b) = (f1(&gold, &empty), f1(&gold, &after));
    // Measured 0.8947 and 0.8879 (the fixture's document frequencies weigh the terms).
    assert!(
        (a - b).abs() <= 0.01,
        "empty state {a:.4}, after the fixture {b:.4}"
    );
}

/// A feed whose clock is off: a third of the records (by a hash of the id) moved 2-5 hours
/// later or earlier loses at most 0.02 B-cubed F1 with the defaults.
#[test]
fn a_feed_skewed_by_a_few_hours_costs_at_most_two_points() {
    let dir = tempfile::tempdir().unwrap();
    let gold = data("data/news-events-dev.jsonl");
    let text = std::fs::read_to_string(&gold).unwrap();
    let mut skewed = String::new();
    let mut moved = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = v["id"].as_str().unwrap().to_string();
        if fnv(&id, "skew").is_multiple_of(3) {
            let t = perps_news::time::parse_rfc3339(v["published_at"].as_str().unwrap()).unwrap();
            let d = 2 * 3600 + (fnv(&id, "amount") % (3 * 3600 + 1)) as i64;
            let d = if fnv(&id, "sign").is_multiple_of(2) {
                d
            } else {
                -d
            };
            v["published_at"] = perps_news::time::format_rfc3339(t + d).into();
            moved += 1;
        }
        skewed.push_str(&v.to_string());
        skewed.push('\n');
    }
    assert!(moved > 80, "{moved} records moved");
    let sk = dir.path().join("skewed.jsonl");
    std::fs::write(&sk, skewed).unwrap();
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    cluster(&gold, None, &a);
    cluster(&sk, None, &b);
    let (straight, off) = (f1(&gold, &a), f1(&sk, &b));
    assert!(
        straight - off <= 0.02,
        "as it is {straight:.4}, skewed {off:.4}"
    );
}

/// The dev set run twice through Redis: the second run finds all of it known, the
/// articles of stories the state forgot included (they were re-clustered as 69 new stories
/// before `dedup_days`), and opens nothing.
#[test]
fn the_dev_set_run_twice_through_redis_changes_nothing() {
    let redis = common::redis::RedisServer::start(None, &[]);
    let url = redis.url(0);
    let dir = tempfile::tempdir().unwrap();
    let gold = data("data/news-events-dev.jsonl");
    let run = || {
        common::json(&common::run_in(
            dir.path(),
            &["run", "--json", "--redis-url", &url, gold.to_str().unwrap()],
            None,
            &[],
        ))
    };
    let first = run();
    let second = run();
    assert_eq!(second["totalProcessed"], 0, "{second}");
    assert_eq!(second["newClusters"], 0, "{second}");
    assert_eq!(second["alreadyKnown"], first["totalProcessed"], "{second}");
}
