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

/// `ACL DRYRUN user cmd...`: Ok when the user may run it, else the server's reason.
fn dryrun(con: &mut redis::Connection, user: &str, args: &[&str]) -> Result<(), String> {
    let reply: redis::Value = redis::cmd("ACL")
        .arg("DRYRUN")
        .arg(user)
        .arg(args)
        .query(con)
        .map_err(|e| e.to_string())?;
    match reply {
        redis::Value::Okay => Ok(()),
        redis::Value::SimpleString(s) if s == "OK" => Ok(()),
        other => Err(format!("{other:?}")),
    }
}

/// What the engine (`run --redis`, worker, serve, stats, doctor, subscribe) and BullMQ (Node
/// producers and workers, the Rust worker) send, with representative keys and channels.
const APP_NEEDS: &[&[&str]] = &[
    &["PING"],
    &["SELECT", "2"],
    &["CLIENT", "SETNAME", "bull:perps-news"],
    &["INFO", "server"],
    &["CONFIG", "GET", "maxmemory-policy"],
    &["DBSIZE"],
    &["SCAN", "0", "TYPE", "stream", "COUNT", "1000"],
    // Story state, lock, records, last run.
    &["GET", "perps:state"],
    &["MGET", "perps:state", "perps:state:version"],
    &["HGETALL", "perps:state:stories"],
    &["HSET", "perps:state:stories", "s1", "{}"],
    &["HDEL", "perps:state:stories", "s1"],
    &["LRANGE", "perps:state:terms:log", "0", "-1"],
    &["LRANGE", "perps:state:changes", "0", "-1"],
    &["HMGET", "perps:state:stories", "s1", "s2"],
    &["LTRIM", "perps:state:changes", "-256", "-1"],
    &["RPUSH", "perps:state:terms:log", "x"],
    &["SET", "perps:state:terms", "x"],
    &["DEL", "perps:state:terms:log"],
    &["SET", "perps:state:lock", "t", "NX", "PX", "30000"],
    &["PTTL", "perps:state:lock"],
    &[
        "EVALSHA",
        "0123456789012345678901234567890123456789",
        "1",
        "perps:state:lock",
        "t",
    ],
    &[
        "EVAL",
        "return 1",
        "5",
        "perps:state:lock",
        "perps:state",
        "perps:state:version",
        "perps:stories",
        "perps:runs:last",
    ],
    &["SCRIPT", "LOAD", "return 1"],
    &["INCR", "perps:state:version"],
    &["SET", "perps:story:s1", "{}"],
    &["DEL", "perps:story:s1"],
    &["ZADD", "perps:stories", "1", "s1"],
    &["ZREM", "perps:stories", "s1"],
    &["ZCARD", "perps:stories"],
    &["ZREVRANGE", "perps:stories", "0", "49"],
    // The cache when it shares this instance.
    &["MGET", "perps:cache:emb:m:1", "perps:cache:emb:m:2"],
    &["SET", "perps:cache:emb:m:1", "v", "EX", "604800"],
    &["INCRBY", "perps:cache:stats:hits", "3"],
    &["EXPIRE", "perps:cache:stats:hits", "604800"],
    // The bus: pub/sub, streams, subscribers.
    &["PUBLISH", "news:clustered", "{}"],
    &["PUBLISH", "news:story", "{}"],
    &["PUBLISH", "circuit:breaker:open", "{}"],
    &[
        "XADD",
        "news:clustered",
        "MAXLEN",
        "~",
        "10000",
        "*",
        "payload",
        "{}",
    ],
    &[
        "XADD",
        "circuit:breaker:open",
        "MAXLEN",
        "~",
        "10000",
        "*",
        "payload",
        "{}",
    ],
    &["XRANGE", "news:story", "-", "+"],
    &["PSUBSCRIBE", "news:*"],
    &["PSUBSCRIBE", "news:clustered"],
    &["PSUBSCRIBE", "news:story"],
    // BullMQ.
    &[
        "EVALSHA",
        "0123456789012345678901234567890123456789",
        "2",
        "bull:clustering:wait",
        "bull:clustering:meta",
    ],
    &["BZPOPMIN", "bull:clustering:marker", "5"],
    &["HGETALL", "bull:clustering:1"],
    &["HSET", "bull:clustering:1", "progress", "1"],
    &["HGET", "bull:clustering:meta", "paused"],
    &[
        "XADD",
        "bull:clustering:events",
        "MAXLEN",
        "~",
        "10000",
        "*",
        "event",
        "added",
    ],
    &[
        "XREAD",
        "BLOCK",
        "1000",
        "STREAMS",
        "bull:clustering:events",
        "$",
    ],
    &["LLEN", "bull:clustering:wait"],
    &["LRANGE", "bull:clustering:wait", "0", "-1"],
    &["ZRANGE", "bull:clustering:completed", "0", "-1"],
    &["ZCARD", "bull:clustering:prioritized"],
    &["EXISTS", "bull:clustering:meta"],
    &["TYPE", "bull:clustering:id"],
    &["INCR", "bull:clustering:id"],
    &["MULTI"],
    &["EXEC"],
];

/// What nobody running as the application may do.
const APP_REFUSED: &[&[&str]] = &[
    &["FLUSHALL"],
    &["FLUSHDB"],
    &["KEYS", "*"],
    &["SWAPDB", "0", "9"],
    &["MOVE", "perps:state", "9"],
    &["REPLICAOF", "127.0.0.1", "1"],
    &["SLAVEOF", "127.0.0.1", "1"],
    &["SHUTDOWN"],
    &["DEBUG", "SLEEP", "0"],
    &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"],
    &["CONFIG", "SET", "appendonly", "no"],
    &["CONFIG", "SET", "requirepass", "x"],
    &["CONFIG", "REWRITE"],
    &["ACL", "SETUSER", "perps-news", "+@all"],
    &["ACL", "LIST"],
    &["BGREWRITEAOF"],
    &["SAVE"],
    &["MONITOR"],
    &["MODULE", "LOAD", "/tmp/x.so"],
    &["MIGRATE", "127.0.0.1", "1", "perps:state", "0", "1000"],
    &["SCRIPT", "FLUSH"],
    &["CLIENT", "KILL", "127.0.0.1:1"],
    &["SORT", "bull:clustering:wait"],
    // Keys and channels of the rest of the trading system.
    &["GET", "trading:positions"],
    &["SET", "other:key", "x"],
    &["PUBLISH", "execution:filled", "{}"],
    &["PSUBSCRIBE", "*"],
];

#[test]
fn the_application_user_may_run_what_the_engine_and_bullmq_need_and_nothing_dangerous() {
    let server = RedisServer::start(Some(MAIN), &[]);
    assert!(server.has_acl(), "{MAIN} defines its users");
    let mut admin = server.client(0);
    let user = common::redis::APP_USER;
    for args in APP_NEEDS {
        assert_eq!(
            dryrun(&mut admin, user, args),
            Ok(()),
            "{user} needs {args:?}"
        );
    }
    for args in APP_REFUSED {
        assert!(
            dryrun(&mut admin, user, args).is_err(),
            "{user} may run {args:?}"
        );
    }
    // The admin too is kept from wiping, swapping or moving data, and from changing users.
    for args in [
        &["FLUSHALL"][..],
        &["FLUSHDB"],
        &["KEYS", "*"],
        &["SWAPDB", "0", "9"],
        &["MOVE", "perps:state", "9"],
        &["REPLICAOF", "127.0.0.1", "1"],
        &["ACL", "SETUSER", "admin", "+flushall"],
        &["DEBUG", "SLEEP", "0"],
    ] {
        assert!(
            dryrun(&mut admin, "admin", args).is_err(),
            "admin may run {args:?}"
        );
    }
    for args in [
        &["CONFIG", "SET", "maxmemory", "4gb"][..],
        &["INFO"],
        &["GET", "anything"],
        &["SHUTDOWN"],
    ] {
        assert_eq!(
            dryrun(&mut admin, "admin", args),
            Ok(()),
            "admin needs {args:?}"
        );
    }

    // The default user is off: an unauthenticated connection can do nothing, and nobody
    // can log in as `default`.
    let flags: Vec<redis::Value> = redis::cmd("ACL")
        .arg("GETUSER")
        .arg("default")
        .query(&mut admin)
        .unwrap();
    assert!(format!("{flags:?}").contains("\"off\""), "{flags:?}");
    let mut anon = redis::Client::open(server.plain_url(0))
        .unwrap()
        .get_connection()
        .unwrap();
    let err = redis::cmd("GET")
        .arg("perps:state")
        .query::<Option<String>>(&mut anon)
        .unwrap_err();
    assert!(err.to_string().contains("NOAUTH"), "{err}");
    let err = redis::cmd("AUTH")
        .arg("default")
        .arg("")
        .query::<String>(&mut anon)
        .unwrap_err();
    assert!(err.to_string().contains("WRONGPASS"), "{err}");
}

#[test]
fn scripted_writes_of_the_application_survive_a_restart_under_the_acl() {
    // Redis replays the AOF as the default user and checks each MULTI/EXEC block (a Lua
    // script's writes) against its ACL: a default user without permissions drops them.
    let mut server = RedisServer::start(Some(MAIN), &[]);
    let mut app = redis::Client::open(server.url(0))
        .unwrap()
        .get_connection()
        .unwrap();
    let _: i64 = redis::cmd("EVAL")
        .arg("redis.call('SET', KEYS[1], 'saved'); return redis.call('INCR', KEYS[2])")
        .arg(2)
        .arg("perps:state")
        .arg("perps:state:version")
        .query(&mut app)
        .unwrap();
    drop(app);
    server.restart();
    let mut app = redis::Client::open(server.url(0))
        .unwrap()
        .get_connection()
        .unwrap();
    let (state, version): (Option<String>, Option<u64>) = redis::pipe()
        .cmd("GET")
        .arg("perps:state")
        .cmd("GET")
        .arg("perps:state:version")
        .query(&mut app)
        .unwrap();
    assert_eq!(
        (state.as_deref(), version),
        (Some("saved"), Some(1)),
        "{}",
        server.log()
    );
}
