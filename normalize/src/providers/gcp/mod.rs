//! Google Cloud formats, Google Workspace included: VPC flow logs (`gcp-vpcflow`), Application
//! Load Balancer request logs (`gcp-lb`), Cloud Audit Logs with sign-ins and Certificate
//! Authority Service certificates (`gcp-audit`), and the Workspace login activity of the Admin
//! SDK Reports API (`gcp-workspace-login`).

pub mod audit;
pub(crate) mod common;
pub mod lb;
pub(crate) mod login;
#[cfg(test)]
mod peer_tests;
pub mod vpcflow;
pub mod workspace;
