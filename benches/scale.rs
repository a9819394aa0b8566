//! Scale: clustering alone on dense vectors (the remote-embedding case), and the whole
//! offline pipeline on big generated dumps, each case in a child process of its own so its
//! peak memory (VmHWM) is its own.
//!
//!     cargo bench --bench scale                 # dense 1k/10k/100k, e2e 10k/100k
//!     cargo bench --bench scale -- stream       # + 1M articles as 100 runs of 10k with a state
//!
//! Dense: d = 384, planted stories of 10 articles around random unit directions, interleaved
//! over the whole input, all in one time window (no time penalty), threshold 0.3. The result
//! is checked against the planted stories (B-cubed F1 ≥ 0.99) before it is reported, and the
//! similarity products' rate is printed in GFLOP/s (2·rows·stories·d per product).

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use perps_news::article::{Article, Origin};
use perps_news::config::ClusterConfig;
use perps_news::embed::Embedding;
use perps_news::kernels;
use perps_news::stages::cluster::Clusterer;
use perps_news::story::StoryState;

const DIM: usize = 384;
const STORY: usize = 10;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("--child") {
        child(&args[1..]);
        return;
    }
    let stream = args.iter().any(|a| a == "stream");
    let me = std::env::current_exe().expect("own path");
    let run = |case: &[&str]| {
        let out = Command::new(&me)
            .arg("--child")
            .args(case)
            .output()
            .expect("child");
        if !out.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
            panic!("case {case:?} failed");
        }
        print!("{}", String::from_utf8_lossy(&out.stdout));
        let _ = std::io::stdout().flush();
    };
    println!(
        "{:<8} {:>9} {:>10} {:>12} {:>9} {:>10} {:>9}  notes",
        "case", "N", "wall ms", "articles/s", "peak MiB", "GFLOP/s", "stories"
    );
    for n in ["1000", "10000", "100000"] {
        run(&["dense", n]);
    }
    for n in ["10000", "100000"] {
        run(&["e2e", n]);
    }
    if stream {
        run(&["stream", "1000000"]);
    }
}

/// Peak resident set of this process, MiB.
fn peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn child(args: &[String]) {
    let n: usize = args[1].parse().expect("N");
    match args[0].as_str() {
        "dense" => dense(n),
        "e2e" => e2e(n),
        "stream" => stream(n),
        other => panic!("unknown case {other}"),
    }
}

/// Planted unit vectors: article i belongs to story `(i * 7919) % k`, so every story's
/// members are spread over the whole input.
fn planted(n: usize) -> (Vec<Vec<f32>>, Vec<usize>) {
    let k = n.div_ceil(STORY);
    let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0
    };
    let centers: Vec<Vec<f32>> = (0..k)
        .map(|_| {
            let mut c: Vec<f32> = (0..DIM).map(|_| rnd()).collect();
            kernels::normalize(&mut c);
            c
        })
        .collect();
    let noise = 0.04;
    let labels: Vec<usize> = (0..n).map(|i| (i * 7919) % k).collect();
    let vecs = labels
        .iter()
        .map(|&l| {
            let mut v: Vec<f32> = centers[l].iter().map(|x| x + noise * rnd()).collect();
            kernels::normalize(&mut v);
            v
        })
        .collect();
    (vecs, labels)
}

fn dense(n: usize) {
    let (vecs, labels) = planted(n);
    let articles: Vec<Article> = (0..n)
        .map(|i| Article {
            id: format!("a{i:07}"),
            title: String::new(),
            body: String::new(),
            url: None,
            url_key: None,
            source: None,
            published_at: Some(1_800_000_000 + (i as i64 % 3600)),
            day_only: false,
            lang: None,
            origin: Origin {
                file: "planted".into(),
                line: i + 1,
            },
            seq: i,
        })
        .collect();
    let cfg = ClusterConfig {
        threshold: Some(0.3),
        time_penalty_per_hour: 0.0,
        window_hours: 48.0,
        ..ClusterConfig::default()
    };
    let pool = rayon::ThreadPoolBuilder::new().build().expect("pool");
    let mut c = Clusterer::new(cfg, StoryState::new("planted", DIM));
    let batch = perps_news::pipeline::auto_batch(20, n);
    // The vectors arrive embedded (as from the embed stage): only clustering is timed.
    let batches: Vec<Vec<Embedding>> = vecs
        .chunks(batch)
        .map(|v| v.iter().cloned().map(Embedding::Dense).collect())
        .collect();
    drop(vecs);
    let mut assigned = Vec::with_capacity(n);
    let t0 = Instant::now();
    for (a, e) in articles.chunks(batch).zip(batches) {
        let out = c.assign_batch(a, e, &[], 0, &pool);
        assigned.extend(out.assignments.into_iter().map(|x| x.story_id));
    }
    let wall = t0.elapsed();
    let stats = c.stats();
    let f1 = bcubed_f1(&labels, &assigned);
    assert!(f1 >= 0.99, "planted stories recovered: F1 {f1}");
    report(
        "dense",
        n,
        wall,
        stats.gflops(),
        c.state().stories.len(),
        &format!(
            "batch {batch}, F1 {f1:.4}, {:.0}% of the time in products",
            100.0 * stats.product_time.as_secs_f64() / wall.as_secs_f64()
        ),
    );
}

fn report(case: &str, n: usize, wall: Duration, gflops: f64, stories: usize, notes: &str) {
    println!(
        "{case:<8} {n:>9} {:>10.1} {:>12.0} {:>9.0} {:>10.1} {stories:>9}  {notes}",
        wall.as_secs_f64() * 1e3,
        n as f64 / wall.as_secs_f64(),
        peak_mib(),
        gflops,
    );
}

/// B-cubed F1 of `pred` against `gold` (same order).
fn bcubed_f1<G: std::hash::Hash + Eq, P: std::hash::Hash + Eq>(gold: &[G], pred: &[P]) -> f64 {
    use std::collections::HashMap;
    let mut pair: HashMap<(&G, &P), f64> = HashMap::new();
    let mut g: HashMap<&G, f64> = HashMap::new();
    let mut p: HashMap<&P, f64> = HashMap::new();
    for (a, b) in gold.iter().zip(pred) {
        *pair.entry((a, b)).or_default() += 1.0;
        *g.entry(a).or_default() += 1.0;
        *p.entry(b).or_default() += 1.0;
    }
    let (mut prec, mut rec) = (0.0, 0.0);
    for ((a, b), c) in &pair {
        prec += c * c / p[b];
        rec += c * c / g[a];
    }
    let n = gold.len() as f64;
    let (prec, rec) = (prec / n, rec / n);
    2.0 * prec * rec / (prec + rec)
}

/// A generated dump of `n` articles at `per_day` articles a day, starting `day0` days after
/// the generator's epoch.
fn dump(n: usize, seed: u64, start_epoch: i64, per_day: f64) -> Vec<u8> {
    perps_news_synth::generate_jsonl(&perps_news_synth::SynthConfig {
        articles: n,
        story_size: 10,
        seed,
        start_epoch,
        span_hours: n as f64 / per_day * 24.0,
        ..perps_news_synth::SynthConfig::default()
    })
    .into_bytes()
}

/// The dump with ids and urls made unique to run `k` (the generator numbers from zero).
fn renamed(bytes: &[u8], k: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 50);
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let mut v: serde_json::Value = serde_json::from_slice(line).expect("generated JSON");
        for key in ["id", "url"] {
            if let Some(s) = v[key].as_str() {
                v[key] = format!("{s}-r{k}").into();
            }
        }
        serde_json::to_writer(&mut out, &v).expect("serialise");
        out.push(b'\n');
    }
    out
}

/// A busy aggregated crypto feed.
const PER_DAY: f64 = 5_000.0;

/// One whole offline run over `bytes`, with its outputs written to `out`.
fn one_run(
    bytes: Vec<u8>,
    state: StoryState,
    out: &std::path::Path,
    pool: &rayon::ThreadPool,
) -> perps_news::pipeline::RunOutcome {
    use perps_news::config::PipelineConfig;
    use perps_news::pipeline::{self, RunInput, RunOptions};
    let cfg = PipelineConfig::default();
    let ctx = perps_news::api::Context::default();
    let embedder = perps_news::embed::build(&cfg.embed, &cfg.api, &ctx).expect("embedder");
    let labeler = perps_news::label::build(&cfg.label, &cfg.api, &ctx).expect("labeler");
    let symbols = perps_news::signals::symbols::SymbolBook::builtin();
    let cache = perps_news::store::memory::MemoryCache::default();
    let importance =
        perps_news::signals::importance::Importance::from_config(&cfg.signals).expect("importance");
    let opts = RunOptions {
        strict: false,
        progress: false,
        // The generated stream runs months ahead of the wall clock: the runs are replays
        // with a clock after all of it (2100-01-01), so no date in it is in the future.
        ingest_time: 4_102_444_800,
    };
    let outcome = pipeline::run(
        &cfg,
        vec![RunInput::Bytes {
            name: "dump.jsonl".into(),
            bytes,
        }],
        state,
        &*embedder,
        &cache,
        &*labeler,
        &symbols,
        &importance,
        &opts,
        pool,
    )
    .expect("run");
    let lines = outcome
        .assignments
        .iter()
        .map(|(id, c)| perps_news::report::AssignmentLine {
            id,
            cluster: c,
            duplicate_of: outcome.duplicate_of.get(id).map(String::as_str),
        });
    perps_news::report::write_jsonl(&out.join("assignments.jsonl"), lines).expect("write");
    perps_news::report::write_jsonl(&out.join("stories.jsonl"), &outcome.stories).expect("write");
    outcome
}

fn fresh_state() -> StoryState {
    let cfg = perps_news::config::PipelineConfig::default();
    let e = perps_news::embed::build(&cfg.embed, &cfg.api, &perps_news::api::Context::default())
        .expect("embedder");
    StoryState::new(e.fingerprint(), e.dim())
}

fn e2e(n: usize) {
    let bytes = dump(n, 7, 1_795_132_800, PER_DAY);
    let dir = tempfile::tempdir().expect("temp dir");
    let pool = rayon::ThreadPoolBuilder::new().build().expect("pool");
    let t0 = Instant::now();
    let outcome = one_run(bytes, fresh_state(), dir.path(), &pool);
    let wall = t0.elapsed();
    assert_eq!(outcome.summary.total_processed, n);
    report(
        "e2e",
        n,
        wall,
        outcome.cluster.gflops(),
        outcome.summary.active_stories,
        &format!(
            "{PER_DAY} articles/day; {} stories opened; stages ms: ingest {:.0} embed {:.0} cluster {:.0} label {:.0}",
            outcome.summary.new_clusters,
            outcome.summary.stage_ms.ingest,
            outcome.summary.stage_ms.embed,
            outcome.summary.stage_ms.cluster,
            outcome.summary.stage_ms.label
        ),
    );
}

/// `n` articles as successive runs of 10,000, each continuing the state saved to a file by
/// the previous one (48-hour window); prints the throughput of the first and last tenth.
fn stream(n: usize) {
    const RUN: usize = 10_000;
    let runs = n / RUN;
    let dir = tempfile::tempdir().expect("temp dir");
    let state_path = dir.path().join("state.json");
    let pool = rayon::ThreadPoolBuilder::new().build().expect("pool");
    let run_secs = (RUN as f64 / PER_DAY * 86_400.0) as i64;
    let mut walls = Vec::with_capacity(runs);
    let mut flops = 0.0;
    let mut product_secs = 0.0;
    let mut active = 0;
    let t_all = Instant::now();
    for k in 0..runs {
        let start = 1_795_132_800 + k as i64 * run_secs;
        let bytes = renamed(&dump(RUN, 1000 + k as u64, start, PER_DAY), k);
        let t0 = Instant::now();
        let state = perps_news::store::file::load(
            &state_path,
            &fresh_state().fingerprint,
            fresh_state().dim,
        )
        .expect("state");
        let mut outcome = one_run(bytes, state, dir.path(), &pool);
        perps_news::store::file::save(&state_path, &mut outcome.state).expect("save");
        walls.push(t0.elapsed());
        assert_eq!(
            outcome.summary.total_processed,
            RUN,
            "run {k}: {}",
            serde_json::to_string(&outcome.summary).unwrap_or_default()
        );
        flops += outcome.cluster.product_flops as f64;
        product_secs += outcome.cluster.product_time.as_secs_f64();
        active = outcome.summary.active_stories;
    }
    // Generating and renaming the dumps is not the engine's time.
    let _ = t_all;
    let total: Duration = walls.iter().sum();
    let tenth = (runs / 10).max(1);
    let rate = |w: &[Duration]| (w.len() * RUN) as f64 / w.iter().sum::<Duration>().as_secs_f64();
    let (first, last) = (rate(&walls[..tenth]), rate(&walls[runs - tenth..]));
    report(
        "stream",
        n,
        total,
        flops / product_secs.max(1e-9) / 1e9,
        active,
        &format!(
            "{runs} runs of {RUN} with a state file; articles/s first tenth {first:.0}, last tenth {last:.0} (ratio {:.2}); state file {:.1} MiB",
            first / last,
            std::fs::metadata(&state_path).map_or(0.0, |m| m.len() as f64 / 1048576.0)
        ),
    );
}
