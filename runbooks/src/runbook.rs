//! One runbook: a Markdown file with YAML front matter and the required sections.
//!
//! ```markdown
//! ---
//! id: exposed-admin-port
//! title: Admin port reachable from the internet
//! owner: network-security
//! escalation:
//!   critical: 15m
//!   high: 1h
//! ---
//! ## What it means
//! ## Triage
//! ## Hunt
//! ## Contain
//! ## Rollback
//! ## Escalate
//! ```
//!
//! Front matter keys are exactly `id`, `title`, `owner`, `escalation` (unknown keys are
//! errors); `escalation` maps severities (info, low, medium, high, critical) to how long an
//! unacknowledged alert may wait before it escalates. Sections are `## ` headings, matched
//! case-insensitively; the six above are required, others are allowed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::error::Problem;

/// Severities an escalation may name.
pub const SEVERITIES: [&str; 5] = ["info", "low", "medium", "high", "critical"];

/// The sections every runbook has, in their usual order.
pub const REQUIRED_SECTIONS: [&str; 6] =
    ["What it means", "Triage", "Hunt", "Contain", "Rollback", "Escalate"];

/// A duration written as a human string (`15m`, `4h`, `1d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dur(Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(text.trim()).map(Dur).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {text:?}: {e} (write e.g. \"15m\", \"4h\")"
            ))
        })
    }
}

/// The front matter as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontMatter {
    id: String,
    title: String,
    owner: String,
    escalation: BTreeMap<String, Dur>,
}

/// A section of a runbook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The heading as written.
    pub title: String,
    /// 1-based line of the heading.
    pub line: usize,
    /// The Markdown under the heading, up to the next `## ` heading.
    pub body: String,
}

/// A parsed runbook.
#[derive(Debug, Clone)]
pub struct Runbook {
    /// Unique id, `[a-z0-9-]+`; rules name it.
    pub id: String,
    /// One-line title.
    pub title: String,
    /// The owning team.
    pub owner: String,
    /// Severity → time an unacknowledged alert waits before escalating.
    pub escalation: BTreeMap<String, Duration>,
    /// The file.
    pub file: PathBuf,
    /// Markdown before the first `## ` heading (e.g. a `# Title` line).
    pub preamble: String,
    /// The sections, in file order.
    pub sections: Vec<Section>,
}

impl Runbook {
    /// The section titled `title` (case-insensitive).
    pub fn section(&self, title: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.title.eq_ignore_ascii_case(title))
    }

    /// Every `{{placeholder}}` name the runbook uses, sorted.
    pub fn placeholders(&self) -> Vec<String> {
        let mut names: Vec<String> = std::iter::once(self.preamble.as_str())
            .chain(self.sections.iter().map(|s| s.body.as_str()))
            .flat_map(crate::render::placeholder_names)
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-')
}

/// The line of front-matter key `key` (1-based in the file), or the opening `---` line.
fn key_line(front: &str, key: &str) -> usize {
    front
        .lines()
        .position(|l| {
            l.split_once(':').is_some_and(|(k, _)| k.trim() == key) && !l.starts_with(' ')
        })
        .map_or(1, |i| i + 2)
}

/// Parse runbook `file` with content `text`; every problem is returned.
pub(crate) fn parse(file: &Path, text: &str) -> Result<Runbook, Vec<Problem>> {
    let problem =
        |line: usize, message: String| Problem { file: file.to_path_buf(), line, message };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.split_inclusive('\n');
    if lines.next().map(str::trim_end) != Some("---") {
        return Err(vec![problem(1, "a runbook starts with YAML front matter between `---` lines (id, title, owner, escalation)".into())]);
    }
    let mut front = String::new();
    let mut closed_at = None;
    for (i, line) in lines.by_ref().enumerate() {
        if line.trim_end() == "---" {
            closed_at = Some(i + 2);
            break;
        }
        front.push_str(line);
    }
    let Some(closed_at) = closed_at else {
        return Err(vec![problem(1, "the front matter is not closed by a `---` line".into())]);
    };
    let mut problems = Vec::new();
    let matter: Option<FrontMatter> = match serde_yaml_ng::from_str(&front) {
        Ok(m) => Some(m),
        Err(e) => {
            let line = e.location().map_or(1, |l| l.line() + 1);
            let mut message = e.to_string();
            if let Some(l) = e.location() {
                message =
                    message.replace(&format!(" at line {} column {}", l.line(), l.column()), "");
            }
            problems.push(problem(line, format!("front matter: {message}")));
            None
        }
    };
    // Sections.
    let mut preamble = String::new();
    let mut sections: Vec<Section> = Vec::new();
    let mut fence = false;
    for (i, line) in lines.enumerate() {
        let number = closed_at + 1 + i;
        let trimmed = line.trim_end();
        if trimmed.trim_start().starts_with("```") {
            fence = !fence;
        }
        if !fence && let Some(title) = trimmed.strip_prefix("## ") {
            sections.push(Section {
                title: title.trim().to_owned(),
                line: number,
                body: String::new(),
            });
            continue;
        }
        match sections.last_mut() {
            Some(s) => s.body.push_str(line),
            None => preamble.push_str(line),
        }
    }
    for required in REQUIRED_SECTIONS {
        let found: Vec<&Section> =
            sections.iter().filter(|s| s.title.eq_ignore_ascii_case(required)).collect();
        match found.as_slice() {
            [] => problems.push(problem(closed_at, format!("missing section `## {required}`"))),
            [one] if one.body.trim().is_empty() => {
                problems.push(problem(one.line, format!("section `## {required}` is empty")))
            }
            [_] => {}
            [_, second, ..] => problems
                .push(problem(second.line, format!("section `## {required}` appears twice"))),
        }
    }
    let Some(m) = matter else { return Err(problems) };
    if !valid_id(&m.id) {
        problems.push(problem(key_line(&front, "id"), format!("id {:?} must be [a-z0-9-]+", m.id)));
    }
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    if valid_id(&m.id) && stem != m.id {
        problems.push(problem(
            key_line(&front, "id"),
            format!("id {:?} differs from the file name {stem:?}.md", m.id),
        ));
    }
    for (key, value) in [("title", &m.title), ("owner", &m.owner)] {
        if value.trim().is_empty() {
            problems.push(problem(key_line(&front, key), format!("{key} is empty")));
        }
    }
    if m.escalation.is_empty() {
        problems
            .push(problem(key_line(&front, "escalation"), "escalation names no severity".into()));
    }
    for severity in m.escalation.keys() {
        if !SEVERITIES.contains(&severity.as_str()) {
            problems.push(problem(
                key_line(&front, "escalation"),
                format!("escalation: {severity:?} is not a severity ({})", SEVERITIES.join(", ")),
            ));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Runbook {
        id: m.id,
        title: m.title,
        owner: m.owner,
        escalation: m.escalation.into_iter().map(|(k, v)| (k, v.0)).collect(),
        file: file.to_path_buf(),
        preamble,
        sections,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const GOOD: &str = "---\nid: exposed-admin-port\ntitle: Admin port exposed\nowner: netsec\nescalation:\n  critical: 15m\n  high: 1h\n---\n# Admin port exposed\n\n## What it means\nA host answers on {{dst_port}}.\n\n## Triage\nCheck {{dst_ip}}.\n\n## Hunt\n```sql\nSELECT * FROM flows WHERE dst_ip = '{{dst_ip}}' AND dst_port = {{dst_port}}\n## not a heading inside a fence\n```\n\n## Contain\nBlock it.\n\n## Rollback\nRedeploy the last known-good policy version from code.\n\n## Escalate\nPage netsec.\n";

    #[test]
    fn a_good_runbook_parses() {
        let r = parse(Path::new("runbooks/exposed-admin-port.md"), GOOD).expect("parses");
        assert_eq!(r.id, "exposed-admin-port");
        assert_eq!(r.escalation["critical"], Duration::from_secs(900));
        assert_eq!(r.sections.len(), 6);
        assert!(r.section("hunt").expect("hunt").body.contains("## not a heading"));
        assert_eq!(r.section("Triage").expect("triage").line, 14);
        assert_eq!(r.placeholders(), ["dst_ip", "dst_port"]);
    }

    #[test]
    fn every_problem_is_reported() {
        let text = GOOD
            .replace("owner: netsec\n", "owner: netsec\npager: x\n")
            .replace("## Rollback\nRedeploy the last known-good policy version from code.\n", "")
            .replace("## Contain\nBlock it.\n", "## Contain\n\n");
        let p = parse(Path::new("exposed-admin-port.md"), &text).expect_err("bad");
        let all: Vec<String> = p.iter().map(ToString::to_string).collect();
        let all = all.join("\n");
        assert!(all.contains("unknown field `pager`"), "{all}");
        assert!(all.contains("missing section `## Rollback`"), "{all}");
        assert!(all.contains("section `## Contain` is empty"), "{all}");
        let text = GOOD
            .replace("critical: 15m", "urgent: 15m")
            .replace("id: exposed-admin-port", "id: other");
        let p = parse(Path::new("exposed-admin-port.md"), &text).expect_err("bad");
        let all: Vec<String> = p.iter().map(ToString::to_string).collect();
        let all = all.join("\n");
        assert!(all.contains("\"urgent\" is not a severity"), "{all}");
        assert!(
            all.contains("exposed-admin-port.md:2: id \"other\" differs from the file name"),
            "{all}"
        );
        let p = parse(Path::new("x.md"), "# no front matter\n").expect_err("bad");
        assert!(p[0].message.contains("front matter"));
    }
}
