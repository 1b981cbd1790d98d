//! Fuzz target: hostile bytes through the `k8s-cert-manager` parser (see `src/lib.rs` for the invariants).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ztlake_fuzz::run("k8s-cert-manager", data));
