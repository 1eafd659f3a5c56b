#![no_main]
// See myspool::fuzzing::load_data for what this target checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| myspool::fuzzing::load_data(data));
