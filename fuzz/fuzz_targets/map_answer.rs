#![no_main]
// See myspool::fuzzing::map_answer for what this target checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| myspool::fuzzing::map_answer(data));
