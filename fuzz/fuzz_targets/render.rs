//! See `herald_fuzz::checks::render`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| herald_fuzz::checks::render(data));
