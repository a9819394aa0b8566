//! Pipeline benches: end to end on 100 articles (parse + embed + cluster + label, no output
//! I/O), and clustering alone on pre-computed vectors for 100, 1,000 and 10,000 articles.
//! Each bench first checks that its result is right (stories match the gold labels) before
//! timing it.
//!
//!     cargo bench --bench pipeline

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use perps_news::article::Article;
use perps_news::config::PipelineConfig;
use perps_news::embed::{self, Doc, Embedding};
use perps_news::label;
use perps_news::pipeline::{self, RunInput, RunOptions};
use perps_news::stages::cluster::Clusterer;
use perps_news::stages::ingest;
use perps_news::store::memory::MemoryCache;
use perps_news::story::StoryState;
use perps_news_synth::{self as synth, SynthConfig};

fn pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .build()
        .expect("thread pool")
}

fn gold_f1(pairs: &[(String, String)], gold_jsonl: &str) -> f64 {
    let gold: Vec<(String, String)> = gold_jsonl
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("generated line");
            (
                v["id"].as_str().unwrap_or_default().to_string(),
                v["label"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    perps_news::eval::score(&gold, pairs)
        .expect("score")
        .bcubed_f1
}

fn end_to_end(c: &mut Criterion) {
    let pool = pool();
    let cfg = PipelineConfig::default();
    let embedder =
        embed::build(&cfg.embed, &cfg.api, &perps_news::api::Context::default()).expect("embedder");
    let labeler =
        label::build(&cfg.label, &cfg.api, &perps_news::api::Context::default()).expect("labeler");
    let symbols = perps_news::signals::symbols::SymbolBook::builtin();
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
    let once = || {
        let state = StoryState::new(embedder.fingerprint(), embedder.dim());
        let cache = MemoryCache::default();
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
    let check = once();
    let f1 = gold_f1(&check.assignments, &String::from_utf8_lossy(&bytes));
    assert!(f1 >= 0.85, "end-to-end result is wrong: F1 {f1}");
    let mut g = c.benchmark_group("end_to_end");
    g.throughput(Throughput::Elements(100));
    g.bench_function("news-100", |b| b.iter(|| black_box(once())));
    g.finish();
}

fn cluster_only(c: &mut Criterion) {
    let pool = pool();
    let cfg = PipelineConfig::default();
    let embedder =
        embed::build(&cfg.embed, &cfg.api, &perps_news::api::Context::default()).expect("embedder");
    let mut g = c.benchmark_group("cluster_only");
    g.sample_size(10);
    for n in [100usize, 1000, 10_000] {
        // About a thousand articles a day: a busy crypto feed.
        let span_hours = (n as f64 / 1000.0 * 24.0).max(6.0);
        let dump = synth::generate_jsonl(&SynthConfig {
            articles: n,
            story_size: 10,
            span_hours,
            ..SynthConfig::default()
        });
        let input = ingest::input_from_bytes("synth", dump.clone().into_bytes());
        let parsed = ingest::parse_inputs(&[input], 1 << 20, &pool);
        let articles = ingest::dedup_and_order(parsed.articles, 0).articles;
        let docs: Vec<Doc<'_>> = articles
            .iter()
            .map(|a| Doc {
                title: &a.title,
                body: &a.body,
            })
            .collect();
        let embeddings = embedder.embed(&docs, &pool).expect("embed");
        let batch = cfg.ingest.batch_size;
        let cluster = |articles: &[Article], embeddings: &[Embedding]| {
            let mut cl = Clusterer::new(
                cfg.cluster.clone(),
                StoryState::new(embedder.fingerprint(), embedder.dim()),
            );
            let mut out = Vec::with_capacity(articles.len());
            for (a, e) in articles.chunks(batch).zip(embeddings.chunks(batch)) {
                out.extend(cl.assign_batch(a, e.to_vec(), &[], 0, &pool).assignments);
            }
            out
        };
        let got: Vec<(String, String)> = cluster(&articles, &embeddings)
            .into_iter()
            .map(|a| (a.article_id, a.story_id))
            .collect();
        let f1 = gold_f1(&got, &dump);
        assert!(f1 >= 0.8, "clustering {n} articles is wrong: F1 {f1}");
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| black_box(cluster(&articles, &embeddings)));
        });
    }
    g.finish();
}

criterion_group!(benches, end_to_end, cluster_only);
criterion_main!(benches);
