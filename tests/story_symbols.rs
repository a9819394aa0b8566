//! Are a story's symbol tags truthful? On the bundled fixtures with the defaults, how often a
//! story carries a symbol that none of its titles names, and how often one that no title of
//! its own event names (a symbol brought in by a merged look-alike). The stories come from
//! the real binary (`run --stories`); the symbols each title names come from the same
//! shipped dictionary (`SymbolBook::builtin`), which is what the binary uses by default.
//!
//! A story's symbols are those named by any of its titles, or by the title or lead of at
//! least 30% of its articles (`src/signals/symbols.rs`). So:
//!
//! - **not in any title**: a tag that only leads carry. Legitimate when the lead names the
//!   market the title only implies, but it is also how a market mentioned in passing in
//!   leads ("bitcoin was flat") ends up tagged.
//! - **not in the own event's titles**: the story's own event is the gold label most of its
//!   articles carry; a tag none of that event's titles names came in with articles of other
//!   events: a merged look-alike (the XRP, SOL and DOGE ETF filings of one story) or a lead.
//!
//! Both are today's baseline for the conflicting-entity gate of issue 21, asserted as
//! ceilings (measured with the defaults) so that work can only lower them.
//!
//!     cargo test --test story_symbols -- --nocapture

mod common;

use std::collections::{BTreeSet, HashMap};

use common::{jsonl, root};
use perps_news::signals::symbols::SymbolBook;

/// Counts over one fixture's stories.
#[derive(Debug, Default)]
struct Truth {
    stories: usize,
    tagged: usize,
    tags: usize,
    /// Stories / tags with a symbol none of the story's titles names.
    not_in_titles: usize,
    tags_not_in_titles: usize,
    /// Stories / tags with a symbol no title of the story's own (majority) event names.
    not_in_own_titles: usize,
    tags_not_in_own_titles: usize,
}

fn measure(fixture: &str) -> Truth {
    let path = root(fixture);
    let dir = tempfile::tempdir().unwrap();
    let stories_path = dir.path().join("stories.jsonl");
    common::run_quiet(&path, &["--stories", stories_path.to_str().unwrap()]);
    let book = SymbolBook::builtin();
    // id -> (symbols its title names, gold label)
    let articles: HashMap<String, (BTreeSet<String>, String)> = jsonl(&path)
        .into_iter()
        .map(|v| {
            let title = v["title"].as_str().unwrap();
            let syms = book
                .symbols_in(title)
                .into_iter()
                .map(|h| h.symbol)
                .collect();
            (
                v["id"].as_str().unwrap().to_string(),
                (syms, v["label"].as_str().unwrap().to_string()),
            )
        })
        .collect();
    let stories = jsonl(&stories_path);
    let mut t = Truth {
        stories: stories.len(),
        ..Truth::default()
    };
    let mut members_seen = 0;
    for s in &stories {
        let ids: Vec<&str> = s["articles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        members_seen += ids.len();
        let tags: Vec<&str> = s["symbols"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap())
            .collect();
        if tags.is_empty() {
            continue;
        }
        t.tagged += 1;
        t.tags += tags.len();
        // The story's own event: the label most of its articles carry (ties: the smaller).
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for id in &ids {
            *votes.entry(articles[*id].1.as_str()).or_default() += 1;
        }
        let own = votes
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(l, _)| *l)
            .unwrap();
        let named: BTreeSet<&str> = ids
            .iter()
            .flat_map(|id| articles[*id].0.iter().map(String::as_str))
            .collect();
        let own_named: BTreeSet<&str> = ids
            .iter()
            .filter(|id| articles[**id].1 == own)
            .flat_map(|id| articles[*id].0.iter().map(String::as_str))
            .collect();
        let not_named = tags.iter().filter(|x| !named.contains(*x)).count();
        let not_own = tags.iter().filter(|x| !own_named.contains(*x)).count();
        t.not_in_titles += usize::from(not_named > 0);
        t.tags_not_in_titles += not_named;
        t.not_in_own_titles += usize::from(not_own > 0);
        t.tags_not_in_own_titles += not_own;
    }
    assert_eq!(
        members_seen,
        articles.len(),
        "{fixture}: every article in one story"
    );
    t
}

#[test]
fn story_symbols_named_by_no_title_baseline() {
    // (fixture, ceiling on stories with a tag no title names, ceiling on stories with a tag
    // no title of their own event names), as measured with the defaults and the 117-symbol
    // dictionary: news-100 2 and 5 of 14 tagged stories, news-1000 15 and 40 of 96. (With
    // the 41 symbols of 0529c13: 2 and 5 of 12, 13 and 37 of 89; the new tags come from
    // Monero, Kaspa, Algorand and Starknet stories, whose leads now count.) With the entity
    // gate of issue 21, merged look-alikes no longer carry each other's tickers: news-100 2
    // and 2 of 18, news-1000 26 and 26 of 144 (from 40 own-event misses to 26; every tag no
    // title names is now one its own event's leads name, kept by the 30% rule). The first
    // ceiling of news-1000 rose from 15 to 26 with that: more, smaller stories (196, from 52)
    // in which a lead-only symbol reaches 30% of the articles.
    for (fixture, max_not_in_titles, max_not_in_own) in [
        ("fixtures/news-100.jsonl", 2, 2),
        ("fixtures/news-1000.jsonl", 26, 26),
    ] {
        let t = measure(fixture);
        let pct = |n: usize, d: usize| 100.0 * n as f64 / d.max(1) as f64;
        println!(
            "{fixture}: {} stories, {} tagged ({} tags); a tag no title names: {} stories \
             ({:.1}% of tagged), {} tags ({:.1}%); a tag no title of the own event names: {} \
             stories ({:.1}% of tagged), {} tags ({:.1}%)",
            t.stories,
            t.tagged,
            t.tags,
            t.not_in_titles,
            pct(t.not_in_titles, t.tagged),
            t.tags_not_in_titles,
            pct(t.tags_not_in_titles, t.tags),
            t.not_in_own_titles,
            pct(t.not_in_own_titles, t.tagged),
            t.tags_not_in_own_titles,
            pct(t.tags_not_in_own_titles, t.tags),
        );
        assert!(t.tagged > 0, "{fixture}: no story carries a symbol");
        assert!(
            t.not_in_own_titles >= t.not_in_titles,
            "a tag no title names is also one no own-event title names"
        );
        assert!(
            t.not_in_titles <= max_not_in_titles,
            "{fixture}: {} stories carry a symbol no title names (baseline {max_not_in_titles})",
            t.not_in_titles
        );
        assert!(
            t.not_in_own_titles <= max_not_in_own,
            "{fixture}: {} stories carry a symbol no title of their event names (baseline \
             {max_not_in_own})",
            t.not_in_own_titles
        );
    }
}
