//! Fuzz target: hostile bytes through the `aws-cloudwatch-logs` parser (see `src/lib.rs` for the invariants).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ztlake_fuzz::run("aws-cloudwatch-logs", data));
