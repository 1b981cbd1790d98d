//! Kubernetes formats (provider `kubernetes`): CertificateSigningRequest audit events and
//! cert-manager events and controller logs.

pub mod audit;
pub mod certmanager;
mod der;
mod klog;

#[cfg(test)]
mod corpus_tests;
#[cfg(test)]
mod peer_tests;
