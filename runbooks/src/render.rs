//! Rendering a runbook with an alert's values: `{{name}}` placeholders filled in.
//!
//! Values come from attacker-controlled logs, so they stay data: control characters become
//! spaces and values are capped. Inside ```sql fences a value is a SQL literal — quoted and
//! escaped (`'` doubled) unless it already sits between quotes or is a plain number — so a
//! hostile entity cannot turn the hunt query into another query. Placeholders without a value
//! are left as they are and reported.

use std::collections::BTreeMap;

use crate::runbook::Runbook;

/// Longest value substituted, in characters.
const MAX_VALUE_CHARS: usize = 256;

/// A rendered runbook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The Markdown with values filled in.
    pub text: String,
    /// Placeholders that had no value (left as `{{name}}`).
    pub missing: Vec<String>,
}

/// The placeholder names in `text` (`{{ name }}`, name `[A-Za-z0-9_]+`).
pub(crate) fn placeholder_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let name = after[..end].trim();
                if is_name(name) {
                    names.push(name.to_owned());
                }
                rest = &after[end + 2..];
            }
            None => break,
        }
    }
    names
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A value made safe to show: no control characters, capped.
fn clean(value: &str) -> String {
    let mut out: String =
        value.chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX_VALUE_CHARS).collect();
    if value.chars().count() > MAX_VALUE_CHARS {
        out.push('…');
    }
    out
}

fn is_number(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) && s.len() <= 19
}

/// Substitute the placeholders of one line; `sql` says the line is inside a ```sql fence.
fn fill(
    line: &str,
    values: &BTreeMap<String, String>,
    sql: bool,
    missing: &mut Vec<String>,
) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(start) = rest.find("{{") {
        let (before, after) = rest.split_at(start);
        out.push_str(before);
        let inner = &after[2..];
        let Some(end) = inner.find("}}") else {
            out.push_str(after);
            return out;
        };
        let name = inner[..end].trim();
        let tail = &inner[end + 2..];
        match values.get(name).filter(|_| is_name(name)) {
            Some(value) => {
                let value = clean(value);
                if sql {
                    let quoted = out.ends_with('\'') && tail.starts_with('\'');
                    if quoted {
                        out.push_str(&value.replace('\'', "''"));
                    } else if is_number(&value) {
                        out.push_str(&value);
                    } else {
                        out.push('\'');
                        out.push_str(&value.replace('\'', "''"));
                        out.push('\'');
                    }
                } else {
                    out.push_str(&value);
                }
            }
            None => {
                if is_name(name) && !missing.iter().any(|m| m == name) {
                    missing.push(name.to_owned());
                }
                out.push_str(&after[..end + 4]);
            }
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// Render `runbook` as Markdown with `values` filled in (front matter as a header block).
pub fn render(runbook: &Runbook, values: &BTreeMap<String, String>) -> Rendered {
    let mut missing = Vec::new();
    let mut text = String::new();
    text.push_str(&format!("# {} (`{}`)\n\n", runbook.title, runbook.id));
    text.push_str(&format!("- owner: {}\n", runbook.owner));
    let escalation: Vec<String> = crate::runbook::SEVERITIES
        .iter()
        .rev()
        .filter_map(|s| {
            runbook.escalation.get(*s).map(|d| format!("{s} {}", humantime::format_duration(*d)))
        })
        .collect();
    text.push_str(&format!("- escalate unacknowledged alerts after: {}\n", escalation.join(", ")));
    text.push_str(&format!("- file: {}\n", runbook.file.display()));
    let preamble = runbook
        .preamble
        .lines()
        .filter(|l| {
            !(l.starts_with("# ") && l.trim_start_matches("# ").trim() == runbook.title.trim())
        })
        .collect::<Vec<_>>()
        .join("\n");
    if !preamble.trim().is_empty() {
        text.push('\n');
        text.push_str(&fill_block(preamble.trim(), values, &mut missing));
        text.push('\n');
    }
    for section in &runbook.sections {
        text.push_str(&format!("\n## {}\n", section.title));
        text.push_str(&fill_block(&section.body, values, &mut missing));
    }
    missing.sort();
    Rendered { text, missing }
}

fn fill_block(body: &str, values: &BTreeMap<String, String>, missing: &mut Vec<String>) -> String {
    let mut out = String::with_capacity(body.len());
    let mut fence: Option<bool> = None; // Some(is_sql) inside a fence
    for line in body.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            fence = match fence {
                Some(_) => None,
                None => Some(info.trim().eq_ignore_ascii_case("sql")),
            };
            out.push_str(line);
            continue;
        }
        out.push_str(&fill(line, values, fence == Some(true), missing));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::runbook::tests::GOOD;

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn values_fill_placeholders_and_stay_data() {
        let rb = crate::runbook::parse(Path::new("exposed-admin-port.md"), GOOD).expect("parse");
        let r = render(&rb, &values(&[("dst_ip", "10.0.0.5"), ("dst_port", "3389")]));
        assert!(r.missing.is_empty(), "{:?}", r.missing);
        assert!(r.text.contains("WHERE dst_ip = '10.0.0.5' AND dst_port = 3389"), "{}", r.text);
        assert!(r.text.contains("Check 10.0.0.5."), "{}", r.text);
        assert!(
            r.text.contains("escalate unacknowledged alerts after: critical 15m, high 1h"),
            "{}",
            r.text
        );
        // Hostile values: quotes escaped in SQL, an unquoted non-number becomes a literal,
        // control characters are gone.
        let r =
            render(&rb, &values(&[("dst_ip", "x' OR '1'='1"), ("dst_port", "1 OR 1=1\n## Owned")]));
        assert!(r.text.contains("dst_ip = 'x'' OR ''1''=''1'"), "{}", r.text);
        assert!(r.text.contains("dst_port = '1 OR 1=1 ## Owned'"), "{}", r.text);
        assert!(!r.text.contains("\n## Owned"), "{}", r.text);
        let r = render(&rb, &values(&[("dst_ip", "10.0.0.5")]));
        assert_eq!(r.missing, ["dst_port"]);
        assert!(r.text.contains("{{dst_port}}"));
    }

    #[test]
    fn names_are_found() {
        assert_eq!(placeholder_names("a {{x}} b {{ y_2 }} {{bad name}} {{"), ["x", "y_2"]);
    }
}
