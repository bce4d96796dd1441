#![no_main]
//! See `webpubsub_emulator::fuzzing::jwt`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| webpubsub_emulator::fuzzing::jwt(data));
