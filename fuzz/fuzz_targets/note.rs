//! Fuzz target `note`: see `verdict_fuzz::note` for the checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| verdict_fuzz::note(data));
