//! `perps-news stories`: the hottest active stories, from a state file or Redis.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use perps_news::error::{Error, Result};
use perps_news::{config, embed, store};

/// `perps-news stories`
#[derive(Debug, Args)]
pub struct StoriesArgs {
    /// How many stories.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Only stories touching this perp symbol (e.g. BTC).
    #[arg(long, value_name = "SYMBOL")]
    pub symbol: Option<String>,
    /// Only stories pointing this way: bullish, bearish or neutral (with --symbol: for that
    /// symbol).
    #[arg(long, value_name = "DIRECTION", value_parser = parse_direction)]
    pub direction: Option<perps_news::signals::sentiment::Direction>,
    /// Only stories of at least this importance (0..100).
    #[arg(long, value_name = "N")]
    pub min_importance: Option<f64>,
    /// Order by: heat (default) or importance.
    #[arg(long, value_name = "KEY", default_value = "heat", value_parser = ["heat", "importance"])]
    pub sort: String,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Read the state from this local file instead of Redis.
    #[arg(long, value_name = "PATH")]
    pub state: Option<PathBuf>,
    /// Pipeline declaration (its [redis] and [signals] sections).
    #[arg(long, value_name = "FILE")]
    pub pipeline: Option<PathBuf>,
    /// Redis URL (overrides the pipeline and REDIS_* variables).
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
}

/// `perps-news stories`: the hottest active stories at the state's clock (its latest
/// article time), optionally only those touching one symbol.
///
/// # Errors
/// Config errors; an unreadable state; Redis unreachable.
pub fn run(args: &StoriesArgs) -> Result<i32> {
    let cfg = config::resolve(args.pipeline.as_deref(), args.redis_url.as_deref())?;
    let embedder = embed::build(&cfg.embed, &cfg.api, &perps_news::api::Context::default())?;
    let state = match &args.state {
        Some(path) => store::file::load(path, &embedder.fingerprint(), embedder.dim())?,
        None => {
            let conns = store::redis::Connections::new(&cfg.redis)?;
            store::redis::load_state(&conns.main, &embedder.fingerprint(), embedder.dim())?.0
        }
    };
    let importance = perps_news::signals::importance::Importance::from_config(&cfg.signals)?;
    let ctx = perps_news::report::RecordContext {
        now: state.clock,
        tau_hours: cfg.signals.heat_tau_hours,
        importance: &importance,
    };
    let mut records: Vec<perps_news::report::StoryRecord> = state
        .stories
        .iter()
        .map(|s| perps_news::report::StoryRecord::of_active(s, ctx))
        .filter(|r| args.min_importance.is_none_or(|m| r.importance >= m))
        .filter(|r| {
            args.symbol
                .as_ref()
                .is_none_or(|sym| r.symbols.iter().any(|s| s.eq_ignore_ascii_case(sym)))
        })
        .filter(|r| {
            // With --symbol, the direction for that symbol; else the story's.
            args.direction.is_none_or(|want| {
                let got = match &args.symbol {
                    Some(sym) => r
                        .direction
                        .symbols
                        .iter()
                        .find(|s| s.symbol.eq_ignore_ascii_case(sym))
                        .map(|s| s.verdict.direction),
                    None => Some(r.direction.direction),
                };
                got == Some(want)
            })
        })
        .collect();
    let by_importance = args.sort == "importance";
    records.sort_by(|a, b| {
        let (x, y) = if by_importance {
            (a.importance, b.importance)
        } else {
            (a.heat, b.heat)
        };
        y.total_cmp(&x)
            .then_with(|| b.last_published_at.cmp(&a.last_published_at))
            .then_with(|| a.id.cmp(&b.id))
    });
    records.truncate(args.top);
    let mut out = std::io::stdout().lock();
    if args.json {
        for r in &records {
            let line =
                serde_json::to_string(r).map_err(|e| Error::io("-", std::io::Error::other(e)))?;
            let _ = writeln!(out, "{line}");
        }
        return Ok(0);
    }
    let _ = writeln!(
        out,
        "{:>6} {:>4} {:>5} {:>4} {:<3} {:<7} {:<14} label",
        "heat", "imp", "size", "src", "brk", "dir", "symbols"
    );
    for r in &records {
        let syms = r.symbols.join(",");
        let _ = writeln!(
            out,
            "{:>6.2} {:>4.0} {:>5} {:>4} {:<3} {:<7} {:<14} {}",
            r.heat,
            r.importance,
            r.size,
            r.sources,
            if r.breaking { "yes" } else { "" },
            r.direction.direction.as_str(),
            syms.chars().take(14).collect::<String>(),
            r.label
        );
    }
    Ok(0)
}

/// `--direction`: bullish, bearish or neutral.
fn parse_direction(s: &str) -> Result<perps_news::signals::sentiment::Direction, String> {
    perps_news::signals::sentiment::Direction::parse(s)
        .ok_or_else(|| format!("expected bullish, bearish or neutral, got {s:?}"))
}
