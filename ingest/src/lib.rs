//! ztlake-ingest: sources, decompression and record framing.
//!
//! This is the first stage of the pipeline (**ingest** → normalize → storage): it turns what the
//! user names (files, directories, `-` for stdin) into records — borrowed byte slices, each with
//! the line where it starts — and hands them to `normalize`. It never interprets a record beyond
//! finding where it ends.
//!
//! - [`expand_inputs`] (module `input`): command-line arguments to a sorted list of inputs.
//! - [`open`] (module `decompress`): an input to a reader of its content; gzip and zstd are
//!   detected by magic bytes and decompressed while streaming, under a size cap.
//! - [`RecordReader`] (module `framing`): content to records, by lines or by top-level JSON
//!   values, with bounded memory whatever the input bytes are.
//!
//! Network sources, each behind a cargo feature so crates that do not need them never build
//! their clients:
//!
//! - `kafka` — module [`kafka`]: Kafka, Azure Event Hubs, Amazon MSK and Confluent consumer
//!   groups with offsets committed only after the lake commit.
//! - `object-store` — module [`objects`]: polling S3, GCS and Azure Blob prefixes for new
//!   objects, each ingested once across restarts.
//!
//! Bad input is data, not a failure: an over-long record is reported as [`Frame::TooLong`] and
//! reading continues; a damaged stream ends with one [`Frame::Broken`] after every complete record
//! before the damage.
//!
//! ```
//! use ztlake_ingest::{Frame, Framing, ReadOptions, RecordReader};
//!
//! let content: &[u8] = b"{\"a\":1}\n{\n  \"b\": 2\n}\n";
//! let mut records = RecordReader::new(content, Framing::Json, &ReadOptions::default());
//! let mut starts = Vec::new();
//! while let Some(frame) = records.next_record() {
//!     if let Frame::Record { line, .. } = frame {
//!         starts.push(line);
//!     }
//! }
//! assert_eq!(starts, [1, 2]);
//! ```

mod decompress;
mod error;
mod framing;
mod input;
mod json_scan;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "object-store")]
pub mod objects;
#[cfg(any(feature = "kafka", feature = "object-store"))]
pub mod settings;

pub use decompress::{Compression, Opened, open, open_bytes, open_reader};
pub use error::{BoxError, Error, ErrorClass, Result};
pub use framing::{FINGERPRINT_LEN, Frame, Framing, RecordReader};
pub use input::{InputFile, expand_inputs};

/// Limits and buffer sizes for reading one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOptions {
    /// Longest accepted line in bytes, without its `\n` or `\r\n`; a longer line is reported as
    /// [`Frame::TooLong`] and skipped. Also applies to non-JSON text met under
    /// [`Framing::Json`]. Default 1 MiB.
    pub max_line_len: usize,
    /// Largest accepted top-level JSON value in bytes under [`Framing::Json`]. Default 64 MiB.
    pub max_json_len: usize,
    /// Cap on the decompressed size of one compressed input; reaching it ends the input with
    /// [`Frame::Broken`] (zip-bomb guard). Plain inputs are not capped. Default 64 GiB.
    pub max_decompressed_bytes: u64,
    /// Size of the read buffer. It grows beyond this only to hold one record up to its limit
    /// (plus 2 bytes), or for [`RecordReader::peek`]. Default 4 MiB.
    pub buffer_size: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            max_line_len: 1 << 20,
            max_json_len: 64 << 20,
            max_decompressed_bytes: 64 << 30,
            buffer_size: 4 << 20,
        }
    }
}
