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
            lang: None,
            origin: Origin {
                file: "planted".into(),
                line: i + 1,
            },
            seq: i,
        })
        .collect();
    let cfg = ClusterConfig {
        threshold: 0.3,
        time_penalty_per_hour: 0.0,
        window_hours: 48.0,
        retain_hours: 168.0,
    };
    let pool = rayon::ThreadPoolBuilder::new().build().expect("pool");
    let mut c = Clusterer::new(cfg, StoryState::new("planted", DIM));
    let batch = perps_news::pipeline::auto_batch(20, n);
    let t0 = Instant::now();
    let mut assigned = Vec::with_capacity(n);
    for (a, v) in articles.chunks(batch).zip(vecs.chunks(batch)) {
        let e: Vec<Embedding> = v.iter().cloned().map(Embedding::Dense).collect();
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

fn e2e(_n: usize) {
    unimplemented!()
}

fn stream(_n: usize) {
    unimplemented!()
}
