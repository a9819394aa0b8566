//! Text handling shared by the offline embedder and the extractive labeler: tokenising,
//! stop words, and dropping boilerplate sentences that glue unrelated articles together.

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
    let mut rest = text;
    let mut sentence_start = true;
    std::iter::from_fn(move || {
        let start = rest.find(|c: char| c.is_alphanumeric())?;
        let gap = &rest[..start];
        if gap.contains(['.', '!', '?', '\n', ':']) {
            sentence_start = true;
        }
        let mut word_len = rest[start..]
            .find(|c: char| !c.is_alphanumeric())
            .unwrap_or(rest.len() - start);
        // Keep numbers whole: "12.6", "100,000".
        loop {
            let tail = &rest[start + word_len..];
            let b = tail.as_bytes();
            let digit_before = rest[..start + word_len].ends_with(|c: char| c.is_ascii_digit());
            if digit_before && b.len() >= 2 && matches!(b[0], b'.' | b',') && b[1].is_ascii_digit()
            {
                word_len += 1 + tail[1..]
                    .find(|c: char| !c.is_alphanumeric())
                    .unwrap_or(tail.len() - 1);
            } else {
                break;
            }
        }
        let raw = &rest[start..start + word_len];
        rest = &rest[start + word_len..];
        if rest.starts_with(['\'', '’']) {
            let skip = rest
                .char_indices()
                .skip(1)
                .find(|(_, c)| !c.is_alphanumeric())
                .map_or(rest.len(), |(i, _)| i);
            rest = &rest[skip..];
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

/// Whether a lowercased word carries no topical information.
pub fn is_stop_word(lower: &str) -> bool {
    lower.len() < 2 || STOP_WORDS.binary_search(&lower).is_ok()
}

/// The distinct non-stop words of `text`, lowercased, in order of first appearance.
pub fn content_words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut buf = String::new();
    for tok in tokens(text) {
        let w = lower_into(tok.raw, &mut buf);
        if !is_stop_word(w) && !tok.numeric && !out.iter().any(|o| o == w) {
            out.push(w.to_string());
        }
    }
    out
}

/// Phrases that mark a sentence as page furniture rather than news.
const BOILERPLATE: &[&str] = &[
    "all rights reserved",
    "click here",
    "cookie",
    "copyright",
    "follow us",
    "financial advice",
    "newsletter",
    "read more",
    "share this",
    "sign up",
    "subscribe",
    "terms of service",
    "privacy policy",
    "advertisement",
];

/// Calls `f` with each sentence of `body` that is not boilerplate, in order, until `f`
/// returns `false`.
pub fn content_sentences<'a>(body: &'a str, mut f: impl FnMut(&'a str) -> bool) {
    let mut lower = String::new();
    for sentence in split_sentences(body) {
        lower_into(sentence, &mut lower);
        if !BOILERPLATE.iter().any(|p| lower.contains(p)) && !f(sentence) {
            return;
        }
    }
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
                b'.' | b'!' | b'?' if bytes.get(i).is_none_or(|n| n.is_ascii_whitespace()) => {
                    Some(i)
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_words_are_sorted() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
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
    fn boilerplate_sentences_are_dropped() {
        let mut kept = Vec::new();
        content_sentences(
            "Bitcoin fell 5%. Follow us on X for more!\nThis is not financial advice. ETH rose.",
            |s| {
                kept.push(s.trim().to_string());
                true
            },
        );
        assert_eq!(kept, ["Bitcoin fell 5%.", "ETH rose."]);
    }

    #[test]
    fn non_ascii_text_is_handled() {
        let mut buf = String::new();
        assert_eq!(lower_into("ÜBER", &mut buf), "über");
        assert_eq!(tokens("Ça va — très bien").count(), 4);
        assert_eq!(tokens("").count(), 0);
        assert_eq!(tokens("... !!!").count(), 0);
    }
}
