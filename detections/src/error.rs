//! Errors of the detection engine.
//!
//! Loading never stops at the first problem: every problem of every rule file and reference file
//! becomes a [`Diagnostic`] (file, line, rule, message) and [`Error::Invalid`] carries them all.
//! Errors found while running (evaluation, reading reference files) name the rule or file.

use std::fmt;
use std::path::{Path, PathBuf};

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One problem found while loading rules or reference tables: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Diagnostic {
    /// The file the problem is in.
    pub file: PathBuf,
    /// 1-based line of the offending key or value (1 when the whole file is concerned).
    pub line: usize,
    /// Id of the rule, when known.
    pub rule: Option<String>,
    /// What is wrong, and what would be right.
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic at `file:line`.
    pub fn new(file: &Path, line: usize, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: file.to_path_buf(),
            line: line.max(1),
            rule: None,
            message: message.into(),
        }
    }

    /// The same diagnostic, naming the rule.
    pub fn for_rule(mut self, rule: Option<&str>) -> Diagnostic {
        self.rule = rule.map(str::to_owned);
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file.display(), self.line)?;
        if let Some(rule) = &self.rule {
            write!(f, "rule {rule}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Errors of the detection engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Rules or reference tables are invalid; every problem found is listed.
    #[error("{} problem(s) found:\n{}", .0.len(), list(.0))]
    Invalid(Vec<Diagnostic>),

    /// A file or directory could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// DataFusion failed while compiling or evaluating a rule.
    #[error("rule {rule}: {context}: {source}")]
    DataFusion {
        /// The rule.
        rule: String,
        /// What was being done.
        context: &'static str,
        /// The DataFusion error.
        #[source]
        source: Box<datafusion::error::DataFusionError>,
    },

    /// An Arrow kernel failed on a batch.
    #[error("rule {rule}: {context}: {source}")]
    Arrow {
        /// The rule (or table) concerned.
        rule: String,
        /// What was being done.
        context: &'static str,
        /// The Arrow error.
        #[source]
        source: arrow::error::ArrowError,
    },

    /// A batch or query result does not have the shape the engine needs.
    #[error("rule {rule}: {detail}")]
    Shape {
        /// The rule.
        rule: String,
        /// What is wrong.
        detail: String,
    },

    /// The background streaming thread stopped.
    #[error("the detection thread stopped: {0}")]
    Stopped(String),
}

fn list(diagnostics: &[Diagnostic]) -> String {
    diagnostics.iter().map(|d| format!("  {d}")).collect::<Vec<_>>().join("\n")
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io { path: path.to_path_buf(), source }
    }

    pub(crate) fn df(
        rule: &str,
        context: &'static str,
        source: datafusion::error::DataFusionError,
    ) -> Error {
        Error::DataFusion { rule: rule.to_owned(), context, source: Box::new(source) }
    }

    pub(crate) fn arrow(
        rule: &str,
        context: &'static str,
        source: arrow::error::ArrowError,
    ) -> Error {
        Error::Arrow { rule: rule.to_owned(), context, source }
    }

    pub(crate) fn shape(rule: &str, detail: impl Into<String>) -> Error {
        Error::Shape { rule: rule.to_owned(), detail: detail.into() }
    }

    /// The diagnostics of an [`Error::Invalid`] (empty for other errors).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            Error::Invalid(d) => d,
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostics_render_file_line_and_rule() {
        let d = Diagnostic::new(Path::new("rules/a.yaml"), 7, "unknown key `sevrity`")
            .for_rule(Some("zt-a"));
        assert_eq!(d.to_string(), "rules/a.yaml:7: rule zt-a: unknown key `sevrity`");
        let e = Error::Invalid(vec![d.clone(), Diagnostic::new(Path::new("b.yaml"), 0, "x")]);
        let text = e.to_string();
        assert!(text.starts_with("2 problem(s) found:"), "{text}");
        assert!(text.contains("b.yaml:1: x"), "line 0 becomes 1: {text}");
        assert_eq!(e.diagnostics().len(), 2);
    }
}
