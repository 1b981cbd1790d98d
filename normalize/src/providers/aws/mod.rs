//! Amazon Web Services formats.

pub mod vpcflow;
