//! The `perps-news` binary: parse the command line, set up logging and the thread pool, run
//! the command ([`commands`]), map errors to exit codes (0 ok, 1 rejected input under
//! --strict, 2 could not run).

mod commands;

use clap::Parser;
use commands::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    quiet_on_closed_stdout();
    // Without RUST_LOG the long-running worker still says it started, stopped, and what it
    // did each period; batch commands stay quiet.
    let default_filter = match cli.command {
        Command::Worker(_) => "warn,perps_news::worker=info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(colour())
        .init();

    let code = match rayon::ThreadPoolBuilder::new().build() {
        Err(e) => {
            eprintln!("perps-news: cannot start worker threads: {e}");
            2
        }
        Ok(pool) => {
            // Shared: the worker hands it to blocking job threads.
            let pool = std::sync::Arc::new(pool);
            let result = cli.command.run(&pool);
            result.unwrap_or_else(|e| {
                // `perps-news ... | head`: the reader has what it wanted (as ripgrep does).
                if broken_pipe(&e) {
                    return 0;
                }
                eprintln!("perps-news: {e}");
                e.exit_code()
            })
        }
    };
    std::process::exit(code);
}

/// Colour codes only for a person at a terminal: not in files, pipes or journald, and never
/// when `NO_COLOR` is set to anything (https://no-color.org).
fn colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Whether `e` comes from writing to a reader that went away (stdout closed by `head`).
fn broken_pipe(e: &perps_news::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// `print!` panics when stdout is closed; that is the reader's choice, not a failure, so
/// the process ends quietly with status 0. Every other panic keeps the default report.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}
