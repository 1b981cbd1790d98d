//! Okta formats: the System Log (`okta-systemlog`).

#[cfg(test)]
mod peer_tests;
pub mod systemlog;
