//! Redis integration: cache, story state, bus, spool, reconnects and concurrent runs, each
//! against real redis-server processes started on free loopback ports with the project's
//! own config (never the shared server on 6379).

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::redis::RedisServer;
use common::{assignments, bin, generated, json, root, run_in};

fn main_server() -> RedisServer {
    RedisServer::start(Some("systemd/perps-redis.conf"), &[])
}

/// Gives a generated dump ids and urls of its own (`later-…`), so that it shares none with
/// the fixture, whatever the generator's numbering.
fn relabel(path: &std::path::Path) {
    let text: String = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["id"] = format!("later-{}", v["id"].as_str().unwrap()).into();
            v["url"] = format!("{}-later", v["url"].as_str().unwrap()).into();
            v.to_string() + "\n"
        })
        .collect();
    std::fs::write(path, text).unwrap();
}

fn fixture(name: &str) -> String {
    root(name).to_str().unwrap().to_string()
}

#[test]
fn second_run_hits_the_cache_and_every_cache_key_has_a_ttl() {
    let redis = main_server();
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url(0);
    let f = fixture("fixtures/news-100.jsonl");
    // A fresh local state each time: the articles are new to the state, old to the cache.
    for (i, state) in ["s1.json", "s2.json"].iter().enumerate() {
        let v = json(&run_in(
            dir.path(),
            &["run", "--json", "--redis-url", &url, "--state", state, &f],
            None,
            &[],
        ));
        let run = &v["redis"]["runCacheStats"];
        if i == 0 {
            assert_eq!(
                (run["hits"].as_u64(), run["misses"].as_u64()),
                (Some(0), Some(100)),
                "{v}"
            );
        } else {
            assert_eq!(
                (run["hits"].as_u64(), run["misses"].as_u64()),
                (Some(100), Some(0)),
                "{v}"
            );
            assert_eq!(
                v["totalProcessed"], 100,
                "a fresh local state clusters everything again"
            );
            // The shared counters add up across processes.
            assert_eq!(v["cacheStats"]["hits"], 100);
            assert_eq!(v["cacheStats"]["misses"], 100);
            assert_eq!(v["cacheStats"]["hitRate"], 0.5);
        }
    }
    let mut c = redis.client(1);
    let keys: Vec<String> = redis::cmd("SCAN")
        .arg(0)
        .arg("COUNT")
        .arg(10_000)
        .query::<(u64, Vec<String>)>(&mut c)
        .unwrap()
        .1;
    assert!(keys.len() >= 102, "{} cache keys", keys.len());
    for k in &keys {
        assert!(k.starts_with("perps:cache:"), "{k}");
        let ttl: i64 = redis::cmd("TTL").arg(k).query(&mut c).unwrap();
        assert!(ttl > 0, "{k} has no TTL ({ttl})");
    }
}

#[test]
fn corrupt_or_foreign_cache_entries_are_misses_not_wrong_vectors() {
    let redis = main_server();
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url(0);
    let f = fixture("fixtures/news-100.jsonl");
    let first = run_in(
        dir.path(),
        &[
            "run",
            "--redis-url",
            &url,
            "--state",
            "a.json",
            "--assignments",
            "a1.jsonl",
            &f,
        ],
        None,
        &[],
    );
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let mut c = redis.client(1);
    let keys: Vec<String> = redis::cmd("SCAN")
        .arg(0)
        .arg("MATCH")
        .arg("perps:cache:emb:*")
        .arg("COUNT")
        .arg(10_000)
        .query::<(u64, Vec<String>)>(&mut c)
        .unwrap()
        .1;
    // One entry garbage, one with another model's tag, one truncated.
    let _: () = redis::cmd("SET")
        .arg(&keys[0])
        .arg(b"garbage".as_slice())
        .arg("EX")
        .arg(60)
        .query(&mut c)
        .unwrap();
    let mut foreign: Vec<u8> = redis::cmd("GET").arg(&keys[1]).query(&mut c).unwrap();
    foreign[0] ^= 0xff;
    let _: () = redis::cmd("SET")
        .arg(&keys[1])
        .arg(foreign)
        .arg("EX")
        .arg(60)
        .query(&mut c)
        .unwrap();
    let mut cut: Vec<u8> = redis::cmd("GET").arg(&keys[2]).query(&mut c).unwrap();
    cut.truncate(cut.len() - 3);
    let _: () = redis::cmd("SET")
        .arg(&keys[2])
        .arg(cut)
        .arg("EX")
        .arg(60)
        .query(&mut c)
        .unwrap();

    let v = json(&run_in(
        dir.path(),
        &[
            "run",
            "--json",
            "--redis-url",
            &url,
            "--state",
            "b.json",
            "--assignments",
            "a2.jsonl",
            &f,
        ],
        None,
        &[],
    ));
    assert_eq!(v["redis"]["runCacheStats"]["misses"], 3, "{v}");
    assert_eq!(v["redis"]["runCacheStats"]["hits"], 97, "{v}");
    assert_eq!(
        assignments(&dir.path().join("a1.jsonl")),
        assignments(&dir.path().join("a2.jsonl"))
    );
}

#[test]
fn state_in_redis_continues_across_runs_and_knows_its_articles() {
    let redis = main_server();
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url(0);
    let dump = generated(dir.path(), "d.jsonl", 600, 3);
    let lines: Vec<String> = std::fs::read_to_string(&dump)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let (a, b) = lines.split_at(300);
    std::fs::write(dir.path().join("a.jsonl"), a.join("\n")).unwrap();
    std::fs::write(dir.path().join("b.jsonl"), b.join("\n")).unwrap();

    let whole = run_in(
        dir.path(),
        &[
            "run",
            "-q",
            "--assignments",
            "whole.jsonl",
            dump.to_str().unwrap(),
        ],
        None,
        &[],
    );
    assert!(whole.status.success());
    let va = json(&run_in(
        dir.path(),
        &[
            "run",
            "--json",
            "--redis-url",
            &url,
            "--assignments",
            "ra.jsonl",
            "a.jsonl",
        ],
        None,
        &[],
    ));
    let vb = json(&run_in(
        dir.path(),
        &[
            "run",
            "--json",
            "--redis-url",
            &url,
            "--assignments",
            "rb.jsonl",
            "b.jsonl",
        ],
        None,
        &[],
    ));
    assert_eq!(va["redis"]["state"], "redis");
    assert_eq!(
        (
            va["redis"]["stateVersion"].as_u64(),
            vb["redis"]["stateVersion"].as_u64()
        ),
        (Some(1), Some(2))
    );
    let mut split = assignments(&dir.path().join("ra.jsonl"));
    split.extend(assignments(&dir.path().join("rb.jsonl")));
    assert_eq!(split, assignments(&dir.path().join("whole.jsonl")));

    // The same dump again: nothing new.
    let again = json(&run_in(
        dir.path(),
        &["run", "--json", "--redis-url", &url, "b.jsonl"],
        None,
        &[],
    ));
    assert_eq!(
        (
            again["newClusters"].as_u64(),
            again["totalProcessed"].as_u64(),
            again["alreadyKnown"].as_u64()
        ),
        (Some(0), Some(0), Some(300))
    );

    // Consumers can read every story the runs touched.
    let mut c = redis.client(0);
    let ids: Vec<String> = redis::cmd("ZRANGE")
        .arg("perps:stories")
        .arg(0)
        .arg(-1)
        .query(&mut c)
        .unwrap();
    let distinct: std::collections::HashSet<String> =
        split.iter().map(|(_, s)| s.clone()).collect();
    assert_eq!(ids.len(), distinct.len());
    let rec: String = redis::cmd("GET")
        .arg(format!("perps:story:{}", ids[0]))
        .query(&mut c)
        .unwrap();
    let rec: serde_json::Value = serde_json::from_str(&rec).unwrap();
    assert!(rec["label"].is_string() && rec["size"].as_u64().unwrap() >= 1);
    let ttl: i64 = redis::cmd("TTL").arg("perps:state").query(&mut c).unwrap();
    assert_eq!(ttl, -1, "state must not expire");

    // `stats` reports what the three runs did.
    let st = json(&run_in(
        dir.path(),
        &["stats", "--json", "--redis-url", &url],
        None,
        &[],
    ));
    assert_eq!(st["stories"].as_u64(), Some(distinct.len() as u64), "{st}");
    assert_eq!(st["stateVersion"], 3);
    // Runs A and B embedded 600 new texts; the third run looked up B's 300 again.
    assert_eq!(
        (
            st["cacheStats"]["hits"].as_u64(),
            st["cacheStats"]["misses"].as_u64()
        ),
        (Some(300), Some(600)),
        "{st}"
    );
    assert!(st["cacheKeys"].as_u64().unwrap() >= 600);
    assert_eq!(st["lastRun"]["totalProcessed"], 0);
    assert_eq!(st["lastRun"]["timestamp"], again["timestamp"]);
}

/// Starts `perps-news subscribe` and waits until it is subscribed.
fn subscriber(url: &str, args: &[&str]) -> std::process::Child {
    let mut c = bin();
    c.args(["subscribe", "--redis-url", url]).args(args);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c.spawn().unwrap()
}

fn read_lines(child: std::process::Child) -> Vec<serde_json::Value> {
    common::json_lines(&child.wait_with_output().unwrap())
}

#[test]
fn a_real_subscriber_receives_news_clustered_and_the_stream_replays_it() {
    let redis = main_server();
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url(0);
    let sub = subscriber(&url, &["news:clustered", "--count", "1"]);
    redis.wait_subscribed(1);
    let summary = json(&run_in(
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
    let got = read_lines(sub);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["channel"], "news:clustered");
    let p = &got[0]["payload"];
    for key in ["timestamp", "totalProcessed", "newClusters", "cacheStats"] {
        assert_eq!(p[key], summary[key], "{key}");
    }
    assert_eq!(p["totalProcessed"], 100);
    let cache_keys: Vec<String> = p["cacheStats"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(cache_keys.len(), 3);

    // A consumer that was away catches up from the stream.
    let v2 = json(&run_in(
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
    let replay = read_lines(subscriber(
        &url,
        &["news:clustered", "--from-stream", "--count", "2"],
    ));
    assert_eq!(replay.len(), 2);
    assert_eq!(replay[0]["payload"]["timestamp"], summary["timestamp"]);
    assert_eq!(replay[1]["payload"]["timestamp"], v2["timestamp"]);
}

#[test]
fn redis_down_from_the_start_keeps_work_with_the_mirror_and_the_next_run_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = main_server();
    let url = redis.url(0);
    let f = fixture("fixtures/news-100.jsonl");
    let later = generated(dir.path(), "later.jsonl", 300, 77);
    relabel(&later);
    let later = later.to_str().unwrap();
    let envs = [("RUST_LOG", "warn")];
    let fast = dir.path().join("fast.toml");
    std::fs::write(&fast, "[redis]\nretry_ms = 300\ntimeout_ms = 300\n").unwrap();
    let fast = fast.to_str().unwrap();
    // A run while Redis is up leaves the host a mirror of the state (version 1).
    let first = json(&run_in(
        dir.path(),
        &["run", "--json", "--pipeline", fast, "--redis-url", &url, &f],
        None,
        &envs,
    ));
    assert_eq!(first["redis"]["stateVersion"], 1);
    let first_story_events = first["redis"]["storyEvents"].as_u64().unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("perps-news.state.json.version")).unwrap(),
        "1\n"
    );

    // Redis goes away: the run continues the mirror and keeps its events with it.
    redis.stop();
    let out = run_in(
        dir.path(),
        &[
            "run",
            "--json",
            "--pipeline",
            fast,
            "--redis-url",
            &url,
            later,
        ],
        None,
        &envs,
    );
    let v = json(&out);
    assert_eq!(v["redis"]["published"], false);
    assert_eq!(v["redis"]["state"], "mirror");
    assert_eq!(v["redis"]["cache"], "memory");
    assert_eq!(v["totalProcessed"], 300);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("spooled"), "{err}");
    assert!(
        !dir.path().join("perps-news.spool.jsonl").exists(),
        "work events wait with the mirror, not in the bus spool"
    );
    // Every story's `news:story` (opened, each followed by its `news:symbol:*` copies), then
    // `news:clustered`, all kept.
    let kept =
        std::fs::read_to_string(dir.path().join("perps-news.state.json.events.jsonl")).unwrap();
    let kept: Vec<serde_json::Value> = kept
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let stories = kept.len() - 1;
    let story_events = kept[..stories]
        .iter()
        .filter(|e| e[0] == "news:story")
        .count();
    assert!(
        story_events >= v["newClusters"].as_u64().unwrap() as usize,
        "{kept:?}"
    );
    assert!(
        kept[..stories]
            .iter()
            .all(|e| e[0] == "news:story" || e[0].as_str().unwrap().starts_with("news:symbol:"))
    );
    assert_eq!(kept[stories][0], "news:clustered");
    assert_eq!(kept[stories][1]["timestamp"], v["timestamp"]);

    // The server comes up on that port. Nobody else wrote: the next run continues the
    // mirror's state and publishes the kept events after its own save.
    redis.restart();
    let v2 = json(&run_in(
        dir.path(),
        &[
            "run",
            "--json",
            "--pipeline",
            fast,
            "--redis-url",
            &url,
            later,
        ],
        None,
        &envs,
    ));
    assert_eq!(
        v2["redis"]["spoolDelivered"].as_u64(),
        Some(stories as u64 + 1),
        "{v2}\n{}",
        redis.log()
    );
    assert_eq!(v2["redis"]["published"], true);
    assert_eq!(v2["redis"]["reapplied"], 0);
    assert_eq!(
        v2["alreadyKnown"], 300,
        "the mirror state carried over: {v2}"
    );
    for leftover in ["pending", "work.jsonl", "events.jsonl"] {
        assert!(
            !dir.path()
                .join(format!("perps-news.state.json.{leftover}"))
                .exists(),
            "{leftover} left behind"
        );
    }
    let mut c = redis.client(0);
    let n: u64 = redis::cmd("XLEN")
        .arg("news:clustered")
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 3);
    let n: u64 = redis::cmd("XLEN").arg("news:story").query(&mut c).unwrap();
    assert_eq!(
        n,
        first_story_events + story_events as u64,
        "the last run opened nothing new"
    );
}

#[test]
fn a_run_survives_a_redis_restart_mid_run() {
    let mut redis = main_server();
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url(0);
    let dump = generated(dir.path(), "big.jsonl", 6000, 9);
    // Small batches make the run take a while and talk to Redis all along.
    let child = bin()
        .current_dir(dir.path())
        .args([
            "run",
            "--json",
            "--batch-size",
            "5",
            "--redis-url",
            &url,
            dump.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the run is using the cache, then take the server away and bring it back.
    redis.wait_for_keys(1, 200, "run never reached the cache");
    redis.kill();
    std::thread::sleep(Duration::from_millis(800));
    redis.restart();
    let out = child.wait_with_output().unwrap();
    let v = json(&out);
    assert_eq!(v["totalProcessed"], 6000);
    assert_eq!(v["redis"]["published"], true, "{v}");
    assert!(v["redis"]["stateVersion"].as_u64().unwrap() >= 1, "{v}");
    let mut c = redis.client(0);
    let state: Option<Vec<u8>> = redis::cmd("GET").arg("perps:state").query(&mut c).unwrap();
    assert!(state.is_some(), "state saved after the restart");
}

#[test]
fn concurrent_runs_take_turns_and_lose_nothing() {
    let redis = main_server();
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url(0);
    let d1 = generated(dir.path(), "d1.jsonl", 1500, 21);
    let d2 = generated(dir.path(), "d2.jsonl", 1500, 22);
    // The generator numbers articles from zero: give the second dump its own ids and urls.
    let text: String = std::fs::read_to_string(&d2)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let id = format!("b-{}", v["id"].as_str().unwrap());
            let url = format!("{}-b", v["url"].as_str().unwrap());
            v["id"] = id.into();
            v["url"] = url.into();
            v.to_string() + "\n"
        })
        .collect();
    std::fs::write(&d2, text).unwrap();
    let spawn = |dump: &std::path::Path| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_perps-news"));
        c.current_dir(dir.path())
            .env("PERPS_NEWS_STATE_DIR", ".")
            .args(["run", "--json", "--redis-url", &url, dump.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.spawn().unwrap()
    };
    let (a, b) = (spawn(&d1), spawn(&d2));
    let (va, vb) = (
        json(&a.wait_with_output().unwrap()),
        json(&b.wait_with_output().unwrap()),
    );
    let mut versions = [
        va["redis"]["stateVersion"].as_u64().unwrap(),
        vb["redis"]["stateVersion"].as_u64().unwrap(),
    ];
    versions.sort();
    assert_eq!(versions, [1, 2], "both runs saved, one after the other");
    // Every article of both dumps is in the final state.
    let again = json(&run_in(
        dir.path(),
        &[
            "run",
            "--json",
            "--redis-url",
            &url,
            d1.to_str().unwrap(),
            d2.to_str().unwrap(),
        ],
        None,
        &[],
    ));
    assert_eq!(again["alreadyKnown"], 3000, "{again}");
    assert_eq!(again["totalProcessed"], 0);

    // With no patience, a run that finds the lock taken exits with a clear message.
    let mut c = redis.client(0);
    let _: () = redis::cmd("SET")
        .arg("perps:state:lock")
        .arg("someone-else")
        .arg("PX")
        .arg(5000)
        .query(&mut c)
        .unwrap();
    let nowait = dir.path().join("nowait.toml");
    std::fs::write(&nowait, "[redis]\nlock_wait_secs = 0\n").unwrap();
    let out = run_in(
        dir.path(),
        &[
            "run",
            "--pipeline",
            nowait.to_str().unwrap(),
            "--redis-url",
            &url,
            d1.to_str().unwrap(),
        ],
        None,
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("locked by another run") && err.contains("someone-else"),
        "{err}"
    );
}

#[test]
fn wrong_password_and_refused_connections_are_one_line_errors() {
    let redis = RedisServer::start(None, &[]);
    let mut c = redis.client(0);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("s3cret")
        .query(&mut c)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fast = dir.path().join("fast.toml");
    std::fs::write(&fast, "[redis]\nretry_ms = 200\ntimeout_ms = 300\n").unwrap();
    let url = format!("redis://:wrong@127.0.0.1:{}/0", redis.port());
    let out = run_in(
        dir.path(),
        &[
            "run",
            "--pipeline",
            fast.to_str().unwrap(),
            "--redis-url",
            &url,
            "--state",
            "s.json",
            &fixture("fixtures/news-100.jsonl"),
        ],
        None,
        &[],
    );
    // A wrong password is not "down": it is a configuration error, named in one line.
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("refused the credentials"), "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{}", redis.port())),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("wrong@"), "password leaked: {err}");
}

/// The files a run keeps for Redis (state mirror, its side files) go to the state
/// directory: by default `~/.local/state/perps-news`, or `[redis] state_dir`; never the
/// directory the command was started in.
#[test]
fn fallback_files_go_to_the_state_directory_not_the_working_directory() {
    let mut redis = main_server();
    let url = redis.url(0);
    let t = tempfile::tempdir().unwrap();
    let (home, cwd) = (t.path().join("home"), t.path().join("cwd"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&cwd).unwrap();
    let f = fixture("fixtures/news-100.jsonl");
    let later = generated(t.path(), "later.jsonl", 50, 5);
    relabel(&later);
    let run = |extra: &[&str], input: &str| {
        let out = bin()
            .current_dir(&cwd)
            .env_remove("PERPS_NEWS_STATE_DIR")
            .env_remove("STATE_DIRECTORY")
            .env_remove("XDG_STATE_HOME")
            .env("HOME", &home)
            .args(["run", "--json", "--redis-url", &url])
            .args(extra)
            .arg(input)
            .output()
            .unwrap();
        json(&out)
    };
    let v = run(&[], &f);
    assert_eq!(v["redis"]["stateVersion"], 1, "{v}");
    let dir = home.join(".local/state/perps-news");
    assert!(
        dir.join("perps-news.state.json").is_file(),
        "mirror in {dir:?}"
    );
    // Redis goes away: the run continues that mirror, and its work waits beside it.
    redis.stop();
    let fast = t.path().join("fast.toml");
    std::fs::write(&fast, "[redis]\nretry_ms = 300\ntimeout_ms = 300\n").unwrap();
    let v = run(
        &["--pipeline", fast.to_str().unwrap()],
        later.to_str().unwrap(),
    );
    assert_eq!(v["redis"]["state"], "mirror", "{v}");
    assert!(dir.join("perps-news.state.json.work.jsonl").is_file());
    assert_eq!(
        std::fs::read_dir(&cwd).unwrap().count(),
        0,
        "nothing in the working directory"
    );
    // A configured state directory is used instead (and created).
    let own = t.path().join("own/state");
    redis.restart();
    std::fs::write(
        &fast,
        format!("[redis]\nstate_dir = \"{}\"\n", own.display()),
    )
    .unwrap();
    let v = run(&["--pipeline", fast.to_str().unwrap()], &f);
    assert_eq!(v["redis"]["published"], true, "{v}");
    assert!(own.join("perps-news.state.json").is_file());
    assert_eq!(std::fs::read_dir(&cwd).unwrap().count(), 0);
}

/// The human summary says what happened with Redis (a run on its mirror must not read like
/// a run that reached the server) and whose cache numbers are shown.
#[test]
fn the_human_summary_has_a_redis_line_and_labels_the_shared_cache_totals() {
    let mut redis = main_server();
    let url = redis.url(0);
    let dir = tempfile::tempdir().unwrap();
    let f = fixture("fixtures/news-100.jsonl");
    let text = |out: &std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let s = text(&run_in(
        dir.path(),
        &["run", "--redis-url", &url, &f],
        None,
        &[],
    ));
    let server = format!("127.0.0.1:{}/0", redis.port());
    assert!(
        s.contains(&format!("redis:    {server}: state saved (version 1)"))
            && s.contains("news:clustered and "),
        "{s}"
    );
    assert!(
        s.contains(
            "0 hits, 100 misses (0.0% hit rate) (this run); shared cache totals 0 hits, 100 misses"
        ),
        "{s}"
    );
    // A second run of another state: all hits for this run, the shared totals add up.
    let state = dir.path().join("s.json");
    let s = text(&run_in(
        dir.path(),
        &[
            "run",
            "--redis-url",
            &url,
            "--state",
            state.to_str().unwrap(),
            &f,
        ],
        None,
        &[],
    ));
    assert!(
        s.contains("100 hits, 0 misses (100.0% hit rate) (this run); shared cache totals 100 hits, 100 misses"),
        "{s}"
    );
    assert!(s.contains("(state in the local file)"), "{s}");
    redis.stop();
    let fast = dir.path().join("fast.toml");
    std::fs::write(&fast, "[redis]\nretry_ms = 300\ntimeout_ms = 300\n").unwrap();
    let later = generated(dir.path(), "later.jsonl", 20, 8);
    let s = text(&run_in(
        dir.path(),
        &[
            "run",
            "--pipeline",
            fast.to_str().unwrap(),
            "--redis-url",
            &url,
            later.to_str().unwrap(),
        ],
        None,
        &[],
    ));
    assert!(
        s.contains(&format!(
            "redis:    {server} unreachable: state from this host's mirror"
        )) && s.contains("cache in memory")
            && s.contains("events not published"),
        "{s}"
    );
}
