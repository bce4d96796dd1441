#![no_main]
//! See `webpubsub_emulator::fuzzing::client_message`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| webpubsub_emulator::fuzzing::client_message(data));
