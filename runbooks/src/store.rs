//! The outbox's log-structured store: every committed section of the outbox is ONE record
//! appended to a segment file and synced once, instead of one synced file per entry, alert,
//! marker and step.
//!
//! ```text
//! <outbox>/log/<seq>.base   a compacted state: every live key, then later records
//! <outbox>/log/<seq>.log    records appended after the base (or after the previous segment)
//! ```
//!
//! A segment starts with an 8-byte header (`ZTOBLOG` + version). A record is
//! `[payload length: u32 LE][checksum: 8 bytes][payload]`; the checksum is the start of the
//! payload's SHA-256. A payload is a sequence of operations
//! `[op: u8][key length: u16 LE][key][value length: u32 LE][value]` (op 1 puts the value, op 2
//! removes the key and has no value). Keys are the outbox's relative names (`entries/<key>.json`,
//! `pending/<key>`, …).
//!
//! The index keeps, per live key, where its value is (segment, offset, length); values are read
//! back with positioned reads, so memory holds keys, not alert states. Every exclusive section
//! first catches up with what other processes appended ([`Store::refresh`]): a new base means a
//! reload, otherwise the records after the last one read are applied.
//!
//! Crash safety: a record counts once its append is synced. A torn record at the end of the
//! last segment (the append that was interrupted) is cut off by the next section; a damaged
//! record elsewhere ends the reading of its segment with a warning. Compaction writes the live
//! state to a new base segment (temporary name, synced, renamed, directory synced) before it
//! deletes the older segments, so a crash leaves either the old segments or the new base.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"ZTOBLOG1";
const OP_PUT: u8 = 1;
const OP_REMOVE: u8 = 2;
/// Record header: payload length and checksum.
const RECORD_HEADER: u64 = 12;
/// A segment stops taking records past this size; the next record starts a new one.
const SEGMENT_MAX: u64 = 64 << 20;
/// Compaction runs when the segments since the base hold more than this …
const COMPACT_MIN: u64 = 32 << 20;
/// … and more than this many times the live values.
const COMPACT_RATIO: u64 = 4;
/// A base record holds at most this many bytes of values.
const BASE_RECORD_MAX: usize = 8 << 20;

/// Where a live value is.
#[derive(Debug, Clone, Copy)]
struct Loc {
    segment: u64,
    offset: u64,
    len: u32,
}

/// One change of a commit: a value put, or the key removed (`None`).
pub(crate) type Op = (String, Option<Vec<u8>>);

/// The store of one outbox directory, as one process sees it. Use it only inside the outbox's
/// exclusive section, after [`Store::refresh`].
#[derive(Debug)]
pub(crate) struct Store {
    dir: PathBuf,
    index: BTreeMap<String, Loc>,
    /// Read handles of the segments the index points into.
    files: HashMap<u64, File>,
    /// The base segment the index was loaded from (0: none yet).
    base: u64,
    /// The last segment read, and where its last good record ends.
    last: u64,
    end: u64,
    /// Bytes of the live values, and of every segment since the base.
    live: u64,
    total: u64,
}

fn segment_name(seq: u64, base: bool) -> String {
    format!("{seq:016x}.{}", if base { "base" } else { "log" })
}

fn checksum(payload: &[u8]) -> [u8; 8] {
    let digest = Sha256::digest(payload);
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// Append the encoding of `op` to `payload`; returns the value's offset in `payload`.
fn encode(payload: &mut Vec<u8>, key: &str, value: Option<&[u8]>) -> Result<usize> {
    let too_long = |what: &str| Error::outbox(Path::new(key), format!("{what} too long"));
    let klen = u16::try_from(key.len()).map_err(|_| too_long("key"))?;
    payload.push(if value.is_some() { OP_PUT } else { OP_REMOVE });
    payload.extend_from_slice(&klen.to_le_bytes());
    payload.extend_from_slice(key.as_bytes());
    if let Some(v) = value {
        let vlen = u32::try_from(v.len()).map_err(|_| too_long("value"))?;
        payload.extend_from_slice(&vlen.to_le_bytes());
        payload.extend_from_slice(v);
    }
    Ok(payload.len() - value.map_or(0, <[u8]>::len))
}

/// A decoded operation: the key, and the value's offset and length in the payload (`None`:
/// removed).
type Decoded = (String, Option<(usize, u32)>);

/// The operations of a payload.
fn decode(payload: &[u8]) -> Option<Vec<Decoded>> {
    let mut ops = Vec::new();
    let mut at = 0usize;
    let take = |at: &mut usize, n: usize| -> Option<&[u8]> {
        let s = payload.get(*at..at.checked_add(n)?)?;
        *at += n;
        Some(s)
    };
    while at < payload.len() {
        let op = *take(&mut at, 1)?.first()?;
        let klen = u16::from_le_bytes(take(&mut at, 2)?.try_into().ok()?);
        let key = std::str::from_utf8(take(&mut at, usize::from(klen))?).ok()?.to_owned();
        match op {
            OP_PUT => {
                let vlen = u32::from_le_bytes(take(&mut at, 4)?.try_into().ok()?);
                let start = at;
                take(&mut at, usize::try_from(vlen).ok()?)?;
                ops.push((key, Some((start, vlen))));
            }
            OP_REMOVE => ops.push((key, None)),
            _ => return None,
        }
    }
    Some(ops)
}

/// The record of `payload` (to be appended to `path`): length, checksum, payload.
fn frame(payload: &[u8], path: &Path) -> Result<Vec<u8>> {
    let len = u32::try_from(payload.len())
        .map_err(|_| Error::outbox(path, "outbox section too large for one record"))?;
    let mut record = Vec::with_capacity(payload.len() + RECORD_HEADER as usize);
    record.extend_from_slice(&len.to_le_bytes());
    record.extend_from_slice(&checksum(payload));
    record.extend_from_slice(payload);
    Ok(record)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::outbox(dir, e))
}

impl Store {
    /// The store in `dir` (created); nothing is read until [`Store::refresh`].
    pub(crate) fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(|e| Error::outbox(dir, e))?;
        Ok(Store {
            dir: dir.to_path_buf(),
            index: BTreeMap::new(),
            files: HashMap::new(),
            base: 0,
            last: 0,
            end: 0,
            live: 0,
            total: 0,
        })
    }

    /// The segments on disk: (seq, is base), ascending.
    fn segments(&self) -> Result<Vec<(u64, bool)>> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&self.dir).map_err(|e| Error::outbox(&self.dir, e))?;
        for e in entries.filter_map(std::result::Result::ok) {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some((seq, kind)) = name.split_once('.') else { continue };
            let Ok(seq) = u64::from_str_radix(seq, 16) else { continue };
            match kind {
                "base" => out.push((seq, true)),
                "log" => out.push((seq, false)),
                _ => {}
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Catch up with every record on disk (call inside the exclusive section).
    pub(crate) fn refresh(&mut self) -> Result<()> {
        let segments = self.segments()?;
        let base = segments.iter().rev().find(|s| s.1).map_or(0, |s| s.0);
        if base != self.base {
            self.index.clear();
            self.files.clear();
            (self.base, self.last, self.end, self.live, self.total) = (base, 0, 0, 0, 0);
        }
        let count = segments.len();
        for (i, &(seq, _)) in segments.iter().enumerate() {
            if seq < self.base || seq < self.last {
                continue;
            }
            let from = if seq == self.last { self.end } else { 0 };
            self.read_segment(seq, from, i + 1 == count)?;
        }
        Ok(())
    }

    fn path_of(&self, seq: u64) -> PathBuf {
        self.dir.join(segment_name(seq, seq == self.base && self.base != 0))
    }

    /// Apply the records of segment `seq` from byte `from` (0: the start, header included).
    fn read_segment(&mut self, seq: u64, from: u64, last: bool) -> Result<()> {
        let path = self.path_of(seq);
        let mut file = File::open(&path).map_err(|e| Error::outbox(&path, e))?;
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(from))
            .and_then(|_| file.read_to_end(&mut bytes))
            .map_err(|e| Error::outbox(&path, e))?;
        let mut at = 0usize;
        let mut good = true;
        if from == 0 {
            if bytes.get(..MAGIC.len()) == Some(MAGIC.as_slice()) {
                at = MAGIC.len();
            } else if MAGIC.starts_with(&bytes) {
                // Created, but its header never completed: it holds nothing.
                if last {
                    std::fs::remove_file(&path).map_err(|e| Error::outbox(&path, e))?;
                    sync_dir(&self.dir)?;
                }
                return Ok(());
            } else {
                tracing::warn!(path = %path.display(), "not an outbox log segment; skipped");
                return Ok(());
            }
        }
        while good && at < bytes.len() {
            let Some(record) = Self::record_at(&bytes, at) else {
                good = false;
                break;
            };
            let (payload_at, len) = record;
            let payload = bytes.get(payload_at..payload_at + len).unwrap_or_default();
            let Some(ops) = decode(payload) else {
                good = false;
                break;
            };
            let base_offset = from + payload_at as u64;
            for (key, value) in ops {
                self.apply(
                    key,
                    value.map(|(o, l)| Loc {
                        segment: seq,
                        offset: base_offset + o as u64,
                        len: l,
                    }),
                );
            }
            at = payload_at + len;
        }
        let end = from + at as u64;
        if !good {
            if last {
                // The append a crash interrupted: it never counted; cut it off.
                tracing::warn!(path = %path.display(), at = end, "torn record at the end of the outbox log cut off");
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| Error::outbox(&path, e))?;
                f.set_len(end).and_then(|()| f.sync_all()).map_err(|e| Error::outbox(&path, e))?;
            } else {
                tracing::warn!(path = %path.display(), at = end, "damaged outbox log record; the rest of the segment is skipped");
            }
        }
        self.total += end - from;
        self.files.insert(seq, file);
        (self.last, self.end) = (seq, end);
        Ok(())
    }

    /// The payload (start, length) of a whole, intact record at `at`.
    fn record_at(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
        let len = u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?);
        let sum = bytes.get(at + 4..at + 12)?;
        let start = at + RECORD_HEADER as usize;
        let len = usize::try_from(len).ok()?;
        let payload = bytes.get(start..start.checked_add(len)?)?;
        (checksum(payload) == sum).then_some((start, len))
    }

    fn apply(&mut self, key: String, loc: Option<Loc>) {
        let old = match loc {
            Some(loc) => {
                self.live += u64::from(loc.len);
                self.index.insert(key, loc)
            }
            None => self.index.remove(&key),
        };
        if let Some(old) = old {
            self.live -= u64::from(old.len);
        }
    }

    /// The value of `key`.
    pub(crate) fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let Some(loc) = self.index.get(key) else { return Ok(None) };
        let path = self.path_of(loc.segment);
        let file =
            self.files.get(&loc.segment).ok_or_else(|| Error::outbox(&path, "segment not open"))?;
        let mut buf = vec![0u8; loc.len as usize];
        file.read_exact_at(&mut buf, loc.offset).map_err(|e| Error::outbox(&path, e))?;
        Ok(Some(buf))
    }

    /// The live keys starting with `prefix`, ascending.
    pub(crate) fn keys_with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> {
        self.index
            .range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
            .map(|(k, _)| k.as_str())
            .take_while(move |k| k.starts_with(prefix))
    }

    /// Append `ops` as one record and sync it; then compact when the log outgrew the state.
    pub(crate) fn commit(&mut self, ops: Vec<Op>) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut payload = Vec::new();
        let mut placed = Vec::with_capacity(ops.len());
        for (key, value) in ops {
            let at = encode(&mut payload, &key, value.as_deref())?;
            placed.push((key, value.map(|v| (at, v.len()))));
        }
        let (seq, file, start) = self.writer()?;
        let path = self.path_of(seq);
        let record = frame(&payload, &path)?;
        file.write_all_at(&record, start).and_then(|()| file.sync_data()).map_err(|e| {
            // Whatever part went out is a torn tail: cut it off now if possible.
            let _ = file.set_len(start);
            Error::outbox(&path, e)
        })?;
        let payload_at = start + RECORD_HEADER;
        for (key, value) in placed {
            let loc = value.map(|(at, l)| Loc {
                segment: seq,
                offset: payload_at + at as u64,
                len: u32::try_from(l).unwrap_or(u32::MAX),
            });
            self.apply(key, loc);
        }
        self.total += record.len() as u64;
        (self.last, self.end) = (seq, start + record.len() as u64);
        if self.total > COMPACT_MIN && self.total > COMPACT_RATIO * self.live {
            self.compact()?;
        }
        Ok(())
    }

    /// The segment to append to (a new one once the last is [`SEGMENT_MAX`] long), opened for
    /// writing, and its current end.
    fn writer(&mut self) -> Result<(u64, File, u64)> {
        if self.last != 0 && self.end < SEGMENT_MAX {
            let path = self.path_of(self.last);
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| Error::outbox(&path, e))?;
            return Ok((self.last, file, self.end));
        }
        let seq = self.segments()?.last().map_or(0, |s| s.0) + 1;
        let path = self.dir.join(segment_name(seq, false));
        let mut file = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::outbox(&path, e))?;
        file.write_all(MAGIC)
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::outbox(&path, e))?;
        sync_dir(&self.dir)?;
        let read = File::open(&path).map_err(|e| Error::outbox(&path, e))?;
        self.files.insert(seq, read);
        self.total += MAGIC.len() as u64;
        (self.last, self.end) = (seq, MAGIC.len() as u64);
        Ok((seq, file, MAGIC.len() as u64))
    }

    /// Write the live state to a new base segment and delete the older segments.
    fn compact(&mut self) -> Result<()> {
        let seq = self.segments()?.last().map_or(0, |s| s.0) + 1;
        let tmp = self.dir.join(format!("{}.tmp", segment_name(seq, true)));
        let path = self.dir.join(segment_name(seq, true));
        let mut out = File::create(&tmp).map_err(|e| Error::outbox(&tmp, e))?;
        let mut written = MAGIC.len() as u64;
        out.write_all(MAGIC).map_err(|e| Error::outbox(&tmp, e))?;
        let keys: Vec<String> = self.index.keys().cloned().collect();
        let mut index = BTreeMap::new();
        let mut chunk: Vec<(String, Vec<u8>)> = Vec::new();
        let mut chunk_bytes = 0usize;
        let mut flush = |chunk: &mut Vec<(String, Vec<u8>)>, written: &mut u64| -> Result<()> {
            let mut payload = Vec::new();
            let mut placed = Vec::new();
            for (key, value) in chunk.drain(..) {
                let at = encode(&mut payload, &key, Some(&value))?;
                placed.push((key, at, value.len()));
            }
            let record = frame(&payload, &tmp)?;
            out.write_all(&record).map_err(|e| Error::outbox(&tmp, e))?;
            for (key, at, l) in placed {
                let loc = Loc {
                    segment: seq,
                    offset: *written + RECORD_HEADER + at as u64,
                    len: u32::try_from(l).unwrap_or(u32::MAX),
                };
                index.insert(key, loc);
            }
            *written += record.len() as u64;
            Ok(())
        };
        for key in keys {
            let value = self.get(&key)?.unwrap_or_default();
            chunk_bytes += value.len() + key.len();
            chunk.push((key, value));
            if chunk_bytes >= BASE_RECORD_MAX {
                flush(&mut chunk, &mut written)?;
                chunk_bytes = 0;
            }
        }
        if !chunk.is_empty() {
            flush(&mut chunk, &mut written)?;
        }
        out.sync_all().map_err(|e| Error::outbox(&tmp, e))?;
        drop(out);
        std::fs::rename(&tmp, &path).map_err(|e| Error::outbox(&path, e))?;
        sync_dir(&self.dir)?;
        for (old, is_base) in self.segments()? {
            if old < seq {
                let p = self.dir.join(segment_name(old, is_base));
                std::fs::remove_file(&p).map_err(|e| Error::outbox(&p, e))?;
            }
        }
        let read = File::open(&path).map_err(|e| Error::outbox(&path, e))?;
        self.files.clear();
        self.files.insert(seq, read);
        self.index = index;
        (self.base, self.last, self.end, self.total) = (seq, seq, written, written);
        tracing::debug!(dir = %self.dir.display(), keys = self.index.len(), bytes = written, "outbox log compacted");
        Ok(())
    }

    /// The keys and bytes of the live state, and the bytes of the log.
    #[cfg(test)]
    pub(crate) fn sizes(&self) -> (usize, u64, u64) {
        (self.index.len(), self.live, self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str) -> Op {
        (key.to_owned(), Some(value.as_bytes().to_vec()))
    }

    fn value(store: &Store, key: &str) -> Option<String> {
        store.get(key).expect("read").map(|v| String::from_utf8(v).expect("utf-8"))
    }

    fn opened(dir: &Path) -> Store {
        let mut s = Store::open(dir).expect("open");
        s.refresh().expect("refresh");
        s
    }

    #[test]
    fn commits_are_read_back_by_another_handle_and_after_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut a = opened(dir.path());
        let mut b = opened(dir.path());
        a.commit(vec![
            put("entries/1.json", "one"),
            put("pending/1", ""),
            put("entries/2.json", "two"),
        ])
        .expect("commit");
        b.refresh().expect("refresh");
        assert_eq!(value(&b, "entries/1.json").as_deref(), Some("one"));
        b.commit(vec![("pending/1".to_owned(), None), put("entries/1.json", "uno")])
            .expect("commit");
        a.refresh().expect("refresh");
        assert_eq!(value(&a, "entries/1.json").as_deref(), Some("uno"));
        assert_eq!(value(&a, "pending/1"), None);
        let keys: Vec<&str> = a.keys_with_prefix("entries/").collect();
        assert_eq!(keys, ["entries/1.json", "entries/2.json"]);
        assert!(a.keys_with_prefix("pending/").next().is_none());
        let c = opened(dir.path());
        assert_eq!(value(&c, "entries/2.json").as_deref(), Some("two"));
        assert_eq!(c.sizes().0, 2);
    }

    /// A crash in the middle of an append leaves a torn record: the next section cuts it off,
    /// keeps every earlier record, and appends after them.
    #[test]
    fn a_torn_record_at_the_end_is_cut_off() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = opened(dir.path());
        s.commit(vec![put("k/a", "1")]).expect("commit");
        s.commit(vec![put("k/b", "2")]).expect("commit");
        let segment = dir.path().join(segment_name(1, false));
        for torn in [&[9u8, 0][..], &[200, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 1]] {
            let good = std::fs::metadata(&segment).expect("segment").len();
            let mut bytes = std::fs::read(&segment).expect("read");
            bytes.extend_from_slice(torn);
            std::fs::write(&segment, &bytes).expect("tear");
            let mut again = opened(dir.path());
            assert_eq!(std::fs::metadata(&segment).expect("segment").len(), good, "cut back");
            assert_eq!(value(&again, "k/a").as_deref(), Some("1"));
            assert_eq!(value(&again, "k/b").as_deref(), Some("2"));
            again.commit(vec![put("k/c", "3")]).expect("commit after the cut");
            let last = opened(dir.path());
            assert_eq!(value(&last, "k/c").as_deref(), Some("3"));
            again.commit(vec![("k/c".to_owned(), None)]).expect("commit");
        }
        // A record whose checksum does not match is torn too, wherever its length says it ends.
        let mut bytes = std::fs::read(&segment).expect("read");
        let end = bytes.len();
        s = opened(dir.path());
        s.commit(vec![put("k/d", "4")]).expect("commit");
        bytes = std::fs::read(&segment).expect("read");
        if let Some(b) = bytes.last_mut() {
            *b ^= 0xff;
        }
        std::fs::write(&segment, &bytes).expect("damage");
        let s = opened(dir.path());
        assert_eq!(value(&s, "k/d"), None, "the damaged last record never counted");
        assert_eq!(std::fs::metadata(&segment).expect("segment").len() as usize, end);
    }

    /// Overwriting the same keys again and again compacts the log into a base segment: the
    /// log stays within a few times the live state, old segments are deleted, and a handle
    /// that read before the compaction reloads from the base.
    #[test]
    fn overwrites_are_compacted_and_other_handles_follow() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut a = opened(dir.path());
        let mut b = opened(dir.path());
        let big = "x".repeat(64 << 10);
        for round in 0..(3 * COMPACT_MIN / (64 << 10) / 8) {
            let ops = (0..8).map(|k| put(&format!("entries/{k}.json"), &format!("{round}{big}")));
            a.commit(ops.collect()).expect("commit");
            if round == 3 {
                b.refresh().expect("refresh before the compaction");
            }
        }
        let (keys, live, total) = a.sizes();
        assert_eq!(keys, 8);
        assert!(total <= COMPACT_MIN.max(COMPACT_RATIO * live) + (1 << 20), "{total} of {live}");
        let segments = a.segments().expect("segments");
        assert!(segments.iter().any(|s| s.1), "a base segment: {segments:?}");
        assert!(segments.len() <= 2, "older segments deleted: {segments:?}");
        b.refresh().expect("refresh after the compaction");
        let last = 3 * COMPACT_MIN / (64 << 10) / 8 - 1;
        for k in 0..8 {
            let v = value(&b, &format!("entries/{k}.json")).expect("present");
            assert!(
                v.starts_with(&last.to_string()) && v.len() == big.len() + last.to_string().len()
            );
        }
        b.commit(vec![put("entries/9.json", "nine")]).expect("commit on the base");
        a.refresh().expect("refresh");
        assert_eq!(value(&a, "entries/9.json").as_deref(), Some("nine"));
        assert_eq!(opened(dir.path()).sizes().0, 9);
    }
}
