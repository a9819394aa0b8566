//! `perps-news eval`: B-cubed and pairwise scores of assignments against gold labels.

use std::path::PathBuf;

use clap::Args;
use perps_news::error::{Error, Result};
use perps_news::eval;

/// `perps-news eval`
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Gold labels: JSON Lines with `id` and `label`.
    #[arg(long, value_name = "FILE")]
    pub gold: PathBuf,
    /// Predicted assignments: JSON Lines with `id` and `cluster` (what `run --assignments`
    /// writes).
    #[arg(long, value_name = "FILE")]
    pub assignments: PathBuf,
    /// Print the scores as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Least share of the gold ids that must appear in the assignments (0 to 1); below it
    /// the files are taken to describe different articles and `eval` fails.
    #[arg(long, value_name = "SHARE", default_value_t = 0.9)]
    pub min_coverage: f64,
}

/// `perps-news eval`: prints the scores; exit code 0.
///
/// # Errors
/// Unreadable or malformed gold/assignment files.
pub fn run(args: &EvalArgs) -> Result<i32> {
    let gold = eval::load_jsonl(&args.gold, "label")?;
    let pred = eval::load_jsonl(&args.assignments, "cluster")?;
    let scores = eval::score(&gold, &pred)?;
    eval::check_coverage(&scores, args.min_coverage, &args.assignments)?;
    if args.json {
        let json =
            serde_json::to_string(&scores).map_err(|e| Error::io("-", std::io::Error::other(e)))?;
        println!("{json}");
    } else {
        print!("{}", eval::render(&scores));
    }
    Ok(0)
}
