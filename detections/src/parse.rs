//! Reading one rule file into a [`RuleFile`], reporting every problem with its line.
//!
//! The whole file is deserialized first (typed structs, `deny_unknown_fields`). When that fails,
//! the file is read again key by key — each top-level key's block on its own — so that a file
//! with an unknown key, a bad severity and a bad duration reports all three, each at its line,
//! instead of only the first (hayabusa-style collected errors).

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::Diagnostic;
use crate::locate::KeyLines;
use crate::rule::{
    DedupeSpec, Dur, Mode, REQUIRED_KEYS, RULE_KEYS, RuleFile, RuleTest, Severity, Tags,
};

/// A YAML error's message without its ` at line L column C` suffix, and its 1-based line.
fn split_error(e: &serde_yaml_ng::Error) -> (String, Option<usize>) {
    let text = e.to_string();
    match e.location() {
        Some(loc) => {
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            let message = text.strip_suffix(&suffix).map(str::to_owned).unwrap_or_else(|| {
                // Some messages put the location in the middle.
                text.replace(&suffix, "")
            });
            (message, Some(loc.line()))
        }
        None => (text, None),
    }
}

/// Deserialize one key's block as `{key: T}`.
fn probe_as<T: DeserializeOwned>(block: &str) -> Result<(), serde_yaml_ng::Error> {
    serde_yaml_ng::from_str::<BTreeMap<String, T>>(block).map(|_| ())
}

/// Deserialize the block of a known top-level key with that key's type.
fn probe(key: &str, block: &str) -> Result<(), serde_yaml_ng::Error> {
    match key {
        "id" | "title" | "table" | "sql" | "runbook" => probe_as::<String>(block),
        "description" => probe_as::<Option<String>>(block),
        "severity" => probe_as::<Severity>(block),
        "mode" => probe_as::<Mode>(block),
        "window" | "lateness" | "interval" | "lookback" => probe_as::<Option<Dur>>(block),
        "entity" => probe_as::<Vec<String>>(block),
        "dedupe" => probe_as::<Option<DedupeSpec>>(block),
        "tags" => probe_as::<Tags>(block),
        "tests" => probe_as::<Vec<RuleTest>>(block),
        _ => Ok(()),
    }
}

/// The closest known key to `key`, when it is close enough to be a typo.
fn suggestion(key: &str) -> Option<&'static str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1];
            for (j, cb) in b.iter().enumerate() {
                let cost = usize::from(ca != *cb);
                cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
            }
            prev = cur;
        }
        prev[b.len()]
    }
    RULE_KEYS.iter().map(|k| (distance(key, k), *k)).filter(|(d, _)| *d <= 2).min().map(|(_, k)| k)
}

/// Parse the rule file `path` with content `text`.
pub(crate) fn parse(path: &Path, text: &str) -> Result<(RuleFile, KeyLines), Vec<Diagnostic>> {
    let lines = KeyLines::scan(text);
    let first_error = match serde_yaml_ng::from_str::<RuleFile>(text) {
        Ok(rule) => return Ok((rule, lines)),
        Err(e) => e,
    };
    // Syntax errors: nothing more can be read.
    let value: serde_yaml_ng::Value = match serde_yaml_ng::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let (message, line) = split_error(&e);
            return Err(vec![Diagnostic::new(path, line.unwrap_or(1), format!("YAML: {message}"))]);
        }
    };
    let Some(mapping) = value.as_mapping() else {
        return Err(vec![Diagnostic::new(
            path,
            1,
            "a rule file is a YAML mapping of keys (id, title, severity, table, mode, sql, entity, runbook, …)",
        )]);
    };
    let mut diagnostics = Vec::new();
    for block in lines.blocks() {
        if !RULE_KEYS.contains(&block.key.as_str()) {
            let hint = suggestion(&block.key)
                .map(|k| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default();
            diagnostics.push(Diagnostic::new(
                path,
                block.line,
                format!(
                    "unknown key `{}`{hint}; rule keys are: {}",
                    block.key,
                    RULE_KEYS.join(", ")
                ),
            ));
            continue;
        }
        if let Err(e) = probe(&block.key, &text[block.range.clone()]) {
            let (message, line) = split_error(&e);
            let line = block.line + line.unwrap_or(1) - 1;
            let message = if message.starts_with(&block.key) {
                message
            } else {
                format!("{}: {message}", block.key)
            };
            diagnostics.push(Diagnostic::new(path, line, message));
        }
    }
    for key in REQUIRED_KEYS {
        if !mapping.contains_key(key) {
            diagnostics.push(Diagnostic::new(path, 1, format!("missing key `{key}`")));
        }
    }
    if diagnostics.is_empty() {
        let (message, line) = split_error(&first_error);
        diagnostics.push(Diagnostic::new(path, line.unwrap_or(1), message));
    }
    Err(diagnostics)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "id: zt-a\ntitle: A\nseverity: high\ntable: flows\nmode: streaming\nsql: SELECT 1\nentity: [dst_ip]\nrunbook: rb\n";

    #[test]
    fn a_good_file_parses() {
        let (rule, lines) = parse(Path::new("a.yaml"), GOOD).expect("parses");
        assert_eq!(rule.id, "zt-a");
        assert_eq!(lines.line("runbook"), 8);
    }

    #[test]
    fn every_bad_key_is_reported_at_its_line() {
        let text = "id: zt-a\ntitle: A\nseverty: high\nseverity: urgent\ntable: flows\nmode: streaming\nwindow: 10 minutez\nsql: SELECT 1\nentity: [dst_ip]\ntests:\n  - name: t\n    input: []\n    expect: {count: 1, cnt: 2}\n";
        let d = parse(Path::new("a.yaml"), text).expect_err("bad");
        let text: Vec<String> = d.iter().map(|d| d.to_string()).collect();
        let joined = text.join("\n");
        assert!(
            joined.contains("a.yaml:3: unknown key `severty` (did you mean `severity`?)"),
            "{joined}"
        );
        assert!(joined.contains("a.yaml:4: severity: unknown variant `urgent`"), "{joined}");
        assert!(joined.contains("a.yaml:7: window: invalid duration"), "{joined}");
        assert!(
            joined.contains("a.yaml:13: tests[0].expect: unknown field `cnt`"),
            "nested errors point into the block: {joined}"
        );
        assert!(joined.contains("cnt"), "{joined}");
        assert!(joined.contains("a.yaml:1: missing key `runbook`"), "{joined}");
        assert_eq!(d.len(), 5, "{joined}");
    }

    #[test]
    fn yaml_syntax_errors_have_a_line() {
        let d = parse(Path::new("b.yaml"), "id: a\ntitle: [unclosed\nseverity: high\n")
            .expect_err("bad");
        assert_eq!(d.len(), 1);
        assert!(d[0].message.starts_with("YAML:"), "{}", d[0].message);
        assert!(d[0].line >= 2, "{}", d[0]);
        let d = parse(Path::new("c.yaml"), "- a\n- b\n").expect_err("not a mapping");
        assert!(d[0].message.contains("mapping"), "{}", d[0].message);
    }
}
