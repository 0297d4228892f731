//! Fuzz target `expr`: see `verdict_fuzz::checker::expr` for the checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| verdict_fuzz::checker::expr(data));
