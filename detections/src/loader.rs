//! Loading the rule pack: every file parsed, validated and planned, every problem collected.
//!
//! [`load_dir`] reads every `*.yaml` / `*.yml` under a directory (sub-directories included),
//! parses each ([`crate::parse`]), validates its settings, plans its SQL against the canonical
//! and reference schemas ([`crate::compile`]), checks the result's columns, its runbook, its
//! tests' formats and reference tables, and the uniqueness of ids. It fails with
//! [`Error::Invalid`] listing every problem of every file, each at its line; it never stops at
//! the first. The set of known runbook ids is an input: this crate does not read runbooks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::DataType;
use ztlake_normalize::schema::Table;

use crate::compile::compile;
use crate::error::{Diagnostic, Error, Result};
use crate::locate::KeyLines;
use crate::reference::Reference;
use crate::rule::{DEFAULT_DEDUPE_PERIOD, DEFAULT_WINDOW, Mode, Rule, RuleFile, valid_id};

/// What a rule pack is validated against.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Ids of the runbooks that exist (`None`: runbooks are not checked).
    pub runbooks: Option<BTreeSet<String>>,
    /// The reference tables rules may read (and tests use unless they bring their own).
    pub reference: Reference,
}

/// A validated rule pack.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Arc<Rule>>,
    reference: Reference,
}

impl RuleSet {
    /// Every rule, by id.
    pub fn rules(&self) -> &[Arc<Rule>] {
        &self.rules
    }

    /// The streaming rules.
    pub fn streaming(&self) -> Vec<Arc<Rule>> {
        self.rules.iter().filter(|r| r.mode() == Mode::Streaming).cloned().collect()
    }

    /// The rule with id `id`.
    pub fn get(&self, id: &str) -> Option<&Arc<Rule>> {
        self.rules.iter().find(|r| r.id() == id)
    }

    /// The reference tables the rules were planned with.
    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// A set of one rule.
    pub(crate) fn single(rule: Arc<Rule>, reference: Reference) -> RuleSet {
        RuleSet { rules: vec![rule], reference }
    }

    /// Only the rules whose id is in `ids`.
    pub fn only(&self, ids: &[String]) -> RuleSet {
        let rules =
            self.rules.iter().filter(|r| ids.iter().any(|i| i == r.id())).cloned().collect();
        RuleSet { rules, reference: self.reference.clone() }
    }
}

/// The rule files under `dir`, sorted.
pub fn rule_files(dir: &Path) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        for entry in entries {
            let path = entry.map_err(|e| Error::io(dir, e))?.path();
            if path.is_dir() {
                walk(&path, out)?;
            } else if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    files.sort();
    Ok(files)
}

/// Load and validate every rule file under `dir`.
///
/// # Errors
/// [`Error::Io`] when the directory or a file cannot be read; [`Error::Invalid`] with every
/// problem found.
pub async fn load_dir(dir: &Path, options: &LoadOptions) -> Result<RuleSet> {
    let mut sources = Vec::new();
    for path in rule_files(dir)? {
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        sources.push((path, text));
    }
    load_sources(&sources, options).await
}

/// Load and validate rules given as `(file name, text)`.
///
/// # Errors
/// [`Error::Invalid`] with every problem found.
pub async fn load_sources(sources: &[(PathBuf, String)], options: &LoadOptions) -> Result<RuleSet> {
    let mut diagnostics = Vec::new();
    let mut rules: Vec<Rule> = Vec::new();
    for (path, text) in sources {
        match crate::parse::parse(path, text) {
            Ok((spec, lines)) => {
                let (rule, problems) = validate(path, spec, lines, options).await;
                diagnostics.extend(problems);
                if let Some(rule) = rule {
                    rules.push(rule);
                }
            }
            Err(problems) => diagnostics.extend(problems),
        }
    }
    let mut first: BTreeMap<String, PathBuf> = BTreeMap::new();
    for rule in &rules {
        if let Some(other) = first.get(rule.id()) {
            diagnostics.push(
                Diagnostic::new(
                    &rule.file,
                    rule.line_of("id"),
                    format!(
                        "duplicate rule id {:?}: also defined in {}",
                        rule.id(),
                        other.display()
                    ),
                )
                .for_rule(Some(rule.id())),
            );
        } else {
            first.insert(rule.id().to_owned(), rule.file.clone());
        }
    }
    if !diagnostics.is_empty() {
        diagnostics.sort();
        return Err(Error::Invalid(diagnostics));
    }
    rules.sort_by(|a, b| a.id().cmp(b.id()));
    Ok(RuleSet {
        rules: rules.into_iter().map(Arc::new).collect(),
        reference: options.reference.clone(),
    })
}

fn valid_attack_id(id: &str) -> bool {
    let b = id.as_bytes();
    let base = b.len() >= 5 && b[0] == b'T' && b[1..5].iter().all(u8::is_ascii_digit);
    match b.len() {
        5 => base,
        9 => base && b[5] == b'.' && b[6..].iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

fn is_string(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _)
    )
}

/// Validate one parsed rule; returns the rule when it is usable and every problem found.
async fn validate(
    path: &Path,
    spec: RuleFile,
    lines: KeyLines,
    options: &LoadOptions,
) -> (Option<Rule>, Vec<Diagnostic>) {
    let id = spec.id.clone();
    let mut d: Vec<Diagnostic> = Vec::new();
    let mut err = |key: &str, line: Option<usize>, message: String| {
        let line = line.unwrap_or_else(|| lines.line(key));
        d.push(Diagnostic::new(path, line, message).for_rule(Some(&id)));
    };
    if !valid_id(&spec.id) {
        err("id", None, format!("id {:?} must be [a-z0-9-]+", spec.id));
    }
    if spec.title.trim().is_empty() {
        err("title", None, "title is empty".into());
    }
    let table = match Table::from_name(&spec.table).filter(|t| Table::DATA.contains(t)) {
        Some(t) => Some(t),
        None => {
            let names: Vec<&str> = Table::DATA.iter().map(|t| t.name()).collect();
            err(
                "table",
                None,
                format!("table {:?} is not one of {}", spec.table, names.join(", ")),
            );
            None
        }
    };
    let positive = |d: Option<crate::rule::Dur>| d.map(|d| d.0);
    let (mut window, mut lateness, mut interval, mut lookback) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO, Duration::ZERO);
    match spec.mode {
        Mode::Streaming => {
            for key in ["interval", "lookback"] {
                let given = if key == "interval" {
                    spec.interval.is_some()
                } else {
                    spec.lookback.is_some()
                };
                if given {
                    err(
                        key,
                        None,
                        format!("`{key}` is for scheduled rules; streaming rules use `window`"),
                    );
                }
            }
            window = positive(spec.window).unwrap_or(DEFAULT_WINDOW);
            lateness = positive(spec.lateness).unwrap_or(window);
            if window < Duration::from_secs(1) {
                err("window", None, "window must be at least 1s".into());
            }
        }
        Mode::Scheduled => {
            for key in ["window", "lateness"] {
                let given =
                    if key == "window" { spec.window.is_some() } else { spec.lateness.is_some() };
                if given {
                    err(
                        key,
                        None,
                        format!(
                            "`{key}` is for streaming rules; scheduled rules use `interval` and `lookback`"
                        ),
                    );
                }
            }
            match positive(spec.interval) {
                Some(i) if i >= Duration::from_secs(1) => interval = i,
                Some(_) => err("interval", None, "interval must be at least 1s".into()),
                None => err("mode", None, "scheduled rules need `interval`".into()),
            }
            lookback = positive(spec.lookback).unwrap_or(interval);
            if spec.lookback.is_some() && lookback < Duration::from_secs(1) {
                err("lookback", None, "lookback must be at least 1s".into());
            }
        }
    }
    if spec.entity.is_empty() {
        err("entity", None, "entity needs at least one column".into());
    }
    let dedupe_key =
        spec.dedupe.as_ref().and_then(|x| x.key.clone()).unwrap_or_else(|| spec.entity.clone());
    let dedupe_period =
        spec.dedupe.as_ref().and_then(|x| x.period).map_or(DEFAULT_DEDUPE_PERIOD, |p| p.0);
    if dedupe_key.is_empty() {
        err("dedupe", None, "dedupe.key needs at least one column".into());
    }
    if dedupe_period < Duration::from_secs(1) {
        err("dedupe", None, "dedupe.period must be at least 1s".into());
    }
    if !valid_id(&spec.runbook) {
        err("runbook", None, format!("runbook id {:?} must be [a-z0-9-]+", spec.runbook));
    } else if let Some(known) = &options.runbooks
        && !known.contains(&spec.runbook)
    {
        let hint = if known.is_empty() {
            "no runbooks were found".to_owned()
        } else {
            format!("known runbooks: {}", known.iter().cloned().collect::<Vec<_>>().join(", "))
        };
        err("runbook", None, format!("runbook {:?} does not exist ({hint})", spec.runbook));
    }
    for a in &spec.tags.attack {
        if !valid_attack_id(a) {
            err(
                "tags",
                None,
                format!("tags.attack {a:?} is not an ATT&CK technique id (T1234 or T1234.001)"),
            );
        }
    }
    // Tests: formats, reference tables, expected entities.
    let mut positive_tests = 0;
    let mut negative_tests = 0;
    for (t, test) in spec.tests.iter().enumerate() {
        let line = lines.test_line(t);
        if test.expect.count > 0 {
            positive_tests += 1;
        } else {
            negative_tests += 1;
        }
        if test.input.is_empty() {
            err("tests", Some(line), format!("test {:?} has no input", test.name));
        }
        for (i, input) in test.input.iter().enumerate() {
            if input.format != "auto"
                && ztlake_normalize::format::format_by_name(&input.format).is_err()
            {
                err(
                    "tests",
                    Some(lines.format_line(t, i)),
                    format!(
                        "test {:?}: unknown input format {:?} (`ztlake formats` lists them)",
                        test.name, input.format
                    ),
                );
            }
        }
        if !test.reference.is_empty()
            && let Err(problems) = options.reference.with_csv(&test.reference, path, line)
        {
            for p in problems {
                err("tests", Some(line), format!("test {:?}: {}", test.name, p.message));
            }
        }
        if let Some(entities) = &test.expect.entities {
            if entities.len() != test.expect.count {
                err(
                    "tests",
                    Some(line),
                    format!(
                        "test {:?}: expect.count is {} but {} entities are listed",
                        test.name,
                        test.expect.count,
                        entities.len()
                    ),
                );
            }
            for e in entities {
                let keys: BTreeSet<&str> = e.keys().map(String::as_str).collect();
                let wanted: BTreeSet<&str> = spec.entity.iter().map(String::as_str).collect();
                if keys != wanted {
                    err(
                        "tests",
                        Some(line),
                        format!(
                            "test {:?}: expected entities name the columns {:?}; the rule's entity is {:?}",
                            test.name, keys, wanted
                        ),
                    );
                }
            }
        }
    }
    if positive_tests == 0 {
        err("tests", None, "the rule needs at least one positive test (expect.count > 0)".into());
    }
    if negative_tests == 0 {
        err("tests", None, "the rule needs at least one negative test (expect.count: 0)".into());
    }
    // The SQL: plans, reads its trigger table, returns the required columns.
    let mut retains = Vec::new();
    match compile(&spec.sql, &options.reference).await {
        Err(message) => err("sql", None, format!("SQL: {message}")),
        Ok(compiled) => {
            let schema = compiled.plan.schema();
            let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
            let returns = format!("the SQL returns: {}", names.join(", "));
            let field = |n: &str| schema.fields().iter().find(|f| f.name() == n).cloned();
            for c in &spec.entity {
                if field(c).is_none() {
                    err(
                        "entity",
                        None,
                        format!("entity column {c:?} is not returned by the SQL ({returns})"),
                    );
                }
            }
            if spec.dedupe.as_ref().and_then(|x| x.key.as_ref()).is_some() {
                for c in &dedupe_key {
                    if field(c).is_none() {
                        err(
                            "dedupe",
                            None,
                            format!(
                                "dedupe key column {c:?} is not returned by the SQL ({returns})"
                            ),
                        );
                    }
                }
            }
            for c in ["first_seen", "last_seen"] {
                match field(c) {
                    None => err(
                        "sql",
                        None,
                        format!("the SQL must return {c} (a timestamp; {returns})"),
                    ),
                    Some(f) if !matches!(f.data_type(), DataType::Timestamp(_, _)) => {
                        err("sql", None, format!("{c} must be a timestamp, not {}", f.data_type()))
                    }
                    Some(_) => {}
                }
            }
            match field("event_uids") {
                None => err(
                    "sql",
                    None,
                    format!("the SQL must return event_uids (array_agg(event_uid); {returns})"),
                ),
                Some(f) => match f.data_type() {
                    DataType::List(item) | DataType::LargeList(item)
                        if is_string(item.data_type()) => {}
                    other => err(
                        "sql",
                        None,
                        format!(
                            "event_uids must be a list of text (array_agg(event_uid)), not {other}"
                        ),
                    ),
                },
            }
            if let Some(f) = field("count")
                && !f.data_type().is_integer()
            {
                err("sql", None, format!("count must be an integer, not {}", f.data_type()));
            }
            if let Some(t) = table
                && !compiled.retains.iter().any(|r| r.table == t)
            {
                err(
                    "table",
                    None,
                    format!("the rule is triggered by {t} but its SQL does not read {t}"),
                );
            }
            retains = compiled.retains.clone();
        }
    }
    let ok = d.is_empty();
    let rule = (ok && table.is_some()).then(|| Rule {
        file: path.to_path_buf(),
        table: table.unwrap_or(Table::Flows),
        window,
        lateness,
        interval,
        lookback,
        dedupe_key,
        dedupe_period,
        retains,
        lines,
        spec,
    });
    (rule, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attack_ids() {
        assert!(valid_attack_id("T1133"));
        assert!(valid_attack_id("T1021.001"));
        assert!(!valid_attack_id("T113"));
        assert!(!valid_attack_id("t1133"));
        assert!(!valid_attack_id("T1021.01"));
    }
}
