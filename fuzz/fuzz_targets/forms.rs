//! See `herald_fuzz::checks::forms`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| herald_fuzz::checks::forms(data));
