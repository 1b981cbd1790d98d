//! Shared helpers for the end-to-end tests: a temporary lake, running the binary, and reading
//! the lake back with SQL.

mod corpus;
mod delivery;
mod demo;
mod detections;
mod hunting;
mod ingest;
mod maintenance;
mod peers;
mod posture;
mod service;
mod sources;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;

/// A scratch directory holding a lake and inputs.
pub(crate) struct Scratch {
    pub(crate) dir: tempfile::TempDir,
}

impl Scratch {
    pub(crate) fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("tempdir") }
    }

    pub(crate) fn lake(&self) -> PathBuf {
        self.dir.path().join("lake")
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Run `ztlake --lake <lake> ARGS...`.
    pub(crate) fn ztlake(&self, args: &[&str]) -> Output {
        let lake = self.lake();
        let mut all = vec!["--lake", lake.to_str().expect("utf8 path")];
        all.extend_from_slice(args);
        run_ztlake(&all)
    }

    /// Run and require success; returns stdout.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.ztlake(args);
        assert!(
            out.status.success(),
            "ztlake {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8 stdout")
    }

    /// Ingest with `--json` and return the parsed summary.
    pub(crate) fn ingest_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["ingest", "--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).expect("summary json")
    }

    /// Run a hunting query through the library and return the batches.
    pub(crate) fn query(&self, sql: &str) -> Vec<RecordBatch> {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let lake = ztlake_storage::Lake::open(self.lake().to_str().expect("utf8"))
                .await
                .expect("lake");
            let hunter = ztlake::hunt::Hunter::open(&lake, ztlake::hunt::HuntLimits::default())
                .await
                .expect("hunter");
            hunter.collect(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:#}"))
        })
    }

    /// A single i64 from `SELECT count(*) …`-like queries.
    pub(crate) fn scalar(&self, sql: &str) -> i64 {
        let batches = self.query(sql);
        let batch =
            batches.iter().find(|b| b.num_rows() > 0).unwrap_or_else(|| panic!("{sql}: no rows"));
        let col = batch.column(0);
        if col.is_null(0) {
            return 0;
        }
        col.as_primitive::<Int64Type>().value(0)
    }
}

pub(crate) fn run_ztlake(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ztlake"))
        .args(args)
        .env_remove("ZTLAKE_LAKE")
        .env_remove("RUST_LOG")
        .output()
        .expect("run ztlake")
}

/// The fixtures of the normalize crate (inputs the golden tests also use).
pub(crate) fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("normalize/tests/fixtures").join(rel)
}

/// Sum of a JSON map's integer values (e.g. the `quarantined` map of a summary).
pub(crate) fn sum_values(v: &serde_json::Value) -> u64 {
    v.as_object().map_or(0, |m| m.values().filter_map(|x| x.as_u64()).sum())
}

/// The values of a string-like column (Utf8, Utf8View or dictionary) as owned strings.
pub(crate) fn strings(column: &datafusion::arrow::array::ArrayRef) -> Vec<String> {
    let text =
        datafusion::arrow::compute::cast(column, &datafusion::arrow::datatypes::DataType::Utf8)
            .expect("cast to Utf8");
    let text = text.as_string::<i32>();
    (0..text.len()).map(|i| text.value(i).to_owned()).collect()
}
