//! Worker throughput benchmark (filled in with the worker; see README "Benchmarks").

fn main() {}
