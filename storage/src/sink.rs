//! Where the writer's data files go (storage stage).
//!
//! - Local lakes (`file://`): the encoder writes straight into the final location
//!   `<table>/provider=<p>/date=<d>/part-<uuid>.zstd.parquet`. Until it is committed, a file is
//!   invisible to Delta readers; a failed writer deletes its files, and vacuum removes the
//!   orphans of a crashed one.
//! - Remote lakes (s3, gs, az, memory): the encoder writes a spool file in a local directory;
//!   when the file is closed it is uploaded (object_store's buffered multipart writer) on the
//!   lake's small upload runtime ([`UploadRuntime`], one worker thread, shared by the lake's
//!   writers so connections are reused), while encoding goes on. At most a few uploads are in
//!   flight per writer: a slow store pauses the encoders (and through the bounded queue, the
//!   caller) instead of filling the disk.

use std::fs::File;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;

use object_store::ObjectStore;
use object_store::ObjectStoreExt as _;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use tokio::io::AsyncWriteExt;
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use ztlake_normalize::schema::Table;

use crate::error::{Error, Result};

/// Bytes per upload request part.
const UPLOAD_PART_BYTES: usize = 16 * 1024 * 1024;

/// The outcome of one upload: the data file path and its result.
pub(crate) type UploadResult = (String, Result<()>);

/// Destination of data files.
pub(crate) enum Sink {
    /// A local table directory.
    Local {
        /// `<lake>/<table>` on the local file system.
        table_dir: PathBuf,
    },
    /// A remote table, through a spool directory.
    Remote(Remote),
}

/// The tokio runtime that runs uploads: owned by the lake, shared by its writers, usable from
/// the plain threads of the encoders. Dropping it never blocks (safe in async code too).
pub(crate) struct UploadRuntime {
    runtime: Option<tokio::runtime::Runtime>,
    handle: Handle,
}

impl UploadRuntime {
    /// A runtime with one worker thread.
    pub(crate) fn new() -> Result<UploadRuntime> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ztlake-upload")
            .enable_all()
            .build()
            .map_err(|e| Error::io("tokio runtime for uploads", e))?;
        let handle = runtime.handle().clone();
        Ok(UploadRuntime { runtime: Some(runtime), handle })
    }

    /// A handle to spawn on it.
    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for UploadRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// State for uploads to a remote table.
pub(crate) struct Remote {
    /// Store rooted at the table (paths are relative to the table root).
    pub(crate) store: Arc<dyn ObjectStore>,
    /// Table URL, for messages.
    pub(crate) url: String,
    /// The upload runtime (kept alive while uploads may run).
    pub(crate) runtime: Arc<UploadRuntime>,
    /// Where spool files are written.
    pub(crate) spool_dir: PathBuf,
    /// Bounds the uploads in flight.
    pub(crate) permits: Arc<Semaphore>,
    /// Upload outcomes, drained by the writer.
    pub(crate) results: mpsc::Sender<UploadResult>,
}

impl Sink {
    /// Create the local file that will hold data file `rel_path` of `table`.
    pub(crate) fn create(&self, rel_path: &str) -> Result<(File, PathBuf)> {
        let local = match self {
            Sink::Local { table_dir } => {
                let path = table_dir.join(rel_path);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
                }
                path
            }
            Sink::Remote(remote) => {
                std::fs::create_dir_all(&remote.spool_dir)
                    .map_err(|e| Error::io(&remote.spool_dir, e))?;
                remote
                    .spool_dir
                    .join(format!("ztlake-spool-{}.parquet", uuid::Uuid::new_v4().simple()))
            }
        };
        let file = File::create_new(&local).map_err(|e| Error::io(&local, e))?;
        Ok((file, local))
    }

    /// The file `local` holding data file `rel_path` is complete: make it durable in the table.
    ///
    /// Local: nothing to do. Remote: start its upload (blocking while too many are in flight);
    /// the outcome arrives on the writer's result channel.
    pub(crate) fn publish(&self, local: PathBuf, rel_path: String) {
        let Sink::Remote(remote) = self else {
            return;
        };
        let permits = remote.permits.clone();
        // Encoder threads are plain threads, outside the runtime: blocking here is fine. The
        // semaphore is never closed, so a permit always comes.
        let permit = remote.runtime.handle().block_on(permits.acquire_owned()).ok();
        let store = remote.store.clone();
        let url = remote.url.clone();
        let mut report = Report {
            url: url.clone(),
            rel_path: rel_path.clone(),
            results: Some(remote.results.clone()),
        };
        remote.runtime.handle().spawn(async move {
            let outcome = upload(store, &local, &rel_path, &url).await;
            // The spool file is not needed any more, whatever happened.
            let _ = tokio::fs::remove_file(&local).await;
            drop(permit);
            report.send(outcome);
        });
    }

    /// Delete the local file of an abandoned data file (best effort).
    pub(crate) fn discard_local(local: &FsPath) {
        if let Err(e) = std::fs::remove_file(local)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %local.display(), error = %e, "could not delete abandoned data file");
        }
    }

    /// Delete data files already published to a remote table (best effort, blocking).
    pub(crate) fn discard_remote(&self, table: Table, rel_paths: Vec<String>) {
        let Sink::Remote(remote) = self else {
            return;
        };
        if rel_paths.is_empty() {
            return;
        }
        let store = remote.store.clone();
        let (tx, rx) = mpsc::channel();
        remote.runtime.handle().spawn(async move {
            for rel in rel_paths {
                if let Err(e) = store.delete(&Path::from(rel.as_str())).await
                    && !matches!(e, object_store::Error::NotFound { .. })
                {
                    tracing::warn!(%table, path = %rel, error = %e, "could not delete abandoned data file");
                }
            }
            let _ = tx.send(());
        });
        let _ = rx.recv();
    }
}

/// Reports the outcome of one upload exactly once, even if the task is cancelled or panics
/// (the writer counts outcomes and would otherwise wait forever).
struct Report {
    url: String,
    rel_path: String,
    results: Option<mpsc::Sender<UploadResult>>,
}

impl Report {
    fn send(&mut self, outcome: Result<()>) {
        if let Some(results) = self.results.take() {
            let _ = results.send((std::mem::take(&mut self.rel_path), outcome));
        }
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        if self.results.is_some() {
            let detail = format!("upload of {} stopped before completing", self.rel_path);
            self.send(Err(Error::ObjectStore {
                url: self.url.clone(),
                path: self.rel_path.clone(),
                source: Box::new(object_store::Error::Generic {
                    store: "upload",
                    source: detail.into(),
                }),
            }));
        }
    }
}

async fn upload(
    store: Arc<dyn ObjectStore>,
    local: &FsPath,
    rel_path: &str,
    url: &str,
) -> Result<()> {
    let file = tokio::fs::File::open(local).await.map_err(|e| Error::io(local, e))?;
    let mut reader = tokio::io::BufReader::with_capacity(1024 * 1024, file);
    let object_err = |source: std::io::Error| Error::ObjectStore {
        url: url.to_string(),
        path: rel_path.to_string(),
        source: Box::new(object_store::Error::Generic {
            store: "upload",
            source: Box::new(source),
        }),
    };
    let mut writer = BufWriter::with_capacity(store, Path::from(rel_path), UPLOAD_PART_BYTES);
    let copied = tokio::io::copy_buf(&mut reader, &mut writer).await;
    match copied {
        Ok(_) => writer.shutdown().await.map_err(object_err),
        Err(e) => {
            let _ = writer.abort().await;
            Err(object_err(e))
        }
    }
}
