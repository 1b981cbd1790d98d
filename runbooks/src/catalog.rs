//! The catalog: every runbook of a directory (`runbooks/*.md`), validated together.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::error::{Error, Problem, Result};
use crate::runbook::{Runbook, parse};

/// The runbooks of a directory, by id.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    runbooks: Vec<Runbook>,
}

impl Catalog {
    /// Load every `*.md` file of `dir` (not recursive; `README.md` is skipped).
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be read; [`Error::Invalid`] with every problem
    /// of every file (front matter, sections, duplicate ids).
    pub fn load_dir(dir: &Path) -> Result<Catalog> {
        let entries =
            std::fs::read_dir(dir).map_err(|e| Error::Io { path: dir.to_path_buf(), source: e })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "md"))
            .filter(|p| !p.file_name().is_some_and(|n| n.eq_ignore_ascii_case("README.md")))
            .collect();
        files.sort();
        let mut sources = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| Error::Io { path: file.clone(), source: e })?;
            sources.push((file, text));
        }
        Catalog::from_sources(&sources)
    }

    /// Build a catalog from `(file, text)` pairs.
    ///
    /// # Errors
    /// [`Error::Invalid`] with every problem found.
    pub fn from_sources(sources: &[(PathBuf, String)]) -> Result<Catalog> {
        let mut problems = Vec::new();
        let mut runbooks: Vec<Runbook> = Vec::new();
        for (file, text) in sources {
            match parse(file, text) {
                Ok(r) => {
                    if let Some(other) = runbooks.iter().find(|o| o.id == r.id) {
                        problems.push(Problem {
                            file: file.clone(),
                            line: 2,
                            message: format!(
                                "duplicate runbook id {:?}: also in {}",
                                r.id,
                                other.file.display()
                            ),
                        });
                    } else {
                        runbooks.push(r);
                    }
                }
                Err(p) => problems.extend(p),
            }
        }
        if !problems.is_empty() {
            problems.sort();
            return Err(Error::Invalid(problems));
        }
        runbooks.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(Catalog { runbooks })
    }

    /// Every runbook, by id.
    pub fn list(&self) -> &[Runbook] {
        &self.runbooks
    }

    /// The ids (what the rule loader checks runbook references against).
    pub fn ids(&self) -> BTreeSet<String> {
        self.runbooks.iter().map(|r| r.id.clone()).collect()
    }

    /// The runbook `id`.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub fn get(&self, id: &str) -> Result<&Runbook> {
        self.runbooks
            .iter()
            .find(|r| r.id == id)
            .ok_or_else(|| Error::NotFound { id: id.to_owned() })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::runbook::tests::GOOD;

    /// A catalog with the test runbook `exposed-admin-port` (owner `netsec`, escalation
    /// critical 15m, high 1h).
    pub(crate) fn catalog() -> Catalog {
        Catalog::from_sources(&[(PathBuf::from("exposed-admin-port.md"), GOOD.to_owned())])
            .expect("catalog")
    }

    #[test]
    fn a_directory_loads_and_duplicates_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("exposed-admin-port.md"), GOOD).expect("write");
        std::fs::write(dir.path().join("README.md"), "# not a runbook").expect("write");
        std::fs::write(dir.path().join("notes.txt"), "ignored").expect("write");
        let c = Catalog::load_dir(dir.path()).expect("load");
        assert_eq!(c.ids().into_iter().collect::<Vec<_>>(), ["exposed-admin-port"]);
        assert_eq!(c.get("exposed-admin-port").expect("get").owner, "netsec");
        assert!(matches!(c.get("nope"), Err(Error::NotFound { .. })));
        let dup = vec![
            (PathBuf::from("a/exposed-admin-port.md"), GOOD.to_owned()),
            (PathBuf::from("b/exposed-admin-port.md"), GOOD.to_owned()),
        ];
        let e = Catalog::from_sources(&dup).expect_err("duplicate");
        assert!(e.to_string().contains("duplicate runbook id"), "{e}");
    }
}
