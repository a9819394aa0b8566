//! `perps-news subscribe`: tail the bus as JSON lines.

use std::path::PathBuf;

use clap::Args;
use perps_news::error::Result;
use perps_news::{config, store};

/// `perps-news subscribe`
#[derive(Debug, Args)]
pub struct SubscribeArgs {
    /// Channels or glob patterns to tail.
    #[arg(default_value = "*")]
    pub channels: Vec<String>,
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
    perps_news::bus::subscribe(
        &conns.main,
        &client,
        &args.channels,
        args.from_stream,
        args.count,
        &mut out,
    )?;
    Ok(0)
}
