//! Fuzz target `checkpoint`: see `verdict_fuzz::checkpoint` for the checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| verdict_fuzz::checkpoint(data));
