//! Errors of the runbook catalog: every problem of every runbook file, with file and line.

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
}
