#![no_main]
// See myspool::fuzzing::chunk for what this target checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| myspool::fuzzing::chunk(data));
