//! The one error type of stage 1 (ingest).
//!
//! Every variant names the input it concerns (the path as the user gave it, or `<stdin>`; the
//! brokers and topic of a Kafka source; the URL of an object-store source), so a message is
//! actionable on its own. [`Error::class`] tells a caller's policy whether retrying can help.

use std::io;

use crate::Compression;

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong while finding, opening or reading an input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input could not be opened or inspected (missing, permission denied, ...).
    #[error("{input}: cannot open: {cause}")]
    Open {
        /// The input as given.
        input: String,
        /// The underlying IO error.
        cause: io::Error,
    },
    /// A directory could not be walked (an entry is unreadable or a symlink dangles).
    #[error("{input}: cannot read directory entry: {cause}")]
    Walk {
        /// The entry that failed.
        input: String,
        /// The underlying IO error.
        cause: io::Error,
    },
    /// Reading the input failed.
    #[error("{input}: read error: {cause}")]
    Read {
        /// The input being read.
        input: String,
        /// The underlying IO error.
        cause: io::Error,
    },
    /// The compressed stream is corrupt or truncated.
    #[error("{input}: corrupt or truncated {compression} stream: {cause}")]
    Decompress {
        /// The input being read.
        input: String,
        /// The compression detected for it.
        compression: Compression,
        /// The decoder's error.
        cause: io::Error,
    },
    /// The decompressed content is larger than the configured cap (a zip-bomb guard).
    #[error("{input}: decompressed size exceeds {limit} bytes")]
    DecompressedTooLarge {
        /// The input being read.
        input: String,
        /// The cap, `ReadOptions::max_decompressed_bytes`.
        limit: u64,
    },
    /// The input ends inside a JSON object or array.
    #[error("{input}: input ends inside a JSON value starting on line {line}")]
    UnterminatedJson {
        /// The input being read.
        input: String,
        /// The line where the unterminated value starts.
        line: u64,
    },
    /// `RecordReader::fingerprint` was first called after records had been read, so the start of
    /// the content is gone.
    #[error("{input}: fingerprint requested after records were read")]
    FingerprintAfterRead {
        /// The input being read.
        input: String,
    },
    /// A source's configuration is unusable (a missing field, a conflicting property, a secret
    /// that cannot be read).
    #[error("{source_name}: invalid configuration: {detail}")]
    Config {
        /// The source: Kafka brokers and group, or the object-store URL.
        source_name: String,
        /// Which setting and why.
        detail: String,
    },
    /// The Kafka client or broker failed (connect, subscribe, commit, a fatal client error).
    #[error("kafka {brokers} (group {group}{}): {op}: {cause}", topic_suffix(topic.as_deref()))]
    Kafka {
        /// The bootstrap servers.
        brokers: String,
        /// The consumer group.
        group: String,
        /// The topic (and partition) concerned, when one is.
        topic: Option<String>,
        /// What was being done.
        op: &'static str,
        /// The client's error.
        cause: BoxError,
    },
    /// An object store failed (list, get, or building the client).
    #[error("{url}: {op}: {cause}")]
    ObjectStore {
        /// The source URL, or the object URL.
        url: String,
        /// What was being done.
        op: &'static str,
        /// The store's error.
        cause: BoxError,
    },
}

/// A boxed error from a client library (librdkafka, object_store).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

fn topic_suffix(topic: Option<&str>) -> String {
    topic.map(|t| format!(", topic {t}")).unwrap_or_default()
}

/// Which kind of failure an [`Error`] is, to choose between retry and dead-letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The input itself is bad or absent (missing path, corrupt stream, size cap); retrying the
    /// same input gives the same result.
    BadInput,
    /// The system underneath failed while reading; a retry may succeed.
    External,
    /// The API was misused; a bug in the caller.
    Internal,
}

impl Error {
    /// Classifies the error for a retry policy.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Open { .. }
            | Error::Walk { .. }
            | Error::Decompress { .. }
            | Error::DecompressedTooLarge { .. }
            | Error::UnterminatedJson { .. }
            | Error::Config { .. } => ErrorClass::BadInput,
            Error::Read { .. } | Error::Kafka { .. } | Error::ObjectStore { .. } => {
                ErrorClass::External
            }
            Error::FingerprintAfterRead { .. } => ErrorClass::Internal,
        }
    }
}

/// Whether an IO error carries an [`Error`] of this crate (set by the readers of `decompress`).
pub(crate) fn carries_error(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Error>())
}

/// Converts an IO error from a reader into an [`Error`]: the crate error it carries, if any,
/// otherwise a read error naming `input`.
pub(crate) fn from_io(input: &str, e: io::Error) -> Error {
    if !carries_error(&e) {
        return Error::Read { input: input.to_owned(), cause: e };
    }
    let kind = e.kind();
    match e.into_inner().map(|inner| inner.downcast::<Error>()) {
        Some(Ok(error)) => *error,
        Some(Err(other)) => {
            Error::Read { input: input.to_owned(), cause: io::Error::new(kind, other) }
        }
        None => Error::Read { input: input.to_owned(), cause: io::Error::from(kind) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_io_unwraps_crate_error_and_wraps_others() {
        let carried =
            io::Error::other(Error::DecompressedTooLarge { input: "a.gz".into(), limit: 7 });
        let e = from_io("ignored", carried);
        assert!(matches!(e, Error::DecompressedTooLarge { limit: 7, .. }), "{e:?}");
        assert_eq!(e.to_string(), "a.gz: decompressed size exceeds 7 bytes");

        let plain = io::Error::new(io::ErrorKind::PermissionDenied, "nope");
        let e = from_io("b.log", plain);
        assert_eq!(e.to_string(), "b.log: read error: nope");
        assert_eq!(e.class(), ErrorClass::External);
    }
}
