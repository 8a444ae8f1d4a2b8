#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gild_slack::fuzzing::slack(data));
