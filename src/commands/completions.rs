//! `perps-news completions SHELL` and `perps-news man`: generated from the clap definitions.

use clap::Args;

/// `perps-news completions`
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// Writes the completion script of `shell`, generated from the clap definitions.
pub fn completions(shell: clap_complete::Shell) -> perps_news::Result<i32> {
    use clap::CommandFactory;
    use std::io::Write;
    let mut cmd = super::Cli::command();
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
pub fn man() -> perps_news::Result<i32> {
    use clap::CommandFactory;
    use std::io::Write;
    let cmd = super::Cli::command();
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
