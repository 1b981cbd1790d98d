//! Hostile-input tests for every AWS format (and the `json-message` wrapper): truncations and
//! byte substitutions of real records never panic, and every record ends as a row, a
//! quarantine or a deliberate skip — never silently dropped.

use crate::format::{Format, ParseOptions};
use crate::output::{Output, Record, SourceInfo};
use crate::providers::{aws, generic};

/// Formats under test.
fn formats() -> [&'static Format; 7] {
    [
        &aws::vpcflow::FORMAT,
        &aws::tgwflow::FORMAT,
        &aws::elb::FORMAT,
        &aws::cloudtrail::FORMAT,
        &aws::eventbridge::FORMAT,
        &aws::cloudwatch::FORMAT,
        &generic::message::FORMAT,
    ]
}

/// Real-shaped records: every format's example plus a few awkward ones.
fn samples() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = formats().iter().map(|f| f.example.as_bytes().to_vec()).collect();
    v.push(br#"{"Records":[{"eventTime":"2023-01-01T00:00:00Z","eventSource":"acm-pca.amazonaws.com","eventName":"IssueCertificate","requestParameters":{"validity":{"value":1,"type":"END_DATE"},"certificateSerial":"0a:1b"},"responseElements":{"certificateArn":"arn:aws:acm-pca:r:a:certificate-authority/x/certificate/y"}}]}"#.to_vec());
    v.push(br#"{"detail-type":"AWS API Call via CloudTrail","time":"2023-01-01T00:00:00Z","detail":{"eventSource":"sts.amazonaws.com","eventName":"AssumeRoleWithSAML","userIdentity":{"type":"SAMLUser"}}}"#.to_vec());
    v.push(br#"{"detail-type":"ACM Certificate Available","time":"2023-01-01T00:00:00Z","resources":["arn:aws:acm:r:a:certificate/c"],"detail":{"Action":"RENEWAL","DaysToExpiry":"9"}}"#.to_vec());
    v.push(br#"https 2023-11-14T22:50:05.000000Z app/a/b [2001:db8::1]:55000 [2001:db8::2]:8080 0 0 0 101 101 3 2 "GET / HTTP/1.1" "ua \"x\"" c TLSv1 - "r" "d" "session-reused" 2 2023-11-14T22:50:04Z "forward" "-" "-" "-" "-" "-" "-" TID"#.to_vec());
    v.push(b"2015-05-13T23:39:43.945958Z classic 192.0.2.1:2817 10.0.0.1:80 0 0 0 200 200 0 29 \"GET / HTTP/1.1\" \"curl\" - -".to_vec());
    v
}

/// Parse `records` with a fresh parser of `format`; returns the counts.
fn run(format: &'static Format, records: &[Vec<u8>]) -> crate::output::Counts {
    let options =
        ParseOptions { max_json_depth: 12, max_field_len: 512, ..ParseOptions::default() };
    let mut parser = (format.new_parser)(&options).expect("parser");
    let mut out = Output::new(64, 0);
    out.begin_source(SourceInfo::lines("k", "hostile"), [0; 4]);
    for (i, bytes) in records.iter().enumerate() {
        out.set_format(format.name, format.provider);
        out.begin_record();
        parser.parse(&Record { line: i as u64 + 1, bytes }, &mut out);
        out.end_record();
        // Keep memory flat: drop the batches as they fill.
        if out.buffered_rows() > 4096 {
            out.take_batches(0);
        }
    }
    parser.finish(&mut out);
    out.take_counts()
}

#[test]
fn truncated_and_corrupted_records_never_panic_and_are_always_accounted_for() {
    const SUBSTITUTES: [u8; 10] = [b'"', b'{', b'[', b']', 0xff, b' ', b'\\', b'-', b':', b'\n'];
    let samples = samples();
    let mut hostile: Vec<Vec<u8>> = Vec::new();
    for s in &samples {
        for cut in 0..=s.len() {
            hostile.push(s[..cut].to_vec());
        }
        for (i, sub) in (0..s.len()).flat_map(|i| SUBSTITUTES.iter().map(move |b| (i, *b))) {
            if i % 3 == 0 {
                let mut m = s.clone();
                m[i] = sub;
                hostile.push(m);
            }
        }
    }
    assert!(hostile.len() > 10_000, "a real workout: {}", hostile.len());
    for format in formats() {
        let counts = run(format, &hostile);
        assert_eq!(counts.records, hostile.len() as u64, "{}", format.name);
        // `empty` is what Output records for a record the parser left without any outcome.
        assert_eq!(counts.skipped.get("empty"), None, "{}: a record vanished", format.name);
        let outcomes: u64 = counts.rows.values().sum::<u64>() + counts.skipped_total();
        assert!(outcomes >= counts.records, "{}", format.name);
    }
}

#[test]
fn oversized_and_deeply_nested_json_is_quarantined_with_the_cap_reason() {
    let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
    let huge = format!(
        r#"{{"messageType":"DATA_MESSAGE","logEvents":[{{"message":"{}"}}]}}"#,
        "x".repeat(2_000)
    );
    for format in [
        &aws::cloudtrail::FORMAT,
        &aws::eventbridge::FORMAT,
        &aws::cloudwatch::FORMAT,
        &generic::message::FORMAT,
    ] {
        let counts = run(format, &[deep.clone().into_bytes(), huge.clone().into_bytes()]);
        assert_eq!(counts.quarantined.get("json_too_deep"), Some(&1), "{}", format.name);
        assert_eq!(counts.quarantined.get("field_too_large"), Some(&1), "{}", format.name);
    }
}
