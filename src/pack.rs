//! The detection pack as the binary loads it: rules (`detections/rules`), runbooks
//! (`runbooks`) and reference tables (`detections/reference`), validated together.
//!
//! Rules are checked against the runbook catalog's ids and planned against the reference
//! tables; every problem of every file is collected into one list (file:line: message), so
//! `ztlake rules validate` shows them all at once.

use std::path::{Path, PathBuf};

use ztlake_detections::{LoadOptions, Reference, RuleSet};
use ztlake_runbooks::Catalog;

/// Where the pack lives.
#[derive(Debug, Clone)]
pub struct PackPaths {
    /// Rule files (recursive).
    pub rules: PathBuf,
    /// Runbook Markdown files.
    pub runbooks: PathBuf,
    /// Reference CSV/Parquet files.
    pub reference: PathBuf,
}

/// A loaded, valid pack.
#[derive(Debug, Clone)]
pub struct Pack {
    /// The rules.
    pub rules: RuleSet,
    /// The runbooks.
    pub runbooks: Catalog,
}

/// Why a pack did not load: every problem, as `file:line: message` lines.
#[derive(Debug)]
pub struct PackProblems(pub Vec<String>);

impl std::fmt::Display for PackProblems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} problem(s) in the detection pack:", self.0.len())?;
        for p in &self.0 {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PackProblems {}

/// The reference tables of `dir`; a missing directory gives the empty known tables (so hunting
/// works from anywhere).
pub fn load_reference(dir: &Path) -> Result<Reference, Vec<String>> {
    if !dir.is_dir() {
        return Ok(Reference::empty());
    }
    Reference::load_dir(dir).map_err(|e| match e {
        ztlake_detections::Error::Invalid(d) => d.iter().map(ToString::to_string).collect(),
        other => vec![other.to_string()],
    })
}

/// Load and validate the whole pack.
///
/// # Errors
/// [`PackProblems`] listing every problem found in rules, runbooks and reference files.
pub async fn load(paths: &PackPaths) -> Result<Pack, PackProblems> {
    let mut problems = Vec::new();
    let runbooks = if paths.runbooks.is_dir() {
        match Catalog::load_dir(&paths.runbooks) {
            Ok(c) => Some(c),
            Err(ztlake_runbooks::Error::Invalid(p)) => {
                problems.extend(p.iter().map(ToString::to_string));
                None
            }
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        }
    } else {
        problems.push(format!(
            "{}: runbook directory not found (--runbooks, ZTLAKE_RUNBOOKS)",
            paths.runbooks.display()
        ));
        None
    };
    let reference = match load_reference(&paths.reference) {
        Ok(r) => r,
        Err(p) => {
            problems.extend(p);
            Reference::empty()
        }
    };
    if !paths.rules.is_dir() {
        problems.push(format!(
            "{}: rule directory not found (--rules, ZTLAKE_RULES)",
            paths.rules.display()
        ));
        return Err(PackProblems(problems));
    }
    // With a broken catalog the rules are still checked, only not against runbook ids.
    let options = LoadOptions { runbooks: runbooks.as_ref().map(Catalog::ids), reference };
    let rules = match ztlake_detections::load_dir(&paths.rules, &options).await {
        Ok(r) => Some(r),
        Err(ztlake_detections::Error::Invalid(d)) => {
            problems.extend(d.iter().map(ToString::to_string));
            None
        }
        Err(e) => {
            problems.push(e.to_string());
            None
        }
    };
    match (rules, runbooks) {
        (Some(rules), Some(runbooks)) if problems.is_empty() => Ok(Pack { rules, runbooks }),
        _ => Err(PackProblems(problems)),
    }
}

/// Placeholders a rule's runbook uses that the rule's alerts cannot fill (warnings).
pub fn placeholder_warnings(pack: &Pack) -> Vec<String> {
    const ALERT_FIELDS: [&str; 9] = [
        "alert_id",
        "rule_id",
        "title",
        "severity",
        "provider",
        "first_seen",
        "last_seen",
        "count",
        "runbook",
    ];
    let mut out = Vec::new();
    for rule in pack.rules.rules() {
        let Ok(runbook) = pack.runbooks.get(&rule.spec.runbook) else { continue };
        for name in runbook.placeholders() {
            if !ALERT_FIELDS.contains(&name.as_str()) && !rule.spec.entity.contains(&name) {
                out.push(format!(
                    "{}: runbook {} uses {{{{{name}}}}}, which rule {}'s alerts do not have (entity: {})",
                    runbook.file.display(),
                    runbook.id,
                    rule.id(),
                    rule.spec.entity.join(", ")
                ));
            }
        }
    }
    out
}
