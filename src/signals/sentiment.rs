//! Which way a piece of news points: **bullish**, **bearish** or **neutral**, for an article
//! and for each perp symbol it names, offline and in a few microseconds.
//!
//! # What it reads
//!
//! The title and the lead (the first `symbols_body_chars` of the body, the same lead the
//! symbol matcher reads): headlines say where a story points; deep body text mostly adds
//! background that points every way. The lead counts [`LEAD_WEIGHT`] of the title.
//!
//! # The lexicon
//!
//! [`LEXICON`] is written for this project (no third-party word list; it ships under the
//! crate's MIT licence). Each entry is a list of words or phrases of up to four words, with
//! inflected forms listed as `a|b|c` alternatives and `*` standing for up to two arbitrary
//! words ("cuts * target"), and one [`Kind`]:
//!
//! - **move** words report a price move ("jumps", "slides", "record high", "sell-off");
//! - **event** words report news that moves prices ("hacked", "approves", "delists",
//!   "inflows", "rate cut"); weights are 0.3 to 1.5;
//! - **negators** ("not", "no", "never", "without") flip the scored terms within three words
//!   after them in the same clause (× −0.8, as VADER's −0.74 roughly); **fail** words
//!   ("fails to", "can't", "refuses to") flip them and the actor before ("bears fail");
//!   **zeroing** negators ("unaffected by") cancel the next term;
//! - **diminishers** ("eases", "fades", "stalls", "pares", "loses steam") flip the scored terms
//!   before them in their clause: "fears ease" is good news, "rally stalls" bad news; a
//!   participle flips the term right after it ("easing supply fears");
//! - **subjects** change the move words after them in their clause: "reserves", "yields",
//!   "unemployment", "shorts" flip them (exchange reserves falling, shorts liquidated),
//!   "volatility" and "difficulty" cancel them;
//! - **neutral** words ("flat", "unmoved", "sideways", "holds steady") and **guide** words
//!   ("explained", "how to") damp the whole text: score = tanh(raw / (1 + neutral mass) / 1.5);
//! - **hedges** ("reportedly", "rumours", "could", "considering") keep the direction of the
//!   events in their sentence at 0.6 of their weight and lower the confidence;
//! - **denials** ("denies", "false", "fake news", "retracts") cancel the events of their
//!   sentence (the moves stay: "rallies after the exploit turns out to be a false alarm");
//! - **concessive** clauses ("despite …", "even after …") count 0.15: "falls despite inflows"
//!   is bearish; clauses before "but" / "however" count 0.5, those after it 1.5; a question
//!   counts 0.3.
//!
//! # Who is affected
//!
//! Text is split into clauses at `, ; : ( ) —` and before "while", "as", "after", "but",
//! "despite" and the like. A symbol takes the terms of the clauses it is mentioned in ("Bitcoin
//! hits record high while ether slides": BTC bullish, ETH bearish); a symbol whose clauses say
//! nothing takes its sentence's terms ("SEC sues Coinbase, calling SOL, ADA and MATIC
//! securities"). Further rules: in an `A/B` pair with "ratio" in its clause, B takes the
//! opposite of A; a symbol after "on"/"to"/"via" with another symbol earlier in the clause is a
//! venue ("Aave launches GHO on Arbitrum") and takes 0.2; with a flow verb ("rotate", "flock")
//! a symbol after "into"/"to" gains and one after "out of"/"from" loses.
//!
//! # Scores
//!
//! `raw` is the sum of the scored terms; `score = tanh(raw / (1 + N) / 1.5)` in −1..+1 with
//! `N` the neutral mass; bullish at `score ≥ THRESHOLD` (0.2), bearish at `≤ −0.2`, else
//! neutral. Confidence in 0..1: for a direction, `(1 − e^(−E)) × A × h` (E the evidence, the
//! sum of |terms|; A the agreement |raw| / E; h 0.7 under a hedge or denial); for neutral,
//! `0.35 + 0.5 × (1 − e^(−N))` lowered by the evidence pointing one way. A story's direction
//! is the confidence-weighted mean score of its articles (syndicated copies excluded), see
//! [`DirectionTally`].
//!
//! # Measured
//!
//! On `fixtures/direction-headlines.jsonl` (369 hand-labelled headlines, labelled before this
//! scorer was written), split in halves by a hash of the headline; rules were written looking
//! at the errors of the first half only. See the README for the figures and
//! `tests::fixture_accuracy_and_macro_f1_reach_the_floor`.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::signals::symbols::Mention;

/// Scores at or above this are bullish, at or below its negative bearish.
pub const THRESHOLD: f32 = 0.2;

/// Weight of the lead's terms relative to the title's.
pub const LEAD_WEIGHT: f32 = 0.6;

/// Most symbols remembered per story tally.
pub const MAX_TALLY_SYMBOLS: usize = 64;

/// Which way news points for a market.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Likely to push the price up.
    Bullish,
    /// Likely to push the price down.
    Bearish,
    /// No clear price effect.
    Neutral,
}

impl Direction {
    /// All three, in a fixed order (for confusion matrices).
    pub const ALL: [Direction; 3] = [Direction::Bullish, Direction::Bearish, Direction::Neutral];

    /// The direction of a score in −1..+1.
    pub fn of_score(score: f32) -> Self {
        if score >= THRESHOLD {
            Direction::Bullish
        } else if score <= -THRESHOLD {
            Direction::Bearish
        } else {
            Direction::Neutral
        }
    }

    /// `bullish`, `bearish` or `neutral`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Bullish => "bullish",
            Direction::Bearish => "bearish",
            Direction::Neutral => "neutral",
        }
    }

    /// Parses `bullish` / `bearish` / `neutral` (any case).
    pub fn parse(s: &str) -> Option<Self> {
        Direction::ALL
            .into_iter()
            .find(|d| d.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A direction with its score and confidence.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Which way.
    pub direction: Direction,
    /// −1 (bearish) .. +1 (bullish).
    pub score: f32,
    /// 0..1: how much the direction can be trusted.
    pub confidence: f32,
}

impl Verdict {
    /// Neutral with no confidence (nothing known).
    pub const UNKNOWN: Verdict = Verdict {
        direction: Direction::Neutral,
        score: 0.0,
        confidence: 0.0,
    };

    /// The verdict for `score` with `confidence`, both clamped to their ranges and rounded to
    /// three decimals (outputs stay short and stable).
    pub fn new(score: f32, confidence: f32) -> Self {
        let r = |x: f32| (x * 1000.0).round() / 1000.0;
        let score = r(if score.is_finite() {
            score.clamp(-1.0, 1.0)
        } else {
            0.0
        });
        let confidence = r(if confidence.is_finite() {
            confidence.clamp(0.0, 1.0)
        } else {
            0.0
        });
        Verdict {
            direction: Direction::of_score(score),
            score,
            confidence,
        }
    }
}

/// One symbol's direction in an article or a story.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SymbolVerdict {
    /// The perp symbol.
    pub symbol: String,
    /// Its direction.
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// An article's direction, overall and per symbol it mentions (in first-mention order).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ArticleDirection {
    /// The whole article.
    pub overall: Option<Verdict>,
    /// Per symbol mentioned in the title or lead.
    pub symbols: Vec<SymbolVerdict>,
}

impl ArticleDirection {
    /// The overall verdict (neutral, no confidence, for an article never scored).
    pub fn verdict(&self) -> Verdict {
        self.overall.unwrap_or(Verdict::UNKNOWN)
    }

    /// The verdict for `symbol`, if the article mentions it.
    pub fn symbol(&self, symbol: &str) -> Option<Verdict> {
        self.symbols
            .iter()
            .find(|s| s.symbol == symbol)
            .map(|s| s.verdict)
    }
}

/// What a lexicon entry does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A price move, up (positive weight) or down.
    Move,
    /// A news event, good (positive weight) or bad.
    Event,
    /// Flips the scored terms within three words after it in its clause.
    Negator,
    /// Flips the next scored term and the one just before ("bears fail to …").
    Fail,
    /// Cancels the next scored term ("unaffected by the exploit").
    Zero,
    /// Flips the scored terms before it in its clause ("fears ease").
    Diminisher,
    /// Multiplies the move words after it in its clause by its weight: −1 flips them
    /// ("reserves fall"), 0 cancels them ("volatility drops").
    Subject,
    /// Adds neutral mass (weight): the text says nothing moved.
    Neutral,
    /// Keeps the sentence's events at 0.6 and lowers confidence.
    Hedge,
    /// Cancels the sentence's events.
    Denial,
    /// "into"/"to" after a flow verb: the next symbol gains; the flow verb itself.
    Flow,
}

use Kind::{Denial, Diminisher, Event, Fail, Flow, Hedge, Move, Negator, Neutral, Subject, Zero};

/// The built-in lexicon: (pattern, kind, weight). A pattern is one or more phrases separated
/// by `, `; a phrase is lowercase words separated by spaces, `a|b` listing alternatives for
/// one word and `*` matching up to two words. Hyphenated
/// words are split ("sell-off" = "sell off"); apostrophes are dropped ("can't" = "cant";
/// a possessive `'s` is removed).
pub const LEXICON: &[(&str, Kind, f32)] = &[
    // --- Moves up.
    ("soar|soars|soared|soaring", Move, 1.5),
    ("surge|surges|surged|surging", Move, 1.5),
    (
        "skyrocket|skyrockets|skyrocketed|rocket|rockets|rocketed",
        Move,
        1.5,
    ),
    ("moon|moons|mooned|mooning", Move, 1.2),
    ("spike|spikes|spiked|spiking", Move, 1.2),
    ("rip|rips|ripped|ripping", Move, 1.0),
    ("explode|explodes|exploded|exploding", Move, 1.0),
    (
        "all time high|highs, record|fresh|new high|highs",
        Move,
        1.5,
    ),
    ("breakout, breaks|broke|break out", Move, 1.2),
    ("break|breaks", Move, 0.5),
    ("rally|rallies|rallied|rallying", Move, 1.0),
    ("jump|jumps|jumped|jumping", Move, 1.0),
    ("climb|climbs|climbed|climbing", Move, 1.0),
    ("gain|gains|gained|gaining", Move, 1.0),
    ("rise|rises|rose|rising|risen", Move, 1.0),
    ("rebound|rebounds|rebounded|rebounding", Move, 1.0),
    ("recover|recovers|recovered|recovering|recovery", Move, 1.0),
    ("bounce|bounces|bounced|bouncing", Move, 0.9),
    ("reclaim|reclaims|reclaimed|reclaiming", Move, 1.0),
    ("top|tops|topped|topping", Move, 0.7),
    ("advance|advances|advanced|advancing", Move, 0.8),
    (
        "outperform|outperforms|outperformed|outperforming",
        Move,
        1.0,
    ),
    ("overtake|overtakes|overtook|overtaking", Move, 0.8),
    ("higher", Move, 0.7),
    ("lift|lifts|lifted|lifting", Move, 0.8),
    ("boost|boosts|boosted|boosting", Move, 0.8),
    ("best", Move, 0.8),
    ("highest", Move, 0.8),
    ("high|highs", Move, 0.6),
    ("upside|upward", Move, 0.6),
    ("buyers", Move, 0.6),
    ("bulls", Move, 0.4),
    ("bull run|market", Move, 1.0),
    ("golden cross", Move, 1.2),
    ("altcoin season", Move, 1.0),
    (
        "accumulate|accumulates|accumulated|accumulating|accumulation",
        Move,
        0.8,
    ),
    ("short squeeze, squeeze|squeezed", Move, 1.0),
    ("leaving|leave|off exchanges", Move, 0.6),
    // --- Moves down.
    ("plunge|plunges|plunged|plunging", Move, -1.5),
    ("crash|crashes|crashed|crashing", Move, -1.5),
    ("tumble|tumbles|tumbled|tumbling", Move, -1.3),
    ("sink|sinks|sank|sinking", Move, -1.2),
    ("nosedive|nosedives|nosedived|nosediving", Move, -1.5),
    ("wipe|wipes|wiped out, wipes|wiped", Move, -1.2),
    ("bleed|bleeds|bleeding", Move, -1.0),
    (
        "capitulate|capitulates|capitulated|capitulation",
        Move,
        -1.2,
    ),
    ("record|fresh|new low|lows", Move, -1.2),
    ("sell off|offs, selloff|selloffs", Move, -1.0),
    ("dump|dumps|dumped|dumping", Move, -1.0),
    ("breaks|broke down, breakdown", Move, -1.2),
    ("resistance", Move, -0.3),
    ("death cross", Move, -1.2),
    ("fall|falls|fell|falling|fallen", Move, -1.0),
    ("drop|drops|dropped|dropping", Move, -1.0),
    ("slide|slides|slid|sliding", Move, -1.0),
    ("slump|slumps|slumped|slumping", Move, -1.2),
    ("decline|declines|declined|declining", Move, -1.0),
    ("lose|loses|lost|losing", Move, -0.8),
    ("loss|losses", Move, -0.8),
    ("shed|sheds|shedding", Move, -1.0),
    ("lower", Move, -0.7),
    ("dip|dips|dipped|dipping", Move, -0.7),
    ("slip|slips|slipped|slipping", Move, -0.7),
    ("sag|sags|sagged|sagging", Move, -0.7),
    ("retreat|retreats|retreated|retreating", Move, -0.8),
    ("erase|erases|erased|erasing", Move, -1.0),
    ("underperform|underperforms|underperformed", Move, -1.0),
    ("lag|lags|lagged|lagging", Move, -0.7),
    ("stumble|stumbles|stumbled|stumbling", Move, -0.8),
    ("worst", Move, -0.8),
    ("lowest", Move, -0.8),
    ("low|lows", Move, -0.6),
    ("downside", Move, -0.6),
    ("weak|weaker|weakness|weaken|weakens", Move, -0.6),
    ("profit taking", Move, -0.6),
    ("correction", Move, -0.8),
    ("pullback", Move, -0.6),
    ("selling|sellers", Move, -0.6),
    ("selling|sell pressure", Move, -1.0),
    ("bears", Move, -0.4),
    ("bear market", Move, -1.0),
    ("pressure|pressures|pressuring|pressured", Move, -0.6),
    ("shrink|shrinks|shrank|shrinking", Move, -0.8),
    ("stagnate|stagnates|stagnated", Move, -0.6),
    ("to exchanges", Move, -0.6),
    ("liquidated|liquidation|liquidations", Move, -0.6),
    ("longs|long * liquidated, longs wiped", Move, -1.2),
    // --- Good news.
    ("approve|approves|approved|approval|approvals", Event, 1.3),
    ("green light, greenlights", Event, 1.2),
    ("launch|launches|launched", Event, 0.6),
    ("goes|go|is|now|went live", Event, 0.8),
    (
        "list|lists|listed|listing|listings|relist|relists|relisted",
        Event,
        1.0,
    ),
    ("add|adds|added", Event, 0.7),
    ("integrate|integrates|integrated|integration", Event, 0.7),
    ("partner|partners|partnership|partnerships", Event, 0.7),
    ("adopt|adopts|adoption", Event, 0.8),
    ("buy|buys|bought|buying", Event, 0.8),
    ("buyback|buybacks, buy back", Event, 1.0),
    ("burn|burns|burned", Event, 0.8),
    ("reserve", Event, 0.6),
    ("win|wins|won|victory", Event, 1.0),
    ("settle|settles|settled|settlement", Event, 0.7),
    (
        "drop|drops|dropped * lawsuit|case|charges|suit|probe",
        Event,
        1.5,
    ),
    ("cleared|clears", Event, 0.8),
    ("lift|lifts|lifted * ban|sanctions", Event, 1.2),
    (
        "legalise|legalises|legalised|legalize|legalizes|legalized",
        Event,
        1.2,
    ),
    ("inflow|inflows", Event, 1.0),
    ("demand", Event, 0.5),
    ("record", Event, 0.5),
    ("beat|beats", Event, 0.8),
    ("raise|raises|raised * target|forecast|outlook", Event, 1.2),
    ("raise|raises|raised", Event, 0.4),
    ("stimulus", Event, 1.0),
    (
        "rate cut|cuts, cut|cuts rates, cuts interest rates",
        Event,
        1.2,
    ),
    ("cut|cuts * fees|inflation|issuance", Event, 1.4),
    ("fee switch", Event, 0.8),
    ("bullish", Event, 1.0),
    ("extreme greed, greed", Event, 0.8),
    ("relief", Event, 0.8),
    ("safe|safety", Event, 0.3),
    ("return|returns|returned", Event, 0.5),
    ("expand|expands|expanded|expansion", Event, 0.6),
    ("accept|accepts|accepting", Event, 0.6),
    ("etf|etfs", Event, 0.3),
    ("supply shock", Event, 0.8),
    ("boom|booms|booming", Event, 0.8),
    ("impress|impresses|impressive", Event, 0.5),
    ("fund", Event, 0.3),
    ("clear crypto rules, regulatory clarity", Event, 0.8),
    ("halving", Event, 0.3),
    ("pass|passes|passed|passing", Event, 0.8),
    (
        "recover|recovers|recovered|recovering|return|returns|returned|returning * stolen",
        Event,
        1.5,
    ),
    ("freeze|freezes|froze|frozen|freezing * stolen", Event, 0.3),
    (
        "close|closes|closed|closing|end|ends|ended|drop|drops|dropped * investigation|probe|case|lawsuit",
        Event,
        1.5,
    ),
    (
        "patched|fixed|resolved|restored|released|freed|acquitted",
        Event,
        0.8,
    ),
    ("file|files|filed|filing", Event, 0.4),
    ("stake", Event, 0.5),
    ("offer|offers|offering", Event, 0.5),
    ("allow|allows|allowed|allowing", Event, 0.6),
    ("complete|completes|completed|completing", Event, 0.5),
    // --- Bad news.
    ("hack|hacks|hacked|hacker|hackers", Event, -1.3),
    ("exploit|exploits|exploited", Event, -1.3),
    ("drain|drains|drained", Event, -1.3),
    ("stolen|steal|steals|theft", Event, -1.2),
    ("breach|breaches", Event, -1.0),
    ("outage|outages", Event, -1.2),
    ("halt|halts|halted", Event, -1.0),
    ("freeze|freezes|froze|frozen", Event, -0.4),
    ("delay|delays|delayed", Event, -0.9),
    ("slips|slipped|delayed again", Event, -1.2),
    ("delist|delists|delisted|delisting", Event, -1.2),
    ("reject|rejects|rejected|rejection", Event, -1.2),
    ("sue|sues|sued|lawsuit|lawsuits, class action", Event, -1.2),
    ("charge|charges|charged", Event, -1.0),
    ("ban|bans|banned", Event, -1.2),
    ("probe|investigation|investigating", Event, -1.0),
    ("fine|fined|fines", Event, -0.8),
    ("bankrupt|bankruptcy", Event, -1.5),
    ("insolvent|insolvency", Event, -1.5),
    ("collapse|collapses|collapsed", Event, -1.5),
    ("depeg|depegs|depegged, loses|lost * peg", Event, -1.3),
    ("unlock|unlocks", Event, -0.8),
    ("sell|sells|sold|sale", Event, -0.6),
    ("outflow|outflows", Event, -1.0),
    ("withdraw|withdraws|withdrew|withdrawn", Event, -0.8),
    ("warn|warns|warned|warning", Event, -0.8),
    ("fear|fears|feared", Event, -0.8),
    ("concern|concerns", Event, -0.6),
    ("worry|worries", Event, -0.6),
    ("miss|misses|missed", Event, -0.8),
    ("cut|cuts * target|forecast", Event, -1.2),
    ("cut|cuts", Event, -0.4),
    ("hawkish", Event, -0.8),
    ("hotter", Event, -1.0),
    ("recession", Event, -1.0),
    ("tariff|tariffs", Event, -0.6),
    ("trade war", Event, -1.0),
    ("rate hike|hikes, hikes|hike rates, hikes", Event, -1.0),
    ("shutdown, shuts|shut down", Event, -0.6),
    ("extreme fear", Event, -1.0),
    ("bearish", Event, -1.0),
    ("bubble", Event, -0.8),
    ("scam|fraud|phishing", Event, -0.8),
    ("manipulation|manipulated", Event, -0.8),
    ("attack|attacks", Event, -0.8),
    ("bug|flaw|vulnerability", Event, -0.6),
    ("chain split", Event, -0.6),
    ("crackdown", Event, -1.0),
    ("wells notice", Event, -1.0),
    ("security|securities", Event, -0.5),
    ("unregistered", Event, -0.6),
    ("guilty", Event, -0.6),
    ("detained|arrested|arrest", Event, -1.0),
    ("prison|jail", Event, -0.8),
    ("criticism|criticized|criticised", Event, -0.5),
    ("disappoint|disappoints|disappointed", Event, -0.8),
    ("weigh|weighs|weighing", Event, -0.8),
    ("drag|drags|dragging", Event, -0.8),
    ("dim|dims|dimming", Event, -0.6),
    ("inflationary", Event, -0.6),
    ("exit|exits", Event, -0.6),
    ("fight|dispute", Event, -0.4),
    ("halts withdrawals, freezing customer", Event, -1.5),
    ("inflation", Event, -0.4),
    ("stop|stops|stopped|stopping", Event, -0.6),
    ("order|orders|ordered", Event, -0.4),
    ("no cuts, no rate cuts", Event, -1.0),
    // --- Negation.
    (
        "not|no|never|none|nothing|without|wont|didnt|doesnt|dont|isnt|arent|wasnt|hasnt|havent, no longer, nowhere near",
        Negator,
        0.0,
    ),
    (
        "fail|fails|failed|unable|cant|cannot|refuse|refuses|refused",
        Fail,
        0.0,
    ),
    ("unaffected", Zero, 0.0),
    // --- Diminishers.
    (
        "ease|eases|eased|easing|fade|fades|faded|fading|cool|cools|cooled|cooling|slow|slows|slowed|fizzle|fizzles|fizzled|stall|stalls|stalled|recede|recedes|subside|subsides|pare|pares|pared|ending|ends, loses steam, dry|dries up",
        Diminisher,
        0.0,
    ),
    // --- Inverting subjects.
    (
        "reserves|yields|yield|unemployment|dollar|shorts, short sellers|positions",
        Subject,
        -1.0,
    ),
    ("volatility|difficulty", Subject, 0.0),
    // --- Nothing moved.
    (
        "flat|steady|steadies|unchanged|sideways|unmoved|consolidates|consolidate|consolidating|quiet|mixed|divided|split|swing|swings|swinging|volatile",
        Neutral,
        1.0,
    ),
    (
        "holds steady, little changed, barely moves|moved, range bound, zero flows, no loss",
        Neutral,
        1.5,
    ),
    (
        "what is, how to, explained|explainer|guide|beginners, week ahead, in focus",
        Neutral,
        2.0,
    ),
    (
        "await|awaits|awaiting, ahead of the, tests the",
        Neutral,
        0.6,
    ),
    // --- Hedges.
    (
        "reportedly|report|reports|rumour|rumours|rumor|rumors|rumoured|rumored|sources|considering|consider|considers|could|may|might|allegedly|unconfirmed|speculation|possible|potential|potentially|plans|plan|likely|prediction|predicts, in talks, expected to",
        Hedge,
        0.0,
    ),
    // --- Denials.
    (
        "deny|denies|denied|false|fake|debunk|debunks|debunked|retract|retracts|retracted|baseless|unfounded|hoax, not true, false alarm",
        Denial,
        0.0,
    ),
    // --- Flows.
    (
        "rotate|rotates|rotation|flock|flocks|flee|flees|send|sends|sending, pile|piles|pour|pours into",
        Flow,
        0.0,
    ),
];

/// Clause-opening words that concede ("despite …"): the clause counts little.
const CONCESSIVE: &[&str] = &[
    "despite",
    "although",
    "though",
    "notwithstanding",
    "regardless",
];
/// Two-word concessive openers.
const CONCESSIVE_PAIRS: &[(&str, &str)] = &[
    ("even", "after"),
    ("even", "as"),
    ("even", "though"),
    ("in", "spite"),
];
/// Clause-opening words that contrast ("… but …").
const CONTRAST: &[&str] = &["but", "however", "yet"];
/// Words that open a subordinate clause: context for the main clause, which says what
/// happened ("Solana jumps as rival Ethereum stumbles").
const SUBORDINATE: &[&str] = &["while", "as", "after", "whereas", "amid", "when"];
/// Other words that open a clause.
const OPENERS: &[&str] = &["sending", "dragging", "leaving"];
/// Words before a symbol that make it a venue when another symbol came first.
const VENUE: &[&str] = &["on", "to", "via", "onto", "into", "from"];

/// Weight of a subordinate clause.
const SUBORDINATE_WEIGHT: f32 = 0.6;
/// Weight of a concessive clause.
const CONCESSIVE_WEIGHT: f32 = 0.15;
/// Weight of clauses before a contrast, and after it.
const BEFORE_CONTRAST: f32 = 0.5;
const AFTER_CONTRAST: f32 = 1.5;
/// Weight of a question.
const QUESTION_WEIGHT: f32 = 0.3;
/// Negation factor.
const NEGATION: f32 = -0.8;
/// Events under a hedge keep this much.
const HEDGE_EVENTS: f32 = 0.6;
/// Confidence factor under a hedge or a denial.
const HEDGE_CONFIDENCE: f32 = 0.7;
/// Weight of a venue symbol's terms.
const VENUE_WEIGHT: f32 = 0.2;
/// Divides the damped raw score before `tanh`.
const SCALE: f32 = 1.5;
/// Words a negator reaches forward, a diminisher or inverting subject backward/forward.
const NEGATION_REACH: usize = 3;
const DIMINISH_REACH: usize = 6;
const INVERT_REACH: usize = 5;

/// One alternative-set of one pattern word; `None` is the `*` gap.
type PatternWord = Option<Vec<&'static str>>;

#[derive(Debug, Clone)]
struct Entry {
    words: Vec<PatternWord>,
    kind: Kind,
    weight: f32,
}

/// The compiled lexicon.
#[derive(Debug)]
pub struct Scorer {
    entries: Vec<Entry>,
    /// First word → entries starting with it, longest pattern first.
    first: HashMap<&'static str, Vec<usize>>,
}

/// A word of the scanned text.
#[derive(Debug, Clone)]
struct Tok {
    text: String,
    start: usize,
    end: usize,
    /// Title (0) or lead (1).
    part: u8,
    sentence: u32,
    clause: u32,
    /// A `/` joins it to the next word ("ETH/BTC").
    slash_next: bool,
    /// A `%` follows it.
    percent: bool,
}

/// A clause of the scanned text.
#[derive(Debug, Clone)]
struct Clause {
    sentence: u32,
    weight: f32,
}

/// A lexicon hit.
#[derive(Debug, Clone)]
struct Hit {
    kind: Kind,
    weight: f32,
    /// First and last token.
    first: usize,
    last: usize,
}

/// One scored term after the rules: its contribution.
#[derive(Debug, Clone)]
struct Scored {
    clause: u32,
    sentence: u32,
    value: f32,
}

impl Scorer {
    /// The built-in lexicon, compiled once per process.
    pub fn builtin() -> &'static Scorer {
        static SCORER: OnceLock<Scorer> = OnceLock::new();
        SCORER.get_or_init(|| Scorer::new(LEXICON))
    }

    /// Compiles `lexicon` (see [`LEXICON`] for the pattern syntax).
    pub fn new(lexicon: &[(&'static str, Kind, f32)]) -> Self {
        let mut entries = Vec::new();
        let mut first: HashMap<&'static str, Vec<usize>> = HashMap::new();
        for &(pattern, kind, weight) in lexicon {
            for alt in pattern.split(", ") {
                let words: Vec<PatternWord> = alt
                    .split(' ')
                    .filter(|w| !w.is_empty())
                    .map(|w| (w != "*").then(|| w.split('|').collect()))
                    .collect();
                if words.first().is_none_or(Option::is_none) {
                    continue;
                }
                let idx = entries.len();
                if let Some(Some(alts)) = words.first() {
                    for a in alts {
                        first.entry(*a).or_default().push(idx);
                    }
                }
                entries.push(Entry {
                    words,
                    kind,
                    weight,
                });
            }
        }
        for list in first.values_mut() {
            list.sort_by_key(|&i| std::cmp::Reverse(entries[i].words.len()));
        }
        Scorer { entries, first }
    }

    /// Scores an article from its title and lead, with the symbol mentions the matcher found
    /// in each (byte ranges into `title` and `lead`).
    pub fn score(
        &self,
        title: &str,
        lead: &str,
        title_mentions: &[Mention],
        lead_mentions: &[Mention],
    ) -> ArticleDirection {
        let mut toks = Vec::new();
        let mut clauses = Vec::new();
        scan(title, 0, &mut toks, &mut clauses);
        scan(lead, 1, &mut toks, &mut clauses);
        let hits = self.hits(&toks);
        let (scored, neutral, hedged) = self.apply_rules(&toks, &clauses, &hits);

        let overall = verdict(&scored, neutral.iter().sum(), hedged);

        // Symbols, in first-mention order.
        let mut order: Vec<&str> = Vec::new();
        let mut sym_toks: Vec<(&str, usize)> = Vec::new();
        for (part, mentions) in [(0u8, title_mentions), (1u8, lead_mentions)] {
            for m in mentions {
                if !order.contains(&m.symbol.as_str()) {
                    order.push(&m.symbol);
                }
                if let Some(t) = toks
                    .iter()
                    .position(|t| t.part == part && t.start < m.end && t.end > m.start)
                {
                    sym_toks.push((&m.symbol, t));
                }
            }
        }
        let flow = hits.iter().any(|h| h.kind == Flow);
        let symbols = order
            .iter()
            .map(|&sym| {
                let at: Vec<usize> = sym_toks
                    .iter()
                    .filter(|(s, _)| *s == sym)
                    .map(|(_, t)| *t)
                    .collect();
                SymbolVerdict {
                    symbol: sym.to_string(),
                    verdict: self.symbol_verdict(
                        &toks, &clauses, &scored, &neutral, hedged, &at, &sym_toks, flow,
                    ),
                }
            })
            .collect();
        ArticleDirection {
            overall: Some(overall),
            symbols,
        }
    }

    /// Scores text with the symbols `book` finds in it (a convenience for evaluation).
    pub fn score_text(
        &self,
        book: &crate::signals::symbols::SymbolBook,
        title: &str,
        lead: &str,
    ) -> ArticleDirection {
        self.score(title, lead, &book.mentions(title), &book.mentions(lead))
    }

    /// Lexicon hits, longest match first at each token, not overlapping.
    fn hits(&self, toks: &[Tok]) -> Vec<Hit> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < toks.len() {
            let best = self.first.get(toks[i].text.as_str()).and_then(|list| {
                list.iter().find_map(|&e| {
                    self.match_at(&self.entries[e], toks, i)
                        .map(|last| (e, last))
                })
            });
            match best {
                Some((e, last)) => {
                    let entry = &self.entries[e];
                    let mut weight = entry.weight;
                    // A move with a percentage next to it is a reported move: a little
                    // stronger.
                    if entry.kind == Move
                        && (i.saturating_sub(1)..=(last + 3).min(toks.len() - 1))
                            .any(|j| toks[j].percent && toks[j].clause == toks[i].clause)
                    {
                        weight *= 1.2;
                    }
                    out.push(Hit {
                        kind: entry.kind,
                        weight,
                        first: i,
                        last,
                    });
                    i = last + 1;
                }
                None => {
                    // "up 8%", "down 5%", "SOL up," : a reported move.
                    let t = &toks[i];
                    let sign = match t.text.as_str() {
                        "up" => 1.0,
                        "down" => -1.0,
                        _ => 0.0,
                    };
                    let next_num = toks.get(i + 1).is_some_and(|n| {
                        n.clause == t.clause && n.text.bytes().all(|b| b.is_ascii_digit())
                    });
                    let clause_end = toks.get(i + 1).is_none_or(|n| n.clause != t.clause);
                    if sign != 0.0 && (next_num || clause_end) {
                        out.push(Hit {
                            kind: Move,
                            weight: sign,
                            first: i,
                            last: i,
                        });
                    }
                    i += 1;
                }
            }
        }
        out
    }

    /// The last token of `entry` matched at `i`, if it matches (within one part and clause
    /// group: patterns do not run across a sentence).
    fn match_at(&self, entry: &Entry, toks: &[Tok], i: usize) -> Option<usize> {
        fn go(words: &[PatternWord], toks: &[Tok], j: usize, sentence: u32) -> Option<usize> {
            let Some((w, rest)) = words.split_first() else {
                return j.checked_sub(1);
            };
            match w {
                Some(alts) => {
                    let t = toks.get(j).filter(|t| t.sentence == sentence)?;
                    if alts.contains(&t.text.as_str()) {
                        go(rest, toks, j + 1, sentence)
                    } else {
                        None
                    }
                }
                // A gap: zero, one or two words.
                None => (0..=2).find_map(|skip| go(rest, toks, j + skip, sentence)),
            }
        }
        go(&entry.words, toks, i, toks[i].sentence)
    }

    /// The rules over the hits: every scored term's contribution, the neutral mass per
    /// clause, and whether a hedge or denial was seen.
    fn apply_rules(
        &self,
        toks: &[Tok],
        clauses: &[Clause],
        hits: &[Hit],
    ) -> (Vec<Scored>, Vec<f32>, bool) {
        let n = hits.len();
        let mut factor = vec![1.0f32; n];
        let clause_of = |h: &Hit| toks[h.first].clause;
        let sentence_of = |h: &Hit| toks[h.first].sentence;
        let is_scored = |h: &Hit| matches!(h.kind, Move | Event);
        let mut neutral = vec![0.0f32; clauses.len()];
        let mut hedged_sentences = Vec::new();
        let mut denied_sentences = Vec::new();
        for (k, h) in hits.iter().enumerate() {
            let clause = clause_of(h);
            match h.kind {
                Negator | Fail | Zero => {
                    let f = if h.kind == Zero { 0.0 } else { NEGATION };
                    // Every scored term within reach, in the same clause ("without ETF
                    // approval" negates both words).
                    for (j, t) in hits.iter().enumerate().skip(k + 1) {
                        if clause_of(t) != clause || t.first - h.last > NEGATION_REACH {
                            break;
                        }
                        if is_scored(t) {
                            factor[j] *= f;
                        }
                    }
                    if h.kind == Fail
                        && let Some(j) = (0..k).rev().find(|&j| is_scored(&hits[j]))
                    {
                        let t = &hits[j];
                        if clause_of(t) == clause && h.first - t.last <= NEGATION_REACH {
                            factor[j] *= NEGATION;
                        }
                    }
                }
                Diminisher => {
                    // A participle before its object diminishes forward ("easing supply
                    // fears"); otherwise what came before ("fears ease").
                    let forward = toks[h.first].text.ends_with("ing")
                        && hits.get(k + 1).is_some_and(|t| {
                            is_scored(t) && clause_of(t) == clause && t.first - h.last <= 2
                        });
                    if forward {
                        factor[k + 1] *= -1.0;
                        continue;
                    }
                    for j in (0..k).rev() {
                        let t = &hits[j];
                        if clause_of(t) != clause || h.first - t.last > DIMINISH_REACH {
                            break;
                        }
                        if is_scored(t) {
                            factor[j] *= -1.0;
                        }
                    }
                }
                Subject => {
                    for (j, t) in hits.iter().enumerate().skip(k + 1) {
                        if clause_of(t) != clause || t.first - h.last > INVERT_REACH {
                            break;
                        }
                        if t.kind == Move {
                            factor[j] *= h.weight;
                        }
                    }
                }
                Neutral => neutral[clause as usize] += h.weight,
                Hedge => hedged_sentences.push(sentence_of(h)),
                Denial => {
                    denied_sentences.push(sentence_of(h));
                    neutral[clause as usize] += 1.0;
                }
                Move | Event | Flow => {}
            }
        }
        let scored = hits
            .iter()
            .zip(&factor)
            .filter(|(h, _)| is_scored(h))
            .map(|(h, f)| {
                let clause = clause_of(h);
                let sentence = sentence_of(h);
                let mut v = h.weight * f * clauses[clause as usize].weight;
                if h.kind == Event {
                    if denied_sentences.contains(&sentence) {
                        v = 0.0;
                    } else if hedged_sentences.contains(&sentence) {
                        v *= HEDGE_EVENTS;
                    }
                }
                if toks[h.first].part == 1 {
                    v *= LEAD_WEIGHT;
                }
                Scored {
                    clause,
                    sentence,
                    value: v,
                }
            })
            .collect();
        for (c, cl) in clauses.iter().enumerate() {
            neutral[c] *= cl.weight.clamp(0.5, 1.0);
        }
        let hedged = !hedged_sentences.is_empty() || !denied_sentences.is_empty();
        (scored, neutral, hedged)
    }

    /// One symbol's verdict from the terms of its clauses (see the module docs).
    #[allow(clippy::too_many_arguments)]
    fn symbol_verdict(
        &self,
        toks: &[Tok],
        clauses: &[Clause],
        scored: &[Scored],
        neutral: &[f32],
        hedged: bool,
        at: &[usize],
        all_syms: &[(&str, usize)],
        flow: bool,
    ) -> Verdict {
        let mut mine: Vec<u32> = at.iter().map(|&t| toks[t].clause).collect();
        mine.sort_unstable();
        mine.dedup();
        // Role factors per clause: a venue takes little; the second of a ratio pair the
        // opposite.
        let role = |clause: u32| -> f32 {
            let Some(&t) = at.iter().find(|&&t| toks[t].clause == clause) else {
                return 1.0;
            };
            let in_clause = |s: &(&str, usize)| toks[s.1].clause == clause;
            let ratio = toks
                .iter()
                .any(|x| x.clause == clause && (x.text == "ratio" || x.text == "pair"));
            if ratio && t > 0 && toks[t - 1].slash_next && toks[t - 1].clause == clause {
                return -1.0;
            }
            let earlier_other = all_syms
                .iter()
                .any(|s| in_clause(s) && s.1 < t && s.0 != toks_symbol(all_syms, t));
            let prev = t.checked_sub(1).map(|p| toks[p].text.as_str());
            if earlier_other && prev.is_some_and(|p| VENUE.contains(&p)) {
                return VENUE_WEIGHT;
            }
            1.0
        };
        let mut terms: Vec<f32> = scored
            .iter()
            .filter(|s| mine.contains(&s.clause))
            .map(|s| s.value * role(s.clause))
            .collect();
        // Flows: "rotate out of X and into Y".
        if flow {
            for &t in at {
                let prev = |k: usize| t.checked_sub(k).map(|p| toks[p].text.as_str());
                let into = matches!(prev(1), Some("into" | "to" | "towards" | "toward"));
                let out =
                    (prev(2) == Some("out") && prev(1) == Some("of")) || prev(1) == Some("from");
                if into || out {
                    terms.push(if into { 1.0 } else { -1.0 });
                }
            }
        }
        let mut n: f32 = mine.iter().map(|&c| neutral[c as usize]).sum();
        if terms.iter().all(|v| *v == 0.0) && n == 0.0 {
            // Nothing in its own clauses: the sentences it is mentioned in.
            let sentences: Vec<u32> = mine.iter().map(|&c| clauses[c as usize].sentence).collect();
            terms = scored
                .iter()
                .filter(|s| sentences.contains(&s.sentence))
                .map(|s| s.value)
                .collect();
            n = clauses
                .iter()
                .enumerate()
                .filter(|(_, c)| sentences.contains(&c.sentence))
                .map(|(i, _)| neutral[i])
                .sum();
        }
        let as_scored: Vec<Scored> = terms
            .into_iter()
            .map(|value| Scored {
                clause: 0,
                sentence: 0,
                value,
            })
            .collect();
        verdict(&as_scored, n, hedged)
    }
}

/// The symbol mentioned at token `t` (for "another symbol" tests).
fn toks_symbol<'a>(all: &[(&'a str, usize)], t: usize) -> &'a str {
    all.iter().find(|s| s.1 == t).map_or("", |s| s.0)
}

/// The verdict of a set of contributions with neutral mass `n`.
fn verdict(scored: &[Scored], n: f32, hedged: bool) -> Verdict {
    let raw: f32 = scored.iter().map(|s| s.value).sum();
    let evidence: f32 = scored.iter().map(|s| s.value.abs()).sum();
    let score = (raw / (1.0 + n) / SCALE).tanh();
    let h = if hedged { HEDGE_CONFIDENCE } else { 1.0 };
    let confidence = match Direction::of_score(score) {
        Direction::Neutral => {
            let lean = (score.abs() / THRESHOLD).min(1.0);
            (0.35 + 0.5 * (1.0 - (-n).exp())) * (1.0 - 0.5 * lean) * h
        }
        _ => (1.0 - (-evidence).exp()) * (raw.abs() / evidence.max(1e-6)) * h,
    };
    Verdict::new(score, confidence)
}

/// Splits `text` into words, sentences and clauses, appending to `toks` / `clauses`.
fn scan(text: &str, part: u8, toks: &mut Vec<Tok>, clauses: &mut Vec<Clause>) {
    let first_clause = clauses.len();
    let mut sentence = clauses.last().map_or(0, |c| c.sentence + 1);
    // A new clause with the given opening weight.
    let open = |clauses: &mut Vec<Clause>, sentence: u32, weight: f32| {
        clauses.push(Clause { sentence, weight });
        (clauses.len() - 1) as u32
    };
    let mut clause = open(clauses, sentence, 1.0);
    let mut sentence_first_clause = clause;
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut word = String::new();
    let mut pending_break = false; // a clause break before the next word
    let mut pending_sentence = false;
    let mut question_sentences: Vec<u32> = Vec::new();
    while i < bytes.len() {
        let c = text[i..].chars().next().unwrap_or(' ');
        let w = c.len_utf8();
        if c.is_alphanumeric() {
            let start = i;
            word.clear();
            let mut j = i;
            while j < bytes.len() {
                let ch = text[j..].chars().next().unwrap_or(' ');
                if ch.is_alphanumeric() {
                    word.extend(ch.to_lowercase());
                    j += ch.len_utf8();
                } else if (ch == '\'' || ch == '’')
                    && text[j + ch.len_utf8()..]
                        .chars()
                        .next()
                        .is_some_and(char::is_alphanumeric)
                {
                    // "can't" → "cant"; "Bitcoin's" → "bitcoin".
                    let rest = &text[j + ch.len_utf8()..];
                    let suffix: String = rest
                        .chars()
                        .take_while(|x| x.is_alphanumeric())
                        .collect::<String>()
                        .to_lowercase();
                    j += ch.len_utf8() + suffix.len();
                    if suffix == "t" {
                        word.push('t');
                    }
                } else if (ch == '.' || ch == ',')
                    && word.bytes().last().is_some_and(|b| b.is_ascii_digit())
                    && bytes.get(j + 1).is_some_and(u8::is_ascii_digit)
                {
                    // "12.6", "100,000" stay one number.
                    j += 1;
                } else {
                    break;
                }
            }
            if pending_sentence {
                sentence += 1;
                clause = open(clauses, sentence, 1.0);
                sentence_first_clause = clause;
                pending_sentence = false;
                pending_break = false;
            }
            // Clause openers start a new clause with their weight.
            let prev = toks
                .last()
                .filter(|t: &&Tok| t.part == part && t.clause == clause);
            let opener_weight = if CONCESSIVE.contains(&word.as_str()) {
                Some(CONCESSIVE_WEIGHT)
            } else if CONTRAST.contains(&word.as_str()) {
                // Clauses before a contrast, in this sentence, count less.
                for c in &mut clauses[sentence_first_clause as usize..] {
                    c.weight *= BEFORE_CONTRAST;
                }
                Some(AFTER_CONTRAST)
            } else if SUBORDINATE.contains(&word.as_str()) && prev.is_some() {
                Some(SUBORDINATE_WEIGHT)
            } else if OPENERS.contains(&word.as_str()) && prev.is_some() {
                Some(1.0)
            } else {
                None
            };
            let concessive_pair = prev.is_some_and(|p| {
                CONCESSIVE_PAIRS
                    .iter()
                    .any(|(a, b)| p.text == *a && word == *b)
            });
            if concessive_pair {
                // "even after": the opener was the previous word; move it into the new clause.
                clause = open(clauses, sentence, CONCESSIVE_WEIGHT);
                if let Some(p) = toks.last_mut() {
                    p.clause = clause;
                }
            } else if let Some(weight) = opener_weight {
                if prev.is_some() || pending_break {
                    clause = open(clauses, sentence, weight);
                } else if let Some(c) = clauses.last_mut() {
                    c.weight *= weight;
                }
                pending_break = false;
            } else if pending_break {
                clause = open(clauses, sentence, 1.0);
                pending_break = false;
            }
            let after = &text[j..];
            toks.push(Tok {
                text: word.clone(),
                start,
                end: j,
                part,
                sentence,
                clause,
                slash_next: after.starts_with('/'),
                percent: after.starts_with('%'),
            });
            i = j;
            continue;
        }
        match c {
            '.' | '!' | '?' => {
                let next = text[i + w..].chars().next();
                if next.is_none_or(char::is_whitespace) {
                    if c == '?' {
                        question_sentences.push(sentence);
                    }
                    pending_sentence = true;
                }
            }
            '\n' => pending_sentence = true,
            ',' | ';' | ':' | '(' | ')' | '—' | '–' => pending_break = true,
            '-' if text[i + w..].starts_with(' ') && text[..i].ends_with(' ') => {
                pending_break = true;
            }
            _ => {}
        }
        i += w;
    }
    for c in &mut clauses[first_clause..] {
        if question_sentences.contains(&c.sentence) {
            c.weight *= QUESTION_WEIGHT;
        }
    }
}

/// A story's direction, accumulated article by article (kept in the story state, so a
/// story continued over several runs gets the same tally as one long run).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DirectionTally {
    /// Articles counted (originals only; syndicated copies are not counted).
    pub articles: u32,
    /// Sum of the articles' confidences.
    pub weight: f32,
    /// Sum of confidence × score.
    pub sum: f32,
    /// Per symbol: (symbol, articles, Σ confidence, Σ confidence × score), in first-seen
    /// order, at most [`MAX_TALLY_SYMBOLS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub symbols: Vec<(String, u32, f32, f32)>,
}

impl DirectionTally {
    /// Counts one article.
    pub fn add(&mut self, a: &ArticleDirection) {
        let v = a.verdict();
        self.articles += 1;
        self.weight += v.confidence;
        self.sum += v.confidence * v.score;
        for s in &a.symbols {
            let c = s.verdict.confidence;
            match self.symbols.iter().position(|t| t.0 == s.symbol) {
                Some(i) => {
                    let t = &mut self.symbols[i];
                    t.1 += 1;
                    t.2 += c;
                    t.3 += c * s.verdict.score;
                }
                None if self.symbols.len() < MAX_TALLY_SYMBOLS => {
                    self.symbols
                        .push((s.symbol.clone(), 1, c, c * s.verdict.score));
                }
                None => {}
            }
        }
    }

    /// The story's verdict: the confidence-weighted mean score; its confidence the mean
    /// confidence, less when the articles disagree.
    pub fn verdict(&self) -> Verdict {
        tally_verdict(self.articles, self.weight, self.sum)
    }

    /// The verdict for one symbol, if any counted article mentioned it.
    pub fn symbol(&self, symbol: &str) -> Option<Verdict> {
        self.symbols
            .iter()
            .find(|t| t.0 == symbol)
            .map(|t| tally_verdict(t.1, t.2, t.3))
    }
}

/// A story's direction as reported: overall and per symbol, and who decided it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoryDirection {
    /// Which way.
    pub direction: Direction,
    /// −1 .. +1.
    pub score: f32,
    /// 0 .. 1.
    pub confidence: f32,
    /// One verdict per story symbol, in the story's symbol order.
    pub symbols: Vec<SymbolVerdict>,
    /// `offline` (the lexicon scorer) or `llm` (the chat model).
    pub by: String,
}

impl DirectionTally {
    /// The story's direction with a verdict for each of `symbols` (the story's symbols): the
    /// tally of the articles that mentioned it, else the story's own verdict.
    pub fn story_direction(&self, symbols: &[String]) -> StoryDirection {
        let v = self.verdict();
        StoryDirection {
            direction: v.direction,
            score: v.score,
            confidence: v.confidence,
            symbols: symbols
                .iter()
                .map(|s| SymbolVerdict {
                    symbol: s.clone(),
                    verdict: self.symbol(s).unwrap_or(v),
                })
                .collect(),
            by: "offline".into(),
        }
    }
}

/// A verdict from `n` articles with Σ confidence `w` and Σ confidence × score `s`.
fn tally_verdict(n: u32, w: f32, s: f32) -> Verdict {
    if n == 0 || w <= 0.0 {
        return Verdict::new(0.0, 0.0);
    }
    let score = s / w;
    // More articles agreeing → more confidence, with diminishing returns.
    let mean_conf = w / n as f32;
    let support = 1.0 - (-(n as f32) / 2.0).exp();
    Verdict::new(score, mean_conf * (0.5 + 0.5 * support))
}

/// Accuracy and macro-F1 of `pred` against `gold` (parallel slices), the numbers reported
/// for the fixture.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metrics {
    /// Items scored.
    pub n: usize,
    /// Share predicted right.
    pub accuracy: f64,
    /// Mean over the three directions of their F1 (0 for a direction never predicted nor
    /// present).
    pub macro_f1: f64,
}

/// [`Metrics`] of `pred` against `gold`.
pub fn metrics(gold: &[Direction], pred: &[Direction]) -> Metrics {
    let n = gold.len().min(pred.len());
    let right = gold.iter().zip(pred).filter(|(g, p)| g == p).count();
    let f1s: Vec<f64> = Direction::ALL
        .iter()
        .map(|&d| {
            let tp = gold
                .iter()
                .zip(pred)
                .filter(|(g, p)| **g == d && **p == d)
                .count() as f64;
            let fp = gold
                .iter()
                .zip(pred)
                .filter(|(g, p)| **g != d && **p == d)
                .count() as f64;
            let fneg = gold
                .iter()
                .zip(pred)
                .filter(|(g, p)| **g == d && **p != d)
                .count() as f64;
            if tp == 0.0 {
                0.0
            } else {
                2.0 * tp / (2.0 * tp + fp + fneg)
            }
        })
        .collect();
    Metrics {
        n,
        accuracy: if n == 0 { 0.0 } else { right as f64 / n as f64 },
        macro_f1: f1s.iter().sum::<f64>() / 3.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::symbols::SymbolBook;

    fn book() -> SymbolBook {
        SymbolBook::builtin()
    }

    fn dir(title: &str) -> Direction {
        Scorer::builtin()
            .score_text(&book(), title, "")
            .verdict()
            .direction
    }

    fn sym(title: &str, s: &str) -> Option<Direction> {
        Scorer::builtin()
            .score_text(&book(), title, "")
            .symbol(s)
            .map(|v| v.direction)
    }

    #[test]
    fn plain_moves_and_events_point_their_way() {
        assert_eq!(dir("Bitcoin surges to a record high"), Direction::Bullish);
        assert_eq!(dir("Solana plunges 20% after outage"), Direction::Bearish);
        assert_eq!(
            dir("Ethereum developers meet on Thursday"),
            Direction::Neutral
        );
    }

    #[test]
    fn negation_denial_hedge_and_concession_change_the_reading() {
        assert_eq!(
            dir("Bitcoin is not in a bubble, analysts say"),
            Direction::Bullish
        );
        assert_eq!(dir("Exchange denies hack rumours"), Direction::Neutral);
        assert_eq!(
            dir("Bitcoin falls despite record ETF inflows"),
            Direction::Bearish
        );
        assert_eq!(
            dir("Bitcoin rises despite hawkish Fed comments"),
            Direction::Bullish
        );
        assert_eq!(
            dir("Fears of a crash ease as buyers return"),
            Direction::Bullish
        );
        let plain = Scorer::builtin().score_text(&book(), "SEC approves Solana ETF", "");
        let hedged =
            Scorer::builtin().score_text(&book(), "SEC reportedly set to approve Solana ETF", "");
        assert_eq!(hedged.verdict().direction, Direction::Bullish);
        assert!(hedged.verdict().confidence < plain.verdict().confidence);
    }

    #[test]
    fn symbols_in_different_clauses_get_their_own_direction() {
        let t = "Bitcoin hits record high while ether slides 5%";
        assert_eq!(sym(t, "BTC"), Some(Direction::Bullish));
        assert_eq!(sym(t, "ETH"), Some(Direction::Bearish));
        let t = "Exchange hacked, TON drained; Tron's TRX rallies as stolen funds are frozen";
        assert_eq!(sym(t, "TON"), Some(Direction::Bearish));
        assert_eq!(sym(t, "TRX"), Some(Direction::Bullish));
        assert_eq!(sym("Coinbase lists Sui", "SUI"), Some(Direction::Bullish));
        assert_eq!(sym("Coinbase lists Sui", "BTC"), None);
    }

    #[test]
    fn scores_and_confidences_stay_in_range() {
        for t in [
            "",
            "???",
            "crash crash crash crash crash crash crash crash crash",
            "not not not not not",
            "Bitcoin — — , , ; ; : ( )",
            "Ẽthereum's ünïcode héadline can't fail… ok?",
        ] {
            let a = Scorer::builtin().score_text(&book(), t, t);
            let v = a.verdict();
            assert!((-1.0..=1.0).contains(&v.score), "{t}: {v:?}");
            assert!((0.0..=1.0).contains(&v.confidence), "{t}: {v:?}");
        }
    }

    #[test]
    fn story_tally_weighs_by_confidence() {
        let s = Scorer::builtin();
        let b = book();
        let mut t = DirectionTally::default();
        t.add(&s.score_text(&b, "Bitcoin soars to a record high", ""));
        t.add(&s.score_text(&b, "Bitcoin jumps as ETF inflows surge", ""));
        t.add(&s.score_text(&b, "Bitcoin conference opens in Nashville", ""));
        assert_eq!(t.verdict().direction, Direction::Bullish);
        assert_eq!(
            t.symbol("BTC").map(|v| v.direction),
            Some(Direction::Bullish)
        );
        assert_eq!(t.symbol("ETH"), None);
        assert_eq!(
            DirectionTally::default().verdict().direction,
            Direction::Neutral
        );
    }

    #[test]
    fn metrics_match_a_hand_count() {
        use Direction::*;
        let gold = [Bullish, Bullish, Bearish, Neutral];
        let pred = [Bullish, Neutral, Bearish, Neutral];
        let m = metrics(&gold, &pred);
        assert!((m.accuracy - 0.75).abs() < 1e-12);
        // F1: bullish 2/3, bearish 1, neutral 2/3.
        assert!((m.macro_f1 - (2.0 / 3.0 + 1.0 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
    }
}
