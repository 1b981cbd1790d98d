//! Where a JSON value ends — part of stage 1 (ingest) framing.
//!
//! [`JsonScanner`] finds the end of a top-level JSON object or array by counting bracket depth
//! outside strings, honouring escapes. It does not parse or validate: brackets need not match in
//! kind, and everything else is skipped. It is incremental (feed the value in pieces), uses
//! constant memory and no recursion, so any nesting depth is just a counter.
//!
//! One recovery rule: a raw newline cannot occur inside a valid JSON string, so meeting one there
//! means the value is damaged (typically an NDJSON line cut short); the scanner reports it so the
//! framer can end the record at that line and resynchronise on the next one.

use memchr::memchr3;

/// How a scan of one piece of a JSON value ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanEnd {
    /// The value closes; the index is just past its closing bracket.
    Closed(usize),
    /// A raw `\n` inside a string at this index: the value is damaged.
    NewlineInString(usize),
    /// The piece was consumed without the value closing.
    More,
}

/// Scan state of one JSON value in progress. Start a new one for each value.
#[derive(Debug, Clone, Default)]
pub(crate) struct JsonScanner {
    depth: u64,
    in_string: bool,
    escaped: bool,
}

impl JsonScanner {
    /// Scans the next piece of the value (the first piece starts at its opening bracket).
    pub(crate) fn scan(&mut self, bytes: &[u8]) -> ScanEnd {
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            if self.escaped {
                self.escaped = false;
                if b == b'\n' {
                    return ScanEnd::NewlineInString(i);
                }
                i += 1;
            } else if self.in_string {
                let rest = bytes.get(i..).unwrap_or_default();
                let Some(k) = memchr3(b'"', b'\\', b'\n', rest) else {
                    return ScanEnd::More;
                };
                let j = i + k;
                match rest.get(k) {
                    Some(b'"') => self.in_string = false,
                    Some(b'\\') => self.escaped = true,
                    _ => return ScanEnd::NewlineInString(j),
                }
                i = j + 1;
            } else {
                i += 1;
                match b {
                    b'{' | b'[' => self.depth = self.depth.saturating_add(1),
                    b'}' | b']' => {
                        self.depth = self.depth.saturating_sub(1);
                        if self.depth == 0 {
                            return ScanEnd::Closed(i);
                        }
                    }
                    b'"' => self.in_string = true,
                    _ => {}
                }
            }
        }
        ScanEnd::More
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(input: &[u8]) -> ScanEnd {
        JsonScanner::default().scan(input)
    }

    #[test]
    fn closes_at_matching_depth() {
        assert_eq!(scan_all(br#"{"a":[1,{"b":2}]} tail"#), ScanEnd::Closed(17));
        assert_eq!(scan_all(b"[[],[]]"), ScanEnd::Closed(7));
        assert_eq!(scan_all(b"{\"a\":[1,2"), ScanEnd::More);
    }

    #[test]
    fn brackets_and_quotes_inside_strings_do_not_count() {
        let v = br#"{"k":"}]{[\"\\","x":"\\"}"#;
        assert_eq!(scan_all(v), ScanEnd::Closed(v.len()));
    }

    #[test]
    fn resumes_across_pieces_including_mid_escape() {
        let v = br#"{"k":"a\"}"}"#;
        for cut in 0..v.len() {
            let mut s = JsonScanner::default();
            let (a, b) = v.split_at(cut);
            let end = match s.scan(a) {
                ScanEnd::More => match s.scan(b) {
                    ScanEnd::Closed(i) => cut + i,
                    other => panic!("cut {cut}: {other:?}"),
                },
                other => panic!("cut {cut}: {other:?}"),
            };
            assert_eq!(end, v.len(), "cut {cut}");
        }
    }

    #[test]
    fn raw_newline_in_string_is_reported() {
        assert_eq!(scan_all(b"{\"a\":\"cut\n{}"), ScanEnd::NewlineInString(9));
        assert_eq!(scan_all(b"{\"a\":\"cut\\\n"), ScanEnd::NewlineInString(10));
        assert_eq!(scan_all(b"{\n\"a\": 1\n}"), ScanEnd::Closed(10));
    }

    #[test]
    fn deep_nesting_is_a_counter() {
        let depth = 1_000_000;
        let mut v = vec![b'['; depth];
        v.extend(std::iter::repeat_n(b']', depth));
        assert_eq!(scan_all(&v), ScanEnd::Closed(2 * depth));
    }
}
