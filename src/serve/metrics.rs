//! `/metrics`: Prometheus metrics in the text exposition format (0.0.4).
//!
//! `serve` runs apart from `run` and the worker, so every number comes from what Redis
//! holds, read when Prometheus scrapes:
//! - the run summaries on the `news:clustered` stream (each batch run and each worker job
//!   appends one): articles, records, rejects by reason, stories opened, remote API
//!   requests, retries and failures, and the run-duration histogram. Each summary is
//!   counted once: at start the stream's retained entries, then at each scrape the entries
//!   after the last one seen. The counters therefore cover the runs the stream still held
//!   when `serve` started plus every run since (a restart of `serve` is a counter reset, as
//!   Prometheus expects).
//! - the `circuit:breaker:open` stream: openings per breaker and the time of the last one
//!   (a breaker lives inside the process that calls the API; its openings are what reaches
//!   the bus).
//! - what `stats --json` reads (the shared cache counters, the story index, the state
//!   version, the queue keys): gauges, and counters for the cache's hits and misses.
//! - this server's own requests per endpoint.
//!
//! Encoding is `prometheus-client`'s (the Prometheus project's Rust client): names, `HELP`
//! and `TYPE` lines, label escaping and the histogram's cumulative buckets are its job.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::events::EntryId;
use crate::store::redis::Pool;

/// The `Content-Type` of the answer.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds of the run-duration buckets, in seconds: a small batch takes well under a
/// second, the 100k-article dump about half a minute on one core.
const RUN_BUCKETS: [f64; 13] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

type Labels = Vec<(String, String)>;

/// Counts from the run summaries seen so far.
#[derive(Debug, Default)]
struct Totals {
    /// The last `news:clustered` entry counted.
    runs_at: EntryId,
    /// The last `circuit:breaker:open` entry counted.
    breakers_at: EntryId,
    runs: u64,
    processed: u64,
    records: u64,
    opened: u64,
    rejects: BTreeMap<String, u64>,
    api_requests: u64,
    api_retries: u64,
    api_failures: u64,
    deferred: u64,
    breaker_openings: BTreeMap<String, u64>,
    breaker_last_ms: BTreeMap<String, u64>,
}

/// The metrics state kept by `serve`.
#[derive(Debug)]
pub struct Metrics {
    totals: Mutex<Totals>,
    run_seconds: Histogram,
    requests: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            totals: Mutex::new(Totals::default()),
            run_seconds: Histogram::new(RUN_BUCKETS),
            requests: Family::default(),
        }
    }
}

fn u(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// Entries of `stream` after `after`, as `(id, payload)` (payloads that are not JSON are
/// skipped).
fn entries_after(
    pool: &Pool,
    stream: &str,
    after: EntryId,
) -> crate::Result<Vec<(EntryId, serde_json::Value)>> {
    const PAGE: usize = 1000;
    let mut out = Vec::new();
    let mut at = after;
    loop {
        let page: Vec<(EntryId, serde_json::Value)> = pool.run("XRANGE", |c| {
            let r: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                .arg(stream)
                .arg(format!("({at}"))
                .arg("+")
                .arg("COUNT")
                .arg(PAGE)
                .query(c)?;
            Ok(r.ids
                .into_iter()
                .filter_map(|e| {
                    let id = EntryId::parse(&e.id)?;
                    let text: String = e
                        .map
                        .get("payload")
                        .and_then(|v| redis::from_redis_value_ref(v).ok())?;
                    Some((id, serde_json::from_str(&text).ok()?))
                })
                .collect())
        })?;
        let n = page.len();
        if let Some((last, _)) = page.last() {
            at = *last;
        }
        out.extend(page);
        if n < PAGE {
            return Ok(out);
        }
    }
}

impl Metrics {
    /// Counts one request to `path` (one of the server's endpoints).
    pub fn request(&self, path: &str) {
        self.requests
            .get_or_create(&vec![("path".to_string(), path.to_string())])
            .inc();
    }

    /// Counts the run summaries and breaker openings appended since the last call.
    ///
    /// # Errors
    /// [`crate::Error::Redis`] when the server cannot be read (the counts stay as they are).
    pub fn refresh(&self, pool: &Pool) -> crate::Result<()> {
        let (runs_at, breakers_at) = {
            let t = self.lock();
            (t.runs_at, t.breakers_at)
        };
        let runs = entries_after(pool, crate::bus::NEWS_CLUSTERED, runs_at)?;
        let breakers = entries_after(pool, crate::bus::CIRCUIT_BREAKER_OPEN, breakers_at)?;
        let mut t = self.lock();
        for (id, s) in runs {
            // Two scrapes at once both read the same entries: count each once.
            if id <= t.runs_at {
                continue;
            }
            t.runs_at = id;
            t.runs += 1;
            t.processed += u(&s["totalProcessed"]);
            t.records += u(&s["records"]);
            t.opened += u(&s["newClusters"]);
            t.deferred += u(&s["deferred"]);
            if let Some(by) = s["rejectedByReason"].as_object() {
                for (reason, n) in by {
                    *t.rejects.entry(reason.clone()).or_default() += u(n);
                }
            }
            let api = &s["api"];
            t.api_requests += u(&api["requests"]);
            t.api_retries += u(&api["retries"]);
            t.api_failures += u(&api["failures"]);
            if let Some(ms) = s["stageMs"]["wall"].as_f64() {
                self.run_seconds.observe(ms / 1000.0);
            }
        }
        for (id, b) in breakers {
            if id <= t.breakers_at {
                continue;
            }
            t.breakers_at = id;
            let name = b["breakerName"].as_str().unwrap_or("unknown").to_string();
            *t.breaker_openings.entry(name.clone()).or_default() += 1;
            t.breaker_last_ms.insert(name, id.0);
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Totals> {
        self.totals.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The exposition text: refreshes from `pool`, then encodes the run totals with
    /// `stats()` (what `stats --json` prints). When Redis does not answer a ping, neither is
    /// read (each would wait out the retry window, longer than a scrape's timeout):
    /// `perps_news_redis_up` is 0, the totals are those counted so far and the gauges from
    /// `stats` are left out.
    pub fn render(
        &self,
        pool: &Pool,
        stats: impl FnOnce() -> crate::Result<serde_json::Value>,
    ) -> String {
        let warn = |e: crate::Error| tracing::warn!(error = %e, "Metrics: Redis not read.");
        let reachable = pool.ping().map_err(warn).is_ok();
        let fresh = reachable && self.refresh(pool).map_err(warn).is_ok();
        let stats = if reachable {
            stats().map_err(warn).ok()
        } else {
            None
        };
        let mut reg = Registry::with_prefix("perps_news");
        let up: Gauge = Gauge::default();
        up.set(i64::from(fresh && stats.is_some()));
        reg.register(
            "redis_up",
            "Whether the last scrape could read Redis (1) or not (0)",
            up,
        );
        {
            let t = self.lock();
            let counter = |reg: &mut Registry, name: &str, help: &str, v: u64| {
                let c: Counter = Counter::default();
                c.inc_by(v);
                reg.register(name, help, c);
            };
            counter(
                &mut reg,
                "runs",
                "Run summaries on news:clustered (batch runs and worker jobs)",
                t.runs,
            );
            counter(
                &mut reg,
                "articles_processed",
                "Articles clustered (new to the state)",
                t.processed,
            );
            counter(&mut reg, "records_read", "Input records read", t.records);
            counter(&mut reg, "stories_opened", "Stories opened", t.opened);
            counter(
                &mut reg,
                "articles_deferred",
                "Articles deferred to a later run (no vector)",
                t.deferred,
            );
            counter(
                &mut reg,
                "api_requests",
                "HTTP requests to the remote API providers, retries included",
                t.api_requests,
            );
            counter(
                &mut reg,
                "api_retries",
                "Retried requests to the remote API providers",
                t.api_retries,
            );
            counter(
                &mut reg,
                "api_failures",
                "Remote API calls that failed after their retries or met an open breaker",
                t.api_failures,
            );
            let rejects: Family<Labels, Counter> = Family::default();
            for (reason, n) in &t.rejects {
                rejects
                    .get_or_create(&vec![("reason".into(), reason.clone())])
                    .inc_by(*n);
            }
            reg.register("rejects", "Rejected input records by reason", rejects);
            let openings: Family<Labels, Counter> = Family::default();
            let last_open: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>> =
                Family::default();
            for (name, n) in &t.breaker_openings {
                let l = vec![("breaker".to_string(), name.clone())];
                openings.get_or_create(&l).inc_by(*n);
                let ms = t.breaker_last_ms.get(name).copied().unwrap_or(0);
                last_open.get_or_create(&l).set(ms as f64 / 1000.0);
            }
            reg.register(
                "breaker_openings",
                "Circuit-breaker openings on circuit:breaker:open",
                openings,
            );
            reg.register(
                "breaker_last_open_timestamp_seconds",
                "When each breaker last opened (Unix time); it stays open for its cool-down",
                last_open,
            );
        }
        reg.register(
            "run_duration_seconds",
            "Wall time of each run (stageMs.wall of its summary)",
            self.run_seconds.clone(),
        );
        reg.register(
            "http_requests",
            "Requests to this server per endpoint",
            self.requests.clone(),
        );
        if let Some(s) = &stats {
            let gauge = |reg: &mut Registry, name: &str, help: &str, v: u64| {
                let g: Gauge = Gauge::default();
                g.set(i64::try_from(v).unwrap_or(i64::MAX));
                reg.register(name, help, g);
            };
            let counter = |reg: &mut Registry, name: &str, help: &str, v: u64| {
                let c: Counter = Counter::default();
                c.inc_by(v);
                reg.register(name, help, c);
            };
            counter(
                &mut reg,
                "cache_hits",
                "Embedding cache hits (the shared counters in the cache DB)",
                u(&s["cacheStats"]["hits"]),
            );
            counter(
                &mut reg,
                "cache_misses",
                "Embedding cache misses (the shared counters in the cache DB)",
                u(&s["cacheStats"]["misses"]),
            );
            gauge(
                &mut reg,
                "cache_keys",
                "Keys in the cache DB",
                u(&s["cacheKeys"]),
            );
            gauge(
                &mut reg,
                "stories",
                "Stories in the story index",
                u(&s["stories"]),
            );
            gauge(
                &mut reg,
                "state_version",
                "Version of the story state in Redis",
                u(&s["stateVersion"]),
            );
            let queues: Family<Labels, Gauge> = Family::default();
            if let Some(qs) = s["queues"].as_object() {
                for (q, depths) in qs {
                    for state in ["waiting", "active", "delayed"] {
                        let l = vec![
                            ("queue".to_string(), q.clone()),
                            ("state".to_string(), state.to_string()),
                        ];
                        queues
                            .get_or_create(&l)
                            .set(i64::try_from(u(&depths[state])).unwrap_or(i64::MAX));
                    }
                }
            }
            reg.register(
                "queue_jobs",
                "Jobs in the BullMQ news queues by state",
                queues,
            );
            if let Some(ts) = s["lastRun"]["timestamp"].as_str()
                && let Ok(secs) = crate::time::parse_rfc3339(ts)
            {
                gauge(
                    &mut reg,
                    "last_run_timestamp_seconds",
                    "When the last run finished (Unix time)",
                    u64::try_from(secs).unwrap_or(0),
                );
            }
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &reg) {
            tracing::error!(error = %e, "Metrics could not be encoded.");
        }
        out
    }
}
