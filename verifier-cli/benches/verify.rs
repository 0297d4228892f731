//! Benchmarks (placeholder until the owning issue lands).
fn main() {}
