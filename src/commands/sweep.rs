//! `perps-news sweep`: the pipeline over labelled dumps for every combination of knob values.

use std::path::PathBuf;

use clap::Args;
use perps_news::engine::Engine;
use perps_news::error::{Error, Result};
use perps_news::pipeline::{RunInput, RunOptions};
use perps_news::store::memory::MemoryCache;
use perps_news::{config, eval};

/// `perps-news sweep`
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Labelled dump: articles with a gold `label` field (clustered and scored).
    #[arg(long, value_name = "FILE", required = true)]
    pub gold: Vec<PathBuf>,
    /// Base pipeline (default: the built-in one).
    #[arg(long, value_name = "FILE")]
    pub pipeline: Option<PathBuf>,
    /// A knob and the values to try, e.g. `cluster.threshold=0.15,0.2,0.25`. Repeat for a
    /// grid over several knobs.
    #[arg(long = "set", value_name = "KEY=V1,V2,...")]
    pub sets: Vec<String>,
    /// Print one JSON object per combination instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `perps-news sweep`: scores every combination of the given knob values.
///
/// # Errors
/// Unreadable files, a knob that is not in the pipeline, or a value of the wrong type.
pub fn run(args: &SweepArgs, pool: &std::sync::Arc<rayon::ThreadPool>) -> Result<i32> {
    let base = config::resolve(args.pipeline.as_deref(), None)?;
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
        let engine = Engine::build(config::with_overrides(&base, combo)?, None, pool.clone())?;
        let knobs: Vec<String> = combo.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut f1s = Vec::new();
        for (name, bytes, gold) in &dumps {
            let opts = RunOptions {
                strict: false,
                progress: false,
                ingest_time: perps_news::time::now_millis() / 1000,
            };
            let input = vec![RunInput::Bytes {
                name: name.clone(),
                bytes: bytes.clone(),
            }];
            let cache = MemoryCache::default();
            let out = engine.run(input, engine.new_state(), &cache, &opts, false)?;
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
