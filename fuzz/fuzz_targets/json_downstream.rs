#![no_main]
//! See `webpubsub_client::fuzzing::json_downstream`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| webpubsub_client::fuzzing::json_downstream(data));
