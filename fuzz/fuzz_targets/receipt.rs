//! Fuzz target `receipt`: see `verdict_fuzz::receipt` for the checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| verdict_fuzz::receipt(data));
