//! A circuit breaker per provider: after `threshold` calls in a row fail (each after its own
//! retries), the provider is not called for `cooldown`; then one probe call is let through,
//! and its success closes the breaker again (its failure re-opens it). Each opening raises
//! an alert, which the run or the worker publishes as `circuit:breaker:open`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

type AlertFn = dyn Fn(&str, &str) + Send + Sync;

/// Where breaker openings go: a handler connected once the bus exists (until then, and
/// without Redis, they are only logged).
#[derive(Clone, Default)]
pub struct Alerts(Arc<Mutex<Option<Arc<AlertFn>>>>);

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Alerts")
    }
}

impl Alerts {
    /// Sends every later opening to `f(breaker_name, reason)`.
    pub fn connect(&self, f: impl Fn(&str, &str) + Send + Sync + 'static) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(f));
    }

    fn raise(&self, name: &str, reason: &str) {
        let handler = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(f) = handler {
            f(name, reason);
        }
    }
}

#[derive(Debug)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
        reason: String,
    },
    /// Cool-down over: one call is on its way to test the provider.
    Probing,
}

/// The breaker of one provider (shared by its clients and threads).
#[derive(Debug)]
pub struct Breaker {
    name: String,
    threshold: u32,
    cooldown: Duration,
    alerts: Alerts,
    state: Mutex<State>,
}

impl Breaker {
    /// A closed breaker named `name` (as published in `breakerName`).
    pub fn new(name: &str, threshold: u32, cooldown: Duration, alerts: Alerts) -> Self {
        Breaker {
            name: name.to_string(),
            threshold: threshold.max(1),
            cooldown,
            alerts,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the breaker is open (or probing) right now.
    pub fn is_open(&self) -> bool {
        !matches!(*self.lock(), State::Closed { .. })
    }

    /// Whether a call may go out now; the reason when not.
    ///
    /// # Errors
    /// A message naming the breaker and why it is open.
    pub fn allow(&self) -> Result<(), String> {
        let mut s = self.lock();
        match &*s {
            State::Closed { .. } => Ok(()),
            State::Open { until, reason } => {
                if Instant::now() >= *until {
                    tracing::info!(breaker = %self.name, "Circuit breaker cool-down over; probing the provider.");
                    *s = State::Probing;
                    Ok(())
                } else {
                    Err(format!(
                        "{}: {reason}; next probe in {:.1}s",
                        self.name,
                        until
                            .saturating_duration_since(Instant::now())
                            .as_secs_f64()
                    ))
                }
            }
            State::Probing => Err(format!("{}: a probe call is in flight", self.name)),
        }
    }

    /// A call succeeded: the breaker closes.
    pub fn success(&self) {
        let mut s = self.lock();
        if !matches!(*s, State::Closed { .. }) {
            tracing::info!(breaker = %self.name, "Circuit breaker closed: the probe call succeeded.");
        }
        *s = State::Closed { failures: 0 };
    }

    /// A call failed after its retries.
    pub fn failure(&self, reason: &str) {
        let mut s = self.lock();
        let open = match &mut *s {
            State::Closed { failures } => {
                *failures += 1;
                *failures >= self.threshold
            }
            State::Probing => true,
            State::Open { .. } => false,
        };
        if open {
            let reason = match &*s {
                State::Probing => format!("probe failed: {reason}"),
                _ => format!("{} calls failed in a row; last: {reason}", self.threshold),
            };
            *s = State::Open {
                until: Instant::now() + self.cooldown,
                reason: reason.clone(),
            };
            drop(s);
            tracing::warn!(breaker = %self.name, cooldown_s = self.cooldown.as_secs_f64(), %reason, "Circuit breaker open.");
            self.alerts.raise(&self.name, &reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_probes_after_cooldown_and_closes_on_success() {
        let seen = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
        let alerts = Alerts::default();
        let sink = seen.clone();
        alerts.connect(move |n, r| sink.lock().unwrap().push((n.into(), r.into())));
        let b = Breaker::new("openrouter", 2, Duration::from_millis(30), alerts);
        b.failure("500");
        assert!(b.allow().is_ok(), "one failure keeps it closed");
        b.failure("500");
        assert!(b.allow().is_err(), "open after two");
        assert_eq!(seen.lock().unwrap().len(), 1);
        assert_eq!(seen.lock().unwrap()[0].0, "openrouter");
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow().is_ok(), "the probe goes out");
        assert!(b.allow().is_err(), "only one probe at a time");
        b.failure("still 500");
        assert!(b.allow().is_err(), "failed probe re-opens");
        assert_eq!(seen.lock().unwrap().len(), 2);
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow().is_ok());
        b.success();
        assert!(!b.is_open());
        assert!(b.allow().is_ok());
    }
}
