//! The lake: one Delta Lake table per canonical table under one location (storage stage).
//!
//! A [`Lake`] is opened on a plain path or a URL (`file://`, `s3://`, `gs://`, `az://`,
//! `abfss://`, `memory://`). Every table lives at `<lake>/<table>/`, partitioned by `provider`
//! and `date`. [`Lake::table`] loads a table, creating it on first use with the canonical schema
//! (name, description, partition columns, the statistics columns) and adding the columns the
//! canonical schema gained since it was created — canonical schemas only grow.
//!
//! One object-store client serves all tables of a lake, and each table's loaded state is cached
//! and refreshed incrementally, so committing often stays cheap. Credentials come from the usual
//! environment variables (object_store's `from_env` behaviour through deltalake's handlers) or
//! from [`Lake::open_with_options`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Once};

use deltalake::kernel::StructField;
use deltalake::logstore::{LogStoreRef, StorageConfig, logstore_with, object_store_factories};
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableError};
use tokio::sync::Mutex;
use url::Url;
use ztlake_normalize::schema::{PARTITION_COLUMNS, Table};

use crate::error::{Error, Result};
use crate::layout::{STATS_COLUMNS_PROPERTY, delta_fields, delta_type, stats_columns_property};
use crate::sink::UploadRuntime;
use crate::writer::{Destination, TableWriter, WriterOptions};

/// URL schemes a lake may live on.
const SCHEMES: [&str; 10] =
    ["file", "memory", "s3", "s3a", "gs", "az", "azure", "abfs", "abfss", "adl"];

/// Attempts at schema evolution when concurrent writers race.
const EVOLVE_ATTEMPTS: usize = 3;

/// A lake of Delta tables. Cheap to clone; clones share the store and the table cache.
#[derive(Clone)]
pub struct Lake {
    inner: Arc<Inner>,
}

struct Inner {
    url: Url,
    local_root: Option<PathBuf>,
    tables: [TableSlot; Table::COUNT],
    /// Remote lakes: the runtime of the writers' uploads, created with the first writer.
    uploads: std::sync::Mutex<Option<Arc<UploadRuntime>>>,
}

struct TableSlot {
    url: Url,
    log_store: LogStoreRef,
    cached: Mutex<Option<DeltaTable>>,
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lake").field("url", &self.inner.url.as_str()).finish()
    }
}

/// Make sure the cloud object stores are registered with deltalake (its constructors do this
/// too, but only if the linker keeps them).
fn register_object_stores() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        deltalake::aws::register_handlers(None);
        deltalake::gcp::register_handlers(None);
        deltalake::azure::register_handlers(None);
    });
}

/// Parse a lake location into its URL (with a trailing slash) and, for local lakes, its path.
fn parse_location(location: &str) -> Result<(Url, Option<PathBuf>)> {
    let bad = |reason: String| Error::Location { location: location.to_string(), reason };
    if location.trim().is_empty() {
        return Err(bad("empty".into()));
    }
    let scheme = location
        .split_once("://")
        .map(|(s, _)| s)
        .filter(|s| s.len() > 1 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '+'));
    let (mut url, local) = match scheme {
        Some(scheme) => {
            let scheme = scheme.to_ascii_lowercase();
            if !SCHEMES.contains(&scheme.as_str()) {
                return Err(bad(format!(
                    "unsupported scheme {scheme}; use one of {}",
                    SCHEMES.join(", ")
                )));
            }
            let url = Url::parse(location).map_err(|e| bad(e.to_string()))?;
            let local = if url.scheme() == "file" {
                Some(url.to_file_path().map_err(|()| bad("not a local path".into()))?)
            } else {
                None
            };
            (url, local)
        }
        None => {
            let path = std::path::absolute(location).map_err(|e| bad(e.to_string()))?;
            let url =
                Url::from_directory_path(&path).map_err(|()| bad("not a usable path".into()))?;
            (url, Some(path))
        }
    };
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok((url, local))
}

impl Lake {
    /// Open the lake at `location`: a plain path (relative or absolute; the directory is created
    /// when first written) or a URL `file://`, `s3://`, `gs://`, `az://` / `abfss://`,
    /// `memory://`. Credentials come from the environment.
    ///
    /// # Errors
    /// [`Error::Location`] for an unusable location; [`Error::Delta`] when the store cannot be
    /// set up (e.g. missing cloud configuration).
    pub async fn open(location: &str) -> Result<Lake> {
        Lake::open_with_options(location, HashMap::new()).await
    }

    /// Like [`Lake::open`], with object-store options (e.g. `aws_endpoint`, `allow_http`) in
    /// addition to the environment.
    pub async fn open_with_options(
        location: &str,
        storage_options: HashMap<String, String>,
    ) -> Result<Lake> {
        register_object_stores();
        let (url, local_root) = parse_location(location)?;
        let location_err = |e: DeltaTableError| Error::Location {
            location: url.to_string(),
            reason: e.to_string(),
        };
        let config = StorageConfig::parse_options(storage_options).map_err(location_err)?;
        let scheme = Url::parse(&format!("{}://", url.scheme()))
            .map_err(|e| Error::Location { location: url.to_string(), reason: e.to_string() })?;
        let factory =
            object_store_factories().get(&scheme).map(|f| f.value().clone()).ok_or_else(|| {
                Error::Location {
                    location: url.to_string(),
                    reason: format!("no object store registered for {}", url.scheme()),
                }
            })?;
        let (root_store, _) = factory.parse_url_opts(&url, &config).map_err(location_err)?;
        let slot = |table: Table| -> Result<TableSlot> {
            let table_url = url.join(&format!("{}/", table.name())).map_err(|e| {
                Error::Location { location: url.to_string(), reason: e.to_string() }
            })?;
            let log_store = logstore_with(root_store.clone(), &table_url, config.clone())
                .map_err(|e| Error::delta(&table_url, table, "open store", e))?;
            Ok(TableSlot { url: table_url, log_store, cached: Mutex::new(None) })
        };
        let tables = [
            slot(Table::ALL[0])?,
            slot(Table::ALL[1])?,
            slot(Table::ALL[2])?,
            slot(Table::ALL[3])?,
            slot(Table::ALL[4])?,
            slot(Table::ALL[5])?,
        ];
        Ok(Lake {
            inner: Arc::new(Inner {
                url,
                local_root,
                tables,
                uploads: std::sync::Mutex::new(None),
            }),
        })
    }

    /// The lake's URL (ends with `/`).
    pub fn url(&self) -> &Url {
        &self.inner.url
    }

    /// The URL of table `t` (`<lake>/<table>/`).
    pub fn table_url(&self, t: Table) -> &Url {
        &self.slot(t).url
    }

    /// Whether the lake is on the local file system (writers write in place, no upload).
    pub fn is_local(&self) -> bool {
        self.inner.local_root.is_some()
    }

    fn slot(&self, t: Table) -> &TableSlot {
        &self.inner.tables[t as usize]
    }

    pub(crate) fn log_store(&self, t: Table) -> LogStoreRef {
        self.slot(t).log_store.clone()
    }

    pub(crate) fn delta_err(&self, t: Table, op: &'static str, e: DeltaTableError) -> Error {
        Error::delta(&self.slot(t).url, t, op, e)
    }

    /// Whether table `t` exists (has a Delta log).
    pub async fn exists(&self, t: Table) -> Result<bool> {
        if self.slot(t).cached.lock().await.is_some() {
            return Ok(true);
        }
        self.log_store(t).is_delta_table_location().await.map_err(|e| self.delta_err(t, "probe", e))
    }

    /// Load table `t` at its latest version; create it when missing; add the columns the
    /// canonical schema gained.
    ///
    /// # Errors
    /// [`Error::Delta`] for storage failures, [`Error::SchemaConflict`] when a column of the
    /// table has another type than the canonical one (or the partitioning differs).
    pub async fn table(&self, t: Table) -> Result<DeltaTable> {
        let slot = self.slot(t);
        let mut cached = slot.cached.lock().await;
        let table = match cached.take() {
            Some(mut table) => {
                table.update_state().await.map_err(|e| self.delta_err(t, "refresh", e))?;
                table
            }
            None => self.load_or_create(t).await?,
        };
        let table = self.evolve(t, table).await?;
        *cached = Some(table.clone());
        Ok(table)
    }

    /// Load table `t` if it exists, without creating or evolving it.
    pub(crate) async fn existing(&self, t: Table) -> Result<Option<DeltaTable>> {
        let slot = self.slot(t);
        let mut cached = slot.cached.lock().await;
        if let Some(table) = cached.as_mut() {
            table.update_state().await.map_err(|e| self.delta_err(t, "refresh", e))?;
            return Ok(Some(table.clone()));
        }
        if !slot
            .log_store
            .is_delta_table_location()
            .await
            .map_err(|e| self.delta_err(t, "probe", e))?
        {
            return Ok(None);
        }
        let mut table = DeltaTable::new(slot.log_store.clone());
        table.load().await.map_err(|e| self.delta_err(t, "load", e))?;
        *cached = Some(table.clone());
        Ok(Some(table))
    }

    /// Forget the cached state of `t` (after an operation that returned a newer table).
    pub(crate) async fn remember(&self, t: Table, table: DeltaTable) {
        *self.slot(t).cached.lock().await = Some(table);
    }

    async fn load_or_create(&self, t: Table) -> Result<DeltaTable> {
        let log_store = self.log_store(t);
        if log_store.is_delta_table_location().await.map_err(|e| self.delta_err(t, "probe", e))? {
            let mut table = DeltaTable::new(log_store);
            table.load().await.map_err(|e| self.delta_err(t, "load", e))?;
            return Ok(table);
        }
        let created = DeltaTable::new(log_store.clone())
            .create()
            .with_table_name(t.name())
            .with_comment(t.description())
            .with_columns(delta_fields(t))
            .with_partition_columns(PARTITION_COLUMNS)
            .with_configuration([(STATS_COLUMNS_PROPERTY, Some(stats_columns_property(t)))])
            .with_save_mode(SaveMode::Ignore)
            .await;
        match created {
            Ok(table) => Ok(table),
            // Another writer created it first: use theirs.
            Err(DeltaTableError::VersionAlreadyExists(_)) => {
                let mut table = DeltaTable::new(log_store);
                table.load().await.map_err(|e| self.delta_err(t, "load", e))?;
                Ok(table)
            }
            Err(e) => Err(self.delta_err(t, "create", e)),
        }
    }

    /// Bring an existing table up to the canonical schema (add missing columns, refresh the
    /// statistics columns property); reject type or partitioning conflicts.
    async fn evolve(&self, t: Table, mut table: DeltaTable) -> Result<DeltaTable> {
        for attempt in 1..=EVOLVE_ATTEMPTS {
            let state = table.snapshot().map_err(|e| self.delta_err(t, "load", e))?;
            let metadata = state.metadata();
            if metadata.partition_columns().iter().map(String::as_str).ne(PARTITION_COLUMNS) {
                return Err(Error::SchemaConflict {
                    url: self.table_url(t).to_string(),
                    table: t,
                    column: "(partition columns)".into(),
                    found: metadata.partition_columns().join(","),
                    expected: PARTITION_COLUMNS.join(","),
                });
            }
            let schema = state.schema();
            let mut missing: Vec<StructField> = Vec::new();
            for column in t.columns() {
                match schema.field(column.name) {
                    Some(field) if field.data_type() != &delta_type(column.kind) => {
                        return Err(Error::SchemaConflict {
                            url: self.table_url(t).to_string(),
                            table: t,
                            column: column.name.to_string(),
                            found: field.data_type().to_string(),
                            expected: delta_type(column.kind).to_string(),
                        });
                    }
                    Some(_) => {}
                    // Columns added to existing data are nullable: old files have no value.
                    None => {
                        missing.push(StructField::new(column.name, delta_type(column.kind), true))
                    }
                }
            }
            let stats_property = stats_columns_property(t);
            let property_current = metadata
                .configuration()
                .get(STATS_COLUMNS_PROPERTY)
                .is_some_and(|v| *v == stats_property);
            if missing.is_empty() && property_current {
                return Ok(table);
            }
            let names: Vec<String> = missing.iter().map(|f| f.name().to_string()).collect();
            let result = async {
                let mut table = table.clone();
                if !missing.is_empty() {
                    table = table.add_columns().with_fields(missing).await?;
                }
                table
                    .set_tbl_properties()
                    .with_properties(HashMap::from([(
                        STATS_COLUMNS_PROPERTY.to_string(),
                        stats_property,
                    )]))
                    .await
            }
            .await;
            match result {
                Ok(evolved) => {
                    tracing::info!(table = %t, added = ?names, "table schema evolved to the canonical schema");
                    return Ok(evolved);
                }
                Err(e) if attempt < EVOLVE_ATTEMPTS => {
                    tracing::warn!(table = %t, error = %e, "schema evolution raced, retrying");
                    table.update_state().await.map_err(|e| self.delta_err(t, "refresh", e))?;
                }
                Err(e) => return Err(self.delta_err(t, "evolve schema", e)),
            }
        }
        Ok(table)
    }

    /// Versions of the Delta application transactions (txn appId → version) recorded in table
    /// `t`, for the app ids that have one. A missing table records none.
    pub async fn txn_versions(&self, t: Table, app_ids: &[String]) -> Result<HashMap<String, i64>> {
        let Some(table) = self.existing(t).await? else {
            return Ok(HashMap::new());
        };
        txn_versions_of(self, t, &table, app_ids).await
    }

    /// Every Delta application transaction recorded in table `t` (txn appId → version), read in
    /// one replay of the log (checkpoint plus the commits after it), however many app ids there
    /// are — for a source that needs the whole set, such as the object-store poller's processed
    /// objects. [`Lake::txn_versions`] replays once per app id. The newest txn of an appId wins;
    /// `delta.setTransactionRetentionDuration` is not applied (ztlake never sets it). A missing
    /// table records none.
    ///
    /// # Errors
    /// [`Error::Delta`] when the log cannot be read.
    pub async fn all_txns(&self, t: Table) -> Result<HashMap<String, i64>> {
        let Some(table) = self.existing(t).await? else {
            return Ok(HashMap::new());
        };
        let version = table.version();
        let log_store = table.log_store();
        let engine = log_store.engine(None);
        // The table root, ending with a slash (the kernel joins log paths onto it).
        let mut root = log_store.config().location().clone();
        if !root.path().ends_with('/') {
            let path = format!("{}/", root.path());
            root.set_path(&path);
        }
        let read = tokio::task::spawn_blocking(move || all_txns_of(engine.as_ref(), root, version))
            .await
            .map_err(|e| DeltaTableError::Generic(format!("txn reader task: {e}")))
            .and_then(|r| r);
        read.map_err(|e| self.delta_err(t, "read all txns", e))
    }

    /// A writer that encodes batches of table `t` into data files for [`Lake::commit`].
    ///
    /// Local lakes are written in place; remote lakes through a local spool directory and an
    /// upload on the lake's small upload runtime (one thread, shared by its writers).
    pub fn writer(&self, t: Table, opts: WriterOptions) -> Result<TableWriter> {
        let destination = match &self.inner.local_root {
            Some(root) => Destination::Local(root.join(t.name())),
            None => Destination::Remote {
                store: self.log_store(t).object_store(None),
                runtime: self.upload_runtime(t)?,
            },
        };
        TableWriter::start(t, self.table_url(t).to_string(), destination, opts)
    }
}

impl Lake {
    fn upload_runtime(&self, t: Table) -> Result<Arc<UploadRuntime>> {
        let mut slot = self
            .inner
            .uploads
            .lock()
            .map_err(|_| Error::internal(t, "upload runtime lock poisoned"))?;
        if let Some(runtime) = slot.as_ref() {
            return Ok(runtime.clone());
        }
        let runtime = Arc::new(UploadRuntime::new()?);
        *slot = Some(runtime.clone());
        Ok(runtime)
    }
}

/// The recorded versions of `app_ids` in `table`.
pub(crate) async fn txn_versions_of(
    lake: &Lake,
    t: Table,
    table: &DeltaTable,
    app_ids: &[String],
) -> Result<HashMap<String, i64>> {
    let state = table.snapshot().map_err(|e| lake.delta_err(t, "load", e))?;
    let log_store = table.log_store();
    let lookups = app_ids.iter().map(|id| {
        let log_store = log_store.clone();
        async move { state.transaction_version(log_store.as_ref(), id).await.map(|v| (id, v)) }
    });
    let found = futures::future::try_join_all(lookups)
        .await
        .map_err(|e| lake.delta_err(t, "read txn versions", e))?;
    Ok(found.into_iter().filter_map(|(id, v)| v.map(|v| (id.clone(), v))).collect())
}

/// One replay of the log at `version` for its `txn` actions; the newest per appId wins (the
/// kernel yields commits newest first, then the checkpoint).
fn all_txns_of(
    engine: &dyn delta_kernel::Engine,
    root: Url,
    version: Option<u64>,
) -> Result<HashMap<String, i64>, DeltaTableError> {
    use arrow::array::{Array, AsArray, StructArray};
    use arrow::datatypes::Int64Type;
    use delta_kernel::actions::{LOG_TXN_SCHEMA, SET_TRANSACTION_NAME};
    use delta_kernel::engine::arrow_data::ArrowEngineData;

    let mut builder = delta_kernel::snapshot::Snapshot::builder_for(root);
    if let Some(version) = version {
        builder = builder.at_version(version);
    }
    let snapshot = builder.build(engine)?;
    let mut found: HashMap<String, i64> = HashMap::new();
    for batch in snapshot.log_segment().read_actions(engine, LOG_TXN_SCHEMA.clone())? {
        let data = ArrowEngineData::try_from_engine_data(batch?.actions)?;
        let batch = data.record_batch();
        let Some(txn) = batch.column_by_name(SET_TRANSACTION_NAME) else { continue };
        let Some(txn) = txn.as_any().downcast_ref::<StructArray>() else {
            return Err(DeltaTableError::Generic("txn column is not a struct".into()));
        };
        let (Some(app_ids), Some(versions)) =
            (txn.column_by_name("appId"), txn.column_by_name("version"))
        else {
            return Err(DeltaTableError::Generic("txn lacks appId or version".into()));
        };
        let Some(versions) = versions.as_primitive_opt::<Int64Type>() else {
            return Err(DeltaTableError::Generic("txn version is not a long".into()));
        };
        let app_id = |row: usize| -> Option<String> {
            if app_ids.is_null(row) {
                return None;
            }
            if let Some(a) = app_ids.as_string_opt::<i32>() {
                return Some(a.value(row).to_owned());
            }
            if let Some(a) = app_ids.as_string_opt::<i64>() {
                return Some(a.value(row).to_owned());
            }
            app_ids.as_string_view_opt().map(|a| a.value(row).to_owned())
        };
        for row in 0..txn.len() {
            if txn.is_null(row) || versions.is_null(row) {
                continue;
            }
            if let Some(id) = app_id(row) {
                found.entry(id).or_insert(versions.value(row));
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_become_directory_urls() {
        let (url, local) = parse_location("/tmp/lake").expect("path");
        assert_eq!(url.as_str(), "file:///tmp/lake/");
        assert_eq!(local, Some(PathBuf::from("/tmp/lake")));
        let (url, local) = parse_location("s3://bucket/prefix").expect("s3");
        assert_eq!(url.as_str(), "s3://bucket/prefix/");
        assert!(local.is_none());
        let (url, _) = parse_location("relative/lake").expect("relative");
        assert!(url.as_str().starts_with("file:///") && url.as_str().ends_with("relative/lake/"));
        assert!(parse_location("ftp://host/x").is_err());
        assert!(parse_location("").is_err());
    }
}
