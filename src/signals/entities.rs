//! Who and what a headline is about, so that look-alike events stay apart.
//!
//! "SEC receives a spot XRP ETF filing" and "SEC receives a spot SOL ETF filing" share every
//! event word; what tells them apart is the market. "SNB hikes rates" and "Fed cuts rates",
//! "Upbit halts withdrawals after hack" and "BtcTurk halts withdrawals after hack" likewise.
//! The cluster stage therefore compares the entities an article and a story name (see
//! [`conflict`]) besides their words. Three kinds, each compared on its own, so that two
//! entities in different roles (the SEC and the exchange it sues) are never weighed against
//! each other:
//!
//! - **assets**: the perp symbols of [`super::symbols`] (a `SymbolBook`), plus a few
//!   non-crypto markets (gold, silver, oil under its names Brent, WTI and crude);
//! - **institutions**: central banks and financial regulators, under their names, acronyms
//!   and common descriptions ("Swiss central bank" is the SNB, "Powell" the Fed);
//! - **names**: other proper names (companies, people, places, tokens the dictionary does not
//!   know): acronyms ("NYDFS", "OSTR"), words with inner capitals or digits ("KuCoin",
//!   "21Shares"), capitalised words inside a sentence-case sentence, and, in a Title Case
//!   headline or at its start, only the capitalised words the lead also writes as a name
//!   ("Upbit halts …" with "exchange Upbit suspended" in the lead; not "Payrolls beat …").
//!   Stop words, a few generic acronyms (ETF, IPO, CEO, …) and every form of a symbol are not
//!   names.
//!
//! Each article carries two sets ([`Entities`]): what its **title** names, and what its
//! title or **lead** (the first [`LEAD_CHARS`] characters of the body) names. A story carries
//! the unions over its members, bounded by [`MAX_STORY_ENTITIES`].
//!
//! Entities are 64-bit keys: the kind in the top two bits, a hash of the canonical form below.
//! The extraction is a pure function of the title, the lead and the symbol dictionary.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::symbols::{ArticleSymbols, SymbolBook};
use crate::text;

/// Characters of the body read as the lead. Long enough for a general-news article to
/// mention again the people and places its headline leaves out (dev set, B-cubed F1 with the
/// gate: 0.867 with 240 characters, 0.900 with 1,000, 0.899 with 5,000), short enough that
/// a crypto item's lead does not list every other market.
pub const LEAD_CHARS: usize = 1000;

/// Most entities a story keeps per set; further ones are not added (first come, so the sets
/// depend only on the order of the articles). A story naming this many things is broad, and
/// a broad story conflicts with little.
pub const MAX_STORY_ENTITIES: usize = 64;

/// Kind of an asset (perp symbol or other market).
pub const KIND_ASSET: u64 = 0;
/// Kind of a central bank or regulator.
pub const KIND_INSTITUTION: u64 = 1;
/// Kind of any other proper name.
pub const KIND_NAME: u64 = 2;
/// Kind of a country or region.
pub const KIND_PLACE: u64 = 3;
const KIND_SHIFT: u32 = 62;

/// The key of entity `canonical` (lowercase) of `kind`.
pub fn key(kind: u64, canonical: &str) -> u64 {
    (kind << KIND_SHIFT) | (text::word_hash(canonical) >> 2)
}

/// The entities one article or one story names: sorted, unique keys (see [`key`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entities {
    /// Named in a title.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub title: Vec<u64>,
    /// Named in a title or a lead (a superset of `title`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub text: Vec<u64>,
}

impl Entities {
    /// Nothing named at all.
    pub fn is_empty(&self) -> bool {
        self.title.is_empty() && self.text.is_empty()
    }

    /// Adds an article's entities to a story's (each set at most [`MAX_STORY_ENTITIES`]).
    pub fn absorb(&mut self, a: &Entities) {
        union_into(&mut self.title, &a.title);
        union_into(&mut self.text, &a.text);
    }
}

fn union_into(set: &mut Vec<u64>, add: &[u64]) {
    for &k in add {
        if set.len() >= MAX_STORY_ENTITIES {
            return;
        }
        if let Err(at) = set.binary_search(&k) {
            set.insert(at, k);
        }
    }
}

/// Whether an article and a story name different entities of one kind: for some kind, both
/// titles name at least one, and no entity one title names appears in the other's title or
/// lead. A story about several assets keeps articles about any of them ("ETF filings for XRP
/// and SOL" meets "Grayscale files for XRP, SOL and DOGE" on XRP); an entity only the lead of
/// one of them names still bridges them (a "Reserve Bank keeps rates on hold" whose lead says
/// "Reserve Bank of Australia" meets "RBA holds"); and an article or story that names
/// nothing of a kind has no conflict of that kind.
pub fn conflict(article: &Entities, story: &Entities) -> bool {
    Probe::new(article).conflict(&Filter::of(story), story)
}

/// A story's entities in one cache line, kept beside the story (see
/// `StoryState::entity_filters`) so that [`Probe::conflict`] seldom reads the story's own
/// sets: which kinds its title names, and one bit per key of its title and text (a key's
/// bit clear means the key is not in the set; set means it may be).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filter {
    kinds: u8,
    title: [u64; 2],
    text: [u64; 4],
}

impl Filter {
    /// The filter of `e`.
    pub fn of(e: &Entities) -> Self {
        let mut f = Filter::default();
        for &k in &e.title {
            f.kinds |= 1 << (k >> KIND_SHIFT);
            let b = Self::title_bit(k);
            f.title[b / 64] |= 1 << (b % 64);
        }
        for &k in &e.text {
            let b = Self::text_bit(k);
            f.text[b / 64] |= 1 << (b % 64);
        }
        f
    }

    // Keys are hashes: their low bits serve as they are.
    fn title_bit(k: u64) -> usize {
        (k >> 8) as usize % 128
    }

    fn text_bit(k: u64) -> usize {
        k as usize % 256
    }
}

/// An article's side of [`conflict`], worked out once for all the stories it is checked
/// against: per kind its title names, the filter bits of those title keys (to look up in a
/// story's text) and of its text keys of that kind (to look up in a story's title).
#[derive(Debug, Clone)]
pub struct Probe<'a> {
    article: &'a Entities,
    kinds: Vec<KindProbe>,
}

#[derive(Debug, Clone)]
struct KindProbe {
    kind: u64,
    title: std::ops::Range<usize>,
    text: std::ops::Range<usize>,
    title_in_text: [u64; 4],
    text_in_title: [u64; 2],
}

impl<'a> Probe<'a> {
    /// The probe of `article`.
    pub fn new(article: &'a Entities) -> Self {
        let mut kinds = Vec::new();
        let mut start = 0;
        while let Some(&k) = article.title.get(start) {
            let kind = k >> KIND_SHIFT;
            let end = start
                + article.title[start..]
                    .iter()
                    .position(|k| k >> KIND_SHIFT != kind)
                    .unwrap_or(article.title.len() - start);
            let lo = article.text.partition_point(|k| k >> KIND_SHIFT < kind);
            let hi = article.text.partition_point(|k| k >> KIND_SHIFT <= kind);
            let mut title_in_text = [0u64; 4];
            for &k in &article.title[start..end] {
                let b = Filter::text_bit(k);
                title_in_text[b / 64] |= 1 << (b % 64);
            }
            let mut text_in_title = [0u64; 2];
            for &k in &article.text[lo..hi] {
                let b = Filter::title_bit(k);
                text_in_title[b / 64] |= 1 << (b % 64);
            }
            kinds.push(KindProbe {
                kind,
                title: start..end,
                text: lo..hi,
                title_in_text,
                text_in_title,
            });
            start = end;
        }
        Probe { article, kinds }
    }

    /// Whether the article and a story with entities `story` and filter `filter` (which
    /// must be `Filter::of(story)`) conflict ([`conflict`]). The story's sets are read only
    /// where the filters cannot tell them apart. A key holds its kind, so looking one up in
    /// a whole set finds it only among that kind's keys.
    pub fn conflict(&self, filter: &Filter, story: &Entities) -> bool {
        let overlaps = |a: &[u64], b: &[u64]| a.iter().zip(b).any(|(x, y)| x & y != 0);
        self.kinds.iter().any(|p| {
            filter.kinds & (1 << p.kind) != 0
                && (!overlaps(&p.title_in_text, &filter.text)
                    || !self.article.title[p.title.clone()]
                        .iter()
                        .any(|k| story.text.binary_search(k).is_ok()))
                && (!overlaps(&p.text_in_title, &filter.title)
                    || !self.article.text[p.text.clone()]
                        .iter()
                        .any(|k| story.title.binary_search(k).is_ok()))
        })
    }
}

/// Acronyms and capitalised words that name no one in particular (sorted: binary search).
const GENERIC: &[&str] = &[
    "ai",
    "aml",
    "analysis",
    "api",
    "apis",
    "apr",
    "apy",
    "ath",
    "bps",
    "breaking",
    "cco",
    "ceo",
    "cex",
    "cfo",
    "cio",
    "coo",
    "cpi",
    "cto",
    "dao",
    "defi",
    "dex",
    "eps",
    "etf",
    "etfs",
    "etn",
    "etp",
    "exclusive",
    "gdp",
    "ico",
    "ipo",
    "ipos",
    "kyc",
    "live",
    "llc",
    "ltd",
    "nft",
    "nfts",
    "opinion",
    "otc",
    "pce",
    "pmi",
    "ppi",
    "q1",
    "q2",
    "q3",
    "q4",
    "rwa",
    "tvl",
    "update",
    "usd",
    "video",
    "watch",
    "yoy",
];

/// Central banks, regulators and a few non-crypto markets: (kind, canonical, forms). Forms are
/// lowercase word sequences; an institution's form counts when its first word is written with
/// a capital, a market's in any case.
const DICTIONARY: &[(u64, &str, &[&str])] = &[
    (
        KIND_INSTITUTION,
        "fed",
        &["fed", "fomc", "federal reserve", "powell"],
    ),
    (
        KIND_INSTITUTION,
        "ecb",
        &["ecb", "european central bank", "lagarde"],
    ),
    (KIND_INSTITUTION, "boe", &["boe", "bank of england"]),
    (KIND_INSTITUTION, "boj", &["boj", "bank of japan"]),
    (
        KIND_INSTITUTION,
        "snb",
        &["snb", "swiss national bank", "swiss central bank"],
    ),
    (KIND_INSTITUTION, "boc", &["boc", "bank of canada"]),
    (
        KIND_INSTITUTION,
        "rba",
        &[
            "rba",
            "reserve bank of australia",
            "australian central bank",
        ],
    ),
    (
        KIND_INSTITUTION,
        "rbnz",
        &["rbnz", "reserve bank of new zealand"],
    ),
    (KIND_INSTITUTION, "rbi", &["rbi", "reserve bank of india"]),
    (
        KIND_INSTITUTION,
        "pboc",
        &["pboc", "people bank of china", "chinese central bank"],
    ),
    (KIND_INSTITUTION, "riksbank", &["riksbank"]),
    (KIND_INSTITUTION, "norges", &["norges bank"]),
    (
        KIND_INSTITUTION,
        "sec",
        &["sec", "securities and exchange commission"],
    ),
    (
        KIND_INSTITUTION,
        "cftc",
        &["cftc", "commodity futures trading commission"],
    ),
    (
        KIND_INSTITUTION,
        "doj",
        &["doj", "justice department", "department of justice"],
    ),
    (KIND_INSTITUTION, "nydfs", &["nydfs"]),
    (KIND_INSTITUTION, "finra", &["finra"]),
    (KIND_INSTITUTION, "occ", &["occ"]),
    (KIND_INSTITUTION, "fdic", &["fdic"]),
    (KIND_INSTITUTION, "ofac", &["ofac"]),
    (KIND_INSTITUTION, "fincen", &["fincen"]),
    (
        KIND_INSTITUTION,
        "fca",
        &["fca", "financial conduct authority"],
    ),
    (KIND_INSTITUTION, "esma", &["esma"]),
    (KIND_INSTITUTION, "bafin", &["bafin"]),
    (
        KIND_INSTITUTION,
        "mas",
        &["monetary authority of singapore"],
    ),
    (
        KIND_INSTITUTION,
        "sfc",
        &["sfc", "securities and futures commission"],
    ),
    (KIND_INSTITUTION, "asic", &["asic"]),
    (KIND_INSTITUTION, "sebi", &["sebi"]),
    (KIND_INSTITUTION, "vara", &["vara"]),
    // Stock exchanges are where a company lists, not who the news is about.
    (
        KIND_INSTITUTION,
        "nyse",
        &["nyse", "new york stock exchange"],
    ),
    (KIND_INSTITUTION, "nasdaq", &["nasdaq"]),
    (KIND_INSTITUTION, "cboe", &["cboe"]),
    (KIND_INSTITUTION, "lse", &["london stock exchange"]),
    (
        KIND_PLACE,
        "us",
        &[
            "us",
            "usa",
            "united states",
            "america",
            "american",
            "americans",
        ],
    ),
    (
        KIND_PLACE,
        "uk",
        &["uk", "britain", "british", "united kingdom", "england"],
    ),
    (
        KIND_PLACE,
        "eu",
        &[
            "eu",
            "european union",
            "europe",
            "european",
            "eurozone",
            "euro zone",
        ],
    ),
    (KIND_PLACE, "china", &["china", "chinese"]),
    (KIND_PLACE, "hongkong", &["hong kong"]),
    (KIND_PLACE, "japan", &["japan", "japanese"]),
    (
        KIND_PLACE,
        "korea",
        &["korea", "korean", "south korea", "south korean"],
    ),
    (KIND_PLACE, "india", &["india", "indian"]),
    (KIND_PLACE, "canada", &["canada", "canadian"]),
    (KIND_PLACE, "australia", &["australia", "australian"]),
    (KIND_PLACE, "switzerland", &["switzerland", "swiss"]),
    (KIND_PLACE, "germany", &["germany", "german"]),
    (KIND_PLACE, "france", &["france", "french"]),
    (KIND_PLACE, "russia", &["russia", "russian"]),
    (KIND_PLACE, "singapore", &["singapore"]),
    (KIND_PLACE, "uae", &["uae", "dubai", "emirates"]),
    (KIND_PLACE, "turkey", &["turkey", "turkish"]),
    (KIND_PLACE, "brazil", &["brazil", "brazilian"]),
    (KIND_ASSET, "gold", &["gold"]),
    (KIND_ASSET, "silver", &["silver"]),
    (KIND_ASSET, "oil", &["oil", "brent", "wti", "crude"]),
    (KIND_ASSET, "copper", &["copper"]),
];

/// A dictionary form under its first word: (the other words, kind, canonical).
type Form = (Vec<&'static str>, u64, &'static str);

/// The dictionary by first word (looked up for most words of every title and lead: the
/// symbol tables' hasher, not SipHash).
type Dictionary = HashMap<&'static str, Vec<Form>, crate::signals::symbols::WordHash>;

fn dictionary() -> &'static Dictionary {
    static DICT: OnceLock<Dictionary> = OnceLock::new();
    DICT.get_or_init(|| {
        let mut m = Dictionary::default();
        for &(kind, canonical, forms) in DICTIONARY {
            for f in forms {
                let mut words = f.split(' ');
                let first = words.next().unwrap_or_default();
                m.entry(first)
                    .or_default()
                    .push((words.collect(), kind, canonical));
            }
        }
        // Longest form first, so "bank of england" wins over any shorter form.
        for forms in m.values_mut() {
            forms.sort_by_key(|f| std::cmp::Reverse(f.0.len()));
        }
        m
    })
}

/// One word as the extractor sees it.
#[derive(Debug, PartialEq)]
struct Word<'a> {
    raw: &'a str,
    /// Lowercased; only filled for capitalised words, or every word of a title (where
    /// markets count in any case).
    lower: std::borrow::Cow<'a, str>,
    /// Acronym, inner capital or letters with digits: a name wherever it stands.
    marked: bool,
    /// Starts with a capital.
    capital: bool,
    /// Capitalised inside its sentence (see [`text::Token::name_like`]).
    name_like: bool,
}

/// "U.S." and "U.K." as one word each (allocating only when they occur).
fn normalized(t: &str) -> std::borrow::Cow<'_, str> {
    if t.contains("U.S.") || t.contains("U.K.") {
        std::borrow::Cow::Owned(t.replace("U.S.", "US").replace("U.K.", "UK"))
    } else {
        std::borrow::Cow::Borrowed(t)
    }
}

/// The words of `t` that are not numbers ([`text::tokens`]), with their marks; lowercased
/// where `all_lower` (a title) or where the word is capitalised or marked.
/// `lowered` is `t` lowercased when `t` is ASCII (then it is read in one pass, and each
/// word's lowercase form is a slice of it), `None` otherwise.
fn words<'a>(t: &'a str, lowered: Option<&'a str>, all_lower: bool) -> Vec<Word<'a>> {
    match lowered {
        Some(lowered) => ascii_words(t, lowered, all_lower),
        None => general_words(t, all_lower),
    }
}

/// `t` lowercased when it is ASCII (see [`words`]).
fn ascii_lowered(t: &str) -> Option<String> {
    t.is_ascii().then(|| t.to_ascii_lowercase())
}

/// Whether a word with these letter counts and marks is marked (see [`Word::marked`]).
fn is_marked(letters: usize, uppers: usize, capital: bool, inner: bool, digits: bool) -> bool {
    (letters >= 2 && uppers == letters)
        || (capital && uppers >= 2)
        || (inner && letters >= 3)
        || (digits && letters >= 2)
}

/// [`words`] of an ASCII text in one pass over its bytes, counting each word's marks as it
/// is read: the same words as [`text::tokens`] (runs of letters and digits, digits joined
/// across `.` and `,`, an apostrophe and what follows dropped, a sentence broken at `.`, `!`,
/// `?`, `:` and line breaks), numbers left out. Titles and leads are read for every article,
/// and this is most of the extraction's cost.
fn ascii_words<'a>(t: &'a str, lowered: &'a str, all_lower: bool) -> Vec<Word<'a>> {
    let b = t.as_bytes();
    let n = b.len();
    let mut out = Vec::with_capacity(n / 6 + 1);
    let (mut i, mut sentence_start) = (0, true);
    while i < n {
        if !b[i].is_ascii_alphanumeric() {
            sentence_start |= matches!(b[i], b'.' | b'!' | b'?' | b'\n' | b':');
            i += 1;
            continue;
        }
        let start = i;
        // Lowercase letters (most bytes) are only counted by the run's length.
        let (mut uppers, mut digits, mut joins, mut inner) = (0, 0, 0, false);
        loop {
            while i < n {
                let x = b[i];
                if x.is_ascii_lowercase() {
                } else if x.is_ascii_uppercase() {
                    uppers += 1;
                    inner |= i > start;
                } else if x.is_ascii_digit() {
                    digits += 1;
                } else {
                    break;
                }
                i += 1;
            }
            if text::joins_digits(b, i) {
                i += 1;
                joins += 1;
                continue;
            }
            break;
        }
        let letters = i - start - joins - digits;
        let numeric = letters == 0;
        let digits = digits > 0;
        let raw = &t[start..i];
        // "Binance's" → "Binance".
        if i < n && b[i] == b'\'' {
            i += 1;
            while i < n && b[i].is_ascii_alphanumeric() {
                i += 1;
            }
        }
        let capital = b[start].is_ascii_uppercase();
        let name_like = capital && !sentence_start;
        sentence_start = false;
        if numeric {
            continue;
        }
        let marked = is_marked(letters, uppers, capital, inner, digits);
        let lower = if uppers == 0 {
            std::borrow::Cow::Borrowed(if all_lower || marked { raw } else { "" })
        } else if capital || marked || all_lower {
            std::borrow::Cow::Borrowed(&lowered[start..start + raw.len()])
        } else {
            std::borrow::Cow::Borrowed("")
        };
        out.push(Word {
            raw,
            lower,
            marked,
            capital,
            name_like,
        });
    }
    out
}

/// [`words`] of any text, through [`text::tokens`].
fn general_words(t: &str, all_lower: bool) -> Vec<Word<'_>> {
    let mut buf = String::new();
    text::tokens(t)
        .filter(|tok| !tok.numeric)
        .map(|tok| {
            let raw = tok.raw;
            let capital = raw.chars().next().is_some_and(char::is_uppercase);
            let (mut letters, mut uppers, mut digits, mut inner) = (0, 0, false, false);
            if raw.is_ascii() {
                // Nearly every word: bytes, not chars.
                for (i, b) in raw.bytes().enumerate() {
                    letters += usize::from(b.is_ascii_alphabetic());
                    uppers += usize::from(b.is_ascii_uppercase());
                    digits |= b.is_ascii_digit();
                    inner |= i > 0 && b.is_ascii_uppercase();
                }
            } else {
                for (i, c) in raw.chars().enumerate() {
                    letters += usize::from(c.is_alphabetic());
                    uppers += usize::from(c.is_uppercase());
                    digits |= c.is_ascii_digit();
                    inner |= i > 0 && c.is_uppercase();
                }
            }
            let marked = is_marked(letters, uppers, capital, inner, digits);
            let lower = if uppers == 0 && raw.is_ascii() {
                // Already lowercase (most words): borrowed, not copied.
                std::borrow::Cow::Borrowed(if all_lower || marked { raw } else { "" })
            } else if capital || marked || all_lower {
                std::borrow::Cow::Owned(text::lower_into(raw, &mut buf).to_string())
            } else {
                std::borrow::Cow::Borrowed("")
            };
            Word {
                raw,
                lower,
                marked,
                capital,
                name_like: tok.name_like,
            }
        })
        .collect()
}

/// Whether most longer words of a headline are capitalised (Title Case), where capitals
/// say nothing about names.
fn title_case(ws: &[Word<'_>]) -> bool {
    let long: Vec<&Word<'_>> = ws.iter().skip(1).filter(|w| w.raw.len() >= 4).collect();
    !long.is_empty() && long.iter().filter(|w| w.capital).count() * 10 >= long.len() * 6
}

/// Dictionary entities in `ws`, and which words they cover.
fn dictionary_hits(ws: &[Word<'_>], out: &mut Vec<u64>) -> Vec<bool> {
    let dict = dictionary();
    let mut covered = vec![false; ws.len()];
    let mut i = 0;
    while i < ws.len() {
        // Words not lowercased (lowercase words of a lead) start no form: institutions and
        // places are written with a capital, and a lead's lowercase "gold" is left out.
        let first = ws[i].lower.as_ref();
        let hit = (!first.is_empty())
            .then(|| dict.get(first))
            .flatten()
            .and_then(|forms| {
                forms.iter().find(|(rest, kind, _)| {
                    (*kind == KIND_ASSET || ws[i].capital)
                        && rest.len() < ws.len() - i
                        && rest
                            .iter()
                            .zip(&ws[i + 1..])
                            .all(|(r, w)| w.raw.eq_ignore_ascii_case(r))
                })
            });
        match hit {
            Some((rest, kind, canonical)) => {
                out.push(key(*kind, canonical));
                covered[i..=i + rest.len()].fill(true);
                i += rest.len() + 1;
            }
            None => i += 1,
        }
    }
    covered
}

fn is_name_word(w: &Word<'_>, book: &SymbolBook) -> bool {
    let l = w.lower.as_ref();
    !text::is_stop_word(l) && GENERIC.binary_search(&l).is_err() && !book.is_form(l)
}

/// The entities of an article with this `title`, `lead` (the start of its body; see
/// [`LEAD_CHARS`]) and `symbols` (found in the title and the symbol stage's lead).
pub fn article_entities(
    book: &SymbolBook,
    symbols: &ArticleSymbols,
    title: &str,
    lead: &str,
) -> Entities {
    let lead = text::prefix_chars(lead, LEAD_CHARS);
    let (title, lead) = (normalized(title), normalized(lead));
    let (title_lowered, lead_lowered) = (ascii_lowered(&title), ascii_lowered(&lead));
    let tw = words(&title, title_lowered.as_deref(), true);
    let lw = words(&lead, lead_lowered.as_deref(), false);
    // A headline that names no market is about the one its lead's first sentence names
    // ("Sui faces $150 million token unlock" with "44 million SUI tokens" in the lead).
    let primary = if symbols.title.is_empty() {
        &symbols.body_only
    } else {
        &symbols.title
    };
    let mut title_keys: Vec<u64> = primary
        .iter()
        .map(|(s, _)| key(KIND_ASSET, &s.to_lowercase()))
        .collect();
    let mut text_keys: Vec<u64> = symbols
        .body_only
        .iter()
        .map(|(s, _)| key(KIND_ASSET, &s.to_lowercase()))
        .collect();
    let t_cov = dictionary_hits(&tw, &mut title_keys);
    let l_cov = dictionary_hits(&lw, &mut text_keys);
    // Names in the lead: marked words and capitalised words inside a sentence.
    let lead_names: Vec<&str> = lw
        .iter()
        .zip(&l_cov)
        .filter(|(w, c)| !**c && (w.marked || w.name_like) && is_name_word(w, book))
        .map(|(w, _)| w.lower.as_ref())
        .collect();
    // Every word the lead writes with a capital, to confirm a headline's capitalised word
    // where capitals say nothing ("Nvidia beats …" with "Nvidia reported …"). A lead that
    // starts by repeating the headline confirms nothing with that copy.
    let copied = tw
        .iter()
        .zip(&lw)
        .take_while(|(t, l)| t.raw == l.raw)
        .count();
    let copied = if copied >= tw.len().min(3) { copied } else { 0 };
    let lead_capitals: Vec<&str> = lw
        .iter()
        .zip(&l_cov)
        .skip(copied)
        .filter(|(w, c)| !**c && w.capital)
        .map(|(w, _)| w.lower.as_ref())
        .collect();
    text_keys.extend(lead_names.iter().map(|n| key(KIND_NAME, n)));
    let sentence_case = !title_case(&tw);
    for (w, c) in tw.iter().zip(&t_cov) {
        if *c || !w.capital || !is_name_word(w, book) {
            continue;
        }
        let name =
            w.marked || (sentence_case && w.name_like) || lead_capitals.contains(&w.lower.as_ref());
        if name {
            title_keys.push(key(KIND_NAME, &w.lower));
        }
    }
    title_keys.sort_unstable();
    title_keys.dedup();
    text_keys.extend_from_slice(&title_keys);
    text_keys.sort_unstable();
    text_keys.dedup();
    Entities {
        title: title_keys,
        text: text_keys,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ents(title: &str, lead: &str) -> Entities {
        let book = SymbolBook::builtin();
        let syms = book.article_symbols(title, lead);
        article_entities(&book, &syms, title, lead)
    }

    /// The keys of `kind` in the sorted `set`.
    fn of_kind(set: &[u64], kind: u64) -> &[u64] {
        let lo = set.partition_point(|k| k >> KIND_SHIFT < kind);
        let hi = set.partition_point(|k| k >> KIND_SHIFT <= kind);
        &set[lo..hi]
    }

    fn intersects(a: &[u64], b: &[u64]) -> bool {
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            match a[i].cmp(&b[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => return true,
            }
        }
        false
    }

    const KINDS: [u64; 4] = [KIND_ASSET, KIND_INSTITUTION, KIND_NAME, KIND_PLACE];

    /// [`conflict`] as its documentation states it, kind by kind.
    fn conflict_reference(article: &Entities, story: &Entities) -> bool {
        if article.title.is_empty() || story.title.is_empty() {
            return false;
        }
        KINDS.iter().any(|&kind| {
            let (at, st) = (of_kind(&article.title, kind), of_kind(&story.title, kind));
            !at.is_empty()
                && !st.is_empty()
                && !intersects(at, of_kind(&story.text, kind))
                && !intersects(st, of_kind(&article.text, kind))
        })
    }

    #[test]
    fn conflict_matches_its_reference() {
        // Small key spaces per kind, so that sets meet often; titles a subset of texts or
        // not (a story's sets are capped separately).
        let mut next = crate::testing::xorshift(0x9e37_79b9_7f4a_7c15u64);
        let set = |n: u64, next: &mut dyn FnMut() -> u64| {
            let mut v: Vec<u64> = (0..next() % n)
                .map(|_| {
                    let r = next();
                    key(KINDS[(r % 4) as usize], &format!("e{}", (r >> 8) % 6))
                })
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let (mut yes, mut total) = (0, 0);
        for _ in 0..20_000 {
            let ents = |next: &mut dyn FnMut() -> u64| {
                let title = set(5, next);
                let mut text = set(8, next);
                if !next().is_multiple_of(3) {
                    text.extend_from_slice(&title);
                    text.sort_unstable();
                    text.dedup();
                }
                Entities { title, text }
            };
            let (a, s) = (ents(&mut next), ents(&mut next));
            let want = conflict_reference(&a, &s);
            assert_eq!(conflict(&a, &s), want, "{a:?} {s:?}");
            // A filter that cannot tell anything apart still gives the same answer.
            let full = Filter {
                kinds: Filter::of(&s).kinds,
                title: [u64::MAX; 2],
                text: [u64::MAX; 4],
            };
            assert_eq!(Probe::new(&a).conflict(&full, &s), want, "{a:?} {s:?}");
            yes += usize::from(want);
            total += 1;
        }
        // Both outcomes are exercised.
        assert!(
            yes > total / 20 && yes < total * 19 / 20,
            "{yes} of {total}"
        );
    }

    fn names(e: &Entities) -> usize {
        of_kind(&e.title, KIND_NAME).len()
    }

    #[test]
    fn different_markets_institutions_and_companies_conflict() {
        let xrp = ents(
            "SEC receives spot XRP ETF filing",
            "The fund would hold XRP.",
        );
        let sol = ents(
            "SEC receives spot SOL ETF filing",
            "The fund would hold SOL.",
        );
        assert!(conflict(&xrp, &sol));
        let snb = ents(
            "SNB hikes rates by 25 basis points",
            "The Swiss National Bank raised its policy rate.",
        );
        let swiss = ents(
            "Swiss central bank surprises with quarter-point rate rise",
            "The SNB lifted borrowing costs.",
        );
        let fed = ents(
            "Fed cuts rates by 25 basis points",
            "The Federal Reserve lowered its benchmark rate.",
        );
        assert!(!conflict(&snb, &swiss));
        assert!(conflict(&fed, &snb) && conflict(&fed, &swiss));
        let upbit = ents(
            "Upbit halts withdrawals after hot wallet hack",
            "South Korean exchange Upbit suspended deposits.",
        );
        let btcturk = ents(
            "BtcTurk halts withdrawals after hot wallet hack",
            "Turkish exchange BtcTurk suspended deposits.",
        );
        assert!(conflict(&upbit, &btcturk));
        // Same regulator, different company sued: the names decide.
        let kraken = ents("SEC sues Kraken over staking program", "");
        let gemini = ents("SEC sues Gemini over lending program", "");
        assert!(conflict(&kraken, &gemini));
        let oil = ents("Oil jumps 4% after OPEC+ cut", "");
        let brent = ents("Brent surges as OPEC+ agrees deeper cuts", "");
        assert!(!conflict(&oil, &brent));
        assert!(conflict(&oil, &ents("Gold hits record above $4,300", "")));
    }

    #[test]
    fn several_assets_and_missing_entities_do_not_conflict() {
        let a = ents(
            "ETF filings for XRP and SOL land as Grayscale widens push",
            "",
        );
        let mut story = ents("Grayscale files for XRP, SOL and DOGE ETFs", "");
        assert!(!conflict(&a, &story));
        story.absorb(&ents("Grayscale submits ETF filings for DOGE", ""));
        assert!(!conflict(&ents("Spot SOL ETF sees inflows", ""), &story));
        // Nothing named on one side: no conflict of that kind.
        let payrolls = ents(
            "Payrolls beat forecasts even as jobless rate climbs",
            "Employers added 119,000 jobs.",
        );
        assert_eq!(names(&payrolls), 0);
        let us = ents("US employers add 119,000 jobs", "");
        assert!(!conflict(&payrolls, &us));
        // A lead bridges what the titles alone cannot.
        let rba = ents("RBA holds cash rate at 3.6%", "");
        let reserve = ents(
            "Reserve Bank keeps rates on hold",
            "The Reserve Bank of Australia left its cash rate unchanged.",
        );
        assert!(!conflict(&rba, &reserve));
    }

    #[test]
    fn a_lead_that_repeats_the_headline_confirms_no_name() {
        let a = ents(
            "Hours-long Solana outage freezes block production",
            "Hours-long Solana outage freezes block production, dlnews.com reported.",
        );
        assert_eq!(names(&a), 0);
        let b = ents(
            "Nvidia beats estimates",
            "Nvidia reported third-quarter revenue.",
        );
        assert_eq!(names(&b), 1);
    }

    #[test]
    fn names_in_title_case_need_the_lead_or_a_mark() {
        let e = ents(
            "OSTR Airdrop Worth $698 Million Goes Live for Ostrich Swap Users",
            "Around 441,000 wallets are eligible for the Ostrich Swap airdrop.",
        );
        let want: Vec<u64> = {
            let mut v: Vec<u64> = ["ostr", "ostrich", "swap"]
                .iter()
                .map(|n| key(KIND_NAME, n))
                .collect();
            v.sort_unstable();
            v
        };
        assert_eq!(of_kind(&e.title, KIND_NAME), want.as_slice());
        // Symbol names are assets, not names.
        let s = ents("Solana ETFs extend inflow streak", "");
        assert_eq!(names(&s), 0);
        assert_eq!(of_kind(&s.title, KIND_ASSET).len(), 1);
    }

    #[test]
    fn the_ascii_reader_reads_the_words_the_general_one_does() {
        let alphabet = b"aBcdEXyz0129 .,'!?:\n-$%QRST";
        let mut next = crate::testing::xorshift(0x51_7c_c1_b7_27_22_0a_95u64);
        for round in 0..20_000 {
            let len = (next() % 60) as usize;
            let text: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize] as char)
                .collect();
            for all_lower in [false, true] {
                assert_eq!(
                    ascii_words(&text, &text.to_ascii_lowercase(), all_lower),
                    general_words(&text, all_lower),
                    "round {round}: {text:?}"
                );
            }
        }
        let lead = "Binance's CEO said: U.S. SEC filed 12.6 and 100,000 ETH. iPhone X2 \
                    Q3 results? OKX'S \"Deribit\" (on-chain) BTC-USD.";
        let lowered = lead.to_ascii_lowercase();
        assert_eq!(
            ascii_words(lead, &lowered, false),
            general_words(lead, false)
        );
    }

    #[test]
    fn the_generic_words_are_sorted() {
        assert!(GENERIC.windows(2).all(|p| p[0] < p[1]));
    }

    #[test]
    fn a_story_keeps_at_most_the_bound() {
        let mut s = Entities::default();
        let many = Entities {
            title: (0..200).collect(),
            text: (0..200).collect(),
        };
        s.absorb(&many);
        assert_eq!(s.title.len(), MAX_STORY_ENTITIES);
        assert!(s.title.windows(2).all(|p| p[0] < p[1]));
    }
}
