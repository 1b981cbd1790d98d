//! Record framing — stage 1 (ingest) of ingest → normalize → storage.
//!
//! [`RecordReader`] splits content into records, by lines or by top-level JSON values, and tells
//! where each starts. It promises:
//!
//! - records are slices of one buffer: no allocation or copy per record, `memchr` to find ends;
//! - memory stays within `buffer_size` plus one record at its limit (+2 bytes) whatever the input
//!   (a 10 GB line is skipped through, not buffered);
//! - each frame knows the 1-based line where its record starts, and line numbers stay right
//!   across blank, over-long and damaged records;
//! - the result does not depend on the buffer size or on how the reader splits its reads;
//! - a stream error ends the stream with exactly one [`Frame::Broken`], after every complete
//!   record before the damage;
//! - no input bytes make it panic or loop: every step consumes input or ends the stream;
//! - contents are bytes (any encoding, NUL included) and are not interpreted beyond framing,
//!   except that a UTF-8 byte-order mark at the very start of the content is dropped.

use std::io::{ErrorKind, Read};

use memchr::{memchr, memchr_iter};

use crate::error::from_io;
use crate::json_scan::{JsonScanner, ScanEnd};
use crate::{Error, ReadOptions, Result};

/// How many leading bytes of the content [`RecordReader::fingerprint`] hashes.
pub const FINGERPRINT_LEN: usize = 64 * 1024;

/// How many bytes of an over-long or damaged record a frame keeps.
const PREFIX_LEN: usize = 1024;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// How content is split into records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One record per line: split on `\n`, one trailing `\r` stripped, blank lines skipped.
    Lines,
    /// One record per top-level JSON object or array, whether one per line (NDJSON),
    /// pretty-printed over many lines, or several on one line. Text at top level that does not
    /// open an object or array (scalars included) is returned as a record up to the end of its
    /// line, so downstream can quarantine it.
    Json,
}

/// One result of [`RecordReader::next_record`].
#[derive(Debug)]
pub enum Frame<'a> {
    /// A record.
    Record {
        /// 1-based line where the record starts.
        line: u64,
        /// The record, without its line terminator.
        bytes: &'a [u8],
    },
    /// A record longer than its limit; it was skipped whole and reading goes on after it.
    TooLong {
        /// 1-based line where the record starts.
        line: u64,
        /// Its length in bytes.
        len: u64,
        /// Its first bytes (at most 1 KiB).
        prefix: &'a [u8],
    },
    /// The stream ended with an error (IO error, corrupt or truncated compression, size cap,
    /// unterminated JSON value). Nothing follows it.
    Broken {
        /// 1-based line where the incomplete record (if any) starts.
        line: u64,
        /// The first bytes (at most 1 KiB) of the incomplete record; empty if there is none.
        partial: &'a [u8],
        /// Length of the incomplete record in bytes.
        len: u64,
        /// What went wrong.
        error: Error,
    },
}

/// What kind of record is in progress (under [`Framing::Json`], non-JSON text is line-framed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Line,
    Json,
}

/// A record whose end has not been found yet.
#[derive(Debug)]
struct Pending {
    kind: Kind,
    line: u64,
    /// Bytes from the buffer position already scanned for the end.
    scanned: usize,
    json: JsonScanner,
    /// Bytes already discarded; `Some` once the record is known to be too long.
    skipped: Option<u64>,
}

/// One framing step, as buffer indices so the borrow is taken only when returning.
enum Step {
    Record { line: u64, start: usize, end: usize },
    TooLong { line: u64, len: u64 },
    Broken { line: u64, len: u64, error: Error },
    End,
}

/// A lending reader of records from a byte stream.
///
/// Read with `while let Some(frame) = reader.next_record() { .. }`. Before the first record,
/// [`fingerprint`](Self::fingerprint) and [`peek`](Self::peek) look at the start of the content
/// without consuming it, and [`set_framing`](Self::set_framing) can switch framing after sniffing.
///
/// Errors from the underlying reader never come out of a method: they end the stream with a
/// [`Frame::Broken`]. Wrap the reader of [`crate::open`] (or use
/// [`Opened::into_records`](crate::Opened::into_records)) so those errors name the input.
pub struct RecordReader<R> {
    inner: R,
    name: String,
    framing: Framing,
    max_line_len: usize,
    max_json_len: usize,
    buffer_size: usize,
    /// Content is `buf[pos..filled]`.
    buf: Vec<u8>,
    pos: usize,
    filled: usize,
    eof: bool,
    /// A read error, reported after the complete records before it.
    read_error: Option<Error>,
    done: bool,
    /// Content bytes consumed so far.
    consumed: u64,
    /// Line number of `buf[pos]`.
    line: u64,
    blank_lines: u64,
    bom_checked: bool,
    fingerprint: Option<u128>,
    pending: Option<Pending>,
    /// Prefix of the current over-long or broken record.
    prefix: Vec<u8>,
}

impl<R: Read> RecordReader<R> {
    /// Reads records from `reader` (already decompressed content) with the limits of `opts`.
    pub fn new(reader: R, framing: Framing, opts: &ReadOptions) -> Self {
        let buffer_size = opts.buffer_size.max(1);
        Self {
            inner: reader,
            name: "<input>".to_owned(),
            framing,
            max_line_len: opts.max_line_len,
            max_json_len: opts.max_json_len,
            buffer_size,
            buf: vec![0; buffer_size],
            pos: 0,
            filled: 0,
            eof: false,
            read_error: None,
            done: false,
            consumed: 0,
            line: 1,
            blank_lines: 0,
            bom_checked: false,
            fingerprint: None,
            pending: None,
            prefix: Vec::with_capacity(PREFIX_LEN),
        }
    }

    /// Names the input in errors (default `<input>`); use [`crate::InputFile::display`].
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Changes the framing from the next record on (typically after sniffing with
    /// [`peek`](Self::peek), before the first record).
    pub fn set_framing(&mut self, framing: Framing) {
        self.framing = framing;
    }

    /// Changes the longest accepted line from the next record on (e.g. to the JSON limit for
    /// NDJSON content framed by lines).
    pub fn set_max_line_len(&mut self, max_line_len: usize) {
        self.max_line_len = max_line_len;
    }

    /// The current framing.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Blank (whitespace-only) lines skipped so far under [`Framing::Lines`].
    pub fn blank_lines(&self) -> u64 {
        self.blank_lines
    }

    /// The first `n` bytes of the content not yet consumed (fewer at the end of the content),
    /// without consuming them; before the first record this is the start of the content,
    /// byte-order mark included. The buffer grows to `n` if needed.
    ///
    /// A read error is not returned here: it ends the stream with [`Frame::Broken`] when reached.
    pub fn peek(&mut self, n: usize) -> &[u8] {
        while self.filled - self.pos < n && !self.eof {
            if self.buf.len() - self.pos < n {
                self.compact();
                if self.buf.len() < n {
                    self.resize(n);
                }
            }
            self.read_more();
        }
        let end = self.filled.min(self.pos.saturating_add(n));
        self.buf.get(self.pos..end).unwrap_or_default()
    }

    /// xxh3-128 of the first [`FINGERPRINT_LEN`] bytes of the content (all of it when shorter),
    /// the identity of the source for idempotent commits. Consumes nothing; the first call reads
    /// ahead as far as needed and later calls return the same value.
    ///
    /// # Errors
    ///
    /// [`Error::FingerprintAfterRead`] if first called after records were read. A read error is
    /// not returned: the fingerprint covers the content before it, and the error ends the stream
    /// with [`Frame::Broken`].
    pub fn fingerprint(&mut self) -> Result<u128> {
        if let Some(fingerprint) = self.fingerprint {
            return Ok(fingerprint);
        }
        if self.consumed > 0 {
            return Err(Error::FingerprintAfterRead { input: self.name.clone() });
        }
        let fingerprint = xxhash_rust::xxh3::xxh3_128(self.peek(FINGERPRINT_LEN));
        self.fingerprint = Some(fingerprint);
        Ok(fingerprint)
    }

    /// The next frame, or `None` at the end of the content (and after [`Frame::Broken`]).
    pub fn next_record(&mut self) -> Option<Frame<'_>> {
        match self.step() {
            Step::Record { line, start, end } => {
                Some(Frame::Record { line, bytes: self.buf.get(start..end).unwrap_or_default() })
            }
            Step::TooLong { line, len } => Some(Frame::TooLong { line, len, prefix: &self.prefix }),
            Step::Broken { line, len, error } => {
                Some(Frame::Broken { line, partial: &self.prefix, len, error })
            }
            Step::End => None,
        }
    }

    fn step(&mut self) -> Step {
        loop {
            if self.done {
                return Step::End;
            }
            let Some(rec) = self.pending.take() else {
                if let Some(step) = self.begin_record() {
                    return step;
                }
                continue;
            };
            if let Some(step) = self.advance(rec) {
                return step;
            }
        }
    }

    /// At a record boundary: skips what separates records and starts the next one. Returns a
    /// step only at the end of the content.
    fn begin_record(&mut self) -> Option<Step> {
        if self.pos == self.filled {
            if !self.eof {
                self.fill(self.buffer_size);
                return None;
            }
            self.done = true;
            self.prefix.clear();
            return Some(match self.read_error.take() {
                Some(error) => Step::Broken { line: self.line, len: 0, error },
                None => Step::End,
            });
        }
        if !self.bom_checked {
            if self.filled - self.pos < BOM.len() && !self.eof {
                self.fill(BOM.len());
                return None;
            }
            self.bom_checked = true;
            if self.consumed == 0 && self.buf[self.pos..self.filled].starts_with(BOM) {
                self.consume(BOM.len());
            }
            return None;
        }
        let kind = match self.framing {
            Framing::Lines => Kind::Line,
            Framing::Json => {
                let data = &self.buf[self.pos..self.filled];
                let ws = data.iter().take_while(|b| b.is_ascii_whitespace()).count();
                if ws > 0 {
                    self.line += count_newlines(&data[..ws]);
                    self.consume(ws);
                    return None;
                }
                match data.first() {
                    Some(b'{' | b'[') => Kind::Json,
                    _ => Kind::Line,
                }
            }
        };
        self.pending = Some(Pending {
            kind,
            line: self.line,
            scanned: 0,
            json: JsonScanner::default(),
            skipped: None,
        });
        None
    }

    /// Looks for the end of the pending record in the buffer; reads more (or skips, when the
    /// record is too long) if it is not there. Returns a step when a frame is ready.
    fn advance(&mut self, mut rec: Pending) -> Option<Step> {
        let limit = match rec.kind {
            Kind::Line => self.max_line_len,
            Kind::Json => self.max_json_len,
        };
        let from = self.pos + rec.scanned;
        let data = &self.buf[from..self.filled];
        let found = match rec.kind {
            Kind::Line => memchr(b'\n', data).map(|i| (from + i, true)),
            Kind::Json => match rec.json.scan(data) {
                ScanEnd::Closed(i) => Some((from + i, false)),
                ScanEnd::NewlineInString(i) => Some((from + i, true)),
                ScanEnd::More => None,
            },
        };
        if let Some((end, at_newline)) = found {
            return self.complete(rec, end, at_newline, limit);
        }
        rec.scanned = self.filled - self.pos;
        if self.eof {
            if let Some(error) = self.read_error.take() {
                return Some(self.broken(rec, error));
            }
            if rec.kind == Kind::Line {
                // The last line may lack its newline.
                return self.complete(rec, self.filled, false, limit);
            }
            let error = Error::UnterminatedJson { input: self.name.clone(), line: rec.line };
            return Some(self.broken(rec, error));
        }
        let in_progress = self.filled - self.pos;
        // `limit + 1`: a line of `limit` bytes may still be followed by `\r\n`.
        if rec.skipped.is_none() && in_progress > limit.saturating_add(1) {
            self.prefix.clear();
            rec.skipped = Some(0);
        }
        if let Some(skipped) = rec.skipped.as_mut() {
            // Keep the last byte: it may be the `\r` of a `\r\n` split across reads.
            let discard = in_progress.saturating_sub(1);
            let end = self.pos + discard;
            self.extend_prefix(end);
            if rec.kind == Kind::Json {
                self.line += count_newlines(&self.buf[self.pos..end]);
            }
            *skipped += discard as u64;
            self.consume(discard);
            rec.scanned = self.filled - self.pos;
        }
        self.pending = Some(rec);
        self.fill(limit.saturating_add(2));
        None
    }

    /// Finishes the pending record ending at `end` (exclusive; a `\n` there is consumed when
    /// `at_newline`). Returns `None` for a skipped blank line.
    fn complete(
        &mut self,
        rec: Pending,
        end: usize,
        at_newline: bool,
        limit: usize,
    ) -> Option<Step> {
        let next = if at_newline { end + 1 } else { end };
        let mut end = end;
        if (rec.kind == Kind::Line || at_newline) && end > self.pos && self.buf[end - 1] == b'\r' {
            end -= 1;
        }
        let start = self.pos;
        let newlines = match rec.kind {
            Kind::Line => u64::from(at_newline),
            Kind::Json => count_newlines(&self.buf[start..next]),
        };
        let len = end - start;
        let too_long = match rec.skipped {
            Some(skipped) => {
                self.extend_prefix(end);
                Some(skipped + len as u64)
            }
            None if len > limit => {
                self.save_prefix(len);
                Some(len as u64)
            }
            None => None,
        };
        self.line += newlines;
        self.consume(next - start);
        if let Some(len) = too_long {
            return Some(Step::TooLong { line: rec.line, len });
        }
        if rec.kind == Kind::Line && self.buf[start..end].iter().all(u8::is_ascii_whitespace) {
            self.blank_lines += 1;
            return None;
        }
        Some(Step::Record { line: rec.line, start, end })
    }

    /// Ends the stream with the pending record incomplete.
    fn broken(&mut self, rec: Pending, error: Error) -> Step {
        let in_progress = self.filled - self.pos;
        if rec.skipped.is_none() {
            self.prefix.clear();
        }
        self.extend_prefix(self.filled);
        self.done = true;
        Step::Broken { line: rec.line, len: rec.skipped.unwrap_or(0) + in_progress as u64, error }
    }

    /// Keeps the first bytes (up to [`PREFIX_LEN`]) of a record that is not returned whole.
    fn save_prefix(&mut self, len: usize) {
        self.prefix.clear();
        self.extend_prefix(self.pos + len);
    }

    /// Adds `buf[pos..end]` to the prefix, up to [`PREFIX_LEN`] in all.
    fn extend_prefix(&mut self, end: usize) {
        let room = PREFIX_LEN.saturating_sub(self.prefix.len());
        let end = end.min(self.pos + room);
        self.prefix.extend_from_slice(&self.buf[self.pos..end]);
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
        self.consumed += n as u64;
    }

    /// Moves the unconsumed content to the start of the buffer.
    fn compact(&mut self) {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.filled, 0);
            self.filled -= self.pos;
            self.pos = 0;
        }
    }

    /// Makes room (compacting only when the content reaches the end of the buffer, growing it
    /// towards `cap` only when the content fills it) and reads once.
    fn fill(&mut self, cap: usize) {
        if self.eof {
            return;
        }
        if self.pos == self.filled {
            self.pos = 0;
            self.filled = 0;
            if self.buf.len() > self.buffer_size {
                self.buf.truncate(self.buffer_size);
                self.buf.shrink_to_fit();
            }
        }
        if self.filled == self.buf.len() {
            if self.pos > 0 {
                self.compact();
            } else {
                let len = self.buf.len();
                self.resize(len.saturating_mul(2).min(cap).max(len + 1));
            }
        }
        self.read_more();
    }

    /// Grows the buffer to exactly `len` bytes.
    fn resize(&mut self, len: usize) {
        self.buf.reserve_exact(len.saturating_sub(self.buf.len()));
        self.buf.resize(len, 0);
    }

    /// One read into the free end of the buffer (which must not be empty).
    fn read_more(&mut self) {
        loop {
            let free = &mut self.buf[self.filled..];
            let room = free.len();
            match self.inner.read(free) {
                Ok(0) => self.eof = true,
                Ok(n) => self.filled += n.min(room),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.read_error = Some(from_io(&self.name, e));
                    self.eof = true;
                }
            }
            return;
        }
    }

    #[cfg(test)]
    fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }
}

fn count_newlines(bytes: &[u8]) -> u64 {
    memchr_iter(b'\n', bytes).count() as u64
}

#[cfg(test)]
mod tests;
