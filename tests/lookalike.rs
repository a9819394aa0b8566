//! The look-alike set (`fixtures/lookalike.jsonl`) through the real binary with the defaults:
//! the share of hand-labelled pairs the engine decides right.
//!
//! The fixture holds groups of two or three articles, all within six hours:
//!
//! - `kind = "lookalike"`: the same kind of event on different markets or entities (a spot
//!   XRP vs a spot SOL ETF filing, the SNB vs the Fed, three exchange hacks), which must stay
//!   apart; one group also holds a rewording of one of its events, which must join it;
//! - `kind = "reworded"`: one event told by different outlets, which must join, including
//!   stories about several assets at once (Grayscale's XRP, SOL and DOGE filings).
//!
//! Two articles of a group should share a story exactly when their `label`s are equal; the
//! labels were written before any tuning. A pair is decided right when the run puts them in
//! the same story if and only if they should. The whole file is one run (one stream, so the
//! document frequencies are those of all 147 articles, as in production), and pairs of
//! different groups, all different events, are counted too: a look-alike can also be merged
//! into another group's story.
//!
//! The floors below are the values measured with the defaults (they guard against
//! regressions and are raised as the engine improves). The target of issue 21 is that at
//! least 95% of the within-group pairs are decided right: the entity conflict gate
//! (`signals::entities`) and the short-text threshold reach 84 of 87 (0.966).
//!
//!     cargo test --test lookalike -- --nocapture

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};

use common::{assignments, jsonl, root};

/// Within-group pairs decided right with the defaults: 40 of 87 at 0529c13 (4 of the 50
/// apart pairs, 36 of the 37 join pairs); 84 of 87 with the entity conflict gate and the
/// short-text threshold of issue 21 (see the module docs).
const FLOOR_RIGHT_PAIRS: usize = 84;
/// Pairs of different groups (different events) that the defaults put in one story; a
/// ceiling. Measured 55 of 10,644 at 0529c13, 161 after the time model of issue 14 (the set
/// spans six hours: a 3 h plateau no longer tells its look-alikes apart by the hour), 9 with
/// the entity conflict gate.
const CEILING_CROSS_GROUP_JOINS: usize = 9;

/// One article of the fixture.
struct Item {
    id: String,
    group: String,
    kind: String,
    label: String,
}

fn load() -> Vec<Item> {
    let path = root("fixtures/lookalike.jsonl");
    let mut items = Vec::new();
    for (n, v) in jsonl(&path).into_iter().enumerate() {
        let field = |k: &str| -> String {
            match v[k].as_str() {
                Some(s) if !s.trim().is_empty() => s.to_string(),
                _ => panic!("lookalike.jsonl:{}: field `{k}` missing or empty", n + 1),
            }
        };
        for k in ["title", "body", "source", "published_at"] {
            field(k);
        }
        items.push(Item {
            id: field("id"),
            group: field("group"),
            kind: field("kind"),
            label: field("label"),
        });
    }
    items
}

/// The fixture is what the module docs say it is: enough groups of two or three, labels
/// that match the kinds, unique ids, all within a few hours.
#[test]
fn the_fixture_is_well_formed() {
    let items = load();
    let mut ids = HashSet::new();
    let mut groups: BTreeMap<&str, Vec<&Item>> = BTreeMap::new();
    for it in &items {
        assert!(ids.insert(it.id.as_str()), "duplicate id {}", it.id);
        groups.entry(&it.group).or_default().push(it);
    }
    let mut kinds: HashMap<&str, usize> = HashMap::new();
    let mut group_of_label: HashMap<&str, &str> = HashMap::new();
    for (g, members) in &groups {
        assert!(
            (2..=3).contains(&members.len()),
            "group {g} has {} members",
            members.len()
        );
        let kind = members[0].kind.as_str();
        assert!(
            members.iter().all(|m| m.kind == kind),
            "group {g} mixes kinds"
        );
        let labels: HashSet<&str> = members.iter().map(|m| m.label.as_str()).collect();
        match kind {
            "lookalike" => assert!(labels.len() >= 2, "look-alike group {g} has one event"),
            "reworded" => assert_eq!(labels.len(), 1, "reworded group {g} has several events"),
            other => panic!("group {g}: unknown kind {other:?}"),
        }
        for l in labels {
            let first = group_of_label.insert(l, g);
            assert!(first.is_none(), "label {l} is used by two groups");
        }
        *kinds.entry(kind).or_default() += 1;
    }
    assert!(groups.len() >= 60, "only {} groups", groups.len());
    assert!(
        kinds["lookalike"] >= 30 && kinds["reworded"] >= 25,
        "{kinds:?}"
    );
    // All within a few hours, like one busy morning of news.
    let times: Vec<String> = jsonl(&root("fixtures/lookalike.jsonl"))
        .iter()
        .map(|v| v["published_at"].as_str().unwrap().to_string())
        .collect();
    let (first, last) = (times.iter().min().unwrap(), times.iter().max().unwrap());
    assert!(
        first.starts_with("2026-11-24T0") && last.as_str() < "2026-11-24T14:00:00Z",
        "{first}..{last}"
    );
}

/// Pair counts of one run.
#[derive(Debug, Default)]
struct Score {
    apart_right: usize,
    apart: usize,
    join_right: usize,
    join: usize,
    cross_joined: usize,
    cross: usize,
}

fn score(items: &[Item], story: &HashMap<String, String>) -> Score {
    let mut s = Score::default();
    for (i, a) in items.iter().enumerate() {
        for b in &items[i + 1..] {
            let together = story[&a.id] == story[&b.id];
            if a.group != b.group {
                s.cross += 1;
                s.cross_joined += usize::from(together);
            } else if a.label == b.label {
                s.join += 1;
                s.join_right += usize::from(together);
            } else {
                s.apart += 1;
                s.apart_right += usize::from(!together);
            }
        }
    }
    s
}

#[test]
fn lookalike_pairs_decided_right_with_the_defaults() {
    let items = load();
    let fixture = root("fixtures/lookalike.jsonl");
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.jsonl");
    common::run_quiet(&fixture, &["--assignments", a.to_str().unwrap()]);
    let story: HashMap<String, String> = assignments(&a).into_iter().collect();
    assert_eq!(story.len(), items.len(), "every article is assigned once");
    let s = score(&items, &story);
    let right = s.apart_right + s.join_right;
    let total = s.apart + s.join;
    let share = |r: usize, n: usize| r as f64 / n.max(1) as f64;

    // Which groups went wrong, for the reader of the output.
    let mut wrong: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (i, x) in items.iter().enumerate() {
        for y in &items[i + 1..] {
            if x.group == y.group && ((story[&x.id] == story[&y.id]) != (x.label == y.label)) {
                wrong.entry(&x.group).or_default().push(&x.kind);
            }
        }
    }
    let e = common::eval_json(&fixture, &a);
    println!(
        "look-alike set, defaults: {right}/{total} within-group pairs right ({:.3}); \
         apart {}/{} ({:.3}), join {}/{} ({:.3}); cross-group pairs joined {}/{}; \
         B-cubed P {:.3} R {:.3} F1 {:.3}\nwrong groups: {:?}",
        share(right, total),
        s.apart_right,
        s.apart,
        share(s.apart_right, s.apart),
        s.join_right,
        s.join,
        share(s.join_right, s.join),
        s.cross_joined,
        s.cross,
        e["bcubed_p"].as_f64().unwrap_or(f64::NAN),
        e["bcubed_r"].as_f64().unwrap_or(f64::NAN),
        e["bcubed_f1"].as_f64().unwrap_or(f64::NAN),
        wrong.keys().collect::<Vec<_>>()
    );
    assert!(total >= 80, "only {total} within-group pairs");
    assert!(
        right >= FLOOR_RIGHT_PAIRS,
        "{right}/{total} within-group pairs right, fewer than the measured {FLOOR_RIGHT_PAIRS}"
    );
    assert!(
        s.cross_joined <= CEILING_CROSS_GROUP_JOINS,
        "{} cross-group pairs joined, more than the measured {CEILING_CROSS_GROUP_JOINS}",
        s.cross_joined
    );
}

/// A fresh state learns its document frequencies from its first articles, so in a 3-article
/// run one shared word ("link") weighs like a name. The short-text bar keeps the two apart;
/// with it and the entity rule off (`conflict_penalty = 0`, `short_terms = 0`) they merge,
/// which shows the test can fail.
#[test]
fn a_tiny_fresh_run_does_not_join_on_one_shared_word() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("cold.jsonl");
    std::fs::write(
        &dump,
        concat!(
            r#"{"id":"c1","title":"Chainlink price jumps 8% as LINK whales accumulate","body":"Large holders added LINK tokens over the weekend as the oracle network's price climbed 8%.","published_at":"2026-11-24T08:00:00Z","source":"a.com"}"#,
            "\n",
            r#"{"id":"c2","title":"Link your wallet to earn rewards, exchange says","body":"An exchange asked users to link a wallet to earn rewards in a new loyalty program.","published_at":"2026-11-24T08:10:00Z","source":"b.com"}"#,
            "\n",
            r#"{"id":"c3","title":"Fed holds rates steady","body":"The Federal Reserve left its benchmark rate unchanged on Wednesday.","published_at":"2026-11-24T08:20:00Z","source":"c.com"}"#,
            "\n"
        ),
    )
    .unwrap();
    let off = dir.path().join("off.toml");
    std::fs::write(
        &off,
        "[cluster]\nconflict_penalty = 0.0\nshort_terms = 0.0\n",
    )
    .unwrap();
    let place = |extra: &[&str]| {
        let a = dir.path().join("a.jsonl");
        let mut args = vec!["--assignments", a.to_str().unwrap()];
        args.extend_from_slice(extra);
        common::run_quiet(&dump, &args);
        let s: HashMap<String, String> = assignments(&a).into_iter().collect();
        s["c1"] == s["c2"]
    };
    assert!(!place(&[]), "joined on the word 'link' with the defaults");
    assert!(place(&["--pipeline", off.to_str().unwrap()]));
}
