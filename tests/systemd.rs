//! The systemd units under `systemd/`.
//!
//! `systemd-analyze verify` must accept all five units without printing a single line (it exits
//! 0 even on warnings, so any output is a failure), and the requirements operators rely on
//! (restart policy, Redis dependencies, user, hardening, the 5-minute timer, which config each
//! Redis instance runs) are checked in the unit text.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const WORKER: &str = "perps-news-worker.service";
const BATCH: &str = "perps-news-batch.service";
const TIMER: &str = "perps-news-batch.timer";
const REDIS: &str = "perps-redis.service";
const CACHE: &str = "perps-redis-cache.service";
const UNITS: [&str; 5] = [REDIS, CACHE, WORKER, BATCH, TIMER];

/// Where the units install the binary; the verify test points this at the built one.
const INSTALLED_BIN: &str = "/usr/local/bin/perps-news";
/// The redis-server the units run; replaced when this host has it elsewhere.
const INSTALLED_REDIS: &str = "/usr/bin/redis-server";
const ENV_FILE: &str = "/etc/perps-news/perps-news.env";

fn systemd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd")
}

fn read(name: &str) -> String {
    let path = systemd_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `name` on `PATH`, like a shell would find it.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

/// A `systemd-analyze` command with no `SYSTEMD_*` variable of the caller's environment
/// (`SYSTEMD_LOG_LEVEL` would hide warnings, `SYSTEMD_UNIT_PATH` would change what is loaded).
fn systemd_analyze() -> Command {
    let exe = on_path("systemd-analyze")
        .or_else(|| Some(PathBuf::from("/usr/bin/systemd-analyze")).filter(|p| is_executable(p)))
        .expect("systemd-analyze not found (PATH, /usr/bin): install systemd to run this test");
    let mut cmd = Command::new(exe);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SYSTEMD_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

fn show(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// An absolute path as the first word of an `ExecStart=` line: quoted, with `%` (specifiers)
/// and the quoting characters escaped.
fn exec_word(path: &Path) -> String {
    let text = path.to_str().expect("UTF-8 path");
    let escaped = text
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%");
    format!("\"{escaped}\"")
}

/// `text` with the executable `from` of its `ExecStart=` lines replaced by `to`; panics if no
/// line was changed, so a renamed binary cannot make the test verify something else.
fn replace_exec(unit: &str, text: &str, from: &str, to: &str) -> String {
    let prefix = format!("ExecStart={from} ");
    let mut changed = false;
    let lines: Vec<String> = text
        .lines()
        .map(|line| match line.strip_prefix(&prefix) {
            Some(args) => {
                changed = true;
                format!("ExecStart={to} {args}")
            }
            None => line.to_string(),
        })
        .collect();
    assert!(
        changed,
        "{unit}: no `{prefix}...` line to point at this host's binary"
    );
    lines.join("\n") + "\n"
}

#[test]
fn systemd_analyze_verify_prints_nothing() {
    let bin = exec_word(Path::new(env!("CARGO_BIN_EXE_perps-news")));
    let redis = if is_executable(Path::new(INSTALLED_REDIS)) {
        INSTALLED_REDIS.to_string()
    } else {
        let found = on_path("redis-server")
            .expect("redis-server not found (/usr/bin, PATH): verify checks ExecStart binaries");
        exec_word(&found)
    };

    // The units reference each other (Requires=, Wants=, Unit=): verify resolves them from the
    // directory of the files given, so all five go into one directory. EnvironmentFile= and
    // the /etc/perps-news configs are not read by verify and stay as installed.
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for unit in UNITS {
        let mut text = read(unit);
        if text.contains(INSTALLED_BIN) {
            text = replace_exec(unit, &text, INSTALLED_BIN, &bin);
        }
        if text.contains(INSTALLED_REDIS) && redis != INSTALLED_REDIS {
            text = replace_exec(unit, &text, INSTALLED_REDIS, &redis);
        }
        let path = dir.path().join(unit);
        std::fs::write(&path, text).unwrap();
        paths.push(path);
    }

    let out = systemd_analyze()
        .args(["verify", "--man=no", "--recursive-errors=no"])
        .args(&paths)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "systemd-analyze verify must succeed without printing anything\n{}",
        show(&out)
    );
}

/// One unit file as `(section, key, value)` triples in file order.
struct Unit {
    name: &'static str,
    entries: Vec<(String, String, String)>,
}

impl Unit {
    fn load(name: &'static str) -> Self {
        let mut section = String::new();
        let mut entries = Vec::new();
        for (n, raw) in read(name).lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            assert!(
                !line.ends_with('\\'),
                "{name}:{}: continuation lines not supported",
                n + 1
            );
            if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = s.to_string();
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("{name}:{}: not `Key=value`: {raw}", n + 1));
            assert!(
                !section.is_empty(),
                "{name}:{}: entry before any section",
                n + 1
            );
            entries.push((
                section.clone(),
                key.trim().to_string(),
                value.trim().to_string(),
            ));
        }
        Self { name, entries }
    }

    /// Every value of `section`/`key`, in order.
    fn all(&self, section: &str, key: &str) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|(s, k, _)| s == section && k == key)
            .map(|(_, _, v)| v.as_str())
            .collect()
    }

    /// The effective (last) value of `section`/`key`.
    fn get(&self, section: &str, key: &str) -> &str {
        let all = self.all(section, key);
        all.last()
            .unwrap_or_else(|| panic!("{}: no {key}= in [{section}]", self.name))
    }

    /// The space-separated items of every `section`/`key` line (`After=a b`, `After=c`).
    fn items(&self, section: &str, key: &str) -> BTreeSet<&str> {
        self.all(section, key)
            .into_iter()
            .flat_map(str::split_whitespace)
            .collect()
    }

    fn assert_eq(&self, section: &str, key: &str, want: &str) {
        assert_eq!(
            self.get(section, key),
            want,
            "{}: [{section}] {key}=",
            self.name
        );
    }

    fn assert_has(&self, section: &str, key: &str, item: &str) {
        assert!(
            self.items(section, key).contains(item),
            "{}: [{section}] {key}= must include {item}",
            self.name
        );
    }
}

/// Hardening every service has.
fn assert_hardened(u: &Unit) {
    for (key, want) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("RestrictRealtime", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallArchitectures", "native"),
        ("CapabilityBoundingSet", ""),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
    ] {
        u.assert_eq("Service", key, want);
    }
    assert!(
        u.all("Service", "ReadWritePaths").is_empty(),
        "{}: ReadWritePaths=",
        u.name
    );
    let user = u.get("Service", "User");
    assert!(
        !user.is_empty() && user != "root",
        "{}: User={user}",
        u.name
    );
    assert!(
        u.all("Service", "DynamicUser").iter().all(|v| *v == "no"),
        "{}",
        u.name
    );
}

/// What the worker and the batch share: Redis dependencies, environment, user, state dir.
fn assert_news_service(u: &Unit) {
    u.assert_has("Unit", "Requires", REDIS);
    u.assert_has("Unit", "After", REDIS);
    u.assert_has("Unit", "Wants", CACHE);
    u.assert_has("Unit", "After", CACHE);
    u.assert_eq("Service", "EnvironmentFile", ENV_FILE);
    u.assert_eq("Service", "User", "perps-news");
    u.assert_eq("Service", "Group", "perps-news");
    u.assert_eq("Service", "StateDirectory", "perps-news");
    u.assert_eq("Service", "WorkingDirectory", "/var/lib/perps-news");
    u.assert_eq("Service", "KillSignal", "SIGTERM");
    u.assert_eq("Service", "TimeoutStopSec", "60");
    assert_hardened(u);
}

#[test]
fn worker_unit() {
    let u = Unit::load(WORKER);
    // The worker and the timer's runs cluster one Redis state: the same pipeline file.
    u.assert_eq(
        "Service",
        "ExecStart",
        &format!("{INSTALLED_BIN} worker --pipeline /etc/perps-news/production.toml"),
    );
    u.assert_eq("Service", "Restart", "on-failure");
    u.assert_eq("Install", "WantedBy", "multi-user.target");
    // A job cannot take the host down with it.
    u.assert_eq("Service", "MemoryMax", "2G");
    u.assert_eq("Service", "TasksMax", "256");
    assert_news_service(&u);
}

#[test]
fn batch_unit_and_timer() {
    let u = Unit::load(BATCH);
    u.assert_eq("Service", "Type", "oneshot");
    u.assert_eq(
        "Service",
        "ExecStart",
        &format!("{INSTALLED_BIN} run --quiet --pipeline /etc/perps-news/production.toml"),
    );
    assert_news_service(&u);
    // The timer starts it; an [Install] section would let it be enabled on its own.
    assert!(
        u.entries.iter().all(|(s, _, _)| s != "Install"),
        "{BATCH}: [Install]"
    );

    let t = Unit::load(TIMER);
    t.assert_eq("Timer", "Persistent", "true");
    t.assert_eq("Timer", "Unit", BATCH);
    t.assert_eq("Install", "WantedBy", "timers.target");
    let on_calendar = t.get("Timer", "OnCalendar");
    let out = systemd_analyze()
        .args(["calendar", on_calendar])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "OnCalendar={on_calendar}\n{}",
        show(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let normalized = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Normalized form:"))
        .unwrap_or_else(|| panic!("no normalized form\n{}", show(&out)));
    assert_eq!(
        normalized.trim(),
        "*-*-* *:00/5:00",
        "OnCalendar={on_calendar}: every 5 minutes"
    );
}

/// The `redis-server CONFIG ...` of a Redis unit; checks what both instances share.
fn redis_unit(name: &'static str, config: &str) -> Unit {
    let u = Unit::load(name);
    u.assert_eq(
        "Service",
        "ExecStart",
        &format!("{INSTALLED_REDIS} /etc/perps-news/{config} --daemonize no"),
    );
    assert!(
        systemd_dir().join(config).is_file(),
        "{name}: systemd/{config} missing"
    );
    u.assert_eq("Service", "Type", "notify");
    u.assert_eq("Service", "Restart", "always");
    u.assert_eq("Service", "User", "perps-redis");
    u.assert_eq("Service", "Group", "perps-redis");
    u.assert_eq("Service", "LimitNOFILE", "65535");
    u.assert_eq("Install", "WantedBy", "multi-user.target");
    assert_hardened(&u);
    u
}

/// The first `name` directive of a Redis config under `systemd/`.
fn redis_directive(config: &str, name: &str) -> Option<String> {
    read(config)
        .lines()
        .map(str::trim)
        .find(|l| l.split_whitespace().next() == Some(name))
        .map(|l| l[name.len()..].trim().to_string())
}

#[test]
fn redis_units() {
    let main = redis_unit(REDIS, "perps-redis.conf");
    // The config's `dir` must be the directory systemd creates for the service.
    let state = main.get("Service", "StateDirectory");
    assert_eq!(
        redis_directive("perps-redis.conf", "dir"),
        Some(format!("/var/lib/{state}")),
        "perps-redis.conf `dir` vs {REDIS} StateDirectory={state}"
    );

    // Users come from a separate file (the passwords stay out of the world-readable
    // config); the shipped one is a template with CHANGE-ME passwords.
    assert_eq!(
        redis_directive("perps-redis.conf", "include").as_deref(),
        Some("/etc/perps-news/perps-redis-users.conf")
    );
    let users = read("perps-redis-users.conf");
    for user in [
        "default off",
        "admin on >CHANGE-ME-admin-password",
        "perps-news on >CHANGE-ME-app-password",
    ] {
        assert!(
            users.contains(&format!("user {user}")),
            "perps-redis-users.conf: user {user}"
        );
    }

    let cache = redis_unit(CACHE, "perps-redis-cache.conf");
    assert_eq!(redis_directive("perps-redis-cache.conf", "dir"), None);
    assert!(
        cache.all("Service", "StateDirectory").is_empty(),
        "{CACHE}: persists nothing"
    );
    // Its working directory (where a stray SAVE would put dump.rdb) is its own runtime dir.
    let runtime = cache.get("Service", "RuntimeDirectory");
    cache.assert_eq("Service", "WorkingDirectory", &format!("/run/{runtime}"));
}

#[test]
fn example_environment_file() {
    let text = read("perps-news.env");
    let mut vars = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("perps-news.env:{}: {line}", n + 1));
        let ident = !key.is_empty()
            && !key.starts_with(|c: char| c.is_ascii_digit())
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        assert!(ident, "perps-news.env:{}: bad variable name {key:?}", n + 1);
        vars.push((key, value));
    }
    let value = |key: &str| {
        vars.iter()
            .find(|(k, _)| *k == key)
            .map_or_else(|| panic!("perps-news.env: no {key}="), |(_, v)| *v)
    };
    for (key, want) in [
        ("REDIS_HOST", "127.0.0.1"),
        ("REDIS_PORT", "6380"),
        ("REDIS_USERNAME", "perps-news"),
        ("REDIS_PASSWORD", "replace-me"),
        ("REDIS_CACHE_URL", "redis://127.0.0.1:6381/1"),
        ("REDIS_CACHE_DB", "1"),
        ("REDIS_CACHE_PREFIX", "perps:cache:"),
        ("REDIS_QUEUE_DB", "2"),
        ("CLUSTER_BATCH_SIZE", "20"),
        ("OPENROUTER_CONCURRENCY", "8"),
        ("NEWS_WORKER_CONCURRENCY", "10"),
        ("RUST_LOG", "info"),
    ] {
        assert_eq!(value(key), want, "perps-news.env: {key}=");
    }
    let key = value("OPENROUTER_API_KEY");
    assert!(
        !key.starts_with("sk-"),
        "perps-news.env: OPENROUTER_API_KEY must be a placeholder"
    );
}
