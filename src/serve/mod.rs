//! What `perps-news serve` serves beyond JSON: the event stream with resumable ids
//! ([`events`]), the Prometheus metrics ([`metrics`]) and the dashboard page ([`dashboard`]).
//! The HTTP server itself is [`crate::http`]; the routing, the `Host` check and the token
//! are in the `serve` command.

pub mod dashboard;
pub mod events;
pub mod metrics;
