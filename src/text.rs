//! Text handling shared by the offline embedder and the extractive labeler: tokenising,
//! stop words, and dropping boilerplate sentences that glue unrelated articles together.

use std::sync::OnceLock;

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// One word of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    /// The word as written.
    pub raw: &'a str,
    /// Starts with an uppercase letter and is not the first word of its sentence
    /// (a likely name).
    pub name_like: bool,
    /// Consists of digits (an amount, a year, a percentage).
    pub numeric: bool,
}

/// Splits `text` into words: maximal runs of letters and digits. Apostrophes inside a word
/// are dropped with what follows them ("Binance's" → "Binance").
pub fn tokens(text: &str) -> impl Iterator<Item = Token<'_>> {
    // Byte-level scanning with a char path only for non-ASCII: tokenising is the largest
    // single cost of the offline embedder.
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut sentence_start = true;
    let alnum_at = move |i: usize| -> Option<usize> {
        let b = *bytes.get(i)?;
        if b < 128 {
            return b.is_ascii_alphanumeric().then_some(1);
        }
        let c = text.get(i..)?.chars().next()?;
        c.is_alphanumeric().then(|| c.len_utf8())
    };
    std::iter::from_fn(move || {
        // Skip to the next word, noting sentence breaks on the way.
        loop {
            let b = *bytes.get(i)?;
            if alnum_at(i).is_some() {
                break;
            }
            if matches!(b, b'.' | b'!' | b'?' | b'\n' | b':') {
                sentence_start = true;
            }
            i += if b < 128 {
                1
            } else {
                text.get(i..)?.chars().next()?.len_utf8()
            };
        }
        let start = i;
        loop {
            if let Some(n) = alnum_at(i) {
                i += n;
                continue;
            }
            // Keep numbers whole: "12.6", "100,000".
            if !joins_digits(bytes, i) {
                break;
            }
            i += 1;
        }
        let raw = &text[start..i];
        // "Binance's" → "Binance": drop an apostrophe and what follows it.
        let rest = &text[i..];
        let apostrophe = ['\'', '’'].into_iter().find(|a| rest.starts_with(*a));
        if let Some(a) = apostrophe {
            i += a.len_utf8();
            while let Some(n) = alnum_at(i) {
                i += n;
            }
        }
        let first_upper = raw.chars().next().is_some_and(char::is_uppercase);
        let numeric = raw
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b',');
        let tok = Token {
            raw,
            name_like: first_upper && !sentence_start,
            numeric,
        };
        sentence_start = false;
        Some(tok)
    })
}

/// Whether the `.` or `,` at `b[i]` joins the digits on either side into one number ("12.6",
/// "100,000"): the rule of [`tokens`] and of the readers that scan ASCII bytes themselves.
pub fn joins_digits(b: &[u8], i: usize) -> bool {
    i > 0
        && i + 1 < b.len()
        && matches!(b[i], b'.' | b',')
        && b[i - 1].is_ascii_digit()
        && b[i + 1].is_ascii_digit()
}

/// The first `n` characters of `text` (all of it when it is shorter). When those bytes are
/// ASCII, each is one character and no decoding is needed (the common case, for every
/// article's lead).
pub fn prefix_chars(text: &str, n: usize) -> &str {
    if text.len() <= n {
        return text;
    }
    if text.as_bytes()[..n].is_ascii() {
        return &text[..n];
    }
    match text.char_indices().nth(n) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

/// Lowercases `word` into `buf` (reused to avoid an allocation per word).
pub fn lower_into<'b>(word: &str, buf: &'b mut String) -> &'b str {
    buf.clear();
    if word.is_ascii() {
        buf.push_str(word);
        buf.make_ascii_lowercase();
    } else {
        buf.extend(word.chars().flat_map(char::to_lowercase));
    }
    buf.as_str()
}

/// English function words plus words that appear in news about anything ("said", "report")
/// and therefore say nothing about which event an article covers. Sorted for binary search.
const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "according",
    "after",
    "again",
    "against",
    "ago",
    "all",
    "also",
    "am",
    "among",
    "an",
    "and",
    "another",
    "any",
    "are",
    "around",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "down",
    "during",
    "each",
    "even",
    "ever",
    "few",
    "for",
    "from",
    "further",
    "get",
    "got",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "however",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "last",
    "least",
    "less",
    "like",
    "made",
    "make",
    "many",
    "may",
    "me",
    "might",
    "more",
    "most",
    "mr",
    "mrs",
    "ms",
    "much",
    "must",
    "my",
    "myself",
    "new",
    "news",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "one",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "per",
    "report",
    "reported",
    "reports",
    "said",
    "same",
    "say",
    "says",
    "see",
    "she",
    "should",
    "since",
    "so",
    "some",
    "still",
    "such",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "though",
    "through",
    "to",
    "told",
    "too",
    "under",
    "until",
    "up",
    "upon",
    "us",
    "very",
    "via",
    "was",
    "we",
    "week",
    "were",
    "what",
    "when",
    "where",
    "whether",
    "which",
    "while",
    "who",
    "whom",
    "whose",
    "why",
    "will",
    "with",
    "within",
    "without",
    "would",
    "year",
    "years",
    "yet",
    "you",
    "your",
    "yours",
    "yourself",
];

/// The hash every component uses for a lowercased word.
#[inline]
pub fn word_hash(lower: &str) -> u64 {
    word_hash_bytes(lower.as_bytes())
}

/// [`word_hash`] of a lowercased word given as UTF-8 bytes.
#[inline]
pub fn word_hash_bytes(lower: &[u8]) -> u64 {
    xxh3_64_with_seed(lower, 0x5EED)
}

/// A set of 64-bit word hashes: open addressing over a power-of-two table at most a quarter
/// full, so a lookup is one or two probes (a binary search over the stop words was 15% of the
/// embedder's time).
#[derive(Debug, Clone)]
pub struct HashSet64 {
    table: Vec<u64>,
    mask: usize,
}

impl HashSet64 {
    /// A set holding `items`.
    pub fn new(items: impl IntoIterator<Item = u64>) -> Self {
        let items: Vec<u64> = items.into_iter().map(Self::nonzero).collect();
        let size = (items.len() * 4).next_power_of_two().max(8);
        let mut set = HashSet64 {
            table: vec![0; size],
            mask: size - 1,
        };
        for h in items {
            let mut i = set.slot(h);
            while set.table[i] != 0 && set.table[i] != h {
                i = (i + 1) & set.mask;
            }
            set.table[i] = h;
        }
        set
    }

    /// Zero marks an empty slot, so a hash of zero is stored as one.
    #[inline]
    fn nonzero(h: u64) -> u64 {
        h.max(1)
    }

    #[inline]
    fn slot(&self, h: u64) -> usize {
        (h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize & self.mask
    }

    /// Whether `h` is in the set.
    #[inline]
    pub fn contains(&self, h: u64) -> bool {
        let h = Self::nonzero(h);
        let mut i = self.slot(h);
        loop {
            match self.table[i] {
                0 => return false,
                x if x == h => return true,
                _ => i = (i + 1) & self.mask,
            }
        }
    }
}

fn hash_set(words: &[&str]) -> HashSet64 {
    HashSet64::new(words.iter().map(|w| word_hash(w)))
}

/// Whether the word with this [`word_hash`] carries no topical information.
#[inline]
pub fn is_stop_hash(h: u64) -> bool {
    static SET: OnceLock<HashSet64> = OnceLock::new();
    SET.get_or_init(|| hash_set(STOP_WORDS)).contains(h)
}

/// Whether a lowercased word carries no topical information.
pub fn is_stop_word(lower: &str) -> bool {
    lower.len() < 2 || is_stop_hash(word_hash(lower))
}

/// The distinct non-stop, non-numeric words of `text`, lowercased, in order of first
/// appearance.
pub fn content_words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut buf = String::new();
    for tok in tokens(text) {
        let w = lower_into(tok.raw, &mut buf);
        if !tok.numeric && !is_stop_word(w) && !out.iter().any(|o| o == w) {
            out.push(w.to_string());
        }
    }
    out
}

/// Words that alone mark a sentence as page furniture rather than news.
const BOILERPLATE_WORDS: &[&str] = &[
    "advertisement",
    "cookie",
    "cookies",
    "copyright",
    "newsletter",
    "subscribe",
];

/// Word pairs that mark a sentence as page furniture.
const BOILERPLATE_PAIRS: &[(&str, &str)] = &[
    ("all", "rights"),
    ("click", "here"),
    ("financial", "advice"),
    ("follow", "us"),
    ("privacy", "policy"),
    ("read", "more"),
    ("rights", "reserved"),
    ("share", "this"),
    ("sign", "up"),
    ("terms", "of"),
];

fn pair_hash(a: u64, b: u64) -> u64 {
    a.rotate_left(17) ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Whether a sentence, given as the [`word_hash`]es of its lowercased words (stop words
/// included), is boilerplate: bylines, "Follow us on X", cookie banners, disclaimers.
pub fn is_boilerplate(hashes: &[u64]) -> bool {
    static SETS: OnceLock<(HashSet64, HashSet64)> = OnceLock::new();
    let (words, pairs) = SETS.get_or_init(|| {
        let pairs = BOILERPLATE_PAIRS
            .iter()
            .map(|(a, b)| pair_hash(word_hash(a), word_hash(b)));
        (hash_set(BOILERPLATE_WORDS), HashSet64::new(pairs))
    });
    hashes.iter().any(|h| words.contains(*h))
        || hashes
            .windows(2)
            .any(|w| pairs.contains(pair_hash(w[0], w[1])))
}

/// Splits `text` into sentences: at line breaks and at `.`, `!`, `?` followed by whitespace.
pub fn sentences(text: &str) -> impl Iterator<Item = &str> {
    split_sentences(text)
}

/// Splits at line breaks and at `.`, `!`, `?` followed by whitespace.
fn split_sentences(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() {
            let b = bytes[i];
            i += 1;
            let end = match b {
                b'\n' => Some(i - 1),
                b'.' | b'!' | b'?' if bytes.get(i).is_none_or(u8::is_ascii_whitespace) => Some(i),
                _ => None,
            };
            if let Some(end) = end {
                let s = &text[start..end];
                start = i;
                if !s.trim().is_empty() {
                    return Some(s);
                }
            }
        }
        if start < bytes.len() {
            let s = &text[start..];
            start = bytes.len();
            if !s.trim().is_empty() {
                return Some(s);
            }
        }
        None
    })
}

/// Term ids are already hash bits: hashing them again buys nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // Spread the 20 id bits over the word so the table's top bits (its control bytes)
        // vary too.
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_set_finds_exactly_its_members() {
        let set = HashSet64::new([0, 1, 5, u64::MAX, 1 << 40]);
        for h in [1, 5, u64::MAX, 1 << 40] {
            assert!(set.contains(h));
        }
        assert!(!set.contains(2) && !set.contains(6) && !set.contains(1 << 41));
        assert!(is_stop_word("the") && is_stop_word("said") && !is_stop_word("bitcoin"));
    }

    #[test]
    fn stop_words_are_sorted() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn prefixes_count_characters() {
        for text in ["", "abc", "héllo wörld", "ab€cd", "€€€", "plain ascii text"] {
            for n in 0..20 {
                let want: String = text.chars().take(n).collect();
                assert_eq!(prefix_chars(text, n), want, "{text:?} {n}");
            }
        }
    }

    #[test]
    fn tokens_mark_names_and_numbers() {
        let t: Vec<_> =
            tokens("Hackers drained $40M from Bybit's wallet. Bybit said 2026").collect();
        let raw: Vec<_> = t.iter().map(|t| t.raw).collect();
        assert_eq!(
            raw,
            [
                "Hackers", "drained", "40M", "from", "Bybit", "wallet", "Bybit", "said", "2026"
            ]
        );
        let n: Vec<_> = tokens("BTC hit $100,000.50, up 2.5%. Done.")
            .map(|t| t.raw)
            .collect();
        assert_eq!(n, ["BTC", "hit", "100,000.50", "up", "2.5", "Done"]);
        assert!(!t[0].name_like, "sentence start is not a name");
        assert!(t[4].name_like);
        assert!(!t[6].name_like, "first word after a full stop");
        assert!(t[8].numeric && !t[2].numeric);
    }

    #[test]
    fn boilerplate_sentences_are_detected() {
        let hashes = |t: &str| -> Vec<u64> {
            let mut buf = String::new();
            tokens(t)
                .map(|w| word_hash(lower_into(w.raw, &mut buf)))
                .collect()
        };
        let kept: Vec<&str> = sentences(
            "Bitcoin fell 5%. Follow us on X for more!\nThis is not financial advice. ETH rose.",
        )
        .filter(|s| !is_boilerplate(&hashes(s)))
        .map(str::trim)
        .collect();
        assert_eq!(kept, ["Bitcoin fell 5%.", "ETH rose."]);
        assert!(is_boilerplate(&hashes("We use cookies.")));
        assert!(!is_boilerplate(&hashes(
            "Users of the exchange were told to follow updates."
        )));
    }

    #[test]
    fn non_ascii_text_is_handled() {
        let mut buf = String::new();
        assert_eq!(lower_into("ÜBER", &mut buf), "über");
        assert_eq!(tokens("Ça va — très bien").count(), 4);
        let raw: Vec<_> = tokens("naïve café’s 3,5 «x» 1.").map(|t| t.raw).collect();
        assert_eq!(raw, ["naïve", "café", "3,5", "x", "1"]);
        assert_eq!(tokens("").count(), 0);
        assert_eq!(tokens("... !!!").count(), 0);
    }
}
