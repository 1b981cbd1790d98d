//! The registry of provider formats: one parser file per format under
//! `providers/<provider>/`, one line in [`FORMATS`].
//!
//! Adding a format = a parser file exposing a `FORMAT: Format` static, a line below, and its
//! fixtures with expected rows under `normalize/tests/fixtures/` (see the README).

pub mod aws;
pub mod azure;
pub mod gcp;
pub mod generic;
pub mod istio;
pub mod kubernetes;
pub mod okta;
pub mod zeek;

use crate::format::Format;

/// Every registered format, in `ztlake formats` order. `--format auto` tries them all.
pub static FORMATS: &[&Format] = &[
    &aws::vpcflow::FORMAT,
    &aws::tgwflow::FORMAT,
    &aws::elb::FORMAT,
    &aws::cloudtrail::FORMAT,
    &aws::eventbridge::FORMAT,
    &aws::cloudwatch::FORMAT,
    &generic::message::FORMAT,
    &azure::nsgflow::FORMAT,
    &azure::vnetflow::FORMAT,
    &azure::flowtuple::FORMAT,
    &azure::entra_signin::FORMAT,
    &azure::keyvault::FORMAT,
    &azure::keyvault_audit::FORMAT,
    &istio::access::FORMAT,
    &kubernetes::audit::FORMAT,
    &kubernetes::certmanager::FORMAT,
    &zeek::ssl::FORMAT,
    &zeek::x509::FORMAT,
    &zeek::notice::FORMAT,
    &zeek::ocsp::FORMAT,
    &gcp::vpcflow::FORMAT,
    &gcp::lb::FORMAT,
    &gcp::audit::FORMAT,
    &gcp::workspace::FORMAT,
    &okta::systemlog::FORMAT,
];
