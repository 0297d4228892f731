//! Fuzz target `tlog_proof`: see `verdict_fuzz::tlog_proof` for the checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| verdict_fuzz::tlog_proof(data));
