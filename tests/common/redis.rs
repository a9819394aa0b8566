//! A throwaway `redis-server` per test: free loopback port, fresh temp dir, optional project
//! config file, killed on drop.
//!
//! Never touches the shared Redis (6379) or the production ports (6380, 6381): every server
//! gets a port the OS just handed out, bound to 127.0.0.1 only.
//!
//! How a project config is loaded: Redis applies `dir` (a `chdir`) and `logfile` (an `open`)
//! while it parses, so a production `dir /var/lib/perps-redis` is a fatal error on a machine
//! without that directory, even though `--dir` on the command line comes later and would win.
//! The harness therefore starts Redis on a copy of the config in the temp dir with those two
//! directives commented out (every other line is kept verbatim), then sets both on the command
//! line: `redis-server COPY --port N --bind 127.0.0.1 --dir TMP --logfile TMP/redis.log
//! --daemonize no EXTRA...`. `extra` comes last, so a test can override any setting.
//!
//! The project config includes its ACL users from `/etc/perps-news/perps-redis-users.conf`;
//! the harness points that `include` at a copy of the shipped template
//! (`systemd/perps-redis-users.conf`) with known test passwords, connects as `admin` itself,
//! and hands out URLs of the application user (`url`), so the tests run against exactly the
//! production rules.

#![allow(dead_code)]

use std::fs::{self, File};
use std::io::ErrorKind;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// The binary; `REDIS_SERVER` overrides it.
fn redis_server_bin() -> String {
    std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_string())
}

/// How long a start or restart may take before the harness gives up.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `stop` waits for the process to exit after SHUTDOWN.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Connect and I/O timeouts of the harness's own connections.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Poll interval while waiting for the server.
const POLL: Duration = Duration::from_millis(20);
/// Ports this harness must never use: the shared Redis and the production instances.
const RESERVED_PORTS: [u16; 3] = [6379, 6380, 6381];
/// Fresh ports tried by `start` when another process wins the race for the port.
const START_ATTEMPTS: usize = 5;
/// Config directives that Redis applies while parsing and that the harness overrides.
const OVERRIDDEN: [&str; 2] = ["dir", "logfile"];
/// The ACL users file the project config includes (a template with CHANGE-ME passwords).
const USERS_FILE: &str = "perps-redis-users.conf";
/// The passwords the harness puts into its copy of the users file.
pub const TEST_ADMIN_PASSWORD: &str = "test-admin-password";
/// The application user's password in the harness's copy of the users file.
pub const TEST_APP_PASSWORD: &str = "test-app-password";
/// The application user of the project's ACL.
pub const APP_USER: &str = "perps-news";

/// A `redis-server` child process with its own port and temp dir.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    /// The project config file that was asked for (crate-relative), for messages.
    config: Option<String>,
    /// The temp copy that Redis actually loads.
    config_path: Option<PathBuf>,
    /// Everything after the config path, except the port (which `spawn` adds).
    args: Vec<String>,
    /// The config defines the project's ACL users: the harness connects as `admin`, and
    /// `url` names the application user.
    acl: bool,
    /// Dropped after `child` is killed (see `Drop`).
    tmp: tempfile::TempDir,
}

/// What became of one attempt to start the server.
enum Launch {
    Ready,
    /// The port was taken (a race with another process, or TIME_WAIT after a restart).
    PortInUse,
}

impl RedisServer {
    /// Starts `redis-server` on a free loopback port in a fresh temp dir, with the given project
    /// config file (path relative to the crate root, e.g. `"systemd/perps-redis.conf"`) or none
    /// (plain defaults plus `--save "" --appendonly no`), plus `extra` args. Waits until PING
    /// answers (at most ~5 s), else panics with the server's log.
    pub fn start(config: Option<&str>, extra: &[&str]) -> RedisServer {
        let tmp = tempfile::Builder::new()
            .prefix("redis-test-")
            .tempdir()
            .expect("create temp dir for redis-server");
        let dir = tmp.path().to_path_buf();
        let mut acl = false;
        let config_path = config.map(|rel| {
            let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
            let text = fs::read_to_string(&src)
                .unwrap_or_else(|e| panic!("read redis config {}: {e}", src.display()));
            let users = dir.join(USERS_FILE);
            let (text, has_users) = neutralize(&text, &users);
            if has_users {
                // The shipped template with known test passwords, loaded exactly as in
                // production.
                let template = src.with_file_name(USERS_FILE);
                let rules = fs::read_to_string(&template)
                    .unwrap_or_else(|e| panic!("read {}: {e}", template.display()))
                    .replace("CHANGE-ME-admin-password", TEST_ADMIN_PASSWORD)
                    .replace("CHANGE-ME-app-password", TEST_APP_PASSWORD);
                fs::write(&users, rules).expect("write users file copy");
                acl = true;
            }
            let copy = dir.join("redis.conf");
            fs::write(&copy, text).expect("write redis config copy");
            copy
        });
        let mut args: Vec<String> = vec![
            "--bind".into(),
            "127.0.0.1".into(),
            "--dir".into(),
            path_arg(&dir),
            "--logfile".into(),
            path_arg(&dir.join("redis.log")),
            "--daemonize".into(),
            "no".into(),
        ];
        if config.is_none() {
            args.extend(["--save", "", "--appendonly", "no"].map(String::from));
        }
        args.extend(extra.iter().map(std::string::ToString::to_string));

        let mut server = RedisServer {
            child: None,
            port: 0,
            config: config.map(String::from),
            config_path,
            args,
            acl,
            tmp,
        };
        for _ in 0..START_ATTEMPTS {
            server.port = free_port();
            if let Launch::Ready = server.launch(Instant::now() + START_TIMEOUT) {
                return server;
            }
        }
        server.fail(&format!(
            "could not bind a free port in {START_ATTEMPTS} attempts"
        ))
    }

    /// Waits (bounded) until DB `db` holds more than `min` keys: a run is busy.
    pub fn wait_for_keys(&self, db: u8, min: u64, what: &str) {
        let mut c = self.client(db);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let n: u64 = redis::cmd("DBSIZE").query(&mut c).unwrap_or(0);
            if n > min {
                return;
            }
            assert!(Instant::now() < deadline, "{what}");
            sleep(Duration::from_millis(5));
        }
    }

    /// Waits (bounded) until at least `n` pattern subscriptions exist.
    pub fn wait_subscribed(&self, n: i64) {
        let mut c = self.client(0);
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis::cmd("PUBSUB")
            .arg("NUMPAT")
            .query::<i64>(&mut c)
            .unwrap_or(0)
            < n
        {
            assert!(Instant::now() < deadline, "no subscriber appeared");
            sleep(Duration::from_millis(5));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL the application connects with: `redis://127.0.0.1:PORT/DB`, with the
    /// application user and its test password when the config defines users.
    pub fn url(&self, db: u8) -> String {
        if self.acl {
            format!(
                "redis://{APP_USER}:{TEST_APP_PASSWORD}@127.0.0.1:{}/{db}",
                self.port
            )
        } else {
            format!("redis://127.0.0.1:{}/{db}", self.port)
        }
    }

    /// The URL without credentials.
    pub fn plain_url(&self, db: u8) -> String {
        format!("redis://127.0.0.1:{}/{db}", self.port)
    }

    /// Whether the server runs the project's ACL users.
    pub fn has_acl(&self) -> bool {
        self.acl
    }

    /// The harness's own URL: the admin user when the config defines users.
    fn admin_url(&self, db: u8) -> String {
        if self.acl {
            format!(
                "redis://admin:{TEST_ADMIN_PASSWORD}@127.0.0.1:{}/{db}",
                self.port
            )
        } else {
            self.plain_url(db)
        }
    }

    /// A connected sync connection to database `db` (as `admin` when the config defines
    /// users), with 5 s read/write timeouts so a test never hangs on a dead server.
    pub fn client(&self, db: u8) -> redis::Connection {
        self.try_client(db)
            .unwrap_or_else(|e| self.fail(&format!("connect to {}: {e}", self.plain_url(db))))
    }

    /// The server's working directory (`dir`): AOF and RDB files live here, next to the
    /// harness's `redis.conf` copy and `redis.log`.
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// SIGKILL, then reap. No-op when the server is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Fails only if the process already exited; `wait` reaps it either way.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SHUTDOWN (NOSAVE unless AOF is on: then a plain SHUTDOWN, exactly what systemd's SIGTERM
    /// does), then waits for the process to exit. Panics with the log if it does not within 5 s.
    /// No-op when the server is not running.
    pub fn stop(&mut self) {
        if self.child.is_none() {
            return;
        }
        if let Ok(mut con) = self.try_client(0) {
            let aof = config_get(&mut con, "appendonly").is_ok_and(|v| v == "yes");
            let mut cmd = redis::cmd("SHUTDOWN");
            if !aof {
                cmd.arg("NOSAVE");
            }
            // The server closes the connection instead of replying: an error is expected.
            let _ = cmd.query::<redis::Value>(&mut con);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while self.running() {
            if Instant::now() >= deadline {
                self.kill();
                self.fail("did not exit within 5 s of SHUTDOWN (killed)");
            }
            sleep(POLL);
        }
    }

    /// Whether the process is still alive; reaps it (and forgets it) once it has exited.
    fn running(&mut self) -> bool {
        let Some(child) = self.child.as_mut() else {
            return false;
        };
        match child.try_wait().expect("poll redis-server") {
            None => true,
            Some(_) => {
                self.child = None;
                false
            }
        }
    }

    /// Starts the server again on the SAME port, dir and config (for reconnect and persistence
    /// tests) and waits for PING. A server that is still running is stopped first. Retries for
    /// up to ~5 s while the port is still in use (TIME_WAIT, a slow exit).
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.launch(deadline) {
                Launch::Ready => return,
                Launch::PortInUse if Instant::now() < deadline => sleep(Duration::from_millis(100)),
                Launch::PortInUse => self.fail("restart: port still in use after 5 s"),
            }
        }
    }

    /// The server's log file, followed by anything it printed to stdout/stderr (where config
    /// file errors go, before the log file is opened).
    pub fn log(&self) -> String {
        let mut log = fs::read_to_string(self.dir().join("redis.log")).unwrap_or_default();
        let console = fs::read_to_string(self.dir().join("console.log")).unwrap_or_default();
        if !console.trim().is_empty() {
            log.push_str("\n--- stdout/stderr ---\n");
            log.push_str(&console);
        }
        log
    }

    /// Byte lengths of `redis.log` and `console.log`, to read only what comes after.
    fn output_lengths(&self) -> (usize, usize) {
        let len = |name| fs::read(self.dir().join(name)).map_or(0, |b| b.len());
        (len("redis.log"), len("console.log"))
    }

    /// What the server wrote to `redis.log` and `console.log` after `mark`.
    fn output_since(&self, mark: (usize, usize)) -> String {
        let since = |name, from: usize| {
            let bytes = fs::read(self.dir().join(name)).unwrap_or_default();
            String::from_utf8_lossy(bytes.get(from..).unwrap_or_default()).into_owned()
        };
        since("redis.log", mark.0) + &since("console.log", mark.1)
    }

    /// Connects without panicking.
    fn try_client(&self, db: u8) -> redis::RedisResult<redis::Connection> {
        let con =
            redis::Client::open(self.admin_url(db))?.get_connection_with_timeout(IO_TIMEOUT)?;
        con.set_read_timeout(Some(IO_TIMEOUT))?;
        con.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(con)
    }

    /// Spawns redis-server on `self.port` and waits until it answers PING.
    fn launch(&mut self, deadline: Instant) -> Launch {
        assert!(self.child.is_none(), "redis-server is already running");
        // Only what this launch logs decides whether it lost a race for the port.
        let mark = self.output_lengths();
        let console = File::options()
            .create(true)
            .append(true)
            .open(self.dir().join("console.log"))
            .expect("open console.log");
        let mut cmd = Command::new(redis_server_bin());
        if let Some(path) = &self.config_path {
            cmd.arg(path);
        }
        cmd.args(["--port", &self.port.to_string()])
            .args(&self.args)
            // `supervised systemd` must not notify a systemd that happens to run the tests.
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(console.try_clone().expect("dup console.log"))
            .stderr(console);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {} (is it installed?): {e}", redis_server_bin()));
        self.child = Some(child);

        loop {
            if !self.running() {
                if self.output_since(mark).contains("Address already in use") {
                    return Launch::PortInUse;
                }
                self.fail("exited during startup");
            }
            if self.try_client(0).is_ok_and(|mut con| {
                redis::cmd("PING")
                    .query::<String>(&mut con)
                    .is_ok_and(|r| r == "PONG")
            }) {
                return Launch::Ready;
            }
            if Instant::now() >= deadline {
                self.kill();
                self.fail("did not answer PING within 5 s (killed)");
            }
            sleep(POLL);
        }
    }

    /// Panics with `what` and the tail of the server log.
    fn fail(&self, what: &str) -> ! {
        let config = self.config.as_deref().unwrap_or("<no config>");
        panic!(
            "redis-server (port {}, config {config}, dir {}): {what}\n--- log tail ---\n{}",
            self.port,
            self.dir().display(),
            tail(&self.log(), 40)
        )
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // Never leave a server running; the temp dir is removed afterwards (field drop order).
        self.kill();
    }
}

/// A free TCP port on 127.0.0.1, never one of 6379-6381. The port is released before this
/// returns, so another process can grab it: `RedisServer::start` retries on a bind failure.
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        if !RESERVED_PORTS.contains(&port) {
            return port;
        }
    }
    panic!("no free port outside {RESERVED_PORTS:?} in 100 tries")
}

/// `CONFIG GET name` as a single string.
pub fn config_get(con: &mut redis::Connection, name: &str) -> redis::RedisResult<String> {
    let pair: Vec<String> = redis::cmd("CONFIG").arg("GET").arg(name).query(con)?;
    match pair.as_slice() {
        [_, value] => Ok(value.clone()),
        _ => Err(redis::RedisError::from(std::io::Error::new(
            ErrorKind::InvalidData,
            format!("CONFIG GET {name}: unexpected reply {pair:?}"),
        ))),
    }
}

/// The config text with the directives the harness overrides commented out, and an
/// `include` of the users file pointed at `users` (the harness's copy); says whether there
/// was one.
fn neutralize(text: &str, users: &Path) -> (String, bool) {
    let mut has_users = false;
    let out = text
        .lines()
        .map(|line| {
            let mut words = line.split_whitespace();
            let directive = words.next().unwrap_or("");
            if OVERRIDDEN.iter().any(|d| directive.eq_ignore_ascii_case(d)) {
                format!("# [tests/common/redis.rs: set on the command line] {line}\n")
            } else if directive.eq_ignore_ascii_case("include")
                && words.next().is_some_and(|p| p.ends_with(USERS_FILE))
            {
                has_users = true;
                format!(
                    "# [tests/common/redis.rs: the template with test passwords] {line}\ninclude {}\n",
                    path_arg(users)
                )
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    (out, has_users)
}

fn path_arg(path: &Path) -> String {
    path.to_str()
        .unwrap_or_else(|| panic!("non-UTF-8 temp path {}", path.display()))
        .to_string()
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
