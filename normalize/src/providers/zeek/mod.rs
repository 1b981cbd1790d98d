//! Zeek network-sensor logs (provider `zeek`): TLS connections and certificates seen on the
//! wire.
//!
//! Zeek's ASCII logs are self-describing: `#separator`, `#set_separator`, `#empty_field`,
//! `#unset_field`, `#path`, `#fields` and `#types` header lines define how the data lines that
//! follow are read, and may repeat mid-stream (rotated or concatenated logs). One reader,
//! [`log::ZeekParser`], follows those headers and dispatches each data line on the current
//! `#path`; the four registered formats (`zeek-ssl`, `zeek-x509`, `zeek-notice`, `zeek-ocsp`)
//! all create that reader, and the rows are labelled with the format of the `#path` they came
//! from. Every Zeek header line scores the same in every Zeek format's sniff, so `--format auto`
//! keeps one reader for a whole file whatever logs it concatenates.

pub mod log;
pub mod notice;
pub mod ocsp;
pub mod ssl;
pub mod x509;
