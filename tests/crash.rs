//! A run killed (SIGKILL) at any point, its save included, leaves a state that loads and
//! equals the state before the run or the state after it: through a local state file
//! (snapshot plus log) and through Redis (one fenced script).

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::redis::RedisServer;
use common::{bin, generated_split, ok, run_in};

const TRIALS: u64 = 30;

/// Every story the state holds, as `stories --json` prints them.
fn stories(dir: &Path, source: &[&str]) -> String {
    let mut args = vec!["stories", "--json", "--top", "100000"];
    args.extend_from_slice(source);
    let out = run_in(dir, &args, None, &[]);
    ok(&out);
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `args` and kills it after `delay` (or lets it finish first); whether it finished.
fn run_killed(dir: &Path, args: &[&str], delay: Duration) -> bool {
    let mut child = bin()
        .current_dir(dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let finished = child.try_wait().unwrap().is_some();
    let _ = child.kill();
    let _ = child.wait();
    finished
}

/// Kill delays spread over `0..1.2 × full` by a fixed-seed generator.
fn delays(full: Duration) -> Vec<Duration> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..TRIALS)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            full.mul_f64((x % 1200) as f64 / 1000.0)
        })
        .collect()
}

/// [`TRIALS`] runs of `args`, each from the state `reset` puts back and killed after one of
/// [`delays`]; each must leave the state (as `read` prints it) equal to `before` or `after`.
fn kill_trials(
    dir: &Path,
    args: &[&str],
    full: Duration,
    mut reset: impl FnMut(),
    read: impl Fn() -> String,
    (before, after): (&str, &str),
) {
    let (mut saw_before, mut saw_after, mut killed) = (0, 0, 0);
    for delay in delays(full) {
        reset();
        killed += usize::from(!run_killed(dir, args, delay));
        let now = read();
        if now == before {
            saw_before += 1;
        } else if now == after {
            saw_after += 1;
        } else {
            panic!("killed after {delay:?}: the state is neither the one before nor after");
        }
    }
    eprintln!(
        "{TRIALS} trials, {killed} killed while running: {saw_before} left the state before, \
         {saw_after} after"
    );
    assert!(
        killed > 0 && saw_before > 0,
        "{killed} killed, {saw_before} before"
    );
}

fn timed(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

#[test]
fn a_run_killed_at_any_point_leaves_the_file_state_before_or_after() {
    let t = tempfile::tempdir().unwrap();
    let (window, tick) = generated_split(t.path(), 1520, 1500, 3);
    let base = t.path().join("base.state");
    let b = base.to_str().unwrap();
    ok(&run_in(
        t.path(),
        &["run", "-q", "--state", b, window.to_str().unwrap()],
        None,
        &[],
    ));
    let before = stories(t.path(), &["--state", b]);
    let after_path = t.path().join("after.state");
    std::fs::copy(&base, &after_path).unwrap();
    let tick_args = |state: &Path| {
        vec![
            "run".to_string(),
            "-q".into(),
            "--state".into(),
            state.to_str().unwrap().into(),
            tick.to_str().unwrap().into(),
        ]
    };
    let full = timed(|| {
        let args = tick_args(&after_path);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&run_in(t.path(), &args, None, &[]));
    });
    let after = stories(t.path(), &["--state", after_path.to_str().unwrap()]);
    assert_ne!(before, after, "the tick changes the state");
    let trial = t.path().join("trial.state");
    let trial_args = tick_args(&trial);
    let trial_args: Vec<&str> = trial_args.iter().map(String::as_str).collect();
    kill_trials(
        t.path(),
        &trial_args,
        full,
        || {
            std::fs::copy(&base, &trial).unwrap();
        },
        || stories(t.path(), &["--state", trial.to_str().unwrap()]),
        (&before, &after),
    );
}

/// Every key of DB 0 as DUMP values.
fn snapshot(c: &mut redis::Connection) -> Vec<(String, Vec<u8>)> {
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(c).unwrap();
    keys.into_iter()
        .map(|k| {
            let v: Vec<u8> = redis::cmd("DUMP").arg(&k).query(c).unwrap();
            (k, v)
        })
        .collect()
}

fn restore(c: &mut redis::Connection, keys: &[(String, Vec<u8>)]) {
    let _: () = redis::cmd("FLUSHDB").query(c).unwrap();
    for (k, v) in keys {
        let _: () = redis::cmd("RESTORE").arg(k).arg(0).arg(v).query(c).unwrap();
    }
}

#[test]
fn a_run_killed_at_any_point_leaves_the_redis_state_before_or_after() {
    let redis = RedisServer::start(None, &[]);
    let url = redis.url(0);
    let t = tempfile::tempdir().unwrap();
    let (window, tick) = generated_split(t.path(), 1520, 1500, 3);
    let run = |input: &Path| {
        vec![
            "run".to_string(),
            "-q".into(),
            "--redis-url".into(),
            url.clone(),
            input.to_str().unwrap().into(),
        ]
    };
    let args = run(&window);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&run_in(t.path(), &args, None, &[]));
    let mut c = redis.client(0);
    let base = snapshot(&mut c);
    let before = stories(t.path(), &["--redis-url", &url]);
    let tick_args = run(&tick);
    let tick_args: Vec<&str> = tick_args.iter().map(String::as_str).collect();
    let full = timed(|| {
        ok(&run_in(t.path(), &tick_args, None, &[]));
    });
    let after = stories(t.path(), &["--redis-url", &url]);
    assert_ne!(before, after, "the tick changes the state");
    kill_trials(
        t.path(),
        &tick_args,
        full,
        || restore(&mut c, &base),
        || stories(t.path(), &["--redis-url", &url]),
        (&before, &after),
    );
}
