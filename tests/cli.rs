//! End-to-end tests of the `perps-news` binary on the bundled fixtures.

mod common;

use common::{assignments, generated, jsonl, partition, root, run};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn run_on_the_bundled_fixture_prints_a_summary() {
    let out = run(
        &["run", root("fixtures/news-100.jsonl").to_str().unwrap()],
        None,
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let s = stdout(&out);
    assert!(
        s.contains("articles: 100 read, 100 accepted, 0 rejected"),
        "{s}"
    );
    assert!(s.contains("time:") && s.contains("cluster"), "{s}");
}

#[test]
fn json_summary_has_exactly_the_event_fields_first() {
    let out = run(
        &[
            "run",
            "--json",
            root("fixtures/news-100.jsonl").to_str().unwrap(),
        ],
        None,
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    // Field order as written (serde_json's map would sort the keys).
    assert!(
        text.starts_with(r#"{"timestamp":""#)
            && text.contains(r#"","totalProcessed":100,"newClusters":"#)
            && text.contains(r#","cacheStats":{"hits":0,"misses":100,"hitRate":0.0},"records":"#),
        "{text}"
    );
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["totalProcessed"], 100);
    let new = v["newClusters"].as_u64().unwrap();
    assert!((5..100).contains(&new), "{new}");
    assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn bad_lines_are_reported_counted_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.jsonl");
    let bad = root("fixtures/bad-lines.jsonl");
    let out = run(
        &[
            "run",
            "--json",
            "--assignments",
            a.to_str().unwrap(),
            bad.to_str().unwrap(),
        ],
        None,
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["records"], 15);
    assert_eq!(v["rejected"], 9);
    assert_eq!(v["duplicates"], 1);
    assert_eq!(v["totalProcessed"], 5);
    assert_eq!(
        v["rejectedByReason"],
        serde_json::json!({"bad_date": 2, "bad_field": 1, "invalid_utf8": 1, "malformed": 3, "missing_title": 2})
    );
    let err = stderr(&out);
    for needle in [
        "bad-lines.jsonl:3: invalid JSON",
        "bad-lines.jsonl:4: field `title`: missing",
        "bad-lines.jsonl:5: field `published_at`",
        "bad-lines.jsonl:6: invalid UTF-8",
        "bad-lines.jsonl:7: field `body`: expected a string, got a number",
        "bad-lines.jsonl:13: field `published_at`",
        "bad-lines.jsonl:15: invalid JSON",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    // Every accepted article is assigned, in input order; the duplicate shares its original's
    // story.
    let got = assignments(&a);
    let ids: Vec<&str> = got.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(ids[..5], ["ok-1", "ok-2", "ok-3", "ok-2-dup", "epoch"]);
    assert_eq!(ids.len(), 6);
    assert_eq!(got[1].1, got[3].1);
    assert_eq!(
        got[0].1, got[1].1,
        "the two ETF-inflow articles are one story"
    );
}

#[test]
fn strict_fails_on_the_first_bad_record_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let bad = root("fixtures/bad-lines.jsonl");
    let out = run(
        &[
            "run",
            "--strict",
            "--state",
            state.to_str().unwrap(),
            bad.to_str().unwrap(),
        ],
        None,
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("bad-lines.jsonl:3"),
        "{}",
        stderr(&out)
    );
    assert!(!state.exists());
    let ok = run(
        &[
            "run",
            "--strict",
            root("fixtures/news-100.jsonl").to_str().unwrap(),
        ],
        None,
        &[],
    );
    assert_eq!(ok.status.code(), Some(0));
}

#[test]
fn stdin_json_arrays_gzip_and_several_inputs_in_one_run() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let arr = dir.path().join("arr.json");
    std::fs::write(
        &arr,
        r#"[{"id":"x1","title":"Ethereum Pectra upgrade goes live on mainnet"},
 {"id":"x2","title":"Pectra upgrade activates on Ethereum mainnet"}]"#,
    )
    .unwrap();
    let gz = dir.path().join("more.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(b"{\"id\":\"x3\",\"title\":\"Dogecoin jumps 20% after Musk post\"}\n")
        .unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    let a = dir.path().join("a.jsonl");
    let out = run(
        &[
            "run",
            "--json",
            "--assignments",
            a.to_str().unwrap(),
            arr.to_str().unwrap(),
            "-",
            gz.to_str().unwrap(),
        ],
        Some(b"{\"id\":\"x4\",\"title\":\"Dogecoin surges 20% after Elon Musk post\"}\n"),
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let got = assignments(&a);
    assert_eq!(
        got.iter().map(|(i, _)| i.as_str()).collect::<Vec<_>>(),
        ["x1", "x2", "x4", "x3"]
    );
    assert_eq!(got[0].1, got[1].1);
    assert_eq!(got[2].1, got[3].1);
    assert_ne!(got[0].1, got[2].1);
}

#[test]
fn empty_input_is_a_valid_run_with_zero_stories() {
    let out = run(&["run", "--json", "-"], Some(b""), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["totalProcessed"], 0);
    assert_eq!(v["newClusters"], 0);
}

#[test]
fn missing_inputs_and_bad_pipelines_exit_2_with_the_path() {
    let out = run(&["run", "/nonexistent/dump.jsonl"], None, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/nonexistent/dump.jsonl"),
        "{}",
        stderr(&out)
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, "[cluster]\nthreshhold = 0.5\n").unwrap();
    let out = run(
        &["run", "--pipeline", p.to_str().unwrap(), "-"],
        Some(b""),
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("bad.toml") && stderr(&out).contains("threshhold"),
        "{}",
        stderr(&out)
    );
    let out = run(&["run", "-"], Some(b""), &[("CLUSTER_BATCH_SIZE", "lots")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("CLUSTER_BATCH_SIZE"),
        "{}",
        stderr(&out)
    );
}

/// Assignments of `dump` with exactly `batch` articles per batch on `threads` threads.
fn assign_batched(
    dir: &std::path::Path,
    dump: &std::path::Path,
    threads: &str,
    batch: &str,
) -> Vec<(String, String)> {
    let a = dir.join(format!("a-{threads}-{batch}.jsonl"));
    let out = run(
        &[
            "run",
            "-q",
            "--batch-size",
            batch,
            "--assignments",
            a.to_str().unwrap(),
            dump.to_str().unwrap(),
        ],
        None,
        &[("RAYON_NUM_THREADS", threads)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assignments(&a)
}

#[test]
fn twenty_thousand_articles_in_one_batch_or_in_batches_of_1000_agree() {
    let dir = tempfile::tempdir().unwrap();
    let dump = generated(dir.path(), "d20k.jsonl", 20_000, 5);
    let one = assign_batched(dir.path(), &dump, "2", "20000");
    assert_eq!(one.len(), 20_000);
    assert!(
        one == assign_batched(dir.path(), &dump, "2", "1000"),
        "one batch and 20 batches differ"
    );
}

#[test]
fn assignments_do_not_depend_on_threads_or_batch_size() {
    let dir = tempfile::tempdir().unwrap();
    let dump = generated(dir.path(), "d.jsonl", 3000, 7);
    let mut results = Vec::new();
    for (threads, batch) in [
        ("1", "20"),
        ("2", "20"),
        ("2", "1"),
        ("1", "1000"),
        ("2", "1000"),
    ] {
        results.push((
            (threads, batch),
            assign_batched(dir.path(), &dump, threads, batch),
        ));
    }
    let first = &results[0].1;
    assert_eq!(first.len(), 3000);
    let stories = partition(first).len();
    assert!(stories > 50 && stories < 2000, "{stories} stories");
    for (setting, r) in &results[1..] {
        assert!(
            r == first,
            "assignments differ for threads/batch {setting:?}"
        );
    }
}

#[test]
fn two_runs_with_a_state_equal_one_run_over_both() {
    let dir = tempfile::tempdir().unwrap();
    let dump = generated(dir.path(), "d.jsonl", 1200, 11);
    let lines: Vec<String> = std::fs::read_to_string(&dump)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    // The generator writes in time order, so the halves are an earlier and a later dump.
    let (a, b) = lines.split_at(lines.len() / 2);
    let pa = dir.path().join("a.jsonl");
    let pb = dir.path().join("b.jsonl");
    std::fs::write(&pa, a.join("\n")).unwrap();
    std::fs::write(&pb, b.join("\n")).unwrap();

    let whole = dir.path().join("whole.jsonl");
    let out = run(
        &[
            "run",
            "-q",
            "--assignments",
            whole.to_str().unwrap(),
            dump.to_str().unwrap(),
        ],
        None,
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let state = dir.path().join("state.json");
    let (aa, ab) = (dir.path().join("aa.jsonl"), dir.path().join("ab.jsonl"));
    for (input, output) in [(&pa, &aa), (&pb, &ab)] {
        let out = run(
            &[
                "run",
                "--json",
                "--state",
                state.to_str().unwrap(),
                "--assignments",
                output.to_str().unwrap(),
                input.to_str().unwrap(),
            ],
            None,
            &[],
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let mut split = assignments(&aa);
    split.extend(assignments(&ab));
    assert_eq!(split, assignments(&whole));

    // The same dump again: everything is known, nothing new is opened.
    let out = run(
        &[
            "run",
            "--json",
            "--state",
            state.to_str().unwrap(),
            pb.to_str().unwrap(),
        ],
        None,
        &[],
    );
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["newClusters"], 0);
    assert_eq!(v["totalProcessed"], 0);
    assert_eq!(v["alreadyKnown"], 600);
}

#[test]
fn a_state_from_another_embedder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let f = root("fixtures/news-100.jsonl");
    assert!(
        run(
            &[
                "run",
                "-q",
                "--state",
                state.to_str().unwrap(),
                f.to_str().unwrap()
            ],
            None,
            &[]
        )
        .status
        .success()
    );
    let p = dir.path().join("p.toml");
    std::fs::write(&p, "[embed]\ndim = 256\n").unwrap();
    let out = run(
        &[
            "run",
            "-q",
            "--pipeline",
            p.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
            f.to_str().unwrap(),
        ],
        None,
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("state.json") && stderr(&out).contains("dim 1024"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn stories_output_describes_each_story() {
    let dir = tempfile::tempdir().unwrap();
    let (a, s) = (dir.path().join("a.jsonl"), dir.path().join("s.jsonl"));
    let f = root("fixtures/news-100.jsonl");
    common::run_quiet(
        &f,
        &[
            "--assignments",
            a.to_str().unwrap(),
            "--stories",
            s.to_str().unwrap(),
        ],
    );
    let stories = jsonl(&s);
    let total: u64 = stories.iter().map(|s| s["size"].as_u64().unwrap()).sum();
    assert_eq!(total, 100);
    for st in &stories {
        assert!(!st["label"].as_str().unwrap().is_empty());
        assert_eq!(
            st["articles"].as_array().unwrap().len() as u64,
            st["size"].as_u64().unwrap()
        );
        assert!(
            st["first_published_at"].as_str().unwrap() <= st["last_published_at"].as_str().unwrap()
        );
        assert!(!st["top_terms"].as_array().unwrap().is_empty());
    }
    let by_story = partition(&assignments(&a));
    assert_eq!(by_story.len(), stories.len());
}

#[test]
fn stories_on_the_fixtures_match_their_gold_labels() {
    // The synthetic dumps are denser in look-alike events (several ETF filings, several
    // settlements a day, all in one 24-hour window) than real news, and the generator puts
    // look-alikes minutes apart: only a steep time penalty told them apart (0.85 / 0.77 at
    // 0.1 an hour). The time model that survives skewed feeds and late follow-ups (issue 14:
    // 3 h plateau, 0.01 an hour, at most 0.15) measures 0.519 / 0.400; telling look-alikes
    // apart by their entities is issue 21: with the entity conflict gate and the short-text
    // threshold they measure 0.961 / 0.941 (`perps-news sweep --gold fixtures/news-100.jsonl
    // --gold fixtures/news-1000.jsonl`). The floors sit just under those scores.
    for (fixture, min_f1) in [
        ("fixtures/news-100.jsonl", 0.95),
        ("fixtures/news-1000.jsonl", 0.93),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.jsonl");
        let f = root(fixture);
        common::run_quiet(&f, &["--assignments", a.to_str().unwrap()]);
        let v = common::eval_json(&f, &a);
        let f1 = v["bcubed_f1"].as_f64().unwrap();
        assert!(f1 >= min_f1, "{fixture}: B-cubed F1 {f1:.4} < {min_f1}");
    }
}

#[cfg(not(feature = "worker"))]
#[test]
fn worker_and_enqueue_say_the_build_lacks_the_worker_feature() {
    for args in [&["worker"][..], &["enqueue", "clustering", "x.jsonl"][..]] {
        let out = run(args, None, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("without the `worker` feature"), "{err}");
    }
}

/// Scores of assignments for other articles than the gold's would say nothing (P = 1.0 for
/// a file whose ids all miss): `eval` refuses them, naming the file and the share found.
#[test]
fn eval_refuses_assignments_that_miss_most_gold_ids() {
    let dir = tempfile::tempdir().unwrap();
    let f = root("fixtures/news-100.jsonl");
    let a = dir.path().join("a.jsonl");
    let out = run(
        &[
            "run",
            "-q",
            "--assignments",
            a.to_str().unwrap(),
            f.to_str().unwrap(),
        ],
        None,
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Keep the first 85 assignments under their ids and renumber the rest.
    let text: String = std::fs::read_to_string(&a)
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            if i >= 85 {
                v["id"] = format!("other-{i}").into();
            }
            v.to_string() + "\n"
        })
        .collect();
    let b = dir.path().join("b.jsonl");
    std::fs::write(&b, text).unwrap();
    let eval = |file: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "eval",
            "--gold",
            f.to_str().unwrap(),
            "--assignments",
            file.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run(&args, None, &[])
    };
    let out = eval(&b, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("b.jsonl") && err.contains("only 85 of the 100 gold ids"),
        "{err}"
    );
    assert!(stdout(&out).is_empty(), "no scores printed");
    // The share is a setting, and the full file passes.
    assert!(eval(&b, &["--min-coverage", "0.8"]).status.success());
    assert!(eval(&a, &[]).status.success());
}

/// `perps-news ... | head`: a reader that closes stdout ends the command quietly with status
/// 0 (as ripgrep does), whether the output goes through a writer or `print!`. The reader is
/// closed before the command writes anything, so every write meets a closed pipe.
#[test]
fn a_closed_stdout_ends_quietly_with_status_0() {
    let dir = tempfile::tempdir().unwrap();
    let f = root("fixtures/news-100.jsonl");
    let f = f.to_str().unwrap();
    let state = dir.path().join("s.json");
    let state = state.to_str().unwrap();
    assert!(
        run(&["run", "-q", "--state", state, f], None, &[])
            .status
            .success()
    );
    let a = dir.path().join("a.jsonl");
    let a = a.to_str().unwrap();
    assert!(
        run(&["run", "-q", "--assignments", a, f], None, &[])
            .status
            .success()
    );
    let commands: [&[&str]; 6] = [
        &["generate", "--articles", "2000"],
        &["run", "-q", "--assignments", "-", f],
        &["run", "--json", f],
        &["run", f],
        &["stories", "--json", "--state", state],
        &["eval", "--gold", f, "--assignments", a],
    ];
    for args in commands {
        let mut child = common::bin()
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).is_empty(), "{args:?}: {}", stderr(&out));
    }
}

/// Data on stdout stays pipeable: with `--assignments -` (or `--stories -`) the human
/// summary goes to stderr, and two data streams on stdout at once are refused.
#[test]
fn data_on_stdout_moves_the_summary_to_stderr_and_two_streams_are_refused() {
    let f = root("fixtures/news-100.jsonl");
    let f = f.to_str().unwrap();
    for args in [
        &["run", "--assignments", "-", "--stories", "-", f][..],
        &["run", "--json", "--stories", "-", f][..],
        &["run", "--json", "--assignments", "-", f][..],
    ] {
        let out = run(args, None, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&out).contains("would all write to stdout"),
            "{}",
            stderr(&out)
        );
        assert!(out.stdout.is_empty());
    }
    for (flag, lines) in [("--assignments", 100), ("--stories", 22)] {
        let out = run(&["run", flag, "-", f], None, &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        let data = stdout(&out);
        assert_eq!(data.lines().count(), lines, "{flag}: {data}");
        for l in data.lines() {
            serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        }
        assert!(
            stderr(&out).contains("articles: 100 read, 100 accepted"),
            "{flag}: the summary is on stderr: {}",
            stderr(&out)
        );
    }
}

/// A rejected record is reported once (it was also logged as a warning), and log lines
/// carry no colour codes unless stderr is a terminal and `NO_COLOR` is unset.
#[test]
fn rejects_are_printed_once_and_colour_is_only_for_terminals() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = std::fs::read_to_string(root("fixtures/news-100.jsonl")).unwrap();
    text.push_str("{\"id\":\"bad-1\",\"title\":\"\",\"url\":\"https://x.test/1\"}\n");
    let f = dir.path().join("mixed.jsonl");
    std::fs::write(&f, text).unwrap();
    let out = run(&["run", "-q", f.to_str().unwrap()], None, &[]);
    assert!(out.status.success());
    let err = stderr(&out);
    assert_eq!(err.matches("mixed.jsonl:101").count(), 1, "{err}");
    assert!(
        err.contains("rejected ") && err.contains("`title`"),
        "{err}"
    );

    // A warning (a password on the command line) through a pipe, then through a terminal.
    let port = common::redis::free_port();
    let url = format!("redis://u:pw@127.0.0.1:{port}/0");
    let args = ["run", "--redis-url", &url, f.to_str().unwrap()];
    let out = run(&args, None, &[]);
    let err = stderr(&out);
    assert!(err.contains("password in --redis-url"), "{err}");
    assert!(
        !err.contains('\u{1b}'),
        "no colour codes in a pipe: {err:?}"
    );
    let in_terminal = |no_color: Option<&str>| {
        // -q: the progress bar's cursor codes are not colour, and are not what is tested.
        let cmd = format!(
            "{} run -q --redis-url {url} {}",
            env!("CARGO_BIN_EXE_perps-news"),
            f.display()
        );
        let mut c = std::process::Command::new("script");
        c.args(["-qec", &cmd, "/dev/null"])
            .env("RUST_LOG", "warn")
            .env("PERPS_NEWS_STATE_DIR", dir.path());
        match no_color {
            Some(v) => c.env("NO_COLOR", v),
            None => c.env_remove("NO_COLOR"),
        };
        let out = c
            .output()
            .expect("`script` (util-linux) runs the binary in a terminal");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let tty = in_terminal(None);
    assert!(tty.contains("password in --redis-url"), "{tty}");
    assert!(tty.contains('\u{1b}'), "colour at a terminal: {tty:?}");
    let tty = in_terminal(Some("1"));
    assert!(
        tty.contains("password in --redis-url") && !tty.contains('\u{1b}'),
        "{tty:?}"
    );
}

/// `--stories` lists every story the run opened or joined, also those retired and then
/// forgotten before the run ended (a dump spanning 100 days outlives the retire window).
#[test]
fn stories_output_lists_stories_forgotten_before_the_run_ended() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("long.jsonl");
    let out = run(
        &[
            "generate",
            "--articles",
            "3000",
            "--span-hours",
            "2400",
            "-o",
            dump.to_str().unwrap(),
        ],
        None,
        &[],
    );
    assert!(out.status.success());
    let (a, s) = (dir.path().join("a.jsonl"), dir.path().join("s.jsonl"));
    common::run_quiet(
        &dump,
        &[
            "--now",
            "2100-01-01T00:00:00Z",
            "--assignments",
            a.to_str().unwrap(),
            "--stories",
            s.to_str().unwrap(),
        ],
    );
    let in_assignments: std::collections::BTreeSet<String> = jsonl(&a)
        .iter()
        .map(|v| v["cluster"].as_str().unwrap().to_string())
        .collect();
    let listed: Vec<serde_json::Value> = jsonl(&s);
    let ids: std::collections::BTreeSet<String> = listed
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), listed.len(), "each story once");
    assert_eq!(
        ids, in_assignments,
        "every story of the assignments is listed"
    );
    let inactive = listed.iter().filter(|v| v["active"] == false).count();
    assert!(
        inactive > listed.len() / 2,
        "most are retired by the end: {inactive}"
    );
}

/// A truncated gzip: the record cut off is one reject (not also a second "truncated" one),
/// and read = accepted + rejected, with every accepted article clustered.
#[test]
fn a_truncated_gzip_is_counted_so_the_numbers_add_up() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read(root("fixtures/news-100.jsonl")).unwrap();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&text).unwrap();
    let gz = enc.finish().unwrap();
    let cut = dir.path().join("cut.jsonl.gz");
    std::fs::write(&cut, &gz[..gz.len() / 2]).unwrap();
    let out = run(&["run", "--json", cut.to_str().unwrap()], None, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let n = |k: &str| v[k].as_u64().unwrap();
    assert_eq!(n("records"), n("accepted") + n("rejected"), "{v}");
    assert_eq!(n("totalProcessed"), n("accepted") - n("duplicates"), "{v}");
    assert_eq!(n("rejected"), 1, "{v}");
    let err = stderr(&out);
    assert_eq!(err.matches("rejected ").count(), 1, "{err}");
    assert!(
        err.contains("input truncated") && err.contains("cut off"),
        "{err}"
    );
}

/// Packaging: the license file matches Cargo.toml, and completions and the man page come
/// from the clap definitions (every subcommand and a flag of each appear), and a closed
/// stdout does not make them panic.
#[test]
fn license_completions_and_man_page_are_generated_from_the_cli() {
    let manifest = std::fs::read_to_string(root("Cargo.toml")).unwrap();
    assert!(manifest.contains("license = \"MIT\""));
    let license = std::fs::read_to_string(root("LICENSE")).expect("LICENSE at the root");
    assert!(license.starts_with("MIT License") && license.contains("WITHOUT WARRANTY"));
    let subcommands = [
        "run",
        "eval",
        "generate",
        "subscribe",
        "stories",
        "stats",
        "doctor",
        "serve",
        "sweep",
        "worker",
        "enqueue",
        "completions",
        "man",
    ];
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = run(&["completions", shell], None, &[]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        for needle in subcommands
            .iter()
            .copied()
            .chain(["min-coverage", "queue-any"])
        {
            assert!(script.contains(needle), "{shell} completions lack {needle}");
        }
    }
    let out = run(&["man"], None, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let page = stdout(&out);
    assert!(
        page.starts_with(".ie") || page.contains(".TH perps-news"),
        "{page:.200}"
    );
    for sub in subcommands {
        let heading = format!(".SH \"PERPS-NEWS {}\"", sub.to_uppercase());
        assert!(page.contains(&heading), "man page lacks {heading}");
    }
    assert!(page.contains("min\\-coverage") && page.contains("queue\\-any"));
    for args in [&["completions", "bash"][..], &["man"][..]] {
        let mut child = common::bin()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    }
}
