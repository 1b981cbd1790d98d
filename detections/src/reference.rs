//! Reference tables the operator provides: asset inventory, identities, egress gateways,
//! trusted CAs (docs/rules.md lists their columns).
//!
//! A directory holds one file per table, `<table>.csv` (with a header) or `<table>.parquet`.
//! The four known tables get their documented schema (missing columns are errors, extra columns
//! are kept as text); any other `<name>.csv|parquet` is registered as it is, for hunting. Known
//! tables absent from the directory are registered empty, so rules always plan. Every bad value
//! (an unparsable CIDR, a boolean that is not one) is reported with file and line, all at once.
//!
//! [`Reference`] also builds the lookup indexes the UDFs use ([`Lookups`]): longest-prefix match
//! over asset CIDRs, identities by lower-cased user, egress gateway networks, CA patterns.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use ztlake_normalize::schema::{Table, UTC};

use crate::error::{Diagnostic, Error, Result};
use crate::udf::ip::{Cidr, Parsed, to_bits};

/// Kind of a reference column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Bool,
    Time,
    Cidr,
}

/// A known reference table: name and columns.
#[derive(Debug, Clone, Copy)]
pub struct KnownTable {
    /// Table name in SQL and file name stem.
    pub name: &'static str,
    /// Columns, in order.
    columns: &'static [(&'static str, Kind)],
}

impl KnownTable {
    /// The column names.
    pub fn column_names(&self) -> Vec<&'static str> {
        self.columns.iter().map(|(n, _)| *n).collect()
    }
}

/// The reference tables rules and UDFs know.
pub const KNOWN: [KnownTable; 4] = [
    KnownTable {
        name: "assets",
        columns: &[
            ("cidr", Kind::Cidr),
            ("app", Kind::Text),
            ("env", Kind::Text),
            ("owner", Kind::Text),
            ("segment", Kind::Text),
            ("classification", Kind::Text),
        ],
    },
    KnownTable {
        name: "identities",
        columns: &[
            ("user", Kind::Text),
            ("display_name", Kind::Text),
            ("status", Kind::Text),
            ("privileged", Kind::Bool),
            ("terminated_at", Kind::Time),
            ("break_glass", Kind::Bool),
            ("owner", Kind::Text),
        ],
    },
    KnownTable {
        name: "egress_gateways",
        columns: &[
            ("name", Kind::Text),
            ("cidr", Kind::Cidr),
            ("provider", Kind::Text),
            ("account", Kind::Text),
        ],
    },
    KnownTable {
        name: "trusted_cas",
        columns: &[("name", Kind::Text), ("pattern", Kind::Text), ("provider", Kind::Text)],
    },
];

/// Identity statuses accepted in `identities.status`.
const STATUSES: [&str; 3] = ["active", "disabled", "terminated"];

fn known(name: &str) -> Option<&'static KnownTable> {
    KNOWN.iter().find(|k| k.name == name)
}

/// Whether `name` is a known reference table.
pub fn is_known(name: &str) -> bool {
    known(name).is_some()
}

fn data_type(kind: Kind) -> DataType {
    match kind {
        Kind::Text | Kind::Cidr => DataType::Utf8,
        Kind::Bool => DataType::Boolean,
        Kind::Time => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
    }
}

/// One loaded reference table.
#[derive(Debug, Clone)]
pub struct RefTable {
    /// Table name.
    pub name: String,
    /// Its rows.
    pub batch: RecordBatch,
    /// The file it came from (None: registered empty or from test text).
    pub file: Option<PathBuf>,
}

/// The reference tables and their lookup indexes. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Reference {
    tables: BTreeMap<String, RefTable>,
    lookups: Arc<Lookups>,
}

impl Default for Reference {
    fn default() -> Self {
        Reference::empty()
    }
}

impl Reference {
    /// The known tables, all empty.
    pub fn empty() -> Reference {
        let tables = KNOWN
            .iter()
            .map(|k| {
                let batch = RecordBatch::new_empty(known_schema(k, &[]));
                (k.name.to_owned(), RefTable { name: k.name.to_owned(), batch, file: None })
            })
            .collect();
        Reference::from_tables(tables)
    }

    fn from_tables(tables: BTreeMap<String, RefTable>) -> Reference {
        let lookups = Arc::new(Lookups::build(&tables));
        Reference { tables, lookups }
    }

    /// Load every `<table>.csv` / `<table>.parquet` in `dir`.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be read; [`Error::Invalid`] listing every bad
    /// file, column and value.
    pub fn load_dir(dir: &Path) -> Result<Reference> {
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        let mut paths: Vec<PathBuf> =
            entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
        paths.sort();
        let mut reference = Reference::empty();
        let mut diagnostics = Vec::new();
        let mut seen: HashMap<String, PathBuf> = HashMap::new();
        for path in paths {
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
            if ext != "csv" && ext != "parquet" {
                continue;
            }
            let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
            if !valid_table_name(&name) {
                diagnostics.push(Diagnostic::new(
                    &path,
                    1,
                    format!("reference table name {name:?} must be [a-z_][a-z0-9_]* and not a lake table name"),
                ));
                continue;
            }
            if let Some(first) = seen.insert(name.clone(), path.clone()) {
                diagnostics.push(Diagnostic::new(
                    &path,
                    1,
                    format!("reference table {name} is also defined by {}", first.display()),
                ));
                continue;
            }
            let loaded = if ext == "csv" {
                std::fs::read(&path)
                    .map_err(|e| vec![Diagnostic::new(&path, 1, format!("cannot read: {e}"))])
                    .and_then(|bytes| parse_csv(&name, &path, &bytes))
            } else {
                read_parquet(&name, &path)
            };
            match loaded {
                Ok(batch) => {
                    reference
                        .tables
                        .insert(name.clone(), RefTable { name, batch, file: Some(path) });
                }
                Err(d) => diagnostics.extend(d),
            }
        }
        if !diagnostics.is_empty() {
            return Err(Error::Invalid(diagnostics));
        }
        Ok(Reference::from_tables(reference.tables))
    }

    /// This reference with some tables replaced by CSV text (a rule test's `reference:`);
    /// problems are reported at `file:line`.
    pub fn with_csv(
        &self,
        overrides: &BTreeMap<String, String>,
        file: &Path,
        line: usize,
    ) -> Result<Reference, Vec<Diagnostic>> {
        let mut tables = self.tables.clone();
        let mut diagnostics = Vec::new();
        for (name, text) in overrides {
            if !valid_table_name(name) {
                diagnostics.push(Diagnostic::new(
                    file,
                    line,
                    format!("reference table name {name:?} is not valid"),
                ));
                continue;
            }
            match parse_csv(name, file, text.as_bytes()) {
                Ok(batch) => {
                    tables.insert(name.clone(), RefTable { name: name.clone(), batch, file: None });
                }
                Err(d) => diagnostics.extend(d.into_iter().map(|mut d| {
                    d.message = format!("reference {name}, CSV line {}: {}", d.line, d.message);
                    d.line = line;
                    d
                })),
            }
        }
        if diagnostics.is_empty() { Ok(Reference::from_tables(tables)) } else { Err(diagnostics) }
    }

    /// The tables, by name.
    pub fn tables(&self) -> impl Iterator<Item = &RefTable> {
        self.tables.values()
    }

    /// Table names.
    pub fn names(&self) -> Vec<String> {
        self.tables.keys().cloned().collect()
    }

    /// The lookup indexes the UDFs use.
    pub fn lookups(&self) -> Arc<Lookups> {
        self.lookups.clone()
    }

    /// Register every table in `ctx` under its name (replacing earlier registrations).
    pub fn register(&self, ctx: &SessionContext) -> datafusion::error::Result<()> {
        for table in self.tables.values() {
            let provider =
                MemTable::try_new(table.batch.schema(), vec![vec![table.batch.clone()]])?;
            ctx.deregister_table(table.name.as_str())?;
            ctx.register_table(table.name.as_str(), Arc::new(provider))?;
        }
        Ok(())
    }
}

fn valid_table_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    first_ok
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && Table::from_name(name).is_none()
        && name.len() <= 64
}

/// The schema of a known table plus `extra` text columns.
fn known_schema(k: &KnownTable, extra: &[String]) -> SchemaRef {
    let mut fields: Vec<Field> =
        k.columns.iter().map(|(n, kind)| Field::new(*n, data_type(*kind), true)).collect();
    fields.extend(extra.iter().map(|n| Field::new(n, DataType::Utf8, true)));
    Arc::new(Schema::new(fields))
}

/// A column read as text: its name and `(line, value)` per row.
type TextColumn = (String, Vec<(usize, Option<String>)>);

/// Parse CSV text (header first) into a batch of table `name`.
fn parse_csv(name: &str, file: &Path, bytes: &[u8]) -> Result<RecordBatch, Vec<Diagnostic>> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(bytes);
    let header: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|s| s.trim().to_owned()).collect(),
        Err(e) => return Err(vec![Diagnostic::new(file, 1, format!("CSV header: {e}"))]),
    };
    let mut rows: Vec<(usize, Vec<String>)> = Vec::new();
    let mut diagnostics = Vec::new();
    for record in reader.records() {
        match record {
            Ok(r) => {
                let line = r.position().map_or(1, |p| p.line() as usize);
                rows.push((line, r.iter().map(str::to_owned).collect()));
            }
            Err(e) => {
                let line = e.position().map_or(1, |p| p.line() as usize);
                diagnostics.push(Diagnostic::new(file, line, format!("CSV: {e}")));
            }
        }
    }
    let columns: Vec<TextColumn> = header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let values = rows
                .iter()
                .map(|(line, r)| {
                    let v = r.get(i).map(|s| s.trim()).filter(|s| !s.is_empty());
                    (*line, v.map(str::to_owned))
                })
                .collect();
            (h.clone(), values)
        })
        .collect();
    match build(name, file, columns) {
        Ok(batch) if diagnostics.is_empty() => Ok(batch),
        Ok(_) => Err(diagnostics),
        Err(d) => {
            diagnostics.extend(d);
            Err(diagnostics)
        }
    }
}

/// Read a Parquet reference file; known tables are converted to their schema through text.
fn read_parquet(name: &str, file: &Path) -> Result<RecordBatch, Vec<Diagnostic>> {
    let fail = |m: String| vec![Diagnostic::new(file, 1, m)];
    let f = std::fs::File::open(file).map_err(|e| fail(format!("cannot open: {e}")))?;
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| fail(format!("not a Parquet file: {e}")))?;
    let schema = builder.schema().clone();
    let reader = builder.build().map_err(|e| fail(format!("Parquet: {e}")))?;
    let batches: Vec<RecordBatch> =
        reader.collect::<std::result::Result<_, _>>().map_err(|e| fail(format!("Parquet: {e}")))?;
    let batch = arrow::compute::concat_batches(&schema, &batches)
        .map_err(|e| fail(format!("Parquet: {e}")))?;
    // Rows are numbered from 1 (there is no line); values go through the same checks as CSV.
    let options = FormatOptions::default().with_null("");
    let mut columns = Vec::new();
    for (field, array) in schema.fields().iter().zip(batch.columns()) {
        if known(name).is_none() {
            break;
        }
        let formatter = ArrayFormatter::try_new(array.as_ref(), &options)
            .map_err(|e| fail(format!("column {}: {e}", field.name())))?;
        let values = (0..batch.num_rows())
            .map(|i| {
                let v = (!array.is_null(i)).then(|| formatter.value(i).to_string());
                (i + 1, v)
            })
            .collect();
        columns.push((field.name().clone(), values));
    }
    if known(name).is_none() {
        return Ok(batch);
    }
    build(name, file, columns)
}

/// Build the batch of table `name` from text columns `(name, [(line, value)])`.
fn build(
    name: &str,
    file: &Path,
    columns: Vec<TextColumn>,
) -> Result<RecordBatch, Vec<Diagnostic>> {
    let rows = columns.first().map_or(0, |(_, v)| v.len());
    let mut diagnostics = Vec::new();
    let Some(k) = known(name) else {
        // An operator's own table: every column as text.
        let fields: Vec<Field> =
            columns.iter().map(|(n, _)| Field::new(n, DataType::Utf8, true)).collect();
        let arrays: Vec<ArrayRef> = columns
            .iter()
            .map(|(_, v)| {
                Arc::new(v.iter().map(|(_, s)| s.clone()).collect::<arrow::array::StringArray>())
                    as ArrayRef
            })
            .collect();
        return RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
            .map_err(|e| vec![Diagnostic::new(file, 1, e.to_string())]);
    };
    for (col, _) in k.columns {
        if !columns.iter().any(|(n, _)| n == col) {
            diagnostics.push(Diagnostic::new(
                file,
                1,
                format!(
                    "reference table {name} needs column {col:?} (columns: {})",
                    k.column_names().join(", ")
                ),
            ));
        }
    }
    if !diagnostics.is_empty() {
        return Err(diagnostics);
    }
    let extra: Vec<String> = columns
        .iter()
        .map(|(n, _)| n.clone())
        .filter(|n| !k.columns.iter().any(|(c, _)| c == n))
        .collect();
    let schema = known_schema(k, &extra);
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for field in schema.fields() {
        let kind = k.columns.iter().find(|(c, _)| c == field.name()).map_or(Kind::Text, |c| c.1);
        let values = columns
            .iter()
            .find(|(n, _)| n == field.name())
            .map(|(_, v)| v.as_slice())
            .unwrap_or_default();
        let mut bad = |line: usize, message: String| {
            diagnostics.push(Diagnostic::new(
                file,
                line,
                format!("column {}: {message}", field.name()),
            ));
        };
        let array: ArrayRef = match kind {
            Kind::Text | Kind::Cidr => {
                let mut b = StringBuilder::with_capacity(rows, rows * 16);
                for (line, v) in values {
                    if kind == Kind::Cidr
                        && let Some(s) = v
                        && Cidr::parse(s).is_none()
                    {
                        bad(*line, format!("{s:?} is not a CIDR or address"));
                    }
                    if name == "identities"
                        && field.name() == "status"
                        && let Some(s) = v
                        && !STATUSES.contains(&s.as_str())
                    {
                        bad(*line, format!("{s:?} is not one of {}", STATUSES.join(", ")));
                    }
                    b.append_option(v.as_deref());
                }
                Arc::new(b.finish())
            }
            Kind::Bool => {
                let mut b = BooleanBuilder::with_capacity(rows);
                for (line, v) in values {
                    match v.as_deref().map(parse_bool) {
                        None => b.append_null(),
                        Some(Some(x)) => b.append_value(x),
                        Some(None) => {
                            bad(
                                *line,
                                format!("{:?} is not true or false", v.as_deref().unwrap_or("")),
                            );
                            b.append_null();
                        }
                    }
                }
                Arc::new(b.finish())
            }
            Kind::Time => {
                let mut b = TimestampMicrosecondBuilder::with_capacity(rows).with_timezone(UTC);
                for (line, v) in values {
                    match v.as_deref() {
                        None => b.append_null(),
                        Some(s) => match ztlake_normalize::values::parse_rfc3339_micros(s) {
                            Some(t) => b.append_value(t),
                            None => {
                                bad(*line, format!("{s:?} is not an RFC 3339 time"));
                                b.append_null();
                            }
                        },
                    }
                }
                Arc::new(b.finish())
            }
        };
        arrays.push(array);
    }
    if !diagnostics.is_empty() {
        return Err(diagnostics);
    }
    RecordBatch::try_new(schema, arrays).map_err(|e| vec![Diagnostic::new(file, 1, e.to_string())])
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "y" | "t" => Some(true),
        "false" | "no" | "0" | "n" | "f" => Some(false),
        _ => None,
    }
}

/// Rows of a reference table as text, for field lookups.
#[derive(Debug, Default)]
struct TextRows {
    columns: Vec<String>,
    rows: Vec<Vec<Option<String>>>,
}

impl TextRows {
    fn of(batch: &RecordBatch) -> TextRows {
        let options = FormatOptions::default();
        let columns = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
        let mut rows = vec![Vec::with_capacity(batch.num_columns()); batch.num_rows()];
        for array in batch.columns() {
            let formatter = ArrayFormatter::try_new(array.as_ref(), &options).ok();
            for (i, row) in rows.iter_mut().enumerate() {
                let value = match &formatter {
                    Some(f) if !array.is_null(i) => Some(f.value(i).to_string()),
                    _ => None,
                };
                row.push(value);
            }
        }
        TextRows { columns, rows }
    }

    fn field(&self, row: usize, column: &str) -> Option<&str> {
        let c = self.columns.iter().position(|n| n == column)?;
        self.rows.get(row)?.get(c)?.as_deref()
    }
}

/// Longest-prefix-match table of networks → row: per address family and prefix length
/// (longest first), the networks sorted for binary search — no hashing per looked-up address.
#[derive(Debug, Default)]
struct PrefixTable {
    levels: Vec<Level>,
    /// The IPv4 levels again, as 32-bit masks and networks (built by [`PrefixTable::seal`]):
    /// the lookup of a flow's address without 128-bit arithmetic.
    v4: Vec<(u32, Vec<(u32, usize)>)>,
}

/// (is_v4, prefix) → (network bits, first row with that network), sorted by bits.
type Level = ((bool, u8), Vec<(u128, usize)>);

impl PrefixTable {
    /// Add a network (the first row of a network wins; call [`PrefixTable::seal`] after the
    /// last one).
    fn insert(&mut self, cidr: Cidr, row: usize) {
        let key = (cidr.is_v4(), cidr.prefix());
        match self.levels.iter_mut().find(|(k, _)| *k == key) {
            Some((_, nets)) => nets.push((cidr.bits(), row)),
            None => self.levels.push((key, vec![(cidr.bits(), row)])),
        }
    }

    /// Order the levels (longest prefix first) and their networks.
    fn seal(&mut self) {
        self.levels.sort_by_key(|l| std::cmp::Reverse(l.0.1));
        for (_, nets) in &mut self.levels {
            // Stable: among equal networks the first inserted row stays first.
            nets.sort_by_key(|&(bits, _)| bits);
            nets.dedup_by_key(|&mut (bits, _)| bits);
        }
        self.v4 = self
            .levels
            .iter()
            .filter(|((v4, _), _)| *v4)
            .map(|((_, prefix), nets)| {
                let mask = crate::udf::ip::mask(*prefix, 32) as u32;
                (mask, nets.iter().map(|&(bits, row)| (bits as u32, row)).collect())
            })
            .collect();
    }

    fn lookup(&self, ip: &Parsed) -> Option<usize> {
        let ip = match *ip {
            Parsed::V4(bits) => return self.lookup_v4(bits),
            Parsed::V6(v6) => std::net::IpAddr::V6(v6),
        };
        let (bits, width, v4) = to_bits(ip);
        self.levels.iter().filter(|((fam, _), _)| *fam == v4).find_map(|((_, prefix), nets)| {
            let key = bits & crate::udf::ip::mask(*prefix, width);
            nets.binary_search_by_key(&key, |&(b, _)| b).ok().map(|i| nets[i].1)
        })
    }

    /// [`PrefixTable::lookup`] of an IPv4 address, longest prefix first.
    fn lookup_v4(&self, ip: u32) -> Option<usize> {
        self.v4.iter().find_map(|(mask, nets)| {
            let key = ip & mask;
            nets.binary_search_by_key(&key, |&(b, _)| b).ok().map(|i| nets[i].1)
        })
    }

    fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }
}

/// The indexes behind the lookup UDFs.
#[derive(Debug, Default)]
pub struct Lookups {
    assets: TextRows,
    asset_prefixes: PrefixTable,
    identities: TextRows,
    identity_index: HashMap<String, usize>,
    gateways: PrefixTable,
    /// (lower-case name, lower-case pattern) of each trusted CA.
    cas: Vec<(Option<String>, Option<String>)>,
}

impl Lookups {
    fn build(tables: &BTreeMap<String, RefTable>) -> Lookups {
        let mut l = Lookups::default();
        if let Some(t) = tables.get("assets") {
            l.assets = TextRows::of(&t.batch);
            for row in 0..l.assets.rows.len() {
                if let Some(cidr) = l.assets.field(row, "cidr").and_then(Cidr::parse) {
                    l.asset_prefixes.insert(cidr, row);
                }
            }
            l.asset_prefixes.seal();
        }
        if let Some(t) = tables.get("identities") {
            l.identities = TextRows::of(&t.batch);
            for row in 0..l.identities.rows.len() {
                if let Some(user) = l.identities.field(row, "user") {
                    l.identity_index.entry(user.to_lowercase()).or_insert(row);
                }
            }
        }
        if let Some(t) = tables.get("egress_gateways") {
            let rows = TextRows::of(&t.batch);
            for row in 0..rows.rows.len() {
                if let Some(cidr) = rows.field(row, "cidr").and_then(Cidr::parse) {
                    l.gateways.insert(cidr, row);
                }
            }
            l.gateways.seal();
        }
        if let Some(t) = tables.get("trusted_cas") {
            let rows = TextRows::of(&t.batch);
            for row in 0..rows.rows.len() {
                let name = rows.field(row, "name").map(str::to_lowercase);
                let pattern = rows.field(row, "pattern").map(str::to_lowercase);
                l.cas.push((name, pattern));
            }
        }
        l
    }

    /// `field` of the asset whose CIDR is the longest prefix containing `ip`.
    pub fn asset_field(&self, ip: &str, field: &str) -> Option<&str> {
        self.asset_value(ip, self.asset_column(field)?)
    }

    /// The index of the assets table's column `field` (for [`Lookups::asset_value`]).
    pub fn asset_column(&self, field: &str) -> Option<usize> {
        self.assets.columns.iter().position(|n| n == field)
    }

    /// Column `column` of the asset whose CIDR is the longest prefix containing `ip`.
    pub fn asset_value(&self, ip: &str, column: usize) -> Option<&str> {
        if self.asset_prefixes.is_empty() {
            return None;
        }
        let row = self.asset_prefixes.lookup(&Parsed::of(ip)?)?;
        self.assets.rows.get(row)?.get(column)?.as_deref()
    }

    /// `field` of the identity named `user` (case-insensitive).
    pub fn identity_field(&self, user: &str, field: &str) -> Option<&str> {
        let row = *self.identity_index.get(&user.trim().to_lowercase())?;
        self.identities.field(row, field)
    }

    /// Whether `ip` is an egress gateway address or lies in one of their networks (`None` for
    /// an invalid address).
    pub fn is_egress_gateway(&self, ip: &str) -> Option<bool> {
        Some(self.gateways.lookup(&Parsed::of(ip)?).is_some())
    }

    /// Whether `issuer` is a trusted CA: equal to a `name` or containing a `pattern`
    /// (case-insensitive).
    pub fn is_trusted_ca(&self, issuer: &str) -> bool {
        let issuer = issuer.to_lowercase();
        self.cas.iter().any(|(name, pattern)| {
            name.as_deref() == Some(issuer.as_str())
                || pattern.as_deref().is_some_and(|p| !p.is_empty() && issuer.contains(p))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).expect("write");
    }

    #[test]
    fn a_directory_loads_with_lookups() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "assets.csv",
            &format!(
                "cidr,app,env,owner,segment,classification,site\n10.0.0.0/8,corp,prod,it,core,internal,fra\n10.1.0.0/16,payments,prod,team-pay,pci,confidential,fra\n2001:db8::/32,lab,dev,it,lab,public,\n10.1.0.0/16,shadow,dev,x,x,x,x\n{}",
                // Many networks of one length: the binary search must find each of them.
                (0..200)
                    .map(|i| format!("172.16.{i}.0/24,app-{i},prod,it,core,internal,\n"))
                    .collect::<String>()
            ),
        );
        write(
            dir.path(),
            "identities.csv",
            "user,display_name,status,privileged,terminated_at,break_glass,owner\nAlice@Example.com,Alice,terminated,true,2024-01-01T00:00:00Z,false,hr\nbg-admin,Break glass,active,yes,,true,secops\n",
        );
        write(
            dir.path(),
            "egress_gateways.csv",
            "name,cidr,provider,account\nnat-1,52.1.2.3,aws,1\nproxy,34.64.0.0/24,gcp,p\n",
        );
        write(dir.path(), "trusted_cas.csv", "name,pattern,provider\nCorp Root CA,corp issuing,\n");
        write(dir.path(), "notes.md", "ignored");
        write(dir.path(), "blocklist.csv", "ip,reason\n1.2.3.4,bad\n");
        let r = Reference::load_dir(dir.path()).expect("load");
        assert_eq!(
            r.names(),
            ["assets", "blocklist", "egress_gateways", "identities", "trusted_cas"]
        );
        let l = r.lookups();
        assert_eq!(l.asset_field("10.1.2.3", "app"), Some("payments"), "longest prefix wins");
        assert_eq!(l.asset_field("10.9.2.3", "app"), Some("corp"));
        assert_eq!(
            l.asset_field("10.1.9.9", "owner"),
            Some("team-pay"),
            "the first row of a network wins"
        );
        for i in [0, 1, 99, 137, 199] {
            let app = format!("app-{i}");
            assert_eq!(l.asset_field(&format!("172.16.{i}.20"), "app"), Some(app.as_str()));
        }
        assert_eq!(l.asset_field("172.16.200.1", "app"), None);
        assert_eq!(l.asset_field("10.1.2.3", "no-such-column"), None);
        assert_eq!(l.asset_field("10.1.2.3", "site"), Some("fra"), "extra columns are kept");
        assert_eq!(l.asset_field("2001:db8::5", "env"), Some("dev"));
        assert_eq!(l.asset_field("192.168.1.1", "app"), None);
        assert_eq!(l.asset_field("garbage", "app"), None);
        assert_eq!(l.identity_field("alice@example.COM", "status"), Some("terminated"));
        assert_eq!(l.identity_field("alice@example.com", "privileged"), Some("true"));
        assert_eq!(l.identity_field("bg-admin", "break_glass"), Some("true"));
        assert_eq!(l.identity_field("bob", "status"), None);
        assert_eq!(l.is_egress_gateway("52.1.2.3"), Some(true));
        assert_eq!(l.is_egress_gateway("34.64.0.77"), Some(true));
        assert_eq!(l.is_egress_gateway("34.64.1.77"), Some(false));
        assert_eq!(l.is_egress_gateway("nope"), None);
        assert!(l.is_trusted_ca("corp root ca"));
        assert!(l.is_trusted_ca("CN=Corp Issuing CA 2, O=Corp"));
        assert!(!l.is_trusted_ca("CN=Evil CA"));
    }

    #[test]
    fn every_bad_value_is_reported_with_its_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "assets.csv",
            "cidr,app,env,owner,segment,classification\n10.0.0.0/8,a,b,c,d,e\n10.0.0.0/40,a,b,c,d,e\nnot-a-net,a,b,c,d,e\n",
        );
        write(
            dir.path(),
            "identities.csv",
            "user,display_name,status,privileged,terminated_at,break_glass,owner\nbob,Bob,gone,maybe,yesterday,false,x\n",
        );
        write(dir.path(), "trusted_cas.csv", "name,provider\nx,y\n");
        write(dir.path(), "Bad Name.csv", "a\n1\n");
        let err = Reference::load_dir(dir.path()).expect_err("invalid");
        let text = err.to_string();
        for needle in [
            "assets.csv:3: column cidr: \"10.0.0.0/40\"",
            "assets.csv:4: column cidr: \"not-a-net\"",
            "identities.csv:2: column status: \"gone\"",
            "identities.csv:2: column privileged: \"maybe\"",
            "identities.csv:2: column terminated_at: \"yesterday\"",
            "trusted_cas.csv:1: reference table trusted_cas needs column \"pattern\"",
            "Bad Name.csv:1: reference table name",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        assert_eq!(err.diagnostics().len(), 7, "{text}");
    }

    #[test]
    fn tests_can_override_tables_with_csv_text() {
        let base = Reference::empty();
        let mut o = BTreeMap::new();
        o.insert(
            "assets".to_owned(),
            "cidr,app,env,owner,segment,classification\n10.0.0.0/24,pay,prod,t,pci,c\n".to_owned(),
        );
        let r = base.with_csv(&o, Path::new("r.yaml"), 12).expect("override");
        assert_eq!(r.lookups().asset_field("10.0.0.5", "segment"), Some("pci"));
        o.insert("assets".to_owned(), "cidr,app\n".to_owned());
        let d = base.with_csv(&o, Path::new("r.yaml"), 12).expect_err("bad");
        assert_eq!(d[0].line, 12);
        assert!(d[0].message.contains("needs column"), "{}", d[0].message);
    }
}
