use std::io::{self, Read};

use super::*;

/// A frame, owned, for comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Rec(u64, Vec<u8>),
    Long(u64, u64, Vec<u8>),
    Broken(u64, u64, Vec<u8>, String),
}

fn rec(line: u64, bytes: impl AsRef<[u8]>) -> Out {
    Out::Rec(line, bytes.as_ref().to_vec())
}

fn long(line: u64, len: usize, prefix: impl AsRef<[u8]>) -> Out {
    Out::Long(line, len as u64, prefix.as_ref().to_vec())
}

fn limits(max_line_len: usize, max_json_len: usize) -> ReadOptions {
    ReadOptions { max_line_len, max_json_len, ..ReadOptions::default() }
}

/// Drains a reader; checks it stays ended and never yields more frames than bytes + 1.
fn drain<R: Read>(reader: &mut RecordReader<R>, input_len: usize) -> Vec<Out> {
    let mut out = Vec::new();
    while let Some(frame) = reader.next_record() {
        out.push(match frame {
            Frame::Record { line, bytes } => Out::Rec(line, bytes.to_vec()),
            Frame::TooLong { line, len, prefix } => Out::Long(line, len, prefix.to_vec()),
            Frame::Broken { line, partial, len, error } => {
                Out::Broken(line, len, partial.to_vec(), error.to_string())
            }
        });
        assert!(out.len() <= input_len + 1, "more frames than input bytes");
    }
    assert!(reader.next_record().is_none(), "frames after the end");
    out
}

/// Hands out at most `chunk` bytes per read, like a pipe.
struct Trickle<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.chunk.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Frames `input` with the default buffer, checking that tiny buffers and tiny reads give the
/// same frames (so every record straddles buffer ends somewhere).
fn frame_all(input: &[u8], framing: Framing, opts: &ReadOptions) -> Vec<Out> {
    let expected = drain(&mut RecordReader::new(input, framing, opts), input.len());
    for buffer_size in (1..=9).chain([13, 64, 1000]) {
        let opts = ReadOptions { buffer_size, ..opts.clone() };
        let got = drain(&mut RecordReader::new(input, framing, &opts), input.len());
        assert_eq!(got, expected, "buffer_size {buffer_size}");
    }
    for chunk in [1, 2, 3, 7] {
        let trickle = Trickle { data: input, chunk };
        let got = drain(&mut RecordReader::new(trickle, framing, opts), input.len());
        assert_eq!(got, expected, "reads of {chunk} bytes");
    }
    expected
}

fn lines(input: &[u8]) -> Vec<Out> {
    frame_all(input, Framing::Lines, &ReadOptions::default())
}

fn json(input: &[u8]) -> Vec<Out> {
    frame_all(input, Framing::Json, &ReadOptions::default())
}

fn blank_lines_of(input: &[u8], framing: Framing) -> u64 {
    let mut reader = RecordReader::new(input, framing, &ReadOptions::default());
    drain(&mut reader, input.len());
    reader.blank_lines()
}

// ---- Lines ----

#[test]
fn lines_with_and_without_final_newline() {
    assert_eq!(lines(b"a\nbb\nccc"), [rec(1, "a"), rec(2, "bb"), rec(3, "ccc")]);
    assert_eq!(lines(b"a\nbb\n"), [rec(1, "a"), rec(2, "bb")]);
    assert_eq!(lines(b""), []);
    assert_eq!(lines(b"only"), [rec(1, "only")]);
}

#[test]
fn crlf_is_stripped_once() {
    assert_eq!(lines(b"a\r\nb\r\n\r\nc\r"), [rec(1, "a"), rec(2, "b"), rec(4, "c")]);
    assert_eq!(lines(b"x\r\r\ny\rz\n"), [rec(1, "x\r"), rec(2, "y\rz")]);
}

#[test]
fn blank_lines_are_skipped_counted_and_keep_line_numbers() {
    let input = b"\n  \n\t\r\n a \n\n\nlast";
    assert_eq!(lines(input), [rec(4, " a "), rec(7, "last")]);
    assert_eq!(blank_lines_of(input, Framing::Lines), 5);
    assert_eq!(blank_lines_of(b"\n\n{}\n\n", Framing::Json), 0);
}

#[test]
fn over_long_line_in_the_middle_is_skipped_and_reading_goes_on() {
    let opts = limits(5, 1 << 20);
    let input = b"ok\n0123456789\nfine\n12345\r\n123456\r\nend";
    assert_eq!(
        frame_all(input, Framing::Lines, &opts),
        [
            rec(1, "ok"),
            long(2, 10, "0123456789"),
            rec(3, "fine"),
            rec(4, "12345"),
            long(5, 6, "123456"),
            rec(6, "end"),
        ]
    );
}

#[test]
fn over_long_prefix_is_capped_at_1_kib() {
    let long_line: Vec<u8> = (0..5000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut input = long_line.clone();
    input.extend_from_slice(b"\nnext");
    let out = frame_all(&input, Framing::Lines, &limits(100, 1 << 20));
    assert_eq!(out, [long(1, 5000, &long_line[..1024]), rec(2, "next")]);
}

#[test]
fn over_long_last_line_without_newline() {
    let out = frame_all(b"a\nbcdefg", Framing::Lines, &limits(3, 1 << 20));
    assert_eq!(out, [rec(1, "a"), long(2, 6, "bcdefg")]);
}

/// Yields `len` bytes of `fill` (after `head`), then `tail`, without holding them.
struct Huge {
    head: &'static [u8],
    fill: u8,
    len: u64,
    tail: &'static [u8],
    pos: u64,
}

impl Read for Huge {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let head = self.head.len() as u64;
        let mut n = 0;
        while n < buf.len() {
            let p = self.pos;
            let b = if p < head {
                self.head[p as usize]
            } else if p < head + self.len {
                self.fill
            } else if let Some(&b) = self.tail.get((p - head - self.len) as usize) {
                b
            } else {
                break;
            };
            buf[n] = b;
            n += 1;
            self.pos += 1;
        }
        Ok(n)
    }
}

#[test]
fn huge_line_is_skipped_in_bounded_memory() {
    let len = 30u64 << 20;
    for (buffer_size, max_line_len) in [(64 << 10, 1024), (16, 1000)] {
        let huge = Huge { head: b"", fill: b'a', len, tail: b"\nnext\n", pos: 0 };
        let opts = ReadOptions { buffer_size, ..limits(max_line_len, 1 << 20) };
        let mut reader = RecordReader::new(huge, Framing::Lines, &opts);
        let out = drain(&mut reader, usize::MAX - 1);
        assert_eq!(out, [long(1, len as usize, [b'a'; 1024]), rec(2, "next")]);
        assert!(
            reader.buffer_capacity() <= buffer_size.max(max_line_len + 2),
            "buffer grew to {}",
            reader.buffer_capacity()
        );
    }
}

#[test]
fn huge_json_value_is_skipped_in_bounded_memory() {
    let len = 20u64 << 20;
    let huge = Huge { head: b"{\"a\":\"", fill: b'{', len, tail: b"\"}\n[1]\n", pos: 0 };
    let opts = ReadOptions { buffer_size: 4096, ..limits(1 << 20, 10_000) };
    let mut reader = RecordReader::new(huge, Framing::Json, &opts);
    let out = drain(&mut reader, usize::MAX - 1);
    let mut prefix = b"{\"a\":\"".to_vec();
    prefix.resize(1024, b'{');
    assert_eq!(out, [long(1, len as usize + 8, prefix), rec(2, "[1]")]);
    assert!(reader.buffer_capacity() <= 10_002, "buffer grew to {}", reader.buffer_capacity());
}

#[test]
fn bytes_are_not_interpreted() {
    assert_eq!(
        lines(b"\x00\xff\xfe\n\xc3\x28\x00"),
        [rec(1, b"\x00\xff\xfe"), rec(2, b"\xc3\x28\x00")]
    );
}

#[test]
fn byte_order_mark_is_dropped_only_at_the_start() {
    assert_eq!(lines(b"\xEF\xBB\xBFa\nb"), [rec(1, "a"), rec(2, "b")]);
    assert_eq!(json(b"\xEF\xBB\xBF[1]\n{}"), [rec(1, "[1]"), rec(2, "{}")]);
    assert_eq!(lines(b"a\n\xEF\xBB\xBFb"), [rec(1, "a"), rec(2, b"\xEF\xBB\xBFb")]);
    assert_eq!(lines(b"\xEF\xBB"), [rec(1, b"\xEF\xBB")]);
}

// ---- peek, fingerprint, set_framing ----

#[test]
fn peek_and_fingerprint_consume_nothing() {
    let input = b"{\"a\":\n1}\n[2]\n";
    let opts = ReadOptions { buffer_size: 4, ..ReadOptions::default() };
    let mut reader = RecordReader::new(&input[..], Framing::Lines, &opts);
    assert_eq!(reader.peek(6), b"{\"a\":\n");
    let fp = reader.fingerprint().unwrap();
    assert_eq!(fp, xxhash_rust::xxh3::xxh3_128(input));
    assert_eq!(reader.peek(100), input);
    assert_eq!(reader.fingerprint().unwrap(), fp);
    reader.set_framing(Framing::Json);
    assert_eq!(reader.framing(), Framing::Json);
    assert_eq!(drain(&mut reader, input.len()), [rec(1, "{\"a\":\n1}"), rec(3, "[2]")]);
    assert_eq!(reader.fingerprint().unwrap(), fp, "cached value survives reading");
}

#[test]
fn fingerprint_covers_the_first_64_kib() {
    let fp = |content: &[u8]| {
        let opts = ReadOptions { buffer_size: 1000, ..ReadOptions::default() };
        RecordReader::new(content, Framing::Lines, &opts).fingerprint().unwrap()
    };
    let mut a = vec![b'a'; FINGERPRINT_LEN + 10];
    let base = fp(&a);
    assert_eq!(base, xxhash_rust::xxh3::xxh3_128(&a[..FINGERPRINT_LEN]));
    a[FINGERPRINT_LEN + 5] = b'b';
    assert_eq!(fp(&a), base, "bytes after 64 KiB are not part of it");
    a[FINGERPRINT_LEN - 1] = b'b';
    assert_ne!(fp(&a), base);
    assert_ne!(fp(b"x"), fp(b"y"));
}

#[test]
fn fingerprint_after_reading_is_an_error() {
    let mut reader = RecordReader::new(&b"a\nb\n"[..], Framing::Lines, &ReadOptions::default())
        .with_name("f.log");
    assert!(reader.next_record().is_some());
    let err = reader.fingerprint().unwrap_err();
    assert!(matches!(err, Error::FingerprintAfterRead { .. }), "{err:?}");
    assert_eq!(err.class(), crate::ErrorClass::Internal);
    assert!(err.to_string().starts_with("f.log: "), "{err}");
}

// ---- read errors ----

/// Yields `data` in reads of at most 3 bytes with `Interrupted` in between, then fails.
struct Failing {
    data: &'static [u8],
    interrupt: bool,
}

impl Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.interrupt = !self.interrupt;
        if self.interrupt {
            return Err(io::ErrorKind::Interrupted.into());
        }
        if self.data.is_empty() {
            return Err(io::Error::other("disk on fire"));
        }
        let n = 3.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn read_error_gives_complete_records_then_one_broken() {
    let broken = |data: &'static [u8], framing| {
        let failing = Failing { data, interrupt: false };
        let mut reader =
            RecordReader::new(failing, framing, &ReadOptions::default()).with_name("x.log");
        drain(&mut reader, data.len())
    };
    let msg = "x.log: read error: disk on fire".to_owned();
    assert_eq!(
        broken(b"a\nb\npart", Framing::Lines),
        [rec(1, "a"), rec(2, "b"), Out::Broken(3, 4, b"part".to_vec(), msg.clone())]
    );
    assert_eq!(
        broken(b"a\n", Framing::Lines),
        [rec(1, "a"), Out::Broken(2, 0, vec![], msg.clone())]
    );
    assert_eq!(
        broken(b"{}\n{\"a\":\n", Framing::Json),
        [rec(1, "{}"), Out::Broken(2, 6, b"{\"a\":\n".to_vec(), msg)]
    );
}

// ---- JSON ----

#[test]
fn json_ndjson() {
    assert_eq!(
        json(b"{\"a\":1}\n{\"b\":2}\r\n\n{\"c\":3}"),
        [rec(1, "{\"a\":1}"), rec(2, "{\"b\":2}"), rec(4, "{\"c\":3}")]
    );
}

#[test]
fn json_pretty_printed_documents() {
    let first = "{\n  \"a\": {\n    \"b\": [1, 2]\n  }\n}";
    let second = "[\n  {\"c\": 3},\n  {\"d\": 4}\n]";
    let input = format!("{first}\n\n{second}\n");
    assert_eq!(json(input.as_bytes()), [rec(1, first), rec(7, second)]);
}

#[test]
fn json_concatenated_values_and_arrays_on_one_line() {
    assert_eq!(
        json(b"[1,2][{\"a\":[]}] {\"x\":1}"),
        [rec(1, "[1,2]"), rec(1, "[{\"a\":[]}]"), rec(1, "{\"x\":1}")]
    );
}

#[test]
fn json_strings_with_brackets_and_escapes() {
    let first = r#"{"msg":"a } b { \" ] [","path":"C:\\","q":"\\\""}"#;
    let input = format!("{first}\n{{\"n\":2}}");
    assert_eq!(json(input.as_bytes()), [rec(1, first), rec(2, "{\"n\":2}")]);
}

#[test]
fn json_garbage_surfaces_line_by_line() {
    let input =
        b"{\"a\":1}\nnot json } {\n  garbage 2\r\n[1]\n42\n\"str\"\n}\n{\"a\":1} trailing\n";
    assert_eq!(
        json(input),
        [
            rec(1, "{\"a\":1}"),
            rec(2, "not json } {"),
            rec(3, "garbage 2"),
            rec(4, "[1]"),
            rec(5, "42"),
            rec(6, "\"str\""),
            rec(7, "}"),
            rec(8, "{\"a\":1}"),
            rec(8, "trailing"),
        ]
    );
}

#[test]
fn json_unterminated_value_at_eof_is_broken() {
    let out = frame_all(b"{\"a\":1}\n{\"b\": [1,\n 2", Framing::Json, &ReadOptions::default());
    let msg = "<input>: input ends inside a JSON value starting on line 2".to_owned();
    assert_eq!(out, [rec(1, "{\"a\":1}"), Out::Broken(2, 12, b"{\"b\": [1,\n 2".to_vec(), msg)]);
    assert!(matches!(json(b"{\"a\":\"abc").as_slice(), [Out::Broken(1, 9, ..)]));
    assert!(matches!(json(b"[[[[").as_slice(), [Out::Broken(1, 4, ..)]));
}

#[test]
fn json_newline_inside_a_string_ends_a_damaged_record() {
    assert_eq!(json(b"{\"a\":\"cut\r\n{\"b\":2}\n"), [rec(1, "{\"a\":\"cut"), rec(2, "{\"b\":2}")]);
}

#[test]
fn json_over_long_value_is_skipped_and_reading_goes_on() {
    let big = "{\"long\":\n\"0123456789\"}";
    let input = format!("{{\"a\":1}}\n{big}\n[\n1\n]\n");
    let out = frame_all(input.as_bytes(), Framing::Json, &limits(1 << 20, 10));
    assert_eq!(out, [rec(1, "{\"a\":1}"), long(2, big.len(), big), rec(4, "[\n1\n]")]);
    let out = frame_all(b"x\ntoo long garbage\n{}", Framing::Json, &limits(5, 10));
    assert_eq!(out, [rec(1, "x"), long(2, 16, "too long garbage"), rec(3, "{}")]);
}

#[test]
fn json_deep_nesting_is_counted_not_recursed() {
    let depth = 100_000;
    let mut input = vec![b'['; depth];
    input.extend(std::iter::repeat_n(b']', depth));
    let value = input.clone();
    input.extend_from_slice(b"\n{}");
    let mut reader = RecordReader::new(&input[..], Framing::Json, &ReadOptions::default());
    assert_eq!(drain(&mut reader, input.len()), [Out::Rec(1, value), rec(2, "{}")]);
}

// ---- properties over pseudo-random input ----

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// `len` bytes, each from `alphabet` (or any byte when it is empty).
    fn bytes(&mut self, len: usize, alphabet: &[u8]) -> Vec<u8> {
        (0..len)
            .map(|_| {
                if alphabet.is_empty() {
                    self.next() as u8
                } else {
                    alphabet[self.below(alphabet.len())]
                }
            })
            .collect()
    }
}

fn frame_len(out: &Out) -> u64 {
    match out {
        Out::Rec(_, bytes) => bytes.len() as u64,
        Out::Long(_, len, _) | Out::Broken(_, len, ..) => *len,
    }
}

fn frame_line(out: &Out) -> u64 {
    match out {
        Out::Rec(line, _) | Out::Long(line, ..) | Out::Broken(line, ..) => *line,
    }
}

/// Lines framing by the obvious, slow method.
fn reference_lines(input: &[u8], max: usize) -> Vec<Out> {
    let input = input.strip_prefix(BOM).unwrap_or(input);
    let parts: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() && part.is_empty() {
            break;
        }
        let record = part.strip_suffix(b"\r").unwrap_or(part);
        let line = i as u64 + 1;
        if record.len() > max {
            out.push(long(line, record.len(), &record[..record.len().min(PREFIX_LEN)]));
        } else if !record.iter().all(u8::is_ascii_whitespace) {
            out.push(Out::Rec(line, record.to_vec()));
        }
    }
    out
}

#[test]
fn random_bytes_never_panic_and_never_invent_bytes() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let alphabets: [&[u8]; 3] = [b"", b"ab \r\n\x00\xff", b"{}[]\"\\\n\r a:,"];
    for round in 0..600 {
        let alphabet = alphabets[round % alphabets.len()];
        let len = rng.below(3000);
        let input = rng.bytes(len, alphabet);
        let newlines = input.iter().filter(|&&b| b == b'\n').count() as u64;
        for framing in [Framing::Lines, Framing::Json] {
            let opts = ReadOptions {
                buffer_size: 1 + rng.below(40),
                max_line_len: rng.below(200),
                max_json_len: rng.below(400),
                max_decompressed_bytes: u64::MAX,
            };
            let out = drain(&mut RecordReader::new(&input[..], framing, &opts), input.len());
            let total: u64 = out.iter().map(frame_len).sum();
            assert!(total <= input.len() as u64, "round {round}: {total} > {}", input.len());
            let mut last_line = 1;
            for frame in &out {
                let line = frame_line(frame);
                assert!(line >= last_line && line <= newlines + 1, "round {round}: line {line}");
                last_line = line;
            }
        }
    }
}

#[test]
fn random_lines_match_the_reference() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for round in 0..400 {
        let len = rng.below(2000);
        let input = rng.bytes(len, b"ab \t\r\n\n\x00");
        let max = rng.below(60);
        let opts = ReadOptions { buffer_size: 1 + rng.below(30), ..limits(max, 0) };
        let got = drain(&mut RecordReader::new(&input[..], Framing::Lines, &opts), input.len());
        assert_eq!(got, reference_lines(&input, max), "round {round}");
    }
}

#[test]
fn random_framing_does_not_depend_on_buffer_or_read_sizes() {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for round in 0..300 {
        let len = rng.below(1500);
        let input = rng.bytes(len, b"{}[]{}\"\"\\\n\r ax");
        let opts = limits(rng.below(100), rng.below(300));
        for framing in [Framing::Lines, Framing::Json] {
            let expected = drain(&mut RecordReader::new(&input[..], framing, &opts), input.len());
            let small = ReadOptions { buffer_size: 1 + rng.below(20), ..opts.clone() };
            let got = drain(&mut RecordReader::new(&input[..], framing, &small), input.len());
            assert_eq!(got, expected, "round {round} {framing:?} buffer {}", small.buffer_size);
            let trickle = Trickle { data: &input, chunk: 1 + rng.below(5) };
            let got = drain(&mut RecordReader::new(trickle, framing, &small), input.len());
            assert_eq!(got, expected, "round {round} {framing:?} trickle");
        }
    }
}
