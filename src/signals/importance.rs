//! Story importance, 0 to 100: how much a perp desk needs to hear about a story.
//!
//! # The formula
//!
//! One score over signals the engine already has for every story, with the weights of
//! [`ImportanceConfig`] (`[signals.importance]`, defaults in brackets):
//!
//! ```text
//! coverage  C = Σ over distinct sources  tier_weights[tier(source) - 1]   [1.0, 0.5, 0.2]
//!             + heat_weight     · heat                                    [0.5]
//!             + rise_weight     · heat_rise                               [1.0]
//!             + breaking_weight · (1 if breaking else 0)                  [2.0]
//! category  G = categories.<category>   (no category / unknown = other)   [security 1.5,
//!                                        regulation 1.4, exchange 1.3, macro 1.15,
//!                                        crypto 1.0, other 0.8]
//! symbols   Y = 1 + max over the story's symbols of
//!                   major_weight  if the symbol is in `majors`            [0.5; BTC ETH SOL XRP BNB]
//!                   symbol_weight otherwise                               [0.2]
//!               (Y = 1 without symbols)
//! S = C · G · Y
//! importance = 100 · (1 − exp(−S / scale))                                [scale 10]
//! ```
//!
//! rounded to one decimal. Coverage measures how widely and how fast the story is carried;
//! category and symbols scale it by what the story is about, so a hack one blog mentions
//! stays minor while a hack six wires carry tops the list. With the defaults, one tier-3
//! blog on an uncategorized story (heat 0.3) scores 2.8; two tier-1 outlets on a BTC story
//! (heat 1.6, rise 0.2) 36.2; six tier-1 outlets on a breaking exchange hack of BTC and ETH
//! (heat 5.8, rise 5.6) 97.6.
//!
//! Heat is the story's heat at the state's clock ([`crate::signals::heat::heat`]: the sum
//! over distinct sources of `exp(-age / tau)`) and `heat_rise` the part of it from sources that
//! wrote in the last hour ([`crate::signals::heat::heat_rise`]).
//!
//! # Monotone in every input
//!
//! Every term is a non-negative weight times a non-negative input, the factors are
//! non-negative, and `1 − exp(−S / k)` increases with `S`; [`ImportanceConfig::check`] rejects
//! negative weights, tier weights that grow from tier 1 to tier 3 and a major weighing less
//! than the long tail (and [`Importance::new`] clamps them the same way). So adding a source,
//! raising a source's tier, more heat or rise, turning breaking, a heavier category, adding a
//! symbol or making one a major never lowers the score, and it stays below 100. Negative or
//! NaN heat counts as 0. Sources are taken as given (the caller passes distinct ones).
//!
//! # Source tiers
//!
//! [`SourceTiers`] come from `pipelines/sources.toml`, compiled in ([`BUILTIN_SOURCES`]); a
//! user copies the file, edits it and names the copy in `[signals.importance] sources_path`,
//! as with `pipelines/symbols.toml`. The file lists domains under `tier1` and `tier2`; every
//! other source is tier 3. A source name matches an entry, case-insensitively, after dropping
//! a scheme (`https://`), anything from the first `/`, a port and a leading `www.`:
//! - when it is the entry's domain, or a subdomain of it (`markets.reuters.com`);
//! - when it has no dot, and equals the first label of an entry's domain once spaces and
//!   punctuation are dropped (`Reuters` → `reuters.com`, `The Block` → `theblock.co`); if
//!   two entries share that label, the better tier wins.
//!
//! The fixture `fixtures/importance-situations.json` holds 32 story situations ranked by hand
//! before this formula was written; a test checks the Spearman correlation of the scores with
//! that ranking (ρ ≥ 0.8; it is 0.987 with the defaults).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use super::config::{CategoryWeights, ImportanceConfig};

/// The shipped source tiers, `pipelines/sources.toml`, compiled in.
pub const BUILTIN_SOURCES: &str = include_str!("../../pipelines/sources.toml");

/// Origin reported in errors about the compiled-in tier file.
const BUILTIN_ORIGIN: &str = "built-in pipelines/sources.toml";

/// The tier of a source no list names.
pub const UNLISTED_TIER: u8 = 3;

/// What the score reads off one story.
#[derive(Debug, Clone, Copy)]
pub struct ImportanceInputs<'a> {
    /// Heat at the state's clock (see [`crate::signals::heat::heat`]).
    pub heat: f64,
    /// Heat gained over the last hour, >= 0 (see [`crate::signals::heat::heat_rise`]).
    pub heat_rise: f64,
    /// Distinct original sources (syndicated copies excluded).
    pub sources: &'a [String],
    /// The story's category ([`crate::label::category::CATEGORIES`]), when known.
    pub category: Option<&'a str>,
    /// The story's perp symbols.
    pub symbols: &'a [String],
    /// Whether the story is breaking.
    pub breaking: bool,
}

/// A problem with a source tier file.
#[derive(Debug, thiserror::Error)]
pub enum SourceTierError {
    /// The file could not be read.
    #[error("cannot read source tier file {}: {source}", .path.display())]
    Io {
        /// The path given to [`SourceTiers::load`].
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid TOML or has an unknown key or a wrong type.
    #[error("{origin}: not a valid source tier file: {message}")]
    Parse {
        /// Where the text came from (a path or "built-in …").
        origin: String,
        /// The TOML parser's message.
        message: String,
    },
    /// An entry is empty, not a domain, or listed twice.
    #[error("{origin}: `{entry}`: {problem}")]
    Entry {
        /// Where the text came from.
        origin: String,
        /// The entry as written.
        entry: String,
        /// What is wrong.
        problem: &'static str,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TierDoc {
    #[serde(default)]
    tier1: Vec<String>,
    #[serde(default)]
    tier2: Vec<String>,
}

/// Source tiers: 1 (best), 2, or 3 for any source not listed.
#[derive(Debug, Clone, Default)]
pub struct SourceTiers {
    /// Listed domain → tier.
    domains: HashMap<String, u8>,
    /// First label of a listed domain, letters and digits only → best tier among those.
    stems: HashMap<String, u8>,
}

impl SourceTiers {
    /// The tier file `cfg` names (the shipped one when `sources_path` is empty).
    ///
    /// # Errors
    /// [`crate::Error::Config`] naming the file and the problem.
    pub fn from_config(cfg: &ImportanceConfig) -> crate::Result<Self> {
        if cfg.sources_path.is_empty() {
            return Ok(Self::builtin());
        }
        Self::load(Path::new(&cfg.sources_path)).map_err(|e| crate::Error::Config {
            origin: cfg.sources_path.clone(),
            message: e.to_string(),
        })
    }

    /// The shipped tiers ([`BUILTIN_SOURCES`]).
    ///
    /// A test guarantees they parse; should they ever fail, the error is logged and every
    /// source is tier 3 rather than panicking.
    pub fn builtin() -> Self {
        match Self::from_toml(BUILTIN_SOURCES, BUILTIN_ORIGIN) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "The built-in source tiers are invalid; every source is tier 3.");
                Self::default()
            }
        }
    }

    /// Parses a tier file; `origin` (a path, "built-in …") is used in errors.
    ///
    /// # Errors
    /// [`SourceTierError::Parse`] for invalid TOML or unknown keys;
    /// [`SourceTierError::Entry`] for an empty entry, one with a space or a `/`, or a
    /// domain listed twice.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, SourceTierError> {
        let doc: TierDoc = toml::from_str(text).map_err(|e| SourceTierError::Parse {
            origin: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let mut t = SourceTiers::default();
        for (tier, list) in [(1u8, &doc.tier1), (2u8, &doc.tier2)] {
            for entry in list {
                let bad = |problem| SourceTierError::Entry {
                    origin: origin.to_string(),
                    entry: entry.clone(),
                    problem,
                };
                let d = host_of(entry);
                if d.is_empty() || d.contains(char::is_whitespace) {
                    return Err(bad("not a domain"));
                }
                if t.domains.insert(d.clone(), tier).is_some() {
                    return Err(bad("listed twice"));
                }
                let stem = squash(d.split('.').next().unwrap_or(""));
                if !stem.is_empty() {
                    let e = t.stems.entry(stem).or_insert(tier);
                    *e = (*e).min(tier);
                }
            }
        }
        Ok(t)
    }

    /// Reads and parses a tier file.
    ///
    /// # Errors
    /// [`SourceTierError::Io`] if the file cannot be read, otherwise as
    /// [`SourceTiers::from_toml`] with the path as origin.
    pub fn load(path: &Path) -> Result<Self, SourceTierError> {
        let text = std::fs::read_to_string(path).map_err(|source| SourceTierError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Number of listed domains.
    pub fn len(&self) -> usize {
        self.domains.len()
    }

    /// Whether nothing is listed (every source is then tier 3).
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// The tier of source `name`: 1, 2, or [`UNLISTED_TIER`] (see the module docs for the
    /// matching rule).
    pub fn tier(&self, name: &str) -> u8 {
        let host = host_of(name);
        if host.contains('.') {
            let mut h = host.as_str();
            loop {
                if let Some(&t) = self.domains.get(h) {
                    return t;
                }
                match h.split_once('.') {
                    Some((_, rest)) if rest.contains('.') => h = rest,
                    _ => return UNLISTED_TIER,
                }
            }
        }
        self.stems
            .get(&squash(&host))
            .copied()
            .unwrap_or(UNLISTED_TIER)
    }
}

/// Lowercase host of a source name: no scheme, path, port or leading `www.`.
fn host_of(name: &str) -> String {
    let s = name.trim().to_lowercase();
    let s = s.split_once("://").map_or(s.as_str(), |(_, r)| r);
    let s = s.split(['/', '?', '#']).next().unwrap_or("");
    let s = s.rsplit_once(':').map_or(s, |(h, port)| {
        if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            s
        }
    });
    let s = s.trim_end_matches('.');
    s.strip_prefix("www.").unwrap_or(s).to_string()
}

/// Letters and digits of `s`, lowercase.
fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The importance scorer: weights and source tiers, built once, shared.
#[derive(Debug, Clone)]
pub struct Importance {
    tier_weights: [f64; 3],
    heat_weight: f64,
    rise_weight: f64,
    breaking_weight: f64,
    categories: CategoryWeights,
    majors: Vec<String>,
    major_weight: f64,
    symbol_weight: f64,
    scale: f64,
    tiers: SourceTiers,
}

impl Default for Importance {
    /// The default weights with the shipped tiers.
    fn default() -> Self {
        Self::new(&ImportanceConfig::default(), SourceTiers::builtin())
    }
}

/// A weight usable in a monotone score: finite and >= 0, else 0.
fn weight(w: f64) -> f64 {
    if w.is_finite() && w > 0.0 { w } else { 0.0 }
}

impl Importance {
    /// A scorer with the weights of `cfg` and `tiers`. Weights that
    /// [`ImportanceConfig::check`] would reject are made harmless so the score stays
    /// monotone: negative or non-finite ones count as 0, a tier weighs at least as much as
    /// the tier below, a major at least as much as the long tail, and a bad `scale` is 10.
    pub fn new(cfg: &ImportanceConfig, tiers: SourceTiers) -> Self {
        let mut tw = cfg.tier_weights.map(weight);
        tw[1] = tw[1].max(tw[2]);
        tw[0] = tw[0].max(tw[1]);
        let c = &cfg.categories;
        let symbol_weight = weight(cfg.symbol_weight);
        Importance {
            tier_weights: tw,
            heat_weight: weight(cfg.heat_weight),
            rise_weight: weight(cfg.rise_weight),
            breaking_weight: weight(cfg.breaking_weight),
            categories: CategoryWeights {
                security: weight(c.security),
                regulation: weight(c.regulation),
                exchange: weight(c.exchange),
                macro_: weight(c.macro_),
                crypto: weight(c.crypto),
                other: weight(c.other),
            },
            majors: cfg.majors.iter().map(|m| m.trim().to_uppercase()).collect(),
            major_weight: weight(cfg.major_weight).max(symbol_weight),
            symbol_weight,
            scale: if cfg.scale.is_finite() && cfg.scale > 0.0 {
                cfg.scale
            } else {
                10.0
            },
            tiers,
        }
    }

    /// The scorer `[signals.importance]` of `cfg` describes, with its tier file.
    ///
    /// # Errors
    /// [`crate::Error::Config`] for a weight [`ImportanceConfig::check`] rejects or a tier
    /// file that cannot be read or parsed.
    pub fn from_config(cfg: &super::SignalsConfig) -> crate::Result<Self> {
        cfg.importance
            .check()
            .map_err(|message| crate::Error::Config {
                origin: "[signals.importance]".to_string(),
                message,
            })?;
        Ok(Self::new(
            &cfg.importance,
            SourceTiers::from_config(&cfg.importance)?,
        ))
    }

    /// The source tiers in use.
    pub fn tiers(&self) -> &SourceTiers {
        &self.tiers
    }

    /// The symbol factor term of one symbol: `major_weight` for a major, else
    /// `symbol_weight`.
    fn symbol_term(&self, sym: &str) -> f64 {
        let s = sym.trim();
        if self.majors.iter().any(|m| m.eq_ignore_ascii_case(s)) {
            self.major_weight
        } else {
            self.symbol_weight
        }
    }

    /// The weighted score `S` before saturation (see the module docs).
    pub fn raw(&self, x: &ImportanceInputs<'_>) -> f64 {
        let nonneg = |v: f64| if v > 0.0 { v } else { 0.0 };
        let tiers: f64 = x
            .sources
            .iter()
            .map(|s| {
                let t = self.tiers.tier(s).clamp(1, UNLISTED_TIER);
                self.tier_weights[usize::from(t - 1)]
            })
            .sum();
        let coverage = tiers
            + self.heat_weight * nonneg(x.heat)
            + self.rise_weight * nonneg(x.heat_rise)
            + if x.breaking {
                self.breaking_weight
            } else {
                0.0
            };
        let symbols = x
            .symbols
            .iter()
            .map(|s| self.symbol_term(s))
            .fold(0.0, f64::max);
        let s = coverage * self.categories.of(x.category) * (1.0 + symbols);
        if s.is_finite() { s } else { f64::MAX }
    }

    /// Importance of the story `x`, 0..=100, rounded to one decimal.
    pub fn score(&self, x: &ImportanceInputs<'_>) -> f64 {
        let v = 100.0 * (1.0 - (-self.raw(x) / self.scale).exp());
        ((v * 10.0).round() / 10.0).clamp(0.0, 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(ToString::to_string).collect()
    }

    /// Owned inputs, for building variations (and the fixture's situations).
    #[derive(Clone, Deserialize)]
    struct Case {
        heat: f64,
        heat_rise: f64,
        sources: Vec<String>,
        category: Option<String>,
        symbols: Vec<String>,
        breaking: bool,
    }

    impl Case {
        fn inputs(&self) -> ImportanceInputs<'_> {
            ImportanceInputs {
                heat: self.heat,
                heat_rise: self.heat_rise,
                sources: &self.sources,
                category: self.category.as_deref(),
                symbols: &self.symbols,
                breaking: self.breaking,
            }
        }
    }

    fn base() -> Case {
        Case {
            heat: 1.2,
            heat_rise: 0.4,
            sources: strings(&["cointelegraph.com", "newsbtc.com"]),
            category: Some("crypto".into()),
            symbols: strings(&["ARB"]),
            breaking: false,
        }
    }

    fn score(imp: &Importance, c: &Case) -> f64 {
        imp.score(&c.inputs())
    }

    #[test]
    fn shipped_tiers_parse_and_match_names_loosely() {
        let t = SourceTiers::from_toml(BUILTIN_SOURCES, "pipelines/sources.toml").unwrap();
        assert!(t.len() >= 10);
        for name in [
            "reuters.com",
            "Reuters.com",
            "www.reuters.com",
            "https://www.reuters.com/markets/crypto/",
            "markets.reuters.com",
            "reuters",
            "Reuters",
            "The Block",
            "theblock.co",
            "CoinDesk",
            "ft.com:443",
        ] {
            assert_eq!(t.tier(name), 1, "{name}");
        }
        assert_eq!(t.tier("decrypt.co"), 2);
        assert_eq!(t.tier("Cointelegraph"), 2);
        for name in [
            "someblog.xyz",
            "reuters.example",
            "",
            "u.today",
            "notreuters.com",
        ] {
            assert_eq!(t.tier(name), UNLISTED_TIER, "{name}");
        }
    }

    #[test]
    fn tier_files_are_checked() {
        let e = SourceTiers::from_toml("tier1 = [\"a.com\"]\ntier4 = []\n", "my.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("my.toml") && e.contains("tier4"), "{e}");
        let e = SourceTiers::from_toml("tier1 = [\"a.com\"]\ntier2 = [\"A.com\"]\n", "my.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("listed twice"), "{e}");
        let e = SourceTiers::from_toml("tier1 = [\"\"]\n", "my.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a domain"), "{e}");
        let t = SourceTiers::from_toml("tier2 = [\"myfeed.io\"]\n", "my.toml").unwrap();
        assert_eq!(t.tier("MyFeed.io"), 2);
        assert_eq!(t.tier("reuters.com"), UNLISTED_TIER);
    }

    #[test]
    fn a_user_tier_file_is_loaded_from_the_config() {
        let dir = std::env::temp_dir().join(format!("importance-tiers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sources.toml");
        std::fs::write(&path, "tier1 = [\"desk-wire.example\"]\n").unwrap();
        let mut cfg = crate::signals::SignalsConfig::default();
        cfg.importance.sources_path = path.display().to_string();
        let imp = Importance::from_config(&cfg).unwrap();
        assert_eq!(imp.tiers().tier("desk-wire.example"), 1);
        cfg.importance.sources_path = dir.join("missing.toml").display().to_string();
        let e = Importance::from_config(&cfg).unwrap_err().to_string();
        assert!(e.contains("missing.toml"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_weights_are_config_errors() {
        let mut cfg = crate::signals::SignalsConfig::default();
        assert!(cfg.importance.check().is_ok());
        cfg.importance.heat_weight = -1.0;
        let e = Importance::from_config(&cfg).unwrap_err().to_string();
        assert!(e.contains("heat_weight"), "{e}");
        cfg.importance.heat_weight = 0.5;
        cfg.importance.tier_weights = [0.2, 0.5, 1.0];
        assert!(cfg.importance.check().unwrap_err().contains("tier_weights"));
        cfg.importance.tier_weights = [1.0, 0.5, 0.2];
        cfg.importance.scale = 0.0;
        assert!(cfg.importance.check().unwrap_err().contains("scale"));
    }

    #[test]
    fn bounded_and_zero_for_nothing() {
        let imp = Importance::default();
        let empty = Case {
            heat: 0.0,
            heat_rise: 0.0,
            sources: vec![],
            category: None,
            symbols: vec![],
            breaking: false,
        };
        assert_eq!(score(&imp, &empty), 0.0);
        let huge = Case {
            heat: 1e300,
            heat_rise: f64::INFINITY,
            sources: (0..500).map(|i| format!("s{i}.reuters.com")).collect(),
            category: Some("security".into()),
            symbols: strings(&["BTC", "ETH"]),
            breaking: true,
        };
        let s = score(&imp, &huge);
        assert!((0.0..=100.0).contains(&s), "{s}");
        let nan = Case {
            heat: f64::NAN,
            heat_rise: -3.0,
            ..base()
        };
        let s = score(&imp, &nan);
        assert!((0.0..=100.0).contains(&s), "{s}");
    }

    #[test]
    fn monotone_in_every_input() {
        let imp = Importance::default();
        let cases = [
            base(),
            Case {
                sources: vec![],
                symbols: vec![],
                category: None,
                heat: 0.0,
                heat_rise: 0.0,
                breaking: false,
            },
            Case {
                breaking: true,
                category: Some("security".into()),
                symbols: strings(&["BTC"]),
                sources: strings(&["reuters.com", "bloomberg.com", "decrypt.co"]),
                heat: 2.9,
                heat_rise: 2.5,
            },
        ];
        let geq = |lo: &Case, hi: &Case, what: &str| {
            let (a, b) = (score(&imp, lo), score(&imp, hi));
            assert!(b >= a, "{what}: {a} -> {b}");
            let (a, b) = (imp.raw(&lo.inputs()), imp.raw(&hi.inputs()));
            assert!(b >= a, "{what} (raw): {a} -> {b}");
        };
        for c in &cases {
            for extra in ["someblog.xyz", "decrypt.co", "wsj.com"] {
                let mut more = c.clone();
                more.sources.push(extra.into());
                geq(c, &more, &format!("adding source {extra}"));
            }
            for i in 0..c.sources.len() {
                for better in ["someblog.xyz", "cryptoslate.com", "ft.com"] {
                    let mut up = c.clone();
                    let was = imp.tiers().tier(&up.sources[i]);
                    if imp.tiers().tier(better) <= was {
                        up.sources[i] = better.into();
                        geq(c, &up, &format!("raising source {i} to {better}"));
                    }
                }
            }
            for d in [0.01, 0.5, 3.0] {
                let mut hot = c.clone();
                hot.heat += d;
                geq(c, &hot, "more heat");
                let mut rising = c.clone();
                rising.heat_rise += d;
                geq(c, &rising, "more rise");
            }
            let mut br = c.clone();
            br.breaking = true;
            geq(c, &br, "breaking");
            // Categories from light to heavy.
            let order = [None, Some("other"), Some("crypto"), Some("macro")];
            for w in order.windows(2) {
                let (mut lo, mut hi) = (c.clone(), c.clone());
                lo.category = w[0].map(String::from);
                hi.category = w[1].map(String::from);
                geq(&lo, &hi, &format!("category {:?} -> {:?}", w[0], w[1]));
            }
            for heavy in ["security", "regulation", "exchange"] {
                let (mut lo, mut hi) = (c.clone(), c.clone());
                lo.category = Some("macro".into());
                hi.category = Some(heavy.into());
                geq(&lo, &hi, &format!("macro -> {heavy}"));
            }
            for sym in ["WIF", "SOL", "BTC"] {
                let mut more = c.clone();
                more.symbols.push(sym.into());
                geq(c, &more, &format!("adding symbol {sym}"));
            }
            for i in 0..c.symbols.len() {
                let mut major = c.clone();
                major.symbols[i] = "ETH".into();
                geq(c, &major, "a symbol turning major");
            }
        }
    }

    #[test]
    fn ordering_on_hand_built_pairs() {
        let imp = Importance::default();
        let s = |heat, rise, src: &[&str], cat: Option<&str>, sym: &[&str], br| {
            let c = Case {
                heat,
                heat_rise: rise,
                sources: strings(src),
                category: cat.map(String::from),
                symbols: strings(sym),
                breaking: br,
            };
            score(&imp, &c)
        };
        let hack = s(
            5.8,
            5.6,
            &[
                "reuters.com",
                "bloomberg.com",
                "coindesk.com",
                "theblock.co",
                "wsj.com",
                "cnbc.com",
            ],
            Some("security"),
            &["BTC", "ETH"],
            true,
        );
        let partnership = s(0.3, 0.0, &["someblog.xyz"], None, &[], false);
        let two_wires_btc = s(
            1.6,
            0.2,
            &["reuters.com", "bloomberg.com"],
            Some("crypto"),
            &["BTC"],
            false,
        );
        let two_blogs_btc = s(
            1.6,
            0.2,
            &["newsbtc.com", "u.today"],
            Some("crypto"),
            &["BTC"],
            false,
        );
        let blog_hack = s(0.9, 0.9, &["coingape.com"], Some("security"), &[], false);
        assert!(hack > 95.0, "{hack}");
        assert!(partnership < 5.0, "{partnership}");
        assert!(
            two_wires_btc > two_blogs_btc,
            "{two_wires_btc} {two_blogs_btc}"
        );
        // Coverage first: a hack one blog mentions stays below a story two wires carry.
        assert!(two_wires_btc > blog_hack, "{two_wires_btc} {blog_hack}");
        assert!(hack > two_wires_btc && blog_hack > partnership);
    }

    /// Average ranks (1 = first), ties sharing the mean of their positions.
    fn ranks(v: &[f64]) -> Vec<f64> {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
        let mut r = vec![0.0; v.len()];
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
                j += 1;
            }
            for &k in &idx[i..=j] {
                r[k] = (i + j) as f64 / 2.0 + 1.0;
            }
            i = j + 1;
        }
        r
    }

    /// Spearman's ρ: Pearson's correlation of the ranks.
    fn spearman(a: &[f64], b: &[f64]) -> f64 {
        let (ra, rb) = (ranks(a), ranks(b));
        let n = ra.len() as f64;
        let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
        let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
        let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
        let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
        cov / (va * vb).sqrt()
    }

    #[test]
    fn spearman_helper_is_right() {
        assert!((spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
    }

    #[derive(Deserialize)]
    struct Fixture {
        situations: Vec<Situation>,
    }

    #[derive(Deserialize)]
    struct Situation {
        rank: u32,
        description: String,
        #[serde(flatten)]
        case: Case,
    }

    #[test]
    fn hand_ranked_situations_agree_with_the_score() {
        let text = include_str!("../../fixtures/importance-situations.json");
        let fx: Fixture = serde_json::from_str(text).unwrap();
        assert!(fx.situations.len() >= 30);
        let imp = Importance::default();
        let scores: Vec<f64> = fx
            .situations
            .iter()
            .map(|s| imp.score(&s.case.inputs()))
            .collect();
        // Rank 1 is the most important: compare with the negated scores.
        let hand: Vec<f64> = fx.situations.iter().map(|s| f64::from(s.rank)).collect();
        let neg: Vec<f64> = scores.iter().map(|s| -s).collect();
        let rho = spearman(&neg, &hand);
        let by_score = ranks(&neg);
        for ((s, v), r) in fx.situations.iter().zip(&scores).zip(&by_score) {
            eprintln!(
                "hand {:>2}  score rank {:>4.1}  {:>5.1}  {}",
                s.rank, r, v, s.description
            );
        }
        eprintln!(
            "importance vs hand ranking: Spearman rho = {rho:.3} over {} situations",
            fx.situations.len()
        );
        assert!(rho >= 0.8, "Spearman rho {rho:.3} < 0.8");
    }
}
