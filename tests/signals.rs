//! Trader-facing signals: symbols on stories, heat ordering, and `news:story` events
//! (opened, and breaking exactly once), received by a real Redis subscriber.

mod common;

use std::process::Stdio;

use common::redis::RedisServer;
use common::{bin, json_lines, run_in};

fn article(id: &str, title: &str, source: &str, t: &str) -> String {
    // Each outlet words the story its own way: identical texts would be folded as duplicates,
    // and the same headline and lead from several outlets are syndicated copies, one source.
    let body = format!(
        "{title}, {source} reported. Traders reacted across perpetual markets, according to {id}."
    );
    serde_json::json!({"id": id, "title": title, "body": body, "source": source, "published_at": t})
        .to_string()
}

fn write(dir: &std::path::Path, name: &str, lines: &[String]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p.to_str().unwrap().to_string()
}

/// Three events at the end of the dump's clock (12:00): a burst of five outlets on a Solana
/// outage in the last hour, two outlets on an Ethereum upgrade just now, and six outlets on a
/// Bitcoin ETF ten hours earlier.
fn signal_dump(dir: &std::path::Path) -> String {
    let mut l = Vec::new();
    for (i, src) in [
        "coindesk.com",
        "theblock.co",
        "decrypt.co",
        "cointelegraph.com",
        "dlnews.com",
    ]
    .iter()
    .enumerate()
    {
        let titles = [
            "Solana network outage halts block production for hours",
            "Solana suffers hours-long outage as validators halt block production",
            "Block production stops on Solana in major network outage",
            "Solana outage: validators scramble to restart the halted network",
            "Hours-long Solana outage freezes block production",
        ];
        l.push(article(
            &format!("sol{i}"),
            titles[i],
            src,
            &format!("2026-11-20T11:{:02}:00Z", 10 + i * 8),
        ));
    }
    for (i, src) in ["coindesk.com", "theblock.co"].iter().enumerate() {
        let titles = [
            "Ethereum Pectra upgrade goes live on mainnet",
            "Pectra is live: Ethereum mainnet completes its upgrade",
        ];
        l.push(article(
            &format!("eth{i}"),
            titles[i],
            src,
            &format!("2026-11-20T11:{:02}:00Z", 55 + i * 4),
        ));
    }
    for (i, src) in [
        "coindesk.com",
        "theblock.co",
        "decrypt.co",
        "cointelegraph.com",
        "dlnews.com",
        "reuters.com",
    ]
    .iter()
    .enumerate()
    {
        let titles = [
            "BlackRock spot Bitcoin ETF sees record inflows",
            "Record inflows pour into BlackRock's spot Bitcoin ETF",
            "BlackRock Bitcoin ETF posts its biggest day of inflows",
            "Spot Bitcoin ETF from BlackRock draws record inflows",
            "Investors pour record sums into BlackRock spot Bitcoin ETF",
            "BlackRock's spot Bitcoin ETF inflows hit a record",
        ];
        l.push(article(
            &format!("btc{i}"),
            titles[i],
            src,
            &format!("2026-11-20T02:{:02}:00Z", i * 4),
        ));
    }
    write(dir, "signals.jsonl", &l)
}

#[test]
fn stories_carry_symbols_and_rank_by_heat() {
    let t = tempfile::tempdir().unwrap();
    let dump = signal_dump(t.path());
    let out = run_in(
        t.path(),
        &["run", "-q", "--state", "s.json", &dump],
        None,
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let top = json_lines(&run_in(
        t.path(),
        &["stories", "--json", "--state", "s.json"],
        None,
        &[],
    ));
    assert_eq!(top.len(), 3, "{top:?}");
    let firsts: Vec<&str> = top
        .iter()
        .map(|s| s["articles"][0].as_str().unwrap())
        .collect();
    assert_eq!(
        firsts,
        ["sol0", "eth0", "btc0"],
        "a fresh burst beats a bigger but older story"
    );
    assert_eq!(top[0]["symbols"], serde_json::json!(["SOL"]));
    assert_eq!(top[1]["symbols"], serde_json::json!(["ETH"]));
    assert_eq!(top[2]["symbols"], serde_json::json!(["BTC"]));
    assert_eq!(
        (
            top[0]["sources"].as_u64(),
            top[0]["articles_last_hour"].as_u64()
        ),
        (Some(5), Some(5))
    );
    assert_eq!(top[0]["breaking"], true);
    assert_eq!(top[1]["breaking"], false, "two sources are not a break");
    assert_eq!(top[2]["breaking"], true);
    let h: Vec<f64> = top.iter().map(|s| s["heat"].as_f64().unwrap()).collect();
    assert!(h[0] > h[1] && h[1] > h[2] && h[2] > 0.0, "{h:?}");
    // Filter by symbol.
    let btc = json_lines(&run_in(
        t.path(),
        &["stories", "--json", "--state", "s.json", "--symbol", "btc"],
        None,
        &[],
    ));
    assert_eq!(btc.len(), 1);
    assert_eq!(btc[0]["articles"][0], "btc0");
    // Direction: an outage is bearish, an upgrade going live and record inflows bullish,
    // overall and for each story's symbol.
    let dirs: Vec<(&str, &str)> = top
        .iter()
        .map(|s| {
            (
                s["direction"]["direction"].as_str().unwrap(),
                s["direction"]["symbols"][0]["direction"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        dirs,
        [
            ("bearish", "bearish"),
            ("bullish", "bullish"),
            ("bullish", "bullish")
        ]
    );
    assert_eq!(top[0]["direction"]["by"], "offline");
    let only = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["stories", "--json", "--state", "s.json"];
        a.extend_from_slice(args);
        json_lines(&run_in(t.path(), &a, None, &[]))
            .iter()
            .map(|s| s["articles"][0].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(only(&["--direction", "bearish"]), ["sol0"]);
    assert_eq!(only(&["--direction", "BULLISH"]), ["eth0", "btc0"]);
    assert_eq!(
        only(&["--symbol", "btc", "--direction", "bullish"]),
        ["btc0"]
    );
    assert!(only(&["--symbol", "sol", "--direction", "bullish"]).is_empty());
    assert!(only(&["--direction", "neutral"]).is_empty());
    let bad = run_in(
        t.path(),
        &["stories", "--state", "s.json", "--direction", "up"],
        None,
        &[],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("bullish, bearish or neutral"));
}

fn story_subscriber(url: &str, count: usize) -> std::process::Child {
    bin()
        .args([
            "subscribe",
            "--redis-url",
            url,
            "news:story",
            "--count",
            &count.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn breaking_fires_exactly_once_across_runs_and_concurrent_processes() {
    let redis = RedisServer::start(Some("systemd/perps-redis.conf"), &[]);
    let url = redis.url(0);
    let t = tempfile::tempdir().unwrap();
    let titles = [
        "Bybit hacked: $1.4B in ether drained from cold wallet",
        "Hackers drain $1.4 billion of ether from Bybit cold wallet",
        "Bybit loses $1.4B in ether to a cold wallet hack",
        "Bybit cold wallet hack: attackers take $1.4 billion in ether",
        "$1.4 billion ether theft hits Bybit's cold wallet",
        "Bybit cold wallet drained of $1.4B in ether by hackers",
    ];
    // Run 1: two outlets. Then two processes at once, each with one more outlet and one
    // repeat: the story breaks when the third distinct outlet arrives, whoever brings it.
    let r1 = write(
        t.path(),
        "r1.jsonl",
        &[
            article("h1", titles[0], "coindesk.com", "2026-11-20T10:00:00Z"),
            article("h2", titles[1], "theblock.co", "2026-11-20T10:05:00Z"),
        ],
    );
    let r2 = write(
        t.path(),
        "r2.jsonl",
        &[
            article("h3", titles[2], "decrypt.co", "2026-11-20T10:10:00Z"),
            article("h4", titles[3], "coindesk.com", "2026-11-20T10:12:00Z"),
        ],
    );
    let r3 = write(
        t.path(),
        "r3.jsonl",
        &[
            article("h5", titles[4], "dlnews.com", "2026-11-20T10:14:00Z"),
            article("h6", titles[5], "reuters.com", "2026-11-20T10:16:00Z"),
        ],
    );
    // Opened once, breaking once (whichever concurrent run brings the third outlet), and
    // one update for the other run's new outlet = 3 events in all.
    let sub = story_subscriber(&url, 3);
    redis.wait_subscribed(1);
    let first = run_in(
        t.path(),
        &["run", "-q", "--redis-url", &url, &r1],
        None,
        &[],
    );
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let spawn = |f: &str| {
        bin()
            .current_dir(t.path())
            .args(["run", "-q", "--redis-url", &url, f])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(&r2), spawn(&r3));
    for c in [a, b] {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let events = json_lines(&sub.wait_with_output().unwrap());
    assert_eq!(events.len(), 3);
    let kinds: Vec<(&str, u64)> = events
        .iter()
        .map(|e| {
            (
                e["payload"]["event"].as_str().unwrap(),
                e["payload"]["revision"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(kinds, [("opened", 1), ("breaking", 2), ("updated", 3)]);
    let opened = &events[0]["payload"];
    let breaking = &events[1]["payload"];
    assert_eq!(opened["breaking"], false);
    assert_eq!(breaking["breaking"], true);
    assert_eq!(opened["storyId"], breaking["storyId"]);
    assert_eq!(events[2]["payload"]["storyId"], breaking["storyId"]);
    let keys: Vec<&str> = breaking
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut want = [
        "storyId",
        "label",
        "symbols",
        "size",
        "sources",
        "heat",
        "firstSeen",
        "lastSeen",
        "breaking",
        "outlets",
        "direction",
        "event",
        "revision",
        "category",
        "importance",
        "active",
        "lead",
        "cause",
        "ingestedAt",
        "publishedAt",
    ];
    let mut got = keys.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want, "exact payload fields");
    assert_eq!(breaking["symbols"], serde_json::json!(["ETH"]));
    assert_eq!(
        breaking["category"], "security",
        "a hack, by the rule categorizer"
    );
    assert_eq!(breaking["direction"]["direction"], "bearish", "{breaking}");
    assert_eq!(breaking["direction"]["symbols"][0]["symbol"], "ETH");
    assert!(breaking["sources"].as_u64().unwrap() >= 3);
    assert_eq!(opened["firstSeen"], "2026-11-20T10:00:00Z");

    // The whole stream holds exactly one breaking event for the story.
    let mut c = redis.client(0);
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg("news:story")
        .arg("-")
        .arg("+")
        .query(&mut c)
        .unwrap();
    let breaking_events = reply
        .ids
        .iter()
        .filter(|e| {
            let p: String = redis::from_redis_value_ref(e.map.get("payload").unwrap()).unwrap();
            p.contains(r#""breaking":true"#)
        })
        .count();
    assert_eq!(
        (reply.ids.len(), breaking_events),
        (3, 2),
        "breaking stays true after it fired"
    );
    let breaking_kind = reply
        .ids
        .iter()
        .filter(|e| {
            let p: String = redis::from_redis_value_ref(e.map.get("payload").unwrap()).unwrap();
            p.contains(r#""event":"breaking""#)
        })
        .count();
    assert_eq!(breaking_kind, 1, "one breaking event");
}
