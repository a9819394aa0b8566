//! The subcommands, as library functions returning an exit code, so `main` stays thin and
//! tests can call them.

use std::io::{IsTerminal, Write};

use crate::cli::{EvalArgs, GenerateArgs, RunArgs, SweepArgs};
use crate::config::PipelineConfig;
use crate::error::{Error, Result};
use crate::pipeline::{RunInput, RunOptions};
use crate::report::{AssignmentLine, MAX_REJECTS_LOGGED, write_jsonl};
use crate::store::memory::MemoryCache;
use crate::story::StoryState;
use crate::{embed, eval, label, pipeline, store, synth};

/// `perps-news run`: returns the exit code (0, or 1 under `--strict` is an `Err`).
///
/// # Errors
/// Anything that prevented the run: config, unreadable input or state, failed writes.
pub fn run(args: &RunArgs, pool: &rayon::ThreadPool) -> Result<i32> {
    let mut cfg = PipelineConfig::load(args.pipeline.as_deref())?;
    cfg.apply_env(|k| std::env::var(k).ok())?;
    if let Some(n) = args.batch_size {
        cfg.ingest.batch_size = n;
    }
    if let Some(t) = args.threshold {
        cfg.cluster.threshold = t;
    }
    cfg.validate("command line")?;
    for input in &args.inputs {
        crate::stages::ingest::check_input_exists(input)?;
    }

    let embedder = embed::build(&cfg.embed)?;
    let labeler = label::build(&cfg.label)?;
    let cache = MemoryCache::default();
    let fingerprint = embedder.fingerprint();
    let state = match &args.state {
        Some(path) => store::file::load(path, &fingerprint, embedder.dim())?,
        None => StoryState::new(fingerprint, embedder.dim()),
    };
    let opts = RunOptions {
        strict: args.strict,
        progress: !args.quiet && std::io::stderr().is_terminal(),
        ingest_time: crate::time::now_millis() / 1000,
    };
    let inputs = args.inputs.iter().cloned().map(RunInput::Path).collect();
    let outcome = pipeline::run(
        &cfg, inputs, state, &*embedder, &cache, &*labeler, &opts, pool,
    )?;

    if let Some(path) = &args.state {
        store::file::save(path, &outcome.state)?;
    }
    if let Some(path) = &args.assignments {
        let lines = outcome
            .assignments
            .iter()
            .map(|(id, c)| AssignmentLine { id, cluster: c });
        write_jsonl(path, lines)?;
    }
    if let Some(path) = &args.stories {
        write_jsonl(path, &outcome.stories)?;
    }

    let mut stderr = std::io::stderr().lock();
    for r in &outcome.rejects {
        let _ = writeln!(stderr, "rejected {r}");
    }
    if outcome.rejects.len() > MAX_REJECTS_LOGGED {
        tracing::warn!(
            more = outcome.rejects.len() - MAX_REJECTS_LOGGED,
            "More rejected records not logged individually."
        );
    }
    drop(stderr);
    if args.json {
        let json = serde_json::to_string(&outcome.summary)
            .map_err(|e| Error::io("-", std::io::Error::other(e)))?;
        println!("{json}");
    } else if !args.quiet {
        print!("{}", outcome.summary.render());
    }
    Ok(0)
}

/// `perps-news eval`: prints the scores; exit code 0.
///
/// # Errors
/// Unreadable or malformed gold/assignment files.
pub fn eval(args: &EvalArgs) -> Result<i32> {
    let gold = eval::load_jsonl(&args.gold, "label")?;
    let pred = eval::load_jsonl(&args.assignments, "cluster")?;
    let scores = eval::score(&gold, &pred)?;
    if args.json {
        let json =
            serde_json::to_string(&scores).map_err(|e| Error::io("-", std::io::Error::other(e)))?;
        println!("{json}");
    } else {
        print!("{}", eval::render(&scores));
    }
    Ok(0)
}

/// `perps-news generate`: writes a synthetic dump.
///
/// # Errors
/// The output file cannot be written.
pub fn generate(args: &GenerateArgs) -> Result<i32> {
    let cfg = synth::SynthConfig {
        articles: args.articles,
        story_size: args.story_size.max(1),
        seed: args.seed,
        span_hours: args.span_hours,
        ..synth::SynthConfig::default()
    };
    let text = synth::generate_jsonl(&cfg);
    match &args.output {
        Some(p) => std::fs::write(p, text).map_err(|e| Error::io(p, e))?,
        None => std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .map_err(|e| Error::io("-", e))?,
    }
    Ok(0)
}

/// `perps-news sweep`: scores every combination of the given knob values.
///
/// # Errors
/// Unreadable files, a knob that is not in the pipeline, or a value of the wrong type.
pub fn sweep(args: &SweepArgs, pool: &rayon::ThreadPool) -> Result<i32> {
    let base = PipelineConfig::load(args.pipeline.as_deref())?;
    let mut dumps = Vec::new();
    for path in &args.gold {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let gold = eval::load_jsonl(path, "label")?;
        dumps.push((path.display().to_string(), bytes, gold));
    }
    let mut grid: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for set in &args.sets {
        let (key, values) = set.split_once('=').ok_or_else(|| Error::Config {
            origin: format!("--set {set}"),
            message: "expected KEY=V1,V2,...".into(),
        })?;
        grid = grid
            .into_iter()
            .flat_map(|combo| {
                values.split(',').map(move |v| {
                    let mut c = combo.clone();
                    c.push((key.trim().to_string(), v.trim().to_string()));
                    c
                })
            })
            .collect();
    }
    for combo in &grid {
        let cfg = crate::config::with_overrides(&base, combo)?;
        let embedder = embed::build(&cfg.embed)?;
        let labeler = label::build(&cfg.label)?;
        let knobs: Vec<String> = combo.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut f1s = Vec::new();
        for (name, bytes, gold) in &dumps {
            let opts = RunOptions {
                strict: false,
                progress: false,
                ingest_time: 0,
            };
            let state = StoryState::new(embedder.fingerprint(), embedder.dim());
            let input = vec![RunInput::Bytes {
                name: name.clone(),
                bytes: bytes.clone(),
            }];
            let cache = MemoryCache::default();
            let out = pipeline::run(
                &cfg, input, state, &*embedder, &cache, &*labeler, &opts, pool,
            )?;
            let s = eval::score(gold, &out.assignments)?;
            if args.json {
                let line = serde_json::json!({"knobs": knobs, "gold": name, "scores": s});
                println!("{line}");
            } else {
                println!(
                    "{:<60} {:<28} P={:.4} R={:.4} F1={:.4} clusters={}",
                    knobs.join(" "),
                    name.rsplit('/').next().unwrap_or(name),
                    s.bcubed_p,
                    s.bcubed_r,
                    s.bcubed_f1,
                    s.pred_clusters
                );
            }
            f1s.push(s.bcubed_f1);
        }
        if dumps.len() > 1 && !args.json {
            println!(
                "{:<60} {:<28} mean F1={:.4}",
                knobs.join(" "),
                "(all)",
                f1s.iter().sum::<f64>() / f1s.len() as f64
            );
        }
    }
    Ok(0)
}
