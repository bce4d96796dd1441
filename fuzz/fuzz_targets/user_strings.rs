#![no_main]
//! See `webpubsub_client::fuzzing::user_strings`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| webpubsub_client::fuzzing::user_strings(data));
