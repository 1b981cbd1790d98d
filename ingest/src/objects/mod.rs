//! Object-store source — stage 1 (ingest): poll a bucket or container prefix on S3, GCS or
//! Azure Blob (through `object_store`), where AWS, Azure and GCP deliver flow logs and audit
//! logs, for new objects. Built with the `object-store` feature.
//!
//! # What it promises
//!
//! - **Each object is ingested once across restarts.** An object's identity is its URL and its
//!   ETag: `object:<store>/<key>@<etag>` ([`ObjectEntry::source_key`]), e.g.
//!   `object:s3://logs/AWSLogs/1234/vpcflowlogs/…/file.log.gz@9b2cf535f27731c974343645a3985328`.
//!   The pipeline records it as a Delta `txn` (version: the last line read) in the same commit
//!   as the object's rows. [`ObjectPoller::poll`] takes the set of app ids the lake already
//!   holds ([`processed_in_all`] builds it from each table's txns) and hands out only objects
//!   not in it — nor handed out already by this poller and not yet [settled](ObjectPoller::settle).
//!   An object rewritten in place gets a new ETag, hence a new identity: it is read again.
//! - **Listing** is of the whole prefix, at any depth (object_store pages through it), sorted
//!   by key, at most `max_objects_per_poll` new objects per poll.
//! - **Reading streams**: [`ObjectPoller::open`] downloads the body in chunks into a bounded
//!   channel and returns a reader that decompresses gzip or zstd (detected by magic bytes) under
//!   the size cap, as for files. The download is conditional on the listed ETag, so an object
//!   replaced meanwhile fails instead of being read under the old identity; a body shorter or
//!   longer than listed ends in an error. Errors name the object URL.
//!
//! # URLs and credentials
//!
//! `s3://bucket/prefix` (credentials and region from `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT`, …),
//! `gs://bucket/prefix` (`GOOGLE_SERVICE_ACCOUNT` / `GOOGLE_APPLICATION_CREDENTIALS`, …),
//! `az://container/prefix` (`AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`,
//! `AZURE_STORAGE_CLIENT_ID`/`SECRET`/`TENANT_ID`, …), `file:///directory`. Explicit
//! [`ObjectSourceConfig::options`] come on top (`endpoint`, `allow_http`, `region`, …).
//!
//! ```no_run
//! # async fn demo() -> ztlake_ingest::Result<()> {
//! use std::collections::HashSet;
//! use ztlake_ingest::objects::{ObjectPoller, ObjectSourceConfig};
//! use ztlake_ingest::{Framing, ReadOptions};
//!
//! let poller = ObjectPoller::new(ObjectSourceConfig::new("s3://logs/AWSLogs/"))?;
//! let processed: HashSet<String> = HashSet::new(); // from the lake's txns
//! for entry in poller.poll(&processed).await? {
//!     let opened = poller.open(&entry, &ReadOptions::default()).await?;
//!     // Parse on a blocking thread; commit the rows with Txn(entry.source_key(), last line);
//!     // then:
//!     poller.settle(&entry);
//! }
//! # Ok(())
//! # }
//! ```

mod body;
mod config;
mod store;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, ObjectMeta, ObjectStore};

pub use config::{
    ObjectSourceConfig, SCHEMES, default_format, default_max_objects_per_poll,
    default_poll_interval,
};

use crate::{Error, Opened, ReadOptions, Result};
use body::{BODY_CHUNKS, BodyReader, Chunk};

/// Prefix of every object source key.
pub const KEY_PREFIX: &str = "object:";

/// An object found under the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEntry {
    /// Path in the store (for cloud stores: the object key, prefix included).
    pub location: Path,
    /// Size in bytes as listed.
    pub size: u64,
    /// Last modification, microseconds since the epoch: the delivery time of records that carry
    /// no time of their own.
    pub last_modified_micros: i64,
    /// The ETag as the store gave it (quotes included).
    pub e_tag: Option<String>,
    url: String,
    key: String,
}

impl ObjectEntry {
    fn new(root: &str, meta: ObjectMeta) -> Self {
        let url = format!("{root}/{}", meta.location);
        let version = match meta.e_tag.as_deref().map(normalize_etag) {
            Some(tag) if !tag.is_empty() => tag,
            // No ETag: modification time and size stand in for it.
            _ => format!("m{}-{}", meta.last_modified.timestamp_micros(), meta.size),
        };
        let key = format!("{KEY_PREFIX}{url}@{version}");
        ObjectEntry {
            location: meta.location,
            size: meta.size,
            last_modified_micros: meta.last_modified.timestamp_micros(),
            e_tag: meta.e_tag,
            url,
            key,
        }
    }

    /// The source identity: `object:<store>/<key>@<etag>` — `SourceInfo::key` and the `txn`
    /// appId of the object.
    pub fn source_key(&self) -> &str {
        &self.key
    }

    /// The display name in the `source` column (`<key>:<line>`): the object key.
    pub fn name(&self) -> &str {
        self.location.as_ref()
    }

    /// The object's URL (`s3://bucket/key`), for messages.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// An ETag without quotes or weak marker.
fn normalize_etag(tag: &str) -> String {
    tag.trim().trim_start_matches("W/").trim_matches('"').to_owned()
}

/// The object app ids every table holds: an object is processed only when each table recorded
/// it (a crash between two tables' commits leaves it to be read again; each table then skips
/// the lines it holds).
pub fn processed_in_all(per_table: &[HashMap<String, i64>]) -> HashSet<String> {
    let Some((first, rest)) = per_table.split_first() else { return HashSet::new() };
    first
        .keys()
        .filter(|k| k.starts_with(KEY_PREFIX) && rest.iter().all(|t| t.contains_key(*k)))
        .cloned()
        .collect()
}

/// Polls one prefix for new objects; see the module docs.
pub struct ObjectPoller {
    config: ObjectSourceConfig,
    store: Arc<dyn ObjectStore>,
    root: String,
    prefix: Option<Path>,
    in_flight: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for ObjectPoller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectPoller")
            .field("config", &self.config)
            .field("root", &self.root)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl ObjectPoller {
    /// A poller for `config`, with the store built from its URL, the environment and its
    /// options.
    ///
    /// # Errors
    /// [`Error::Config`] for a bad configuration or an unknown option, [`Error::ObjectStore`]
    /// when the client cannot be built (e.g. no credentials can be found).
    pub fn new(config: ObjectSourceConfig) -> Result<ObjectPoller> {
        let located = store::build(&config)?;
        Ok(ObjectPoller {
            config,
            store: located.store,
            root: located.root,
            prefix: located.prefix,
            in_flight: Mutex::new(HashSet::new()),
        })
    }

    /// A poller over a store built elsewhere (an in-memory store in tests, a store shared with
    /// other components): `config.url` still names the root and prefix of the source keys.
    ///
    /// # Errors
    /// [`Error::Config`] for a bad configuration.
    pub fn with_store(config: ObjectSourceConfig, store: Arc<dyn ObjectStore>) -> Result<Self> {
        config.validate()?;
        let url = config.parsed_url()?;
        let (root, prefix) = if url.scheme() == "file" {
            (url.as_str().trim_end_matches('/').to_owned(), None)
        } else {
            let mut bucket = url.clone();
            bucket.set_path("");
            (bucket.as_str().trim_end_matches('/').to_owned(), store::prefix_of(&config, &url)?)
        };
        Ok(ObjectPoller { config, store, root, prefix, in_flight: Mutex::new(HashSet::new()) })
    }

    /// The configuration.
    pub fn config(&self) -> &ObjectSourceConfig {
        &self.config
    }

    fn error(&self, op: &'static str, e: object_store::Error) -> Error {
        Error::ObjectStore { url: self.config.url.clone(), op, cause: Box::new(e) }
    }

    /// Every object under the prefix, sorted by key.
    ///
    /// # Errors
    /// [`Error::ObjectStore`] when listing fails.
    pub async fn list(&self) -> Result<Vec<ObjectEntry>> {
        let metas: Vec<ObjectMeta> = self
            .store
            .list(self.prefix.as_ref())
            .try_collect()
            .await
            .map_err(|e| self.error("list", e))?;
        let mut entries: Vec<ObjectEntry> =
            metas.into_iter().map(|m| ObjectEntry::new(&self.root, m)).collect();
        entries.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(entries)
    }

    /// The objects not yet processed: listed, not in `processed` (app ids the lake holds), not
    /// handed out by this poller and unsettled; oldest keys first, at most
    /// `max_objects_per_poll`. They count as handed out until [`settle`](Self::settle)d.
    ///
    /// # Errors
    /// [`Error::ObjectStore`] when listing fails.
    pub async fn poll(&self, processed: &HashSet<String>) -> Result<Vec<ObjectEntry>> {
        let listed = self.list().await?;
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let fresh: Vec<ObjectEntry> = listed
            .into_iter()
            .filter(|e| !processed.contains(&e.key) && !in_flight.contains(&e.key))
            .take(self.config.max_objects_per_poll)
            .collect();
        in_flight.extend(fresh.iter().map(|e| e.key.clone()));
        Ok(fresh)
    }

    /// Forget that `entry` was handed out: after its commit (the lake's processed set now holds
    /// it) or after a failure (the next poll hands it out again).
    pub fn settle(&self, entry: &ObjectEntry) {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&entry.key);
    }

    /// Open the body of `entry` for reading: gzip or zstd decompressed under the size cap as
    /// for files, errors naming the object URL. The download runs on the current tokio runtime;
    /// read the returned reader from a blocking thread (`spawn_blocking`), never from async code.
    ///
    /// # Errors
    /// [`Error::ObjectStore`] when the object is gone or changed since it was listed (ETag
    /// mismatch), or the download fails before the first bytes.
    pub async fn open(&self, entry: &ObjectEntry, opts: &ReadOptions) -> Result<Opened> {
        let options = GetOptions { if_match: entry.e_tag.clone(), ..GetOptions::default() };
        let result = self.store.get_opts(&entry.location, options).await.map_err(|e| {
            Error::ObjectStore { url: entry.url.clone(), op: "get", cause: Box::new(e) }
        })?;
        let (tx, mut rx) = tokio::sync::mpsc::channel(BODY_CHUNKS);
        tokio::spawn(async move {
            let mut stream = result.into_stream();
            loop {
                let chunk = match stream.next().await {
                    Some(Ok(bytes)) => Chunk::Data(bytes),
                    Some(Err(e)) => Chunk::Failed(e),
                    None => Chunk::End,
                };
                let last = !matches!(chunk, Chunk::Data(_));
                if tx.send(chunk).await.is_err() || last {
                    break;
                }
            }
        });
        // The first chunk arrives here, in async code, so that opening (which sniffs the first
        // bytes) never blocks; the rest is read from the blocking reader.
        let mut reader = BodyReader {
            rx: tokio::sync::mpsc::channel(1).1,
            current: bytes::Bytes::new(),
            url: entry.url.clone(),
            expected: Some(entry.size),
            received: 0,
            done: false,
        };
        let mut head = Vec::new();
        while head.len() < 4 {
            match rx.recv().await {
                Some(Chunk::Data(bytes)) => {
                    reader.received += bytes.len() as u64;
                    head.extend_from_slice(&bytes);
                }
                Some(Chunk::End) => {
                    reader.done = true;
                    break;
                }
                Some(Chunk::Failed(e)) => {
                    return Err(Error::ObjectStore {
                        url: entry.url.clone(),
                        op: "read",
                        cause: Box::new(e),
                    });
                }
                None => break,
            }
        }
        if reader.done && reader.received != entry.size {
            return Err(Error::ObjectStore {
                url: entry.url.clone(),
                op: "read",
                cause: format!(
                    "body has {} bytes, the listing said {}",
                    reader.received, entry.size
                )
                .into(),
            });
        }
        reader.current = bytes::Bytes::from(head);
        reader.rx = rx;
        crate::open_reader(Box::new(reader), entry.url.clone(), opts)
    }
}

#[cfg(test)]
mod tests;
