#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gild_core::fuzzing::bom(data));
