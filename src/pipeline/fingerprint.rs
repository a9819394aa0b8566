//! The pipeline fingerprint: a hash of the settings that decide what a story is, recorded
//! in every run summary (`pipelineFingerprint`, with `origin`: `run` or `worker`), so that
//! `doctor` can tell when the timer's runs and the worker cluster one Redis state with
//! different settings (one unit started without `--pipeline`, say).
//!
//! Hashed: `ingest`, `embed`, `cluster`, `label`, `signals`, `syndication` and `sources`.
//! Not hashed: the name, and the sections that say where and how to connect or serve
//! (`redis`, `spool`, `worker`, `serve`, `api`): two hosts reaching one Redis under other
//! names, or with other retry settings, still cluster alike.

use serde::Serialize;

use crate::config::PipelineConfig;

#[derive(Serialize)]
struct Shaping<'a> {
    ingest: &'a crate::config::IngestConfig,
    embed: &'a crate::config::EmbedConfig,
    cluster: &'a crate::config::ClusterConfig,
    label: &'a crate::config::LabelConfig,
    signals: &'a crate::config::SignalsConfig,
    syndication: &'a crate::syndication::SyndicationConfig,
    sources: &'a std::collections::BTreeMap<String, crate::config::SourceConfig>,
}

/// 16 hex digits: xxh3 of the canonical JSON of the hashed sections (field order is the
/// declaration order and maps are sorted, so equal settings give equal text).
pub fn pipeline_fingerprint(cfg: &PipelineConfig) -> String {
    // Resolved, so an unset threshold and the embedder's default spelled out are one pipeline.
    let (cluster, _) = cfg.cluster_settings();
    let shaping = Shaping {
        ingest: &cfg.ingest,
        embed: &cfg.embed,
        cluster: &cluster,
        label: &cfg.label,
        signals: &cfg.signals,
        syndication: &cfg.syndication,
        sources: &cfg.sources,
    };
    let text = serde_json::to_string(&shaping).unwrap_or_default();
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
}

/// What `doctor` concludes from recent run summaries (newest first): `Ok` with a detail
/// when they agree (or name no fingerprint), `Err` with the warning when they do not.
///
/// # Errors
/// The warning text: which origins reported which fingerprints.
pub fn compare(summaries: &[serde_json::Value]) -> Result<String, String> {
    // (fingerprint, origin) -> (runs, newest timestamp)
    let mut seen: std::collections::BTreeMap<(String, String), (usize, String)> =
        std::collections::BTreeMap::new();
    for s in summaries {
        let Some(fp) = s["pipelineFingerprint"].as_str() else {
            continue;
        };
        let origin = s["origin"].as_str().unwrap_or("run").to_string();
        let e = seen
            .entry((fp.to_string(), origin))
            .or_insert_with(|| (0, s["timestamp"].as_str().unwrap_or("").to_string()));
        e.0 += 1;
    }
    let fingerprints: std::collections::BTreeSet<&str> =
        seen.keys().map(|(fp, _)| fp.as_str()).collect();
    let runs: usize = seen.values().map(|(n, _)| n).sum();
    match fingerprints.len() {
        0 => Ok("no recent run summary names its pipeline".into()),
        1 => Ok(format!(
            "{runs} recent runs, one pipeline ({})",
            fingerprints.first().copied().unwrap_or("")
        )),
        _ => {
            let parts: Vec<String> = seen
                .iter()
                .map(|((fp, origin), (n, newest))| {
                    format!("{origin} {fp} ({n} of the last {runs}, newest {newest})")
                })
                .collect();
            Err(format!(
                "recent runs report different pipelines: {}; they cluster one state with \
                 different settings: give the timer and the worker the same --pipeline",
                parts.join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_follows_the_settings_that_shape_stories() {
        let base = PipelineConfig::default();
        let fp = pipeline_fingerprint(&base);
        assert_eq!(fp.len(), 16);
        assert_eq!(fp, pipeline_fingerprint(&base.clone()), "stable");
        let mut other = base.clone();
        other.cluster.threshold = Some(0.13);
        assert_ne!(pipeline_fingerprint(&other), fp);
        let mut moved = base.clone();
        moved.redis.port += 1;
        moved.name = "elsewhere".into();
        moved.serve.max_connections += 1;
        assert_eq!(
            pipeline_fingerprint(&moved),
            fp,
            "where it connects does not count"
        );
    }

    #[test]
    fn doctor_warns_only_on_differing_fingerprints() {
        let s = |fp: &str, origin: &str| serde_json::json!({"pipelineFingerprint": fp, "origin": origin, "timestamp": "t"});
        assert!(compare(&[]).is_ok());
        assert!(compare(&[serde_json::json!({"timestamp": "old"})]).is_ok());
        assert!(compare(&[s("aa", "run"), s("aa", "worker")]).is_ok());
        let warn = compare(&[s("aa", "run"), s("bb", "worker"), s("aa", "run")]).unwrap_err();
        assert!(
            warn.contains("run aa (2 of the last 3") && warn.contains("worker bb (1"),
            "{warn}"
        );
    }
}
