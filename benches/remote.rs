//! Remote embeddings end to end (parse + embed over HTTP through the Redis cache + cluster +
//! label), against the loopback OpenAI-compatible server of the tests with 150 ms injected
//! per request (what the original system measured per call), and a redis-server the bench
//! starts itself. Uncached runs use a fresh cache prefix; warm runs repeat the previous
//! prefix. Each run's own results are checked (every article clustered, no deferral, zero
//! requests when warm) before its time counts.
//!
//!     cargo bench --bench remote
//!
//! Prints, per case, the median wall time over the repetitions, requests, bytes.

use std::time::{Duration, Instant};

use perps_news::config::PipelineConfig;
use perps_news::pipeline::{self, RunInput, RunOptions};
use perps_news::store::redis::{Connections, RedisCache};
use perps_news::story::StoryState;
use perps_news::{api, embed, label};

#[path = "../tests/common/openai.rs"]
mod openai;
#[path = "../tests/common/redis.rs"]
mod server;

/// text-embedding-3-small's dimension: the reply sizes are the real ones.
const DIM: usize = 1536;
const LATENCY: Duration = Duration::from_millis(150);
const REPS: usize = 5;

struct Case {
    name: &'static str,
    dump: &'static str,
    articles: usize,
    llm: bool,
}

fn main() {
    let redis = server::RedisServer::start(Some("systemd/perps-redis.conf"), &[]);
    let fake = openai::FakeApi::start(DIM);
    fake.set_latency(LATENCY);
    let pool = rayon::ThreadPoolBuilder::new()
        .build()
        .expect("thread pool");
    let symbols = perps_news::signals::symbols::SymbolBook::builtin();
    let cases = [
        Case {
            name: "embed",
            dump: "fixtures/news-100.jsonl",
            articles: 100,
            llm: false,
        },
        Case {
            name: "embed",
            dump: "fixtures/news-1000.jsonl",
            articles: 1000,
            llm: false,
        },
        Case {
            name: "embed+llm",
            dump: "fixtures/news-100.jsonl",
            articles: 100,
            llm: true,
        },
    ];
    println!(
        "{:<10} {:>6} {:>6} {:>10} {:>9} {:>12} {:>12}  (median of {REPS}, {} ms per request, concurrency {})",
        "case",
        "N",
        "cache",
        "wall ms",
        "requests",
        "bytes sent",
        "bytes recv",
        LATENCY.as_millis(),
        PipelineConfig::default().api.concurrency
    );
    let mut prefix_seq = 0;
    for case in &cases {
        let bytes = std::fs::read(format!("{}/{}", env!("CARGO_MANIFEST_DIR"), case.dump))
            .expect("fixture");
        let mut cold = Vec::new();
        let mut warm = Vec::new();
        for _ in 0..REPS {
            prefix_seq += 1;
            let prefix = format!("bench{prefix_seq}:");
            for (warm_run, out) in [(false, &mut cold), (true, &mut warm)] {
                let mut cfg = PipelineConfig::default();
                cfg.redis.url = redis.url(0);
                cfg.redis.cache_prefix.clone_from(&prefix);
                cfg.embed.provider = "openai".into();
                cfg.embed.dim = DIM;
                cfg.embed.openai.model = "emb-a".into();
                cfg.api.base_url = fake.base();
                if case.llm {
                    cfg.label.provider = "llm".into();
                    cfg.label.llm.model = "chat-a".into();
                }
                let conns = Connections::new(&cfg.redis).expect("connections");
                let ctx = api::Context {
                    alerts: api::Alerts::default(),
                    llm_cache: Some(std::sync::Arc::new(RedisCache::llm(
                        conns.cache.clone(),
                        &cfg.redis,
                    ))),
                };
                let embedder = embed::build(&cfg.embed, &cfg.api, &ctx).expect("embedder");
                let labeler = label::build(&cfg.label, &cfg.api, &ctx).expect("labeler");
                let cache = RedisCache::new(
                    conns.cache.clone(),
                    &cfg.redis,
                    &embedder.fingerprint(),
                    embedder.dim(),
                );
                let importance =
                    perps_news::signals::importance::Importance::from_config(&cfg.signals)
                        .expect("importance");
                let opts = RunOptions {
                    strict: false,
                    progress: false,
                    // After all of the data (2026-11-20 onwards): no date in it is in the future.
                    ingest_time: 1_795_132_800 + 30 * 86_400,
                };
                let before = fake.requests().len();
                let t0 = Instant::now();
                let outcome = pipeline::run(
                    &cfg,
                    vec![RunInput::Bytes {
                        name: case.dump.into(),
                        bytes: bytes.clone(),
                    }],
                    StoryState::new(embedder.fingerprint(), embedder.dim()),
                    &*embedder,
                    &cache,
                    &*labeler,
                    &symbols,
                    &importance,
                    &opts,
                    &pool,
                )
                .expect("run");
                let wall = t0.elapsed();
                let mut report = embedder.api_report().unwrap_or_default();
                if let Some(l) = labeler.api_report() {
                    report.add(&l);
                }
                assert_eq!(outcome.summary.total_processed, case.articles);
                assert!(outcome.deferred.is_empty());
                let sent = fake.requests().len() - before;
                assert_eq!(report.requests as usize, sent);
                if warm_run {
                    assert_eq!(sent, 0, "a warm cache sends no request");
                } else {
                    assert!(sent > 0);
                }
                out.push((wall, report, outcome.summary.stage_ms));
            }
        }
        for (label, runs) in [("cold", &mut cold), ("warm", &mut warm)] {
            runs.sort_by_key(|r| r.0);
            let (wall, r, st) = &runs[runs.len() / 2];
            println!(
                "{:<10} {:>6} {:>6} {:>10.1} {:>9} {:>12} {:>12}   ingest {:.1} embed {:.1} cluster {:.1} label {:.1}",
                case.name,
                case.articles,
                label,
                wall.as_secs_f64() * 1e3,
                r.requests,
                r.bytes_sent,
                r.bytes_received,
                st.ingest,
                st.embed,
                st.cluster,
                st.label
            );
        }
    }
}
