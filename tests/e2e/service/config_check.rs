//! `ztlake config check`: the shipped example is valid; a broken file gets every problem
//! reported, each naming its key, and a non-zero exit.

use super::super::{Scratch, run_ztlake};

#[test]
fn the_example_passes_and_every_problem_of_a_bad_file_is_reported() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/ztlake.toml");
    let out = run_ztlake(&["config", "check", example]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("OK"), "{stdout}");

    let s = Scratch::new();
    let bad = s.path("bad.toml");
    std::fs::write(
        &bad,
        r#"
[lake]
location = "./lake"
colour = "blue"

[[kafka]]
brokers = "localhost:9092"
group_id = "g"
topics = [{ name = "flows", format = "not-a-format" }]

[[objects]]
url = "ftp://nowhere/"

[siem]
brokers = ""

[detections]
rules = "/no/such/rules"

[http]
listen = "everywhere"

[oncall]
pager = "yes"
"#,
    )
    .expect("write");
    let out = run_ztlake(&["config", "check", bad.to_str().expect("utf8")]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "lake: unknown field `colour`",
        "kafka[0].topics (flows): unknown format",
        "objects[0]: ftp://nowhere/: invalid configuration: unsupported scheme ftp",
        "siem.brokers: empty",
        "detections.rules: /no/such/rules is not a directory",
        "http.listen",
        "oncall",
        "pager",
    ] {
        assert!(stdout.contains(needle), "{needle:?} missing in:\n{stdout}");
    }
}
