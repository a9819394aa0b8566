//! `perps-news serve`: the HTTP server of [`perps_news::serve`].

use std::path::PathBuf;

use clap::Args;
use perps_news::config;
use perps_news::error::Result;

/// `perps-news serve`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Port to listen on.
    #[arg(long, default_value_t = 3001)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// Pipeline declaration whose [redis] section to use.
    #[arg(long, value_name = "FILE")]
    pub pipeline: Option<PathBuf>,
    /// Redis URL (overrides the pipeline and REDIS_* variables).
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
}

/// Serves until the process is stopped.
///
/// # Errors
/// The port cannot be bound, or the pipeline file is unusable.
pub fn run(args: &ServeArgs) -> Result<i32> {
    let cfg = config::resolve(args.pipeline.as_deref(), args.redis_url.as_deref())?;
    perps_news::serve::serve(&cfg, &args.bind, args.port)
}
