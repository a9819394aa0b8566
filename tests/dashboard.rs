//! The dashboard page in a real headless Chromium (Debian's `chromium` package) against a
//! running `perps-news serve` and a real redis-server, with the bearer token configured,
//! driven by playwright-core from tests/bullmq: the first render, a story published by a
//! real run appearing live, and the symbol filter hiding the others.
//!
//! Needs `/usr/bin/chromium` and `npm ci` in tests/bullmq; `.ci/run` installs both. Without
//! them this test fails, naming what is missing.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use common::redis::{RedisServer, free_port};
use common::{bin, ok, root, run_in};

const CHROMIUM: &str = "/usr/bin/chromium";

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn require_tools() {
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: install Debian's `chromium` package (`apt-get install -y \
         chromium`; .ci/run does it)"
    );
    assert!(
        root("tests/bullmq/node_modules/playwright-core/package.json").is_file(),
        "playwright-core is missing: run `npm ci` in tests/bullmq (.ci/run does it)"
    );
    assert!(
        Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "node is missing: install Debian's `nodejs` package (.ci/run does it)"
    );
}

fn get_json(url: &str, token: &str) -> serde_json::Value {
    ureq::get(url)
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap()
}

/// The playwright driver (tests/bullmq/dashboard.js): one JSON line each way.
struct Driver {
    _child: Killed,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Driver {
    fn start(url: &str, profile: &Path) -> Driver {
        let mut child = Command::new("node")
            .arg(root("tests/bullmq/dashboard.js"))
            .arg(url)
            .arg(profile)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Driver {
            _child: Killed(child),
            stdin,
            stdout,
        }
    }

    fn send(&mut self, v: serde_json::Value) {
        writeln!(self.stdin, "{v}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn recv(&mut self) -> serde_json::Value {
        let mut line = String::new();
        let n = self.stdout.read_line(&mut line).unwrap();
        assert!(
            n > 0,
            "the driver ended early (its reason is on stderr above)"
        );
        serde_json::from_str(&line).unwrap()
    }
}

fn lines(range: std::ops::Range<usize>) -> String {
    let text = std::fs::read_to_string(root("fixtures/news-100.jsonl")).unwrap();
    let mut out: String = text
        .lines()
        .skip(range.start)
        .take(range.len())
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    out
}

#[test]
fn the_dashboard_shows_stories_live_in_a_real_browser_and_filters_by_symbol() {
    require_tools();
    let redis = RedisServer::start(Some("systemd/perps-redis.conf"), &[]);
    let url = redis.url(0);
    let t = tempfile::tempdir().unwrap();
    let run = |name: &str, text: String| {
        let input = t.path().join(name);
        std::fs::write(&input, text).unwrap();
        let out = run_in(
            t.path(),
            &[
                "run",
                "--json",
                "--redis-url",
                &url,
                input.to_str().unwrap(),
            ],
            None,
            &[],
        );
        ok(&out);
    };
    run("first.jsonl", lines(0..20));

    let token = "dash-t0ken";
    let port = free_port();
    let server = bin()
        .args(["serve", "--port", &port.to_string(), "--redis-url", &url])
        .env("PERPS_NEWS_SERVE_TOKEN", token)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _server = Killed(server);
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while ureq::get(&format!("{base}/healthz")).call().is_err() {
        assert!(Instant::now() < deadline, "serve did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let page = format!("{base}/#token={token}");
    // The page's own files need no token; the data does, and only the event stream takes
    // it in the query (EventSource sends no headers).
    let status = |path: &str| -> u16 {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut req = agent.head(&format!("{base}{path}"));
        req = req.header("Host", "localhost");
        req.call().unwrap().status().as_u16()
    };
    for path in ["/", "/dashboard.js", "/dashboard.css"] {
        assert_eq!(status(path), 200, "{path}");
    }
    assert_eq!(status("/api/stories"), 401);
    assert_eq!(status(&format!("/api/stories?access_token={token}")), 401);
    assert_eq!(status("/api/events?access_token=wrong"), 401);
    assert_eq!(status(&format!("/api/events?access_token={token}")), 200);
    let csp = ureq::get(&format!("{base}/")).call().unwrap();
    let csp = csp
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let api = get_json(&format!("{base}/api/stories?per_page=200"), token);
    let stories = api["stories"].as_array().unwrap();
    assert!(!stories.is_empty());

    // First render: every active story is a row, hottest first, its label as text.
    let profile = tempfile::tempdir().unwrap();
    let mut d = Driver::start(&page, profile.path());
    let loaded = d.recv();
    let rows = loaded["loaded"].as_array().unwrap();
    let mut active: Vec<&serde_json::Value> =
        stories.iter().filter(|s| s["active"] == true).collect();
    active.sort_by(|a, b| b["heat"].as_f64().partial_cmp(&a["heat"].as_f64()).unwrap());
    assert_eq!(rows.len(), active.len(), "{loaded}");
    for (row, story) in rows.iter().zip(&active) {
        assert_eq!(
            row["heat"].as_str(),
            Some(format!("{:.2}", story["heat"].as_f64().unwrap()).as_str()),
            "{row}"
        );
        assert_eq!(row["label"], story["label"], "{row}");
        // The latest five member articles, newest first, each its title linking to its
        // url, then how many more.
        let members: Vec<&serde_json::Value> = story["members"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .take(5)
            .collect();
        let mut want: Vec<String> = members
            .iter()
            .map(|m| m["title"].as_str().unwrap().to_string())
            .collect();
        let size = story["size"].as_u64().unwrap() as usize;
        if size > 5 {
            want.push(format!("+{} more", size - 5));
        }
        let links: Vec<&str> = members.iter().filter_map(|m| m["url"].as_str()).collect();
        assert_eq!(row["links"], serde_json::json!(links), "{row}");
        assert_eq!(row["articles"], serde_json::json!(want), "{row}");
    }
    let linked: usize = rows
        .iter()
        .map(|r| r["links"].as_array().unwrap().len())
        .sum();
    assert!(
        linked >= rows.len(),
        "every fixture article has a url: {loaded}"
    );
    let shown: Vec<&str> = rows.iter().filter_map(|r| r["id"].as_str()).collect();
    for s in &active {
        assert!(shown.contains(&s["id"].as_str().unwrap()));
    }

    // Live: a story opened by a real run appears without a reload.
    let mut c = redis.client(0);
    let before: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg("news:story")
        .arg("-")
        .arg("+")
        .query(&mut c)
        .unwrap();
    // An article unlike the first ones: it opens a story of its own.
    let fresh = serde_json::json!({
        "id": "dash-new-1",
        "title": "Dogecoin (DOGE) perpetual open interest hits a record as funding flips negative",
        "body": "Open interest in Dogecoin perpetual futures climbed to an all-time high on \
                 Thursday while funding rates turned negative across major venues, a sign that \
                 traders are crowding into short positions on the meme coin.",
        "url": "https://wire.example/doge-open-interest-record",
        "source": "wire.example",
        "published_at": "2026-11-20T06:10:00Z",
    });
    run("second.jsonl", format!("{fresh}\n"));
    let after: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg("news:story")
        .arg("-")
        .arg("+")
        .query(&mut c)
        .unwrap();
    let opened: Vec<serde_json::Value> = after[before.len()..]
        .iter()
        .filter_map(|(_, f)| f.iter().find(|(k, _)| k == "payload"))
        .map(|(_, p)| serde_json::from_str(p).unwrap())
        .filter(|p: &serde_json::Value| !shown.contains(&p["storyId"].as_str().unwrap_or("")))
        .collect();
    let new = opened.first().expect("the second run opened a story");
    let id = new["storyId"].as_str().unwrap();
    d.send(serde_json::json!({ "expect": id }));
    let appeared = d.recv();
    assert_eq!(appeared["appeared"], id);
    assert_eq!(appeared["status"], "live");

    // The symbol filter: only stories with the symbol stay visible.
    let all = get_json(&format!("{base}/api/stories?per_page=200"), token);
    let with_symbols: Vec<&serde_json::Value> = all["stories"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["symbols"].as_array().is_some_and(|a| !a.is_empty()))
        .collect();
    let symbol = with_symbols
        .first()
        .and_then(|s| s["symbols"][0].as_str())
        .expect("a story with a symbol")
        .to_string();
    let expected: usize = all["stories"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["active"] == true)
        .filter(|s| {
            s["symbols"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(symbol.as_str())))
        })
        .count();
    let total_active = all["stories"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["active"] == true)
        .count();
    assert!(
        expected < total_active,
        "some story lacks {symbol}: the filter has work"
    );
    d.send(serde_json::json!({ "filter": symbol.to_lowercase() }));
    let filtered = d.recv();
    let visible = filtered["visible"].as_array().unwrap();
    assert_eq!(visible.len(), expected, "{filtered}");
    for v in visible {
        assert!(
            v[1].as_array()
                .unwrap()
                .iter()
                .any(|x| x.as_str() == Some(symbol.as_str())),
            "{v} has {symbol}"
        );
    }
    assert_eq!(
        filtered["hidden"].as_u64(),
        Some((total_active - expected) as u64)
    );
    d.send(serde_json::json!({ "filter": "" }));
    let cleared = d.recv();
    assert_eq!(cleared["hidden"], 0);
    d.send(serde_json::json!({ "done": true }));
}
