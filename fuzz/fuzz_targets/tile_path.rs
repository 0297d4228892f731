//! Fuzz target `tile_path`: see `verdict_fuzz::tile_path` for the checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| verdict_fuzz::tile_path(data));
