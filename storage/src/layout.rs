//! How the canonical tables are laid out in the lake (storage stage).
//!
//! Derived once from `ztlake_normalize::schema` so the Delta schema, the Parquet data files and
//! the statistics cannot drift apart:
//! - the Delta schema of each table ([`delta_fields`]) and its partition columns;
//! - the data-file schema ([`data_schema`]): the canonical schema without the partition columns
//!   (Delta convention: partition values live in the path and the log, not in the file);
//! - the Parquet writer properties ([`writer_properties`]): zstd, dictionaries for repetitive
//!   columns and none for unique-per-row ones, chunk statistics only where they can prune;
//! - the columns that carry Delta file statistics ([`stats_columns`]), recorded in the table
//!   property `delta.dataSkippingStatsColumns` so every reader (delta-rs, Spark, Trino) expects
//!   exactly the statistics the writer produces.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{Schema, SchemaRef};
use deltalake::kernel::{ArrayType, DataType as DeltaType, StructField};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use ztlake_normalize::schema::{Column, Kind, PARTITION_COLUMNS, Table};

use crate::error::{Error, Result};

/// Columns whose value is (nearly) unique per row: a dictionary only costs hashing and
/// statistics never prune. Everything else is repetitive enough for a dictionary (Parquet falls
/// back to plain encoding by itself when a dictionary page outgrows its limit).
const UNIQUE_PER_ROW: [&str; 5] = ["event_uid", "source", "raw_hash", "raw_prefix", "detail"];

/// The Delta table property naming the columns that carry file statistics.
pub(crate) const STATS_COLUMNS_PROPERTY: &str = "delta.dataSkippingStatsColumns";

/// Rows per Parquet row group (the Parquet default; ~1 M).
const ROW_GROUP_ROWS: usize = 1024 * 1024;
/// Encoded bytes per row group before it is flushed, whichever comes first.
const ROW_GROUP_BYTES: usize = 128 * 1024 * 1024;

/// Whether `name` is a partition column.
pub(crate) fn is_partition_column(name: &str) -> bool {
    PARTITION_COLUMNS.contains(&name)
}

fn is_unique_per_row(name: &str) -> bool {
    UNIQUE_PER_ROW.contains(&name)
}

/// Whether a column is worth dictionary encoding: text with few distinct values per file.
/// Addresses, ports, counters and timestamps have too many distinct values: interning every
/// value costs a hash and a compare per row (a third of encoding time on flows) for little
/// gain once zstd compresses the plain pages.
fn wants_dictionary(column: &Column) -> bool {
    use ztlake_normalize::schema::Kind;
    let high_cardinality = column.name.ends_with("_ip")
        || column.name.ends_with("_port")
        || matches!(column.name, "bytes" | "packets" | "session_id" | "serial" | "cert_id")
        // One value per alert (or step): ids, and JSON of entities and evidence.
        || matches!(
            column.name,
            "alert_id" | "event_id" | "entity" | "dedupe_key" | "evidence" | "evidence_uids"
        )
        || matches!(column.kind, Kind::Timestamp | Kind::Int64);
    !is_unique_per_row(column.name) && !high_cardinality
}

/// The columns stored in data files, in canonical order.
pub(crate) fn data_columns(table: Table) -> impl Iterator<Item = &'static Column> {
    table.columns().iter().filter(|c| !is_partition_column(c.name))
}

/// Indices in `Table::schema()` of the columns stored in data files.
pub(crate) fn data_column_indices(table: Table) -> &'static [usize] {
    static INDICES: LazyLock<[Vec<usize>; Table::COUNT]> = LazyLock::new(|| {
        Table::ALL.map(|t| {
            t.columns()
                .iter()
                .enumerate()
                .filter(|(_, c)| !is_partition_column(c.name))
                .map(|(i, _)| i)
                .collect()
        })
    });
    &INDICES[table as usize]
}

/// The Arrow schema of a data file: the canonical schema without the partition columns.
pub(crate) fn data_schema(table: Table) -> SchemaRef {
    static SCHEMAS: LazyLock<[SchemaRef; Table::COUNT]> = LazyLock::new(|| {
        Table::ALL.map(|t| {
            let schema = t.schema();
            let fields: Vec<_> =
                data_column_indices(t).iter().map(|&i| schema.fields()[i].clone()).collect();
            Arc::new(Schema::new(fields))
        })
    });
    SCHEMAS[table as usize].clone()
}

/// Columns that carry Delta statistics: every data column except lists and unique-per-row
/// columns. Booleans and long text carry only null counts (readers ignore min/max for them).
pub(crate) fn stats_columns(table: Table) -> Vec<&'static str> {
    data_columns(table).filter(|c| wants_statistics(c)).map(|c| c.name).collect()
}

/// Whether min/max statistics on a column can ever skip a file. Lists, unique-per-row values
/// and addresses (whose lexicographic ranges over a file span nearly everything) cannot, and
/// computing them costs a compare per value.
fn wants_statistics(column: &Column) -> bool {
    column.kind != Kind::TextList
        && !is_unique_per_row(column.name)
        && !column.name.ends_with("_ip")
}

/// The value of [`STATS_COLUMNS_PROPERTY`] for `table`.
pub(crate) fn stats_columns_property(table: Table) -> String {
    stats_columns(table).join(",")
}

/// The Delta type of a canonical kind.
pub(crate) fn delta_type(kind: Kind) -> DeltaType {
    match kind {
        Kind::Text => DeltaType::STRING,
        Kind::Int32 => DeltaType::INTEGER,
        Kind::Int64 => DeltaType::LONG,
        Kind::Bool => DeltaType::BOOLEAN,
        Kind::Timestamp => DeltaType::TIMESTAMP,
        Kind::Date => DeltaType::DATE,
        Kind::TextList => DeltaType::Array(Box::new(ArrayType::new(DeltaType::STRING, true))),
    }
}

/// The Delta schema of `table`, partition columns included, in canonical order.
pub(crate) fn delta_fields(table: Table) -> Vec<StructField> {
    table.columns().iter().map(delta_field).collect()
}

/// The Delta field of one canonical column.
pub(crate) fn delta_field(column: &Column) -> StructField {
    StructField::new(column.name, delta_type(column.kind), column.nullable)
}

/// Parquet writer properties of `table`'s data files (also useful to export a table with the
/// lake's layout).
///
/// zstd at `zstd_level`; dictionary encoding for every column except the unique-per-row ones;
/// column-chunk statistics (min/max/nulls, enough for Delta stats and row-group pruning) except
/// for unique-per-row columns; row groups of about 1 M rows or 128 MB; `created_by` ztlake.
pub fn writer_properties(table: Table, zstd_level: i32) -> Result<WriterProperties> {
    let level = ZstdLevel::try_new(zstd_level)
        .map_err(|e| Error::Options { detail: format!("zstd level {zstd_level}: {e}") })?;
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
        .set_created_by(format!("ztlake {}", env!("CARGO_PKG_VERSION")));
    for column in data_columns(table) {
        let path = ColumnPath::from(column.name);
        if !wants_dictionary(column) {
            // A list's values are the leaf column `name.list.item`.
            let leaf = match column.kind {
                Kind::TextList => ColumnPath::new(vec![
                    column.name.to_owned(),
                    "list".to_owned(),
                    "item".to_owned(),
                ]),
                _ => path.clone(),
            };
            builder = builder.set_column_dictionary_enabled(leaf, false);
        }
        if !wants_statistics(column) {
            builder = builder.set_column_statistics_enabled(path.clone(), EnabledStatistics::None);
        }
        if !wants_dictionary(column)
            && matches!(column.kind, Kind::Int32 | Kind::Int64 | Kind::Timestamp)
        {
            // Times are nearly sorted and counters small: deltas bit-packed are a fraction of
            // plain 8-byte values, which is less work for zstd and smaller files.
            builder = builder.set_column_encoding(path.clone(), Encoding::DELTA_BINARY_PACKED);
        }
        if column.name == "source" {
            // `path:line` values share long prefixes: store only what differs from the previous
            // value, so zstd sees a fraction of the bytes.
            builder = builder.set_column_encoding(path, Encoding::DELTA_BYTE_ARRAY);
        }
    }
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_schema_drops_partition_columns_only() {
        for table in Table::ALL {
            let data = data_schema(table);
            assert!(data.field_with_name("provider").is_err());
            assert!(data.field_with_name("date").is_err());
            assert_eq!(data.fields().len(), table.schema().fields().len() - 2);
            assert!(data.field_with_name("time").is_ok());
        }
    }

    #[test]
    fn stats_skip_unique_and_list_columns() {
        let flows = stats_columns(Table::Flows);
        assert_eq!(flows[0], "time");
        assert!(
            !flows.contains(&"src_ip")
                && flows.contains(&"encrypted")
                && flows.contains(&"dst_port")
        );
        assert!(!flows.contains(&"event_uid") && !flows.contains(&"source"));
        assert!(!flows.contains(&"provider") && !flows.contains(&"date"));
        assert!(!stats_columns(Table::CertEvents).contains(&"sans"));
        assert!(!stats_columns(Table::Quarantine).contains(&"raw_prefix"));
    }

    #[test]
    fn writer_properties_follow_the_column_policy() {
        let props = writer_properties(Table::Flows, 1).expect("props");
        let uid = ColumnPath::from("event_uid");
        let ip = ColumnPath::from("src_ip");
        assert!(!props.dictionary_enabled(&uid));
        assert_eq!(props.statistics_enabled(&uid), EnabledStatistics::None);
        assert!(!props.dictionary_enabled(&ip), "addresses are high-cardinality: plain + zstd");
        assert_eq!(props.statistics_enabled(&ip), EnabledStatistics::None);
        assert_eq!(
            props.statistics_enabled(&ColumnPath::from("dst_port")),
            EnabledStatistics::Chunk
        );
        assert_eq!(props.encoding(&ColumnPath::from("source")), Some(Encoding::DELTA_BYTE_ARRAY));
        assert!(props.dictionary_enabled(&ColumnPath::from("action")));
        let alerts = writer_properties(Table::Alerts, 3).expect("properties");
        assert!(!alerts.dictionary_enabled(&ColumnPath::from("evidence")), "one JSON per alert");
        let leaf = |list: &str| ColumnPath::new(vec![list.into(), "list".into(), "item".into()]);
        assert!(!alerts.dictionary_enabled(&leaf("evidence_uids")));
        assert!(alerts.dictionary_enabled(&ColumnPath::from("rule_id")), "few rules");
        assert!(alerts.dictionary_enabled(&leaf("tags")), "tags repeat: a dictionary pays");
        assert!(props.dictionary_enabled(&ColumnPath::from("account")));
        assert!(!props.dictionary_enabled(&ColumnPath::from("bytes")));
        assert!(props.created_by().starts_with("ztlake"));
        assert!(writer_properties(Table::Flows, 99).is_err());
    }
}
