#![no_main]
// See myspool::fuzzing::jsonl_output for what this target checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| myspool::fuzzing::jsonl_output(data));
