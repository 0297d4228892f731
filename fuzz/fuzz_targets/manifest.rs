//! Fuzz target `manifest`: see `verdict_fuzz::manifest` for the checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| verdict_fuzz::manifest(data));
