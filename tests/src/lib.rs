//! Shared support of Verdict's end-to-end tests: locating (and building) the real binaries,
//! starting a real `verdict-server` on a free loopback port, a fault-injecting HTTP proxy, and the
//! tamper suite generator.
//!
//! The tests themselves are in `tests/tests/e2e/` (one integration binary, `e2e`).

pub mod bins;
pub mod proxy;
pub mod server;
pub mod soak;
pub mod tamper;
