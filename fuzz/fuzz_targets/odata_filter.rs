#![no_main]
//! See `webpubsub_emulator::fuzzing::odata_filter`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| webpubsub_emulator::fuzzing::odata_filter(data));
