#![no_main]
// See myspool::fuzzing::dump_files for what this target checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| myspool::fuzzing::dump_files(data));
