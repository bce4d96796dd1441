#![no_main]
//! See `webpubsub_client::fuzzing::proxy_response`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| webpubsub_client::fuzzing::proxy_response(data));
