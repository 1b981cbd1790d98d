//! Streaming an object's body to a blocking reader: an async task pulls the chunks from the
//! store into a bounded channel (backpressure: a slow parser pauses the download), and
//! [`BodyReader`] hands them out as `std::io::Read`.

use std::io::{self, Read};

use bytes::{Buf, Bytes};
use tokio::sync::mpsc;

use crate::Error;

/// Chunks buffered between the download task and the reader.
pub(crate) const BODY_CHUNKS: usize = 8;

/// What the download task sends.
pub(crate) enum Chunk {
    Data(Bytes),
    /// The body ended normally.
    End,
    /// The download failed.
    Failed(object_store::Error),
}

/// A blocking reader of a body streamed by a download task. Read it from a blocking thread
/// (`spawn_blocking` or a plain thread), never from async code.
pub(crate) struct BodyReader {
    pub(crate) rx: mpsc::Receiver<Chunk>,
    pub(crate) current: Bytes,
    pub(crate) url: String,
    pub(crate) expected: Option<u64>,
    pub(crate) received: u64,
    pub(crate) done: bool,
}

impl BodyReader {
    fn fail(&self, op: &'static str, cause: crate::error::BoxError) -> io::Error {
        io::Error::other(Error::ObjectStore { url: self.url.clone(), op, cause })
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            if self.done {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Chunk::Data(bytes)) => {
                    self.received += bytes.len() as u64;
                    self.current = bytes;
                }
                Some(Chunk::End) => {
                    self.done = true;
                    if let Some(expected) = self.expected.filter(|&e| e != self.received) {
                        return Err(self.fail(
                            "read",
                            format!(
                                "body has {} bytes, the listing said {expected}",
                                self.received
                            )
                            .into(),
                        ));
                    }
                }
                Some(Chunk::Failed(e)) => {
                    self.done = true;
                    return Err(self.fail("read", Box::new(e)));
                }
                None => {
                    self.done = true;
                    return Err(self.fail("read", "the download stopped before the end".into()));
                }
            }
        }
        let n = buf.len().min(self.current.len());
        self.current.copy_to_slice(&mut buf[..n]);
        Ok(n)
    }
}
