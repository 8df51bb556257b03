//! See `herald_fuzz::checks::smtp_reply`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| herald_fuzz::checks::smtp_reply(data));
