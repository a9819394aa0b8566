//! A busy news day: every article inside one 48-hour window, the whole process end to end
//! with its outputs written, against what a user would write instead.
//!
//!     cargo bench --bench window                       # 10k, 20k, 50k, 100k articles
//!     cargo bench --bench window -- 10000 100000       # chosen sizes
//!     scripts/peer_venv.sh /tmp/peer                   # once: scikit-learn in a virtualenv
//!     cargo bench --bench window -- --peer /tmp/peer/bin/python 5000 10000
//!     cargo bench --bench window -- --dump DIR 10000    # only write the dump
//!
//! The dumps are generated here (nothing is committed): news-like bodies of 120-400 words
//! over a 20,000-word background vocabulary (Zipf), planted stories of 10 articles that share
//! a dozen topic words and two names, all 48 hours wide, written to a temporary directory.
//! Each command runs in a child of a child, so the peak resident set reported is its own.
//! Before a figure is printed the result is checked against the planted stories
//! (B-cubed F1). The peer is `scripts/peer_tfidf.py`: scikit-learn TF-IDF, the sparse
//! product X·Xᵀ kept at ≥ 0.2, connected components.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const STORY: usize = 10;
const VOCAB: usize = 20_000;
const WINDOW_SECS: i64 = 48 * 3600;
/// 2026-11-20T00:00:00Z.
const START: i64 = 1_795_132_800;

fn main() {
    let mut args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("--measure") {
        measure(&args[1..]);
        return;
    }
    if args.first().map(String::as_str) == Some("--dump") {
        // Only write the workload: `-- --dump DIR N`.
        let n = args
            .get(2)
            .and_then(|n| n.parse().ok())
            .expect("--dump DIR N");
        let (path, _) = write_dump(Path::new(&args[1]), n, 7);
        println!("{}", path.display());
        return;
    }
    let mut peer = None;
    if let Some(k) = args.iter().position(|a| a == "--peer") {
        peer = Some(args.get(k + 1).expect("--peer PYTHON").clone());
        args.drain(k..k + 2);
    }
    let sizes: Vec<usize> = if args.is_empty() {
        vec![10_000, 20_000, 50_000, 100_000]
    } else {
        args.iter().map(|a| a.parse().expect("a size")).collect()
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let bin = env!("CARGO_BIN_EXE_perps-news");
    let peer_script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/peer_tfidf.py");
    println!(
        "{:>8} {:<6} {:>9} {:>12} {:>9} {:>7} {:>8}",
        "N", "who", "wall s", "articles/s", "peak MiB", "F1", "stories"
    );
    for &n in &sizes {
        let (dump, gold) = write_dump(dir.path(), n, 7);
        let out = dir.path().join(format!("a{n}.jsonl"));
        let stories = dir.path().join(format!("s{n}.jsonl"));
        let ours = run_measured(&[
            bin,
            "run",
            "-q",
            dump.to_str().unwrap(),
            "--assignments",
            out.to_str().unwrap(),
            "--stories",
            stories.to_str().unwrap(),
            "--now",
            "2026-12-01T00:00:00Z",
        ]);
        let (f1, k) = score(&out, &gold);
        assert!(
            f1 >= 0.9,
            "N {n}: B-cubed F1 {f1:.3} against the planted stories"
        );
        report(n, "ours", ours, f1, k);
        if let Some(py) = &peer {
            let pout = dir.path().join(format!("p{n}.jsonl"));
            let theirs = run_measured(&[
                py,
                peer_script.to_str().unwrap(),
                dump.to_str().unwrap(),
                pout.to_str().unwrap(),
            ]);
            let (f1, k) = score(&pout, &gold);
            report(n, "peer", theirs, f1, k);
            println!(
                "{:>8} {:<6} {:>9.1}x faster",
                n,
                "ratio",
                theirs.0 / ours.0.max(1e-9)
            );
        }
        let _ = std::fs::remove_file(&dump);
    }
}

fn report(n: usize, who: &str, (wall, peak): (f64, f64), f1: f64, stories: usize) {
    println!(
        "{n:>8} {who:<6} {wall:>9.2} {:>12.0} {peak:>9.0} {f1:>7.3} {stories:>8}",
        n as f64 / wall
    );
    let _ = std::io::stdout().flush();
}

/// Runs `cmd` under `--measure` (a child of ours that waits for it) and returns its wall
/// seconds and peak resident MiB.
fn run_measured(cmd: &[&str]) -> (f64, f64) {
    let me = std::env::current_exe().expect("own path");
    let out = Command::new(me)
        .arg("--measure")
        .args(cmd)
        .output()
        .expect("measure");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text
        .split_whitespace()
        .map(|x| x.parse::<f64>().expect("number"));
    (it.next().expect("wall"), it.next().expect("peak"))
}

/// The `--measure` child: runs the command, then prints its wall seconds and the peak RSS
/// of its (only) child from `getrusage(RUSAGE_CHILDREN)`.
fn measure(cmd: &[String]) {
    let t0 = Instant::now();
    let status = Command::new(&cmd[0])
        .args(&cmd[1..])
        .status()
        .expect("spawn");
    let wall = t0.elapsed().as_secs_f64();
    assert!(status.success(), "{cmd:?} failed: {status}");
    // SAFETY: getrusage writes one plain struct we own.
    #[allow(unsafe_code)]
    let peak_kb = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        u.ru_maxrss
    };
    println!("{wall} {}", peak_kb as f64 / 1024.0);
}

/// xorshift64*: the same dump on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A pronounceable word for `i`, distinct for every `i`.
fn word(i: usize) -> String {
    const ON: [&str; 16] = [
        "b", "c", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br",
    ];
    const NU: [&str; 8] = ["a", "e", "i", "o", "u", "ai", "ou", "ea"];
    let mut w = String::new();
    let mut x = i + 1;
    while x > 0 {
        w.push_str(ON[x % 16]);
        x /= 16;
        w.push_str(NU[x % 8]);
        x /= 8;
    }
    w
}

/// Writes a dump of `n` articles and returns its path and the gold story of each id.
fn write_dump(dir: &Path, n: usize, seed: u64) -> (PathBuf, HashMap<String, usize>) {
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let vocab: Vec<String> = (0..VOCAB).map(word).collect();
    // Zipf(1.1) over the background vocabulary, by inverse CDF on a table.
    let weights: Vec<f64> = (1..=VOCAB).map(|k| 1.0 / (k as f64).powf(1.1)).collect();
    let total: f64 = weights.iter().sum();
    let mut cdf = Vec::with_capacity(VOCAB);
    let mut acc = 0.0;
    for w in &weights {
        acc += w / total;
        cdf.push(acc);
    }
    let zipf = |r: &mut Rng| {
        let u = r.unit();
        cdf.partition_point(|c| *c < u).min(VOCAB - 1)
    };
    let stories = n.div_ceil(STORY);
    let path = dir.join(format!("window-{n}.jsonl"));
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).expect("dump"));
    let mut gold = HashMap::with_capacity(n);
    let mut k = 0;
    for s in 0..stories {
        // A dozen topic words from the rarer half of the vocabulary, and two names.
        let topic: Vec<&str> = (0..12)
            .map(|_| vocab[VOCAB / 2 + r.below(VOCAB / 2)].as_str())
            .collect();
        let names: Vec<String> = (0..2)
            .map(|_| {
                let mut w = word(100_000 + s * 7 + r.below(1000));
                w[..1].make_ascii_uppercase();
                w
            })
            .collect();
        let center = r.below(WINDOW_SECS as usize) as i64;
        for _ in 0..STORY.min(n - k) {
            let t = (center + r.below(4 * 3600) as i64 - 2 * 3600).clamp(0, WINDOW_SECS - 1);
            let mut title = vec![names[0].clone()];
            for _ in 0..4 {
                title.push(topic[r.below(topic.len())].to_string());
            }
            for _ in 0..4 {
                title.push(vocab[zipf(&mut r)].clone());
            }
            let len = 120 + r.below(281);
            let mut body = Vec::with_capacity(len);
            for i in 0..len {
                let w = if r.below(100) < 12 {
                    topic[r.below(topic.len())].to_string()
                } else if r.below(100) < 3 {
                    names[i % 2].clone()
                } else {
                    vocab[zipf(&mut r)].clone()
                };
                body.push(w);
            }
            let id = format!("w{seed}-{k:07}");
            let line = serde_json::json!({
                "id": id,
                "title": title.join(" "),
                "body": body.join(" ") + ".",
                "source": format!("outlet{}.example", r.below(40)),
                "published_at": perps_news::time::format_rfc3339(START + t),
            });
            serde_json::to_writer(&mut f, &line).expect("write");
            f.write_all(b"\n").expect("write");
            gold.insert(id, s);
            k += 1;
        }
    }
    f.flush().expect("flush");
    (path, gold)
}

/// B-cubed F1 of an assignments file against the planted stories, and its story count.
fn score(assignments: &Path, gold: &HashMap<String, usize>) -> (f64, usize) {
    let text = std::fs::read_to_string(assignments).expect("assignments");
    let mut pred: HashMap<String, String> = HashMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        pred.insert(
            v["id"].as_str().expect("id").to_string(),
            v["cluster"].to_string(),
        );
    }
    assert_eq!(pred.len(), gold.len(), "every article assigned once");
    let mut gsize: HashMap<usize, usize> = HashMap::new();
    let mut psize: HashMap<&str, usize> = HashMap::new();
    let mut both: HashMap<(usize, &str), usize> = HashMap::new();
    for (id, g) in gold {
        let p = pred[id].as_str();
        *gsize.entry(*g).or_default() += 1;
        *psize.entry(p).or_default() += 1;
        *both.entry((*g, p)).or_default() += 1;
    }
    let (mut prec, mut rec) = (0.0, 0.0);
    for ((g, p), c) in &both {
        let c = *c as f64;
        prec += c * c / psize[p] as f64;
        rec += c * c / gsize[g] as f64;
    }
    let n = gold.len() as f64;
    let (prec, rec) = (prec / n, rec / n);
    (2.0 * prec * rec / (prec + rec), psize.len())
}
