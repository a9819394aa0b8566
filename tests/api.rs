//! Remote embeddings and LLM labels through a loopback server speaking the OpenAI API
//! (tests/common/openai.rs), with faults injected: retries, Retry-After, hangs, garbage,
//! wrong dimensions, out-of-order results, fallback models, the circuit breaker and its bus
//! event, deferral of articles no model could embed, the Redis cache (a second run sends no
//! request), and the API key never showing in any output.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::openai::{FakeApi, Fault};
use common::redis::RedisServer;
use common::{assignments, json, jsonl, root, run_in};

const KEY: &str = "sk-or-v1-test-SECRET-4242";
const DIM: usize = 256;

/// A pipeline file using the fake API for embeddings (model `emb-a`), with `extra` TOML
/// merged over it (key by key, so `extra` may set any `[api]` or `[embed.openai]` key).
fn pipeline(dir: &Path, api: &FakeApi, extra: &str) -> PathBuf {
    let p = dir.join(format!("remote-{}.toml", xx(extra)));
    let base = format!(
        "[embed]\nprovider = \"openai\"\ndim = {DIM}\n\
         [embed.openai]\nmodel = \"emb-a\"\nbatch_size = 16\nsend_dimensions = false\n\
         [api]\nbase_url = \"{}\"\nconcurrency = 4\ntimeout_secs = 2.0\nattempts = 3\n\
         backoff_ms = 10\nmax_backoff_ms = 2000\nbreaker_failures = 100\n\
         breaker_cooldown_secs = 0.2\n[cluster]\nthreshold = 0.35\n",
        api.base()
    );
    let mut doc: toml::Table = base.parse().unwrap();
    let over: toml::Table = extra.parse().unwrap();
    merge(&mut doc, over);
    std::fs::write(&p, toml::to_string(&doc).unwrap()).unwrap();
    p
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

fn xx(s: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

fn fixture() -> String {
    root("fixtures/news-100.jsonl").display().to_string()
}

/// Runs `perps-news run` with the key set, checks the key appears nowhere in the output,
/// and returns (summary, stderr).
fn run_remote(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> (serde_json::Value, String) {
    let mut all_envs = vec![("OPENROUTER_API_KEY", KEY), ("RUST_LOG", "debug")];
    all_envs.extend_from_slice(envs);
    let mut a = vec!["run", "--json"];
    a.extend_from_slice(args);
    let out = run_in(dir, &a, None, &all_envs);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !stdout.contains(KEY) && !stderr.contains(KEY) && !stderr.contains("SECRET"),
        "the API key leaked:\n{stdout}\n{stderr}"
    );
    (json(&out), stderr)
}

#[test]
fn remote_embeddings_cluster_send_the_key_and_a_second_run_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(None, &[]);
    let url = redis.url(0);
    let api = FakeApi::start(DIM);
    let p = pipeline(dir.path(), &api, "");
    let p = p.to_str().unwrap();
    let f = fixture();
    let (v, _) = run_remote(
        dir.path(),
        &[
            "--pipeline",
            p,
            "--redis-url",
            &url,
            "--state",
            "s1.json",
            &f,
        ],
        &[],
    );
    assert_eq!(v["totalProcessed"], 100, "{v}");
    let sent = api.requests();
    assert!(!sent.is_empty());
    assert_eq!(v["api"]["requests"], sent.len() as u64, "{v}");
    assert!(v["api"]["bytesSent"].as_u64().unwrap() > 10_000, "{v}");
    assert!(
        sent.iter().all(|r| r.inputs <= 16 && r.model == "emb-a"),
        "batched by embed.openai.batch_size"
    );
    let texts: usize = sent.iter().map(|r| r.inputs).sum();
    assert_eq!(texts, 100, "each distinct text sent once");
    assert!(
        sent.iter()
            .all(|r| r.auth.as_deref() == Some(&format!("Bearer {KEY}")[..])),
        "the key goes in the Authorization header"
    );
    assert!(sent.iter().all(|r| r.in_flight <= 4), "concurrency bound");

    // A fresh state clusters everything again, from the Redis cache: no request.
    let before = api.requests().len();
    let (again, _) = run_remote(
        dir.path(),
        &[
            "--pipeline",
            p,
            "--redis-url",
            &url,
            "--state",
            "s2.json",
            &f,
        ],
        &[],
    );
    assert_eq!(again["totalProcessed"], 100, "{again}");
    assert_eq!(api.requests().len(), before, "a warm cache sends nothing");
    assert_eq!(again["api"]["requests"], 0, "{again}");
    assert_eq!(again["redis"]["runCacheStats"]["hits"], 100, "{again}");
}

#[test]
fn duplicate_texts_are_sent_once() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start(DIM);
    let p = pipeline(dir.path(), &api, "");
    let dump = dir.path().join("dups.jsonl");
    let same =
        r#""title":"Bitcoin ETF sees record inflows","body":"Funds took in 1 billion dollars.""#;
    std::fs::write(
        &dump,
        format!("{{\"id\":\"a\",{same}}}\n{{\"id\":\"b\",{same}}}\n{{\"id\":\"c\",\"title\":\"Ether falls\"}}\n"),
    )
    .unwrap();
    let (v, _) = run_remote(
        dir.path(),
        &["--pipeline", p.to_str().unwrap(), dump.to_str().unwrap()],
        &[],
    );
    assert_eq!(v["accepted"], 3, "{v}");
    let texts: Vec<String> = api.requests().into_iter().flat_map(|r| r.texts).collect();
    assert_eq!(texts.len(), 2, "{texts:?}");
}

#[test]
fn retries_honour_retry_after_and_get_past_429_500_garbage_and_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start(DIM);
    // One request at a time, so the faults hit the first request's attempts in order.
    let p = pipeline(
        dir.path(),
        &api,
        "[api]\nconcurrency = 1\nattempts = 6\ntimeout_secs = 0.5\n",
    );
    // Sanity: the fault-free run's stories, to compare with.
    let clean = FakeApi::start(DIM);
    let pc = pipeline(dir.path(), &clean, "");
    let f = fixture();
    let (v0, _) = run_remote(
        dir.path(),
        &[
            "--pipeline",
            pc.to_str().unwrap(),
            "--assignments",
            "clean.jsonl",
            &f,
        ],
        &[],
    );
    assert_eq!(v0["totalProcessed"], 100);

    api.fail_next(
        "emb-a",
        &[
            Fault::Status(429, Some("0.3")),
            Fault::Status(500, None),
            Fault::Malformed,
            Fault::ErrorIn200(502),
            Fault::Hang(Duration::from_secs(2)),
        ],
    );
    let (v, stderr) = run_remote(
        dir.path(),
        &[
            "--pipeline",
            p.to_str().unwrap(),
            "--assignments",
            "faulty.jsonl",
            &f,
        ],
        &[],
    );
    assert_eq!(v["totalProcessed"], 100, "{v}\n{stderr}");
    assert_eq!(v["api"]["retries"], 5, "{v}");
    assert!(v.get("deferred").is_none(), "{v}");
    let sent = api.requests();
    let gap = sent[1].at - sent[0].at;
    assert!(
        gap >= Duration::from_millis(290),
        "Retry-After 0.3 s honoured, waited {gap:?}"
    );
    assert_eq!(
        assignments(&dir.path().join("faulty.jsonl")),
        assignments(&dir.path().join("clean.jsonl")),
        "faults that were retried change nothing"
    );
}

#[test]
fn out_of_order_results_land_on_the_right_articles() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture();
    let straight = FakeApi::start(DIM);
    let reversed = FakeApi::start(DIM);
    reversed.always("emb-a", Some(Fault::Reversed));
    for (api, out) in [(&straight, "a.jsonl"), (&reversed, "b.jsonl")] {
        let p = pipeline(dir.path(), api, "");
        let (v, _) = run_remote(
            dir.path(),
            &["--pipeline", p.to_str().unwrap(), "--assignments", out, &f],
            &[],
        );
        assert_eq!(v["totalProcessed"], 100);
    }
    let a = assignments(&dir.path().join("a.jsonl"));
    assert_eq!(a, assignments(&dir.path().join("b.jsonl")));
    let stories: std::collections::HashSet<&String> = a.iter().map(|(_, s)| s).collect();
    assert!(
        stories.len() > 5 && stories.len() < 80,
        "the fake vectors make real stories: {}",
        stories.len()
    );
}

#[test]
fn wrong_dimension_goes_to_the_fallback_model_without_retries() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start(DIM);
    api.always("emb-a", Some(Fault::WrongDim(32)));
    let p = pipeline(
        dir.path(),
        &api,
        "[embed.openai]\nfallback_model = \"emb-b\"\n",
    );
    let (v, stderr) = run_remote(
        dir.path(),
        &["--pipeline", p.to_str().unwrap(), &fixture()],
        &[],
    );
    assert_eq!(v["totalProcessed"], 100, "{v}");
    assert_eq!(v["api"]["fallbackItems"], 100, "{v}");
    assert_eq!(
        v["api"]["retries"], 0,
        "a wrong dimension is not retried: {v}"
    );
    let sent = api.requests();
    let primary = sent.iter().filter(|r| r.model == "emb-a").count();
    let fallback = sent.iter().filter(|r| r.model == "emb-b").count();
    assert_eq!(
        (primary, fallback),
        (7, 7),
        "100 texts in requests of 16, once each"
    );
    assert!(
        stderr.contains("32-dimensional"),
        "the reason names what came back: {stderr}"
    );
}

#[test]
fn articles_no_model_could_embed_are_kept_for_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start(DIM);
    api.always("emb-a", Some(Fault::Status(500, None)));
    let p = pipeline(dir.path(), &api, "[api]\nattempts = 2\n");
    let p = p.to_str().unwrap();
    let (v, stderr) = run_remote(
        dir.path(),
        &["--pipeline", p, "--state", "state.json", &fixture()],
        &[],
    );
    assert_eq!(v["totalProcessed"], 0, "{v}");
    assert_eq!(v["deferred"], 100, "{v}");
    assert!(
        stderr.contains("deferred") && stderr.contains("news-100.jsonl:1"),
        "each deferred article is named with its origin: {stderr}"
    );
    let file: serde_json::Value = common::state_header(&dir.path().join("state.json"));
    let state = &file["state"];
    assert_eq!(state["deferred"].as_array().map(Vec::len), Some(100));
    assert!(
        state["deferred"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("500")
    );

    // The provider is back: the next run (with nothing new) clusters the kept articles.
    api.always("emb-a", None);
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let (v, _) = run_remote(
        dir.path(),
        &[
            "--pipeline",
            p,
            "--state",
            "state.json",
            empty.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(v["totalProcessed"], 100, "{v}");
    assert!(v.get("deferred").is_none(), "{v}");
    let file: serde_json::Value = common::state_header(&dir.path().join("state.json"));
    assert!(
        file["state"].get("deferred").is_none(),
        "nothing left deferred"
    );
}

#[test]
fn breaker_opens_stops_calling_and_publishes_circuit_breaker_open() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(None, &[]);
    let url = redis.url(0);
    let api = FakeApi::start(DIM);
    api.always("emb-a", Some(Fault::Status(503, None)));
    let p = pipeline(
        dir.path(),
        &api,
        "[api]\nconcurrency = 1\nattempts = 1\nbreaker_failures = 2\nbreaker_cooldown_secs = 60\n",
    );
    let (v, _) = run_remote(
        dir.path(),
        &[
            "--pipeline",
            p.to_str().unwrap(),
            "--redis-url",
            &url,
            &fixture(),
        ],
        &[],
    );
    assert_eq!(v["deferred"], 100, "{v}");
    assert_eq!(
        api.count("embeddings"),
        2,
        "after two failed calls the breaker refuses the other five"
    );
    let mut c = redis.client(0);
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg("circuit:breaker:open")
        .arg("-")
        .arg("+")
        .query(&mut c)
        .unwrap();
    assert_eq!(entries.len(), 1, "one opening, one event");
    let payload: serde_json::Value = serde_json::from_str(&entries[0].1[0].1).unwrap();
    assert_eq!(payload["breakerName"], "embeddings:emb-a");
    assert!(
        payload["reason"].as_str().unwrap().contains("503"),
        "{payload}"
    );
    assert_eq!(payload.as_object().unwrap().len(), 2, "{payload}");
}

#[test]
fn breaker_closes_after_the_cooldown_probe_succeeds() {
    use perps_news::api::{Alerts, Context};
    use perps_news::embed::Doc;
    let api = FakeApi::start(DIM);
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        dir.path(),
        &api,
        "[api]\nconcurrency = 1\nattempts = 1\nbreaker_failures = 2\nbreaker_cooldown_secs = 0.3\n",
    );
    let cfg = perps_news::config::PipelineConfig::load(Some(&p)).unwrap();
    let opened = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let alerts = Alerts::default();
    let sink = opened.clone();
    alerts.connect(move |name, _| sink.lock().unwrap().push(name.to_string()));
    let ctx = Context {
        alerts,
        llm_cache: None,
    };
    let e = perps_news::embed::build(&cfg.embed, &cfg.api, &ctx).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let doc = [Doc {
        title: "Solana validators upgrade",
        body: "",
    }];
    let one = || e.embed_each(&doc, &pool).unwrap().remove(0);

    api.always("emb-a", Some(Fault::Status(500, None)));
    assert!(one().is_err());
    assert!(one().is_err());
    assert_eq!(*opened.lock().unwrap(), ["embeddings:emb-a"]);
    let refused = one().unwrap_err();
    assert!(refused.contains("circuit breaker open"), "{refused}");
    assert_eq!(api.count("embeddings"), 2, "an open breaker does not call");

    api.always("emb-a", None);
    std::thread::sleep(Duration::from_millis(350));
    let v = one().expect("the probe succeeds");
    let perps_news::embed::Embedding::Dense(v) = v else {
        panic!("dense expected")
    };
    let want = unit(api.vector(doc[0].title));
    let cos: f32 = v.iter().zip(&want).map(|(a, b)| a * b).sum();
    assert!(
        (cos - 1.0).abs() < 1e-5,
        "the server's vector, normalised: {cos}"
    );
    assert!(one().is_ok(), "closed again: calls go out");
    assert_eq!(api.count("embeddings"), 4);
    assert_eq!(opened.lock().unwrap().len(), 1);
}

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

#[test]
fn a_server_echoing_the_key_in_an_error_does_not_leak_it() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start(DIM);
    api.always("emb-a", Some(Fault::EchoAuth(400)));
    let p = pipeline(dir.path(), &api, "[api]\nconcurrency = 1\n");
    // run_remote asserts the key is in no output (debug logs included).
    let (v, stderr) = run_remote(
        dir.path(),
        &["--pipeline", p.to_str().unwrap(), &fixture()],
        &[],
    );
    assert_eq!(v["deferred"], 100, "{v}");
    assert_eq!(v["api"]["retries"], 0, "400 is not retried: {v}");
    assert!(stderr.contains("Bearer ***"), "{stderr}");
}

#[test]
fn llm_labels_are_cached_in_redis_and_fall_back_when_replies_fail() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(None, &[]);
    let url = redis.url(0);
    let api = FakeApi::start(DIM);
    let base = api.base();
    let f = fixture();
    let quick = dir.path().join("quick.toml");
    std::fs::write(&quick, "[api]\nattempts = 2\nbackoff_ms = 10\n").unwrap();
    let quick = quick.to_str().unwrap();
    // One `--labeler llm` run over the offline embedder (quick retries), its state and story
    // files named after `name`: the summary and the story lines.
    let llm_run = |name: &str, extra: &[&str], envs: &[(&str, &str)]| {
        let (state, stories) = (format!("{name}.json"), format!("{name}.jsonl"));
        let mut args = vec![
            "--pipeline",
            quick,
            "--labeler",
            "llm",
            "--chat-model",
            "chat-a",
            "--api-base",
            &base,
            "--redis-url",
            &url,
            "--state",
            &state,
            "--stories",
            &stories,
        ];
        args.extend_from_slice(extra);
        args.push(&f);
        let (v, _) = run_remote(dir.path(), &args, envs);
        (v, jsonl(&dir.path().join(&stories)))
    };
    let (v, stories) = llm_run("a", &[], &[]);
    let chats = api.count("chat/completions");
    assert!(chats > 0);
    assert_eq!(v["api"]["requests"], chats as u64, "{v}");
    assert!(
        stories
            .iter()
            .all(|s| s["label"].as_str().unwrap().starts_with("LLM: ")),
        "{stories:?}"
    );
    assert!(
        stories.iter().all(|s| s["category"] == "crypto"),
        "{:?}",
        stories[0]
    );
    let prompt = &api.requests()[0].texts[0];
    assert!(prompt.contains("crypto, macro, regulation, exchange, security, other"));
    // The same reply carries the direction, overall and for each of the story's symbols.
    for s in &stories {
        let d = &s["direction"];
        assert_eq!(d["by"], "llm", "{s}");
        let syms: Vec<&str> = s["symbols"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|x| x.as_str())
            .collect();
        let given: Vec<&str> = d["symbols"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|x| x["symbol"].as_str())
            .collect();
        assert_eq!(syms, given, "{s}");
        let way = d["direction"].as_str().unwrap();
        assert!(
            d["symbols"]
                .as_array()
                .unwrap()
                .iter()
                .all(|x| x["direction"] == way),
            "{s}"
        );
    }
    assert!(
        stories
            .iter()
            .any(|s| !s["symbols"].as_array().unwrap().is_empty())
    );
    assert_eq!(v["api"]["directionFallbacks"], 0, "{v}");
    let mut c = redis.client(1);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("perps:cache:llm:*")
        .query(&mut c)
        .unwrap();
    assert!(!keys.is_empty());
    let ttl: i64 = redis::cmd("TTL").arg(&keys[0]).query(&mut c).unwrap();
    assert!(ttl > 0, "every cache key has a TTL");

    // Same stories again from a fresh state: every label from the cache.
    let (v, again) = llm_run("b", &[], &[]);
    assert_eq!(api.count("chat/completions"), chats, "zero requests");
    assert_eq!(
        v["api"]["llmCacheHits"].as_u64(),
        Some(stories.len() as u64),
        "{v}"
    );
    let labels = |s: &[serde_json::Value]| -> Vec<String> {
        s.iter()
            .map(|s| s["label"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(labels(&again), labels(&stories));
    let directions = |s: &[serde_json::Value]| -> Vec<serde_json::Value> {
        s.iter().map(|s| s["direction"].clone()).collect()
    };
    assert_eq!(
        directions(&again),
        directions(&stories),
        "directions come from the cache too"
    );

    // Replies that do not parse: the extractive label, counted. (A new cache prefix: no hits.)
    api.always("chat-a", Some(Fault::Prose));
    let (v, prose) = llm_run("c", &[], &[("REDIS_CACHE_PREFIX", "other:")]);
    assert_eq!(
        v["api"]["labelFallbacks"].as_u64(),
        Some(prose.len() as u64),
        "{v}"
    );
    assert!(
        prose
            .iter()
            .all(|s| !s["label"].as_str().unwrap().starts_with("LLM: "))
    );
    // No category from the model: what there is comes from the rule categorizer reading the
    // extractive label.
    let rules = perps_news::label::category::RuleCategorizer::default();
    for s in &prose {
        let want = rules.categorize(s["label"].as_str().unwrap(), "").category;
        let want = (want != perps_news::label::category::FALLBACK).then_some(want);
        assert_eq!(s["category"].as_str(), want.as_deref(), "{s}");
    }
    assert!(
        prose.iter().all(|s| s["direction"]["by"] == "offline"),
        "the offline direction stands"
    );

    // The primary fails: the fallback model labels, all failed stories at once.
    api.always("chat-a", Some(Fault::Status(500, None)));
    let (v, fb) = llm_run(
        "d",
        &["--fallback-chat-model", "chat-b"],
        &[("REDIS_CACHE_PREFIX", "third:")],
    );
    assert!(
        fb.iter()
            .all(|s| s["label"].as_str().unwrap().starts_with("LLM: "))
    );
    assert_eq!(
        v["api"]["fallbackItems"].as_u64(),
        Some(fb.len() as u64),
        "{v}"
    );
    assert_eq!(v["api"]["labelFallbacks"], 0, "{v}");
    assert!(api.requests().iter().any(|r| r.model == "chat-b"));
}

#[test]
fn llm_categories_come_in_groups_cached_and_fall_back_to_the_rules() {
    use perps_news::label::category::RuleCategorizer;
    use perps_news::label::llm_category::{DecidedBy, GROUP, LlmCategorizer};
    let api = FakeApi::start(DIM);
    let mut cfg = perps_news::config::PipelineConfig::default();
    cfg.api.base_url = api.base();
    cfg.api.attempts = 1;
    cfg.label.llm.model = "chat-a".into();
    let cat = LlmCategorizer::build(
        &cfg.label.llm,
        &cfg.api,
        &perps_news::api::Context::default(),
    )
    .unwrap();
    let titles: Vec<String> = (0..45)
        .map(|i| {
            if i % 3 == 0 {
                format!("SEC sues exchange number {i}")
            } else {
                format!("Bitcoin rallies for day {i}")
            }
        })
        .collect();
    let items: Vec<(&str, &str)> = titles.iter().map(|t| (t.as_str(), "")).collect();
    let names = cfg.label.llm.categories.clone();
    let rules = RuleCategorizer::default();
    let got = cat.categorize(&items, &names, &rules);
    assert_eq!(got.len(), 45);
    assert_eq!(
        api.count("chat/completions"),
        45usize.div_ceil(GROUP),
        "one request per group"
    );
    for (i, (c, by)) in got.iter().enumerate() {
        assert_eq!(*by, DecidedBy::Llm);
        let want = if i % 3 == 0 { "regulation" } else { "crypto" };
        assert_eq!(c.category, want, "{}", titles[i]);
    }
    // Cached: the same articles again send nothing.
    let again = cat.categorize(&items, &names, &rules);
    assert_eq!(api.count("chat/completions"), 3);
    assert_eq!(
        again.iter().map(|x| &x.0.category).collect::<Vec<_>>(),
        got.iter().map(|x| &x.0.category).collect::<Vec<_>>()
    );
    // A reply that does not parse: that group falls back to the rules, counted.
    api.always("chat-a", Some(Fault::Prose));
    let other: Vec<(&str, &str)> = vec![
        ("Ethereum exploit drains a bridge", ""),
        ("Fed holds rates", ""),
    ];
    let fb = cat.categorize(&other, &names, &rules);
    assert!(fb.iter().all(|(_, by)| *by == DecidedBy::Rules));
    assert_eq!(fb[0].0.category, "security");
    assert_eq!(cat.report().label_fallbacks, 1);
}

/// A refused key (401/403, also inside a 200 body) or a model of another dimension can
/// never work: the run exits 2 at once naming the cause, instead of deferring every
/// article "for the next run". Deferral stays for transient failures (tested above).
#[test]
fn a_refused_key_or_a_wrong_dimension_stops_the_run_naming_the_cause() {
    let cases: [(Fault, &str, &str); 4] = [
        (Fault::Status(401, None), "", "HTTP 401"),
        (Fault::ErrorIn200(403), "", "code 403"),
        (Fault::WrongDim(32), "", "32-dimensional"),
        // The fallback refuses the key too: nothing could ever embed.
        (
            Fault::Status(403, None),
            "[embed.openai]\nfallback_model = \"emb-b\"\n",
            "HTTP 403",
        ),
    ];
    for (fault, extra, cause) in cases {
        let dir = tempfile::tempdir().unwrap();
        let api = FakeApi::start(DIM);
        let both = !extra.is_empty();
        api.always("emb-a", Some(fault.clone()));
        if both {
            api.always("emb-b", Some(fault.clone()));
        }
        let p = pipeline(dir.path(), &api, extra);
        let out = run_in(
            dir.path(),
            &[
                "run",
                "--json",
                "--pipeline",
                p.to_str().unwrap(),
                "--state",
                "state.json",
                &fixture(),
            ],
            None,
            &[("OPENROUTER_API_KEY", KEY)],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{fault:?}: {err}");
        assert!(
            err.contains("embed.openai") && err.contains(cause) && err.contains("emb-"),
            "{fault:?}: the cause and the model are named: {err}"
        );
        assert!(out.stdout.is_empty(), "{fault:?}: no summary");
        assert!(
            !dir.path().join("state.json").exists(),
            "{fault:?}: nothing deferred into a state"
        );
        // The first pipeline batch (64 articles: 4 requests of 16, and the fallback's), none
        // retried; no later batch is tried.
        let per_model = |m: &str| api.requests().iter().filter(|r| r.model == m).count();
        assert_eq!(per_model("emb-a"), 4, "{fault:?}: stopped at once");
        assert_eq!(per_model("emb-b"), if both { 4 } else { 0 }, "{fault:?}");
        assert!(!err.contains(KEY), "the key never shows");
    }
}
