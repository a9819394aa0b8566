//! Reproductions of a fault campaign (issue 15): runs that cannot save, Redis down on a host
//! without a mirror, and the smaller local-file faults. Every test drives the real binary
//! against real redis-servers on free loopback ports (never 6379) and checks what reached
//! the shared state and the bus: nothing lost, nothing counted twice.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::redis::RedisServer;
use common::{bin, generated, run_in};

fn main_server() -> RedisServer {
    RedisServer::start(Some("systemd/perps-redis.conf"), &[])
}

/// A generated dump of `n` articles whose ids and urls carry `prefix`, so dumps of one test
/// never share articles.
fn dump(dir: &Path, name: &str, n: usize, seed: u64, prefix: &str) -> PathBuf {
    let p = generated(dir, name, n, seed);
    let text: String = std::fs::read_to_string(&p)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["id"] = format!("{prefix}{}", v["id"].as_str().unwrap()).into();
            v["url"] = format!("{}-{prefix}", v["url"].as_str().unwrap()).into();
            v.to_string() + "\n"
        })
        .collect();
    std::fs::write(&p, text).unwrap();
    p
}

/// Writes a pipeline file with `[redis]` settings (fast retries, a short lock lease).
fn pipeline(dir: &Path, extra: &str) -> String {
    let p = dir.join("fast.toml");
    std::fs::write(
        &p,
        format!("[redis]\nretry_ms = 300\ntimeout_ms = 500\nlock_wait_secs = 20\n{extra}"),
    )
    .unwrap();
    p.to_str().unwrap().to_string()
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {}", child.id());
}

fn spawn_run(dir: &Path, args: &[&str]) -> Child {
    bin()
        .current_dir(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits (bounded) until the state lock is held by someone.
fn wait_for_lock(redis: &RedisServer) {
    let mut c = redis.client(0);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n: u64 = redis::cmd("EXISTS")
            .arg("perps:state:lock")
            .query(&mut c)
            .unwrap();
        if n == 1 {
            return;
        }
        assert!(Instant::now() < deadline, "no run took the state lock");
        sleep(Duration::from_millis(2));
    }
}

fn state_version(redis: &RedisServer) -> Option<u64> {
    redis::cmd("GET")
        .arg("perps:state:version")
        .query(&mut redis.client(0))
        .unwrap()
}

/// The payloads of a stream, in order.
fn stream(redis: &RedisServer, key: &str) -> Vec<serde_json::Value> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query(&mut redis.client(0))
        .unwrap();
    reply
        .ids
        .iter()
        .map(|id| {
            let text: String = id.get("payload").unwrap();
            serde_json::from_str(&text).unwrap()
        })
        .collect()
}

/// The shared counts must add up: every article counted once in `news:clustered`, and as
/// many stories opened as the state holds.
fn assert_counted_once(redis: &RedisServer, articles: u64) {
    let runs = stream(redis, "news:clustered");
    let processed: u64 = runs
        .iter()
        .map(|r| r["totalProcessed"].as_u64().unwrap())
        .sum();
    assert_eq!(
        processed, articles,
        "totalProcessed over the stream: {runs:?}"
    );
    let opened: u64 = runs
        .iter()
        .map(|r| r["newClusters"].as_u64().unwrap())
        .sum();
    let stories: u64 = redis::cmd("ZCARD")
        .arg("perps:stories")
        .query(&mut redis.client(0))
        .unwrap();
    assert_eq!(opened, stories, "stories opened vs stories stored");
    // Never twice for the same work: each story's events carry revisions 1, 2, 3, ... in
    // stream order, with no revision repeated (work re-applied after a failed save or an
    // outage continues the revisions of the state it lands on), and every stored story was
    // announced.
    let ids: Vec<String> = redis::cmd("ZRANGE")
        .arg("perps:stories")
        .arg(0)
        .arg(-1)
        .query(&mut redis.client(0))
        .unwrap();
    let mut revisions: std::collections::HashMap<String, Vec<u64>> = Default::default();
    for e in stream(redis, "news:story") {
        revisions
            .entry(e["storyId"].as_str().unwrap().to_string())
            .or_default()
            .push(e["revision"].as_u64().unwrap());
    }
    for (id, revs) in &revisions {
        let expected: Vec<u64> = (1..=revs.len() as u64).collect();
        assert_eq!(revs, &expected, "story {id}: revisions in stream order");
    }
    for id in &ids {
        assert!(revisions.contains_key(id), "story {id} was never announced");
    }
}

/// A run in a fresh directory (another host) over `dumps`: how many of their articles the
/// shared state already knows.
fn known_in_shared_state(redis: &RedisServer, dumps: &[&Path]) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url(0);
    let mut args = vec!["run", "--json", "--redis-url", &url];
    let paths: Vec<String> = dumps
        .iter()
        .map(|p| p.to_str().unwrap().to_string())
        .collect();
    args.extend(paths.iter().map(String::as_str));
    let v = common::json(&run_in(dir.path(), &args, None, &[]));
    assert_eq!(v["totalProcessed"], 0, "everything should be known: {v}");
    v["alreadyKnown"].as_u64().unwrap()
}

/// `run --json --pipeline P --redis-url U INPUTS...` in `host`, which must succeed.
fn redis_run(host: &Path, pipeline: &str, url: &str, inputs: &[&str]) -> serde_json::Value {
    let mut args = vec!["run", "--json", "--pipeline", pipeline, "--redis-url", url];
    args.extend_from_slice(inputs);
    common::json(&run_in(host, &args, None, &[]))
}

/// [`redis_run`] on the spool directory `sp`.
fn spool_run(host: &Path, pipeline: &str, url: &str, sp: &str) -> serde_json::Value {
    redis_run(host, pipeline, url, &["--spool", sp])
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A subscriber to every `news:*` channel, for checking what went out on pub/sub (a publish
/// can reach subscribers even when the stream append beside it fails). Its output is read
/// as it comes, so a long burst cannot block it on a full pipe.
struct Subscriber {
    child: Child,
    reader: std::thread::JoinHandle<Vec<serde_json::Value>>,
}

fn news_subscriber(redis: &RedisServer) -> Subscriber {
    let mut child = bin()
        .args(["subscribe", "--redis-url", &redis.url(0), "news:*"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .map(|l| serde_json::from_str(&l).unwrap())
            .collect()
    });
    redis.wait_subscribed(1);
    Subscriber { child, reader }
}

/// What the subscriber printed, after giving it time to read what was published last.
fn subscriber_lines(mut sub: Subscriber) -> Vec<serde_json::Value> {
    sleep(Duration::from_millis(500));
    let _ = sub.child.kill();
    let _ = sub.child.wait();
    sub.reader.join().unwrap()
}

#[test]
fn a_run_paused_past_its_lease_fails_publishes_nothing_and_its_spool_work_is_reapplied() {
    let redis = main_server();
    let url = redis.url(0);
    let host_a = tempfile::tempdir().unwrap();
    let host_b = tempfile::tempdir().unwrap();
    let fast = pipeline(host_a.path(), "lock_lease_ms = 1000\n");
    let spool = host_a.path().join("spool");
    std::fs::create_dir_all(spool.join("inbox")).unwrap();
    let a = dump(host_a.path(), "a.jsonl", 2000, 1, "a-");
    std::fs::copy(&a, spool.join("inbox/a.jsonl")).unwrap();
    let b = dump(host_b.path(), "b.jsonl", 300, 2, "b-");
    let sp = spool.to_str().unwrap();

    // A takes the lock, then stalls past its lease.
    let run_a = spawn_run(
        host_a.path(),
        &[
            "run",
            "--json",
            "--pipeline",
            &fast,
            "--redis-url",
            &url,
            "--batch-size",
            "5",
            "--spool",
            sp,
        ],
    );
    wait_for_lock(&redis);
    // Past its load (its 2,000 articles take it longer), so A's work sits on version 0.
    sleep(Duration::from_millis(300));
    signal(&run_a, "-STOP");
    assert_eq!(state_version(&redis), None, "A saved before it was paused");
    sleep(Duration::from_millis(1600));
    // B (another host) takes the expired lock and saves.
    let out_b = run_in(
        host_b.path(),
        &[
            "run",
            "--json",
            "--pipeline",
            &fast,
            "--redis-url",
            &url,
            b.to_str().unwrap(),
        ],
        None,
        &[],
    );
    assert_eq!(common::json(&out_b)["redis"]["stateVersion"], 1);
    let sub = news_subscriber(&redis);
    signal(&run_a, "-CONT");
    let out_a = run_a.wait_with_output().unwrap();

    // A could not save: it says so, exits non-zero, publishes nothing, keeps its files.
    assert_eq!(out_a.status.code(), Some(2), "{}", stderr(&out_a));
    assert!(stderr(&out_a).contains("not saved"), "{}", stderr(&out_a));
    assert_eq!(state_version(&redis), Some(1), "B's state stands");
    assert_eq!(
        stream(&redis, "news:clustered").len(),
        1,
        "only B's run is on the bus"
    );
    assert_eq!(names(&spool.join("claimed")), ["a.jsonl"]);
    assert!(names(&spool.join("done")).is_empty());

    // The next run on A's host re-applies A's work on top of B's state.
    let v = spool_run(host_a.path(), &fast, &url, sp);
    assert_eq!(v["totalProcessed"], 2000, "{v}");
    assert_eq!(v["redis"]["stateVersion"], 2, "{v}");
    assert_eq!(names(&spool.join("done")), ["a.jsonl"]);
    assert!(names(&spool.join("claimed")).is_empty());
    let seen = subscriber_lines(sub);
    let clustered: Vec<_> = seen
        .iter()
        .filter(|e| e["channel"] == "news:clustered")
        .collect();
    assert_eq!(
        clustered.len(),
        1,
        "A's failed run published nothing: {seen:?}"
    );
    assert_eq!(clustered[0]["payload"]["totalProcessed"], 2000);
    assert_counted_once(&redis, 2300);
    assert_eq!(known_in_shared_state(&redis, &[&a, &b]), 2300);
}

#[test]
fn a_save_refused_for_memory_fails_the_run_and_the_next_run_reapplies_it_on_the_newer_state() {
    let redis = main_server();
    let url = redis.url(0);
    let host_a = tempfile::tempdir().unwrap();
    let host_b = tempfile::tempdir().unwrap();
    let fast = pipeline(host_a.path(), "");
    let a = dump(host_a.path(), "a.jsonl", 2000, 3, "a-");
    let b = dump(host_b.path(), "b.jsonl", 300, 4, "b-");
    let c = dump(host_a.path(), "c.jsonl", 100, 5, "c-");
    let sub = news_subscriber(&redis);
    let mut admin = redis.client(0);
    let limit = common::redis::config_get(&mut admin, "maxmemory").unwrap();

    let run_a = spawn_run(
        host_a.path(),
        &[
            "run",
            "--json",
            "--pipeline",
            &fast,
            "--redis-url",
            &url,
            "--batch-size",
            "5",
            a.to_str().unwrap(),
        ],
    );
    wait_for_lock(&redis);
    // Memory runs out under `noeviction` while A holds the lock: every write is refused.
    signal(&run_a, "-STOP");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("1")
        .query(&mut admin)
        .unwrap();
    signal(&run_a, "-CONT");
    let out_a = run_a.wait_with_output().unwrap();
    assert_eq!(out_a.status.code(), Some(2), "{}", stderr(&out_a));
    assert!(stderr(&out_a).contains("OOM"), "{}", stderr(&out_a));
    assert_eq!(state_version(&redis), None);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(&limit)
        .query(&mut admin)
        .unwrap();
    let seen = subscriber_lines(sub);
    assert!(
        seen.is_empty(),
        "A published for work it never saved: {seen:?}"
    );

    // Another host saves in between; A's next run re-applies A's articles on top of it.
    let vb = redis_run(host_b.path(), &fast, &url, &[b.to_str().unwrap()]);
    assert_eq!(vb["redis"]["stateVersion"], 1);
    let v = redis_run(host_a.path(), &fast, &url, &[c.to_str().unwrap()]);
    assert_eq!(v["totalProcessed"], 2100, "{v}");
    assert_eq!(v["redis"]["reapplied"], 2000, "{v}");
    assert_eq!(v["redis"]["stateVersion"], 2, "{v}");
    assert_counted_once(&redis, 2400);
    assert_eq!(known_in_shared_state(&redis, &[&a, &b, &c]), 2400);
    // Nothing is pending any more: a further run re-applies nothing.
    let again = redis_run(host_a.path(), &fast, &url, &[c.to_str().unwrap()]);
    assert_eq!(again["redis"]["reapplied"], 0, "{again}");
    assert_eq!(again["totalProcessed"], 0, "{again}");
}

#[test]
fn work_done_on_the_mirror_while_redis_was_down_is_reapplied_on_a_newer_state_once() {
    let mut redis = main_server();
    let url = redis.url(0);
    let host_a = tempfile::tempdir().unwrap();
    let host_b = tempfile::tempdir().unwrap();
    let fast = pipeline(host_a.path(), "");
    let first = dump(host_a.path(), "first.jsonl", 200, 6, "f-");
    let x = dump(host_a.path(), "x.jsonl", 600, 7, "x-");
    let y = dump(host_b.path(), "y.jsonl", 300, 8, "y-");
    let z = dump(host_a.path(), "z.jsonl", 100, 9, "z-");
    let run = |dir: &Path, input: &Path| {
        run_in(
            dir,
            &[
                "run",
                "--json",
                "--pipeline",
                &fast,
                "--redis-url",
                &url,
                input.to_str().unwrap(),
            ],
            None,
            &[],
        )
    };
    // A has a mirror from a run while Redis was up.
    common::json(&run(host_a.path(), &first));
    redis.stop();
    let down = common::json(&run(host_a.path(), &x));
    assert_eq!(down["redis"]["state"], "mirror", "{down}");
    assert_eq!(down["totalProcessed"], 600);
    redis.restart();
    // B saves first; A's mirror work now sits on an older version.
    common::json(&run(host_b.path(), &y));
    let v = common::json(&run(host_a.path(), &z));
    assert_eq!(v["redis"]["reapplied"], 600, "{v}");
    assert_eq!(v["totalProcessed"], 700, "{v}");
    assert_counted_once(&redis, 200 + 600 + 300 + 100);
    assert_eq!(known_in_shared_state(&redis, &[&first, &x, &y, &z]), 1200);
}

#[test]
fn redis_down_on_a_host_without_a_mirror_fails_and_counts_nothing() {
    let mut redis = main_server();
    let url = redis.url(0);
    let host = tempfile::tempdir().unwrap();
    let fast = pipeline(host.path(), "");
    let spool = host.path().join("spool");
    std::fs::create_dir_all(spool.join("inbox")).unwrap();
    let d = dump(host.path(), "d.jsonl", 600, 10, "d-");
    std::fs::copy(&d, spool.join("inbox/d.jsonl")).unwrap();
    let sp = spool.to_str().unwrap();
    redis.stop();
    let out = run_in(
        host.path(),
        &[
            "run",
            "--json",
            "--pipeline",
            &fast,
            "--redis-url",
            &url,
            "--spool",
            sp,
        ],
        None,
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no state mirror"), "{}", stderr(&out));
    assert!(
        out.stdout.is_empty(),
        "no summary for a run that did nothing"
    );
    assert!(
        !host.path().join("perps-news.spool.jsonl").exists(),
        "nothing spooled"
    );
    assert!(
        !host.path().join("perps-news.state.json").exists(),
        "no mirror invented"
    );
    assert!(names(&spool.join("done")).is_empty());
    assert_eq!(
        names(&spool.join("claimed")).len() + names(&spool.join("inbox")).len(),
        1,
        "the dump waits for the next run"
    );

    redis.restart();
    let v = spool_run(host.path(), &fast, &url, sp);
    assert_eq!(v["totalProcessed"], 600, "{v}");
    assert_eq!(v["redis"]["spoolDelivered"], 0, "{v}");
    assert_counted_once(&redis, 600);
}

// ---- Item 8: the smaller ones -------------------------------------------------------------

/// A server that requires a password (plain defaults otherwise; set after the start, which
/// the harness checks without one).
fn server_with_password(password: &str) -> RedisServer {
    let redis = RedisServer::start(None, &[]);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(password)
        .query(&mut redis.client(0))
        .unwrap();
    redis
}

#[test]
fn a_refused_password_is_a_configuration_error_not_an_outage() {
    let redis = server_with_password("s3cret");
    let host = tempfile::tempdir().unwrap();
    let fast = pipeline(host.path(), "");
    let f = common::root("fixtures/news-100.jsonl");
    let f = f.to_str().unwrap();
    let url = redis.url(0);
    // A mirror exists, so "Redis down" would have a state to fall back on: it must not.
    let ok = run_in(
        host.path(),
        &["run", "--json", "--pipeline", &fast, "--redis", f],
        None,
        &[("REDIS_URL", url.as_str()), ("REDIS_PASSWORD", "s3cret")],
    );
    common::json(&ok);
    for envs in [
        vec![
            ("REDIS_URL", url.as_str()),
            ("REDIS_PASSWORD", "not-the-pw-42"),
        ],
        vec![("REDIS_URL", url.as_str())],
    ] {
        let out = run_in(
            host.path(),
            &["run", "--json", "--pipeline", &fast, "--redis", f],
            None,
            &envs,
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{envs:?}: {err}");
        assert!(err.contains("refused the credentials"), "{err}");
        assert!(!err.contains("not-the-pw-42"), "password leaked: {err}");
        assert!(out.stdout.is_empty());
    }
    assert!(!host.path().join("perps-news.state.json.pending").exists());
    // With --state as well: the cache and the bus need Redis, so this is no outage either.
    let out = run_in(
        host.path(),
        &[
            "run",
            "--pipeline",
            &fast,
            "--redis",
            "--state",
            "s.json",
            f,
        ],
        None,
        &[
            ("REDIS_URL", url.as_str()),
            ("REDIS_PASSWORD", "not-the-pw-42"),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn passwords_come_from_the_environment_or_a_file_and_one_on_the_command_line_is_warned_about() {
    let redis = server_with_password("pw-in-file");
    let host = tempfile::tempdir().unwrap();
    let fast = pipeline(host.path(), "");
    let f = common::root("fixtures/news-100.jsonl");
    let f = f.to_str().unwrap();
    let secret = host.path().join("redis.password");
    std::fs::write(&secret, "pw-in-file\n").unwrap();
    let url = redis.url(0);
    let out = run_in(
        host.path(),
        &["run", "--json", "--pipeline", &fast, "--redis", f],
        None,
        &[
            ("REDIS_URL", url.as_str()),
            ("REDIS_PASSWORD_FILE", secret.to_str().unwrap()),
        ],
    );
    assert_eq!(common::json(&out)["redis"]["stateVersion"], 1);
    assert!(!stderr(&out).contains("process list"), "{}", stderr(&out));
    let with_pw = format!("redis://:pw-in-file@127.0.0.1:{}/0", redis.port());
    let out = run_in(
        host.path(),
        &[
            "run",
            "--json",
            "--pipeline",
            &fast,
            "--redis-url",
            &with_pw,
            f,
        ],
        None,
        &[],
    );
    let err = stderr(&out);
    assert_eq!(common::json(&out)["redis"]["stateVersion"], 2);
    assert!(
        err.contains("process list") && err.contains("REDIS_PASSWORD"),
        "{err}"
    );
    assert!(!err.contains("pw-in-file"), "password leaked: {err}");
    // An unreadable password file is named, its would-be contents never shown.
    let out = run_in(
        host.path(),
        &["run", "--pipeline", &fast, "--redis", f],
        None,
        &[
            ("REDIS_URL", url.as_str()),
            ("REDIS_PASSWORD_FILE", "/nonexistent/pw"),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent/pw"), "{}", stderr(&out));
}

#[test]
fn a_full_local_disk_does_not_fail_a_run_whose_state_redis_saved() {
    let redis = main_server();
    let url = redis.url(0);
    let host = tempfile::tempdir().unwrap();
    let full = host.path().join("full");
    std::fs::create_dir(&full).unwrap();
    let f = common::root("fixtures/news-100.jsonl");
    // The run's working directory (mirror, spool file) is a 64 KiB tmpfs, filled up, in a
    // private mount namespace: the disk is full for this process only.
    let script = "mount -t tmpfs -o size=64k tmpfs \"$0\" && cd \"$0\" && \
                  (head -c 1048576 /dev/zero > fill 2>/dev/null; true) && exec \"$@\"";
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", script])
        .arg(&full)
        .arg(env!("CARGO_BIN_EXE_perps-news"))
        .args(["run", "--json", "--redis-url", &url, f.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .env("PERPS_NEWS_STATE_DIR", ".")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["redis"]["stateVersion"], 1, "{v}");
    assert_eq!(v["redis"]["published"], true, "{v}");
    assert!(
        err.contains("mirror not updated"),
        "the failed mirror write is reported: {err}"
    );
    assert_eq!(state_version(&redis), Some(1));
}

#[test]
fn temp_files_of_a_save_killed_midway_are_removed_by_the_next_save() {
    let host = tempfile::tempdir().unwrap();
    let d = dump(host.path(), "d.jsonl", 3000, 11, "d-");
    let d = d.to_str().unwrap();
    // Kill runs while they save (the save is the last thing a --state run does).
    let mut killed_in_save = 0;
    for delay_ms in [200u64, 400, 600, 800, 1000, 1200, 1400, 1600] {
        let mut child = spawn_run(host.path(), &["run", "-q", "--state", "s.json", d]);
        let deadline = Instant::now() + Duration::from_millis(delay_ms) + Duration::from_secs(20);
        let temp = loop {
            let temp = names(host.path())
                .into_iter()
                .find(|n| n.starts_with(".s.json.") && n.ends_with(".tmp"));
            if temp.is_some() || child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                break temp;
            }
            sleep(Duration::from_micros(200));
        };
        let _ = child.kill();
        let _ = child.wait();
        if temp.is_some() && names(host.path()).iter().any(|n| n.ends_with(".tmp")) {
            killed_in_save += 1;
        }
    }
    // A writer that is gone for certain: a finished process's pid.
    let mut gone = Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let stale = host.path().join(format!(".s.json.{}.tmp", gone.id()));
    std::fs::write(&stale, "half a state").unwrap();
    // A live writer's temp file stays.
    let mut live = Command::new("sleep").arg("30").spawn().unwrap();
    let busy = host.path().join(format!(".s.json.{}.tmp", live.id()));
    std::fs::write(&busy, "being written").unwrap();
    let out = run_in(
        host.path(),
        &["run", "-q", "--state", "s.json", d],
        None,
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let left: Vec<String> = names(host.path())
        .into_iter()
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    let _ = live.kill();
    let _ = live.wait();
    assert_eq!(
        left,
        [busy.file_name().unwrap().to_string_lossy().into_owned()],
        "stale temp files removed ({killed_in_save} runs were killed while saving)"
    );
    assert!(!stale.exists());
}

#[test]
fn bit_flips_in_a_state_file_fail_loudly_naming_the_file() {
    let host = tempfile::tempdir().unwrap();
    let d = dump(host.path(), "d.jsonl", 300, 12, "d-");
    let d = d.to_str().unwrap();
    let out = run_in(
        host.path(),
        &["run", "-q", "--state", "s.json", d],
        None,
        &[],
    );
    assert!(out.status.success());
    let good = std::fs::read(host.path().join("s.json")).unwrap();
    // Five flips inside story records (the state file's `S` frames: kind, length u32,
    // xxh3 u64, payload), one bit each, in five stories spread over the file.
    let mut records = Vec::new();
    let mut i = b"PNSLOG1\n".len();
    while i + 13 <= good.len() {
        let len = u32::from_le_bytes(good[i + 1..i + 5].try_into().unwrap()) as usize;
        if good[i] == b'S' {
            records.push((i + 13, len));
        }
        i += 13 + len;
    }
    assert!(records.len() >= 5, "{} stories", records.len());
    for k in 0..5 {
        let (start, len) = records[k * records.len() / 5];
        let at = start + len / 2;
        let mut bad = good.clone();
        bad[at] ^= 0x02;
        std::fs::write(host.path().join("s.json"), &bad).unwrap();
        let out = run_in(
            host.path(),
            &["run", "-q", "--state", "s.json", d],
            None,
            &[],
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "flip at {at} loaded: {err}");
        assert!(err.contains("s.json") && err.contains("checksum"), "{err}");
    }
}

#[test]
fn directories_and_symlinks_in_the_inbox_are_moved_to_failed_with_a_note() {
    let host = tempfile::tempdir().unwrap();
    let spool = host.path().join("spool");
    std::fs::create_dir_all(spool.join("inbox/a-directory")).unwrap();
    let outside = host.path().join("elsewhere.jsonl");
    std::fs::copy(common::root("fixtures/news-100.jsonl"), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, spool.join("inbox/a-link.jsonl")).unwrap();
    std::fs::copy(
        common::root("fixtures/news-100.jsonl"),
        spool.join("inbox/real.jsonl"),
    )
    .unwrap();
    let out = run_in(
        host.path(),
        &["run", "--json", "--spool", spool.to_str().unwrap()],
        None,
        &[],
    );
    let v = common::json(&out);
    assert_eq!(
        v["totalProcessed"], 100,
        "only the regular file is read: {v}"
    );
    assert!(
        names(&spool.join("inbox")).is_empty(),
        "nothing sits in the inbox forever"
    );
    assert_eq!(
        names(&spool.join("failed")),
        [
            "a-directory",
            "a-directory.err",
            "a-link.jsonl",
            "a-link.jsonl.err"
        ]
    );
    let note = std::fs::read_to_string(spool.join("failed/a-link.jsonl.err")).unwrap();
    assert!(note.contains("symbolic link"), "{note}");
    assert!(stderr(&out).contains("a-directory"), "{}", stderr(&out));
    assert!(outside.exists(), "a link's target is never touched");
}

// ---- Item 6: cache values tied to their keys ----------------------------------------------

#[test]
fn cache_entries_stored_under_another_key_are_counted_misses_not_wrong_vectors() {
    let redis = main_server();
    let url = redis.url(0);
    let host = tempfile::tempdir().unwrap();
    let f = common::root("fixtures/news-1000.jsonl");
    let f = f.to_str().unwrap();
    let run = |state: &str, out: &str| {
        common::json(&run_in(
            host.path(),
            &[
                "run",
                "--json",
                "--redis-url",
                &url,
                "--state",
                state,
                "--assignments",
                out,
                f,
            ],
            None,
            &[],
        ))
    };
    let first = run("a.json", "a1.jsonl");
    assert_eq!(first["redis"]["runCacheStats"]["misses"], 1000);
    // 200 valid entries of the right model, each moved under another article's key.
    let mut c = redis.client(1);
    let mut keys: Vec<String> = redis::cmd("SCAN")
        .arg(0)
        .arg("MATCH")
        .arg("perps:cache:emb:*")
        .arg("COUNT")
        .arg(100_000)
        .query::<(u64, Vec<String>)>(&mut c)
        .unwrap()
        .1;
    keys.sort();
    assert!(keys.len() >= 1000, "{} keys", keys.len());
    let values: Vec<Vec<u8>> = keys[..201]
        .iter()
        .map(|k| redis::cmd("GET").arg(k).query(&mut c).unwrap())
        .collect();
    for i in 0..200 {
        let _: () = redis::cmd("SET")
            .arg(&keys[i])
            .arg(&values[i + 1])
            .arg("EX")
            .arg(600)
            .query(&mut c)
            .unwrap();
    }
    let second = run("b.json", "a2.jsonl");
    assert_eq!(second["redis"]["runCacheStats"]["misses"], 200, "{second}");
    assert_eq!(second["redis"]["runCacheStats"]["hits"], 800, "{second}");
    assert_eq!(second["redis"]["cacheInvalid"], 200, "{second}");
    assert_eq!(second["newClusters"], first["newClusters"]);
    assert_eq!(
        common::partition(&common::assignments(&host.path().join("a1.jsonl"))),
        common::partition(&common::assignments(&host.path().join("a2.jsonl"))),
        "a misplaced vector changed the stories"
    );
    // The misses were written back under their own keys: a third run hits everything.
    let third = run("c.json", "a3.jsonl");
    assert_eq!(third["redis"]["runCacheStats"]["hits"], 1000, "{third}");
}

/// A server nobody runs (a mistyped port, Redis not started) is a configuration error: `run`,
/// `stories` and `stats` say so at once with what to do, instead of retrying for the whole
/// window (10.7 s before) and, for `run`, leaving fallback files behind.
#[test]
fn a_refused_first_connection_fails_at_once_with_a_hint() {
    let host = tempfile::tempdir().unwrap();
    let port = common::redis::free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let d = dump(host.path(), "d.jsonl", 50, 3, "r-");
    let commands: [Vec<&str>; 3] = [
        vec!["run", "--redis-url", &url, d.to_str().unwrap()],
        vec!["stories", "--redis-url", &url],
        vec!["stats", "--redis-url", &url],
    ];
    for args in commands {
        let t = Instant::now();
        let out = run_in(host.path(), &args, None, &[]);
        let took = t.elapsed();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        // The default pipeline retries for 10 s: well under that means no retry happened.
        assert!(took < Duration::from_secs(5), "{args:?} took {took:?}");
        assert!(err.contains("connection refused"), "{args:?}: {err}");
        assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
        assert!(
            err.contains("--redis-url") && err.contains("--state"),
            "the hint names both ways out: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
    }
    let left: Vec<String> = names(host.path())
        .into_iter()
        .filter(|n| n.starts_with("perps-news"))
        .collect();
    assert!(left.is_empty(), "no fallback files: {left:?}");
}
