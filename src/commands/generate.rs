//! `perps-news generate`: a synthetic dump with known stories.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use perps_news::error::{Error, Result};
use perps_news_synth as synth;

/// `perps-news generate`
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Number of articles.
    #[arg(long, default_value_t = 1000)]
    pub articles: usize,
    /// Mean articles per story.
    #[arg(long, default_value_t = 5)]
    pub story_size: usize,
    /// Random seed (same seed, same dump).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Hours the articles are spread over.
    #[arg(long, default_value_t = 24.0)]
    pub span_hours: f64,
    /// Output file (default stdout).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `perps-news generate`: writes a synthetic dump.
///
/// # Errors
/// The output file cannot be written.
pub fn run(args: &GenerateArgs) -> Result<i32> {
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
