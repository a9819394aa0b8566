//! Deterministic generator of synthetic crypto/market news dumps with known story labels.
//!
//! The output imitates what the ingest side of the news engine sees: many short articles
//! from ~20 crypto/finance outlets, where several articles (from different outlets, worded
//! differently) cover the same concrete event. Every article carries a gold `label` naming
//! the story it belongs to, so the dumps can be used as fixtures and benchmarks for the
//! clustering stage (articles about the same event must end up in the same cluster).
//!
//! How a dump is built:
//!
//! * A story is one concrete event drawn from one of 18 template families (exchange hack,
//!   ETF filing, ETF approval, listing, delisting, regulatory action, protocol upgrade,
//!   liquidation cascade, funding round, stablecoin depeg, executive resignation, executive
//!   arrest, central-bank rate decision, inflation print, partnership, airdrop, chain outage,
//!   lawsuit settlement). Its slots (coin, exchange, agency, amounts, percentages, dates…) are
//!   fixed once per story.
//! * Each article of a story picks its own title variant, lead variant, synonyms, number
//!   formats (`$48.7M` vs `nearly $49 million`), detail-sentence subset and order, and
//!   source, so articles of one story paraphrase each other instead of being copies.
//! * Bodies are padded with generic market filler (shared by unrelated stories) and, now
//!   and then, the outlet's boilerplate footer.
//! * Confusable stories are created on purpose: some stories reuse the family of a recent
//!   story with a different main entity (two exchange hacks on the same day), others reuse a
//!   recent story's coin in a different family.
//! * Story sizes vary between 1 and `2 * story_size - 1` (with extra singletons); a story's
//!   articles fall in a burst of a few hours, stories overlap in time, and the whole dump is
//!   sorted by publication time.
//!
//! All randomness comes from a seeded SplitMix64 generator, so the same [`SynthConfig`]
//! always produces byte-identical output. The events, people and numbers are fictitious;
//! real coin, exchange and outlet names are used only to make the text look realistic.

use std::collections::HashMap;

use xxhash_rust::xxh3::xxh3_64;

/// Settings for one generated dump.
#[derive(Debug, Clone)]
pub struct SynthConfig {
    /// Total number of articles to emit.
    pub articles: usize,
    /// Mean number of articles per story; actual sizes vary in `1..=2*story_size-1`,
    /// with some extra singletons.
    pub story_size: usize,
    /// Seed of the pseudo-random generator; the same seed gives the same output.
    pub seed: u64,
    /// Epoch seconds (UTC) of the earliest possible publication time.
    pub start_epoch: i64,
    /// Publication times are spread over this many hours after `start_epoch`.
    pub span_hours: f64,
    /// Number of sentences per body (footer boilerplate not counted).
    pub body_sentences: usize,
}

impl Default for SynthConfig {
    /// 100 articles, stories of 5 on average, seed 42, starting 2026-11-20T00:00:00Z,
    /// spread over 24 hours, 4 body sentences.
    fn default() -> Self {
        Self {
            articles: 100,
            story_size: 5,
            seed: 42,
            start_epoch: 1_795_132_800,
            span_hours: 24.0,
            body_sentences: 4,
        }
    }
}

/// One generated article; serialises to the project's input format.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SynthArticle {
    /// Unique id: the seed, then the article's number zero padded so that lexical order
    /// equals emission order (`g42-a000123`). Two seeds never share an id.
    pub id: String,
    /// Headline.
    pub title: String,
    /// Plain-text body on a single line.
    pub body: String,
    /// Unique URL on the source's domain.
    pub url: String,
    /// Source domain, e.g. `coindesk.com`.
    pub source: String,
    /// Publication time, RFC 3339 UTC with second precision (`2026-11-20T03:14:07Z`).
    pub published_at: String,
    /// Gold story id shared by all articles about the same event (`story-0042`).
    pub label: String,
}

/// Generates the articles described by `cfg`, sorted by publication time.
pub fn generate(cfg: &SynthConfig) -> Vec<SynthArticle> {
    let mut out = Vec::with_capacity(cfg.articles);
    Generator::new(cfg).run(|article| out.push(article));
    out
}

/// JSON Lines (one article per line, '\n' terminated) of generate(cfg).
pub fn generate_jsonl(cfg: &SynthConfig) -> String {
    // Articles are serialised as they are generated, so they never all live in memory.
    let mut buf: Vec<u8> = Vec::with_capacity(cfg.articles.saturating_mul(720));
    Generator::new(cfg).run(|article| {
        let mark = buf.len();
        // Serialising a struct of plain strings into memory cannot fail; if it somehow
        // did, the partial line is dropped rather than emitting broken JSON.
        if serde_json::to_writer(&mut buf, &article).is_ok() {
            buf.push(b'\n');
        } else {
            buf.truncate(mark);
        }
    });
    // serde_json only writes valid UTF-8.
    String::from_utf8(buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

// ---------------------------------------------------------------------------------------
// Pseudo-random numbers
// ---------------------------------------------------------------------------------------

/// SplitMix64: tiny, fast, good enough for fixtures, and fully deterministic.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n == 0`).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + ((u128::from(self.next_u64()) * u128::from(hi - lo + 1)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Index in `0..n` different from `avoid` when possible.
    fn below_avoiding(&mut self, n: usize, avoid: Option<usize>) -> usize {
        match avoid {
            Some(a) if n > 1 && a < n => {
                let i = self.below(n - 1);
                if i >= a { i + 1 } else { i }
            }
            _ => self.below(n),
        }
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Pools
// ---------------------------------------------------------------------------------------

const CHAIN: u8 = 1;
const MAJOR: u8 = 2;
const POW: u8 = 4;

struct Coin {
    name: &'static str,
    ticker: &'static str,
    price: f64,
    flags: u8,
}

const fn coin(name: &'static str, ticker: &'static str, price: f64, flags: u8) -> Coin {
    Coin {
        name,
        ticker,
        price,
        flags,
    }
}

const COINS: &[Coin] = &[
    coin("Bitcoin", "BTC", 96_000.0, CHAIN | MAJOR | POW),
    coin("Ethereum", "ETH", 3_400.0, CHAIN | MAJOR),
    coin("Solana", "SOL", 185.0, CHAIN | MAJOR),
    coin("XRP", "XRP", 2.35, CHAIN | MAJOR),
    coin("Dogecoin", "DOGE", 0.33, CHAIN | MAJOR | POW),
    coin("Cardano", "ADA", 0.82, CHAIN | MAJOR),
    coin("Avalanche", "AVAX", 32.0, CHAIN | MAJOR),
    coin("Chainlink", "LINK", 19.0, MAJOR),
    coin("Polygon", "POL", 0.42, CHAIN),
    coin("Arbitrum", "ARB", 0.62, CHAIN),
    coin("Optimism", "OP", 1.6, CHAIN),
    coin("NEAR Protocol", "NEAR", 4.8, CHAIN),
    coin("Aptos", "APT", 9.5, CHAIN),
    coin("Sui", "SUI", 3.9, CHAIN | MAJOR),
    coin("Litecoin", "LTC", 95.0, CHAIN | MAJOR | POW),
    coin("Toncoin", "TON", 5.4, CHAIN | MAJOR),
    coin("Polkadot", "DOT", 6.1, CHAIN),
    coin("Uniswap", "UNI", 11.0, 0),
    coin("Pepe", "PEPE", 0.000_014, 0),
    coin("Injective", "INJ", 21.0, CHAIN),
    coin("Tron", "TRX", 0.24, CHAIN | MAJOR),
    coin("Shiba Inu", "SHIB", 0.000_019, 0),
    coin("Stellar", "XLM", 0.38, CHAIN),
    coin("Hedera", "HBAR", 0.27, CHAIN),
    coin("Cosmos", "ATOM", 6.8, CHAIN),
    coin("Filecoin", "FIL", 4.9, 0),
    coin("Render", "RENDER", 6.7, 0),
    coin("Aave", "AAVE", 280.0, MAJOR),
    coin("Celestia", "TIA", 5.2, CHAIN),
    coin("Sei", "SEI", 0.45, CHAIN),
    coin("Starknet", "STRK", 0.55, CHAIN),
    coin("Bittensor", "TAO", 420.0, CHAIN),
    coin("Ethena", "ENA", 0.85, 0),
    coin("Jupiter", "JUP", 0.95, 0),
    coin("Bonk", "BONK", 0.000_028, 0),
    coin("dogwifhat", "WIF", 2.1, 0),
    coin("Hyperliquid", "HYPE", 28.0, CHAIN | MAJOR),
    coin("Ondo", "ONDO", 1.3, 0),
    coin("Kaspa", "KAS", 0.12, CHAIN | POW),
    coin("Algorand", "ALGO", 0.36, CHAIN),
    coin("Monero", "XMR", 190.0, CHAIN | POW),
    coin("Bitcoin Cash", "BCH", 460.0, CHAIN | MAJOR | POW),
];

const EXCHANGES: &[&str] = &[
    "Binance",
    "Coinbase",
    "Kraken",
    "OKX",
    "Bybit",
    "Bitget",
    "KuCoin",
    "Gate.io",
    "HTX",
    "Crypto.com",
    "Gemini",
    "Bitstamp",
    "Bitfinex",
    "MEXC",
    "Upbit",
    "Bithumb",
    "Deribit",
    "BingX",
    "Bitso",
    "Bitpanda",
    "WazirX",
    "Phemex",
    "LBank",
    "CoinDCX",
    "Backpack",
];

/// Crypto firms that are not exchanges; together with [`EXCHANGES`] they form the pool of
/// companies targeted by regulators, courts and partners.
const FIRMS: &[&str] = &[
    "Circle",
    "Ripple",
    "Tether",
    "Paxos",
    "Consensys",
    "Fireblocks",
    "Anchorage Digital",
    "MoonPay",
    "Ledger",
    "Galaxy Digital",
    "Robinhood Crypto",
    "BitGo",
];

const ISSUERS: &[&str] = &[
    "BlackRock",
    "Fidelity",
    "Grayscale",
    "VanEck",
    "Bitwise",
    "ARK Invest",
    "21Shares",
    "Franklin Templeton",
    "Invesco",
    "WisdomTree",
    "Canary Capital",
    "Valkyrie",
];

const CUSTODIANS: &[&str] = &[
    "Coinbase Custody",
    "Anchorage Digital",
    "BitGo",
    "Gemini Trust",
    "Fidelity Digital Assets",
];

const VENUES: &[&str] = &["Cboe BZX", "Nasdaq", "NYSE Arca"];

/// (short, long) agency names.
const AGENCIES: &[(&str, &str)] = &[
    ("SEC", "the U.S. Securities and Exchange Commission"),
    ("CFTC", "the U.S. Commodity Futures Trading Commission"),
    ("DOJ", "the U.S. Department of Justice"),
    ("FCA", "the UK Financial Conduct Authority"),
    ("BaFin", "Germany's financial watchdog BaFin"),
    ("MAS", "the Monetary Authority of Singapore"),
    ("Japan's FSA", "Japan's Financial Services Agency"),
    ("SFC", "Hong Kong's Securities and Futures Commission"),
    ("ESMA", "the European Securities and Markets Authority"),
    ("OCC", "the Office of the Comptroller of the Currency"),
    ("FinCEN", "the Financial Crimes Enforcement Network"),
    ("NYDFS", "the New York Department of Financial Services"),
    ("AMF", "France's Autorite des marches financiers (AMF)"),
    (
        "ASIC",
        "the Australian Securities and Investments Commission",
    ),
    ("OFAC", "the Treasury's Office of Foreign Assets Control"),
];

/// Fictional executives.
const PEOPLE: &[&str] = &[
    "Daniel Okafor",
    "Mira Castellanos",
    "Jonas Whitfield",
    "Priya Raman",
    "Lukas Brenner",
    "Sofia Marchetti",
    "Kenji Arakawa",
    "Elena Voronova",
    "Marcus Lindqvist",
    "Hana Kowalczyk",
    "Tomasz Nowicki",
    "Amara Nwosu",
    "Victor Hale",
    "Leah Goldberg",
    "Rafael Duarte",
    "Ines Moreau",
];

const ROLES: &[&[&str]] = &[
    &["CEO", "chief executive"],
    &["CFO", "chief financial officer"],
    &["co-founder"],
    &["CTO", "chief technology officer"],
    &["president"],
    &["chief compliance officer"],
];

/// (city, authority) pairs for arrests.
const CITIES: &[(&str, &str)] = &[
    ("Dubai", "UAE authorities"),
    ("Paris", "French prosecutors"),
    ("Lagos", "Nigerian authorities"),
    ("Seoul", "South Korean prosecutors"),
    ("Istanbul", "Turkish police"),
    ("Buenos Aires", "Argentine authorities"),
    ("Bangkok", "Thai police"),
    ("Madrid", "Spanish police"),
    ("Miami", "U.S. federal agents"),
    ("Singapore", "Singapore police"),
];

const CHARGES: &[&str] = &[
    "money laundering",
    "fraud",
    "tax evasion",
    "market manipulation",
    "embezzlement",
    "sanctions evasion",
];

const VCS: &[&str] = &[
    "a16z crypto",
    "Paradigm",
    "Sequoia",
    "Pantera Capital",
    "Multicoin Capital",
    "Polychain Capital",
    "Dragonfly",
    "Coinbase Ventures",
    "Framework Ventures",
    "Electric Capital",
    "Galaxy Ventures",
    "Hack VC",
    "Placeholder",
];

/// Fictional start-ups.
const STARTUPS: &[&str] = &[
    "Lumen Labs",
    "Arcadia Finance",
    "Nebula Protocol",
    "Helix Custody",
    "Quarry Networks",
    "Tidal Markets",
    "Orbital Pay",
    "Meridian Chain",
    "Corvid Labs",
    "Parallax Finance",
    "Sable Systems",
    "Kestrel Wallet",
    "Vantage Rollup",
    "Ferrite Labs",
    "Halcyon Prime",
    "Basalt Exchange",
];

/// (short, long) product descriptions.
const PRODUCTS: &[(&str, &str)] = &[
    (
        "payments network",
        "a stablecoin payments network for online merchants",
    ),
    (
        "restaking infrastructure",
        "restaking infrastructure for proof-of-stake networks",
    ),
    ("custody platform", "an institutional custody platform"),
    (
        "perpetuals DEX",
        "a decentralized exchange for perpetual futures",
    ),
    ("ZK proving", "zero-knowledge proving hardware"),
    (
        "tokenization platform",
        "a platform for tokenized treasuries and private credit",
    ),
    ("smart wallet", "a self-custodial smart wallet"),
    ("AI agents", "on-chain AI trading agents"),
    ("prediction market", "a prediction market"),
    (
        "compliance tools",
        "blockchain compliance and analytics tools",
    ),
];

const HQ_CITIES: &[&str] = &[
    "New York",
    "San Francisco",
    "London",
    "Singapore",
    "Zug",
    "Berlin",
    "Dubai",
    "Hong Kong",
    "Lisbon",
    "Toronto",
];

/// (name, issuer) stablecoins.
const STABLECOINS: &[(&str, &str)] = &[
    ("USDe", "Ethena Labs"),
    ("FDUSD", "First Digital"),
    ("DAI", "Sky"),
    ("TUSD", "Techteryx"),
    ("PYUSD", "Paxos"),
    ("USDD", "the Tron DAO Reserve"),
    ("FRAX", "Frax Finance"),
    ("GHO", "Aave DAO"),
    ("crvUSD", "Curve"),
    ("USD0", "Usual"),
    ("sUSD", "Synthetix"),
    ("USDY", "Ondo Finance"),
];

/// (short, long) depeg causes.
const DEPEG_CAUSES: &[(&str, &str)] = &[
    (
        "reserve concerns",
        "questions over the composition of its reserves",
    ),
    ("mass redemptions", "a wave of redemptions by large holders"),
    ("liquidity crunch", "a liquidity crunch in on-chain pools"),
    (
        "collateral slump",
        "a sharp drop in the value of its collateral",
    ),
    ("bank exposure", "exposure to a troubled banking partner"),
    (
        "oracle glitch",
        "a faulty price oracle that triggered liquidations",
    ),
];

const DEX_VENUES: &[&str] = &["Curve", "Uniswap", "Binance", "Kraken", "Coinbase", "Bybit"];

const UPGRADE_NAMES: &[&str] = &[
    "Aurora", "Halcyon", "Zephyr", "Cobalt", "Obsidian", "Solstice", "Tempest", "Granite", "Lyra",
    "Borealis", "Quartz", "Nimbus",
];

/// (short, long) upgrade features.
const FEATURES: &[(&str, &str)] = &[
    ("lower fees", "cut average transaction fees by roughly half"),
    (
        "faster finality",
        "reduce block finality to under two seconds",
    ),
    (
        "account abstraction",
        "introduce native account abstraction for wallets",
    ),
    (
        "bigger blocks",
        "raise the block gas limit to boost throughput",
    ),
    (
        "parallel execution",
        "enable parallel transaction execution",
    ),
    (
        "staking changes",
        "overhaul validator staking and reward rules",
    ),
    ("privacy features", "add optional confidential transfers"),
    ("cheaper data", "make data availability cheaper for rollups"),
];

/// (short, long) regulatory grounds.
const REG_REASONS: &[(&str, &str)] = &[
    (
        "unregistered securities",
        "offering unregistered securities to retail customers",
    ),
    (
        "AML failures",
        "failing to maintain adequate anti-money-laundering controls",
    ),
    (
        "staking program",
        "running a staking program that amounted to a securities offering",
    ),
    (
        "market manipulation",
        "facilitating wash trading and market manipulation",
    ),
    (
        "sanctions violations",
        "processing transactions for users in sanctioned jurisdictions",
    ),
    (
        "misleading customers",
        "misleading customers about how their assets were stored",
    ),
    (
        "unlicensed operations",
        "operating without the required license",
    ),
    (
        "commingling funds",
        "commingling customer funds with corporate accounts",
    ),
];

/// (short, long) delisting reasons.
const DELIST_REASONS: &[(&str, &str)] = &[
    ("low liquidity", "low trading volume and liquidity"),
    (
        "regulatory concerns",
        "regulatory requirements in several jurisdictions",
    ),
    ("project changes", "changes to the project's token model"),
    ("security concerns", "unresolved security concerns"),
    ("periodic review", "its periodic review of listed assets"),
];

/// (short, long) outage causes.
const OUTAGE_CAUSES: &[(&str, &str)] = &[
    (
        "consensus bug",
        "a bug in the consensus client that stalled block production",
    ),
    (
        "validator crash",
        "a validator software crash triggered by a malformed transaction",
    ),
    (
        "spam surge",
        "a surge of spam transactions that overwhelmed nodes",
    ),
    ("sequencer failure", "a failure in the network's sequencer"),
    ("memory leak", "a memory leak in the latest node release"),
];

const PARTNERS: &[&str] = &[
    "Visa",
    "Mastercard",
    "PayPal",
    "Stripe",
    "Google Cloud",
    "Microsoft",
    "Amazon Web Services",
    "Shopify",
    "Revolut",
    "Nubank",
    "Deutsche Bank",
    "Standard Chartered",
    "Societe Generale",
    "SoftBank",
    "Telegram",
];

/// (short, long) partnership purposes.
const PURPOSES: &[(&str, &str)] = &[
    (
        "stablecoin payments",
        "let merchants accept stablecoin payments",
    ),
    ("crypto cards", "launch a crypto-linked debit card"),
    (
        "tokenized funds",
        "bring tokenized money-market funds on-chain",
    ),
    ("custody", "provide institutional custody services"),
    ("cross-border payments", "speed up cross-border settlement"),
    (
        "validator nodes",
        "run validator nodes on its infrastructure",
    ),
];

const REGIONS: &[&str] = &[
    "Europe",
    "Latin America",
    "Asia",
    "the U.S.",
    "the Middle East",
    "Africa",
];

/// Fictional (protocol, token) pairs for airdrops.
const PROTOCOLS: &[(&str, &str)] = &[
    ("Lumen Network", "LUMN"),
    ("Kairo Finance", "KAIRO"),
    ("Tessera", "TSR"),
    ("Driftwood", "DRFT"),
    ("Quasar Labs", "QSR"),
    ("Ostrich Swap", "OSTR"),
    ("Borealis", "BRL"),
    ("Cinder Layer", "CNDR"),
    ("Vela Rollup", "VELA"),
    ("Nimbus DEX", "NMB"),
    ("Ardent", "ARDT"),
    ("Fathom Bridge", "FTHM"),
];

/// (short, long, is a public authority) plaintiffs in lawsuits.
const PLAINTIFFS: &[(&str, &str, bool)] = &[
    ("SEC", "the U.S. Securities and Exchange Commission", true),
    (
        "CFTC",
        "the U.S. Commodity Futures Trading Commission",
        true,
    ),
    ("investor", "a group of investors in a class action", false),
    ("customer", "former customers", false),
    (
        "NYDFS",
        "the New York Department of Financial Services",
        true,
    ),
    ("state", "a coalition of U.S. state regulators", true),
];

/// (short, long) allegations in lawsuits.
const ALLEGATIONS: &[(&str, &str)] = &[
    (
        "misleading investors",
        "misleading investors about the risks of its yield product",
    ),
    (
        "securities violations",
        "selling tokens as unregistered securities",
    ),
    (
        "negligence",
        "negligently failing to protect customer funds",
    ),
    (
        "patent infringement",
        "infringing patents related to wallet technology",
    ),
    ("breach of contract", "breaching a market-making agreement"),
];

const COURTS: &[&str] = &[
    "a federal court in Manhattan",
    "the U.S. District Court for the Northern District of California",
    "a Delaware court",
    "the High Court in London",
    "a Singapore court",
];

/// (short, long, policy rate) central banks.
const CENTRAL_BANKS: &[(&str, &str, f64)] = &[
    ("Fed", "the Federal Reserve", 4.25),
    ("ECB", "the European Central Bank", 2.0),
    ("Bank of England", "the Bank of England", 4.0),
    ("Bank of Japan", "the Bank of Japan", 0.5),
    ("SNB", "the Swiss National Bank", 0.25),
    ("RBA", "the Reserve Bank of Australia", 3.6),
    ("Bank of Canada", "the Bank of Canada", 2.75),
];

/// (title label, long name, base inflation).
const CPI_REGIONS: &[(&str, &str, f64)] = &[
    ("U.S.", "the U.S.", 2.9),
    ("UK", "the UK", 3.4),
    ("Euro zone", "the euro zone", 2.1),
    ("Japan", "Japan", 2.6),
    ("Canada", "Canada", 2.2),
];

const ATTACKERS: &[&str] = &[
    "North Korea's Lazarus Group",
    "a known phishing crew",
    "a previously unknown attacker",
    "hackers linked to earlier bridge exploits",
];

const SLEUTHS: &[&str] = &[
    "Elliptic",
    "Chainalysis",
    "TRM Labs",
    "Arkham Intelligence",
    "PeckShield",
    "Cyvers",
];

const WALLETS: &[&str] = &[
    "hot wallet",
    "multisig wallet",
    "withdrawal wallet",
    "deposit wallet",
];

const WEEKDAYS: &[&str] = &[
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
];

const MONTHS: &[&str] = &[
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// (domain, headlines in Title Case).
const SOURCES: &[(&str, bool)] = &[
    ("coindesk.com", false),
    ("cointelegraph.com", true),
    ("theblock.co", false),
    ("decrypt.co", false),
    ("blockworks.co", false),
    ("dlnews.com", false),
    ("cryptoslate.com", true),
    ("beincrypto.com", true),
    ("cryptobriefing.com", true),
    ("bitcoinist.com", true),
    ("newsbtc.com", true),
    ("u.today", true),
    ("ambcrypto.com", false),
    ("cryptonews.com", true),
    ("thedefiant.io", false),
    ("coingape.com", true),
    ("cryptopotato.com", true),
    ("coinjournal.net", false),
    ("crypto.news", false),
    ("finbold.com", true),
];

const BOILERPLATE: &[&str] = &[
    "Follow us on X for the latest crypto news.",
    "This article is not financial advice.",
    "Disclosure: the author holds no positions in the assets mentioned.",
    "Subscribe to our newsletter for daily market updates.",
    "Prices are as of the time of publication.",
    "This story is developing and will be updated.",
    "Join our Telegram channel for real-time alerts.",
    "Do your own research before making any investment decisions.",
];

/// Generic market sentences shared by all stories. Slots come from [`market_slots`].
const FILLERS: &[&str] = &[
    "Bitcoin traded near {btc} in Asian hours, with little reaction to the broader news flow.",
    "Analysts expect volatility ahead of Friday's options expiry, when a large batch of bitcoin and ether contracts settles.",
    "Ether hovered around {eth}, little changed over the past 24 hours as traders waited for a clearer direction.",
    "The total crypto market capitalization stood at about {mcap} trillion, according to data from CoinGecko.",
    "Bitcoin's share of the overall crypto market was roughly {dom}, close to its highest level in several years.",
    "Funding rates on major perpetual futures venues stayed slightly positive, suggesting a modest bullish bias among traders.",
    "The Crypto Fear and Greed Index read {fng} on the day, a level that has often preceded choppy trading.",
    "Trading volumes were thinner than usual across major exchanges, which can exaggerate moves in either direction.",
    "Solana's SOL changed hands at {sol} at the time of writing, roughly tracking the rest of the market.",
    "Open interest in bitcoin futures remains near record levels, according to CoinGlass data, pointing to heavy use of leverage.",
    "Traders are also watching U.S. Treasury yields and the dollar index for clues about risk appetite.",
    "Spot bitcoin ETFs recorded mixed flows over the past week, with outflows from some funds offset by inflows into others.",
    "Market makers reported thinner order books than usual, and spreads widened on several smaller exchanges.",
    "Altcoins broadly tracked bitcoin's moves during the session, with few large tokens breaking from the pack.",
    "Options traders have been buying downside protection for the end of the month, according to data from Deribit.",
    "Stablecoin supply continued to grow this week, which analysts often read as a sign of fresh capital entering the market.",
    "Some analysts see {btc} as a key support level for bitcoin in the near term, with resistance a few thousand dollars higher.",
    "Broader risk assets, including U.S. tech stocks, were mixed, while gold held near its recent highs.",
    "On-chain data shows long-term holders have been slowly distributing coins into strength over recent weeks.",
    "Derivatives data suggests leverage has been building across the market, raising the risk of sharp liquidation cascades.",
    "The wider crypto market was relatively quiet during the session, with most large tokens moving less than 2%.",
    "Ether's price has lagged bitcoin for much of the year, although the gap has narrowed in recent weeks.",
    "Gas fees on Ethereum remained low throughout the day, a sign of subdued on-chain activity.",
    "Implied volatility for bitcoin options edged higher, a sign that traders are bracing for bigger price swings.",
    "Retail interest, measured by app downloads and search trends, remains muted compared with previous bull markets.",
    "Bitcoin was last at {btc}, while ether fetched {eth}, according to market data.",
    "Market participants remain focused on upcoming U.S. economic data and what it could mean for interest rates.",
    "Exchange reserves of bitcoin have fallen to multi-year lows, according to analytics firms, as coins move to cold storage.",
    "Liquidity in altcoin order books remains thin compared with earlier this year, making smaller tokens prone to sharp moves.",
    "Crypto-related equities, including miners and exchange operators, moved in line with digital asset prices.",
    "Decentralized exchange volumes were steady across major chains, led by activity on Ethereum and Solana.",
    "Meme coins saw outsized swings as speculative traders rotated positions between tokens.",
    "Institutional trading desks reported steady two-way flows, with no sign of panic selling.",
    "A broad index of large-cap tokens was little changed on the day, masking bigger moves in individual names.",
    "Bitcoin's realized volatility has fallen to its lowest level in weeks, a calm that rarely lasts long.",
    "Some traders are positioning for a breakout ahead of the monthly close, according to desk commentary.",
    "Miners have been sending more coins to exchanges, on-chain data shows, which is sometimes a precursor to selling.",
    "Ether staking deposits continued to climb, with more than a quarter of the supply now locked in staking contracts.",
    "Analysts caution that thin weekend liquidity can exaggerate price swings in both directions.",
    "Total value locked in DeFi protocols held near {tvl} billion, according to DefiLlama.",
    "Bitcoin dominance hovered near {dom}, little changed from a week ago, as altcoins failed to gain ground.",
    "Perpetual futures open interest across exchanges rose to {oi} billion, the highest level this month.",
];

/// Synonym groups used as `{~name}` in templates.
fn synonyms(name: &str) -> &'static [&'static str] {
    match name {
        "hacked" => &["hacked", "exploited", "breached", "hit by hackers"],
        "drained" => &["drained", "stolen", "siphoned", "lost"],
        "hack" => &["hack", "breach", "security breach", "cyberattack"],
        "jumps" => &["jumps", "surges", "rallies", "climbs", "soars"],
        "slides" => &["slides", "drops", "falls", "tumbles", "sinks"],
        "sues" => &["sues", "charges", "takes action against"],
        "said" => &["said", "announced", "confirmed", "disclosed"],
        "says" => &["says", "confirms", "announces"],
        "plans" => &["plans", "is set", "is preparing"],
        "according" => &["according to", "per", "according to"],
        "statement" => &["statement", "blog post", "post on X", "press release"],
        "exchange" => &["exchange", "trading platform", "crypto exchange"],
        "rose" => &["rose", "climbed", "gained", "jumped"],
        "fell" => &["fell", "slid", "dropped", "declined"],
        "investors" => &["investors", "traders", "market participants"],
        "regulator" => &["regulator", "watchdog", "authority"],
        "launch" => &["launch", "debut", "go-live"],
        "halts" => &["halts", "pauses", "suspends"],
        "resigns" => &["resigns", "steps down", "quits"],
        "arrested" => &["arrested", "detained", "taken into custody"],
        "raises" => &["raises", "secures", "lands", "closes"],
        "teams" => &["partners", "teams up", "joins forces"],
        "outage" => &["outage", "halt", "stall", "downtime"],
        "settle" => &["settle", "resolve", "end"],
        _ => &[],
    }
}

// ---------------------------------------------------------------------------------------
// Template families
// ---------------------------------------------------------------------------------------

struct Family {
    section: &'static str,
    titles: &'static [&'static str],
    leads: &'static [&'static str],
    details: &'static [&'static str],
}

const F_HACK: usize = 0;
const F_ETF_FILING: usize = 1;
const F_ETF_APPROVAL: usize = 2;
const F_LISTING: usize = 3;
const F_DELISTING: usize = 4;
const F_REGULATORY: usize = 5;
const F_UPGRADE: usize = 6;
const F_LIQUIDATIONS: usize = 7;
const F_FUNDING: usize = 8;
const F_DEPEG: usize = 9;
const F_RESIGN: usize = 10;
const F_ARREST: usize = 11;
const F_RATES: usize = 12;
const F_CPI: usize = 13;
const F_PARTNERSHIP: usize = 14;
const F_AIRDROP: usize = 15;
const F_OUTAGE: usize = 16;
const F_SETTLEMENT: usize = 17;

// Every family constant must index into FAMILIES.
const _: () = assert!(FAMILIES.len() == F_SETTLEMENT + 1);

const FAMILIES: &[Family] = &[
    // F_HACK
    Family {
        section: "markets",
        titles: &[
            "{ex} {~hacked}, {amt} in {tkr} {~drained}",
            "{ex} suspends withdrawals after {amt} {~hack}",
            "Hackers drain {amt} from {ex} {wal}",
            "{ex} confirms {~hack} of {wal}, {coin} among stolen assets",
            "{amt} stolen from crypto exchange {ex} in {wal} breach",
            "{ex} hit by {amt} {~hack}; exchange says user funds are safe",
        ],
        leads: &[
            "Crypto exchange {ex} said it lost {amt} after attackers gained access to one of its {wal}s on {wday}.",
            "{ex} has halted deposits and withdrawals following a {~hack} that drained {amt} in {coin} and other tokens from {awal}.",
            "Attackers siphoned {amt} worth of digital assets, mostly {tkr}, from {ex} early on {wday}, {~according} on-chain data.",
            "{ex} confirmed a security breach affecting {awal}, with losses estimated at {amt}, mostly in {coin}.",
            "{awal} belonging to {ex} was compromised on {wday}, and blockchain sleuths traced {amt} in stolen {tkr} to fresh addresses.",
        ],
        details: &[
            "{ex} {~said} that customer balances would be covered in full from its reserve fund.",
            "Withdrawals are expected to resume within {hrs} hours once a security review is complete.",
            "Blockchain analytics firm {sleuth} attributed the {~hack} to {attacker}.",
            "Part of the stolen {tkr} was quickly swapped into ether and routed through a mixer.",
            "{tkr} slid {pct} on {ex} as news of the breach spread, before paring some of the losses.",
            "{ex} urged users not to deposit to old addresses and said it had notified law enforcement.",
            "The {~exchange} said about {nusers} accounts were affected by the incident.",
        ],
    },
    // F_ETF_FILING
    Family {
        section: "markets",
        titles: &[
            "{iss} files for spot {coin} ETF",
            "{iss} seeks SEC nod for {tkr} exchange-traded fund",
            "{iss} joins race for {acoin} ETF with new S-1 filing",
            "Spot {tkr} ETF: {iss} applies to list fund on {venue}",
            "{iss} {coin} ETF filing names {cust} as custodian",
        ],
        leads: &[
            "Asset manager {iss} has filed with the U.S. Securities and Exchange Commission to launch a spot {coin} exchange-traded fund.",
            "{iss} submitted an S-1 registration statement on {wday} for a fund that would hold {tkr} directly.",
            "{iss} is seeking regulatory approval for {acoin} ETF that would trade on {venue} under the ticker {etf}.",
            "The race for a spot {tkr} ETF widened on {wday} as {iss} filed paperwork with the SEC for its own product.",
        ],
        details: &[
            "The proposed fund would charge a sponsor fee of {fee} and list on {venue} under the ticker {etf}.",
            "{cust} would serve as custodian for the fund's {tkr} holdings, {~according} the filing.",
            "ETF analysts put the odds of approval at {odds} before the end of next year.",
            "{tkr} {~rose} {pct} in the hours after the filing became public, outpacing the broader market.",
            "The filing starts a review clock that could stretch as long as 240 days.",
            "{iss} already manages several digital asset funds and said demand for {coin} exposure has grown.",
        ],
    },
    // F_ETF_APPROVAL
    Family {
        section: "markets",
        titles: &[
            "SEC approves {iss}'s spot {coin} ETF",
            "{iss} wins green light for {tkr} ETF, trading to begin {date}",
            "Regulators clear {iss} spot {coin} fund for listing on {venue}",
            "{coin} ETF from {iss} gets SEC approval",
            "{iss} {etf} approved: spot {tkr} ETF set for {venue} debut",
        ],
        leads: &[
            "The U.S. Securities and Exchange Commission approved {iss}'s application for a spot {coin} exchange-traded fund on {wday}.",
            "{iss} received the regulator's go-ahead to list its {tkr} fund, which will trade under the ticker {etf}.",
            "A spot {coin} ETF managed by {iss} has been cleared by the SEC, with trading expected to begin on {date}.",
            "U.S. investors will soon be able to buy shares of {iss}'s {tkr} fund after the SEC signed off on the product on {wday}.",
        ],
        details: &[
            "The fund, {etf}, will list on {venue} and charge an annual fee of {fee}, in line with rival products.",
            "{tkr} {~rose} {pct} following the decision, {~according} market data.",
            "Analysts expect the fund to draw inflows of {amt} in its first month of trading.",
            "{cust} will hold the fund's {coin} in cold storage, according to the final prospectus.",
            "The approval follows months of back-and-forth between {iss} and SEC staff over custody arrangements.",
            "{iss} said it would waive part of the fee for the first six months.",
        ],
    },
    // F_LISTING
    Family {
        section: "markets",
        titles: &[
            "{ex} to list {coin} ({tkr}), trading opens {date}",
            "{ex} adds {tkr} spot trading pairs",
            "{coin} {~jumps} after {ex} listing announcement",
            "{tkr} gets {ex} listing; deposits now open",
            "{ex} announces support for {coin}, {tkr} up {pct}",
        ],
        leads: &[
            "{ex} will list {coin} ({tkr}) for spot trading on {date}, the exchange said in an announcement on {wday}.",
            "Crypto exchange {ex} is adding {tkr}, opening the {pairs} trading pairs at {hhmm} UTC on {date}.",
            "{coin} rallied {pct} after {ex} said it would list the token, with deposits already enabled.",
            "{ex} has announced it will support {tkr}, making the token available to its users starting {date}.",
        ],
        details: &[
            "Deposits of {tkr} are open now, and withdrawals will be enabled one day after trading starts.",
            "The token {~rose} {pct} in the hour after the announcement, with trading volume more than doubling.",
            "{ex} said it would apply a monitoring tag to {tkr}, warning users of higher-than-usual volatility.",
            "The listing includes the {pairs} pairs, and {ex} said more quote currencies could follow.",
            "{tkr} perpetual futures with up to {lev}x leverage will follow on {ex}'s derivatives platform.",
            "{ex} listings have historically triggered sharp but short-lived rallies in the tokens involved.",
        ],
    },
    // F_DELISTING
    Family {
        section: "markets",
        titles: &[
            "{ex} to delist {tkr} on {date}",
            "{coin} {~slides} as {ex} announces delisting",
            "{ex} will remove {coin} ({tkr}) trading pairs, citing {why}",
            "{tkr} to be dropped by {ex}; withdrawals open until {date2}",
            "{ex} delisting sends {tkr} down {pct}",
        ],
        leads: &[
            "{ex} will delist {coin} ({tkr}) on {date}, the exchange said on {wday}, citing {whyl}.",
            "{coin} {~fell} {pct} after {ex} announced it would remove all {tkr} trading pairs.",
            "Crypto exchange {ex} is dropping {tkr} from its platform, with trading set to end on {date}.",
            "{ex} said it will stop supporting {coin} following {whyl}, giving users until {date2} to withdraw.",
        ],
        details: &[
            "Users will be able to withdraw {tkr} until {date2}, after which remaining balances may be converted to stablecoins.",
            "{tkr} {~fell} {pct} in the hours after the notice as traders moved tokens to other venues.",
            "{ex} said the decision followed {whyl} and was made after a review of the token.",
            "Open orders in {tkr} pairs will be cancelled automatically when trading ends.",
            "The {coin} team said it was surprised by the decision and was in talks with {ex}.",
        ],
    },
    // F_REGULATORY
    Family {
        section: "policy",
        titles: &[
            "{ag} {~sues} {firm} over {why}",
            "{firm} hit with {ag} enforcement action over {why}",
            "{ag} seeks {amt} penalty from {firm}",
            "{firm} faces {ag} charges, accused of {whyl}",
            "{ag} cracks down on {firm}, alleging {why}",
        ],
        leads: &[
            "{agl} has taken enforcement action against {firm}, accusing the company of {whyl}.",
            "{firm} was charged by {agl} on {wday} with {whyl}, {~according} a filing.",
            "{ag} said on {wday} it is seeking a penalty of {amt} from {firm} for {whyl}.",
            "{agl} filed a complaint against {firm}, alleging it spent years {whyl}.",
        ],
        details: &[
            "{firm} said it would contest the allegations and called the action regulation by enforcement.",
            "The {~regulator} is seeking disgorgement and a civil penalty of {amt}.",
            "The complaint also singles out the firm's {coin} products offered to retail customers.",
            "{tkr} {~fell} {pct} after the action became public, as traders weighed the risk of further cases.",
            "It is the latest in a series of actions by the {~regulator} against crypto companies this year.",
            "{firm} said customer funds were unaffected and operations would continue as normal.",
        ],
    },
    // F_UPGRADE
    Family {
        section: "tech",
        titles: &[
            "{coin} activates {upg} hard fork at block {blk}",
            "{upg} upgrade goes live on {coin} mainnet",
            "{coin} developers ship {upg} upgrade, promising {feat}",
            "{tkr} network completes {upg} hard fork",
            "What {coin}'s {upg} hard fork changes for users",
        ],
        leads: &[
            "The {coin} network activated its {upg} hard fork at block {blk} on {wday}, a long-awaited upgrade meant to {featl}.",
            "{coin} developers completed the {upg} upgrade, which aims to {featl}, without major disruptions.",
            "The {upg} hard fork went live on {coin} mainnet on {wday}, bringing changes designed to {featl}.",
            "{coin}'s {upg} upgrade is now live, {~according} core developers, after activating at block height {blk}.",
        ],
        details: &[
            "Node operators were asked to update their software before block {blk} to avoid ending up on a stale chain.",
            "Core developers {~said} that the upgrade would {featl} once fully rolled out.",
            "{tkr} {~rose} {pct} in the 24 hours around the activation, outperforming most large tokens.",
            "Some exchanges briefly paused {tkr} deposits and withdrawals during the upgrade.",
            "The {upg} changes were tested on two public testnets over several months.",
            "About {valpct} of validators had upgraded ahead of the fork, {~according} network dashboards.",
        ],
    },
    // F_LIQUIDATIONS
    Family {
        section: "markets",
        titles: &[
            "{amt} in {side} positions liquidated as {coin} {move} {pct}",
            "Crypto traders lose {amt} to liquidations after {tkr} {move} to {price}",
            "{tkr} {move} {pct}, wiping out {amt} in leveraged {sides}",
            "Over {ntr} traders liquidated as {coin} {move} {rel} {price}",
            "Liquidation wave: {amt} erased in {hrs} hours as {coin} {move}",
        ],
        leads: &[
            "{amt} in leveraged {side} positions were liquidated over the past {hrs} hours as {coin} {moved} {pct} to {price}.",
            "{coin} {moved} {rel} {price} on {wday}, triggering {amt} in liquidations across derivatives exchanges.",
            "A sharp {pct} move in {tkr} wiped out {amt} of leveraged bets, most of them {sides}, {~according} CoinGlass.",
            "Over {ntr} traders were liquidated in {hrs} hours after {tkr} {moved} {rel} {price}, with losses totalling {amt}.",
        ],
        details: &[
            "The largest single liquidation took place on {bigex}, where one {tkr} position worth {big} was wiped out.",
            "{sides} accounted for most of the {amt} in forced closures, {~according} CoinGlass data.",
            "{tkr} open interest dropped sharply as leverage was flushed out of the market.",
            "Traders said the move accelerated once {tkr} broke through {price}.",
            "Funding rates on {tkr} perpetuals flipped after the move, a sign that positioning had reset.",
            "{bigex} saw the heaviest liquidations of any venue, followed by Binance and OKX.",
        ],
    },
    // F_FUNDING
    Family {
        section: "business",
        titles: &[
            "{startup} {~raises} {amt} {round} round led by {vc}",
            "{vc} leads {amt} round in {startup}",
            "{startup} secures {amt} to build {product}",
            "{startup} valued at {val} after {amt} {round} round",
            "Crypto startup {startup} closes {amt} {round} with {vc}, {vc2}",
        ],
        leads: &[
            "{startup}, a {hq}-based company building {productl}, has raised {amt} in a {round} round led by {vc}.",
            "{vc} led a {amt} {round} round in {startup}, the company {~said} on {wday}.",
            "{startup} has closed a {amt} {round} funding round to build {productl}, with participation from {vc2}.",
            "Investors led by {vc} have put {amt} into {startup}, valuing the {coin}-focused startup at {val}.",
        ],
        details: &[
            "The round values {startup} at {val}, {~according} a person familiar with the matter.",
            "{vc2} and several angel investors also participated in the round.",
            "{startup} plans to use the funds to expand its engineering team and launch on {coin} mainnet.",
            "The company was founded in {founded}, is based in {hq} and employs around {staff} people.",
            "Crypto venture funding has picked up this quarter as prices recovered.",
            "{startup} said its product already processes millions of dollars in monthly volume.",
        ],
    },
    // F_DEPEG
    Family {
        section: "markets",
        titles: &[
            "{stable} loses dollar peg, falls to {low}",
            "Stablecoin {stable} depegs amid {cause}",
            "{stable} slips below $1 as holders rush for exits",
            "{issuer} says {stable} fully backed after slide to {low}",
            "{stable} wobbles: stablecoin trades at {low} on {dexv}",
        ],
        leads: &[
            "Stablecoin {stable} lost its dollar peg on {wday}, falling as low as {low} amid {causel}.",
            "{stable}, the dollar-pegged token issued by {issuer}, slid to {low} on {dexv} as holders rushed to redeem.",
            "{issuer} moved to reassure holders after {stable} traded as low as {low}, blaming {causel}.",
            "The {stable} stablecoin broke its $1 peg, dropping {pct} in a matter of hours on {dexv}.",
        ],
        details: &[
            "Redemptions reached {amt} in the {hrs} hours after the depeg began.",
            "{issuer} said reserves fully back every {stable} in circulation and redemptions were being processed.",
            "Liquidity pools holding {stable} on {dexv} became heavily imbalanced.",
            "Lending protocols paused {stable} borrowing to limit contagion.",
            "The token later recovered part of the drop, trading near {rec}.",
            "Analysts linked the slide to {causel}, and warned that confidence could take time to return.",
        ],
    },
    // F_RESIGN
    Family {
        section: "business",
        titles: &[
            "{ex} {role} {person} {~resigns}",
            "{person} to step down as {ex} {role}",
            "{ex} names {succ} as interim {role} after {person} exit",
            "{ex} leadership shake-up: {role} {person} leaves",
            "{person} quits {ex} amid {rsn}",
        ],
        leads: &[
            "{person} has resigned as {role} of {ex}, the exchange {~said} on {wday}.",
            "{ex} said {role} {person} would step down effective {date}, with {succ} taking over on an interim basis.",
            "{person}, who has served as {ex}'s {role} for {years} years, is leaving the company amid {rsn}.",
            "Crypto exchange {ex} is losing its {role}, {person}, {~according} an internal memo seen by reporters.",
        ],
        details: &[
            "{succ}, currently head of operations, will serve as interim {role}.",
            "{person} said in a {~statement} that it was the right time to hand over to new leadership.",
            "The departure comes amid {rsn} at the exchange, {~according} people familiar with the matter.",
            "{ex} said the change would not affect customers or its product roadmap.",
            "{person} will remain an adviser to the board until {date}.",
        ],
    },
    // F_ARREST
    Family {
        section: "policy",
        titles: &[
            "{ex} {role} {person} {~arrested} in {city}",
            "{auth} detain {ex} executive {person} on {charge} charges",
            "{ex} {role} held in {city} over alleged {charge}",
            "{person} of {ex} arrested; exchange says operations normal",
            "{ex} executive {person} faces {charge} charges after {city} arrest",
        ],
        leads: &[
            "{person}, the {role} of crypto exchange {ex}, was {~arrested} in {city} on {wday}, {~according} local media.",
            "{auth} have detained {ex} {role} {person} as part of an investigation into alleged {charge}.",
            "{ex} confirmed that its {role}, {person}, is being held by {auth} in {city}.",
            "An executive of {ex}, {role} {person}, was taken into custody in {city} over suspected {charge}.",
        ],
        details: &[
            "{ex} said in a {~statement} that it was cooperating with authorities and that user funds were safe.",
            "Withdrawals from {ex} rose sharply after news of the arrest, {~according} on-chain data.",
            "{person} could face up to {yrs} years in prison if convicted.",
            "Prosecutors allege the exchange processed funds linked to {charge} schemes.",
            "The exchange's native token {~fell} {pct} following the news.",
        ],
    },
    // F_RATES
    Family {
        section: "markets",
        titles: &[
            "{cb} {dec}; bitcoin {move} to {price}",
            "Bitcoin {move} {pct} after {cb} {dec}",
            "Crypto reacts as {cb} {dec} to {rate}",
            "{cb} rate decision: policy rate at {rate}, {tkr} {move}",
            "{tkr} {move} as {cb} {dec}",
        ],
        leads: &[
            "{cbl} {decp} on {wday}, leaving its benchmark rate at {rate}, and bitcoin {moved} {pct} to {price}.",
            "Bitcoin {moved} to {price} after {cbl} {decp}, a decision traders had largely priced in.",
            "Crypto markets {moved} on {wday} as {cbl} {decp}, with {tkr} swinging {pct} within an hour of the announcement.",
            "{cbl} {decp}, setting its policy rate at {rate}; bitcoin was last at {price}.",
        ],
        details: &[
            "Policymakers signaled that future moves would depend on incoming inflation data.",
            "Futures markets now price a roughly {odds} chance of another cut at the next meeting.",
            "Ether and other large tokens followed bitcoin's move in the minutes after the decision.",
            "Two members of the committee dissented from the decision, preferring a different path.",
            "Analysts said the statement sounded more cautious than markets had expected.",
            "The dollar index moved in the opposite direction of bitcoin after the {cb} decision.",
        ],
    },
    // F_CPI
    Family {
        section: "markets",
        titles: &[
            "{reg} CPI comes in at {cpi}, bitcoin {move}",
            "Bitcoin {move} as {reg} inflation prints {hotcold} than expected at {cpi}",
            "{hotcold}-than-expected {reg} CPI sends {tkr} to {price}",
            "{reg} inflation {cpi} vs {exp} expected; crypto {move}",
            "Crypto markets react to {month} {reg} CPI print of {cpi}",
        ],
        leads: &[
            "Consumer prices in {regl} rose {cpi} year over year in {month}, {hotcold} than the {exp} economists expected, and bitcoin {moved} {pct}.",
            "Bitcoin {moved} to {price} after {month} inflation data for {regl} came in at {cpi} against forecasts of {exp}.",
            "A {hotcold}-than-expected CPI reading of {cpi} in {regl} moved crypto markets on {wday}, with {tkr} swinging {pct}.",
            "Annual inflation in {regl} printed at {cpi} for {month}, versus {exp} expected, sending bitcoin to {price}.",
        ],
        details: &[
            "Core inflation, which strips out food and energy, came in at {core}.",
            "Traders adjusted their bets on the next rate decision after the release.",
            "The data is one of the last major prints before the next central bank meeting.",
            "Ether and other large tokens tracked bitcoin's move after the data.",
            "Analysts said the reading complicates the path to lower interest rates.",
        ],
    },
    // F_PARTNERSHIP
    Family {
        section: "business",
        titles: &[
            "{firm} {~teams} with {partner} on {purpose}",
            "{partner} taps {firm} for {purpose} in {region}",
            "{firm} and {partner} announce {purpose} partnership",
            "{firm} strikes deal with {partner} to {purposel}",
            "{partner} partners with {firm}; {tkr} {~jumps} {pct}",
        ],
        leads: &[
            "{firm} has partnered with {partner} to {purposel} in {region}, the companies {~said} on {wday}.",
            "{partner} is teaming up with {firm} on {purpose}, with a launch planned for {date}.",
            "{firm} announced a partnership with {partner} that will {purposel}, initially on {coin}.",
            "In a deal announced on {wday}, {partner} will work with {firm} to {purposel}.",
        ],
        details: &[
            "The service will initially run on {coin}, with other networks to follow.",
            "{tkr} {~rose} {pct} after the announcement, {~according} market data.",
            "The rollout will start in {region} before expanding to other markets.",
            "Financial terms of the deal were not disclosed, and neither company would comment on revenue sharing.",
            "{partner} said customer demand for crypto services had grown over the past year.",
        ],
    },
    // F_AIRDROP
    Family {
        section: "tech",
        titles: &[
            "{proto} announces {ptkr} airdrop, {pctsup} of supply to users",
            "{proto} {ptkr} token airdrop: claims open {date}",
            "{proto} to airdrop {ptkr} to {nwal} wallets",
            "{proto} unveils {ptkr} token and airdrop for early users",
            "{ptkr} airdrop worth {amt} goes live for {proto} users",
        ],
        leads: &[
            "{proto}, a protocol built on {coin}, said it will airdrop {pctsup} of its {ptkr} token supply to early users, with claims opening on {date}.",
            "Around {nwal} wallets are eligible for the {proto} airdrop, which distributes {ptkr} tokens worth {amt} at current prices.",
            "{proto} has unveiled its {ptkr} governance token and an airdrop covering {pctsup} of the supply.",
            "Users of {proto} on {coin} can claim {ptkr} tokens from {date}, the team {~said} on {wday}.",
        ],
        details: &[
            "Eligibility was based on on-chain activity, and unclaimed tokens will return to the treasury after {date2}.",
            "The airdrop allocates {pctsup} of the {ptkr} supply, with more reserved for future campaigns.",
            "Some users complained that sybil filters excluded genuine wallets.",
            "{ptkr} perpetual futures began trading on several exchanges ahead of the claim.",
            "{proto} said roughly {nwal} addresses qualified after sybil filtering.",
        ],
    },
    // F_OUTAGE
    Family {
        section: "tech",
        titles: &[
            "{coin} network {~halts} block production for {hrs} hours",
            "{coin} suffers {~outage} as {cause} stalls chain",
            "{tkr} {~slides} after {coin} network {~outage}",
            "{coin} mainnet back online after {hrs}-hour {~outage}",
            "Validators restart {coin} after {cause}",
        ],
        leads: &[
            "The {coin} blockchain stopped producing blocks for about {hrs} hours on {wday} due to {causel}.",
            "{coin} suffered a network {~outage} at block {blk}, with developers blaming {causel}.",
            "Block production on {coin} resumed after a stall of {hrs} hours caused by {causel}, {~according} the core team.",
            "Transactions on the {coin} network were stuck for roughly {hrs} hours after {causel}.",
        ],
        details: &[
            "Validators coordinated a restart after a patch was released.",
            "{tkr} {~fell} {pct} during the {~outage} before recovering some ground once blocks resumed.",
            "Several exchanges paused {tkr} deposits and withdrawals until the network stabilized.",
            "The last block before the halt was {blk}, {~according} block explorers.",
            "Developers said no funds were lost and promised a full post-mortem.",
            "It is the network's first major {~outage} this year, and the team said it would add more monitoring.",
        ],
    },
    // F_SETTLEMENT
    Family {
        section: "policy",
        titles: &[
            "{firm} to pay {amt} to {~settle} {pl} lawsuit",
            "{firm} settles {pl} case over {alleg} for {amt}",
            "{firm} reaches {amt} settlement with {pl} plaintiffs",
            "{firm} agrees to {amt} deal to end {alleg} suit",
            "Court approves {firm}'s {amt} settlement over {alleg}",
        ],
        leads: &[
            "{firm} has agreed to pay {amt} to settle claims brought by {pll} accusing it of {allegl}.",
            "{firm} reached a {amt} settlement with {pll} in {court}, ending a dispute over {alleg}.",
            "A lawsuit alleging {firm} was {allegl} has been settled for {amt}, {~according} filings in {court}.",
            "{firm} will pay {amt} under a settlement with {pll}, the company {~said} on {wday}.",
        ],
        details: &[
            "{firm} did not admit or deny wrongdoing as part of the agreement.",
            "The settlement still needs approval from {court}, which is expected to rule in the coming weeks.",
            "The case was first filed in {filed} and focused on {allegl}.",
            "{firm} said it was pleased to put the matter behind it and focus on its products.",
            "Lawyers for the plaintiffs called the deal a win for customers.",
        ],
    },
];

// ---------------------------------------------------------------------------------------
// Slots and rendering
// ---------------------------------------------------------------------------------------

/// A named value of a story, with one or more interchangeable surface forms.
struct Slot {
    key: &'static str,
    forms: Vec<String>,
}

/// Slots by name, as filled in by [`build_slots`] and [`market_slots`].
struct Slots(Vec<Slot>);

impl Slots {
    fn set(&mut self, key: &'static str, value: impl Into<String>) {
        self.0.push(Slot {
            key,
            forms: vec![value.into()],
        });
    }

    fn set_forms(&mut self, key: &'static str, forms: Vec<String>) {
        self.0.push(Slot { key, forms });
    }
}

/// Index of a slot name among the names used by the templates.
type Key = u16;

/// One piece of a compiled template.
#[derive(Clone, Copy)]
enum Piece {
    Lit(&'static str),
    Slot(Key),
    Syn(&'static [&'static str]),
    /// A `{~name}` without synonym group, or an unterminated `{`: a template bug.
    Bad(&'static str),
}

type Tpl = Vec<Piece>;

/// Slots whose names were resolved to template keys, packed into one text arena so that
/// rendering touches little memory.
#[derive(Default)]
struct Resolved {
    text: String,
    /// (key, first form in `forms`, number of forms)
    entries: Vec<(Key, u16, u16)>,
    /// Byte ranges of the forms in `text`.
    forms: Vec<(u32, u32)>,
}

impl Resolved {
    /// Appends a random form of `key` to `out`; false if the key is unknown.
    fn push_form(&self, key: Key, out: &mut String, rng: &mut Rng) -> bool {
        let Some(&(_, first, n)) = self.entries.iter().find(|e| e.0 == key) else {
            return false;
        };
        let pick = if n > 1 { rng.below(usize::from(n)) } else { 0 };
        match self.forms.get(usize::from(first) + pick) {
            Some(&(a, b)) => {
                out.push_str(self.text.get(a as usize..b as usize).unwrap_or_default());
                true
            }
            None => false,
        }
    }
}

struct CompiledFamily {
    titles: Vec<Tpl>,
    leads: Vec<Tpl>,
    details: Vec<Tpl>,
}

/// All templates parsed once per generation, so rendering is a flat loop over pieces.
struct Templates {
    keys: HashMap<&'static str, Key>,
    families: Vec<CompiledFamily>,
    fillers: Vec<Tpl>,
}

impl Templates {
    fn new() -> Self {
        let mut keys = HashMap::new();
        let mut all = |list: &'static [&'static str]| -> Vec<Tpl> {
            list.iter().map(|tpl| compile(tpl, &mut keys)).collect()
        };
        let families = FAMILIES
            .iter()
            .map(|f| CompiledFamily {
                titles: all(f.titles),
                leads: all(f.leads),
                details: all(f.details),
            })
            .collect();
        let fillers = all(FILLERS);
        Self {
            keys,
            families,
            fillers,
        }
    }

    /// Maps slot names to template keys; slots no template uses are dropped.
    fn resolve(&self, slots: Slots) -> Resolved {
        let mut r = Resolved {
            text: String::with_capacity(
                slots.0.iter().flat_map(|s| &s.forms).map(String::len).sum(),
            ),
            entries: Vec::with_capacity(slots.0.len()),
            forms: Vec::with_capacity(slots.0.len() + 8),
        };
        for slot in slots.0 {
            let Some(&key) = self.keys.get(slot.key) else {
                continue;
            };
            let first = r.forms.len() as u16;
            for form in &slot.forms {
                let a = r.text.len() as u32;
                r.text.push_str(form);
                r.forms.push((a, r.text.len() as u32));
            }
            r.entries.push((key, first, slot.forms.len() as u16));
        }
        r
    }
}

/// Parses `{key}` (slot) and `{~name}` (synonym group) placeholders.
fn compile(tpl: &'static str, keys: &mut HashMap<&'static str, Key>) -> Tpl {
    let mut pieces = Vec::new();
    let mut rest = tpl;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            pieces.push(Piece::Lit(&rest[..open]));
        }
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            pieces.push(Piece::Bad(after));
            return pieces;
        };
        let key = &after[..close];
        if let Some(name) = key.strip_prefix('~') {
            let options = synonyms(name);
            pieces.push(if options.is_empty() {
                Piece::Bad(name)
            } else {
                Piece::Syn(options)
            });
        } else {
            let next = keys.len() as Key;
            pieces.push(Piece::Slot(*keys.entry(key).or_insert(next)));
        }
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Lit(rest));
    }
    pieces
}

/// Appends one sentence (or headline) rendered from `tpl`, slots looked up in `story` then
/// `market`, with its first letter capitalised. Returns false if a placeholder could not be
/// resolved (the unit tests guarantee this never happens for the built-in templates).
fn render(
    out: &mut String,
    tpl: &[Piece],
    story: &Resolved,
    market: &Resolved,
    rng: &mut Rng,
) -> bool {
    let start = out.len();
    let mut ok = true;
    for piece in tpl {
        match *piece {
            Piece::Lit(text) => out.push_str(text),
            Piece::Syn(options) => {
                let word = options[rng.below(options.len())];
                out.push_str(word);
            }
            Piece::Slot(key) => {
                if !story.push_form(key, out, rng) && !market.push_form(key, out, rng) {
                    ok = false;
                }
            }
            Piece::Bad(text) => {
                ok = false;
                out.push_str(text);
            }
        }
    }
    if let Some(first) = out.get_mut(start..start + 1) {
        first.make_ascii_uppercase();
    }
    ok
}

/// Title Case for outlets that use it: capitalises every word except short function words.
fn title_case(title: &str) -> String {
    const SMALL: &[&str] = &[
        "a", "an", "the", "of", "in", "on", "to", "for", "and", "or", "as", "at", "by", "with",
        "vs", "from", "after", "amid",
    ];
    let mut out = String::with_capacity(title.len());
    for (i, word) in title.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let small = i > 0 && SMALL.contains(&word);
        let mut chars = word.chars();
        match chars.next() {
            Some(c) if !small && c.is_ascii_lowercase() => {
                out.push(c.to_ascii_uppercase());
                out.push_str(chars.as_str());
            }
            _ => out.push_str(word),
        }
    }
    out
}

/// Appends the URL slug of a title: lowercase ASCII words joined by '-', at most 9 words.
fn slugify_into(slug: &mut String, title: &str) {
    let start = slug.len();
    let mut words = 0;
    for word in title.split(|c: char| !c.is_ascii_alphanumeric()) {
        if word.is_empty() {
            continue;
        }
        if words == 9 {
            break;
        }
        if words > 0 {
            slug.push('-');
        }
        slug.extend(word.chars().map(|c| c.to_ascii_lowercase()));
        words += 1;
    }
    if slug.len() == start {
        slug.push_str("story");
    }
}

// ---------------------------------------------------------------------------------------
// Number and date formatting
// ---------------------------------------------------------------------------------------

/// `noun` preceded by "a" or "an" (by spelling, which is right for the names used here).
fn with_article(noun: &str) -> String {
    let an = noun.starts_with(['A', 'E', 'I', 'O', 'X', 'a', 'e', 'i', 'o']);
    format!("{} {noun}", if an { "an" } else { "a" })
}

/// Integer with thousands separators.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Surface forms of a dollar amount given in tenths of a million.
fn money_forms(tenths_m: u64) -> Vec<String> {
    let tenths_m = tenths_m.max(1);
    if tenths_m >= 10_000 {
        let b = tenths_m as f64 / 10_000.0;
        return vec![format!("${b:.1} billion"), format!("${b:.1}B")];
    }
    let whole = tenths_m / 10;
    let frac = tenths_m % 10;
    if frac == 0 || whole >= 100 {
        let m = (tenths_m + 5) / 10;
        return vec![format!("${m} million"), format!("${m}M")];
    }
    let rounded = (tenths_m + 5) / 10;
    let approx = if rounded > whole { "nearly" } else { "roughly" };
    vec![
        format!("${whole}.{frac} million"),
        format!("${whole}.{frac}M"),
        format!("{approx} ${rounded} million"),
    ]
}

/// Random dollar amount in `lo..=hi` millions (log-uniform-ish), as surface forms.
fn money(rng: &mut Rng, lo: u64, hi: u64) -> Vec<String> {
    money_forms(money_tenths(rng, lo, hi))
}

/// Random dollar amount in `lo..=hi` millions, in tenths of a million.
fn money_tenths(rng: &mut Rng, lo: u64, hi: u64) -> u64 {
    let u = rng.unit();
    let lo_f = (lo.max(1) * 10) as f64;
    let hi_f = (hi.max(lo + 1) * 10) as f64;
    let v = lo_f * (hi_f / lo_f).powf(u);
    let mut tenths = v as u64;
    if tenths >= 200 && !rng.chance(0.3) {
        tenths = tenths / 10 * 10;
    }
    tenths.max(1)
}

/// Percentage forms from tenths of a percent.
fn pct_forms(tenths: u64) -> Vec<String> {
    let s = format!("{}.{}%", tenths / 10, tenths % 10);
    let p = format!("{}.{} percent", tenths / 10, tenths % 10);
    vec![s.clone(), s, p]
}

fn pct(rng: &mut Rng, lo_tenths: u64, hi_tenths: u64) -> Vec<String> {
    pct_forms(rng.range(lo_tenths, hi_tenths))
}

/// Dollar price with a precision suited to its magnitude.
fn fmt_price(p: f64) -> String {
    if p >= 1000.0 {
        format!("${}", thousands(((p / 10.0).round() * 10.0) as u64))
    } else if p >= 100.0 {
        format!("${}", p.round() as u64)
    } else if p >= 1.0 {
        format!("${p:.2}")
    } else if p >= 0.01 {
        format!("${p:.4}")
    } else {
        let s = format!("{p:.8}");
        format!("${}", s.trim_end_matches('0'))
    }
}

/// (year, month 1-12, day 1-31) of days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Appends `n` in decimal, zero padded to at least `width` digits.
fn push_padded(out: &mut String, n: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    let mut v = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let start = i.min(buf.len() - width.min(buf.len()));
    for &b in &buf[start..] {
        out.push(char::from(b));
    }
}

/// RFC 3339 UTC timestamp with second precision (`2026-11-20T03:14:07Z`).
fn rfc3339(epoch: i64) -> String {
    let days = epoch.div_euclid(86_400);
    let secs = epoch.rem_euclid(86_400) as u64;
    let (y, m, d) = civil_from_days(days);
    let mut out = String::with_capacity(20);
    if y < 0 {
        out.push('-');
    }
    push_padded(&mut out, y.unsigned_abs(), 4);
    for (sep, v) in [('-', u64::from(m)), ('-', u64::from(d)), ('T', secs / 3600)] {
        out.push(sep);
        push_padded(&mut out, v, 2);
    }
    for v in [secs % 3600 / 60, secs % 60] {
        out.push(':');
        push_padded(&mut out, v, 2);
    }
    out.push('Z');
    out
}

fn month_name(m: u32) -> &'static str {
    MONTHS[(m as usize + 11) % 12]
}

/// "November 27" for the given epoch.
fn month_day(epoch: i64) -> String {
    let (_, m, d) = civil_from_days(epoch.div_euclid(86_400));
    format!("{} {d}", month_name(m))
}

fn weekday(epoch: i64) -> &'static str {
    WEEKDAYS[epoch.div_euclid(86_400).rem_euclid(7) as usize]
}

// ---------------------------------------------------------------------------------------
// Stories
// ---------------------------------------------------------------------------------------

struct Story {
    family: usize,
    /// Index of the family's main entity (exchange, issuer, agency…) in its pool.
    main: usize,
    coin: Option<usize>,
    /// Seconds after `start_epoch` of the first article.
    t0: i64,
    slots: Resolved,
    title_base: usize,
    lead_base: usize,
    source_base: usize,
    source_step: usize,
}

/// Picks a coin: `hint` if it satisfies `need` flags, else a random matching one.
fn pick_coin(rng: &mut Rng, hint: Option<usize>, need: u8) -> usize {
    if let Some(h) = hint
        && h < COINS.len()
        && COINS[h].flags & need == need
    {
        return h;
    }
    loop {
        let i = rng.below(COINS.len());
        if COINS[i].flags & need == need {
            return i;
        }
    }
}

fn coin_slots(slots: &mut Slots, c: usize) {
    let coin = &COINS[c];
    slots.set("coin", coin.name);
    slots.set("tkr", coin.ticker);
    slots.set("acoin", with_article(coin.name));
}

/// Firms that can be targeted by regulators, courts or partners: exchanges then firms.
fn company(i: usize) -> &'static str {
    if i < EXCHANGES.len() {
        EXCHANGES[i]
    } else {
        FIRMS[(i - EXCHANGES.len()) % FIRMS.len()]
    }
}

const COMPANIES: usize = EXCHANGES.len() + FIRMS.len();

/// Random index in `0..n`, re-drawn a few times while `taken` rejects it.
fn pick_main(rng: &mut Rng, n: usize, taken: &dyn Fn(usize) -> bool) -> usize {
    let mut i = rng.below(n);
    for _ in 0..8 {
        if !taken(i) {
            break;
        }
        i = rng.below(n);
    }
    i
}

/// A coin used as a story's main entity: the hint if suitable and free, else a random one.
fn pick_coin_main(
    rng: &mut Rng,
    hint: Option<usize>,
    need: u8,
    taken: &dyn Fn(usize) -> bool,
) -> usize {
    let mut c = pick_coin(rng, hint, need);
    for _ in 0..8 {
        if !taken(c) {
            break;
        }
        c = pick_coin(rng, None, need);
    }
    c
}

/// Builds the slots of a new story. `taken(i)` says whether main entity `i` of this family
/// is already used by a story close in time (re-drawn if possible, so that two stories of
/// the same family differ in their main entity). Returns (main entity, coin, slots).
fn build_slots(
    rng: &mut Rng,
    family: usize,
    taken: &dyn Fn(usize) -> bool,
    coin_hint: Option<usize>,
    event_epoch: i64,
) -> (usize, Option<usize>, Slots) {
    let mut s = Slots(Vec::with_capacity(16));
    s.set("wday", weekday(event_epoch));
    s.set(
        "date",
        month_day(event_epoch + 86_400 * rng.range(1, 10) as i64),
    );
    s.set(
        "date2",
        month_day(event_epoch + 86_400 * rng.range(11, 40) as i64),
    );
    let mut coin = None;
    let main;
    match family {
        F_HACK => {
            main = pick_main(rng, EXCHANGES.len(), taken);
            let c = pick_coin(rng, coin_hint, CHAIN);
            coin = Some(c);
            coin_slots(&mut s, c);
            s.set("ex", EXCHANGES[main]);
            s.set_forms("amt", money(rng, 5, 600));
            let wallet = *rng.pick(WALLETS);
            let named = format!("{} {wallet}", COINS[c].name);
            s.set_forms("wal", vec![wallet.to_string(), named.clone()]);
            s.set_forms("awal", vec![with_article(wallet), with_article(&named)]);
            s.set("attacker", *rng.pick(ATTACKERS));
            s.set("sleuth", *rng.pick(SLEUTHS));
            s.set("hrs", rng.range(12, 72).to_string());
            s.set_forms("pct", pct(rng, 15, 120));
            s.set("nusers", thousands(rng.range(2, 400) * 100));
        }
        F_ETF_FILING | F_ETF_APPROVAL => {
            main = pick_main(rng, ISSUERS.len(), taken);
            let c = pick_coin(rng, coin_hint, MAJOR);
            coin = Some(c);
            coin_slots(&mut s, c);
            let issuer = ISSUERS[main];
            s.set("iss", issuer);
            let prefix: String = issuer
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(1)
                .collect();
            s.set("etf", format!("{prefix}{}", COINS[c].ticker));
            s.set("fee", format!("0.{:02}%", rng.range(12, 95)));
            s.set("cust", *rng.pick(CUSTODIANS));
            s.set("venue", *rng.pick(VENUES));
            s.set("odds", format!("{}%", rng.range(5, 19) * 5));
            s.set_forms("pct", pct(rng, 10, 150));
            s.set_forms("amt", money(rng, 100, 2500));
        }
        F_LISTING | F_DELISTING => {
            main = pick_main(rng, EXCHANGES.len(), taken);
            let c = pick_coin(rng, coin_hint, 0);
            coin = Some(c);
            coin_slots(&mut s, c);
            let t = COINS[c].ticker;
            s.set("ex", EXCHANGES[main]);
            s.set("pairs", format!("{t}/USDT and {t}/USDC"));
            s.set("hhmm", format!("{:02}:00", rng.range(0, 23)));
            s.set("lev", (rng.range(1, 5) * 10).to_string());
            let (why, whyl) = *rng.pick(DELIST_REASONS);
            s.set("why", why);
            s.set("whyl", whyl);
            if family == F_LISTING {
                s.set_forms("pct", pct(rng, 50, 450));
            } else {
                s.set_forms("pct", pct(rng, 60, 350));
            }
        }
        F_REGULATORY => {
            main = pick_main(rng, COMPANIES, taken);
            let c = pick_coin(rng, coin_hint, 0);
            coin = Some(c);
            coin_slots(&mut s, c);
            let (ag, agl) = *rng.pick(AGENCIES);
            s.set("ag", ag);
            s.set("agl", agl);
            s.set("firm", company(main));
            let (why, whyl) = *rng.pick(REG_REASONS);
            s.set("why", why);
            s.set("whyl", whyl);
            s.set_forms("amt", money(rng, 4, 900));
            s.set_forms("pct", pct(rng, 10, 90));
        }
        F_UPGRADE | F_OUTAGE => {
            main = pick_coin_main(rng, coin_hint, CHAIN, taken);
            coin = Some(main);
            coin_slots(&mut s, main);
            s.set(
                "blk",
                thousands(rng.range(1_000, 90_000) * 1_000 + rng.range(0, 999)),
            );
            s.set("hrs", rng.range(2, 19).to_string());
            s.set_forms("pct", pct(rng, 10, 120));
            if family == F_UPGRADE {
                s.set("upg", *rng.pick(UPGRADE_NAMES));
                let pow = COINS[main].flags & POW != 0;
                // Fee, block-size and privacy changes make sense on proof-of-work chains too.
                let (feat, featl) = if pow {
                    FEATURES[*rng.pick(&[0, 3, 6])]
                } else {
                    *rng.pick(FEATURES)
                };
                s.set("feat", feat);
                s.set("featl", featl);
                s.set("valpct", format!("{}%", rng.range(70, 98)));
            } else {
                let (cause, causel) = *rng.pick(OUTAGE_CAUSES);
                s.set("cause", cause);
                s.set("causel", causel);
            }
        }
        F_LIQUIDATIONS => {
            main = pick_coin_main(rng, coin_hint, MAJOR, taken);
            coin = Some(main);
            coin_slots(&mut s, main);
            let down = rng.chance(0.65);
            let move_tenths = rng.range(40, 180);
            let factor = 1.0 + if down { -1.0 } else { 1.0 } * move_tenths as f64 / 1000.0;
            s.set("price", fmt_price(COINS[main].price * factor));
            s.set_forms("pct", pct_forms(move_tenths));
            let (moves, moved): (&[&str], &[&str]) = if down {
                (
                    &["drops", "tumbles", "slides", "plunges"],
                    &["dropped", "tumbled", "slid", "fell"],
                )
            } else {
                (
                    &["jumps", "surges", "spikes", "rallies"],
                    &["jumped", "surged", "spiked", "rallied"],
                )
            };
            s.set_forms(
                "move",
                moves.iter().map(std::string::ToString::to_string).collect(),
            );
            s.set_forms(
                "moved",
                moved.iter().map(std::string::ToString::to_string).collect(),
            );
            s.set("side", if down { "long" } else { "short" });
            s.set("sides", if down { "longs" } else { "shorts" });
            s.set("rel", if down { "below" } else { "above" });
            s.set_forms("amt", money(rng, 150, 2400));
            s.set_forms("big", money(rng, 5, 90));
            s.set("bigex", *rng.pick(EXCHANGES));
            s.set("ntr", thousands(rng.range(40, 400) * 1000));
            s.set("hrs", *rng.pick(&["4", "12", "24"]));
        }
        F_FUNDING => {
            main = pick_main(rng, STARTUPS.len(), taken);
            let c = pick_coin(rng, coin_hint, CHAIN);
            coin = Some(c);
            coin_slots(&mut s, c);
            s.set("startup", STARTUPS[main]);
            let (round, lo, hi) = *rng.pick(&[
                ("seed", 2, 15),
                ("Series A", 8, 40),
                ("Series B", 25, 120),
                ("strategic", 5, 60),
            ]);
            s.set("round", round);
            let raised = money_tenths(rng, lo, hi);
            s.set_forms("amt", money_forms(raised));
            // Post-money valuation of 5-15x the round, in whole millions.
            let val = raised * rng.range(5, 15) / 10;
            s.set_forms("val", money_forms(val.max(1) * 10));
            let v1 = rng.below(VCS.len());
            let v2 = rng.below_avoiding(VCS.len(), Some(v1));
            s.set("vc", VCS[v1]);
            s.set("vc2", VCS[v2]);
            let (product, productl) = *rng.pick(PRODUCTS);
            s.set("product", product);
            s.set("productl", productl);
            s.set("hq", *rng.pick(HQ_CITIES));
            s.set("founded", rng.range(2018, 2025).to_string());
            s.set("staff", (rng.range(2, 30) * 5).to_string());
        }
        F_DEPEG => {
            main = pick_main(rng, STABLECOINS.len(), taken);
            let (stable, issuer) = STABLECOINS[main];
            s.set("stable", stable);
            s.set("issuer", issuer);
            let low_cents = rng.range(78, 98);
            s.set("low", format!("$0.{low_cents}"));
            s.set_forms("pct", pct_forms((100 - low_cents) * 10));
            s.set("rec", format!("$0.{}", rng.range(low_cents + 1, 99)));
            let (cause, causel) = *rng.pick(DEPEG_CAUSES);
            s.set("cause", cause);
            s.set("causel", causel);
            s.set("dexv", *rng.pick(DEX_VENUES));
            s.set_forms("amt", money(rng, 20, 1500));
            s.set("hrs", rng.range(6, 48).to_string());
        }
        F_RESIGN | F_ARREST => {
            main = pick_main(rng, PEOPLE.len(), taken);
            let ex = rng.below(EXCHANGES.len());
            s.set("ex", EXCHANGES[ex]);
            s.set("person", PEOPLE[main]);
            let role = *rng.pick(ROLES);
            s.set_forms(
                "role",
                role.iter().map(std::string::ToString::to_string).collect(),
            );
            s.set("succ", PEOPLE[rng.below_avoiding(PEOPLE.len(), Some(main))]);
            s.set(
                "rsn",
                *rng.pick(&[
                    "a regulatory probe",
                    "a restructuring",
                    "falling trading volumes",
                    "a dispute with the board",
                    "a compliance review",
                ]),
            );
            s.set("years", rng.range(2, 9).to_string());
            let (city, auth) = *rng.pick(CITIES);
            s.set("city", city);
            s.set("auth", auth);
            s.set("charge", *rng.pick(CHARGES));
            s.set("yrs", rng.range(5, 25).to_string());
            s.set_forms("pct", pct(rng, 30, 200));
        }
        F_RATES => {
            main = pick_main(rng, CENTRAL_BANKS.len(), taken);
            let (cb, cbl, base) = CENTRAL_BANKS[main];
            s.set("cb", cb);
            s.set("cbl", cbl);
            let kind = rng.below(4);
            let (dec, decp, delta): (&[&str], &[&str], f64) = match kind {
                0 => (
                    &["holds rates steady", "keeps rates unchanged"],
                    &["held rates steady", "left rates unchanged"],
                    0.0,
                ),
                1 => (
                    &[
                        "cuts rates by 25 basis points",
                        "cuts rates a quarter point",
                    ],
                    &[
                        "cut rates by 25 basis points",
                        "lowered rates by a quarter point",
                    ],
                    -0.25,
                ),
                2 => (
                    &["cuts rates by 50 basis points", "delivers a half-point cut"],
                    &[
                        "cut rates by 50 basis points",
                        "lowered rates by half a point",
                    ],
                    -0.5,
                ),
                _ => (
                    &[
                        "hikes rates by 25 basis points",
                        "raises rates a quarter point",
                    ],
                    &[
                        "raised rates by 25 basis points",
                        "hiked rates by a quarter point",
                    ],
                    0.25,
                ),
            };
            s.set_forms(
                "dec",
                dec.iter().map(std::string::ToString::to_string).collect(),
            );
            s.set_forms(
                "decp",
                decp.iter().map(std::string::ToString::to_string).collect(),
            );
            s.set("rate", format!("{:.2}%", (base + delta).max(0.0)));
            let c = pick_coin(rng, Some(0), MAJOR);
            coin = Some(c);
            coin_slots(&mut s, c);
            let up = if kind == 3 {
                rng.chance(0.25)
            } else {
                rng.chance(0.6)
            };
            macro_move_slots(&mut s, rng, up);
            s.set("odds", format!("{}%", rng.range(4, 18) * 5));
        }
        F_CPI => {
            main = pick_main(rng, CPI_REGIONS.len(), taken);
            let (reg, regl, base) = CPI_REGIONS[main];
            s.set("reg", reg);
            s.set("regl", regl);
            let exp = (base * 10.0).round() as i64 + rng.range(0, 6) as i64 - 3;
            let surprise = rng.range(1, 3) as i64;
            let hot = rng.chance(0.5);
            let cpi = if hot { exp + surprise } else { exp - surprise };
            let tenths = |v: i64| format!("{}.{}%", v.max(0) / 10, v.max(0) % 10);
            s.set("cpi", tenths(cpi));
            s.set("exp", tenths(exp));
            s.set("core", tenths(cpi + rng.range(0, 5) as i64 - 1));
            s.set_forms(
                "hotcold",
                if hot {
                    vec!["hotter".to_string(), "higher".to_string()]
                } else {
                    vec!["cooler".to_string(), "softer".to_string()]
                },
            );
            let (_, m, _) = civil_from_days(event_epoch.div_euclid(86_400));
            s.set("month", month_name(if m == 1 { 12 } else { m - 1 }));
            let c = pick_coin(rng, Some(0), MAJOR);
            coin = Some(c);
            coin_slots(&mut s, c);
            macro_move_slots(&mut s, rng, !hot);
        }
        F_PARTNERSHIP => {
            main = pick_main(rng, COMPANIES, taken);
            s.set("firm", company(main));
            s.set("partner", *rng.pick(PARTNERS));
            let (purpose, purposel) = *rng.pick(PURPOSES);
            s.set("purpose", purpose);
            s.set("purposel", purposel);
            s.set("region", *rng.pick(REGIONS));
            let c = pick_coin(rng, coin_hint, CHAIN);
            coin = Some(c);
            coin_slots(&mut s, c);
            s.set_forms("pct", pct(rng, 20, 160));
        }
        F_AIRDROP => {
            main = pick_main(rng, PROTOCOLS.len(), taken);
            let (proto, ptkr) = PROTOCOLS[main];
            s.set("proto", proto);
            s.set("ptkr", ptkr);
            let c = pick_coin(rng, coin_hint, CHAIN);
            coin = Some(c);
            coin_slots(&mut s, c);
            s.set("pctsup", format!("{}%", rng.range(3, 15)));
            s.set("nwal", thousands(rng.range(20, 900) * 1000));
            s.set_forms("amt", money(rng, 30, 900));
        }
        _ => {
            // F_SETTLEMENT (the last family)
            main = pick_main(rng, COMPANIES, taken);
            s.set("firm", company(main));
            let (pl, pll, public) = *rng.pick(PLAINTIFFS);
            s.set("pl", pl);
            s.set("pll", pll);
            // Public plaintiffs bring securities/consumer claims in U.S. courts.
            let allegations = if public {
                &ALLEGATIONS[..3]
            } else {
                ALLEGATIONS
            };
            let (alleg, allegl) = *rng.pick(allegations);
            s.set("alleg", alleg);
            s.set("allegl", allegl);
            let courts = if public { &COURTS[..2] } else { COURTS };
            s.set("court", *rng.pick(courts));
            s.set_forms("amt", money(rng, 3, 500));
            s.set("filed", rng.range(2021, 2025).to_string());
            let c = pick_coin(rng, coin_hint, 0);
            coin = Some(c);
            coin_slots(&mut s, c);
        }
    }
    (main, coin, s)
}

/// Price-reaction slots shared by the macro families (bitcoin moves after the data).
fn macro_move_slots(s: &mut Slots, rng: &mut Rng, up: bool) {
    let tenths = rng.range(8, 55);
    let factor = 1.0 + if up { 1.0 } else { -1.0 } * tenths as f64 / 1000.0;
    s.set("price", fmt_price(COINS[0].price * factor));
    s.set_forms("pct", pct_forms(tenths));
    let (moves, moved): (&[&str], &[&str]) = if up {
        (
            &["jumps", "rises", "climbs", "rallies"],
            &["jumped", "rose", "climbed", "rallied"],
        )
    } else {
        (
            &["dips", "slides", "falls", "drops"],
            &["dipped", "slid", "fell", "dropped"],
        )
    };
    s.set_forms(
        "move",
        moves.iter().map(std::string::ToString::to_string).collect(),
    );
    s.set_forms(
        "moved",
        moved.iter().map(std::string::ToString::to_string).collect(),
    );
}

/// Per-article market values for the filler sentences, a smooth function of time so that
/// articles published close together quote similar prices.
fn market_slots(epoch: i64) -> Slots {
    let t = epoch as f64;
    let wave = (t / 21_600.0).sin() * 0.6 + (t / 97_000.0).sin() * 0.4;
    let btc = 96_000.0 * (1.0 + 0.03 * wave);
    let eth = 3_400.0 * (1.0 + 0.045 * wave);
    let sol = 185.0 * (1.0 + 0.06 * wave);
    let mut s = Slots(Vec::with_capacity(8));
    s.set(
        "btc",
        format!("${}", thousands(((btc / 50.0).round() * 50.0) as u64)),
    );
    s.set(
        "eth",
        format!("${}", thousands(((eth / 5.0).round() * 5.0) as u64)),
    );
    s.set("sol", format!("${sol:.2}"));
    s.set("mcap", format!("${:.2}", 3.3 * (1.0 + 0.035 * wave)));
    s.set("dom", format!("{:.1}%", 58.0 + 1.5 * wave));
    s.set("fng", format!("{:.0}", 55.0 + 15.0 * wave));
    s.set("tvl", format!("${:.0}", 118.0 + 6.0 * wave));
    s.set("oi", format!("${:.0}", 92.0 + 8.0 * wave));
    s
}

// ---------------------------------------------------------------------------------------
// Generator
// ---------------------------------------------------------------------------------------

/// One planned article: publication offset, story index, position within the story.
struct Planned {
    t: i64,
    story: usize,
    k: usize,
}

struct Generator<'a> {
    cfg: &'a SynthConfig,
    rng: Rng,
    span: i64,
    /// Market filler values of the last 10-minute bucket (articles come in time order).
    market: (Option<i64>, Resolved),
    templates: Templates,
}

/// Granularity of the market values quoted by filler sentences.
const MARKET_BUCKET_SECS: i64 = 600;

impl<'a> Generator<'a> {
    fn new(cfg: &'a SynthConfig) -> Self {
        let span = if cfg.span_hours.is_finite() && cfg.span_hours > 0.0 {
            (cfg.span_hours * 3600.0).min(1e15) as i64
        } else {
            0
        };
        Self {
            cfg,
            rng: Rng::new(cfg.seed),
            span,
            market: (None, Resolved::default()),
            templates: Templates::new(),
        }
    }

    /// Story size: mostly uniform in `2..=2*mean-1`, with extra singletons.
    fn story_size(&mut self) -> usize {
        let mean = self.cfg.story_size.max(1);
        if mean == 1 || self.rng.chance(0.12) {
            1
        } else {
            self.rng.range(2, (mean.saturating_mul(2) - 1) as u64) as usize
        }
    }

    fn plan(&mut self) -> (Vec<Story>, Vec<Planned>) {
        let n = self.cfg.articles;
        let mut stories: Vec<Story> = Vec::with_capacity(n / self.cfg.story_size.max(1) + 1);
        let mut plan = Vec::with_capacity(n);
        let mut raw_slots: Vec<Option<Slots>> = Vec::with_capacity(stories.capacity());
        // Latest start time of each (family, main entity), to keep same-day stories of one
        // family about different entities.
        let mut last_use: HashMap<(usize, usize), i64> = HashMap::new();
        while plan.len() < n {
            let size = self.story_size().min(n - plan.len());
            let burst = if size == 1 {
                0
            } else {
                (self.rng.range(3_600, 18_000) as i64).min(self.span)
            };
            let latest_start = self.span - burst;
            let rng = &mut self.rng;
            // Confusables: reuse a recent story's family (different main entity, same
            // day) or a recent story's coin.
            let roll = rng.unit();
            let recent = stories.len().min(8);
            let (family, avoid_main, coin_hint, t0) = if recent > 0 && roll < 0.35 {
                let other = &stories[stories.len() - 1 - rng.below(recent)];
                let jitter = rng.range(0, 8 * 3600) as i64 - 4 * 3600;
                let t0 = (other.t0 + jitter).clamp(0, latest_start);
                if roll < 0.2 {
                    (other.family, Some(other.main), None, t0)
                } else {
                    (rng.below(FAMILIES.len()), None, other.coin, t0)
                }
            } else {
                let t0 = rng.range(0, latest_start.max(0) as u64) as i64;
                (rng.below(FAMILIES.len()), None, None, t0)
            };
            let event_epoch = self.cfg.start_epoch.saturating_add(t0);
            let taken = |m: usize| {
                avoid_main == Some(m)
                    || last_use
                        .get(&(family, m))
                        .is_some_and(|&t| (t - t0).abs() < 12 * 3600)
            };
            let (main, coin, slots) = build_slots(rng, family, &taken, coin_hint, event_epoch);
            last_use.insert((family, main), t0);
            let fam = &FAMILIES[family];
            let story = Story {
                family,
                main,
                coin,
                t0,
                slots: Resolved::default(),
                title_base: rng.below(fam.titles.len()),
                lead_base: rng.below(fam.leads.len()),
                source_base: rng.below(SOURCES.len()),
                source_step: *rng.pick(&[1, 3, 7, 9, 11, 13]),
            };
            let idx = stories.len();
            for k in 0..size {
                let off = if k == 0 {
                    0
                } else {
                    let u = rng.unit();
                    (burst as f64 * u * u) as i64
                };
                plan.push(Planned {
                    t: (t0 + off).clamp(0, self.span),
                    story: idx,
                    k,
                });
            }
            stories.push(story);
            raw_slots.push(Some(slots));
        }
        // Stable: equal timestamps keep generation order, so the output is deterministic.
        plan.sort_by_key(|p| p.t);
        // Pack the slots in order of first appearance: articles are written in time order,
        // so the stories being written at any moment sit close together in memory.
        for p in &plan {
            if let Some(slots) = raw_slots[p.story].take() {
                stories[p.story].slots = self.templates.resolve(slots);
            }
        }
        (stories, plan)
    }

    /// Generates every article, in publication order, into `sink`.
    fn run(mut self, mut sink: impl FnMut(SynthArticle)) {
        let (stories, plan) = self.plan();
        let id_width = digits(plan.len().saturating_sub(1)).max(6);
        // The seed is part of every id, so dumps of two seeds never share an id.
        let seed_prefix = format!("g{}-a", self.cfg.seed);
        let label_width = digits(stories.len().saturating_sub(1)).max(4);
        // Labels are numbered in order of first appearance.
        let mut label_of = vec![usize::MAX; stories.len()];
        let mut next_label = 0;
        for p in &plan {
            if label_of[p.story] == usize::MAX {
                label_of[p.story] = next_label;
                next_label += 1;
            }
        }
        // Body hashes per story, so that no two articles of a story are verbatim copies.
        let mut seen: Vec<Vec<u64>> = (0..stories.len()).map(|_| Vec::new()).collect();
        for (i, p) in plan.iter().enumerate() {
            let story = &stories[p.story];
            let epoch = self.cfg.start_epoch.saturating_add(p.t);
            let mut article = self.write_article(story, p.k, epoch);
            let mut hash = xxh3_64(article.1.as_bytes());
            for _ in 0..16 {
                if !seen[p.story].contains(&hash) {
                    break;
                }
                article = self.write_article(story, p.k, epoch);
                hash = xxh3_64(article.1.as_bytes());
            }
            seen[p.story].push(hash);
            let (title, body, source) = article;
            let section = FAMILIES[story.family].section;
            let mut url = String::with_capacity(source.len() + section.len() + 80);
            url.push_str("https://");
            url.push_str(source);
            url.push('/');
            url.push_str(section);
            url.push('/');
            slugify_into(&mut url, &title);
            url.push('-');
            push_padded(&mut url, 100_000 + i as u64, 0);
            let mut id = String::with_capacity(id_width + 24);
            id.push_str(&seed_prefix);
            push_padded(&mut id, i as u64, id_width);
            let mut label = String::with_capacity(label_width + 6);
            label.push_str("story-");
            push_padded(&mut label, label_of[p.story] as u64, label_width);
            sink(SynthArticle {
                id,
                title,
                body,
                url,
                source: source.to_string(),
                published_at: rfc3339(epoch),
                label,
            });
        }
    }

    /// Writes the title and body of the `k`-th article of `story`.
    fn write_article(
        &mut self,
        story: &Story,
        k: usize,
        epoch: i64,
    ) -> (String, String, &'static str) {
        let fam = &FAMILIES[story.family];
        let bucket = epoch.div_euclid(MARKET_BUCKET_SECS);
        if self.market.0 != Some(bucket) {
            let slots = market_slots(bucket * MARKET_BUCKET_SECS);
            self.market = (Some(bucket), self.templates.resolve(slots));
        }
        let market = &self.market.1;
        let rng = &mut self.rng;
        let (source, title_case_style) =
            SOURCES[(story.source_base + k * story.source_step) % SOURCES.len()];

        // Headline: rotate through the variants, with an occasional random pick.
        let t_idx = if rng.chance(0.15) {
            rng.below(fam.titles.len())
        } else {
            (story.title_base + k) % fam.titles.len()
        };
        let mut title = String::with_capacity(96);
        let compiled = &self.templates.families[story.family];
        render(
            &mut title,
            &compiled.titles[t_idx],
            &story.slots,
            market,
            rng,
        );
        if title_case_style {
            title = title_case(&title);
        }

        // Body: lead, story details, market filler, optional boilerplate.
        let n = self.cfg.body_sentences.max(1);
        let rest = n - 1;
        let fillers_wanted = if rest >= 2 { (rest / 3).max(1) } else { 0 };
        let details_n = (rest - fillers_wanted).min(fam.details.len());
        let fillers_n = rest - details_n;

        let mut detail_idx: Vec<usize> = (0..fam.details.len()).collect();
        rng.shuffle(&mut detail_idx);
        detail_idx.truncate(details_n);

        // Sentence plan: lead first (sometimes after one filler), details and fillers mixed.
        #[derive(Clone, Copy)]
        enum Part {
            Lead,
            Detail(usize),
            Filler,
        }
        let mut parts: Vec<Part> = Vec::with_capacity(n);
        let mut tail: Vec<Part> = detail_idx.into_iter().map(Part::Detail).collect();
        for _ in 0..fillers_n {
            let pos = rng.range(tail.len().min(1) as u64, tail.len() as u64) as usize;
            tail.insert(pos, Part::Filler);
        }
        if fillers_n > 0 && rng.chance(0.12) {
            if let Some(pos) = tail.iter().position(|p| matches!(p, Part::Filler)) {
                tail.remove(pos);
            }
            parts.push(Part::Filler);
        }
        parts.push(Part::Lead);
        parts.extend(tail);

        let lead_idx = (story.lead_base + k * 3) % fam.leads.len();
        let mut body = String::with_capacity(160 * n + 64);
        let mut used_fillers = [usize::MAX; 8];
        for (j, part) in parts.iter().enumerate() {
            if j > 0 {
                body.push(' ');
            }
            let tpl = match *part {
                Part::Lead => &compiled.leads[lead_idx],
                Part::Detail(d) => &compiled.details[d],
                Part::Filler => {
                    // Avoid repeating a filler inside one body.
                    let mut f = rng.below(FILLERS.len());
                    for _ in 0..4 {
                        if !used_fillers.contains(&f) {
                            break;
                        }
                        f = rng.below(FILLERS.len());
                    }
                    used_fillers[j % used_fillers.len()] = f;
                    &self.templates.fillers[f]
                }
            };
            render(&mut body, tpl, &story.slots, market, rng);
        }
        if rng.chance(0.4) {
            let src_idx = (story.source_base + k * story.source_step) % SOURCES.len();
            let footer = if rng.chance(0.8) {
                BOILERPLATE[src_idx % BOILERPLATE.len()]
            } else {
                *rng.pick(BOILERPLATE)
            };
            body.push(' ');
            body.push_str(footer);
        }
        (title, body, source)
    }
}

fn digits(mut n: usize) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashSet};

    fn cfg(articles: usize, story_size: usize, seed: u64) -> SynthConfig {
        SynthConfig {
            articles,
            story_size,
            seed,
            ..SynthConfig::default()
        }
    }

    #[test]
    fn deterministic_for_same_config() {
        let c = cfg(500, 6, 7);
        assert_eq!(generate_jsonl(&c), generate_jsonl(&c));
        assert_eq!(
            generate_jsonl(&SynthConfig::default()),
            generate_jsonl(&SynthConfig::default())
        );
    }

    #[test]
    fn different_seed_gives_different_output() {
        assert_ne!(
            generate_jsonl(&cfg(200, 5, 1)),
            generate_jsonl(&cfg(200, 5, 2))
        );
    }

    #[test]
    fn counts_ids_urls_labels_and_times() {
        for &(n, size, seed) in &[(1000, 10, 3), (2000, 5, 11), (997, 3, 99), (300, 1, 5)] {
            let c = cfg(n, size, seed);
            let arts = generate(&c);
            assert_eq!(arts.len(), n);
            let ids: HashSet<_> = arts.iter().map(|a| a.id.as_str()).collect();
            let urls: HashSet<_> = arts.iter().map(|a| a.url.as_str()).collect();
            assert_eq!(ids.len(), n);
            assert_eq!(urls.len(), n);
            // Ids sort in emission order.
            assert!(arts.windows(2).all(|w| w[0].id < w[1].id));
            let labels: HashSet<_> = arts.iter().map(|a| a.label.as_str()).collect();
            let expected = n as f64 / size as f64;
            let got = labels.len() as f64;
            assert!(
                got >= expected * 0.75 && got <= expected * 1.35,
                "n={n} size={size}: {got} stories, expected ~{expected}"
            );
            // RFC 3339 strings of equal width compare like times.
            assert!(
                arts.windows(2)
                    .all(|w| w[0].published_at <= w[1].published_at)
            );
            let first = rfc3339(c.start_epoch);
            let last = rfc3339(c.start_epoch + (c.span_hours * 3600.0) as i64);
            for a in &arts {
                assert!(
                    a.published_at >= first && a.published_at <= last,
                    "{}",
                    a.published_at
                );
                assert_eq!(a.published_at.len(), 20);
            }
        }
    }

    #[test]
    fn singletons_exist_and_story_sizes_in_range() {
        let c = cfg(3000, 6, 21);
        let mut sizes: BTreeMap<String, usize> = BTreeMap::new();
        for a in generate(&c) {
            *sizes.entry(a.label).or_default() += 1;
        }
        assert!(sizes.values().any(|&s| s == 1));
        assert!(sizes.values().all(|&s| (1..=11).contains(&s)));
        assert!(sizes.values().filter(|&&s| s >= 8).count() > 10);
    }

    #[test]
    fn stories_are_bursts() {
        let c = cfg(2000, 8, 4);
        let mut bounds: BTreeMap<String, (String, String)> = BTreeMap::new();
        for a in generate(&c) {
            let e = bounds
                .entry(a.label)
                .or_insert((a.published_at.clone(), a.published_at.clone()));
            e.1 = a.published_at;
        }
        for (label, (lo, hi)) in bounds {
            let parse = |s: &str| -> i64 {
                let h: i64 = s[11..13].parse().unwrap_or(0);
                let m: i64 = s[14..16].parse().unwrap_or(0);
                let d: i64 = s[8..10].parse().unwrap_or(0);
                d * 86_400 + h * 3600 + m * 60
            };
            assert!(
                parse(&hi) - parse(&lo) <= 5 * 3600 + 60,
                "{label} spans {lo}..{hi}"
            );
        }
    }

    #[test]
    fn jsonl_lines_parse_with_seven_fields() {
        let c = cfg(400, 5, 8);
        let text = generate_jsonl(&c);
        assert!(text.ends_with('\n'));
        let mut count = 0;
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let obj = v.as_object().unwrap();
            assert_eq!(obj.len(), 7);
            for key in [
                "id",
                "title",
                "body",
                "url",
                "source",
                "published_at",
                "label",
            ] {
                assert!(
                    obj.get(key)
                        .and_then(|x| x.as_str())
                        .is_some_and(|s| !s.is_empty())
                );
            }
            count += 1;
        }
        assert_eq!(count, 400);
        assert_eq!(generate_jsonl(&cfg(0, 5, 1)), "");
    }

    #[test]
    fn paraphrased_within_story() {
        let arts = generate(&cfg(1500, 8, 12));
        let mut by_story: BTreeMap<&str, Vec<&SynthArticle>> = BTreeMap::new();
        for a in &arts {
            by_story.entry(a.label.as_str()).or_default().push(a);
        }
        let mut multi = 0;
        for group in by_story.values().filter(|g| g.len() >= 2) {
            multi += 1;
            let titles: HashSet<_> = group.iter().map(|a| a.title.as_str()).collect();
            assert!(
                titles.len() > 1,
                "all titles identical: {:?}",
                group[0].title
            );
            let bodies: HashSet<_> = group.iter().map(|a| a.body.as_str()).collect();
            assert_eq!(bodies.len(), group.len());
            let sources: HashSet<_> = group.iter().map(|a| a.source.as_str()).collect();
            assert!(sources.len() > 1);
        }
        assert!(multi > 50);
    }

    #[test]
    fn confusable_stories_exist() {
        // Same family, same day, different main entity: e.g. two different exchange hacks.
        let c = cfg(3000, 5, 77);
        let mut g = Generator::new(&c);
        let (stories, _) = g.plan();
        let mut twins = 0;
        let mut shared_coin = 0;
        for (i, a) in stories.iter().enumerate() {
            for b in &stories[i + 1..(i + 9).min(stories.len())] {
                if a.family == b.family && a.main != b.main && (a.t0 - b.t0).abs() < 6 * 3600 {
                    twins += 1;
                }
                if a.family != b.family && a.coin.is_some() && a.coin == b.coin {
                    shared_coin += 1;
                }
            }
        }
        assert!(twins > 30, "{twins}");
        assert!(shared_coin > 30, "{shared_coin}");
        let hacks = stories.iter().filter(|s| s.family == F_HACK).count();
        assert!(hacks > 10);
    }

    #[test]
    fn all_templates_render_cleanly() {
        assert!(FAMILIES.len() >= 12);
        let templates = Templates::new();
        let mut rng = Rng::new(5);
        for (f, fam) in FAMILIES.iter().enumerate() {
            assert!(fam.titles.len() >= 4 && fam.leads.len() >= 4, "family {f}");
            assert!(fam.details.len() >= 4, "family {f}");
            let compiled = &templates.families[f];
            for seed in 0..40 {
                let mut r = Rng::new(seed);
                let (_, _, slots) = build_slots(&mut r, f, &|_| false, None, 1_795_132_800);
                let slots = templates.resolve(slots);
                let market = templates.resolve(market_slots(1_795_132_800 + seed as i64 * 977));
                let all = compiled
                    .titles
                    .iter()
                    .chain(&compiled.leads)
                    .chain(&compiled.details);
                let sources = fam.titles.iter().chain(fam.leads).chain(fam.details);
                for (tpl, src) in all.chain(&templates.fillers).zip(sources.chain(FILLERS)) {
                    let mut out = String::new();
                    assert!(
                        render(&mut out, tpl, &slots, &market, &mut rng),
                        "{f}: {src}"
                    );
                    assert!(!out.contains(['{', '}']) && !out.contains("  "), "{out}");
                    assert!(out.starts_with(|c: char| !c.is_ascii_lowercase()), "{out}");
                }
            }
        }
    }

    #[test]
    fn text_is_clean_and_bodies_have_realistic_length() {
        let arts = generate(&SynthConfig {
            articles: 3000,
            ..SynthConfig::default()
        });
        let mut total = 0;
        for a in &arts {
            for s in [&a.title, &a.body, &a.url, &a.source, &a.label, &a.id] {
                assert!(s.is_ascii() && !s.chars().any(char::is_control), "{s}");
                assert!(!s.contains("  ") && s.trim() == s.as_str(), "{s:?}");
            }
            assert!(
                (250..=800).contains(&a.body.len()),
                "{} chars: {}",
                a.body.len(),
                a.body
            );
            assert!(a.title.len() >= 20 && a.title.len() <= 140, "{}", a.title);
            assert!(a.url.starts_with(&format!("https://{}/", a.source)));
            total += a.body.len();
        }
        let mean = total / arts.len();
        assert!((300..=700).contains(&mean), "mean body length {mean}");
    }

    #[test]
    fn formatting_helpers() {
        assert_eq!(rfc3339(1_795_132_800), "2026-11-20T00:00:00Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400 + 3661), "2000-02-29T01:01:01Z");
        assert_eq!(weekday(1_795_132_800), "Friday");
        assert_eq!(month_day(1_795_132_800), "November 20");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(
            money_forms(487),
            ["$48.7 million", "$48.7M", "nearly $49 million"]
        );
        assert_eq!(money_forms(12_000), ["$1.2 billion", "$1.2B"]);
        assert_eq!(fmt_price(96_123.0), "$96,120");
        assert_eq!(fmt_price(0.000_014), "$0.000014");
        let mut slug = String::new();
        slugify_into(&mut slug, "Binance Hacked, $48.7M in SOL Drained");
        assert_eq!(slug.as_str(), "binance-hacked-48-7m-in-sol-drained");
        assert_eq!(
            title_case("bitcoin jumps as the Fed cuts"),
            "Bitcoin Jumps as the Fed Cuts"
        );
    }

    #[test]
    fn degenerate_configs() {
        let one = generate(&SynthConfig {
            articles: 1,
            span_hours: 0.0,
            body_sentences: 0,
            ..SynthConfig::default()
        });
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].published_at, "2026-11-20T00:00:00Z");
        let nan = generate(&SynthConfig {
            span_hours: f64::NAN,
            story_size: 0,
            ..SynthConfig::default()
        });
        assert_eq!(nan.len(), 100);
        let long = generate(&SynthConfig {
            articles: 50,
            body_sentences: 12,
            ..SynthConfig::default()
        });
        assert!(long.iter().all(|a| a.body.len() > 700));
        let huge = generate(&SynthConfig {
            articles: 30,
            story_size: usize::MAX,
            start_epoch: 4_102_444_800,
            ..SynthConfig::default()
        });
        assert_eq!(huge.len(), 30);
        assert!(huge[0].published_at.starts_with("2100-01-01T"));
    }

    #[test]
    fn generates_100k_quickly() {
        // Debug builds are much slower; the full-size timing is meant for `--release`.
        let n = if cfg!(debug_assertions) {
            10_000
        } else {
            100_000
        };
        let c = SynthConfig {
            articles: n,
            story_size: 10,
            ..SynthConfig::default()
        };
        let start = std::time::Instant::now();
        let arts = generate(&c);
        let gen_time = start.elapsed();
        let start = std::time::Instant::now();
        let text = generate_jsonl(&c);
        let jsonl_time = start.elapsed();
        assert_eq!(arts.len(), n);
        assert_eq!(text.lines().count(), n);
        eprintln!(
            "generate {n}: {gen_time:?}; generate_jsonl {n}: {jsonl_time:?} ({} bytes)",
            text.len()
        );
    }
}
