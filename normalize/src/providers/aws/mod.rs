//! Amazon Web Services formats.

pub mod cloudtrail;
pub mod cloudwatch;
pub(crate) mod common;
pub mod elb;
pub mod eventbridge;
pub mod tgwflow;
pub mod vpcflow;

#[cfg(test)]
mod peer_tests;
#[cfg(test)]
mod robustness_tests;
