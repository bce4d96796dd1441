#![no_main]
//! See `webpubsub_emulator::fuzzing::rest_body`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| webpubsub_emulator::fuzzing::rest_body(data));
