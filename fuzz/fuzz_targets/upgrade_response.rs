#![no_main]
//! See `webpubsub_client::fuzzing::upgrade_response`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| webpubsub_client::fuzzing::upgrade_response(data));
