//! The clusterer against plain reference implementations: one article at a time, every
//! story scored exactly, whatever the batching and thread count.

use super::*;
use crate::article::Article;
use crate::article::Origin;
use crate::embed::Embedding;
use crate::kernels;
use crate::signals::entities::{
    Entities, KIND_ASSET, KIND_NAME, MAX_STORY_ENTITIES, conflict, key,
};

fn article(i: usize, t: i64) -> Article {
    Article {
        id: format!("a{i:05}"),
        title: format!("title {i}"),
        body: String::new(),
        url: None,
        url_key: None,
        source: None,
        published_at: Some(t),
        day_only: false,
        lang: None,
        origin: Origin {
            file: "t".into(),
            line: i + 1,
        },
        seq: i,
    }
}

/// Unit vectors around `k` planted directions, so there are real stories to find.
fn planted(n: usize, dim: usize, k: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut s = seed | 1;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s % 20_001) as f32 / 10_000.0 - 1.0
    };
    let centers: Vec<Vec<f32>> = (0..k).map(|_| (0..dim).map(|_| rnd()).collect()).collect();
    (0..n)
        .map(|i| {
            let c = &centers[(i * 7 + i / 3) % k];
            let mut v: Vec<f32> = c.iter().map(|x| x + 1.1 * rnd()).collect();
            kernels::normalize(&mut v);
            v
        })
        .collect()
}

/// The specification, written as plainly as possible: every article against every
/// active story, one at a time.
fn reference(cfg: &ClusterConfig, arts: &[Article], vecs: &[Vec<f32>]) -> Vec<usize> {
    reference_entities(cfg, arts, vecs, &[])
}

/// [`reference`] with each article's entities (`ents` parallel to `arts`, or empty): a story
/// names what its members name, and an article naming other entities of a kind than the
/// story loses `conflict_penalty`.
fn reference_entities(
    cfg: &ClusterConfig,
    arts: &[Article],
    vecs: &[Vec<f32>],
    ents: &[Entities],
) -> Vec<usize> {
    struct S {
        sum: Vec<f32>,
        members: Vec<usize>,
        last: i64,
        ents: Entities,
    }
    let none = Entities::default();
    let mut stories: Vec<S> = Vec::new();
    let mut out = Vec::new();
    let window = (cfg.window_hours * 3600.0) as i64;
    for (i, (a, v)) in arts.iter().zip(vecs).enumerate() {
        let t = a.published_at.unwrap_or(0);
        let mut best: Option<(f32, usize)> = None;
        for (j, s) in stories.iter().enumerate() {
            if s.last < t - window {
                continue;
            }
            let link = match cfg.linkage {
                // The mean similarity with the story's articles, one by one.
                Linkage::Average => {
                    let total: f32 = s.members.iter().map(|&m| kernels::dot(v, &vecs[m])).sum();
                    total / s.members.len() as f32
                }
                Linkage::Centroid => {
                    let mut c = s.sum.clone();
                    kernels::normalize(&mut c);
                    kernels::dot(v, &c)
                }
            };
            let gap = ((t - s.last).abs() as f32 / 3600.0).min(cfg.window_hours as f32);
            let e = ents.get(i).unwrap_or(&none);
            let pen = if conflict(e, &s.ents) {
                cfg.conflict_penalty
            } else {
                0.0
            };
            let sim = link - cfg.time_penalty(gap) - pen;
            if sim >= cfg.threshold() && best.is_none_or(|(b, _)| sim > b) {
                best = Some((sim, j));
            }
        }
        let j = match best {
            Some((_, j)) => {
                stories[j].sum.iter_mut().zip(v).for_each(|(c, x)| *c += *x);
                stories[j].members.push(i);
                stories[j].last = stories[j].last.max(t);
                j
            }
            None => {
                stories.push(S {
                    sum: v.clone(),
                    members: vec![i],
                    last: t,
                    ents: Entities::default(),
                });
                stories.len() - 1
            }
        };
        // Every entity the members name, up to the bound, first come.
        let e = ents.get(i).unwrap_or(&none);
        let s = &mut stories[j].ents;
        for (set, add) in [(&mut s.title, &e.title), (&mut s.text, &e.text)] {
            for k in add {
                if set.len() < MAX_STORY_ENTITIES && !set.contains(k) {
                    set.push(*k);
                    set.sort_unstable();
                }
            }
        }
        out.push(j);
    }
    out
}

fn run(
    cfg: &ClusterConfig,
    arts: &[Article],
    vecs: &[Vec<f32>],
    batch: usize,
    threads: usize,
) -> Vec<String> {
    run_entities(cfg, arts, vecs, &[], batch, threads)
}

/// [`run`] with each article's entities (parallel to `arts`, or empty).
fn run_entities(
    cfg: &ClusterConfig,
    arts: &[Article],
    vecs: &[Vec<f32>],
    ents: &[Entities],
    batch: usize,
    threads: usize,
) -> Vec<String> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let dim = vecs[0].len();
    let mut c = Clusterer::new(cfg.clone(), StoryState::new("test", dim));
    let mut out = Vec::new();
    for (k, (a, v)) in arts.chunks(batch).zip(vecs.chunks(batch)).enumerate() {
        let e = v.iter().cloned().map(Embedding::Dense).collect();
        let signals = BatchSignals {
            entities: ents.get(k * batch..(k * batch + a.len())).unwrap_or(&[]),
            ..BatchSignals::default()
        };
        out.extend(
            c.assign_signals(a, e, signals, 0, &pool)
                .assignments
                .into_iter()
                .map(|x| x.story_id),
        );
    }
    out
}

/// Relabels story ids by first appearance, so partitions compare directly.
fn canonical<T: PartialEq + Clone>(ids: &[T]) -> Vec<usize> {
    let mut seen: Vec<T> = Vec::new();
    ids.iter()
        .map(|x| match seen.iter().position(|s| s == x) {
            Some(p) => p,
            None => {
                seen.push(x.clone());
                seen.len() - 1
            }
        })
        .collect()
}

#[test]
fn pruned_batched_parallel_equals_the_one_at_a_time_reference() {
    let n = 700;
    let vecs = planted(n, 96, 60, 99);
    // Times spread over three days so the window retires stories mid-run.
    let arts: Vec<Article> = (0..n)
        .map(|i| article(i, 1_000_000 + i as i64 * 400))
        .collect();
    for (linkage, penalty, plateau, cap) in [
        (Linkage::Average, 0.0, 0.0, f32::INFINITY),
        (Linkage::Average, 0.05, 0.0, f32::INFINITY),
        (Linkage::Average, 0.05, 1.0, 0.1),
        (Linkage::Centroid, 0.0, 0.0, f32::INFINITY),
        (Linkage::Centroid, 0.05, 0.0, f32::INFINITY),
    ] {
        let cfg = ClusterConfig {
            threshold: Some(0.25),
            linkage,
            time_penalty_per_hour: penalty,
            time_plateau_hours: plateau,
            time_penalty_max: cap,
            window_hours: 24.0,
            ..ClusterConfig::default()
        };
        let want = reference(&cfg, &arts, &vecs);
        let stories = want.iter().max().unwrap() + 1;
        assert!(
            stories > 30 && stories < 600,
            "{stories} stories: the test needs real groups"
        );
        for (batch, threads) in [(1, 1), (20, 2), (64, 2), (700, 1), (700, 2)] {
            let got = run(&cfg, &arts, &vecs, batch, threads);
            assert_eq!(
                canonical(&got),
                canonical(&want),
                "batch {batch} threads {threads} {linkage} penalty {penalty}"
            );
        }
    }
}

/// Entities drawn so that conflicts are common: each article names one or two of a few
/// assets in its title, sometimes another in its lead, and sometimes a name.
fn planted_entities(n: usize, seed: u64) -> Vec<Entities> {
    let mut s = seed | 1;
    let mut rnd = move |m: u64| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s % m
    };
    (0..n)
        .map(|_| {
            let mut title: Vec<u64> = Vec::new();
            for _ in 0..rnd(3) {
                title.push(key(KIND_ASSET, &format!("a{}", rnd(4))));
            }
            if rnd(3) == 0 {
                title.push(key(KIND_NAME, &format!("n{}", rnd(3))));
            }
            let mut text = title.clone();
            if rnd(4) == 0 {
                text.push(key(KIND_ASSET, &format!("a{}", rnd(4))));
            }
            for v in [&mut title, &mut text] {
                v.sort_unstable();
                v.dedup();
            }
            Entities { title, text }
        })
        .collect()
}

#[test]
fn entity_conflicts_are_decided_like_the_reference_whatever_the_batching() {
    let n = 500;
    let vecs = planted(n, 64, 30, 41);
    let ents = planted_entities(n, 3);
    let arts: Vec<Article> = (0..n)
        .map(|i| article(i, 1_000_000 + i as i64 * 300))
        .collect();
    for penalty in [1.0, 0.1] {
        let cfg = ClusterConfig {
            threshold: Some(0.25),
            conflict_penalty: penalty,
            window_hours: 24.0,
            ..ClusterConfig::default()
        };
        let want = reference_entities(&cfg, &arts, &vecs, &ents);
        // The rule matters here: without it the partition differs.
        let plain = reference(&cfg, &arts, &vecs);
        assert_ne!(canonical(&want), canonical(&plain), "penalty {penalty}");
        for (batch, threads) in [(1, 1), (20, 2), (64, 2), (500, 1), (500, 2)] {
            let got = run_entities(&cfg, &arts, &vecs, &ents, batch, threads);
            assert_eq!(
                canonical(&got),
                canonical(&want),
                "batch {batch} threads {threads} penalty {penalty}"
            );
        }
    }
}

#[test]
fn different_assets_stay_apart_and_a_multi_asset_story_takes_each() {
    let v = {
        let mut v = vec![1.0f32; 8];
        kernels::normalize(&mut v);
        v
    };
    let assets = |names: &[&str]| {
        let mut title: Vec<u64> = names.iter().map(|n| key(KIND_ASSET, n)).collect();
        title.sort_unstable();
        Entities {
            text: title.clone(),
            title,
        }
    };
    let place = |ents: &[Entities]| {
        let arts: Vec<Article> = (0..ents.len())
            .map(|i| article(i, 1000 + i as i64))
            .collect();
        let vecs = vec![v.clone(); ents.len()];
        canonical(&run_entities(
            &ClusterConfig::default(),
            &arts,
            &vecs,
            ents,
            1,
            1,
        ))
    };
    // The same words about XRP and about SOL: two stories.
    assert_eq!(place(&[assets(&["xrp"]), assets(&["sol"])]), vec![0, 1]);
    // One about XRP, SOL and DOGE takes both single-asset articles, and one naming none.
    assert_eq!(
        place(&[
            assets(&["xrp", "sol", "doge"]),
            assets(&["xrp"]),
            assets(&["sol"]),
            Entities::default()
        ]),
        vec![0, 0, 0, 0]
    );
    // Turned off, the words alone decide.
    let arts: Vec<Article> = (0..2).map(|i| article(i, 1000 + i as i64)).collect();
    let off = ClusterConfig {
        conflict_penalty: 0.0,
        ..ClusterConfig::default()
    };
    let got = run_entities(
        &off,
        &arts,
        &[v.clone(), v.clone()],
        &[assets(&["xrp"]), assets(&["sol"])],
        1,
        1,
    );
    assert_eq!(canonical(&got), vec![0, 0]);
}

/// Term embeddings around `k` planted topics: each article draws most of its terms from
/// its topic's vocabulary and the rest from a shared one.
fn planted_terms(n: usize, k: usize, seed: u64) -> Vec<Vec<(u32, f32)>> {
    let mut s = seed | 1;
    let mut rnd = move |m: u64| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s % m
    };
    (0..n)
        .map(|i| {
            let topic = ((i * 7 + i / 3) % k) as u64;
            let mut t: Vec<(u32, f32)> = (0..40)
                .map(|j| {
                    let id = if j % 5 < 4 {
                        100_000 + topic * 30 + rnd(30)
                    } else {
                        rnd(5_000)
                    };
                    (id as u32, 1.0 + rnd(3) as f32)
                })
                .collect();
            t.sort_unstable_by_key(|x| x.0);
            t.dedup_by_key(|x| x.0);
            t
        })
        .collect()
}

/// The rule for term embeddings, written plainly: every article against every active
/// story, each re-scored on the exact term sums (brute force). Also counts the articles
/// for which the former rule (dense candidates within the margin, the best
/// [`RESCORE_TOP`] re-scored on the exact term sums) would have chosen otherwise.
fn terms_reference(
    cfg: &ClusterConfig,
    arts: &[Article],
    terms: &[Vec<(u32, f32)>],
    ents: &[Entities],
    dim: usize,
) -> (Vec<usize>, usize) {
    struct S {
        sum: Vec<f32>,
        terms: Vec<(u32, f32)>,
        n: usize,
        last: i64,
        seq: u64,
        ents: Entities,
    }
    let none = Entities::default();
    let mut stats = crate::story::TermStats::default();
    let mut stories: Vec<S> = Vec::new();
    let mut out = Vec::new();
    let mut differ = 0;
    let window = (cfg.window_hours * 3600.0) as i64;
    for (i, (a, t)) in arts.iter().zip(terms).enumerate() {
        let e = ents.get(i).unwrap_or(&none);
        let (v, exact) = Embedding::Terms(t.clone()).into_vectors(&mut stats, dim);
        let exact = exact.unwrap();
        let bar = cfg.threshold_for(Some(exact.len()));
        let at = a.published_at.unwrap_or(0);
        let mut pre = Vec::new();
        for (j, s) in stories.iter().enumerate() {
            if s.last < at - window {
                continue;
            }
            let gap = ((at - s.last).abs() as f32 / 3600.0).min(cfg.window_hours as f32);
            let conflict_pen = if conflict(e, &s.ents) {
                cfg.conflict_penalty
            } else {
                0.0
            };
            let pen = cfg.time_penalty(gap) + conflict_pen;
            let mut c = s.sum.clone();
            kernels::normalize(&mut c);
            let coh = crate::story::cohesion(&s.sum, s.n);
            let dense = kernels::dot(&v, &c) * coh - pen;
            let exact_score = kernels::sparse_dot(&exact, &s.terms) / s.n as f32 - pen;
            let candidate = dense >= cfg.threshold() - rescore_margin(dim);
            pre.push((dense, s.seq, j, exact_score, candidate));
        }
        let pick = |c: &mut dyn Iterator<Item = &(f32, u64, usize, f32, bool)>| {
            c.filter(|c| c.3 >= bar)
                .min_by(|x, y| y.3.total_cmp(&x.3).then(x.1.cmp(&y.1)))
                .copied()
        };
        let brute = pick(&mut pre.iter());
        pre.retain(|c| c.4);
        pre.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
        let dense = pick(&mut pre.iter().take(RESCORE_TOP));
        differ += usize::from(dense.map(|c| c.2) != brute.map(|c| c.2));
        let j = match brute {
            Some((_, _, j, _, _)) => {
                let s = &mut stories[j];
                s.sum.iter_mut().zip(&v).for_each(|(c, x)| *c += *x);
                crate::story::add_term_vector(&mut s.terms, &exact);
                s.n += 1;
                s.last = s.last.max(at);
                j
            }
            None => {
                let seq = stories.len() as u64;
                stories.push(S {
                    sum: v,
                    terms: exact,
                    n: 1,
                    last: at,
                    seq,
                    ents: Entities::default(),
                });
                stories.len() - 1
            }
        };
        stories[j].ents.absorb(e);
        out.push(j);
    }
    (out, differ)
}

#[test]
fn term_embeddings_are_decided_on_exact_vectors_whatever_the_batching() {
    let n = 600;
    let dim = 64; // much hashing noise: the dense scores alone would decide differently
    let terms = planted_terms(n, 50, 7);
    let arts: Vec<Article> = (0..n)
        .map(|i| article(i, 1_000_000 + i as i64 * 300))
        .collect();
    let cfg = ClusterConfig {
        threshold: Some(0.2),
        time_penalty_per_hour: 0.02,
        time_plateau_hours: 0.0,
        time_penalty_max: f32::INFINITY,
        window_hours: 24.0,
        ..ClusterConfig::default()
    };
    let ents = planted_entities(n, 11);
    for with_entities in [false, true] {
        let ents: &[Entities] = if with_entities { &ents } else { &[] };
        let (want, differ) = terms_reference(&cfg, &arts, &terms, ents, dim);
        let stories = want.iter().max().unwrap() + 1;
        assert!(
            stories > 30 && stories < 400,
            "{stories} stories: the test needs real groups"
        );
        for (batch, threads) in [(1, 1), (20, 2), (600, 1), (600, 2)] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut c = Clusterer::new(cfg.clone(), StoryState::new("test", dim));
            let mut got = Vec::new();
            for (k, (a, t)) in arts.chunks(batch).zip(terms.chunks(batch)).enumerate() {
                let e = t.iter().cloned().map(Embedding::Terms).collect();
                let signals = BatchSignals {
                    entities: ents.get(k * batch..k * batch + a.len()).unwrap_or(&[]),
                    ..BatchSignals::default()
                };
                let out = c.assign_signals(a, e, signals, 0, &pool);
                got.extend(out.assignments.into_iter().map(|x| x.story_id));
            }
            assert_eq!(
                canonical(&got),
                canonical(&want),
                "batch {batch} threads {threads}"
            );
        }
        // The dense pruning changes (almost) no decision against re-scoring every story.
        assert!(
            differ * 100 <= n,
            "{differ} of {n} decided otherwise than brute force"
        );
    }
}

#[test]
fn a_day_only_time_is_as_close_as_its_day_allows() {
    // Three copies of one text a day apart: with exact times the time penalty keeps them
    // apart; given as days (a bare date), consecutive days can be hours apart, so they
    // form one story. Two days apart stays apart: the days do not touch. An exact time
    // is measured from a day-only story's midnight, so one midnight stamp cannot lift
    // the penalty for a whole day of exactly timed articles.
    let cfg = ClusterConfig {
        threshold: Some(0.5),
        time_penalty_per_hour: 0.1,
        time_plateau_hours: 0.0,
        time_penalty_max: f32::INFINITY,
        window_hours: 96.0,
        ..ClusterConfig::default()
    };
    let day = 86_400;
    let v = {
        let mut v = vec![1.0f32; 8];
        kernels::normalize(&mut v);
        v
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    // (day only, seconds after the first midnight) per article.
    let place = |times: &[(bool, i64)]| {
        let arts: Vec<Article> = times
            .iter()
            .enumerate()
            .map(|(i, &(day_only, secs))| Article {
                day_only,
                ..article(i, 100 * day + secs)
            })
            .collect();
        let e = arts.iter().map(|_| Embedding::Dense(v.clone())).collect();
        let mut c = Clusterer::new(cfg.clone(), StoryState::new("t", 8));
        let ids: Vec<String> = c
            .assign_batch(&arts, e, &[], 0, &pool)
            .assignments
            .into_iter()
            .map(|x| x.story_id)
            .collect();
        canonical(&ids)
    };
    let days =
        |day_only: bool, ds: &[i64]| ds.iter().map(|d| (day_only, d * day)).collect::<Vec<_>>();
    assert_eq!(place(&days(false, &[0, 1, 2])), vec![0, 1, 2]);
    assert_eq!(place(&days(true, &[0, 1, 2])), vec![0, 0, 0]);
    assert_eq!(place(&days(true, &[0, 2])), vec![0, 1]);
    assert_eq!(place(&[(true, 0), (false, 20 * 3600)]), vec![0, 1]);
    assert_eq!(place(&[(true, 0), (false, 3600)]), vec![0, 0]);
}

#[test]
fn known_articles_are_not_clustered_again() {
    let vecs = planted(40, 32, 4, 5);
    let arts: Vec<Article> = (0..40).map(|i| article(i, 1000 + i as i64)).collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut c = Clusterer::new(ClusterConfig::default(), StoryState::new("test", 32));
    let dense = |v: &[Vec<f32>]| v.iter().cloned().map(Embedding::Dense).collect();
    let first = c.assign_batch(&arts, dense(&vecs), &[], 0, &pool);
    let opened = c.opened();
    let again = c.assign_batch(&arts, dense(&vecs), &[], 0, &pool);
    assert_eq!(c.opened(), opened);
    assert!(
        again
            .assignments
            .iter()
            .all(|a| a.placement == Placement::Known)
    );
    let ids = |b: &ClusteredBatch| {
        b.assignments
            .iter()
            .map(|a| a.story_id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&first), ids(&again));
    assert!(again.touched.is_empty());
}

/// A busy window, like the window bench's dumps but smaller: every article inside one 48 h
/// window, news-like bodies over a Zipf background vocabulary, planted stories of 10 that
/// share a dozen topic words and two names. Embedded by the offline embedder; in time order.
fn busy_window(n: usize, seed: u64) -> (Vec<Article>, Vec<Vec<(u32, f32)>>) {
    const VOCAB: usize = 4_000;
    let mut s = seed | 1;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let word = |i: usize| {
        const ON: [&str; 16] = [
            "b", "c", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br",
        ];
        const NU: [&str; 8] = ["a", "e", "i", "o", "u", "ai", "ou", "ea"];
        let (mut w, mut x) = (String::new(), i + 1);
        while x > 0 {
            w.push_str(ON[x % 16]);
            x /= 16;
            w.push_str(NU[x % 8]);
            x /= 8;
        }
        w
    };
    let cdf: Vec<f64> = {
        let w: Vec<f64> = (1..=VOCAB).map(|k| 1.0 / (k as f64).powf(1.1)).collect();
        let total: f64 = w.iter().sum();
        w.iter()
            .scan(0.0, |acc, x| {
                *acc += x / total;
                Some(*acc)
            })
            .collect()
    };
    let zipf = |r: u64| {
        let u = (r >> 11) as f64 / (1u64 << 53) as f64;
        cdf.partition_point(|c| *c < u).min(VOCAB - 1)
    };
    let mut docs: Vec<(i64, String, String)> = Vec::with_capacity(n);
    for story in 0..n.div_ceil(10) {
        let topic: Vec<String> = (0..12)
            .map(|_| word(VOCAB / 2 + (rnd() as usize) % (VOCAB / 2)))
            .collect();
        let names: Vec<String> = (0..2)
            .map(|_| {
                let mut w = word(100_000 + story * 7 + (rnd() as usize) % 1000);
                w[..1].make_ascii_uppercase();
                w
            })
            .collect();
        let center = (rnd() % (48 * 3600)) as i64;
        for _ in 0..10.min(n - docs.len()) {
            let t = (center + (rnd() % (4 * 3600)) as i64 - 7200).clamp(0, 48 * 3600 - 1);
            let mut title = vec![names[0].clone()];
            title.extend((0..4).map(|_| topic[(rnd() % 12) as usize].clone()));
            title.extend((0..4).map(|_| word(zipf(rnd()))));
            let len = 60 + (rnd() % 141) as usize;
            let body: Vec<String> = (0..len)
                .map(|i| match rnd() % 100 {
                    0..12 => topic[(rnd() % 12) as usize].clone(),
                    12..15 => names[i % 2].clone(),
                    _ => word(zipf(rnd())),
                })
                .collect();
            docs.push((t, title.join(" "), body.join(" ") + "."));
        }
    }
    docs.sort_by_key(|d| d.0);
    let embedder =
        crate::embed::hashing::HashingEmbedder::new(64, crate::embed::HashingConfig::default());
    docs.iter()
        .enumerate()
        .map(|(i, (t, title, body))| {
            let a = Article {
                title: title.clone(),
                ..article(i, 1_000_000 + t)
            };
            let terms = embedder.terms(&crate::embed::Doc { title, body });
            (a, terms)
        })
        .unzip()
}

/// The specification for term embeddings, written plainly: every article against every
/// active story of its time, scored exactly on the term vectors (the mean similarity with
/// the members: the article's terms against the story's term sum, over its size, minus the
/// time penalty); the best at or above the article's bar (the threshold, raised for a short
/// text) wins (ties: the older story).
fn exact_reference(cfg: &ClusterConfig, arts: &[Article], terms: &[Vec<(u32, f32)>]) -> Vec<usize> {
    struct S {
        terms: Vec<(u32, f32)>,
        n: usize,
        last: i64,
    }
    let mut stats = crate::story::TermStats::default();
    let mut stories: Vec<S> = Vec::new();
    let mut out = Vec::new();
    let window = (cfg.window_hours * 3600.0) as i64;
    for (a, t) in arts.iter().zip(terms) {
        let (_, exact) = Embedding::Terms(t.clone()).into_vectors(&mut stats, 8);
        let exact = exact.unwrap();
        let at = a.published_at.unwrap_or(0);
        let bar = cfg.threshold_for(Some(exact.len()));
        let mut best: Option<(f32, usize)> = None;
        for (j, s) in stories.iter().enumerate() {
            if s.last < at - window {
                continue;
            }
            let gap = ((at - s.last).abs() as f32 / 3600.0).min(cfg.window_hours as f32);
            let score = kernels::sparse_dot(&exact, &s.terms) / s.n as f32 - cfg.time_penalty(gap);
            if score >= bar && best.is_none_or(|(b, _)| score > b) {
                best = Some((score, j));
            }
        }
        match best {
            Some((_, j)) => {
                let s = &mut stories[j];
                crate::story::add_term_vector(&mut s.terms, &exact);
                s.n += 1;
                s.last = s.last.max(at);
                out.push(j);
            }
            None => {
                stories.push(S {
                    terms: exact,
                    n: 1,
                    last: at,
                });
                out.push(stories.len() - 1);
            }
        }
    }
    out
}

#[test]
fn term_index_candidates_equal_the_exhaustive_exact_scan_on_a_busy_window() {
    let n = 1500;
    let (arts, terms) = busy_window(n, 11);
    let cfg = ClusterConfig::default();
    let want = exact_reference(&cfg, &arts, &terms);
    let stories = want.iter().max().unwrap() + 1;
    assert!(
        stories > 100 && stories < 600,
        "{stories} stories: the test needs real groups"
    );
    let mut first: Option<Vec<String>> = None;
    for (batch, threads) in [(1, 1), (20, 2), (600, 1), (600, 2)] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut c = Clusterer::new(cfg.clone(), StoryState::new("test", 64))
            .with_candidate_check(batch == 600 && threads == 1);
        let mut got = Vec::new();
        for (a, t) in arts.chunks(batch).zip(terms.chunks(batch)) {
            let e = t.iter().cloned().map(Embedding::Terms).collect();
            let out = c.assign_batch(a, e, &[], 0, &pool);
            got.extend(out.assignments.into_iter().map(|x| x.story_id));
        }
        let stats = c.stats();
        if stats.checked > 0 {
            // Each decision against re-scoring every story of its time, on the same state.
            assert_eq!(stats.checked, n as u64);
            assert!(
                stats.differing * 1000 <= stats.checked,
                "{} of {} decisions differ from the exhaustive scan",
                stats.differing,
                stats.checked
            );
        }
        assert_eq!(
            canonical(&got),
            canonical(&want),
            "batch {batch} threads {threads}"
        );
        // Identical ids, not only the same partition, whatever the batching.
        match &first {
            None => first = Some(got),
            Some(f) => assert_eq!(f, &got, "batch {batch} threads {threads}"),
        }
    }
}
