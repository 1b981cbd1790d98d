//! End-to-end tests of the `ztlake` binary and pipeline: one integration-test binary whose
//! modules live in `tests/e2e/` (one binary keeps link time down on small machines).

mod e2e;
