//! 100 articles end to end (parse + embed through a warm Redis cache + cluster + label) against
//! a live local redis-server that the bench starts itself on a free port. Checks that every
//! lookup hits and that the stories are right before timing, and prints the Redis round trips
//! per batch.
//!
//!     cargo bench --bench redis

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use perps_news::config::PipelineConfig;
use perps_news::pipeline::{self, RunInput, RunOptions};
use perps_news::store::redis::{Connections, RedisCache};
use perps_news::story::StoryState;
use perps_news::{embed, label};

#[path = "../tests/common/redis.rs"]
mod server;

fn warm_cache(c: &mut Criterion) {
    let redis = server::RedisServer::start(Some("systemd/perps-redis.conf"), &[]);
    let pool = rayon::ThreadPoolBuilder::new()
        .build()
        .expect("thread pool");
    let mut cfg = PipelineConfig::default();
    cfg.redis.url = redis.url(0);
    let embedder =
        embed::build(&cfg.embed, &cfg.api, &perps_news::api::Context::default()).expect("embedder");
    let labeler =
        label::build(&cfg.label, &cfg.api, &perps_news::api::Context::default()).expect("labeler");
    let symbols = perps_news::signals::symbols::SymbolBook::builtin();
    let conns = Connections::new(&cfg.redis).expect("connections");
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/news-100.jsonl"
    ))
    .expect("fixture");
    let importance =
        perps_news::signals::importance::Importance::from_config(&cfg.signals).expect("importance");
    let opts = RunOptions {
        strict: false,
        progress: false,
        // After all of the data (2026-11-20 onwards): no date in it is in the future.
        ingest_time: 1_795_132_800 + 30 * 86_400,
    };
    let cache = RedisCache::new(
        conns.cache.clone(),
        &cfg.redis,
        &embedder.fingerprint(),
        embedder.dim(),
    );
    let once = || {
        let state = StoryState::new(embedder.fingerprint(), embedder.dim());
        let input = vec![RunInput::Bytes {
            name: "news-100.jsonl".into(),
            bytes: bytes.clone(),
        }];
        pipeline::run(
            &cfg,
            input,
            state,
            &*embedder,
            &cache,
            &*labeler,
            &symbols,
            &importance,
            &opts,
            &pool,
        )
        .expect("run")
    };
    once(); // fill the cache
    let before = (cache.run_stats(), conns.cache.round_trips());
    let check = once();
    let after = (cache.run_stats(), conns.cache.round_trips());
    assert_eq!(
        after.0.hits - before.0.hits,
        100,
        "every lookup must hit a warm cache"
    );
    assert_eq!(after.0.misses, before.0.misses);
    let gold: Vec<(String, String)> = String::from_utf8_lossy(&bytes)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("fixture line");
            (
                v["id"].as_str().unwrap_or_default().into(),
                v["label"].as_str().unwrap_or_default().into(),
            )
        })
        .collect();
    let f1 = perps_news::eval::score(&gold, &check.assignments)
        .expect("score")
        .bcubed_f1;
    assert!(f1 >= 0.85, "stories are wrong: F1 {f1}");
    let batches = 100usize.div_ceil(cfg.ingest.batch_size);
    println!(
        "redis round trips for 100 articles in {batches} batches: {} ({:.1} per batch, counters flushed once per run)",
        after.1 - before.1,
        (after.1 - before.1) as f64 / batches as f64
    );
    let mut g = c.benchmark_group("redis_warm");
    g.throughput(Throughput::Elements(100));
    g.bench_function("news-100", |b| b.iter(|| black_box(once())));
    g.finish();
}

criterion_group!(benches, warm_cache);
criterion_main!(benches);
