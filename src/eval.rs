//! Clustering quality scoring: B-cubed and pairwise precision / recall / F1 of a
//! predicted clustering against gold story labels.
//!
//! This is a port of the reference scorer `tools/bcubed.py` and reproduces its
//! numbers bit for bit (as run under the project's Python 3.11):
//!
//! * The document set is the set of gold ids. A gold id missing from the
//!   prediction is scored as its own singleton cluster and counted in
//!   [`Scores::missing_in_pred`]; predicted ids not in gold are ignored and
//!   counted in [`Scores::extra_in_pred`].
//! * B-cubed (Bagga & Baldwin 1998; Amigó et al. 2009), per document `d`:
//!   `P(d) = |C(d) ∩ L(d)| / |C(d)|`, `R(d) = |C(d) ∩ L(d)| / |L(d)|`, where
//!   `C(d)` is the predicted cluster and `L(d)` the gold class of `d` (both
//!   containing `d`). BP and BR are averages over documents and
//!   `BF1 = 2·BP·BR / (BP + BR)`.
//! * Pairwise: over unordered document pairs, TP = together in both, FP =
//!   together in pred only, FN = together in gold only; `P = TP / (TP + FP)`,
//!   `R = TP / (TP + FN)`, F1 the harmonic mean. When a side has no positive
//!   pairs the corresponding ratio is reported as `1.0`.
//!
//! Floating-point sums run in one fixed order (the order in which each
//! (cluster, label) cell first occurs while walking the gold documents, i.e.
//! Python's `Counter` order), so results are bit-identical across runs and do
//! not depend on hash-map iteration order. Scoring is O(n). (Python 3.12+
//! `sum()` uses compensated summation, so under a newer interpreter the
//! reference's B-cubed values can differ from these in the last bit.)

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::{Number, Value};

/// Clustering quality metrics, as produced by [`score`].
///
/// Field names and order match the JSON emitted by `bcubed.py --json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Scores {
    /// Number of (distinct) gold documents scored.
    pub docs: usize,
    /// Number of distinct gold labels.
    pub gold_clusters: usize,
    /// Number of predicted clusters over the gold documents, counting each gold
    /// document missing from the prediction as its own cluster.
    pub pred_clusters: usize,
    /// Number of predicted clusters of size one (including missing documents).
    pub pred_singletons: usize,
    /// Gold documents absent from the prediction (scored as singletons).
    pub missing_in_pred: usize,
    /// Predicted ids that are not gold documents (ignored).
    pub extra_in_pred: usize,
    /// B-cubed precision.
    pub bcubed_p: f64,
    /// B-cubed recall.
    pub bcubed_r: f64,
    /// B-cubed F1 (0.0 when precision and recall are both 0).
    pub bcubed_f1: f64,
    /// Pairwise precision (1.0 when the prediction puts no pair together).
    pub pair_p: f64,
    /// Pairwise recall (1.0 when gold puts no pair together).
    pub pair_r: f64,
    /// Pairwise F1 (0.0 when precision and recall are both 0).
    pub pair_f1: f64,
    /// Pairs together in both gold and prediction.
    pub pair_tp: u64,
    /// Pairs together in the prediction only.
    pub pair_fp: u64,
    /// Pairs together in gold only.
    pub pair_fn: u64,
}

/// Errors from loading label files or scoring.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// File being read.
        path: PathBuf,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A line of a JSON Lines file is invalid: bad JSON or UTF-8, not an
    /// object, missing `id` or the value key, a value of the wrong type, or a
    /// duplicate id.
    #[error("{path}:{line}: {message}")]
    Line {
        /// File being read.
        path: PathBuf,
        /// 1-based line number (`\n`, `\r\n` and a lone `\r` all end a line).
        line: usize,
        /// What is wrong with the line.
        message: String,
    },
    /// The gold set contains no documents.
    #[error("no gold documents")]
    Empty,
    /// Too few gold ids appear in the assignments: the files do not describe the same
    /// articles (another dump, ids renumbered), and the scores would say nothing.
    #[error(
        "{path}: only {found} of the {gold} gold ids appear in the assignments ({pct:.1}%, \
         at least {min_pct:.0}% needed): are they of the same dump? (--min-coverage sets the \
         share)"
    )]
    Coverage {
        /// The assignments file.
        path: PathBuf,
        /// Gold ids found in the assignments.
        found: usize,
        /// Gold ids.
        gold: usize,
        /// `found` as a percentage of `gold`.
        pct: f64,
        /// The least share accepted, in percent.
        min_pct: f64,
    },
}

/// Scores a predicted clustering against gold labels.
///
/// `gold` holds `(id, label)` pairs and `pred` holds `(id, cluster)` pairs.
/// The order of `gold` defines the document set and the (fixed) order of the
/// floating-point sums. Both slices are treated like Python dicts: if an id
/// occurs more than once, the id keeps its first position and its last value.
/// ([`load_jsonl`] never returns duplicate ids.)
///
/// Gold ids missing from `pred` are scored as singletons; `pred` ids not in
/// `gold` are ignored. Both are counted in the result.
///
/// # Errors
///
/// Returns [`EvalError::Empty`] if `gold` is empty.
pub fn score(gold: &[(String, String)], pred: &[(String, String)]) -> Result<Scores, EvalError> {
    // Gold as an insertion-ordered dict: first position, last value.
    let mut gold_pos: HashMap<&str, usize> = HashMap::with_capacity(gold.len());
    let mut docs: Vec<(&str, &str)> = Vec::with_capacity(gold.len());
    for (id, label) in gold {
        match gold_pos.entry(id.as_str()) {
            Entry::Occupied(e) => docs[*e.get()].1 = label.as_str(),
            Entry::Vacant(e) => {
                e.insert(docs.len());
                docs.push((id.as_str(), label.as_str()));
            }
        }
    }
    if docs.is_empty() {
        return Err(EvalError::Empty);
    }

    // Prediction as a dict: last value wins.
    let mut pred_map: HashMap<&str, &str> = HashMap::with_capacity(pred.len());
    for (id, cluster) in pred {
        pred_map.insert(id.as_str(), cluster.as_str());
    }
    let extra_in_pred = pred_map
        .keys()
        .filter(|id| !gold_pos.contains_key(*id))
        .count();

    // Dense indices for clusters, labels and (cluster, label) cells, each
    // numbered in order of first occurrence over the gold documents.
    let mut cluster_idx: HashMap<&str, usize> = HashMap::new();
    let mut label_idx: HashMap<&str, usize> = HashMap::new();
    let mut cell_idx: HashMap<(usize, usize), usize> = HashMap::new();
    let mut csize: Vec<u64> = Vec::new();
    let mut lsize: Vec<u64> = Vec::new();
    let mut cells: Vec<(usize, usize, u64)> = Vec::new(); // (cluster, label, count)
    let mut missing_in_pred = 0usize;

    for &(id, label) in &docs {
        let c = match pred_map.get(id) {
            Some(&cluster) => intern(&mut cluster_idx, &mut csize, cluster),
            None => {
                // Gold ids are distinct, so each missing document is a new cluster.
                missing_in_pred += 1;
                csize.push(0);
                csize.len() - 1
            }
        };
        csize[c] += 1;
        let l = intern(&mut label_idx, &mut lsize, label);
        lsize[l] += 1;
        let k = match cell_idx.entry((c, l)) {
            Entry::Occupied(e) => *e.get(),
            Entry::Vacant(e) => {
                cells.push((c, l, 0));
                *e.insert(cells.len() - 1)
            }
        };
        cells[k].2 += 1;
    }

    let n = docs.len();
    // Plain left-to-right summation in cell order, exactly like Python 3.11's
    // `sum()`. Integer quotients are exact conversions followed by one IEEE
    // division, which equals Python's int/int true division below 2**53.
    let mut bp_sum = 0.0f64;
    let mut br_sum = 0.0f64;
    let mut tp = 0u64;
    for &(c, l, cnt) in &cells {
        let sq = (cnt * cnt) as f64;
        bp_sum += sq / csize[c] as f64;
        br_sum += sq / lsize[l] as f64;
        tp += comb2(cnt);
    }
    let bcubed_p = bp_sum / n as f64;
    let bcubed_r = br_sum / n as f64;

    let pred_pairs: u64 = csize.iter().map(|&v| comb2(v)).sum();
    let gold_pairs: u64 = lsize.iter().map(|&v| comb2(v)).sum();
    let pair_p = if pred_pairs == 0 {
        1.0
    } else {
        tp as f64 / pred_pairs as f64
    };
    let pair_r = if gold_pairs == 0 {
        1.0
    } else {
        tp as f64 / gold_pairs as f64
    };

    Ok(Scores {
        docs: n,
        gold_clusters: lsize.len(),
        pred_clusters: csize.len(),
        pred_singletons: csize.iter().filter(|&&v| v == 1).count(),
        missing_in_pred,
        extra_in_pred,
        bcubed_p,
        bcubed_r,
        bcubed_f1: f1(bcubed_p, bcubed_r),
        pair_p,
        pair_r,
        pair_f1: f1(pair_p, pair_r),
        pair_tp: tp,
        pair_fp: pred_pairs - tp,
        pair_fn: gold_pairs - tp,
    })
}

/// Returns the dense index of `key`, allocating a zero-sized slot in `sizes`
/// the first time `key` is seen.
fn intern<'a>(index: &mut HashMap<&'a str, usize>, sizes: &mut Vec<u64>, key: &'a str) -> usize {
    *index.entry(key).or_insert_with(|| {
        sizes.push(0);
        sizes.len() - 1
    })
}

/// Number of unordered pairs among `n` items.
fn comb2(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2
}

/// Harmonic mean, 0.0 when both inputs are 0 (same expression as bcubed.py).
fn f1(p: f64, r: f64) -> f64 {
    if p + r > 0.0 {
        2.0 * p * r / (p + r)
    } else {
        0.0
    }
}

/// Checks that at least `min_share` of the gold documents have an assignment.
///
/// # Errors
/// [`EvalError::Coverage`] naming `path` when fewer do.
pub fn check_coverage(scores: &Scores, min_share: f64, path: &Path) -> Result<(), EvalError> {
    let found = scores.docs - scores.missing_in_pred;
    let share = found as f64 / scores.docs.max(1) as f64;
    if share + 1e-12 < min_share {
        return Err(EvalError::Coverage {
            path: path.to_path_buf(),
            found,
            gold: scores.docs,
            pct: share * 100.0,
            min_pct: min_share * 100.0,
        });
    }
    Ok(())
}

/// Reads a JSON Lines file of `{"id": ..., key: ...}` objects, in file order.
///
/// Use `key = "label"` for gold files and `key = "cluster"` for predictions.
/// `id` and the `key` value must each be a JSON string (taken verbatim) or a
/// number, which is stringified canonically so that numerically equal values
/// match as they do in Python (`1`, `1.0` and `1e0` all become `"1"`).
/// Unlike bcubed.py, which keys on the raw JSON value, a number and a string
/// with the same text (`1` and `"1"`) are therefore the same key, and `null`,
/// booleans, arrays and objects are rejected rather than used as keys.
/// Other fields are ignored. Lines are split on `\n`, `\r\n` and lone `\r`
/// (Python's universal newlines), surrounding whitespace is stripped, and blank
/// lines are skipped; line numbers in errors count every line.
///
/// # Errors
///
/// * [`EvalError::Io`] if the file cannot be opened or read.
/// * [`EvalError::Line`] (with the path and 1-based line number) for a line
///   that is not valid UTF-8 or JSON, is not an object, lacks `id` or `key`,
///   has an `id` or `key` value that is neither a string nor a number, or
///   repeats an earlier id (like bcubed.py, duplicates are an error).
pub fn load_jsonl(path: &Path, key: &str) -> Result<Vec<(String, String)>, EvalError> {
    let io_err = |source: std::io::Error| EvalError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = BufReader::new(File::open(path).map_err(io_err)?);
    let mut out = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf).map_err(io_err)? == 0 {
            break;
        }
        // A chunk ends at "\n" (or EOF); it may still contain lone "\r" breaks.
        let mut body: &[u8] = &buf;
        if let Some(rest) = body.strip_suffix(b"\n") {
            body = rest;
        }
        if let Some(rest) = body.strip_suffix(b"\r") {
            body = rest;
        }
        for raw in body.split(|&b| b == b'\r') {
            line_no += 1;
            let line_err = |message: String| EvalError::Line {
                path: path.to_path_buf(),
                line: line_no,
                message,
            };
            let text =
                std::str::from_utf8(raw).map_err(|e| line_err(format!("invalid UTF-8: {e}")))?;
            if let Some(pair) = parse_line(text, key, &mut seen).map_err(line_err)? {
                out.push(pair);
            }
        }
    }
    Ok(out)
}

/// Parses one line; `Ok(None)` for a blank line.
fn parse_line(
    text: &str,
    key: &str,
    seen: &mut HashSet<String>,
) -> Result<Option<(String, String)>, String> {
    let trimmed = text.trim_matches(is_py_space);
    if trimmed.is_empty() {
        return Ok(None);
    }
    let value: Value = serde_json::from_str(trimmed).map_err(|e| {
        let lead = text.len() - text.trim_start_matches(is_py_space).len();
        let full = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let msg = full.strip_suffix(&suffix).unwrap_or(&full);
        format!("invalid JSON at column {}: {msg}", e.column() + lead)
    })?;
    let Value::Object(obj) = value else {
        return Err(format!("expected a JSON object with 'id' and '{key}'"));
    };
    let (Some(id_val), Some(key_val)) = (obj.get("id"), obj.get(key)) else {
        return Err(format!("needs 'id' and '{key}'"));
    };
    let id = scalar_key(id_val)
        .ok_or_else(|| format!("'id' must be a string or number, got {id_val}"))?;
    if !seen.insert(id.clone()) {
        return Err(format!("duplicate id {id_val}"));
    }
    let val = scalar_key(key_val)
        .ok_or_else(|| format!("'{key}' must be a string or number, got {key_val}"))?;
    Ok(Some((id, val)))
}

/// Python's `str.isspace()`: Unicode whitespace plus the separators U+001C..U+001F.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Strings verbatim, numbers canonically; `None` for any other JSON type.
fn scalar_key(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(number_key(n)),
        _ => None,
    }
}

/// Canonical text of a JSON number such that numerically equal values (which
/// are equal dict keys in Python, e.g. `1 == 1.0`) get the same string:
/// integral values are written as exact integers, others in shortest
/// round-trip decimal form.
fn number_key(n: &Number) -> String {
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    match n.as_f64() {
        // |x| < 2^127 fits in i128 exactly; `as` maps -0.0 to 0.
        Some(x) if x.fract() == 0.0 && x.abs() < 2f64.powi(127) => (x as i128).to_string(),
        Some(x) => x.to_string(),
        None => n.to_string(),
    }
}

/// Human-readable report, byte-identical to what bcubed.py prints without
/// `--json`: a line of counts, then B-cubed and pairwise P/R/F1 with 4 decimals
/// (and the pair counts). Three lines, each ending in `\n` (print with
/// `print!`).
pub fn render(s: &Scores) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "docs={} gold_clusters={} pred_clusters={} pred_singletons={} missing_in_pred={} \
         extra_in_pred={}\n\
         B-cubed  P={:.4} R={:.4} F1={:.4}\n\
         Pairwise P={:.4} R={:.4} F1={:.4} (TP={} FP={} FN={})\n",
        s.docs,
        s.gold_clusters,
        s.pred_clusters,
        s.pred_singletons,
        s.missing_in_pred,
        s.extra_in_pred,
        s.bcubed_p,
        s.bcubed_r,
        s.bcubed_f1,
        s.pair_p,
        s.pair_r,
        s.pair_f1,
        s.pair_tp,
        s.pair_fp,
        s.pair_fn,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};

    /// A unique scratch directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!(
                "perps-news-eval-test-{}-{nanos}-{n}",
                std::process::id()
            ));
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn write(&self, name: &str, contents: &str) -> PathBuf {
            let path = self.0.join(name);
            fs::write(&path, contents).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// Expected values as printed by bcubed.py --json.
    struct Expected {
        counts: [usize; 6],
        bcubed: [f64; 3],
        pair: [f64; 3],
        pair_counts: [u64; 3],
    }

    fn run_files(gold: &str, pred: &str) -> Scores {
        let dir = TempDir::new();
        let g = load_jsonl(&dir.write("gold.jsonl", gold), "label").unwrap();
        let p = load_jsonl(&dir.write("pred.jsonl", pred), "cluster").unwrap();
        score(&g, &p).unwrap()
    }

    fn check(s: &Scores, e: &Expected) {
        let counts = [
            s.docs,
            s.gold_clusters,
            s.pred_clusters,
            s.pred_singletons,
            s.missing_in_pred,
            s.extra_in_pred,
        ];
        assert_eq!(counts, e.counts, "{s:?}");
        assert_eq!([s.pair_tp, s.pair_fp, s.pair_fn], e.pair_counts, "{s:?}");
        let got = [
            s.bcubed_p,
            s.bcubed_r,
            s.bcubed_f1,
            s.pair_p,
            s.pair_r,
            s.pair_f1,
        ];
        let want = [
            e.bcubed[0],
            e.bcubed[1],
            e.bcubed[2],
            e.pair[0],
            e.pair[1],
            e.pair[2],
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "got {g}, want {w}: {s:?}");
        }
    }

    const GOLD5: &str = r#"{"id":"a","label":"s1"}
{"id":"b","label":"s1"}
{"id":"c","label":"s2"}
{"id":"d","label":"s2"}
{"id":"e","label":"s3"}
"#;

    // All expected numbers below were produced by the reference scorer:
    //   python3 /work/shared/tools/bcubed.py GOLD PRED --json
    // on exactly these fixtures (Python 3.11.7).

    #[test]
    fn perfect_matches_reference() {
        let pred = r#"{"id":"a","cluster":10}
{"id":"b","cluster":10}
{"id":"c","cluster":"x"}
{"id":"d","cluster":"x"}
{"id":"e","cluster":3}
"#;
        let s = run_files(GOLD5, pred);
        check(
            &s,
            &Expected {
                counts: [5, 3, 3, 1, 0, 0],
                bcubed: [1.0, 1.0, 1.0],
                pair: [1.0, 1.0, 1.0],
                pair_counts: [2, 0, 0],
            },
        );
    }

    #[test]
    fn all_singletons_matches_reference() {
        let pred = r#"{"id":"a","cluster":"a"}
{"id":"b","cluster":"b"}
{"id":"c","cluster":"c"}
{"id":"d","cluster":"d"}
{"id":"e","cluster":"e"}
"#;
        let s = run_files(GOLD5, pred);
        check(
            &s,
            &Expected {
                counts: [5, 3, 5, 5, 0, 0],
                bcubed: [1.0, 0.6, 0.7499999999999999],
                pair: [1.0, 0.0, 0.0],
                pair_counts: [0, 0, 2],
            },
        );
    }

    #[test]
    fn all_in_one_matches_reference() {
        let pred = r#"{"id":"a","cluster":0}
{"id":"b","cluster":0}
{"id":"c","cluster":0}
{"id":"d","cluster":0}
{"id":"e","cluster":0}
"#;
        let s = run_files(GOLD5, pred);
        check(
            &s,
            &Expected {
                counts: [5, 3, 1, 0, 0, 0],
                bcubed: [0.36, 1.0, 0.5294117647058824],
                pair: [0.2, 1.0, 0.33333333333333337],
                pair_counts: [2, 8, 0],
            },
        );
    }

    const GOLD10: &str = r#"{"id":"d0","label":"A"}
{"id":"d1","label":"A"}
{"id":"d2","label":"A"}
{"id":"d3","label":"A"}
{"id":"d4","label":"B"}
{"id":"d5","label":"B"}
{"id":"d6","label":"B"}
{"id":"d7","label":"C"}
{"id":"d8","label":"C"}
{"id":"d9","label":"D"}
"#;

    // d3 and d9 missing from the prediction, x1 and x2 extra; blank lines.
    const PRED_MIXED: &str = "{\"id\":\"d0\",\"cluster\":1}
{\"id\":\"d1\",\"cluster\":1}

{\"id\":\"d2\",\"cluster\":2}
{\"id\":\"x1\",\"cluster\":1}
{\"id\":\"d4\",\"cluster\":2}
   
{\"id\":\"d5\",\"cluster\":2}
{\"id\":\"d6\",\"cluster\":3}
{\"id\":\"d7\",\"cluster\":3}
{\"id\":\"d8\",\"cluster\":4}
{\"id\":\"x2\",\"cluster\":5}
";

    #[test]
    fn mixed_missing_and_extra_matches_reference() {
        let s = run_files(GOLD10, PRED_MIXED);
        check(
            &s,
            &Expected {
                counts: [10, 4, 6, 3, 2, 2],
                bcubed: [0.7666666666666667, 0.5166666666666666, 0.6173160173160174],
                pair: [0.4, 0.2, 0.26666666666666666],
                pair_counts: [2, 3, 8],
            },
        );
        // Same fixture, bcubed.py without --json.
        assert_eq!(
            render(&s),
            "docs=10 gold_clusters=4 pred_clusters=6 pred_singletons=3 missing_in_pred=2 \
             extra_in_pred=2\n\
             B-cubed  P=0.7667 R=0.5167 F1=0.6173\n\
             Pairwise P=0.4000 R=0.2000 F1=0.2667 (TP=2 FP=3 FN=8)\n"
        );
    }

    #[test]
    fn numeric_ids_and_labels_match_reference() {
        // Python treats 1, 1.0 and 1e0 as the same dict key.
        let gold = "{\"id\":1,\"label\":7}\n{\"id\":2,\"label\":7.0}\n\
                    {\"id\":3,\"label\":8}\n{\"id\":4,\"label\":9}\n";
        let pred = "{\"id\":1.0,\"cluster\":1}\n{\"id\":2,\"cluster\":1.0}\n\
                    {\"id\":3e0,\"cluster\":1}\n{\"id\":4,\"cluster\":2}\n";
        let s = run_files(gold, pred);
        check(
            &s,
            &Expected {
                counts: [4, 3, 2, 1, 0, 0],
                bcubed: [0.6666666666666666, 1.0, 0.8],
                pair: [0.3333333333333333, 1.0, 0.5],
                pair_counts: [1, 2, 0],
            },
        );
    }

    #[test]
    fn json_matches_reference_output() {
        let s = run_files(GOLD10, PRED_MIXED);
        // bcubed.py --json output for the mixed fixture, whitespace removed.
        let reference = "{\"docs\":10,\"gold_clusters\":4,\"pred_clusters\":6,\"pred_singletons\":3,\
            \"missing_in_pred\":2,\"extra_in_pred\":2,\"bcubed_p\":0.7666666666666667,\
            \"bcubed_r\":0.5166666666666666,\"bcubed_f1\":0.6173160173160174,\"pair_p\":0.4,\
            \"pair_r\":0.2,\"pair_f1\":0.26666666666666666,\"pair_tp\":2,\"pair_fp\":3,\
            \"pair_fn\":8}";
        assert_eq!(serde_json::to_string(&s).unwrap(), reference);
    }

    #[test]
    fn score_slices_use_dict_semantics() {
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|&(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        // "a" keeps its first position but takes the last label/cluster.
        let gold = pairs(&[("a", "X"), ("b", "Y"), ("a", "Y")]);
        let pred = pairs(&[("a", "1"), ("b", "1"), ("a", "2"), ("a", "1")]);
        let s = score(&gold, &pred).unwrap();
        assert_eq!((s.docs, s.gold_clusters, s.pred_clusters), (2, 1, 1));
        assert_eq!((s.pair_tp, s.pair_fp, s.pair_fn), (1, 0, 0));
        assert_eq!(s.bcubed_f1, 1.0);
    }

    #[test]
    fn results_are_bit_identical_across_runs() {
        let gold: Vec<(String, String)> = (0..3000)
            .map(|i| (format!("d{i}"), format!("L{}", (i * 7) % 113)))
            .collect();
        let pred: Vec<(String, String)> = (0..3000)
            .filter(|i| i % 17 != 0)
            .map(|i| (format!("d{i}"), format!("C{}", (i * 13) % 97)))
            .collect();
        let first = score(&gold, &pred).unwrap();
        for _ in 0..5 {
            let again = score(&gold, &pred).unwrap();
            assert_eq!(again.bcubed_p.to_bits(), first.bcubed_p.to_bits());
            assert_eq!(again.bcubed_r.to_bits(), first.bcubed_r.to_bits());
            assert_eq!(again, first);
        }
    }

    #[test]
    fn malformed_line_reports_path_and_line() {
        let dir = TempDir::new();
        let path = dir.write(
            "bad.jsonl",
            "{\"id\":\"a\",\"label\":\"x\"}\n\n{\"id\":\"b\",\n",
        );
        let err = load_jsonl(&path, "label").unwrap_err();
        match &err {
            EvalError::Line { path: p, line, .. } => {
                assert_eq!(p, &path);
                assert_eq!(*line, 3);
            }
            other => panic!("unexpected error {other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("{}:3: invalid JSON", path.display())),
            "{msg}"
        );
    }

    #[test]
    fn line_numbers_follow_universal_newlines() {
        // bcubed.py reports "crlf.jsonl:4: needs 'id' and 'label'" for this file.
        let dir = TempDir::new();
        let path = dir.write(
            "crlf.jsonl",
            "{\"id\":\"a\",\"label\":\"x\"}\r\n\r\n{\"id\":\"b\",\"label\":\"x\"}\r{\"id\":\"c\"}\n",
        );
        let err = load_jsonl(&path, "label").unwrap_err();
        assert!(matches!(err, EvalError::Line { line: 4, .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("{}:4: needs 'id' and 'label'", path.display())
        );
    }

    #[test]
    fn missing_key_is_an_error() {
        let dir = TempDir::new();
        let path = dir.write(
            "pred.jsonl",
            "{\"id\":\"a\",\"cluster\":1}\n{\"id\":\"b\"}\n",
        );
        let err = load_jsonl(&path, "cluster").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}:2: needs 'id' and 'cluster'", path.display())
        );
        // The gold key is required too.
        let err = load_jsonl(&path, "label").unwrap_err();
        assert!(matches!(err, EvalError::Line { line: 1, .. }), "{err:?}");
    }

    #[test]
    fn duplicate_id_is_an_error() {
        // bcubed.py: "dup.jsonl:2: duplicate id 'a'".
        let dir = TempDir::new();
        let path = dir.write(
            "dup.jsonl",
            "{\"id\":\"a\",\"label\":\"x\"}\n{\"id\":\"a\",\"label\":\"y\"}\n",
        );
        let err = load_jsonl(&path, "label").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}:2: duplicate id \"a\"", path.display())
        );
        // 1 and 1.0 are the same id.
        let path = dir.write(
            "dup2.jsonl",
            "{\"id\":1,\"label\":\"x\"}\n{\"id\":1.0,\"label\":\"y\"}\n",
        );
        let err = load_jsonl(&path, "label").unwrap_err();
        assert!(matches!(err, EvalError::Line { line: 2, .. }), "{err:?}");
    }

    #[test]
    fn non_scalar_values_are_errors() {
        let dir = TempDir::new();
        let path = dir.write("p.jsonl", "{\"id\":\"a\",\"cluster\":[1]}\n");
        let err = load_jsonl(&path, "cluster").unwrap_err();
        assert!(matches!(err, EvalError::Line { line: 1, .. }), "{err:?}");
        let path = dir.write("q.jsonl", "[\"id\",\"cluster\"]\n");
        let err = load_jsonl(&path, "cluster").unwrap_err();
        assert!(matches!(err, EvalError::Line { line: 1, .. }), "{err:?}");
    }

    #[test]
    fn empty_gold_is_an_error() {
        let dir = TempDir::new();
        let path = dir.write("empty.jsonl", "\n  \n");
        let gold = load_jsonl(&path, "label").unwrap();
        assert!(gold.is_empty());
        let pred = vec![("a".to_string(), "1".to_string())];
        let err = score(&gold, &pred).unwrap_err();
        assert!(matches!(err, EvalError::Empty));
        assert_eq!(err.to_string(), "no gold documents");
    }

    #[test]
    fn missing_file_is_io_error() {
        let dir = TempDir::new();
        let path = dir.0.join("nope.jsonl");
        let err = load_jsonl(&path, "label").unwrap_err();
        assert!(matches!(err, EvalError::Io { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with(&format!("{}: ", path.display()))
        );
    }
}
