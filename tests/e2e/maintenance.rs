//! Compaction and retention through the CLI.

use super::{Scratch, fixture};

fn sorted_rows(s: &Scratch) -> String {
    let batches = s.query(
        "SELECT event_uid, time, src_ip, dst_ip, bytes, status, date FROM flows ORDER BY event_uid",
    );
    datafusion::arrow::util::pretty::pretty_format_batches(&batches).expect("format").to_string()
}

fn data_files(dir: &std::path::Path) -> usize {
    walk(dir).into_iter().filter(|p| p.extension().is_some_and(|e| e == "parquet")).count()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
        }
    }
    out
}

#[test]
fn compaction_merges_small_files_and_keeps_results() {
    let s = Scratch::new();
    // Many small ingests of distinct content land in the same partition.
    let base = std::fs::read_to_string(fixture("aws/flows/vpcflow-v2-default.log")).expect("read");
    for i in 0..6 {
        let name = format!("part{i}.log");
        let shifted = base.replace("210987654321", &format!("21098765432{i}"));
        std::fs::write(s.path(&name), shifted).expect("write");
        s.ok(&["ingest", s.path(&name).to_str().expect("p")]);
    }
    let before = sorted_rows(&s);
    let files_before = s.ok(&["tables"]);
    let out = s.ok(&["compact"]);
    assert!(out.contains("flows:"), "{out}");
    let after = sorted_rows(&s);
    assert_eq!(before, after, "identical query results after compaction");
    let files_after = s.ok(&["tables"]);
    let count = |text: &str| -> usize {
        let line = text.lines().find(|l| l.starts_with("flows")).expect("flows line");
        let files = line.split(" rows in ").nth(1).expect("files").split(' ').next().expect("n");
        files.parse().expect("number")
    };
    assert!(count(&files_after) < count(&files_before), "{files_before}\n{files_after}");
}

#[test]
fn retention_drops_exactly_the_old_partitions() {
    let s = Scratch::new();
    let today = chrono::Utc::now().date_naive();
    let day = |d: i64| {
        (today - chrono::Duration::days(d)).and_hms_opt(12, 0, 0).expect("t").and_utc().timestamp()
    };
    let mut lines = String::new();
    for (age, n) in [(0i64, 3), (5, 2), (10, 4), (40, 1)] {
        for k in 0..n {
            let t = day(age) + k;
            lines.push_str(&format!(
                "2 111122223333 eni-0a 10.0.0.1 10.0.0.2 1000 443 6 1 100 {t} {} ACCEPT OK\n",
                t + 60
            ));
        }
    }
    std::fs::write(s.path("days.log"), lines).expect("write");
    s.ok(&["ingest", s.path("days.log").to_str().expect("p")]);
    assert_eq!(s.scalar("SELECT count(*) FROM flows"), 10);
    let files_before = data_files(&s.lake().join("flows"));
    let out = s.ok(&["retain", "--days", "7"]);
    assert!(out.contains("flows: dropped 2 partitions"), "{out}");
    assert_eq!(s.scalar("SELECT count(*) FROM flows"), 5, "today's 3 + 5 days ago 2");
    let oldest = today - chrono::Duration::days(5);
    assert_eq!(s.scalar(&format!("SELECT count(*) FROM flows WHERE date < '{oldest}'")), 0);
    assert!(data_files(&s.lake().join("flows")) < files_before, "vacuum deleted the dropped files");
}
