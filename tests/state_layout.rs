//! The Redis story state's layout: a header (`perps:state`) plus one checksummed record per
//! active story (`perps:state:stories`), of which a tick writes only what changed; a state
//! of the first layout (one JSON value) is read and converted; a damaged record fails the
//! run naming it.

mod common;

use std::path::Path;

use common::redis::RedisServer;
use common::{assignments, generated, generated_split, json, run_in};

fn run(dir: &Path, url: &str, input: &Path, assignments: &Path) -> serde_json::Value {
    json(&run_in(
        dir,
        &[
            "run",
            "--json",
            "--redis-url",
            url,
            "--assignments",
            assignments.to_str().unwrap(),
            input.to_str().unwrap(),
        ],
        None,
        &[],
    ))
}

/// `total_net_input_bytes` of the server: what clients have sent it.
fn bytes_in(c: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("stats").query(c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("total_net_input_bytes:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_small_tick_writes_its_stories_not_the_window() {
    let redis = RedisServer::start(None, &[]);
    let url = redis.url(0);
    let t = tempfile::tempdir().unwrap();
    let (window, tick) = generated_split(t.path(), 1520, 1500, 3);
    let mut c = redis.client(0);
    let b0 = bytes_in(&mut c);
    let first = run(t.path(), &url, &window, &t.path().join("a.jsonl"));
    let b1 = bytes_in(&mut c);
    let stories: u64 = redis::cmd("HLEN")
        .arg("perps:state:stories")
        .query(&mut c)
        .unwrap();
    assert_eq!(stories, first["activeStories"].as_u64().unwrap(), "{first}");
    let tick_out = run(t.path(), &url, &tick, &t.path().join("b.jsonl"));
    let b2 = bytes_in(&mut c);
    let touched = tick_out["storiesTouched"].as_u64().unwrap();
    assert!(touched > 0 && touched < stories / 4, "{tick_out}");
    let (window_bytes, tick_bytes) = (b1 - b0, b2 - b1);
    eprintln!("window run sent {window_bytes} bytes, the 20-article tick {tick_bytes}");
    assert!(
        tick_bytes * 4 < window_bytes,
        "a tick touching {touched} of {stories} stories sent {tick_bytes} bytes, the window run {window_bytes}"
    );
}

#[test]
fn a_first_layout_state_is_converted_and_continues_as_it_would_have() {
    let redis = RedisServer::start(None, &[]);
    let url = redis.url(0);
    let t = tempfile::tempdir().unwrap();
    let (a, b) = generated_split(t.path(), 800, 600, 4);
    // A state of the first layout: what the file holds is what `perps:state` held.
    let file = t.path().join("state.json");
    let f = file.to_str().unwrap();
    json(&run_in(
        t.path(),
        &["run", "--json", "--state", f, a.to_str().unwrap()],
        None,
        &[],
    ));
    let mut c = redis.client(0);
    // The file is a snapshot plus log; its state in the first layout's encoding (one
    // checksummed JSON value holding every story).
    let header = common::state_header(&file);
    let state = perps_news::store::file::load(
        &file,
        header["state"]["fingerprint"].as_str().unwrap(),
        header["state"]["dim"].as_u64().unwrap() as usize,
    )
    .unwrap();
    let v1 = perps_news::store::file::encode(&state).unwrap();
    let _: () = redis::cmd("SET")
        .arg("perps:state")
        .arg(&v1)
        .query(&mut c)
        .unwrap();
    // Continued through Redis, and through the file: the same assignments.
    let via_redis = t.path().join("r.jsonl");
    let summary = run(t.path(), &url, &b, &via_redis);
    assert!(summary["totalProcessed"].as_u64().unwrap() > 0);
    let via_file = t.path().join("f.jsonl");
    json(&run_in(
        t.path(),
        &[
            "run",
            "--json",
            "--state",
            f,
            "--assignments",
            via_file.to_str().unwrap(),
            b.to_str().unwrap(),
        ],
        None,
        &[],
    ));
    assert_eq!(assignments(&via_redis), assignments(&via_file));
    // Converted: the header no longer holds the stories, each is its own record.
    let header: Vec<u8> = redis::cmd("GET").arg("perps:state").query(&mut c).unwrap();
    assert!(
        header.len() * 2 < v1.len(),
        "header {} bytes, v1 {}",
        header.len(),
        v1.len()
    );
    let n: u64 = redis::cmd("HLEN")
        .arg("perps:state:stories")
        .query(&mut c)
        .unwrap();
    assert_eq!(n, summary["activeStories"].as_u64().unwrap());
    // And it loads: a replay of the second part is all known.
    let again = run(t.path(), &url, &b, &t.path().join("again.jsonl"));
    assert_eq!(again["totalProcessed"], 0, "{again}");
}

#[test]
fn a_damaged_story_record_fails_the_run_naming_it() {
    let redis = RedisServer::start(None, &[]);
    let url = redis.url(0);
    let t = tempfile::tempdir().unwrap();
    let d = generated(t.path(), "d.jsonl", 200, 5);
    run(t.path(), &url, &d, &t.path().join("a.jsonl"));
    let mut c = redis.client(0);
    let ids: Vec<String> = redis::cmd("HKEYS")
        .arg("perps:state:stories")
        .query(&mut c)
        .unwrap();
    let id = &ids[0];
    let mut value: Vec<u8> = redis::cmd("HGET")
        .arg("perps:state:stories")
        .arg(id)
        .query(&mut c)
        .unwrap();
    let k = value.len() / 2;
    value[k] ^= 0x01;
    let _: () = redis::cmd("HSET")
        .arg("perps:state:stories")
        .arg(id)
        .arg(&value)
        .query(&mut c)
        .unwrap();
    let out = run_in(
        t.path(),
        &["run", "--json", "--redis-url", &url, d.to_str().unwrap()],
        None,
        &[],
    );
    assert!(!out.status.success(), "a damaged record must fail the run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("perps:state:stories") && err.contains(id.as_str()),
        "{err}"
    );
    assert!(err.contains("checksum"), "{err}");
    // A record the header lists but Redis lost: named too.
    let _: () = redis::cmd("HDEL")
        .arg("perps:state:stories")
        .arg(id)
        .query(&mut c)
        .unwrap();
    let out = run_in(
        t.path(),
        &["run", "--json", "--redis-url", &url, d.to_str().unwrap()],
        None,
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(id.as_str()) && err.contains("missing"),
        "{err}"
    );
}
