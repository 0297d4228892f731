//! Fuzz target `action`: see `verdict_fuzz::checker::action` for the checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| verdict_fuzz::checker::action(data));
