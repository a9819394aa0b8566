//! A rule-based article categorizer: each category is a list of keywords and phrases;
//! an article gets the category whose keywords it mentions most (title words count double),
//! or the fallback (`other`) when none match. No model, no network: the default behind
//! `categorization` jobs until an LLM categorizer is configured.
//!
//! The categories are a fixed list ([`CATEGORIES`]); a caller may restrict it (a job's
//! `categories` field), and the order of [`CATEGORIES`] breaks ties, most specific first: an
//! exchange hack is `security` before it is `exchange`.

use std::collections::HashMap;

use crate::error::{Error, Result};

/// The category every article without a keyword match gets.
pub const FALLBACK: &str = "other";

/// Every category the rule categorizer knows, in tie-breaking order, with its keywords
/// (lowercase; a keyword with a space matches that phrase, a keyword ending in `*` any word
/// with that prefix).
pub const CATEGORIES: &[(&str, &[&str])] = &[
    (
        "security",
        &[
            "hack",
            "hacked",
            "hacker*",
            "exploit*",
            "breach*",
            "stolen",
            "theft",
            "drained",
            "attack*",
            "vulnerab*",
            "phishing",
            "scam*",
            "rug pull",
            "compromised",
            "bug bounty",
            "ransomware",
            "laundering",
            "frozen funds",
        ],
    ),
    (
        "regulation",
        &[
            "sec",
            "cftc",
            "regulat*",
            "lawsuit*",
            "sues",
            "sued",
            "court",
            "judge",
            "settle*",
            "fine",
            "fined",
            "penalty",
            "ban",
            "bans",
            "banned",
            "license*",
            "licence*",
            "compliance",
            "legislation",
            "bill",
            "senate",
            "congress",
            "mica",
            "enforcement",
            "charged",
            "indictment",
            "prosecutor*",
            "approval",
            "approves",
            "approved",
        ],
    ),
    (
        "exchange",
        &[
            "exchange",
            "exchanges",
            "binance",
            "coinbase",
            "kraken",
            "okx",
            "bybit",
            "bitfinex",
            "gemini",
            "kucoin",
            "bitstamp",
            "gate.io",
            "htx",
            "listing",
            "lists",
            "delist*",
            "withdrawals",
            "deposits",
            "trading pair*",
            "perpetual*",
            "futures",
            "open interest",
            "liquidation*",
        ],
    ),
    (
        "macro",
        &[
            "fed",
            "federal reserve",
            "interest rate*",
            "rate cut*",
            "rate hike*",
            "inflation",
            "cpi",
            "ppi",
            "gdp",
            "recession",
            "jobs report",
            "payrolls",
            "unemployment",
            "treasury",
            "treasuries",
            "yields",
            "dollar",
            "dxy",
            "powell",
            "fomc",
            "tariff*",
            "central bank*",
            "ecb",
            "stocks",
            "nasdaq",
            "s&p",
        ],
    ),
    (
        "crypto",
        &[
            "bitcoin",
            "btc",
            "ethereum",
            "eth",
            "ether",
            "solana",
            "sol",
            "xrp",
            "crypto*",
            "blockchain",
            "token*",
            "stablecoin*",
            "defi",
            "nft*",
            "altcoin*",
            "etf",
            "etfs",
            "memecoin*",
            "airdrop*",
            "staking",
            "layer 2",
            "wallet*",
            "mining",
            "miners",
            "halving",
            "on-chain",
            "onchain",
        ],
    ),
];

/// The category of one article, with the evidence.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Category {
    /// The category name.
    pub category: String,
    /// Keyword hits: 2 per title match, 1 per body match (0 for the fallback).
    pub score: u32,
    /// The keywords that matched, in rule order, each once.
    pub matched: Vec<String>,
}

/// The rule categorizer over a chosen subset of [`CATEGORIES`] (plus the fallback).
#[derive(Debug, Clone)]
pub struct RuleCategorizer {
    /// Per category, its keywords' numbers in `keywords`, in rule order.
    rules: Vec<(&'static str, std::ops::Range<usize>)>,
    /// Every keyword, split into its words once.
    keywords: Vec<Keyword>,
    /// The keywords whose first word is a plain word, by that word: a text's words are
    /// looked up here instead of every keyword being tried at every word (a story record
    /// gets its category from here whenever no labeler set one).
    by_first: HashMap<&'static str, Vec<usize>, crate::signals::symbols::WordHash>,
    /// The keywords whose first word is a `prefix*`, tried at every word.
    prefixed: Vec<usize>,
}

/// A keyword of [`CATEGORIES`] and its words (each a word or a `prefix*`).
#[derive(Debug, Clone)]
struct Keyword {
    text: &'static str,
    parts: Vec<&'static str>,
}

impl RuleCategorizer {
    fn compiled(rules: &[(&'static str, &'static [&'static str])]) -> Self {
        let mut c = RuleCategorizer {
            rules: Vec::new(),
            keywords: Vec::new(),
            by_first: HashMap::default(),
            prefixed: Vec::new(),
        };
        for &(name, keywords) in rules {
            let start = c.keywords.len();
            for &text in keywords {
                let parts: Vec<&'static str> = text.split(' ').collect();
                let id = c.keywords.len();
                if parts[0].ends_with('*') {
                    c.prefixed.push(id);
                } else {
                    c.by_first.entry(parts[0]).or_default().push(id);
                }
                c.keywords.push(Keyword { text, parts });
            }
            c.rules.push((name, start..c.keywords.len()));
        }
        c
    }

    /// Adds to `hits[k]` how often keyword `k` occurs in `words` (as [`count`] counts it).
    fn count_all(&self, words: &[String], weight: u32, hits: &mut [u32]) {
        for (i, w) in words.iter().enumerate() {
            let plain = self.by_first.get(w.as_str()).map_or(&[][..], Vec::as_slice);
            for &k in plain.iter().chain(&self.prefixed) {
                let parts = &self.keywords[k].parts;
                if i + parts.len() <= words.len()
                    && words[i..].iter().zip(parts).all(|(w, p)| matches(w, p))
                {
                    hits[k] += weight;
                }
            }
        }
    }
}

impl Default for RuleCategorizer {
    fn default() -> Self {
        Self::compiled(CATEGORIES)
    }
}

/// Body characters scanned: the lead says what an article is about; the tail wanders.
const BODY_CHARS: usize = 600;

impl RuleCategorizer {
    /// A categorizer limited to `names` (each one of [`CATEGORIES`] or [`FALLBACK`]); an
    /// empty list means all of them.
    ///
    /// # Errors
    /// [`Error::Config`] naming an unknown category and the known ones.
    pub fn with_categories(names: &[String]) -> Result<Self> {
        if names.is_empty() {
            return Ok(Self::default());
        }
        for n in names {
            if n != FALLBACK && !CATEGORIES.iter().any(|(c, _)| c == n) {
                return Err(Error::Config {
                    origin: "categories".into(),
                    message: format!(
                        "unknown category {n:?}; known: {}",
                        Self::names().join(", ")
                    ),
                });
            }
        }
        let chosen: Vec<_> = CATEGORIES
            .iter()
            .filter(|(c, _)| names.iter().any(|n| n == c))
            .copied()
            .collect();
        Ok(Self::compiled(&chosen))
    }

    /// Every category name, the fallback last.
    pub fn names() -> Vec<&'static str> {
        CATEGORIES
            .iter()
            .map(|(c, _)| *c)
            .chain(std::iter::once(FALLBACK))
            .collect()
    }

    /// The category of an article with this title and body.
    pub fn categorize(&self, title: &str, body: &str) -> Category {
        let lead = crate::text::prefix_chars(body, BODY_CHARS);
        let title_words = words(title);
        let body_words = words(lead);
        let mut best = Category {
            category: FALLBACK.to_string(),
            score: 0,
            matched: Vec::new(),
        };
        let mut hits = vec![0u32; self.keywords.len()];
        self.count_all(&title_words, 2, &mut hits);
        self.count_all(&body_words, 1, &mut hits);
        for (name, ids) in &self.rules {
            let mut score = 0;
            let mut matched = Vec::new();
            for k in ids.clone() {
                if hits[k] > 0 {
                    score += hits[k];
                    matched.push(self.keywords[k].text.to_string());
                }
            }
            // Strictly greater: earlier (more specific) categories win ties.
            if score > best.score {
                best = Category {
                    category: (*name).to_string(),
                    score,
                    matched,
                };
            }
        }
        best
    }
}

/// Lowercase words: letters, digits and the inner `.`, `&`, `-` of names like `gate.io`,
/// `s&p` or `on-chain`.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || matches!(c, '.' | '&' | '-' | '$')))
        .map(|w| {
            w.trim_matches(|c: char| matches!(c, '.' | '&' | '-' | '$'))
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Whether word `w` is keyword word `p` (a word, or a `prefix*`).
fn matches(w: &str, p: &str) -> bool {
    match p.strip_suffix('*') {
        Some(prefix) => w.starts_with(prefix),
        None => w == p,
    }
}

/// How often a keyword of these `parts` (a word, a `prefix*`, or a phrase of words) occurs
/// in `words`: the reference [`RuleCategorizer::count_all`] is tested against.
#[cfg(test)]
fn count(words: &[String], parts: &[&str]) -> u32 {
    if parts.is_empty() || words.len() < parts.len() {
        return 0;
    }
    words
        .windows(parts.len())
        .filter(|win| win.iter().zip(parts).all(|(w, p)| matches(w, p)))
        .count() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat(title: &str, body: &str) -> String {
        RuleCategorizer::default().categorize(title, body).category
    }

    #[test]
    fn headlines_get_the_expected_category() {
        assert_eq!(cat("Bybit hacked for $1.4B in ETH", ""), "security");
        assert_eq!(
            cat("SEC sues Binance over unregistered securities", ""),
            "regulation"
        );
        assert_eq!(
            cat("Coinbase lists three new perpetual futures", ""),
            "exchange"
        );
        assert_eq!(
            cat("Fed holds interest rates, Powell signals patience", ""),
            "macro"
        );
        assert_eq!(
            cat("Bitcoin climbs above $100,000 as ETF inflows grow", ""),
            "crypto"
        );
        assert_eq!(
            cat("Local bakery wins award", "A prize for bread."),
            "other"
        );
    }

    #[test]
    fn title_counts_double_and_ties_go_to_the_more_specific_category() {
        // One exchange word in the title (2) against one crypto word in the body (1).
        let c = RuleCategorizer::default().categorize("Kraken expands", "bitcoin");
        assert_eq!((c.category.as_str(), c.score), ("exchange", 2));
        // exchange 2 vs security 2: security is listed first.
        assert_eq!(cat("Binance exploit", ""), "security");
        // Phrases and prefixes.
        let c =
            RuleCategorizer::default().categorize("Rate cuts ahead", "the federal reserve said");
        assert_eq!(c.category, "macro");
        assert_eq!(c.matched, ["federal reserve", "rate cut*"]);
    }

    #[test]
    fn a_restricted_list_only_yields_its_categories_or_other() {
        let c = RuleCategorizer::with_categories(&["crypto".into(), "other".into()]).unwrap();
        assert_eq!(
            c.categorize("Bybit hacked, ETH stolen", "").category,
            "crypto"
        );
        assert_eq!(c.categorize("SEC sues", "").category, "other");
        let err = RuleCategorizer::with_categories(&["sports".into()]).unwrap_err();
        assert!(
            err.to_string().contains("unknown category \"sports\""),
            "{err}"
        );
    }

    #[test]
    fn odd_input_does_not_panic() {
        let c = RuleCategorizer::default();
        for t in ["", " ", "$$$", "é…✓", "s&p-", "a.b.c."] {
            let _ = c.categorize(t, t);
        }
        assert_eq!(count(&[], &["a", "b"]), 0);
    }

    #[test]
    fn keywords_are_counted_as_the_reference_counts_them() {
        let c = RuleCategorizer::default();
        // Words drawn from the keywords themselves (and their prefixes, and others), so
        // that phrases and prefixes match often.
        let mut pool: Vec<String> = c
            .keywords
            .iter()
            .flat_map(|k| k.parts.iter().map(|p| p.trim_end_matches('*').to_string()))
            .collect();
        pool.extend(["hackers", "exploited", "regulators", "the", "x"].map(String::from));
        let mut next = crate::testing::xorshift(0x2545_f491_4f6c_dd1du64);
        let mut matched = 0;
        for _ in 0..2_000 {
            let mut words: Vec<String> = Vec::new();
            for _ in 0..next() % 12 {
                if next().is_multiple_of(3) {
                    // A whole keyword, a prefix written out ("regulat*" as "regulators").
                    let kw = &c.keywords[(next() % c.keywords.len() as u64) as usize];
                    words.extend(kw.parts.iter().map(|p| p.replace('*', "ors")));
                } else {
                    words.push(pool[(next() % pool.len() as u64) as usize].clone());
                }
            }
            let mut hits = vec![0; c.keywords.len()];
            c.count_all(&words, 1, &mut hits);
            for (k, kw) in c.keywords.iter().enumerate() {
                assert_eq!(
                    hits[k],
                    count(&words, &kw.parts),
                    "{} in {words:?}",
                    kw.text
                );
                matched += usize::from(hits[k] > 0 && kw.parts.len() > 1);
            }
        }
        assert!(matched > 50, "phrases matched {matched} times");
    }
}
