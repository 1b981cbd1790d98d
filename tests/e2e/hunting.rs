//! Hunting: query results, partition pruning, read-only rejections, output formats.

use super::{Scratch, fixture};

fn lake_with_fixtures() -> Scratch {
    let s = Scratch::new();
    s.ok(&["ingest", fixture("aws/flows").to_str().expect("p")]);
    s
}

#[test]
fn a_query_over_ingested_fixtures_returns_the_expected_rows() {
    let s = Scratch::new();
    s.ok(&["ingest", fixture("aws/flows/vpcflow-v2-default.log").to_str().expect("p")]);
    // The fixture has 8 rows: 6 ok (one to port 3389 rejected), 1 nodata, 1 skipdata.
    assert_eq!(s.scalar("SELECT count(*) FROM flows"), 8);
    assert_eq!(s.scalar("SELECT count(*) FROM flows WHERE status = 'nodata'"), 1);
    assert_eq!(s.scalar("SELECT count(*) FROM flows WHERE action = 'deny' AND dst_port = 3389"), 1);
    assert_eq!(s.scalar("SELECT sum(bytes) FROM flows WHERE src_ip = '10.1.2.3'"), 5120 + 336 + 90);
    assert_eq!(
        s.scalar("SELECT count(*) FROM flows WHERE src_ip = '2001:db8::10'"),
        1,
        "IPv6 stored compressed"
    );
    let out = s.ok(&["hunt", "SELECT dst_port, count(*) AS n FROM flows WHERE dst_port IS NOT NULL GROUP BY dst_port ORDER BY dst_port"]);
    assert!(out.contains("| 3389     | 1 |"), "{out}");
    assert!(out.contains("row(s)"));
}

#[test]
fn partition_filters_prune_files() {
    let s = lake_with_fixtures();
    let total_files = s.scalar("SELECT count(DISTINCT date) FROM flows");
    assert!(total_files > 3, "fixtures span several days");
    let sql = "SELECT src_ip, bytes FROM flows WHERE provider = 'aws' AND date = '2023-11-15'";
    let plan = s.ok(&["hunt", "--format", "csv", &format!("EXPLAIN {sql}")]);
    // Only the files of the one matching day are scanned.
    assert!(plan.contains("date=2023-11-15"), "{plan}");
    assert!(!plan.contains("date=2023-11-14"), "pruned partitions must not be scanned:\n{plan}");
    assert!(!plan.contains("date=2019-08-26"), "{plan}");
    assert_eq!(s.query(sql).iter().map(|b| b.num_rows()).sum::<usize>(), 1);
}

#[test]
fn hunting_is_read_only() {
    let s = lake_with_fixtures();
    for (sql, needle) in [
        ("SELECT * FROM '/etc/passwd'", "file-path"),
        ("SELECT * FROM 'flows.csv'", "file-path"),
        ("DROP TABLE flows", "read-only"),
        ("DELETE FROM flows", "read-only"),
        ("INSERT INTO flows SELECT * FROM flows", "read-only"),
        ("COPY flows TO '/tmp/ztlake-exfil.csv'", "read-only"),
        ("SET datafusion.execution.batch_size = 1", "read-only"),
        ("CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'", "read-only"),
        ("CREATE VIEW v AS SELECT 1", "read-only"),
        ("SELECT * FROM nosuchtable", "unknown table"),
    ] {
        let out = s.ztlake(&["hunt", sql]);
        assert!(!out.status.success(), "{sql} must be rejected");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{sql}: {err}");
    }
    assert!(!std::path::Path::new("/tmp/ztlake-exfil.csv").exists());
}

#[test]
fn csv_export_neutralizes_formulas_and_other_formats_work() {
    let s = Scratch::new();
    // A hostile value reaches the lake through quarantine (raw_prefix is attacker-controlled).
    std::fs::write(s.path("evil.log"), "=HYPERLINK(\"http://x\",\"click\")\n").expect("write");
    s.ok(&["ingest", "--format", "aws-vpcflow", s.path("evil.log").to_str().expect("p")]);
    let csv = s.ok(&["hunt", "--format", "csv", "SELECT raw_prefix FROM quarantine"]);
    assert!(csv.contains("'=HYPERLINK"), "{csv}");
    let ndjson = s.ok(&["hunt", "--format", "ndjson", "SELECT reason FROM quarantine"]);
    assert_eq!(ndjson.trim(), r#"{"reason":"field_count"}"#);
    let json = s.ok(&["hunt", "--format", "json", "SELECT reason FROM quarantine"]);
    assert_eq!(json.trim(), r#"[{"reason":"field_count"}]"#);
    let out = s.path("q.parquet");
    s.ok(&[
        "hunt",
        "--format",
        "parquet",
        "--output",
        out.to_str().expect("p"),
        "SELECT reason, byte_len FROM quarantine",
    ]);
    let file = std::fs::File::open(&out).expect("parquet written");
    let reader = parquet::file::reader::SerializedFileReader::new(file).expect("valid parquet");
    use parquet::file::reader::FileReader as _;
    assert_eq!(reader.metadata().file_metadata().num_rows(), 1);
}

#[test]
fn tables_lists_schemas_and_row_counts() {
    let s = lake_with_fixtures();
    let out = s.ok(&["tables"]);
    let flows = s.scalar("SELECT count(*) FROM flows");
    assert!(out.contains(&format!("flows — one row per flow record (VPC/VNet flow logs, mesh and proxy access logs) ({flows} rows")), "{out}");
    assert!(out.contains("src_ip"));
    assert!(out.contains("date                 Date32 not null [partition]"), "{out}");
    let docs = s.ok(&["tables", "--docs"]);
    assert!(docs.contains("line_too_long"), "reason codes documented");
}
