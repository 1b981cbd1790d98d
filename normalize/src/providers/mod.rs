//! The registry of provider formats: one parser file per format under
//! `providers/<provider>/`, one line in [`FORMATS`].
//!
//! Adding a format = a parser file exposing a `FORMAT: Format` static, a line below, and its
//! fixtures with expected rows under `normalize/tests/fixtures/` (see the README).

pub mod aws;

use crate::format::Format;

/// Every registered format, in `ztlake formats` order. `--format auto` tries them all.
pub static FORMATS: &[&Format] = &[&aws::vpcflow::FORMAT];
