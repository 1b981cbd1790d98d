//! Microsoft Azure formats, including Entra ID (Azure AD).
//!
//! - [`nsgflow`]: NSG flow logs v1/v2 (`flows`).
//! - [`vnetflow`]: VNet flow logs v4 (`flows`).
//! - [`flowtuple`]: bare NSG/VNet flow tuples, one CSV line each (`flows`).
//! - [`entra_signin`]: Entra ID sign-in logs, all six categories (`signins`).
//! - [`keyvault`]: Key Vault Event Grid events, Event Grid and CloudEvents schemas
//!   (`cert_events`).
//! - [`keyvault_audit`]: Key Vault `AuditEvent` diagnostic logs and Activity-log Key Vault
//!   certificate operations (`cert_events`).
//!
//! Shared pieces: the `{"records":[...]}` envelope and resource-id helpers (`common`), and the
//! flow-tuple decoder with its per-flow summing (`tuples`).

mod common;
pub mod entra_signin;
pub mod flowtuple;
pub mod keyvault;
pub mod keyvault_audit;
pub mod nsgflow;
mod tuples;
pub mod vnetflow;

#[cfg(test)]
mod peer_tests;
