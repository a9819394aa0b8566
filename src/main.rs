//! The `perps-news` binary: parse the command line, set up logging and the thread pool, call
//! the library, map errors to exit codes (0 ok, 1 rejected input under --strict, 2 could not
//! run).

use clap::Parser;
use perps_news::app;
use perps_news::cli::{Cli, Command};

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
            let result = match &cli.command {
                Command::Run(args) => app::run(args, &pool),
                Command::Eval(args) => app::eval(args),
                Command::Generate(args) => app::generate(args),
                Command::Sweep(args) => app::sweep(args, &pool),
                Command::Subscribe(args) => app::subscribe(args),
                Command::Stats(args) => app::stats(args),
                Command::Stories(args) => app::stories(args),
                Command::Doctor(args) => perps_news::ops::doctor(args),
                Command::Serve(args) => perps_news::ops::serve(args),
                Command::Worker(args) => worker(args, &pool),
                Command::Enqueue(args) => enqueue(args),
                Command::Completions(args) => completions(args.shell),
                Command::Man => man(),
            };
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

/// Writes the completion script of `shell`, generated from the clap definitions.
fn completions(shell: clap_complete::Shell) -> perps_news::Result<i32> {
    use clap::CommandFactory;
    use std::io::Write;
    let mut cmd = Cli::command();
    // Into memory first: clap_complete panics on a write error (a closed stdout).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "perps-news", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)
        .and_then(|()| out.flush())
        .map_err(|e| perps_news::Error::io("-", e))?;
    Ok(0)
}

/// Writes the man page, generated from the clap definitions (subcommands included).
fn man() -> perps_news::Result<i32> {
    use clap::CommandFactory;
    use std::io::Write;
    let cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut page)
        .map_err(|e| perps_news::Error::io("-", e))?;
    // One page for the whole tool: after the main sections, each subcommand's synopsis and
    // options (clap_mangen renders one command per page by itself).
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("perps-news {}", sub.get_name());
        let about = sub.get_about().map(ToString::to_string).unwrap_or_default();
        page.extend_from_slice(format!(".SH \"{}\"\n{}\n", name.to_uppercase(), about).as_bytes());
        let man = clap_mangen::Man::new(sub.clone().bin_name(name));
        man.render_synopsis_section(&mut page)
            .and_then(|()| man.render_options_section(&mut page))
            .map_err(|e| perps_news::Error::io("-", e))?;
    }
    out.write_all(&page)
        .and_then(|()| out.flush())
        .map_err(|e| perps_news::Error::io("-", e))?;
    Ok(0)
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

#[cfg(feature = "worker")]
fn worker(
    args: &perps_news::cli::WorkerArgs,
    pool: &std::sync::Arc<rayon::ThreadPool>,
) -> perps_news::Result<i32> {
    perps_news::worker::run(args, pool.clone())
}

#[cfg(feature = "worker")]
fn enqueue(args: &perps_news::cli::EnqueueArgs) -> perps_news::Result<i32> {
    perps_news::worker::enqueue(args)
}

#[cfg(not(feature = "worker"))]
fn worker(
    _: &perps_news::cli::WorkerArgs,
    _: &std::sync::Arc<rayon::ThreadPool>,
) -> perps_news::Result<i32> {
    Err(without_worker_feature())
}

#[cfg(not(feature = "worker"))]
fn enqueue(_: &perps_news::cli::EnqueueArgs) -> perps_news::Result<i32> {
    Err(without_worker_feature())
}

#[cfg(not(feature = "worker"))]
fn without_worker_feature() -> perps_news::Error {
    perps_news::Error::Config {
        origin: "perps-news".into(),
        message: "built without the `worker` feature; rebuild with `cargo build --release --features worker`".into(),
    }
}
