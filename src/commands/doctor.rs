//! `perps-news doctor`: is this host set up safely? One line per check; exit 1 when one
//! fails. Read-only: it creates and writes nothing.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use perps_news::config;
use perps_news::error::Result;
use perps_news::store::redis::{Connections, Pool};

/// `perps-news doctor`
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Pipeline declaration to check (its [redis] and [spool] sections).
    #[arg(long, value_name = "FILE")]
    pub pipeline: Option<PathBuf>,
    /// Redis URL (overrides the pipeline and REDIS_* variables).
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
}

/// Run summaries `doctor` compares the pipeline fingerprints of (newest first).
const RECENT_RUNS: usize = 50;

/// One doctor finding.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Level {
    Ok,
    Warn,
    Fail,
}

fn config_get(pool: &Pool, name: &str) -> Result<String> {
    let v: Vec<String> = pool.run("CONFIG GET", |c| {
        redis::cmd("CONFIG").arg("GET").arg(name).query(c)
    })?;
    Ok(v.get(1).cloned().unwrap_or_default())
}

fn info_field(pool: &Pool, section: &str, field: &str) -> Result<String> {
    let info: String = pool.run("INFO", |c| redis::cmd("INFO").arg(section).query(c))?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or("?")
        .trim()
        .to_string())
}

/// Whether `dir` exists as a directory the permission bits let someone write to, without
/// creating or writing anything.
fn dir_check(dir: &Path) -> (Level, String) {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
            Level::Fail,
            format!(
                "{} does not exist (doctor creates nothing: `install -d` it with the service \
                 user as owner)",
                dir.display()
            ),
        ),
        Err(e) => (Level::Fail, format!("{}: {e}", dir.display())),
        Ok(m) if !m.is_dir() => (Level::Fail, format!("{} is not a directory", dir.display())),
        Ok(m) if m.permissions().readonly() => {
            (Level::Fail, format!("{} is read-only", dir.display()))
        }
        Ok(_) => (Level::Ok, format!("{} exists", dir.display())),
    }
}

/// `perps-news doctor`: prints one line per check; exit code 1 when any check fails.
///
/// # Errors
/// Only for an unusable pipeline file; unreachable servers are failed checks.
pub fn run(args: &DoctorArgs) -> Result<i32> {
    let mut cfg = config::resolve(args.pipeline.as_deref(), args.redis_url.as_deref())?;
    // Probes answer fast: a doctor that hangs is no help.
    cfg.redis.retry_ms = 0;
    let conns = Connections::new(&cfg.redis)?;
    let mut findings: Vec<(Level, String, String)> = Vec::new();
    let mut add =
        |l: Level, what: &str, detail: String| findings.push((l, what.to_string(), detail));

    // The main instance holds the bus, the story state and the job queues.
    match conns.main.ping() {
        Err(e) => add(Level::Fail, "main redis", e.to_string()),
        Ok(()) => {
            let version = info_field(&conns.main, "server", "redis_version")
                .unwrap_or_else(|e| e.to_string());
            add(
                Level::Ok,
                "main redis",
                format!("{} answers (redis {version})", conns.main.name),
            );
            match config_get(&conns.main, "maxmemory-policy") {
                Ok(p) if p == "noeviction" => add(Level::Ok, "main eviction", "noeviction".into()),
                Ok(p) => add(
                    Level::Fail,
                    "main eviction",
                    format!(
                        "maxmemory-policy is {p}: Redis evicts across the whole instance, so queued jobs and story state can vanish; use noeviction and put the cache on its own instance"
                    ),
                ),
                Err(e) => add(Level::Fail, "main eviction", e.to_string()),
            }
            match config_get(&conns.main, "appendonly") {
                Ok(a) if a == "yes" => add(
                    Level::Ok,
                    "main persistence",
                    format!(
                        "appendonly yes, appendfsync {}",
                        config_get(&conns.main, "appendfsync").unwrap_or_default()
                    ),
                ),
                Ok(a) => add(
                    Level::Fail,
                    "main persistence",
                    format!("appendonly {a}: a restart loses every queued job and the story state"),
                ),
                Err(e) => add(Level::Fail, "main persistence", e.to_string()),
            }
            // The shipped users file is a template: its CHANGE-ME passwords must not work.
            let template = [
                ("perps-news", "CHANGE-ME-app-password"),
                ("admin", "CHANGE-ME-admin-password"),
            ];
            let open: Vec<&str> = template
                .iter()
                .filter(|(u, p)| conns.main.accepts(u, p))
                .map(|(u, _)| *u)
                .collect();
            if open.is_empty() {
                add(
                    Level::Ok,
                    "main passwords",
                    "no template password accepted".into(),
                );
            } else {
                add(
                    Level::Fail,
                    "main passwords",
                    format!(
                        "user(s) {} still have the CHANGE-ME password of systemd/perps-redis-users.conf: set real ones",
                        open.join(", ")
                    ),
                );
            }
            match perps_news::bus::recent(&conns.main, perps_news::bus::NEWS_CLUSTERED, RECENT_RUNS)
            {
                Ok(summaries) => match perps_news::pipeline::fingerprint::compare(&summaries) {
                    Ok(detail) => add(Level::Ok, "pipelines", detail),
                    Err(warning) => add(Level::Warn, "pipelines", warning),
                },
                Err(e) => add(Level::Warn, "pipelines", e.to_string()),
            }
            for (label, pool) in [("bus/state DB", &conns.main), ("queue DB", &conns.queue)] {
                match pool.run("DBSIZE", |c| redis::cmd("DBSIZE").query::<u64>(c)) {
                    Ok(n) => add(Level::Ok, label, format!("{}: {n} keys", pool.name)),
                    Err(e) => add(Level::Fail, label, e.to_string()),
                }
            }
        }
    }
    match conns.cache.ping() {
        Err(e) => add(Level::Fail, "cache redis", e.to_string()),
        Ok(()) => {
            let keys = conns
                .cache
                .run("DBSIZE", |c| redis::cmd("DBSIZE").query::<u64>(c))
                .unwrap_or(0);
            add(
                Level::Ok,
                "cache redis",
                format!("{} answers, {keys} keys", conns.cache.name),
            );
            let same_server = host_port(&conns.cache.name) == host_port(&conns.main.name);
            if same_server {
                add(Level::Warn, "cache placement", "the cache shares the instance that holds queues and state: fine for development; in production give it its own instance (REDIS_CACHE_URL) with allkeys-lru".into());
            } else {
                match config_get(&conns.cache, "maxmemory-policy") {
                    Ok(p) if p.starts_with("allkeys") || p.starts_with("volatile") => {
                        add(Level::Ok, "cache eviction", p);
                    }
                    Ok(p) => add(
                        Level::Warn,
                        "cache eviction",
                        format!("{p}: a full cache will refuse writes; allkeys-lru lets it evict"),
                    ),
                    Err(e) => add(Level::Warn, "cache eviction", e.to_string()),
                }
            }
        }
    }
    // The key's presence only; its value is never printed.
    let var = &cfg.api.api_key_env;
    let key = std::env::var(var).is_ok_and(|k| !k.trim().is_empty());
    let remote = cfg.embed.provider != "hashing" || cfg.label.provider == "llm";
    match (key, remote) {
        (true, _) => add(Level::Ok, "api key", format!("{var} is set")),
        (false, true) => add(
            Level::Fail,
            "api key",
            format!(
                "{var} is not set but embed.provider is {} and label.provider is {}",
                cfg.embed.provider, cfg.label.provider
            ),
        ),
        (false, false) => add(
            Level::Ok,
            "api key",
            "not set (not needed: offline embedder)".into(),
        ),
    }
    // Read-only: a doctor that creates what it checks hides the missing directory it was
    // run to find (and may create it with the wrong owner).
    if cfg.spool.dir.is_empty() {
        add(Level::Ok, "spool", "no spool directory configured".into());
    } else {
        let (level, detail) = dir_check(&Path::new(&cfg.spool.dir).join("inbox"));
        add(level, "spool", detail);
    }
    for (what, file) in [
        ("state mirror dir", &cfg.redis.state_mirror_path),
        ("event spool dir", &cfg.redis.spool_path),
    ] {
        let dir = Path::new(file)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let (level, detail) = dir_check(dir);
        add(level, what, detail);
    }

    let mut out = std::io::stdout().lock();
    let mut failed = 0;
    for (level, what, detail) in &findings {
        let tag = match level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => {
                failed += 1;
                "FAIL"
            }
        };
        let _ = writeln!(out, "{tag}  {what:<18} {detail}");
    }
    let _ = writeln!(out, "{} checks, {failed} failed", findings.len());
    Ok(if failed > 0 { 1 } else { 0 })
}

fn host_port(name: &str) -> &str {
    name.rsplit_once('/').map_or(name, |(hp, _)| hp)
}
