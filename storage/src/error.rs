//! Errors of the storage stage.
//!
//! One enum for the whole crate. Every message names what failed and where: the lake URL, the
//! table, the data file or partition. [`Error::kind`] classifies each error (bad input, external
//! system, internal bug) and [`Error::is_retryable`] says whether trying again later can help,
//! so one policy upstream decides between backoff and failing the pipeline.

use std::path::PathBuf;

use ztlake_normalize::schema::Table;

/// Result of storage operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, by domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The operator gave something unusable (a lake location, an option).
    Input,
    /// The storage system failed (object store, file system, a concurrent writer): often
    /// transient.
    External,
    /// A bug upstream or here: a batch that does not follow the canonical schema, a partition
    /// value outside its vocabulary, files committed to the wrong table.
    Internal,
}

/// Errors of the lake.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The lake location cannot be used.
    #[error("lake location {location:?}: {reason}")]
    Location {
        /// The location as given.
        location: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A writer or maintenance option is out of range.
    #[error("invalid option: {detail}")]
    Options {
        /// Which option and why.
        detail: String,
    },

    /// A Delta Lake operation failed.
    #[error("lake {url}: table {table}: {op}: {source}")]
    Delta {
        /// Table URL.
        url: String,
        /// Table.
        table: Table,
        /// What was being done (load, create, commit, optimize, vacuum, ...).
        op: &'static str,
        /// The Delta error.
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },

    /// An object store request failed (remote lakes: uploads and deletes of data files).
    #[error("lake {url}: {path}: {source}")]
    ObjectStore {
        /// Table URL.
        url: String,
        /// Object path relative to the table root.
        path: String,
        /// The object store error.
        #[source]
        source: Box<object_store::Error>,
    },

    /// A local file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// Parquet encoding failed.
    #[error("table {table}: data file {path}: parquet: {source}")]
    Parquet {
        /// Table.
        table: Table,
        /// Data file path relative to the table root.
        path: String,
        /// The Parquet error.
        #[source]
        source: Box<parquet::errors::ParquetError>,
    },

    /// An Arrow kernel failed while splitting a batch.
    #[error("table {table}: arrow: {source}")]
    Arrow {
        /// Table.
        table: Table,
        /// The Arrow error.
        #[source]
        source: arrow::error::ArrowError,
    },

    /// A batch handed to the writer does not have the table's canonical schema.
    #[error("table {table}: batch does not match the canonical schema: {detail}")]
    Schema {
        /// Table.
        table: Table,
        /// The first difference found.
        detail: String,
    },

    /// The table in the lake has a column whose type differs from the canonical one
    /// (canonical schemas only grow; a changed type needs a migration).
    #[error(
        "lake {url}: table {table}: column {column} is {found} in the lake but {expected} in the canonical schema"
    )]
    SchemaConflict {
        /// Table URL.
        url: String,
        /// Table.
        table: Table,
        /// Column name.
        column: String,
        /// Type in the lake.
        found: String,
        /// Canonical type.
        expected: String,
    },

    /// A partition value is outside its vocabulary or format. Partition values never come raw
    /// from a record, so this is a bug upstream.
    #[error("table {table}: invalid partition value: {detail}")]
    Partition {
        /// Table.
        table: Table,
        /// Which value and why.
        detail: String,
    },

    /// A commit carries a transaction whose version is below the one recorded in the table
    /// while other transactions advance: committing would duplicate rows.
    #[error(
        "lake {url}: table {table}: txn {app_id} version {given} is below the recorded version {recorded}"
    )]
    TxnRegression {
        /// Table URL.
        url: String,
        /// Table.
        table: Table,
        /// Application id of the transaction.
        app_id: String,
        /// Version given to the commit.
        given: i64,
        /// Version recorded in the table.
        recorded: i64,
    },

    /// Something that should not happen did (a data file committed to the wrong table, an
    /// encoder thread that panicked, ...).
    #[error("table {table}: internal error: {detail}")]
    Internal {
        /// Table.
        table: Table,
        /// What happened.
        detail: String,
    },

    /// DataFusion failed while registering the lake's tables.
    #[error("lake {url}: table {table}: datafusion: {source}")]
    DataFusion {
        /// Table URL.
        url: String,
        /// Table.
        table: Table,
        /// The DataFusion error.
        #[source]
        source: Box<datafusion::error::DataFusionError>,
    },
}

impl Error {
    /// The domain of the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Location { .. } | Error::Options { .. } => ErrorKind::Input,
            Error::Delta { source, .. } => delta_kind(source),
            Error::ObjectStore { .. } | Error::Io { .. } | Error::DataFusion { .. } => {
                ErrorKind::External
            }
            Error::Parquet { source, .. } => match source.as_ref() {
                parquet::errors::ParquetError::External(_) => ErrorKind::External,
                _ => ErrorKind::Internal,
            },
            Error::Arrow { .. }
            | Error::Schema { .. }
            | Error::SchemaConflict { .. }
            | Error::Partition { .. }
            | Error::TxnRegression { .. }
            | Error::Internal { .. } => ErrorKind::Internal,
        }
    }

    /// Whether the same call may succeed later (network, throttling, a full disk being
    /// cleaned, a concurrent writer).
    pub fn is_retryable(&self) -> bool {
        self.kind() == ErrorKind::External
    }

    pub(crate) fn delta(
        url: &url::Url,
        table: Table,
        op: &'static str,
        source: deltalake::DeltaTableError,
    ) -> Error {
        Error::Delta { url: url.to_string(), table, op, source: Box::new(source) }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { path: path.into(), source }
    }

    pub(crate) fn internal(table: Table, detail: impl Into<String>) -> Error {
        Error::Internal { table, detail: detail.into() }
    }
}

fn delta_kind(err: &deltalake::DeltaTableError) -> ErrorKind {
    use deltalake::DeltaTableError as E;
    match err {
        E::InvalidTableLocation(_) | E::NotATable(_) => ErrorKind::Input,
        E::SchemaMismatch { .. } | E::Generic(_) => ErrorKind::Internal,
        _ => ErrorKind::External,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_table_and_classify() {
        let err = Error::Partition { table: Table::Flows, detail: "provider \"evil\"".into() };
        assert_eq!(err.to_string(), "table flows: invalid partition value: provider \"evil\"");
        assert_eq!(err.kind(), ErrorKind::Internal);
        assert!(!err.is_retryable());
        let err = Error::io("/lake/flows", std::io::Error::other("disk full"));
        assert_eq!(err.to_string(), "/lake/flows: disk full");
        assert!(err.is_retryable());
    }
}
