#![no_main]
// See myspool::fuzzing::csv for what this target checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| myspool::fuzzing::csv(data));
