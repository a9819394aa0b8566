//! Heat and breaking: how much a story is being written about now.
//!
//! Both read a story's distinct sources with the time of each one's latest article in it.
//! Heat at `now` sums `exp(-age / tau)` over them, so a story many outlets are writing about
//! right now is hot and cools with time constant `tau` once they stop. A story turns
//! breaking once (ever) when `signals.breaking_sources` distinct sources wrote within
//! `signals.breaking_window_minutes` of one of its articles.

/// Heat at time `now` of a story whose sources last wrote at the times in `sources`.
pub fn heat(sources: &[(String, i64)], now: i64, tau_hours: f64) -> f64 {
    let tau = (tau_hours * 3600.0).max(1.0);
    sources
        .iter()
        .map(|(_, t)| (-(now.saturating_sub(*t)).max(0) as f64 / tau).exp())
        .sum()
}

/// The heat the last hour brought: the part of the heat at `now` from sources whose latest
/// article is in the hour up to `now` (a story being picked up right now rises; one that
/// only cools does not).
pub fn heat_rise(sources: &[(String, i64)], now: i64, tau_hours: f64) -> f64 {
    let tau = (tau_hours * 3600.0).max(1.0);
    sources
        .iter()
        .filter(|(_, t)| *t > now - 3600 && *t <= now)
        .map(|(_, t)| (-(now - *t) as f64 / tau).exp())
        .sum()
}

/// Whether the sources that wrote in the `window` seconds up to `t` reach `needed` (0: never
/// breaking).
pub fn is_breaking(sources: &[(String, i64)], t: i64, needed: usize, window: i64) -> bool {
    needed > 0
        && sources
            .iter()
            .filter(|(_, last)| *last > t - window && *last <= t)
            .count()
            >= needed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
        pairs.iter().map(|(s, t)| ((*s).to_string(), *t)).collect()
    }

    #[test]
    fn heat_rise_counts_the_sources_of_the_last_hour() {
        let now = 100_000;
        // Two sources an hour or more ago, cooling: no rise.
        let old = src(&[("a", now - 7200), ("b", now - 3600)]);
        assert_eq!(heat_rise(&old, now, 6.0), 0.0);
        // One new source in the last hour: the rise is about one source's worth.
        let mut new = old.clone();
        new.push(("c".into(), now - 60));
        let r = heat_rise(&new, now, 6.0);
        assert!(r > 0.8 && r <= 1.0, "{r}");
        assert!(heat_rise(&new, now, 6.0) >= heat_rise(&old, now, 6.0));
    }

    #[test]
    fn heat_counts_sources_and_cools_with_age() {
        let now = 100_000;
        let fresh = src(&[("a", now), ("b", now)]);
        assert!((heat(&fresh, now, 6.0) - 2.0).abs() < 1e-9);
        let old = src(&[("a", now - 6 * 3600), ("b", now - 6 * 3600)]);
        assert!((heat(&old, now, 6.0) - 2.0 / std::f64::consts::E).abs() < 1e-9);
        // More sources never lower heat; an article after `now` counts as now.
        assert!(heat(&src(&[("a", now), ("b", now), ("c", now - 3600)]), now, 6.0) > 2.0);
        assert!((heat(&src(&[("a", now + 60)]), now, 6.0) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn breaking_needs_enough_sources_inside_the_window() {
        let s = src(&[("a", 1000), ("b", 1500), ("c", 1900)]);
        assert!(is_breaking(&s, 1900, 3, 1000));
        assert!(!is_breaking(&s, 1900, 3, 500));
        assert!(!is_breaking(&s, 1900, 4, 1000));
        assert!(!is_breaking(&s, 1900, 0, 1000));
    }
}
