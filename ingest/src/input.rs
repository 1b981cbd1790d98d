//! Finding the inputs — stage 1 (ingest) of ingest → normalize → storage.
//!
//! [`expand_inputs`] turns command-line arguments into the list of inputs to read. It promises:
//!
//! - `-` is stdin; a file (or a pipe such as `/dev/fd/63`) named explicitly is taken as is;
//! - a directory is walked recursively, following symlinks, keeping regular files only, sorted
//!   by path so every run sees the same order; a symlink loop is skipped with a warning (it only
//!   leads back to files already listed), so it cannot hang the walk;
//! - a path that is missing or unreadable, or an unreadable entry under a directory, is an
//!   [`Error`] naming it: nothing is silently left out.

use std::fs;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use crate::{Error, Result};

/// One input to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    /// The file to read; `None` is stdin.
    pub path: Option<PathBuf>,
    /// How to name the input to the user: the path as given (or found under a directory), or
    /// `<stdin>`.
    pub display: String,
    /// Size in bytes for regular files (raw, before decompression); `None` for stdin and pipes.
    pub size: Option<u64>,
}

impl InputFile {
    /// Standard input.
    pub fn stdin() -> Self {
        Self { path: None, display: "<stdin>".to_owned(), size: None }
    }

    /// Whether this is standard input.
    pub fn is_stdin(&self) -> bool {
        self.path.is_none()
    }
}

/// Expands command-line arguments into inputs, in argument order; see the module docs.
///
/// # Errors
///
/// [`Error::Open`] for an argument that does not exist or cannot be inspected,
/// [`Error::Walk`] for an unreadable entry under a directory (or a dangling symlink).
pub fn expand_inputs(args: &[PathBuf]) -> Result<Vec<InputFile>> {
    let mut inputs = Vec::new();
    for arg in args {
        if arg.as_os_str() == "-" {
            inputs.push(InputFile::stdin());
            continue;
        }
        let meta = fs::metadata(arg)
            .map_err(|cause| Error::Open { input: arg.display().to_string(), cause })?;
        if meta.is_dir() {
            inputs.extend(walk(arg)?);
        } else {
            inputs.push(InputFile {
                path: Some(arg.clone()),
                display: arg.display().to_string(),
                size: meta.is_file().then_some(meta.len()),
            });
        }
    }
    Ok(inputs)
}

/// Regular files under `root`, sorted by path.
fn walk(root: &Path) -> Result<Vec<InputFile>> {
    let mut found = Vec::new();
    for entry in WalkDir::new(root).follow_links(true) {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) if e.loop_ancestor().is_some() => {
                let at = e.path().unwrap_or(root).display().to_string();
                tracing::warn!(path = %at, "skipping symlink loop");
                continue;
            }
            Err(e) => {
                let input = e.path().unwrap_or(root).display().to_string();
                return Err(Error::Walk { input, cause: e.into() });
            }
        };
        if !entry.file_type().is_file() {
            continue;
        }
        let meta = entry.metadata().map_err(|e| Error::Walk {
            input: entry.path().display().to_string(),
            cause: e.into(),
        })?;
        found.push(InputFile {
            display: entry.path().display().to_string(),
            path: Some(entry.into_path()),
            size: Some(meta.len()),
        });
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, rel: &str, bytes: &[u8]) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }

    fn rel_paths(root: &Path, inputs: &[InputFile]) -> Vec<String> {
        inputs
            .iter()
            .map(|i| i.path.as_ref().unwrap().strip_prefix(root).unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn directory_is_walked_recursively_and_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for rel in ["b.log", "a/z.log", "a/b/c.json.gz", "a.txt", "c/.hidden", "a/a.log"] {
            touch(root, rel, b"12345");
        }
        fs::create_dir_all(root.join("empty/dir")).unwrap();
        let inputs = expand_inputs(&[root.to_path_buf()]).unwrap();
        assert_eq!(
            rel_paths(root, &inputs),
            ["a/a.log", "a/b/c.json.gz", "a/z.log", "a.txt", "b.log", "c/.hidden"]
        );
        assert!(inputs.iter().all(|i| i.size == Some(5)));
        assert_eq!(inputs[0].display, root.join("a/a.log").display().to_string());
    }

    #[test]
    fn arguments_keep_their_order_and_dash_is_stdin() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), "z.log", b"x");
        touch(dir.path(), "d/a.log", b"xy");
        let args = [dir.path().join("z.log"), PathBuf::from("-"), dir.path().join("d")];
        let inputs = expand_inputs(&args).unwrap();
        assert_eq!(inputs.len(), 3);
        assert_eq!(inputs[0].size, Some(1));
        assert_eq!(inputs[0].display, args[0].display().to_string());
        assert!(inputs[1].is_stdin());
        assert_eq!(inputs[1], InputFile::stdin());
        assert_eq!(inputs[2].size, Some(2));
    }

    #[test]
    fn missing_path_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such.log");
        let err = expand_inputs(&[dir.path().to_path_buf(), missing.clone()]).unwrap_err();
        assert!(matches!(err, Error::Open { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.starts_with(&format!("{}: cannot open", missing.display())), "{msg}");
    }

    #[cfg(unix)]
    #[test]
    fn symlink_loop_does_not_hang_and_linked_files_count() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        touch(root, "logs/a.log", b"a");
        touch(root, "elsewhere/b.log", b"b");
        std::os::unix::fs::symlink(root.join("logs"), root.join("logs/loop")).unwrap();
        std::os::unix::fs::symlink(root.join("elsewhere/b.log"), root.join("logs/b-link.log"))
            .unwrap();
        let inputs = expand_inputs(&[root.join("logs")]).unwrap();
        assert_eq!(rel_paths(root, &inputs), ["logs/a.log", "logs/b-link.log"]);
    }

    #[cfg(unix)]
    #[test]
    fn dangling_symlink_in_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), "a.log", b"a");
        let dangling = dir.path().join("gone.log");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        let err = expand_inputs(&[dir.path().to_path_buf()]).unwrap_err();
        assert!(matches!(err, Error::Walk { .. }), "{err:?}");
        assert!(err.to_string().contains(&dangling.display().to_string()), "{err}");
    }
}
