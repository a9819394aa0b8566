//! The `news:story` event contract end to end: real runs against a real redis-server, heard
//! by a Node `ioredis` subscriber (what a trading agent runs), on `news:story` and on the
//! per-symbol channels; story records with their member articles; the `subscribe` and
//! `/api/stories` filters.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::redis::{RedisServer, free_port};
use common::{bin, json, ok, root, run_in};
use serde_json::{Value, json};

fn article(id: &str, title: &str, source: &str, t: &str) -> String {
    // Each outlet words the story its own way, so none is a syndicated copy of another.
    let body = format!(
        "{title}, {source} reported. Traders reacted across perpetual markets, according to {id}."
    );
    json!({"id": id, "title": title, "body": body, "source": source, "published_at": t,
           "url": format!("https://{source}/news/{id}")})
    .to_string()
}

fn write(dir: &Path, name: &str, lines: &[String]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p.to_str().unwrap().to_string()
}

const ETF: [&str; 5] = [
    "SEC approves spot Bitcoin ETF applications from major issuers",
    "Spot Bitcoin ETFs win SEC approval after decade-long wait",
    "Bitcoin ETF approval: SEC greenlights spot funds from issuers",
    "SEC greenlights spot Bitcoin exchange-traded funds",
    "Issuers get the nod as SEC approves spot Bitcoin ETFs",
];

#[test]
fn every_event_kind_reaches_a_node_subscriber_on_the_story_and_symbol_channels() {
    let redis = RedisServer::start(None, &[]);
    let url = redis.url(0);
    let t = tempfile::tempdir().unwrap();
    let runs = [
        vec![
            article("x1", ETF[0], "coindesk.com", "2026-11-20T10:00:00Z"),
            article("x2", ETF[1], "theblock.co", "2026-11-20T10:05:00Z"),
        ],
        // A third outlet within 30 minutes: breaking.
        vec![article("x3", ETF[2], "decrypt.co", "2026-11-20T10:10:00Z")],
        // A fourth outlet: a material change.
        vec![article("x4", ETF[3], "reuters.com", "2026-11-20T10:20:00Z")],
        // One more article from a known outlet: nothing to tell.
        vec![article(
            "x5",
            ETF[4],
            "coindesk.com",
            "2026-11-20T10:21:00Z",
        )],
        // Three days on: a new story opens, and the first leaves the window.
        vec![article(
            "y1",
            "Solana network outage halts block production for hours",
            "coindesk.com",
            "2026-11-23T13:00:00Z",
        )],
    ];
    let spec = t.path().join("spec.json");
    std::fs::write(
        &spec,
        json!({"url": url, "patterns": ["news:story", "news:symbol:*"], "count": 10,
               "timeoutMs": 60000})
        .to_string(),
    )
    .unwrap();
    let sub = Command::new("node")
        .arg(root("tests/bullmq/subscriber.js"))
        .arg(format!("@{}", spec.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node (installed by .ci/run)");
    redis.wait_subscribed(2);
    for (i, lines) in runs.iter().enumerate() {
        let f = write(t.path(), &format!("r{i}.jsonl"), lines);
        ok(&run_in(
            t.path(),
            &["run", "-q", "--redis-url", &url, &f],
            None,
            &[],
        ));
    }
    let out = sub.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let on = |channel: &str| -> Vec<&Value> {
        got.iter()
            .filter(|m| m["channel"] == channel)
            .map(|m| &m["payload"])
            .collect()
    };
    let story = on("news:story");
    let seen: Vec<(&str, &str, u64)> = story
        .iter()
        .map(|p| {
            let id = p["storyId"].as_str().unwrap();
            let who = if p["symbols"] == json!(["BTC"]) {
                "X"
            } else {
                id
            };
            (
                who,
                p["event"].as_str().unwrap(),
                p["revision"].as_u64().unwrap(),
            )
        })
        .collect();
    let y = story[3]["storyId"].as_str().unwrap();
    assert_eq!(
        seen,
        [
            ("X", "opened", 1),
            ("X", "breaking", 2),
            ("X", "updated", 3),
            (y, "opened", 1),
            ("X", "closed", 4),
        ],
        "{story:#?}"
    );
    // Every event again on its symbols' channels, the same payload.
    let btc = on("news:symbol:BTC");
    assert_eq!(btc.len(), 4);
    assert_eq!(btc[1], story[1]);
    assert_eq!(on("news:symbol:SOL"), vec![story[3]]);
    assert_eq!(
        got.len(),
        10,
        "nothing else was published on those channels"
    );

    // Payloads: the lead and the causing article with their urls, times, importance.
    let (opened, breaking, updated, closed) = (story[0], story[1], story[2], story[4]);
    assert_eq!(opened["cause"]["id"], "x2", "the run's latest article");
    assert_eq!(breaking["cause"]["id"], "x3");
    assert_eq!(breaking["cause"]["url"], "https://decrypt.co/news/x3");
    assert_eq!(breaking["cause"]["publishedAt"], "2026-11-20T10:10:00Z");
    assert_eq!(updated["sources"], 4);
    assert!(closed.get("cause").is_none(), "{closed}");
    assert_eq!(closed["active"], false);
    for p in &story {
        assert!(
            p["lead"]["url"].as_str().unwrap().starts_with("https://"),
            "{p}"
        );
        let imp = p["importance"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&imp), "{p}");
        let (ing, publ) = (
            p["ingestedAt"].as_str().unwrap(),
            p["publishedAt"].as_str().unwrap(),
        );
        assert!(ing <= publ, "ingested {ing} before published {publ}");
    }
    assert!(
        breaking["importance"].as_f64() > opened["importance"].as_f64(),
        "a third outlet and breaking raise importance: {opened} {breaking}"
    );

    // The story record carries its members, and its heat agrees with its last event.
    let mut c = redis.client(0);
    let x = opened["storyId"].as_str().unwrap();
    let rec: String = redis::cmd("GET")
        .arg(format!("perps:story:{x}"))
        .query(&mut c)
        .unwrap();
    let rec: Value = serde_json::from_str(&rec).unwrap();
    assert_eq!(rec["active"], false, "{rec}");
    assert_eq!(rec["revision"], 4);
    let members: Vec<&str> = rec["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(members, ["x1", "x2", "x3", "x4", "x5"]);
    assert_eq!(rec["members"][2]["url"], "https://decrypt.co/news/x3");
    assert_eq!(rec["members_omitted"], 0);
    // (Node writes 0.0 as 0: compare the numbers.)
    assert_eq!(rec["importance"].as_f64(), closed["importance"].as_f64());
    assert_eq!(rec["heat"].as_f64(), closed["heat"].as_f64());

    // The run summary on news:clustered reports the events' latency, and so does `stats`.
    let reply: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
        .arg("news:clustered")
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query(&mut c)
        .unwrap();
    let p: String = redis::from_redis_value_ref(reply.ids[0].map.get("payload").unwrap()).unwrap();
    let summary: Value = serde_json::from_str(&p).unwrap();
    assert_eq!(summary["eventLatency"]["events"], 2, "{summary}");
    let stats = json(
        &bin()
            .args(["stats", "--json", "--redis-url", &url])
            .output()
            .unwrap(),
    );
    let lat = &stats["lastRun"]["eventLatency"];
    assert_eq!(lat["events"], 2, "{stats}");
    assert!(
        lat["ingestToPublishMs"]["p99"].as_i64().unwrap() >= 0,
        "{lat}"
    );
    assert!(
        lat["publicationToPublishMs"]["p50"].as_i64().unwrap() > 0,
        "{lat}"
    );

    // `subscribe` filters the stream: one symbol, one kind.
    let filtered = bin()
        .args([
            "subscribe",
            "--redis-url",
            &url,
            "--from-stream",
            "--symbol",
            "btc",
            "--event",
            "breaking",
            "--count",
            "1",
        ])
        .output()
        .unwrap();
    ok(&filtered);
    let line: Value = serde_json::from_slice(&filtered.stdout).unwrap();
    assert_eq!(line["payload"], *breaking);
    let bad = bin()
        .args(["subscribe", "--redis-url", &url, "--event", "moved"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("opened, updated, breaking or closed"));

    // `stories` shows importance and filters on it.
    let listed = |extra: &[&str]| -> Vec<Value> {
        let mut args = vec!["stories", "--json", "--redis-url", &url];
        args.extend_from_slice(extra);
        let out = bin().args(&args).output().unwrap();
        ok(&out);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let active = listed(&["--sort", "importance"]);
    assert_eq!(active.len(), 1, "only the SOL story is active: {active:?}");
    assert_eq!(active[0]["id"], y);
    let imp = active[0]["importance"].as_f64().unwrap();
    assert_eq!(listed(&["--min-importance", &imp.to_string()]).len(), 1);
    assert_eq!(
        listed(&["--min-importance", &(imp + 0.1).to_string()]).len(),
        0
    );

    // `/api/stories` filters by symbol, importance and time.
    let port = free_port();
    let mut served = bin()
        .args(["serve", "--port", &port.to_string(), "--redis-url", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let get = |q: &str| -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut r) = ureq::get(&format!("http://127.0.0.1:{port}/api/stories{q}")).call()
            {
                return r.body_mut().read_json().unwrap();
            }
            assert!(Instant::now() < deadline, "serve did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let ids = |v: &Value| -> Vec<String> {
        v["stories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&get("")), [y, x]);
    assert_eq!(ids(&get("?symbol=SOL")), [y]);
    assert_eq!(get("?symbol=SOL")["total"], 1);
    assert_eq!(ids(&get("?since=2026-11-21T00:00:00Z")), [y]);
    let top = closed["importance"]
        .as_f64()
        .unwrap()
        .max(story[3]["importance"].as_f64().unwrap());
    assert_eq!(
        ids(&get(&format!("?min_importance={}", top + 0.05))).len(),
        0
    );
    assert_eq!(ids(&get(&format!("?min_importance={top}"))).len(), 1);
    // `/api/events` takes the same filters: resumed from the start of `news:story`, only
    // the closed event of the BTC story comes through.
    let resp = ureq::get(&format!(
        "http://127.0.0.1:{port}/api/events?symbol=BTC&event=closed"
    ))
    .header("Last-Event-ID", "news:story=0-0")
    .call()
    .unwrap();
    let mut lines =
        std::io::BufRead::lines(std::io::BufReader::new(resp.into_body().into_reader()));
    let data = lines
        .find_map(|l| l.unwrap().strip_prefix("data: ").map(str::to_string))
        .unwrap();
    let first: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(
        (first["storyId"].as_str(), first["event"].as_str()),
        (Some(x), Some("closed"))
    );
    let _ = served.kill();
    let _ = served.wait();
}
