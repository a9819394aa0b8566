//! Which perpetual markets a piece of news touches.
//!
//! A [`SymbolBook`] is a compiled dictionary of perp symbols (`BTC`, `ETH`, `SOL`, …) with
//! their names and tickers. [`SymbolBook::symbols_in`] finds the symbols one text mentions
//! (title or body of an article) and [`SymbolBook::story_symbols`] aggregates them over the
//! articles of a story.
//!
//! # The dictionary file
//!
//! The shipped dictionary is `pipelines/symbols.toml`, compiled into the binary
//! ([`BUILTIN_SYMBOLS`], [`SymbolBook::builtin`]). A user extends it without recompiling by
//! copying that file, editing it and loading it with [`SymbolBook::load`]. The format:
//!
//! ```toml
//! cue_window = 3                  # optional: words either side searched for a crypto cue
//! extra_cues = ["bridge"]         # optional: added to the built-in cue words
//!
//! [[symbol]]
//! symbol = "AVAX"                 # the perp market's base symbol, uppercase; also a ticker
//! names = ["avalanche"]           # names: whole words, any case, 1 to 4 words
//! tickers = ["AVAX"]              # more tickers (the symbol itself is always one)
//! ambiguous = ["avalanche"]       # forms that are also ordinary words (see the guards)
//! needs_cue = []                  # forms that are also names or acronyms outside crypto
//! pair_only = []                  # tickers that count only as $X or in a pair (S, W, TRUMP)
//! exclude = ["avalanche warning"] # phrases in which a form of this symbol never counts
//! ```
//!
//! A renamed market keeps one entry under its current symbol, with the old ticker among
//! `tickers` and the old names among `names` (`POL` with `MATIC` and "polygon"), so news
//! written under either name is tagged with the market that trades today.
//!
//! Unknown keys are errors. Validation rejects: an invalid or duplicate `symbol`, empty or
//! non-word names and tickers, a word claimed by two symbols, `ambiguous`/`needs_cue` entries
//! that are not single-word forms of the same symbol, `pair_only` entries that are not its
//! tickers, a form in more than one of the three lists, exclude phrases
//! of fewer than two words or without a form of the symbol, a `cue_window` outside 1..=10
//! and a file without any `[[symbol]]`. Errors name the origin, the symbol and the field.
//!
//! # Matching
//!
//! The text is split into words (maximal runs of Unicode letters and digits; a possessive
//! `'s` is dropped), every word is lowercased once, and one pass looks each word up in a hash
//! map (multi-word names are looked up by their first word and compared word by word, the
//! longest name first, so "Bitcoin Cash" is `BCH`, not `BTC`). Matching is on whole words:
//! "solution" is not `SOL` and "Ethiopia" is not `ETH`.
//!
//! Every form matches in any case, and also as a cashtag (`$sol`, `$SOL`), as one side of a
//! pair (`SOL/USDT`, `SOL-PERP`, `SOL_USDC`, `ETH/BTC`) or glued to a quote currency
//! (`SOLUSDT`, `XBTUSD`, `1000PEPEUSDT`), unless it is guarded:
//!
//! - An **`ambiguous`** form is also an ordinary English word ("near", "link", "hype", "op").
//!   It never counts in lowercase ("near-term", "the hype around AI") and never as part of a
//!   hyphenated word that is not a pair ("ATOM-sized", "Near-Term", "Op-Ed"). In UPPERCASE it
//!   counts ("NEAR", "LINK"), unless the whole text is shouting (mostly uppercase). A
//!   Capitalized name ("Avalanche", "Optimism", "Sui") counts in the middle of a sentence of a
//!   sentence-case text, where capitals mark a proper noun. Any other Capitalized occurrence
//!   needs a crypto cue.
//! - A **`needs_cue`** form is also the name or acronym of something outside crypto ("DOGE",
//!   the US government department; "DOT", the Department of Transportation; "Jupiter", the
//!   planet). It never counts in lowercase or in a hyphenated word, and always needs a cue.
//! - A **`pair_only`** ticker is too common a word, letter or name to count on its own even
//!   beside a cue ("S" in "S&P 500 futures" and "Form S-1", "W", "TRUMP", "NOT", "IP"): it
//!   counts only as a cashtag (`$S`, `$TRUMP`) or one side of a pair (`S/USDT`, `TRUMP-PERP`,
//!   `TRUMPUSDT`). Such a symbol is found in prose by its names ("Sonic Labs", "Official
//!   Trump"). Glued pairs need a base of at least two letters, so `SUSDT` is not `S`.
//! - An **`exclude`** phrase switches off the forms of its symbol inside it ("ETH Zurich",
//!   "Tron: Ares", "Justin Sun", "ripple effects"). It is compared word by word, ignoring
//!   case and punctuation.
//!
//! A guarded occurrence that needs a cue counts when:
//!
//! - the same symbol is mentioned unambiguously anywhere in the same text ("Polkadot's DOT");
//!   or
//! - a cue word is within `cue_window` words (default 3) in the same sentence: crypto nouns
//!   ("token", "coin", "price", "crypto", "perp", "futures", "staking", "network",
//!   "blockchain", "airdrop", "holders", "ETF", "USDT", …) and market verbs ("rallies",
//!   "jumps", "slides", "surges", "falls", "drops", …; not "fall", "drop" or "rise", which
//!   are as often nouns). An unambiguous mention of another symbol within the window is a
//!   cue too ("Bitcoin, DOGE and ADA fall").
//!
//! Where capitals carry no information — a Capitalized word starting a sentence or a clause
//! after `:` or `;`, a Capitalized word in a Title Case headline, any word of a shouting
//! text — a guarded **ticker** looks only at the `cue_window` words after it, and only for
//! cue words, so "Bitcoin Price Holds Near Record" is not `NEAR` while "Near Price Jumps 9%"
//! is. A text is Title Case when at least 60% of its words of four or more letters that do
//! not start a sentence are Capitalized, and shouting when it has at least 12 capitals and
//! more than five for each lowercase letter. Sentences end at `.`, `!`, `?` or `|` followed
//! by white space, and at line breaks.
//!
//! # Scores
//!
//! [`SymbolBook::symbols_in`] counts the mentions of each symbol (a multi-word name counts
//! once) and orders the symbols by count, then by symbol. [`SymbolBook::story_symbols`]
//! keeps the symbols carried by at least one title or by at least 30% of the articles (title
//! or body), weighted `(T + 0.5 * B) / N` for `N` articles, `T` of which mention the symbol in
//! their title and `B` only in their body, so the weight is in `0..=1` and 1 means every
//! title mentions it.
//!
//! # Cost
//!
//! The tables are built once per book (well under a millisecond); a text costs one
//! tokenization, one lowercase copy and one hash lookup per word, about 450 000 instructions
//! (tens of microseconds) for a 3 KB article. Build the book once and share it; it is
//! `Send + Sync` and matching takes `&self`.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The shipped dictionary, `pipelines/symbols.toml`, compiled in.
pub const BUILTIN_SYMBOLS: &str = include_str!("../../pipelines/symbols.toml");

/// Origin reported in errors about the compiled-in dictionary.
const BUILTIN_ORIGIN: &str = "built-in pipelines/symbols.toml";

/// Default number of words either side searched for a crypto cue.
const DEFAULT_CUE_WINDOW: usize = 3;
/// Largest accepted `cue_window`.
const MAX_CUE_WINDOW: usize = 10;
/// Longest multi-word name, in words.
const MAX_NAME_WORDS: usize = 4;
/// Longest symbol or ticker, in bytes.
const MAX_TICKER_LEN: usize = 15;
/// A story keeps a symbol found only in bodies when this share of its articles carry it:
/// `BODY_SHARE_NUM / BODY_SHARE_DEN` (30%).
const BODY_SHARE_NUM: usize = 3;
/// See [`BODY_SHARE_NUM`].
const BODY_SHARE_DEN: usize = 10;

/// Words that mark a crypto context near a guarded form (lowercase, whitespace-separated).
const DEFAULT_CUES: &str = "
    crypto cryptocurrency cryptocurrencies token tokens coin coins altcoin altcoins memecoin
    memecoins stablecoin stablecoins usdt usdc blockchain blockchains chain onchain network
    mainnet testnet protocol ecosystem defi dex tvl wallet wallets tokenized
    price prices perp perps perpetual perpetuals futures etf etfs liquidations staking staked
    stakers airdrop airdrops unlock unlocks holders whales validators
    rally rallies rallied rallying jump jumps jumped surge surges surged surging soar soars
    soared spikes spiked climbs climbed rises rebounds rebounded pumps pumped slide slides slid
    sliding slip slips slipped slumps slumped tumble tumbles tumbled plunge plunges plunged
    falls fell drops dropped sinks sank dumps dumped
";

/// Quote currencies and contract suffixes that make `X/Q`, `X-Q` and `X_Q` a pair.
fn is_pair_quote(word: &str) -> bool {
    matches!(
        word,
        "usdt"
            | "usdc"
            | "usd"
            | "busd"
            | "fdusd"
            | "usde"
            | "perp"
            | "perps"
            | "perpetual"
            | "swap"
            | "eur"
            | "krw"
            | "try"
            | "jpy"
            | "btc"
            | "eth"
    )
}

/// Quote suffixes glued to a ticker (`BTCUSDT`); longer ones first where one ends another.
const GLUED_QUOTES: &[&str] = &["fdusd", "busd", "usdt", "usdc", "usd", "perp"];

/// Contract-size prefixes of glued pairs (`1000PEPEUSDT`).
const GLUED_MULTIPLIERS: &[&str] = &["1000000", "1000"];

/// Why a symbol file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SymbolError {
    /// The file could not be read.
    #[error("cannot read symbol file {}: {source}", .path.display())]
    Io {
        /// The path given to [`SymbolBook::load`].
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid TOML or does not have the expected shape (unknown key, wrong
    /// type, missing `symbol`).
    #[error("{origin}: not a valid symbol file: {message}")]
    Parse {
        /// Where the text came from (a path or "built-in …").
        origin: String,
        /// The TOML parser's message, with line and column.
        message: String,
    },
    /// A top-level setting is invalid.
    #[error("{origin}: `{field}`: {problem}")]
    Setting {
        /// Where the text came from.
        origin: String,
        /// The offending key.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// A `[[symbol]]` entry is invalid.
    #[error("{origin}: [[symbol]] #{entry} `{symbol}`, field `{field}`: {problem}")]
    Symbol {
        /// Where the text came from.
        origin: String,
        /// 1-based position of the entry in the file.
        entry: usize,
        /// The entry's `symbol` as written.
        symbol: String,
        /// The offending key.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

/// One article's symbols, split by where they appear.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ArticleSymbols {
    /// Symbols in the title (with mentions in title and body).
    pub title: Vec<(String, u32)>,
    /// Symbols only in the body (with mentions).
    pub body_only: Vec<(String, u32)>,
}

/// Per-story tallies of one symbol, accumulated article by article.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SymbolTally {
    /// The symbol.
    pub symbol: String,
    /// Articles with it in the title.
    pub in_title: u32,
    /// Articles with it only in the body.
    pub in_body: u32,
    /// Total mentions.
    pub mentions: u64,
}

/// A story's symbols from its tallies and article count, by the rule of
/// [`SymbolBook::story_symbols`]: kept when some title carries it or at least 30% of the
/// articles do; weight `(T + 0.5 * B) / N`; ordered by weight, mentions, then symbol.
pub fn story_symbols_from(tallies: &[SymbolTally], n: usize) -> Vec<(String, f32)> {
    if n == 0 {
        return Vec::new();
    }
    let mut out: Vec<(&SymbolTally, f32)> = tallies
        .iter()
        .filter(|t| {
            t.in_title > 0
                || (t.in_title + t.in_body) as usize * BODY_SHARE_DEN >= BODY_SHARE_NUM * n
        })
        .map(|t| (t, (t.in_title as f32 + 0.5 * t.in_body as f32) / n as f32))
        .collect();
    out.sort_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then_with(|| b.0.mentions.cmp(&a.0.mentions))
            .then_with(|| a.0.symbol.cmp(&b.0.symbol))
    });
    out.into_iter()
        .map(|(t, w)| (t.symbol.clone(), w))
        .collect()
}

/// Adds one article's symbols to a story's tallies.
pub fn tally(tallies: &mut Vec<SymbolTally>, a: &ArticleSymbols) {
    let mut add = |sym: &str, count: u32, title: bool| {
        let i = match tallies.iter().position(|t| t.symbol == sym) {
            Some(i) => i,
            None => {
                tallies.push(SymbolTally {
                    symbol: sym.to_string(),
                    ..SymbolTally::default()
                });
                tallies.len() - 1
            }
        };
        let t = &mut tallies[i];
        if title {
            t.in_title += 1;
        } else {
            t.in_body += 1;
        }
        t.mentions += u64::from(count);
    };
    for (s, c) in &a.title {
        add(s, *c, true);
    }
    for (s, c) in &a.body_only {
        add(s, *c, false);
    }
}

/// One symbol found in a text, with the number of times it is mentioned.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SymbolHit {
    /// The perp symbol, e.g. `"BTC"`.
    pub symbol: String,
    /// Mentions counted in the text (at least 1).
    pub count: u32,
}

/// One mention of a symbol in a text: which symbol, and where (byte range).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mention {
    /// The perp symbol, e.g. `"BTC"`.
    pub symbol: String,
    /// Byte offset of the mention's first character.
    pub start: usize,
    /// Byte offset just past its last character.
    pub end: usize,
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    #[serde(default)]
    cue_window: Option<usize>,
    #[serde(default)]
    extra_cues: Vec<String>,
    #[serde(default)]
    symbol: Vec<EntryDoc>,
}

/// One `[[symbol]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryDoc {
    symbol: String,
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    tickers: Vec<String>,
    #[serde(default)]
    ambiguous: Vec<String>,
    #[serde(default)]
    needs_cue: Vec<String>,
    #[serde(default)]
    pair_only: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
}

/// How much context a form needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guard {
    Plain,
    Ambiguous,
    NeedsCue,
    /// Only as a cashtag or one side of a pair.
    PairOnly,
}

/// A single-word form.
#[derive(Debug, Clone, Copy)]
struct Form {
    sym: usize,
    name: bool,
    ticker: bool,
    guard: Guard,
}

/// A multi-word name, stored under its first word.
#[derive(Debug, Clone)]
struct Phrase {
    rest: Vec<String>,
    sym: usize,
}

/// Everything a lowercase word starts: a single-word form and/or multi-word names.
#[derive(Debug, Clone, Default)]
struct WordEntry {
    form: Option<Form>,
    /// Multi-word names starting with this word, longest first.
    phrases: Vec<Phrase>,
}

/// A fast non-cryptographic hasher (the FxHash mix) for the word tables. Their keys are
/// fixed when the book is built, so hostile texts cannot degrade them.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WordHasher(u64);

impl WordHasher {
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut buf = [0u8; 8];
            buf.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(buf));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(buf));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Hash-map builder for the word tables.
pub(crate) type WordHash = BuildHasherDefault<WordHasher>;

/// The compiled dictionary: build once, match many texts.
#[derive(Debug, Clone, Default)]
pub struct SymbolBook {
    symbols: Vec<String>,
    words: HashMap<String, WordEntry, WordHash>,
    excludes: Vec<Vec<Vec<String>>>,
    cues: HashSet<String, WordHash>,
    window: usize,
}

impl SymbolBook {
    /// The symbol dictionary `cfg` names (the shipped one by default).
    ///
    /// # Errors
    /// [`crate::Error::Config`] naming the file and the problem.
    pub fn from_config(cfg: &super::SignalsConfig) -> crate::Result<Self> {
        if cfg.symbols_path.is_empty() {
            return Ok(Self::builtin());
        }
        Self::load(std::path::Path::new(&cfg.symbols_path)).map_err(|e| crate::Error::Config {
            origin: cfg.symbols_path.clone(),
            message: e.to_string(),
        })
    }

    /// The shipped dictionary ([`BUILTIN_SYMBOLS`]).
    ///
    /// A test guarantees it parses; should it ever fail, the error is logged and an empty
    /// book (matching nothing) is returned rather than panicking. Parse
    /// [`BUILTIN_SYMBOLS`] with [`SymbolBook::from_toml`] to get the error instead.
    pub fn builtin() -> Self {
        match Self::from_toml(BUILTIN_SYMBOLS, BUILTIN_ORIGIN) {
            Ok(book) => book,
            Err(e) => {
                tracing::error!(error = %e, "The built-in symbol dictionary is invalid; no symbols will be tagged.");
                Self::default()
            }
        }
    }

    /// Compiles a dictionary from TOML text; `origin` (a path, "built-in …") is used in
    /// errors.
    ///
    /// # Errors
    ///
    /// [`SymbolError::Parse`] for invalid TOML, unknown keys or wrong types;
    /// [`SymbolError::Setting`] for a bad `cue_window` or `extra_cues` or a file without
    /// symbols; [`SymbolError::Symbol`] for an invalid entry (see the module docs).
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, SymbolError> {
        let doc: FileDoc = toml::from_str(text).map_err(|e| SymbolError::Parse {
            origin: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        Self::compile(doc, origin)
    }

    /// Reads and compiles a dictionary file.
    ///
    /// # Errors
    ///
    /// [`SymbolError::Io`] if the file cannot be read, otherwise as
    /// [`SymbolBook::from_toml`] with the path as origin.
    pub fn load(path: &Path) -> Result<Self, SymbolError> {
        let text = std::fs::read_to_string(path).map_err(|source| SymbolError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Number of symbols in the book.
    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    /// Whether the book has no symbols (it then matches nothing).
    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }

    /// Whether the lowercase word `lower` is a single-word name or ticker of some symbol,
    /// whatever its guards (the entity extractor leaves such words to the symbols).
    pub fn is_form(&self, lower: &str) -> bool {
        self.words.get(lower).is_some_and(|e| e.form.is_some())
    }

    /// The symbols mentioned in `text`, each once with its mention count, ordered by count
    /// (highest first), then by symbol.
    pub fn symbols_in(&self, text: &str) -> Vec<SymbolHit> {
        let mut hits: Vec<SymbolHit> = self
            .counts(text)
            .into_iter()
            .map(|(sym, count)| SymbolHit {
                symbol: self.symbols[sym].clone(),
                count,
            })
            .collect();
        hits.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.symbol.cmp(&b.symbol)));
        hits
    }

    /// One article's symbols: those in its title, and those only in its body, with mention
    /// counts (the per-article input of the story rule in [`Self::story_symbols`]).
    pub fn article_symbols(&self, title: &str, body: &str) -> ArticleSymbols {
        self.split_by_place(&self.counts(title), &self.counts(body))
    }

    /// Title counts and body counts (symbol index, mentions; sorted by index) as
    /// [`ArticleSymbols`].
    fn split_by_place(
        &self,
        title_hits: &[(usize, u32)],
        body_hits: &[(usize, u32)],
    ) -> ArticleSymbols {
        let mut body_only = Vec::new();
        let mut out_title: Vec<(String, u32)> = Vec::new();
        for (sym, count) in title_hits {
            out_title.push((self.symbols[*sym].clone(), *count));
        }
        for &(sym, count) in body_hits {
            match out_title.iter_mut().find(|(s, _)| *s == self.symbols[sym]) {
                Some(t) => t.1 += count,
                None => body_only.push((self.symbols[sym].clone(), count)),
            }
        }
        ArticleSymbols {
            title: out_title,
            body_only,
        }
    }

    /// Every counted mention of a symbol in `text`, in text order, with its byte range (the
    /// per-symbol direction scorer reads the words around each one).
    pub fn mentions(&self, text: &str) -> Vec<Mention> {
        self.occurrences(text)
            .into_iter()
            .map(|(sym, start, end)| Mention {
                symbol: self.symbols[sym].clone(),
                start,
                end,
            })
            .collect()
    }

    /// [`Self::article_symbols`] and the [`Self::mentions`] of the title and of the body,
    /// from one scan of each.
    pub fn article_symbols_and_mentions(
        &self,
        title: &str,
        body: &str,
    ) -> (ArticleSymbols, Vec<Mention>, Vec<Mention>) {
        let named = |occ: Vec<(usize, usize, usize)>| -> Vec<Mention> {
            occ.into_iter()
                .map(|(sym, start, end)| Mention {
                    symbol: self.symbols[sym].clone(),
                    start,
                    end,
                })
                .collect()
        };
        let (t, b) = (self.occurrences(title), self.occurrences(body));
        let tally = |occ: &[(usize, usize, usize)]| -> Vec<(usize, u32)> {
            let mut counts: Vec<(usize, u32)> = Vec::new();
            for &(sym, _, _) in occ {
                match counts.iter_mut().find(|c| c.0 == sym) {
                    Some(c) => c.1 += 1,
                    None => counts.push((sym, 1)),
                }
            }
            counts.sort_unstable_by_key(|c| c.0);
            counts
        };
        let symbols = self.split_by_place(&tally(&t), &tally(&b));
        (symbols, named(t), named(b))
    }

    /// The symbols of a story whose articles have these `titles` and `bodies` (article `i`
    /// is `titles[i]` with `bodies[i]`; a missing entry counts as empty).
    ///
    /// A symbol is kept when at least one title mentions it, or when at least 30% of the
    /// articles mention it in their title or body. Its weight is `(T + 0.5 * B) / N`: `N`
    /// articles, `T` with the symbol in the title, `B` with it only in the body. Ordered by
    /// weight (highest first), then by total mentions, then by symbol.
    pub fn story_symbols(&self, titles: &[&str], bodies: &[&str]) -> Vec<(String, f32)> {
        let n = titles.len().max(bodies.len());
        if n == 0 || self.is_empty() {
            return Vec::new();
        }
        // Per symbol: articles with it in the title, only in the body, total mentions.
        let mut in_title = vec![0usize; self.len()];
        let mut in_body = vec![0usize; self.len()];
        let mut mentions = vec![0u64; self.len()];
        let mut title_seen = vec![false; self.len()];
        for i in 0..n {
            title_seen.iter_mut().for_each(|s| *s = false);
            if let Some(title) = titles.get(i) {
                for (sym, count) in self.counts(title) {
                    title_seen[sym] = true;
                    in_title[sym] += 1;
                    mentions[sym] += u64::from(count);
                }
            }
            if let Some(body) = bodies.get(i) {
                for (sym, count) in self.counts(body) {
                    if !title_seen[sym] {
                        in_body[sym] += 1;
                    }
                    mentions[sym] += u64::from(count);
                }
            }
        }
        let mut out: Vec<(usize, f32)> = (0..self.len())
            .filter(|&s| {
                in_title[s] > 0 || (in_title[s] + in_body[s]) * BODY_SHARE_DEN >= BODY_SHARE_NUM * n
            })
            .map(|s| (s, (in_title[s] as f32 + 0.5 * in_body[s] as f32) / n as f32))
            .collect();
        out.sort_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then_with(|| mentions[b.0].cmp(&mentions[a.0]))
                .then_with(|| self.symbols[a.0].cmp(&self.symbols[b.0]))
        });
        out.into_iter()
            .map(|(s, w)| (self.symbols[s].clone(), w))
            .collect()
    }

    /// Compiles a parsed file, validating it.
    fn compile(doc: FileDoc, origin: &str) -> Result<Self, SymbolError> {
        let setting = |field: &'static str, problem: String| SymbolError::Setting {
            origin: origin.to_string(),
            field,
            problem,
        };
        let window = doc.cue_window.unwrap_or(DEFAULT_CUE_WINDOW);
        if !(1..=MAX_CUE_WINDOW).contains(&window) {
            return Err(setting(
                "cue_window",
                format!("must be between 1 and {MAX_CUE_WINDOW}, got {window}"),
            ));
        }
        let mut cues: HashSet<String, WordHash> = DEFAULT_CUES
            .split_whitespace()
            .map(str::to_string)
            .collect();
        for cue in &doc.extra_cues {
            let words = words_of(cue);
            if words.len() != 1 || !same_words(cue, &words) {
                return Err(setting(
                    "extra_cues",
                    format!("`{cue}` must be one word of letters and digits"),
                ));
            }
            cues.extend(words);
        }
        if doc.symbol.is_empty() {
            return Err(setting(
                "symbol",
                "the file defines no [[symbol]]".to_string(),
            ));
        }

        let mut book = SymbolBook {
            window,
            cues,
            ..SymbolBook::default()
        };
        let mut seen_symbols: HashMap<String, usize> = HashMap::new();
        for (sym, entry) in doc.symbol.iter().enumerate() {
            let err = |field: &'static str, problem: String| SymbolError::Symbol {
                origin: origin.to_string(),
                entry: sym + 1,
                symbol: entry.symbol.clone(),
                field,
                problem,
            };
            if !is_ticker_text(&entry.symbol) || entry.symbol.to_ascii_uppercase() != entry.symbol {
                return Err(err(
                    "symbol",
                    format!("must be 1 to {MAX_TICKER_LEN} uppercase ASCII letters or digits"),
                ));
            }
            if let Some(first) = seen_symbols.insert(entry.symbol.clone(), sym) {
                return Err(err(
                    "symbol",
                    format!(
                        "duplicate symbol (first defined by [[symbol]] #{})",
                        first + 1
                    ),
                ));
            }

            // Single-word forms of this entry, lowercase, with whether each is a name/ticker.
            let mut forms: Vec<(String, bool, bool)> = Vec::new();
            let mut add_form = |word: String, name: bool| {
                if let Some(f) = forms.iter_mut().find(|f| f.0 == word) {
                    f.1 |= name;
                    f.2 |= !name;
                } else {
                    forms.push((word, name, !name));
                }
            };
            let mut phrases: Vec<Vec<String>> = Vec::new();
            for name in &entry.names {
                let words = words_of(name);
                if words.is_empty() {
                    return Err(err("names", "empty name".to_string()));
                }
                if !same_words(name, &words) {
                    return Err(err(
                        "names",
                        format!(
                            "`{name}` must be whole words of letters and digits separated by spaces"
                        ),
                    ));
                }
                if words.len() > MAX_NAME_WORDS {
                    return Err(err(
                        "names",
                        format!("`{name}` has more than {MAX_NAME_WORDS} words"),
                    ));
                }
                if words.len() == 1 {
                    add_form(words.concat(), true);
                } else if !phrases.contains(&words) {
                    phrases.push(words);
                }
            }
            for ticker in std::iter::once(&entry.symbol).chain(&entry.tickers) {
                if !is_ticker_text(ticker) {
                    return Err(err(
                        "tickers",
                        format!("`{ticker}` must be 1 to {MAX_TICKER_LEN} ASCII letters or digits"),
                    ));
                }
                add_form(ticker.to_ascii_lowercase(), false);
            }

            let mut guards: HashMap<String, Guard> = HashMap::new();
            for (field, list, guard) in [
                ("ambiguous", &entry.ambiguous, Guard::Ambiguous),
                ("needs_cue", &entry.needs_cue, Guard::NeedsCue),
                ("pair_only", &entry.pair_only, Guard::PairOnly),
            ] {
                for word in list {
                    let lower = word.trim().to_lowercase();
                    let Some(form) = forms.iter().find(|f| f.0 == lower) else {
                        return Err(err(
                            field,
                            format!(
                                "`{word}` is not one of this symbol's single-word names or tickers"
                            ),
                        ));
                    };
                    // Names are never matched as pairs, so a pair-only name would never count.
                    if guard == Guard::PairOnly && !form.2 {
                        return Err(err(
                            field,
                            format!("`{word}` is not one of this symbol's tickers"),
                        ));
                    }
                    if guards.insert(lower, guard).is_some_and(|g| g != guard) {
                        return Err(err(
                            field,
                            format!(
                                "`{word}` is in more than one of `ambiguous`, `needs_cue` and \
                                 `pair_only`"
                            ),
                        ));
                    }
                }
            }

            let mut excludes = Vec::new();
            for phrase in &entry.exclude {
                let words = words_of(phrase);
                if words.len() < 2 {
                    return Err(err(
                        "exclude",
                        format!("`{phrase}` must be a phrase of at least two words"),
                    ));
                }
                if !words.iter().any(|w| forms.iter().any(|f| &f.0 == w)) {
                    return Err(err(
                        "exclude",
                        format!("`{phrase}` contains none of this symbol's single-word forms"),
                    ));
                }
                excludes.push(words);
            }

            for (word, name, ticker) in forms {
                let guard = guards.get(&word).copied().unwrap_or(Guard::Plain);
                if let Some(other) = book.form(&word) {
                    return Err(err(
                        if name { "names" } else { "tickers" },
                        format!(
                            "`{word}` is already a name or ticker of `{}`",
                            book.symbols[other.sym]
                        ),
                    ));
                }
                book.words.entry(word).or_default().form = Some(Form {
                    sym,
                    name,
                    ticker,
                    guard,
                });
            }
            for mut words in phrases {
                let first = words.remove(0);
                let list = &mut book.words.entry(first.clone()).or_default().phrases;
                if let Some(other) = list.iter().find(|p| p.rest == words) {
                    return Err(err(
                        "names",
                        format!(
                            "`{first} {}` is already a name of `{}`",
                            words.join(" "),
                            book.symbols[other.sym]
                        ),
                    ));
                }
                list.push(Phrase { rest: words, sym });
                // Longest first, so "bitcoin cash abc" would win over "bitcoin cash".
                list.sort_by_key(|p| std::cmp::Reverse(p.rest.len()));
            }
            book.excludes.push(excludes);
            book.symbols.push(entry.symbol.clone());
        }
        Ok(book)
    }

    /// Mention counts per symbol index, sorted by index.
    fn counts(&self, text: &str) -> Vec<(usize, u32)> {
        let mut counts = vec![0u32; self.len()];
        for (sym, _, _) in self.occurrences(text) {
            counts[sym] += 1;
        }
        counts
            .into_iter()
            .enumerate()
            .filter(|&(_, c)| c > 0)
            .collect()
    }

    /// Every counted mention as (symbol index, byte start, byte end), in text order; a
    /// multi-word name is one mention spanning its words.
    fn occurrences(&self, text: &str) -> Vec<(usize, usize, usize)> {
        if self.is_empty() {
            return Vec::new();
        }
        let sc = Scan::new(text);
        let n = sc.toks.len();
        // Pass 1: every occurrence, strong or waiting for a cue.
        let mut strong_at: Vec<Option<usize>> = vec![None; n];
        let mut strong_sym = vec![false; self.len()];
        let mut pending: Vec<(usize, usize, bool)> = Vec::new(); // (sym, token, after_only)
        let mut out: Vec<(usize, usize, usize)> = Vec::new();
        let mut i = 0;
        while i < n {
            let entry = self.words.get(sc.word(i));
            if let Some((sym, len)) = entry.and_then(|e| phrase_at(&e.phrases, &sc, i)) {
                out.push((sym, sc.toks[i].start, sc.toks[i + len - 1].end));
                strong_sym[sym] = true;
                strong_at[i..i + len]
                    .iter_mut()
                    .for_each(|s| *s = Some(sym));
                i += len;
                continue;
            }
            let found = match entry {
                Some(e) => e
                    .form
                    .as_ref()
                    .and_then(|f| self.classify(&sc, i, f).map(|need| (f.sym, need))),
                None => self.glued_pair(sc.word(i)).map(|sym| (sym, Need::Nothing)),
            };
            match found {
                Some((sym, Need::Nothing)) => {
                    out.push((sym, sc.toks[i].start, sc.toks[i].end));
                    strong_sym[sym] = true;
                    strong_at[i] = Some(sym);
                }
                Some((sym, Need::Cue { after_only })) => pending.push((sym, i, after_only)),
                None => {}
            }
            i += 1;
        }
        // Pass 2: guarded occurrences, confirmed by the symbol itself or by a cue.
        for (sym, i, after_only) in pending {
            if strong_sym[sym] || self.cue_near(&sc, &strong_at, sym, i, after_only) {
                out.push((sym, sc.toks[i].start, sc.toks[i].end));
            }
        }
        out.sort_unstable_by_key(|&(_, start, _)| start);
        out
    }

    /// What an occurrence of `form` at token `i` needs to count; `None`: it does not count.
    fn classify(&self, sc: &Scan<'_>, i: usize, form: &Form) -> Option<Need> {
        if self.excluded(sc, i, form.sym) {
            return None;
        }
        let before = sc.gap_before(i);
        if before.ends_with('$') || (form.ticker && self.is_pair(sc, i)) {
            return Some(Need::Nothing);
        }
        match form.guard {
            Guard::Plain => return Some(Need::Nothing),
            Guard::PairOnly => return None,
            Guard::Ambiguous | Guard::NeedsCue => {}
        }
        let tok = &sc.toks[i];
        if tok.case == Case::Lower {
            return None;
        }
        let hyphen_after = i + 1 < sc.toks.len() && sc.gap_after(i) == "-";
        let hyphen_before = i > 0 && before == "-";
        if hyphen_after || hyphen_before {
            return None;
        }
        // Where capitals carry no information: a shouting text; for a Capitalized word also
        // the start of a sentence or a Title Case text.
        let weak =
            sc.shouting || (tok.case == Case::Title && (tok.sentence_start || sc.title_case));
        if form.guard == Guard::Ambiguous {
            if tok.case == Case::Upper && !sc.shouting {
                return Some(Need::Nothing);
            }
            if tok.case == Case::Title && form.name && !weak {
                return Some(Need::Nothing);
            }
        }
        Some(Need::Cue {
            after_only: weak && !form.name,
        })
    }

    /// Whether token `i` is part of a pair: `X/Q`, `X-Q`, `X_Q` with a quote `Q`, or
    /// `X/Y` / `Y/X` with another ticker `Y`.
    fn is_pair(&self, sc: &Scan<'_>, i: usize) -> bool {
        let is_ticker = |w: &str| self.form(w).is_some_and(|f| f.ticker);
        let joins = |gap: &str| matches!(gap, "/" | "-" | "_");
        if i + 1 < sc.toks.len() {
            let gap = sc.gap_after(i);
            let next = sc.word(i + 1);
            if joins(gap) && (is_pair_quote(next) || (gap == "/" && is_ticker(next))) {
                return true;
            }
        }
        if i > 0 && sc.gap_before(i) == "/" {
            let prev = sc.word(i - 1);
            return is_pair_quote(prev) || is_ticker(prev);
        }
        false
    }

    /// A ticker glued to a quote currency (`btcusdt`, `1000pepeusdt`).
    fn glued_pair(&self, word: &str) -> Option<usize> {
        GLUED_QUOTES.iter().find_map(|q| {
            let base = word.strip_suffix(q)?;
            let base = GLUED_MULTIPLIERS
                .iter()
                .find_map(|m| base.strip_prefix(m))
                .unwrap_or(base);
            let form = self.form(base)?;
            (base.len() >= 2 && form.ticker).then_some(form.sym)
        })
    }

    /// The single-word form `word` (lowercase), if any.
    fn form(&self, word: &str) -> Option<&Form> {
        self.words.get(word).and_then(|e| e.form.as_ref())
    }

    /// Whether token `i` sits inside one of the symbol's exclude phrases.
    fn excluded(&self, sc: &Scan<'_>, i: usize, sym: usize) -> bool {
        let word = sc.word(i);
        self.excludes[sym].iter().any(|phrase| {
            phrase.iter().enumerate().any(|(k, w)| {
                w == word
                    && i >= k
                    && i - k + phrase.len() <= sc.toks.len()
                    && phrase
                        .iter()
                        .enumerate()
                        .all(|(m, pw)| sc.word(i - k + m) == pw)
            })
        })
    }

    /// Whether a cue is near token `i` in its sentence (see the module docs).
    fn cue_near(
        &self,
        sc: &Scan<'_>,
        strong_at: &[Option<usize>],
        sym: usize,
        i: usize,
        after_only: bool,
    ) -> bool {
        let sentence = sc.toks[i].sentence;
        let lo = if after_only {
            i + 1
        } else {
            i.saturating_sub(self.window)
        };
        let hi = (i + self.window).min(sc.toks.len().saturating_sub(1));
        (lo..=hi).any(|j| {
            j != i
                && sc.toks[j].sentence == sentence
                && (self.cues.contains(sc.word(j))
                    || (!after_only && strong_at[j].is_some_and(|s| s != sym)))
        })
    }
}

/// What an occurrence needs to count.
#[derive(Debug, Clone, Copy)]
enum Need {
    Nothing,
    Cue { after_only: bool },
}

/// Capitalization of a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    /// No capital first letter ("near", "dTAO").
    Lower,
    /// Every letter a capital ("NEAR").
    Upper,
    /// A capital first letter, not all capitals ("Near", "DeFi").
    Title,
}

/// One word of a scanned text.
#[derive(Debug, Clone)]
struct Tok {
    /// Byte range in the text.
    start: usize,
    end: usize,
    /// Byte range of the lowercase copy in [`Scan::lower`].
    lo: usize,
    hi: usize,
    /// Sentence number, for the cue window.
    sentence: usize,
    /// First word of a sentence or of a clause after `:` or `;`.
    sentence_start: bool,
    case: Case,
    /// At least 4 characters, starting with a letter (for Title Case detection).
    long_word: bool,
}

/// A text split into words, with a lowercase copy of each.
struct Scan<'t> {
    text: &'t str,
    toks: Vec<Tok>,
    lower: String,
    title_case: bool,
    shouting: bool,
    upper_letters: usize,
    lower_letters: usize,
}

impl<'t> Scan<'t> {
    fn new(text: &'t str) -> Self {
        let mut sc = Scan {
            text,
            toks: Vec::with_capacity(text.len() / 5),
            lower: String::with_capacity(text.len()),
            title_case: false,
            shouting: false,
            upper_letters: 0,
            lower_letters: 0,
        };
        let mut start: Option<usize> = None;
        let bytes = text.as_bytes();
        let mut pos = 0;
        while pos < bytes.len() {
            let (word_char, width) = if bytes[pos].is_ascii() {
                (bytes[pos].is_ascii_alphanumeric(), 1)
            } else {
                match text.get(pos..).and_then(|rest| rest.chars().next()) {
                    Some(ch) => (ch.is_alphanumeric(), ch.len_utf8()),
                    None => break,
                }
            };
            if word_char {
                if start.is_none() {
                    start = Some(pos);
                }
            } else if let Some(s) = start.take() {
                sc.push(s, pos);
            }
            pos += width;
        }
        if let Some(s) = start {
            sc.push(s, text.len());
        }
        sc.shouting = sc.upper_letters >= 12 && sc.lower_letters * 5 < sc.upper_letters;
        // Title Case: most longer words that do not start a sentence are capitalized.
        let (mut capitalized, mut total) = (0usize, 0usize);
        for t in &sc.toks {
            if t.long_word && !t.sentence_start && t.case != Case::Upper {
                total += 1;
                capitalized += usize::from(t.case == Case::Title);
            }
        }
        sc.title_case = total >= 2 && capitalized * 10 >= total * 6;
        sc
    }

    /// Records the word `text[start..end]`, unless it is a possessive `'s`.
    fn push(&mut self, start: usize, end: usize) {
        let word = &self.text[start..end];
        let prev_end = self.toks.last().map_or(0, |t| t.end);
        let gap = &self.text[prev_end..start];
        if !self.toks.is_empty() && (word == "s" || word == "S") && (gap == "'" || gap == "’") {
            // Keep the possessive inside the previous word's byte range, so gaps stay clean.
            if let Some(last) = self.toks.last_mut() {
                last.end = end;
            }
            return;
        }
        // A sentence ends at . ! ? | or a line break; a clause after : or ; starts with a
        // capital too but stays in the sentence (for the cue window).
        let (mut spaced, mut stop, mut colon) = (false, false, false);
        for b in gap.bytes() {
            spaced |= b.is_ascii_whitespace();
            stop |= matches!(b, b'.' | b'!' | b'?' | b'|' | b'\n');
            colon |= matches!(b, b':' | b';');
        }
        if !spaced && !gap.is_ascii() {
            spaced = gap.contains(char::is_whitespace);
        }
        let new_sentence = spaced && stop;
        let sentence_start = self.toks.is_empty() || new_sentence || (spaced && colon);
        let sentence = match self.toks.last() {
            Some(last) => last.sentence + usize::from(new_sentence),
            None => 0,
        };
        // One pass: lowercase copy, capitalization, length.
        let lo = self.lower.len();
        let (mut chars, mut first_upper, mut first_alpha) = (0usize, false, false);
        let (mut any_upper, mut any_lower) = (false, false);
        if word.is_ascii() {
            // Fast path: one pass over the bytes, then one copy lowercased in place.
            let bytes = word.as_bytes();
            let (mut uppers, mut lowers) = (0usize, 0usize);
            for &b in bytes {
                uppers += usize::from(b.is_ascii_uppercase());
                lowers += usize::from(b.is_ascii_lowercase());
            }
            self.lower.push_str(word);
            self.lower[lo..].make_ascii_lowercase();
            (chars, any_upper, any_lower) = (bytes.len(), uppers > 0, lowers > 0);
            first_upper = bytes.first().is_some_and(u8::is_ascii_uppercase);
            first_alpha = bytes.first().is_some_and(u8::is_ascii_alphabetic);
            self.upper_letters += uppers;
            self.lower_letters += lowers;
        } else {
            for ch in word.chars() {
                self.lower.extend(ch.to_lowercase());
                let (upper, lower) = (ch.is_uppercase(), ch.is_lowercase());
                if chars == 0 {
                    first_upper = upper;
                    first_alpha = ch.is_alphabetic();
                }
                chars += 1;
                any_upper |= upper;
                any_lower |= lower;
                self.upper_letters += usize::from(upper);
                self.lower_letters += usize::from(lower);
            }
        }
        let case = if any_upper && !any_lower {
            Case::Upper
        } else if first_upper {
            Case::Title
        } else {
            Case::Lower
        };
        self.toks.push(Tok {
            start,
            end,
            lo,
            hi: self.lower.len(),
            sentence,
            sentence_start,
            case,
            long_word: chars >= 4 && first_alpha,
        });
    }

    /// The lowercase word `i`.
    fn word(&self, i: usize) -> &str {
        let t = &self.toks[i];
        &self.lower[t.lo..t.hi]
    }

    /// The text between word `i - 1` (or the start) and word `i`.
    fn gap_before(&self, i: usize) -> &str {
        let from = if i == 0 { 0 } else { self.toks[i - 1].end };
        &self.text[from..self.toks[i].start]
    }

    /// The text between word `i` and word `i + 1` (or the end).
    fn gap_after(&self, i: usize) -> &str {
        let to = self.toks.get(i + 1).map_or(self.text.len(), |t| t.start);
        &self.text[self.toks[i].end..to]
    }
}

/// The longest of `phrases` (the multi-word names starting with word `i`) found at word
/// `i`: (symbol, number of words).
fn phrase_at(phrases: &[Phrase], sc: &Scan<'_>, i: usize) -> Option<(usize, usize)> {
    phrases.iter().find_map(|p| {
        let end = i + 1 + p.rest.len();
        (end <= sc.toks.len() && p.rest.iter().zip(i + 1..end).all(|(w, j)| sc.word(j) == w))
            .then_some((p.sym, 1 + p.rest.len()))
    })
}

/// The lowercase words of a dictionary entry, split as texts are.
fn words_of(text: &str) -> Vec<String> {
    let sc = Scan::new(text);
    (0..sc.toks.len()).map(|i| sc.word(i).to_string()).collect()
}

/// Whether `text` is exactly `words` separated by single spaces, ignoring case and
/// surrounding space (so punctuation and possessives are refused).
fn same_words(text: &str, words: &[String]) -> bool {
    text.split_whitespace()
        .map(str::to_lowercase)
        .eq(words.iter().cloned())
}

/// 1 to [`MAX_TICKER_LEN`] ASCII letters or digits.
fn is_ticker_text(t: &str) -> bool {
    !t.is_empty() && t.len() <= MAX_TICKER_LEN && t.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/symbol-headlines.jsonl"
    );
    const SHIPPED: &str = include_str!("../../pipelines/symbols.toml");

    fn book() -> SymbolBook {
        SymbolBook::from_toml(SHIPPED, "pipelines/symbols.toml").unwrap()
    }

    /// The symbols found in `text`, sorted.
    fn syms(book: &SymbolBook, text: &str) -> Vec<String> {
        let mut s: Vec<String> = book
            .symbols_in(text)
            .into_iter()
            .map(|h| h.symbol)
            .collect();
        s.sort();
        s
    }

    fn err_of(toml: &str) -> String {
        SymbolBook::from_toml(toml, "my-symbols.toml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn builtin_parses_and_has_at_least_100_symbols() {
        let parsed = SymbolBook::from_toml(BUILTIN_SYMBOLS, BUILTIN_ORIGIN);
        assert!(parsed.is_ok(), "{:?}", parsed.err());
        let book = SymbolBook::builtin();
        assert!(book.len() >= 100, "only {} symbols", book.len());
        assert!(!book.is_empty());
        for s in [
            "BTC", "ETH", "SOL", "XRP", "DOGE", "HYPE", "RENDER", "HBAR", "POL", "XMR", "STRK",
            "S", "SKY", "FET", "ZEC", "TRUMP", "PENGU", "WLFI", "LDO", "CRV",
        ] {
            assert!(book.symbols.iter().any(|x| x == s), "{s} missing");
        }
    }

    #[test]
    fn renames_map_old_and_new_names_to_the_live_ticker() {
        let b = book();
        for (old, new, sym) in [
            ("MATIC rallies 8%", "POL rallies 8%", "POL"),
            ("Polygon's MATIC swap", "Polygon's POL swap", "POL"),
            ("RNDR token jumps", "RENDER token jumps", "RENDER"),
            ("Fantom's FTM slides", "Sonic Labs' S token slides", "S"),
            (
                "MakerDAO votes on MKR buyback",
                "Sky Protocol votes on SKY buyback",
                "SKY",
            ),
            ("Fetch.ai's FET climbs", "ASI token climbs", "FET"),
            (
                "SingularityNET's AGIX holders vote",
                "FET holders vote",
                "FET",
            ),
            ("Elrond rebrands", "MultiversX's EGLD rebounds", "EGLD"),
        ] {
            assert_eq!(syms(&b, old), [sym], "{old}");
            assert_eq!(syms(&b, new), [sym], "{new}");
        }
        assert_eq!(syms(&b, "FTMUSDT and MATICUSDT delisted"), ["POL", "S"]);
    }

    #[test]
    fn pair_only_tickers_count_only_as_cashtags_and_pairs() {
        let b = book();
        for text in [
            "S&P 500 futures rally as crypto stocks jump",
            "Grayscale files Form S-1 for spot XRP fund",
            "U.S. crypto ETFs see record inflows",
            "Trump says crypto will be made in America",
            "TRUMP SIGNS STABLECOIN BILL INTO LAW",
            "Bitcoin is NOT a security, SEC chair says",
            "Binance token IP rights dispute heads to court",
            "AR glasses maker raises $100 million",
            "Mon, Nov 24: bitcoin futures slide",
            "Ray Dalio says bitcoin is a hedge",
        ] {
            let got = syms(&b, text);
            assert!(
                !got.iter()
                    .any(|s| ["S", "TRUMP", "NOT", "IP", "AR", "MON", "RAY", "W"]
                        .contains(&s.as_str())),
                "{text}: {got:?}"
            );
        }
        assert_eq!(syms(&b, "$TRUMP jumps 15%"), ["TRUMP"]);
        assert_eq!(
            syms(&b, "TRUMPUSDT and S/USDT funding flips"),
            ["S", "TRUMP"]
        );
        assert_eq!(syms(&b, "W-PERP and $S lead volume"), ["S", "W"]);
        assert_eq!(syms(&b, "Official Trump memecoin rallies"), ["TRUMP"]);
        assert!(syms(&b, "White House official: Trump to unveil crypto reserve").is_empty());
        assert_eq!(syms(&b, "Sonic Labs unveils fee rebates"), ["S"]);
        assert_eq!(syms(&b, "Sonic token jumps 10%"), ["S"]);
        assert!(syms(&b, "Sonic the Hedgehog movie tops box office").is_empty());
        // A one-letter base glued to a quote is not a pair (sUSD, tUSD).
        assert!(syms(&b, "SUSDT and WUSDT pools").is_empty());
    }

    #[test]
    fn new_markets_and_their_traps() {
        let b = book();
        assert_eq!(
            syms(
                &b,
                "Polygon POL and Monero XMR rally; Starknet STRK unlocks loom"
            ),
            ["POL", "STRK", "XMR"]
        );
        assert_eq!(
            syms(&b, "Ether.fi's ETHFI and Ether rally"),
            ["ETH", "ETHFI"]
        );
        assert_eq!(syms(&b, "Pump.fun buys back PUMP tokens"), ["PUMP"]);
        assert_eq!(syms(&b, "World Liberty Financial's WLFI slides"), ["WLFI"]);
        assert!(syms(&b, "Sky News reports UK budget leak").is_empty());
        assert!(syms(&b, "Rents sky-high in London").is_empty());
        assert!(syms(&b, "Yield curve inverts as stocks fall").is_empty());
        assert!(syms(&b, "Polygon.io raises $30 million for market data").is_empty());
        assert!(syms(&b, "Met Gala draws record crowd").is_empty());
        assert!(syms(&b, "Seagate (STX) shares rise on AI demand").is_empty());
        assert!(syms(&b, "Bank CRO resigns after trading loss").is_empty());
        assert!(syms(&b, "Helium shortage hits chipmakers").is_empty());
        assert!(syms(&b, "Algo traders pull back as volatility spikes").is_empty());
    }

    #[test]
    fn fixture_precision_and_recall() {
        #[derive(serde::Deserialize)]
        struct Line {
            title: String,
            symbols: Vec<String>,
        }
        let book = book();
        let text = std::fs::read_to_string(FIXTURE).unwrap();
        let (mut tp, mut fp, mut fneg, mut lines) = (0usize, 0usize, 0usize, 0usize);
        let mut misses = Vec::new();
        let mut expected: HashSet<String> = HashSet::new();
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let line: Line = serde_json::from_str(line).unwrap_or_else(|e| panic!("line {n}: {e}"));
            lines += 1;
            let got = syms(&book, &line.title);
            let mut want = line.symbols.clone();
            want.sort();
            expected.extend(want.iter().cloned());
            let extra: Vec<&String> = got.iter().filter(|s| !want.contains(s)).collect();
            let missed: Vec<&String> = want.iter().filter(|s| !got.contains(s)).collect();
            tp += got.len() - extra.len();
            fp += extra.len();
            fneg += missed.len();
            if !extra.is_empty() || !missed.is_empty() {
                misses.push(format!(
                    "line {}: {:?}: extra {extra:?}, missed {missed:?}",
                    n + 1,
                    line.title
                ));
            }
        }
        let precision = tp as f64 / (tp + fp).max(1) as f64;
        let recall = tp as f64 / (tp + fneg).max(1) as f64;
        println!(
            "{lines} headlines, {} expected symbols: precision {precision:.3}, recall {recall:.3} \
             (tp {tp}, fp {fp}, fn {fneg})\n{}",
            tp + fneg,
            misses.join("\n")
        );
        assert!(lines >= 450, "only {lines} headlines");
        // Every market of the dictionary has a headline, and every label is a market of it.
        let untested: Vec<&String> = book
            .symbols
            .iter()
            .filter(|s| !expected.contains(*s))
            .collect();
        assert!(untested.is_empty(), "no headline expects {untested:?}");
        let unknown: Vec<&String> = expected
            .iter()
            .filter(|s| !book.symbols.contains(s))
            .collect();
        assert!(
            unknown.is_empty(),
            "labels name symbols not in the book: {unknown:?}"
        );
        assert!(
            precision >= 0.98 && recall >= 0.95,
            "precision {precision:.3}, recall {recall:.3}; misses:\n{}",
            misses.join("\n")
        );
    }

    #[test]
    fn whole_words_only() {
        let b = book();
        assert!(syms(&b, "A new payments solution for Ethiopia's banks").is_empty());
        assert!(syms(&b, "Solar and Ethernet makers rally; Tronox slides").is_empty());
        assert_eq!(syms(&b, "SOL and ETH rally"), ["ETH", "SOL"]);
        assert_eq!(syms(&b, "traders buy sol and eth"), ["ETH", "SOL"]);
    }

    #[test]
    fn ambiguous_ticker_lowercase_never_counts() {
        let b = book();
        assert!(syms(&b, "Stocks trade near record highs").is_empty());
        assert!(syms(&b, "The hype around AI tokens is fading").is_empty());
        assert!(syms(&b, "Click the link to the report").is_empty());
        assert!(syms(&b, "It is one of the best coins, analysts say").is_empty());
    }

    #[test]
    fn ambiguous_ticker_uppercase_counts_unless_shouting() {
        let b = book();
        assert_eq!(
            syms(&b, "Traders buy NEAR and LINK on the dip"),
            ["LINK", "NEAR"]
        );
        assert!(syms(&b, "STOCKS HOVER NEAR RECORD AS FED DECISION LOOMS").is_empty());
        assert_eq!(
            syms(&b, "MARKETS: NEAR PRICE JUMPS 9% ON AI HYPE"),
            ["NEAR"]
        );
    }

    #[test]
    fn hyphenated_words_are_not_tickers_but_pairs_are() {
        let b = book();
        assert!(syms(&b, "Chipmaker unveils ATOM-sized sensor").is_empty());
        assert!(
            syms(
                &b,
                "Yields hold Near-Term highs; the Op-Ed that shook bonds"
            )
            .is_empty()
        );
        assert_eq!(
            syms(&b, "ATOM-PERP and NEAR-USDT open interest climbs"),
            ["ATOM", "NEAR"]
        );
        assert_eq!(
            syms(&b, "near/usdt and op_usdc books thin out"),
            ["NEAR", "OP"]
        );
        assert_eq!(syms(&b, "ETH/BTC falls"), ["BTC", "ETH"]);
        // Plain forms keep counting in compounds.
        assert_eq!(
            syms(&b, "Solana-based DEX tops Bitcoin-backed loans"),
            ["BTC", "SOL"]
        );
    }

    #[test]
    fn cashtags_and_glued_pairs() {
        let b = book();
        assert_eq!(syms(&b, "$near and $hype lead gains"), ["HYPE", "NEAR"]);
        assert_eq!(
            syms(&b, "BTCUSDT, XBTUSD and 1000PEPEUSDT top volume"),
            ["BTC", "PEPE"]
        );
        assert_eq!(syms(&b, "TAOUSDT funding flips"), ["TAO"]);
        assert!(syms(&b, "Prices in USD and USDT").is_empty());
    }

    #[test]
    fn capitalized_ambiguous_ticker_needs_a_cue() {
        let b = book();
        assert!(syms(&b, "Link in bio: how creators sell").is_empty());
        assert!(syms(&b, "The Tao of Warren Buffett").is_empty());
        assert_eq!(syms(&b, "Tao rallies 12% on subnet growth"), ["TAO"]);
        assert_eq!(syms(&b, "Link price slides 7%"), ["LINK"]);
        // In Title Case or at a sentence start, only cue words after the ticker count.
        assert_eq!(syms(&b, "Bitcoin Price Holds Near Record High"), ["BTC"]);
        assert_eq!(syms(&b, "Near Price Jumps 9% on AI Hype"), ["NEAR"]);
        // Mid-sentence in sentence case, a cue either side, or another symbol, will do.
        assert_eq!(
            syms(&b, "Funds rotate into Solana and Near this week"),
            ["NEAR", "SOL"]
        );
        assert!(syms(&b, "Oil trades at Near East premium").is_empty());
    }

    #[test]
    fn ambiguous_names_are_proper_nouns_mid_sentence() {
        let b = book();
        assert!(syms(&b, "Avalanche warning in the Alps as ski season opens").is_empty());
        assert!(
            syms(
                &b,
                "Investor optimism returns; stellar earnings lift Nvidia"
            )
            .is_empty()
        );
        assert_eq!(
            syms(&b, "Grayscale files to convert Avalanche trust into ETF"),
            ["AVAX"]
        );
        assert_eq!(syms(&b, "Why Avalanche Is Rallying This Week"), ["AVAX"]);
        assert_eq!(
            syms(&b, "L2 fees fall on Arbitrum and Optimism"),
            ["ARB", "OP"]
        );
    }

    #[test]
    fn needs_cue_forms() {
        let b = book();
        assert!(syms(&b, "Musk's DOGE team cuts staff at Treasury").is_empty());
        assert!(syms(&b, "DOT fines airline over refund delays").is_empty());
        assert!(syms(&b, "NASA's Jupiter mission faces budget shortfall").is_empty());
        assert_eq!(syms(&b, "DOGE jumps 10% as memecoins rally"), ["DOGE"]);
        assert_eq!(
            syms(&b, "Solana DEX aggregator Jupiter expands"),
            ["JUP", "SOL"]
        );
        // Confirmed by an unambiguous mention of the same symbol.
        assert_eq!(syms(&b, "Polkadot's DOT is back"), ["DOT"]);
        assert_eq!(syms(&b, "Cardano's Hoskinson says ADA will win"), ["ADA"]);
    }

    #[test]
    fn exclude_phrases() {
        let b = book();
        assert!(syms(&b, "ETH Zurich spinout raises $30 million").is_empty());
        assert!(syms(&b, "Tron: Ares box office slides").is_empty());
        assert!(syms(&b, "Ripple effects of the tariff war").is_empty());
        assert_eq!(
            syms(&b, "Justin Sun's Tron unveils gas-free transfers"),
            ["TRX"]
        );
        assert_eq!(syms(&b, "Justin Sun's SUN token climbs"), ["SUN"]);
    }

    #[test]
    fn multi_word_names_win_over_their_first_word() {
        let b = book();
        assert_eq!(
            syms(&b, "Bitcoin Cash and Ethereum Classic rally"),
            ["BCH", "ETC"]
        );
        assert_eq!(
            syms(&b, "NEAR Protocol and Shiba Inu slide"),
            ["NEAR", "SHIB"]
        );
        assert!(syms(&b, "Bitcoin SV trial: judge rules against Wright").is_empty());
    }

    #[test]
    fn incremental_tallies_match_the_batch_rule() {
        let b = book();
        let titles = [
            "Bitcoin tops $100K as ETF inflows surge",
            "Solana outage halts block production",
            "ETH and BTC slide",
        ];
        let bodies = [
            "Ether also rose.",
            "SOL fell 5%. Bitcoin was flat.",
            "Traders sold.",
        ];
        let mut tallies = Vec::new();
        for (t, body) in titles.iter().zip(bodies) {
            tally(&mut tallies, &b.article_symbols(t, body));
        }
        assert_eq!(
            story_symbols_from(&tallies, 3),
            b.story_symbols(&titles, &bodies)
        );
    }

    #[test]
    fn mentions_carry_byte_ranges_and_agree_with_the_counts() {
        let b = book();
        let text = "Bitcoin Cash slides while $BTC and Ether climb; ETH/BTC ratio up";
        let m = b.mentions(text);
        let got: Vec<(&str, &str)> = m
            .iter()
            .map(|x| (x.symbol.as_str(), &text[x.start..x.end]))
            .collect();
        assert_eq!(
            got,
            vec![
                ("BCH", "Bitcoin Cash"),
                ("BTC", "BTC"),
                ("ETH", "Ether"),
                ("ETH", "ETH"),
                ("BTC", "BTC")
            ]
        );
        let (syms, t, l) = b.article_symbols_and_mentions(text, "Solana too.");
        assert_eq!(syms, b.article_symbols(text, "Solana too."));
        assert_eq!(t, m);
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].symbol, "SOL");
    }

    #[test]
    fn counts_and_order() {
        let b = book();
        let hits = b.symbols_in(
            "Ether and Bitcoin rally. ETH/USDT leads; ethereum fees fall, $ETH holders cheer. \
             BTC follows while SOL lags.",
        );
        let got: Vec<(&str, u32)> = hits.iter().map(|h| (h.symbol.as_str(), h.count)).collect();
        assert_eq!(got, [("ETH", 4), ("BTC", 2), ("SOL", 1)]);
        assert!(b.symbols_in("").is_empty());
        assert!(b.symbols_in("   ... $ / - ").is_empty());
    }

    #[test]
    fn story_titles_and_body_share() {
        let b = book();
        let titles = [
            "Solana ETF approved by SEC",
            "SEC approves first spot ETF for Solana",
            "Spot SOL fund cleared, XRP next?",
            "Altcoin ETFs: what the approval means",
        ];
        let bodies = [
            "The approval follows bitcoin and ether funds. Analysts expect more.",
            "Solana rose 5%. Bitcoin was flat.",
            "Traders now look at XRP.",
            "Solana is first; bitcoin and ether came before it.",
        ];
        let story = b.story_symbols(&titles, &bodies);
        let names: Vec<&str> = story.iter().map(|(s, _)| s.as_str()).collect();
        // SOL: 3 titles + 1 body; BTC and ETH: bodies of 3 and 2 of 4 articles (>= 30%);
        // XRP: one title.
        assert_eq!(names, ["SOL", "BTC", "ETH", "XRP"]);
        let w = |s: &str| story.iter().find(|(x, _)| x == s).map(|(_, w)| *w).unwrap();
        assert!((w("SOL") - (3.0 + 0.5) / 4.0).abs() < 1e-6);
        assert!((w("BTC") - 1.5 / 4.0).abs() < 1e-6);
        assert!((w("ETH") - 1.0 / 4.0).abs() < 1e-6);
        assert!((w("XRP") - 1.0 / 4.0).abs() < 1e-6);
    }

    #[test]
    fn story_drops_symbols_in_few_bodies() {
        let b = book();
        let titles = ["Fed holds rates"; 4];
        let bodies = [
            "Stocks rose. Bitcoin was flat.",
            "Bonds rallied.",
            "The dollar slid.",
            "Gold hit a record.",
        ];
        // BTC is in 1 of 4 articles (25% < 30%) and in no title.
        assert!(b.story_symbols(&titles, &bodies).is_empty());
        assert!(b.story_symbols(&[], &[]).is_empty());
        // Missing bodies count as empty.
        assert_eq!(
            b.story_symbols(&["Bitcoin rallies"], &[]),
            [("BTC".to_string(), 1.0)]
        );
        // Ties on weight are broken by mentions, then by symbol.
        let story = b.story_symbols(
            &["SOL and ETH rally"],
            &["Solana leads; SOL volume doubles"],
        );
        assert_eq!(story, [("SOL".to_string(), 1.0), ("ETH".to_string(), 1.0)]);
    }

    #[test]
    fn unicode_and_punctuation_do_not_trip_the_scanner() {
        let b = book();
        assert_eq!(
            syms(
                &b,
                "Ethereum’s fees — and Bitcoin’s: ≈ $100k; «Solana» über alles…"
            ),
            ["BTC", "ETH", "SOL"]
        );
        assert_eq!(
            syms(&b, "ÉTÉ: NEAR—SUI 🚀 $ÖL XRP\u{a0}jumps"),
            ["NEAR", "SUI", "XRP"]
        );
        for text in [
            "$", "-", "/BTC", "BTC/", "'s", "s", "…’s", "BTC-", "1000USDT", "USDT",
        ] {
            let _ = b.symbols_in(text);
        }
        assert!(syms(&b, "1000USDT and USDTUSD").is_empty());
    }

    #[test]
    fn book_is_shareable_across_threads() {
        fn shareable<T: Send + Sync + Clone>() {}
        shareable::<SymbolBook>();
    }

    #[test]
    fn bad_files_name_origin_and_problem() {
        let e = err_of("[[symbol]]\nsymbol = \"BTC\"\nnames = [\"bitcoin\"\n");
        assert!(
            e.starts_with("my-symbols.toml: not a valid symbol file"),
            "{e}"
        );
        let e = err_of("[[symbol]]\nsymbol = \"BTC\"\nnmes = [\"bitcoin\"]\n");
        assert!(e.contains("my-symbols.toml") && e.contains("nmes"), "{e}");
        let e = err_of("[[symbol]]\nsymbol = \"BTC\"\nambiguous = true\n");
        assert!(
            e.contains("my-symbols.toml") && e.contains("ambiguous"),
            "{e}"
        );
        let e = err_of("[[symbol]]\nsymbol = \"BTC\"\n[[symbol]]\nsymbol = \"BTC\"\n");
        assert!(
            e.contains("#2 `BTC`, field `symbol`: duplicate symbol"),
            "{e}"
        );
        let e = err_of("[[symbol]]\nsymbol = \"BTC\"\nnames = [\"  \"]\n");
        assert!(e.contains("`BTC`, field `names`: empty name"), "{e}");
        let e = err_of("[[symbol]]\nsymbol = \"btc\"\n");
        assert!(e.contains("`btc`, field `symbol`: must be"), "{e}");
        let e = err_of("[[symbol]]\nsymbol = \"PUMP\"\nnames = [\"pump.fun\"]\n");
        assert!(
            e.contains("field `names`: `pump.fun` must be whole words"),
            "{e}"
        );
        let e = err_of(
            "[[symbol]]\nsymbol = \"BTC\"\nnames = [\"bitcoin\"]\n\
             [[symbol]]\nsymbol = \"WBTC\"\nnames = [\"bitcoin\"]\n",
        );
        assert!(
            e.contains("`WBTC`, field `names`: `bitcoin` is already a name or ticker of `BTC`"),
            "{e}"
        );
        let e = err_of("[[symbol]]\nsymbol = \"SOL\"\nambiguous = [\"solana\"]\n");
        assert!(
            e.contains("field `ambiguous`: `solana` is not one of"),
            "{e}"
        );
        let e =
            err_of("[[symbol]]\nsymbol = \"S\"\nnames = [\"sonic\"]\npair_only = [\"sonic\"]\n");
        assert!(
            e.contains("`S`, field `pair_only`: `sonic` is not one of this symbol's tickers"),
            "{e}"
        );
        let e = err_of("[[symbol]]\nsymbol = \"S\"\nneeds_cue = [\"S\"]\npair_only = [\"S\"]\n");
        assert!(
            e.contains("field `pair_only`: `S` is in more than one of"),
            "{e}"
        );
        let e = err_of("[[symbol]]\nsymbol = \"SOL\"\nexclude = [\"sol\"]\n");
        assert!(e.contains("field `exclude`"), "{e}");
        let e = err_of("cue_window = 0\n[[symbol]]\nsymbol = \"SOL\"\n");
        assert!(
            e.contains("my-symbols.toml: `cue_window`: must be between 1 and 10"),
            "{e}"
        );
        let e = err_of("# nothing here\n");
        assert!(e.contains("no [[symbol]]"), "{e}");
    }

    #[test]
    fn load_reads_a_user_file() {
        let dir = std::env::temp_dir().join(format!("symbols-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("symbols.toml");
        let extended =
            format!("{SHIPPED}\n[[symbol]]\nsymbol = \"GOAT\"\nnames = [\"goatseus maximus\"]\n",);
        std::fs::write(&path, extended).unwrap();
        let book = SymbolBook::load(&path).unwrap();
        assert_eq!(book.len(), SymbolBook::builtin().len() + 1);
        assert_eq!(
            syms(&book, "Goatseus Maximus jumps after Solana memecoin rally"),
            ["GOAT", "SOL"]
        );
        let missing = dir.join("missing.toml");
        let e = SymbolBook::load(&missing).unwrap_err().to_string();
        assert!(
            e.contains("cannot read symbol file") && e.contains("missing.toml"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
