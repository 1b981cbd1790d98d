//! Errors of the runbooks crate: every problem of every runbook file (with file and line), and
//! the errors of on-call delivery — configuration (naming the key), the outbox (naming the
//! path), notifiers (naming the channel and destination, classified as transient or not),
//! signed links and the lifecycle sink.

use std::fmt;
use std::path::PathBuf;

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One problem in a runbook file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// Errors of the catalog.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Runbook files are invalid; every problem is listed.
    #[error("{} problem(s) in the runbooks:\n{}", .0.len(), .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),

    /// The runbook directory or a file cannot be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// No runbook has this id.
    #[error("no runbook {id:?}; `ztlake runbooks` lists them")]
    NotFound {
        /// The id asked for.
        id: String,
    },

    /// The on-call configuration is invalid; every problem is listed, each naming its key.
    #[error("{} problem(s) in the on-call configuration{}:\n{}", .problems.len(), .source_name.as_deref().map(|s| format!(" ({s})")).unwrap_or_default(), .problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Config {
        /// The file the configuration came from, when known.
        source_name: Option<String>,
        /// The problems, each `key: message`.
        problems: Vec<String>,
    },

    /// The outbox directory or one of its files cannot be read or written.
    #[error("outbox {}: {message}", path.display())]
    Outbox {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        message: String,
    },

    /// Delivering a notification failed.
    #[error("{channel} to {destination}: {message}")]
    Delivery {
        /// The channel (`email`, `webhook:<name>`).
        channel: String,
        /// Where it was going (recipients, host or URL without secrets).
        destination: String,
        /// What happened.
        message: String,
        /// Whether trying again later may succeed (a down server, a timeout, a 5xx); false
        /// for refusals that will not change (a refused destination, a 4xx, a bad address).
        transient: bool,
    },

    /// An acknowledge/resolve link is malformed, tampered with or expired.
    #[error("link rejected: {0}")]
    Link(String),

    /// The lifecycle sink (the lake, for the binary) could not record or answer.
    #[error("lifecycle sink: {0}")]
    Sink(String),
}

impl Error {
    /// Whether retrying may succeed (delivery errors classify themselves; outbox and sink
    /// errors are treated as transient, configuration and link errors are not).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Delivery { transient, .. } => *transient,
            Error::Outbox { .. } | Error::Sink(_) | Error::Io { .. } => true,
            Error::Invalid(_) | Error::NotFound { .. } | Error::Config { .. } | Error::Link(_) => {
                false
            }
        }
    }

    pub(crate) fn outbox(path: &std::path::Path, message: impl fmt::Display) -> Error {
        Error::Outbox { path: path.to_path_buf(), message: message.to_string() }
    }

    pub(crate) fn config(problem: impl Into<String>) -> Error {
        Error::Config { source_name: None, problems: vec![problem.into()] }
    }
}
