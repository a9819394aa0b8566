//! `perps-news subscribe`: tail the bus as JSON lines.

use std::path::PathBuf;

use clap::Args;
use perps_news::error::Result;
use perps_news::{config, store};

/// `perps-news subscribe`
#[derive(Debug, Args)]
pub struct SubscribeArgs {
    /// Channels or glob patterns to tail (default: every channel; with a story filter,
    /// `news:story`).
    pub channels: Vec<String>,
    /// Only story events of stories touching this perp symbol (e.g. BTC).
    #[arg(long, value_name = "SYMBOL")]
    pub symbol: Option<String>,
    /// Only story events of at least this importance (0..100).
    #[arg(long, value_name = "N")]
    pub min_importance: Option<f64>,
    /// Only story events of this kind: opened, updated, breaking or closed (repeatable).
    #[arg(long = "event", value_name = "KIND", value_parser = parse_kind)]
    pub events: Vec<perps_news::bus::EventKind>,
    /// Replay the channels' streams first (what was published while nobody listened).
    #[arg(long)]
    pub from_stream: bool,
    /// Exit after this many messages.
    #[arg(long, value_name = "N")]
    pub count: Option<usize>,
    /// Pipeline declaration whose [redis] section to use.
    #[arg(long, value_name = "FILE")]
    pub pipeline: Option<PathBuf>,
    /// Redis URL (overrides the pipeline and REDIS_* variables).
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
}

/// `perps-news subscribe`: tails the bus until interrupted (or `--count` messages).
///
/// # Errors
/// Config errors, or Redis unreachable at the start.
pub fn run(args: &SubscribeArgs) -> Result<i32> {
    let cfg = config::resolve(args.pipeline.as_deref(), args.redis_url.as_deref())?;
    let conns = store::redis::Connections::new(&cfg.redis)?;
    let client = conns.main.client();
    let mut out = std::io::stdout().lock();
    let filter = perps_news::bus::StoryFilter {
        symbol: args.symbol.clone(),
        min_importance: args.min_importance,
        events: args.events.clone(),
        since: None,
    };
    // A story filter reads the one story stream (each event once), not the per-symbol
    // copies too.
    let channels = match (&args.channels[..], filter.is_empty()) {
        ([], true) => vec!["*".to_string()],
        ([], false) => vec![perps_news::bus::NEWS_STORY.to_string()],
        (c, _) => c.to_vec(),
    };
    perps_news::bus::subscribe(
        &conns.main,
        &client,
        &channels,
        args.from_stream,
        args.count,
        &filter,
        &mut out,
    )?;
    Ok(0)
}

/// `--event`: a story event kind.
fn parse_kind(s: &str) -> Result<perps_news::bus::EventKind, String> {
    perps_news::bus::EventKind::parse(s)
        .ok_or_else(|| format!("expected opened, updated, breaking or closed, got {s:?}"))
}
