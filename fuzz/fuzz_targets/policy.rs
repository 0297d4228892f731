//! Fuzz target `policy`: see `verdict_fuzz::checker::policy` for the checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| verdict_fuzz::checker::policy(data));
