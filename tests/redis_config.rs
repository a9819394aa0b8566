//! The two Redis configs under `systemd/`, checked against a real `redis-server`.
//!
//! Why there are two instances: Redis applies `maxmemory-policy` per INSTANCE, not per
//! database. The last two tests show what that means: on an LRU instance, cache writes in DB 1
//! evict the job queue in DB 2; on the main config (noeviction) the same writes fail with OOM
//! and the queue stays intact.

mod common;

use common::redis::{RedisServer, config_get};
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

const MAIN: &str = "systemd/perps-redis.conf";
const CACHE: &str = "systemd/perps-redis-cache.conf";

/// `CONFIG GET name`, panicking with the server log on error.
fn config(server: &RedisServer, con: &mut redis::Connection, name: &str) -> String {
    config_get(con, name).unwrap_or_else(|e| panic!("CONFIG GET {name}: {e}\n{}", server.log()))
}

/// One `field:value` of `INFO section`.
fn info(con: &mut redis::Connection, section: &str, field: &str) -> String {
    let text: String = redis::cmd("INFO").arg(section).query(con).expect("INFO");
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("INFO {section} has no {field}:\n{text}"))
        .trim()
        .to_string()
}

/// Asserts that the server refuses `cmd` as a command (ACL NOPERM, or "unknown command" had it
/// been renamed away), not merely failed it for some other reason.
fn assert_refused(con: &mut redis::Connection, cmd: &redis::Cmd, name: &str) {
    match cmd.query::<redis::Value>(con) {
        Ok(v) => panic!("{name} was accepted ({v:?}); it must be disabled"),
        Err(e) => {
            let text = e.to_string();
            let refused = e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm)
                || text.contains("unknown command");
            assert!(refused, "{name} failed, but not as a refused command: {e}");
        }
    }
}

/// The first `directive` line of a config file, with its arguments.
fn directive(config: &str, name: &str) -> Option<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(config);
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .map(str::trim)
        .find(|l| l.split_whitespace().next() == Some(name))
        .map(|l| l[name.len()..].trim().to_string())
}

#[test]
fn main_config_is_durable_and_guarded() {
    // Production values in the file itself (the harness overrides port, bind and dir).
    assert_eq!(directive(MAIN, "port").as_deref(), Some("6380"));
    assert_eq!(directive(MAIN, "bind").as_deref(), Some("127.0.0.1 -::1"));
    assert_eq!(
        directive(MAIN, "dir").as_deref(),
        Some("/var/lib/perps-redis")
    );

    let server = RedisServer::start(Some(MAIN), &[]);
    let mut con = server.client(2);
    let c = &mut con;

    assert_eq!(config(&server, c, "maxmemory-policy"), "noeviction");
    assert_eq!(config(&server, c, "appendonly"), "yes");
    assert_eq!(config(&server, c, "appendfsync"), "everysec");
    assert_eq!(config(&server, c, "protected-mode"), "yes");
    assert_eq!(config(&server, c, "databases"), "16");
    assert_eq!(config(&server, c, "maxmemory"), (4u64 << 30).to_string());
    // The command-line overrides won over the file.
    assert_eq!(config(&server, c, "port"), server.port().to_string());
    assert_eq!(config(&server, c, "bind"), "127.0.0.1");
    let dir = config(&server, c, "dir");
    assert_eq!(
        Path::new(&dir).canonicalize().unwrap(),
        server.dir().canonicalize().unwrap()
    );

    let _: () = redis::cmd("SET")
        .arg("job:1")
        .arg("queued")
        .query(c)
        .unwrap();
    assert_refused(c, &redis::cmd("FLUSHALL"), "FLUSHALL");
    assert_refused(c, &redis::cmd("FLUSHDB"), "FLUSHDB");
    assert_refused(c, redis::cmd("KEYS").arg("*"), "KEYS");
    // Nor can a client grant them back at runtime.
    assert_refused(
        c,
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg("default")
            .arg("+flushall"),
        "ACL SETUSER",
    );
    let job: String = redis::cmd("GET").arg("job:1").query(c).unwrap();
    assert_eq!(job, "queued");
    // SCAN, the replacement for KEYS, works.
    let (_cursor, keys): (String, Vec<String>) = redis::cmd("SCAN")
        .arg(0)
        .arg("COUNT")
        .arg(100)
        .query(c)
        .unwrap();
    assert_eq!(keys, ["job:1"]);
}

#[test]
fn cache_config_is_an_evicting_cache() {
    assert_eq!(directive(CACHE, "port").as_deref(), Some("6381"));
    assert_eq!(directive(CACHE, "bind").as_deref(), Some("127.0.0.1 -::1"));

    let server = RedisServer::start(Some(CACHE), &[]);
    let mut con = server.client(0);
    let c = &mut con;

    assert_eq!(config(&server, c, "maxmemory-policy"), "allkeys-lru");
    assert_eq!(config(&server, c, "maxmemory"), "268435456");
    assert_eq!(config(&server, c, "appendonly"), "no");
    assert_eq!(config(&server, c, "save"), "");
    assert_eq!(config(&server, c, "protected-mode"), "yes");

    // Everything here is disposable: flushing is allowed.
    let _: () = redis::cmd("SET").arg("emb:1").arg("x").query(c).unwrap();
    let _: () = redis::cmd("FLUSHALL").query(c).unwrap();
    let n: u64 = redis::cmd("DBSIZE").query(c).unwrap();
    assert_eq!(n, 0);
}

#[test]
fn main_config_aof_survives_sigkill() {
    const N: usize = 1_000;
    const QUEUE: &str = "bull:news:wait";
    let mut server = RedisServer::start(Some(MAIN), &[]);
    let mut con = server.client(2);

    let mut pipe = redis::pipe();
    for i in 0..N {
        pipe.cmd("RPUSH")
            .arg(QUEUE)
            .arg(format!("job-{i}"))
            .ignore();
    }
    pipe.exec(&mut con).unwrap();
    let written = Instant::now();

    // appendfsync everysec: what was acknowledged more than a second ago has been written and
    // fsynced. Wait out that second, then until no write or fsync is pending.
    let deadline = written + Duration::from_secs(4);
    loop {
        let settled = written.elapsed() >= Duration::from_millis(1_100)
            && info(&mut con, "persistence", "aof_buffer_length") == "0"
            && info(&mut con, "persistence", "aof_pending_bio_fsync") == "0";
        if settled {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "AOF never settled\n{}",
            server.log()
        );
        sleep(Duration::from_millis(50));
    }
    assert_eq!(info(&mut con, "persistence", "aof_last_write_status"), "ok");
    drop(con);

    server.kill(); // SIGKILL: no SHUTDOWN, no final AOF flush, no RDB save
    server.restart();

    let mut con = server.client(2);
    let len: usize = redis::cmd("LLEN").arg(QUEUE).query(&mut con).unwrap();
    assert_eq!(len, N, "jobs lost across SIGKILL\n{}", server.log());
    let jobs: Vec<String> = redis::cmd("LRANGE")
        .arg(QUEUE)
        .arg(0)
        .arg(-1)
        .query(&mut con)
        .unwrap();
    let expected: Vec<String> = (0..N).map(|i| format!("job-{i}")).collect();
    assert_eq!(jobs, expected);
}

/// 100 BullMQ-style job hashes in DB 2.
fn enqueue_jobs(con: &mut redis::Connection) {
    let mut pipe = redis::pipe();
    for i in 0..100 {
        pipe.cmd("HSET")
            .arg(format!("bull:news:{i}"))
            .arg("name")
            .arg("embed")
            .arg("data")
            .arg(format!(
                "{{\"article\":{i},\"pad\":\"{}\"}}",
                "x".repeat(200)
            ))
            .ignore();
    }
    pipe.exec(con).unwrap();
}

/// The job hashes of `enqueue_jobs` still present and intact in DB 2.
fn intact_jobs(con: &mut redis::Connection) -> usize {
    (0..100)
        .filter(|i| {
            let data: Option<String> = redis::cmd("HGET")
                .arg(format!("bull:news:{i}"))
                .arg("data")
                .query(con)
                .unwrap();
            data.is_some_and(|d| d.starts_with(&format!("{{\"article\":{i},")))
        })
        .count()
}

/// 1 KiB cache values; 4096 of them are twice the 2 MB limit.
const CACHE_WRITES: usize = 4096;
fn cache_value() -> String {
    "c".repeat(1024)
}

#[test]
fn lru_instance_evicts_the_queue_too() {
    // One instance, LRU: the configuration the split into two instances avoids.
    let server = RedisServer::start(
        None,
        &["--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru"],
    );
    let mut queue = server.client(2);
    let mut cache = server.client(1);
    enqueue_jobs(&mut queue);
    assert_eq!(intact_jobs(&mut queue), 100);
    // Real queued jobs sit idle while the cache is busy. Redis's LRU clock ticks once a second,
    // so wait (polling, bounded) until the jobs are a tick older than anything written next;
    // within one tick all keys tie and which ones go is up to the sampling order.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let idle: u64 = redis::cmd("OBJECT")
            .arg("IDLETIME")
            .arg("bull:news:99")
            .query(&mut queue)
            .unwrap();
        if idle >= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "LRU clock did not advance in 3 s"
        );
        sleep(Duration::from_millis(50));
    }

    let value = cache_value();
    for chunk in (0..CACHE_WRITES).collect::<Vec<_>>().chunks(256) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.cmd("SET")
                .arg(format!("cache:{i}"))
                .arg(&value)
                .ignore();
        }
        // allkeys-lru never refuses a write: it makes room by evicting, from ANY database.
        pipe.exec(&mut cache).unwrap();
    }

    let left = intact_jobs(&mut queue);
    let evicted: u64 = info(&mut queue, "stats", "evicted_keys").parse().unwrap();
    assert!(evicted > 0, "nothing was evicted\n{}", server.log());
    assert!(
        left < 100,
        "expected the cache writes in DB 1 to evict queued jobs in DB 2, but all 100 survived \
         ({evicted} keys evicted)"
    );
    eprintln!("allkeys-lru: {left}/100 queued jobs survived, {evicted} keys evicted");
}

#[test]
fn main_config_refuses_writes_instead_of_evicting() {
    let server = RedisServer::start(Some(MAIN), &["--maxmemory", "2mb"]);
    let mut queue = server.client(2);
    let mut cache = server.client(1);
    enqueue_jobs(&mut queue);

    let value = cache_value();
    let oom = (0..CACHE_WRITES).find_map(|i| {
        redis::cmd("SET")
            .arg(format!("cache:{i}"))
            .arg(&value)
            .query::<()>(&mut cache)
            .err()
            .map(|e| (i, e))
    });
    let (accepted, err) = oom.unwrap_or_else(|| {
        panic!(
            "{CACHE_WRITES} KiB written past a 2 MB limit without an error\n{}",
            server.log()
        )
    });
    assert_eq!(err.code(), Some("OOM"), "expected an OOM error, got {err}");
    assert!(accepted > 0, "the very first write failed: {err}");

    assert_eq!(
        intact_jobs(&mut queue),
        100,
        "noeviction must keep every queued job"
    );
    assert_eq!(info(&mut queue, "stats", "evicted_keys"), "0");
    // At the limit reads still work (intact_jobs above), and so do deletes: how the app recovers.
    let _: () = redis::cmd("DEL").arg("cache:0").query(&mut cache).unwrap();
}
