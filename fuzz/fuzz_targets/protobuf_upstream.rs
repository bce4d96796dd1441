#![no_main]
//! See `webpubsub_emulator::fuzzing::protobuf_upstream`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| webpubsub_emulator::fuzzing::protobuf_upstream(data));
