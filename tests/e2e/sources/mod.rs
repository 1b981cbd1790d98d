//! The network sources against real protocol peers on loopback: Kafka (librdkafka's mock
//! cluster in the `ztlake-mock-kafka` helper process), S3 (moto server), Azure Blob (Azurite),
//! and the local / in-memory object stores (GCS has no emulator here: the in-memory store
//! stands in for it in the ingest crate's tests). `.ci/run` starts the emulators and exports
//! their endpoints; without those variables the emulator tests print a notice and skip.

mod kafka;
mod objects;

use std::collections::HashMap;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use ztlake_normalize::Table;
use ztlake_storage::Lake;

/// The endpoint in `var` when the emulator is configured; `None` (with a printed notice) when
/// the variable is absent. Panics with a clear message when it is set but nothing answers.
pub(crate) fn emulator(var: &str, what: &str) -> Option<String> {
    let Ok(endpoint) = std::env::var(var) else {
        eprintln!(
            "SKIPPED: {var} is not set, so no {what} is used (.ci/run starts one and sets it)"
        );
        return None;
    };
    let authority = endpoint
        .split_once("://")
        .map_or(endpoint.as_str(), |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let reachable = authority
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .map(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(3)));
    match reachable {
        Some(Ok(_)) => Some(endpoint),
        Some(Err(e)) => panic!("{var}={endpoint} is set but {what} does not answer there: {e}"),
        None => panic!("{var}={endpoint}: cannot resolve {authority:?}"),
    }
}

/// A name unique to this run, for buckets' prefixes and consumer groups.
pub(crate) fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{tag}-{}-{nanos}", std::process::id())
}

/// Every data table's txns, as the pipeline reads them back.
pub(crate) async fn txns_per_table(lake: &Lake) -> Vec<HashMap<String, i64>> {
    let mut out = Vec::new();
    for table in Table::DATA {
        out.push(lake.all_txns(table).await.expect("all txns"));
    }
    out
}
