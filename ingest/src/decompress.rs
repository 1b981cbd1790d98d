//! Opening an input and decompressing it — stage 1 (ingest) of ingest → normalize → storage.
//!
//! [`open`] turns an [`InputFile`] into a reader of its content; [`open_reader`] does the same
//! for any byte stream (an object-store body, a Kafka message payload via [`open_bytes`]). They
//! promise:
//!
//! - compression is detected from magic bytes (gzip `1f 8b`, zstd `28 b5 2f fd`), never from
//!   the file name, and decompressed while streaming;
//! - concatenated gzip members and concatenated zstd frames read as one stream;
//! - a compressed input stops with [`Error::DecompressedTooLarge`] once its decompressed size
//!   passes [`ReadOptions::max_decompressed_bytes`], so a zip bomb costs bounded work;
//! - every error the reader returns carries an [`Error`] naming the input (inside the
//!   `io::Error`; [`RecordReader`] unwraps it into [`Frame::Broken`](crate::Frame::Broken));
//! - the raw bytes read from the file, stdin or stream are counted, for progress against
//!   [`InputFile::size`].

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Cursor, ErrorKind, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::carries_error;
use crate::{Error, Framing, InputFile, ReadOptions, RecordReader, Result};

/// Read buffer between the file and a decoder.
const DECODER_BUF: usize = 256 * 1024;

/// Compression of an input, detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Not compressed (or not a format known here).
    None,
    /// gzip, possibly several members.
    Gzip,
    /// Zstandard, possibly several frames.
    Zstd,
}

impl Compression {
    /// Detects the compression from the first bytes of an input (4 are enough).
    pub fn detect(head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "plain",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        })
    }
}

/// An opened input.
pub struct Opened {
    /// The content, decompressed.
    pub reader: Box<dyn Read + Send>,
    /// The compression detected.
    pub compression: Compression,
    /// Raw (compressed) bytes read so far from the file or stdin; shared, updated while reading.
    pub raw_bytes: Arc<AtomicU64>,
    /// The input's display name, for errors.
    name: String,
}

impl Opened {
    /// A [`RecordReader`] over the content whose errors name this input.
    pub fn into_records(
        self,
        framing: Framing,
        opts: &ReadOptions,
    ) -> RecordReader<Box<dyn Read + Send>> {
        RecordReader::new(self.reader, framing, opts).with_name(self.name)
    }
}

/// Opens an input: stdin or the file, decompressing gzip or zstd as detected.
///
/// # Errors
///
/// [`Error::Open`] if the file cannot be opened, [`Error::Read`] if its first bytes cannot be
/// read, [`Error::Decompress`] if the zstd decoder cannot be set up. Later errors come out of
/// the reader.
pub fn open(input: &InputFile, opts: &ReadOptions) -> Result<Opened> {
    let name = input.display.clone();
    let raw: Box<dyn Read + Send> = match &input.path {
        None => Box::new(io::stdin()),
        Some(path) => {
            Box::new(File::open(path).map_err(|cause| Error::Open { input: name.clone(), cause })?)
        }
    };
    open_reader(raw, name, opts)
}

/// Opens any byte stream (an object body, a message payload) the way [`open`] opens a file:
/// gzip or zstd detected by magic bytes and decompressed while streaming under
/// [`ReadOptions::max_decompressed_bytes`]; errors name `name`.
///
/// # Errors
///
/// [`Error::Read`] if the first bytes cannot be read (or the error the stream carries),
/// [`Error::Decompress`] if the zstd decoder cannot be set up. Later errors come out of the
/// reader.
pub fn open_reader(
    raw: Box<dyn Read + Send>,
    name: impl Into<String>,
    opts: &ReadOptions,
) -> Result<Opened> {
    let name = name.into();
    let raw_bytes = Arc::new(AtomicU64::new(0));
    let mut counted = Counting { inner: raw, count: Arc::clone(&raw_bytes), name: name.clone() };
    let mut head = [0u8; 4];
    let n = read_head(&mut counted, &mut head).map_err(|e| crate::error::from_io(&name, e))?;
    let head = &head[..n];
    let compression = Compression::detect(head);
    let source = Cursor::new(head.to_vec()).chain(counted);
    let limit = opts.max_decompressed_bytes;
    let decoded: Box<dyn Read + Send> = match compression {
        Compression::None => Box::new(source),
        Compression::Gzip => {
            let decoder =
                flate2::bufread::MultiGzDecoder::new(BufReader::with_capacity(DECODER_BUF, source));
            Box::new(Capped::new(Labeled::new(decoder, &name, compression), &name, limit))
        }
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(
                DECODER_BUF,
                source,
            ))
            .map_err(|cause| Error::Decompress {
                input: name.clone(),
                compression,
                cause,
            })?;
            Box::new(Capped::new(Labeled::new(decoder, &name, compression), &name, limit))
        }
    };
    Ok(Opened { reader: decoded, compression, raw_bytes, name })
}

/// Opens bytes already in memory (a Kafka message payload) with [`open_reader`].
///
/// # Errors
///
/// As [`open_reader`]; reading memory cannot fail, so only a zstd set-up error remains.
pub fn open_bytes<B>(bytes: B, name: impl Into<String>, opts: &ReadOptions) -> Result<Opened>
where
    B: AsRef<[u8]> + Send + 'static,
{
    open_reader(Box::new(Cursor::new(bytes)), name, opts)
}

/// Reads until `head` is full or the input ends.
fn read_head(r: &mut impl Read, head: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < head.len() {
        match r.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Counts raw bytes and names the input in read errors.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
    name: String,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.count.fetch_add(n as u64, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) if e.kind() == ErrorKind::Interrupted || carries_error(&e) => Err(e),
            Err(cause) => Err(io::Error::other(Error::Read { input: self.name.clone(), cause })),
        }
    }
}

/// Turns a decoder's own errors into [`Error::Decompress`] naming the input.
struct Labeled<R> {
    inner: R,
    name: String,
    compression: Compression,
}

impl<R> Labeled<R> {
    fn new(inner: R, name: &str, compression: Compression) -> Self {
        Self { inner, name: name.to_owned(), compression }
    }
}

impl<R: Read> Read for Labeled<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            if e.kind() == ErrorKind::Interrupted || carries_error(&e) {
                e
            } else {
                io::Error::other(Error::Decompress {
                    input: self.name.clone(),
                    compression: self.compression,
                    cause: e,
                })
            }
        })
    }
}

/// Passes at most `limit` bytes, then fails with [`Error::DecompressedTooLarge`] if more come.
struct Capped<R> {
    inner: R,
    name: String,
    limit: u64,
    remaining: u64,
    exceeded: bool,
}

impl<R> Capped<R> {
    fn new(inner: R, name: &str, limit: u64) -> Self {
        Self { inner, name: name.to_owned(), limit, remaining: limit, exceeded: false }
    }

    fn too_large(&self) -> io::Error {
        io::Error::other(Error::DecompressedTooLarge {
            input: self.name.clone(),
            limit: self.limit,
        })
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.exceeded {
            return Err(self.too_large());
        }
        let n = self.inner.read(buf)?;
        if n as u64 <= self.remaining {
            self.remaining -= n as u64;
            return Ok(n);
        }
        self.exceeded = true;
        if self.remaining == 0 {
            return Err(self.too_large());
        }
        // Hand out what fits now; the next read reports the excess.
        let fits = self.remaining as usize;
        self.remaining = 0;
        Ok(fits)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::GzEncoder;

    use super::*;
    use crate::Frame;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn zstd(data: &[u8]) -> Vec<u8> {
        zstd::stream::encode_all(data, 3).unwrap()
    }

    fn file_with(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> InputFile {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        InputFile {
            display: path.display().to_string(),
            size: Some(bytes.len() as u64),
            path: Some(path),
        }
    }

    /// Records as strings, plus the error message of a final `Broken`.
    fn read_all(input: &InputFile, opts: &ReadOptions) -> (Vec<String>, Option<String>) {
        let mut records = open(input, opts).unwrap().into_records(Framing::Lines, opts);
        let (mut out, mut broken) = (Vec::new(), None);
        while let Some(frame) = records.next_record() {
            match frame {
                Frame::Record { bytes, .. } => {
                    out.push(String::from_utf8_lossy(bytes).into_owned())
                }
                Frame::Broken { error, .. } => broken = Some(error.to_string()),
                Frame::TooLong { .. } => panic!("unexpected TooLong"),
            }
        }
        (out, broken)
    }

    fn numbered_lines(n: usize) -> String {
        (0..n).map(|i| format!("line {i}\n")).collect()
    }

    #[test]
    fn detects_by_magic_not_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let opts = ReadOptions::default();
        let cases = [
            (file_with(&dir, "really-gzip.txt", &gzip(b"a\nb\n")), Compression::Gzip),
            (file_with(&dir, "really-zstd.log", &zstd(b"a\nb\n")), Compression::Zstd),
            (file_with(&dir, "plain.gz", b"a\nb\n"), Compression::None),
            (file_with(&dir, "tiny.zst", b"a"), Compression::None),
        ];
        for (input, expected) in cases {
            let opened = open(&input, &opts).unwrap();
            assert_eq!(opened.compression, expected, "{}", input.display);
            let (records, broken) = read_all(&input, &opts);
            assert_eq!(broken, None);
            let want: &[&str] =
                if input.display.ends_with("tiny.zst") { &["a"] } else { &["a", "b"] };
            assert_eq!(records, want, "{}", input.display);
        }
    }

    #[test]
    fn empty_file_is_plain_and_empty() {
        let dir = tempfile::tempdir().unwrap();
        let input = file_with(&dir, "empty", b"");
        assert_eq!(open(&input, &ReadOptions::default()).unwrap().compression, Compression::None);
        assert_eq!(read_all(&input, &ReadOptions::default()), (vec![], None));
    }

    #[test]
    fn multi_member_gzip_and_multi_frame_zstd_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut gz = gzip(b"one\ntw");
        gz.extend(gzip(b"o\nthree\n"));
        let mut zs = zstd(b"one\ntw");
        zs.extend(zstd(b"o\nthree\n"));
        for (name, bytes) in [("multi.gz", gz), ("multi.zst", zs)] {
            let input = file_with(&dir, name, &bytes);
            let (records, broken) = read_all(&input, &ReadOptions::default());
            assert_eq!(records, ["one", "two", "three"], "{name}");
            assert_eq!(broken, None, "{name}");
        }
    }

    #[test]
    fn truncated_streams_give_complete_lines_then_broken() {
        let dir = tempfile::tempdir().unwrap();
        // Many zstd blocks (128 KiB each), so half of the stream holds complete ones.
        let content = numbered_lines(200_000);
        for (name, compressed, format) in [
            ("cut.gz", gzip(content.as_bytes()), "gzip"),
            ("cut.zst", zstd(content.as_bytes()), "zstd"),
        ] {
            let cut = &compressed[..compressed.len() / 2];
            let input = file_with(&dir, name, cut);
            let (records, broken) = read_all(&input, &ReadOptions::default());
            assert!(!records.is_empty(), "{name}: no records before the damage");
            assert!(records.len() < 200_000, "{name}: read {} records", records.len());
            for (i, r) in records.iter().enumerate() {
                assert_eq!(r, &format!("line {i}"), "{name}");
            }
            let broken = broken.unwrap_or_else(|| panic!("{name}: no Broken frame"));
            assert!(broken.contains(&input.display), "{broken}");
            assert!(broken.contains(format), "{broken}");
        }
    }

    #[test]
    fn decompressed_size_cap_stops_a_bomb() {
        let dir = tempfile::tempdir().unwrap();
        let bomb = gzip(&vec![b'\n'; 8 << 20]);
        let mut content = b"first\nsecond\n".to_vec();
        content.extend(vec![b'x'; 100_000]);
        let opts = ReadOptions { max_decompressed_bytes: 1000, ..ReadOptions::default() };
        let cases = [
            (file_with(&dir, "bomb.gz", &bomb), &[][..]),
            (file_with(&dir, "long.zst", &zstd(&content)), &["first", "second"][..]),
        ];
        for (input, want) in cases {
            let (records, broken) = read_all(&input, &opts);
            assert_eq!(records, want);
            let broken = broken.expect("cap must end the stream");
            assert_eq!(broken, format!("{}: decompressed size exceeds 1000 bytes", input.display));
        }
    }

    #[test]
    fn content_exactly_at_the_cap_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let input = file_with(&dir, "exact.gz", &gzip(b"abc\ndef\n"));
        let opts = ReadOptions { max_decompressed_bytes: 8, ..ReadOptions::default() };
        assert_eq!(read_all(&input, &opts), (vec!["abc".into(), "def".into()], None));
    }

    #[test]
    fn raw_bytes_counts_the_compressed_file() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = gzip(numbered_lines(1000).as_bytes());
        let input = file_with(&dir, "count.gz", &bytes);
        let opened = open(&input, &ReadOptions::default()).unwrap();
        let raw = Arc::clone(&opened.raw_bytes);
        let mut content = Vec::new();
        let mut reader = opened.reader;
        reader.read_to_end(&mut content).unwrap();
        assert_eq!(content, numbered_lines(1000).as_bytes());
        assert_eq!(raw.load(Ordering::Relaxed), bytes.len() as u64);
    }

    #[test]
    fn fingerprint_is_of_the_content_not_the_encoding() {
        let dir = tempfile::tempdir().unwrap();
        let content = numbered_lines(20_000);
        let opts = ReadOptions::default();
        let fp = |input: &InputFile| {
            open(input, &opts).unwrap().into_records(Framing::Lines, &opts).fingerprint().unwrap()
        };
        let plain = fp(&file_with(&dir, "a.log", content.as_bytes()));
        assert_eq!(plain, fp(&file_with(&dir, "a.log.gz", &gzip(content.as_bytes()))));
        assert_eq!(plain, fp(&file_with(&dir, "a.log.zst", &zstd(content.as_bytes()))));
        let other = content.replacen("line 7\n", "line X\n", 1);
        assert_ne!(plain, fp(&file_with(&dir, "b.log", other.as_bytes())));
    }

    #[test]
    fn streams_and_bytes_open_like_files() {
        let opts = ReadOptions::default();
        let content = numbered_lines(3000);
        for (bytes, compression) in [
            (content.clone().into_bytes(), Compression::None),
            (gzip(content.as_bytes()), Compression::Gzip),
            (zstd(content.as_bytes()), Compression::Zstd),
        ] {
            let len = bytes.len() as u64;
            let opened = open_bytes(bytes, "topic/0@7", &opts).unwrap();
            assert_eq!(opened.compression, compression);
            let raw = Arc::clone(&opened.raw_bytes);
            let mut records = opened.into_records(Framing::Lines, &opts);
            let mut n = 0;
            while let Some(frame) = records.next_record() {
                let Frame::Record { bytes, .. } = frame else { panic!("{frame:?}") };
                assert_eq!(bytes, format!("line {n}").as_bytes());
                n += 1;
            }
            assert_eq!(n, 3000);
            assert_eq!(raw.load(Ordering::Relaxed), len);
        }
    }

    /// A reader that fails after some bytes, as a dropped connection does.
    struct FailAfter(Cursor<Vec<u8>>);

    impl Read for FailAfter {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.read(buf)? {
                0 => Err(io::Error::new(ErrorKind::ConnectionReset, "peer went away")),
                n => Ok(n),
            }
        }
    }

    #[test]
    fn stream_errors_end_in_broken_naming_the_stream() {
        let opts = ReadOptions::default();
        let cut = gzip(b"one\ntwo\n")[..12].to_vec();
        for bytes in [b"one\ntwo\nthr".to_vec(), cut] {
            let reader = Box::new(FailAfter(Cursor::new(bytes)));
            let mut records = open_reader(reader, "s3://b/k.gz", &opts)
                .unwrap()
                .into_records(Framing::Lines, &opts);
            let mut broken = None;
            while let Some(frame) = records.next_record() {
                if let Frame::Broken { error, .. } = frame {
                    broken = Some(error.to_string());
                }
            }
            let broken = broken.expect("a Broken frame");
            assert!(broken.starts_with("s3://b/k.gz: "), "{broken}");
        }
    }

    #[test]
    fn missing_file_error_names_it() {
        let input = InputFile {
            path: Some("/nonexistent/ztlake/x.log".into()),
            display: "/nonexistent/ztlake/x.log".into(),
            size: None,
        };
        let Err(e) = open(&input, &ReadOptions::default()) else {
            panic!("opened a missing file");
        };
        assert!(matches!(e, Error::Open { .. }), "{e:?}");
        assert!(e.to_string().starts_with("/nonexistent/ztlake/x.log: cannot open"), "{e}");
    }
}
