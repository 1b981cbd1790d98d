//! Where things are in a rule file: the lines of its top-level keys and of its tests.
//!
//! The YAML parser reports line and column for syntax and type errors. Problems found after
//! parsing (SQL that does not plan, an unknown runbook, a duplicate id) are reported at the line
//! of the key they concern, found by scanning the text: a top-level key is a line starting in
//! column 0 with `name:`. The same scan cuts the file into one block per top-level key, so each
//! key can be parsed on its own and every bad key reported in one run.

/// A top-level key of a rule file and the lines it spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyBlock {
    /// The key.
    pub(crate) key: String,
    /// 1-based line of the key.
    pub(crate) line: usize,
    /// Byte range of the block (the key line up to the next top-level key).
    pub(crate) range: std::ops::Range<usize>,
}

/// Lines of the keys of one rule file.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyLines {
    blocks: Vec<KeyBlock>,
    /// 1-based lines of the items of `tests:` (`- name: …`), in order.
    tests: Vec<usize>,
    /// Per test: lines holding `format:` (one per input), in order.
    formats: Vec<Vec<usize>>,
}

impl KeyLines {
    /// Scan `text`.
    pub(crate) fn scan(text: &str) -> KeyLines {
        let mut blocks: Vec<KeyBlock> = Vec::new();
        let mut offset = 0;
        for (i, line) in text.split_inclusive('\n').enumerate() {
            if let Some(key) = top_level_key(line) {
                if let Some(last) = blocks.last_mut() {
                    last.range.end = offset;
                }
                blocks.push(KeyBlock { key, line: i + 1, range: offset..text.len() });
            } else if is_document_marker(line)
                && let Some(last) = blocks.last_mut()
            {
                last.range.end = offset;
            }
            offset += line.len();
        }
        let mut lines = KeyLines { blocks, ..KeyLines::default() };
        if let Some(block) = lines.blocks.iter().find(|b| b.key == "tests").cloned() {
            lines.scan_tests(text, &block);
        }
        lines
    }

    fn scan_tests(&mut self, text: &str, block: &KeyBlock) {
        let body = &text[block.range.clone()];
        let mut items: Vec<(usize, usize)> = Vec::new(); // (indent, line)
        let mut formats: Vec<(usize, usize)> = Vec::new(); // (line, indent)
        for (i, line) in body.split_inclusive('\n').enumerate().skip(1) {
            let trimmed = line.trim_start_matches(' ');
            let indent = line.len() - trimmed.len();
            if trimmed.starts_with("- ") || trimmed.trim_end() == "-" {
                items.push((indent, block.line + i));
            }
            let content = trimmed.trim_start_matches("- ");
            if content.starts_with("format:") {
                formats.push((block.line + i, indent));
            }
        }
        let Some(min) = items.iter().map(|(indent, _)| *indent).min() else { return };
        self.tests = items.iter().filter(|(indent, _)| *indent == min).map(|(_, l)| *l).collect();
        self.formats = vec![Vec::new(); self.tests.len()];
        for (line, _) in formats {
            if let Some(t) = self.tests.iter().rposition(|&start| start <= line) {
                self.formats[t].push(line);
            }
        }
    }

    /// The top-level key blocks, in file order.
    pub(crate) fn blocks(&self) -> &[KeyBlock] {
        &self.blocks
    }

    /// Line of top-level `key` (1 when absent).
    pub(crate) fn line(&self, key: &str) -> usize {
        self.blocks.iter().find(|b| b.key == key).map_or(1, |b| b.line)
    }

    /// Line of test `index` (the `tests:` line when not found).
    pub(crate) fn test_line(&self, index: usize) -> usize {
        self.tests.get(index).copied().unwrap_or_else(|| self.line("tests"))
    }

    /// Line of the `format:` of input `input` of test `test`.
    pub(crate) fn format_line(&self, test: usize, input: usize) -> usize {
        self.formats
            .get(test)
            .and_then(|f| f.get(input))
            .copied()
            .unwrap_or_else(|| self.test_line(test))
    }
}

/// The key of a line that starts a top-level mapping entry, if it does.
fn top_level_key(line: &str) -> Option<String> {
    let first = line.chars().next()?;
    if first.is_whitespace() || matches!(first, '#' | '-' | '.' | '{' | '[' | '%') {
        return None;
    }
    let (key, _) = line.split_once(':')?;
    let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
    let plain =
        !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    plain.then(|| key.to_owned())
}

fn is_document_marker(line: &str) -> bool {
    let t = line.trim_end();
    t == "---" || t == "..."
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# comment\nid: a\nsql: |\n  SELECT 1\n  FROM flows\nentity: [x]\ntests:\n  - name: one\n    input:\n      - format: aws-vpcflow\n        data: |\n          - x: not a key\n      - format: auto\n        data: y\n    expect: {count: 1}\n  - name: two\n    input:\n      - {format: gcp-vpcflow, data: z}\n    expect:\n      count: 0\n";

    #[test]
    fn keys_and_tests_are_located() {
        let lines = KeyLines::scan(TEXT);
        let keys: Vec<(&str, usize)> =
            lines.blocks().iter().map(|b| (b.key.as_str(), b.line)).collect();
        assert_eq!(keys, [("id", 2), ("sql", 3), ("entity", 6), ("tests", 7)]);
        assert_eq!(&TEXT[lines.blocks()[1].range.clone()], "sql: |\n  SELECT 1\n  FROM flows\n");
        assert_eq!(lines.line("sql"), 3);
        assert_eq!(lines.line("runbook"), 1);
        assert_eq!(lines.test_line(0), 8);
        assert_eq!(lines.test_line(1), 16);
        assert_eq!(lines.format_line(0, 0), 10);
        assert_eq!(lines.format_line(0, 1), 13);
        // Flow-style inputs: the test's own line.
        assert_eq!(lines.format_line(1, 0), 16);
    }
}
