//! Ingest end to end: conservation of records, quarantine reasons, idempotence, exit codes.

use std::io::Write as _;

use super::{Scratch, fixture, sum_values};

/// A file mixing valid lines, garbage, an over-long line and invalid UTF-8, gzip'd and cut
/// short: every record read ends in `flows` or `quarantine` (or is a counted header).
#[test]
fn every_record_is_accounted_for() {
    let s = Scratch::new();
    let mut plain = Vec::new();
    plain.extend_from_slice(b"version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n");
    for i in 0..500u32 {
        writeln!(plain, "2 210987654321 eni-0a1b2c3d 10.0.{}.{} 10.1.0.1 {} 443 6 10 1000 1700000000 1700000060 ACCEPT OK", i / 250, i % 250 + 1, 40000 + i).expect("write");
        match i % 100 {
            7 => plain.extend_from_slice(b"complete garbage that is not a flow log\n"),
            13 => plain.extend_from_slice(&[b'x'; 3000]),
            21 => plain.extend_from_slice(b"2 210987654321 eni-0a1b2c3d 10.0.0.1 10.1.0.1 1 2 6 1 1 1700000000 1700000060 ACCEPT \xff\xfe\n"),
            _ => continue,
        }
        if i % 100 == 13 {
            plain.push(b'\n');
        }
    }
    // A gzip'd copy cut in the middle: the complete lines before the cut are read, the damaged
    // tail becomes one quarantined record.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).expect("gzip");
    let gz = gz.finish().expect("gzip");
    std::fs::write(s.path("mixed.log"), &plain).expect("write");
    std::fs::write(s.path("cut.log.gz"), &gz[..gz.len() * 2 / 3]).expect("write");

    let summary = s.ingest_json(&[
        "--max-line-len",
        "2KiB",
        s.path("mixed.log").to_str().expect("p"),
        s.path("cut.log.gz").to_str().expect("p"),
    ]);
    let counts = &summary["counts"];
    let records = counts["records"].as_u64().expect("records");
    let flows = counts["rows"]["flows"].as_u64().unwrap_or(0);
    let quarantined = sum_values(&counts["quarantined"]);
    let skipped = sum_values(&counts["skipped"]);
    assert!(records > 600, "both files read: {records}");
    assert_eq!(flows + quarantined + skipped, records, "conservation: {summary}");
    // Five over-long lines in the plain file, and those before the cut in the gzip'd copy.
    assert!(counts["quarantined"]["line_too_long"].as_u64().unwrap_or(0) >= 5, "{summary}");
    assert!(counts["quarantined"]["invalid_utf8"].as_u64().unwrap_or(0) >= 5);
    assert_eq!(
        counts["quarantined"]["truncated_input"], 1,
        "the cut gzip ends in one quarantined record"
    );

    // The lake holds exactly what the summary says, and every quarantine row has a reason.
    assert_eq!(s.scalar("SELECT count(*) FROM flows") as u64, flows);
    assert_eq!(s.scalar("SELECT count(*) FROM quarantine") as u64, quarantined);
    assert_eq!(
        s.scalar(
            "SELECT count(*) FROM quarantine WHERE reason IS NULL OR detail IS NULL OR detail = ''"
        ),
        0
    );
    assert_eq!(
        s.scalar(
            "SELECT count(*) FROM quarantine WHERE reason = 'line_too_long' AND byte_len = 3000"
        ),
        counts["quarantined"]["line_too_long"].as_i64().expect("n")
    );
}

#[test]
fn ingesting_the_same_input_twice_commits_nothing_new() {
    let s = Scratch::new();
    let input = fixture("aws/flows");
    let input = input.to_str().expect("utf8");
    let first = s.ingest_json(&[input]);
    let rows = s.scalar("SELECT count(*) FROM flows");
    let q = s.scalar("SELECT count(*) FROM quarantine");
    assert!(rows >= 25, "fixtures ingested: {rows}");
    let versions = |summary: &serde_json::Value| summary["commits"]["flows"]["version"].clone();
    assert!(versions(&first).is_i64());

    let second = s.ingest_json(&[input]);
    assert!(versions(&second).is_null(), "second ingest commits nothing: {second}");
    assert_eq!(second["commits"]["quarantine"]["version"], serde_json::Value::Null);
    assert_eq!(s.scalar("SELECT count(*) FROM flows"), rows);
    assert_eq!(s.scalar("SELECT count(*) FROM quarantine"), q);
    assert_eq!(
        second["counts"]["replayed"], first["counts"]["records"],
        "every record recognised as already committed"
    );
    // Every event_uid is unique, so nothing was duplicated either.
    assert_eq!(s.scalar("SELECT count(DISTINCT event_uid) FROM flows"), rows);
}

#[test]
fn a_copy_of_an_input_in_the_same_run_is_read_once() {
    let s = Scratch::new();
    let src = fixture("aws/flows/vpcflow-v2-default.log");
    std::fs::copy(&src, s.path("copy.log")).expect("copy");
    let summary =
        s.ingest_json(&[src.to_str().expect("p"), s.path("copy.log").to_str().expect("p")]);
    assert_eq!(summary["duplicate_inputs"].as_array().map(Vec::len), Some(1));
    assert_eq!(s.scalar("SELECT count(*) FROM flows"), 8);
}

#[test]
fn unreadable_inputs_fail_with_the_path_named() {
    let s = Scratch::new();
    let out = s.ztlake(&["ingest", "/nonexistent/flows.log"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/flows.log"), "{err}");

    let out = s.ztlake(&[
        "ingest",
        "--format",
        "no-such-format",
        fixture("aws/flows").to_str().expect("p"),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-format"));
}

#[test]
fn an_unwritable_lake_fails_with_its_location_named() {
    let s = Scratch::new();
    std::fs::write(s.path("file-not-dir"), b"x").expect("write");
    let lake = s.path("file-not-dir");
    let out = super::run_ztlake(&[
        "--lake",
        lake.to_str().expect("p"),
        "ingest",
        fixture("aws/flows/vpcflow-v2-default.log").to_str().expect("p"),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("file-not-dir"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn stdin_is_an_input() {
    let s = Scratch::new();
    let lake = s.lake();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ztlake"))
        .args(["--lake", lake.to_str().expect("p"), "ingest", "--json", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let data = std::fs::read(fixture("aws/flows/vpcflow-v2-default.log")).expect("read");
    child.stdin.take().expect("stdin").write_all(&data).expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    assert_eq!(s.scalar("SELECT count(*) FROM flows"), 8);
    assert_eq!(s.scalar("SELECT count(*) FROM flows WHERE source LIKE '<stdin>:%'"), 8);
}

/// JSON-lines inputs are parsed on several threads: the lake must hold exactly what one thread
/// writes — the same rows with the same `event_uid`s and source positions, the same quarantine,
/// the same counts — across block boundaries and with bad lines spread through the file.
#[test]
fn parallel_parsing_writes_what_one_thread_writes() {
    let s = Scratch::new();
    let generated = s.path("entra.ndjson");
    s.ok(&["generate", "entra", "--count", "5000", "--output", generated.to_str().expect("p")]);
    let clean = std::fs::read(&generated).expect("read generated");
    let mut input = Vec::with_capacity(clean.len() + 20_000);
    for (i, line) in clean.split_inclusive(|&b| b == b'\n').enumerate() {
        input.extend_from_slice(line);
        match i % 997 {
            3 => input.extend_from_slice(b"{\"time\": \"not json\n"),
            5 => input.extend_from_slice(b"[1,2,3]\n"),
            7 => {
                input.extend_from_slice(&[b'y'; 70_000]);
                input.push(b'\n');
            }
            _ => {}
        }
    }
    let path = s.path("mixed.ndjson");
    std::fs::write(&path, &input).expect("write");
    let path = path.to_str().expect("p");

    let one = Scratch::new();
    let many = Scratch::new();
    let mut summaries = Vec::new();
    for (lake, threads) in [(&one, "1"), (&many, "3")] {
        let summary = lake.ingest_json(&[
            "--format",
            "azure-entra-signin",
            "--max-line-len",
            "64KiB",
            "--parse-threads",
            threads,
            path,
        ]);
        summaries.push(summary["counts"].clone());
    }
    assert_eq!(summaries[0], summaries[1], "the same counts");
    assert!(summaries[0]["rows"]["signins"].as_u64().unwrap_or(0) >= 5000, "{}", summaries[0]);
    assert!(sum_values(&summaries[0]["quarantined"]) >= 15, "{}", summaries[0]);

    let rows = |lake: &Scratch, sql: &str| -> Vec<String> {
        let batches = lake.query(sql);
        let mut out = Vec::new();
        for batch in &batches {
            out.extend(super::strings(batch.column(0)));
        }
        out
    };
    let signins = r#"SELECT concat_ws('|', event_uid, source, "user", outcome, mfa_method,
        CAST("time" AS VARCHAR)) FROM signins ORDER BY 1"#;
    let quarantine = "SELECT concat_ws('|', source, reason, CAST(byte_len AS VARCHAR)) FROM quarantine ORDER BY 1";
    for sql in [signins, quarantine] {
        let (a, b) = (rows(&one, sql), rows(&many, sql));
        assert!(!a.is_empty(), "{sql}");
        assert_eq!(a, b, "{sql}");
    }
}
