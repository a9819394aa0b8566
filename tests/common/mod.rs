//! Helpers shared by the integration tests: run the real binary, read JSON Lines.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The built `perps-news` binary.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_perps-news"));
    for var in [
        "REDIS_URL",
        "REDIS_HOST",
        "REDIS_PORT",
        "REDIS_PASSWORD",
        "REDIS_PASSWORD_FILE",
        "REDIS_USERNAME",
        "NEWS_WORKER_ALLOWED_DIRS",
        "REDIS_CACHE_DB",
        "REDIS_CACHE_PREFIX",
        "REDIS_QUEUE_DB",
        "REDIS_CACHE_URL",
        "OPENROUTER_API_KEY",
        "OPENROUTER_BASE_URL",
        "OPENROUTER_CONCURRENCY",
        "OPENROUTER_EMBED_MODEL",
        "OPENROUTER_CHAT_MODEL",
        "OPENROUTER_FALLBACK_MODEL",
    ] {
        c.env_remove(var);
    }
    // Fallback files (mirror, event spool) in the test's working directory, where the tests
    // look for them; the default state directory has a test of its own.
    c.env_remove("CLUSTER_BATCH_SIZE")
        .env("PERPS_NEWS_STATE_DIR", ".")
        .env_remove("RAYON_NUM_THREADS")
        .env("RUST_LOG", "warn");
    c
}

/// Runs the binary with `args`, feeding `stdin`.
pub fn run(args: &[&str], stdin: Option<&[u8]>, envs: &[(&str, &str)]) -> Output {
    run_in(Path::new(env!("CARGO_MANIFEST_DIR")), args, stdin, envs)
}

/// Runs the binary in working directory `dir` (where relative spool and mirror files go).
pub fn run_in(dir: &Path, args: &[&str], stdin: Option<&[u8]>, envs: &[(&str, &str)]) -> Output {
    let mut c = bin();
    c.current_dir(dir);
    c.args(args).envs(envs.iter().copied());
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn perps-news");
    if let Some(data) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(data).unwrap();
    }
    child.wait_with_output().unwrap()
}

/// A path under the crate root.
pub fn root(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// `../shared/...` beside the checkout (read-only).
pub fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("shared")
        .join(rel)
}

/// Parses a JSON Lines file.
pub fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// (id, cluster) pairs of an assignments file, in file order.
pub fn assignments(path: &Path) -> Vec<(String, String)> {
    jsonl(path)
        .into_iter()
        .map(|v| {
            (
                v["id"].as_str().unwrap().to_string(),
                v["cluster"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Groups ids by cluster and returns the partition as sorted lists of sorted ids: equal for
/// equal groupings, whatever the story ids are called.
pub fn partition(pairs: &[(String, String)]) -> Vec<Vec<String>> {
    let mut groups: HashMap<&str, Vec<String>> = HashMap::new();
    for (id, c) in pairs {
        groups.entry(c).or_default().push(id.clone());
    }
    let mut out: Vec<Vec<String>> = groups
        .into_values()
        .map(|mut g| {
            g.sort();
            g
        })
        .collect();
    out.sort();
    out
}

/// A generated dump of `articles` (seed `seed`) written as two files in `dir`: its first
/// `first` lines (`window.jsonl`) and the rest (`rest.jsonl`: what follows it).
pub fn generated_split(dir: &Path, articles: usize, first: usize, seed: u64) -> (PathBuf, PathBuf) {
    let text = std::fs::read_to_string(generated(dir, "all.jsonl", articles, seed)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (a, b) = (dir.join("window.jsonl"), dir.join("rest.jsonl"));
    std::fs::write(&a, lines[..first].join("\n") + "\n").unwrap();
    std::fs::write(&b, lines[first..].join("\n") + "\n").unwrap();
    (a, b)
}

/// Writes a generated dump and returns its path.
pub fn generated(dir: &Path, name: &str, articles: usize, seed: u64) -> PathBuf {
    let p = dir.join(name);
    let out = run(
        &[
            "generate",
            "--articles",
            &articles.to_string(),
            "--seed",
            &seed.to_string(),
            "-o",
            p.to_str().unwrap(),
        ],
        None,
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    p
}
pub mod openai;
pub mod redis;

/// The JSON object a successful command printed on stdout (panics with stderr otherwise).
pub fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "exit {:?}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// The JSON lines a successful command printed on stdout.
pub fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Asserts that a command succeeded (its exit code and stderr in the message) and returns its
/// stderr.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `perps-news run -q INPUT` with `extra` flags (`--assignments`, `--stories`, `--state`…),
/// which must succeed.
pub fn run_quiet(input: &Path, extra: &[&str]) {
    let mut args = vec!["run", "-q", input.to_str().unwrap()];
    args.extend_from_slice(extra);
    ok(&run(&args, None, &[]));
}

/// `perps-news eval --json` of an assignments file against a labelled dump.
pub fn eval_json(gold: &Path, assignments: &Path) -> serde_json::Value {
    json(&run(
        &[
            "eval",
            "--json",
            "--gold",
            gold.to_str().unwrap(),
            "--assignments",
            assignments.to_str().unwrap(),
        ],
        None,
        &[],
    ))
}

/// The last complete header of a state file (`{"xxh3": …, "state": …}`, the state without
/// its stories), read from the snapshot-plus-log format by hand: magic, then frames of
/// kind (1 byte), length (u32 LE), xxh3 (u64 LE) and payload.
#[allow(dead_code)]
pub fn state_header(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap();
    let mut at = b"PNSLOG1\n".len();
    assert!(
        bytes.starts_with(b"PNSLOG1\n"),
        "{}: not a state log",
        path.display()
    );
    let mut header = None;
    while at + 13 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 1..at + 5].try_into().unwrap()) as usize;
        let Some(payload) = bytes.get(at + 13..at + 13 + len) else {
            break;
        };
        if bytes[at] == b'H' {
            header = Some(payload);
        }
        at += 13 + len;
    }
    serde_json::from_slice(header.expect("a header")).unwrap()
}
