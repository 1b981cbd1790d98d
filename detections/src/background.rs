//! The streaming engine on its own thread, behind a bounded queue.
//!
//! Ingest hands every normalized batch to [`Background::send`] (a cheap `Arc` clone of the
//! columns) and goes on parsing; the engine filters, windows and evaluates on its own thread,
//! with its own single-threaded async runtime, so DataFusion work never starves the pipeline's
//! I/O tasks. A full queue blocks the sender (backpressure, bounded memory). [`Background::finish`]
//! flushes the engine and returns its alerts, as rows of the `alerts` table
//! ([`Engine::into_alert_rows`]).

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use arrow::array::RecordBatch;
use ztlake_normalize::schema::Table;

use crate::book::Spent;
use crate::engine::{Engine, EngineStats};
use crate::error::{Error, Result};

/// What the engine thread returns: its alerts as rows of the `alerts` table, and its counters.
type Outcome = Result<(Vec<RecordBatch>, Spent, EngineStats)>;

/// A streaming engine running on its own thread. See the module docs.
#[derive(Debug)]
pub struct Background {
    tx: Option<SyncSender<(Table, RecordBatch)>>,
    thread: Option<JoinHandle<Outcome>>,
    /// The engine's error, once it failed (for the sender's message).
    failure: Arc<Mutex<Option<String>>>,
}

impl Background {
    /// Start `engine` on a thread; at most `queue` batches wait for it. Its alerts are read
    /// only at [`Background::finish`], so it makes no provisional evaluations
    /// ([`Engine::final_only`]).
    ///
    /// # Errors
    /// The thread cannot be started.
    pub fn spawn(engine: Engine, queue: usize) -> Result<Background> {
        let engine = engine.final_only();
        let (tx, rx) = sync_channel(queue.max(1));
        let failure = Arc::new(Mutex::new(None));
        let record = failure.clone();
        let thread = std::thread::Builder::new()
            .name("ztlake-detect".into())
            .spawn(move || {
                let outcome = run(engine, &rx);
                if let (Err(e), Ok(mut slot)) = (&outcome, record.lock()) {
                    *slot = Some(e.to_string());
                }
                outcome
            })
            .map_err(|e| Error::Stopped(format!("cannot start the detection thread: {e}")))?;
        Ok(Background { tx: Some(tx), thread: Some(thread), failure })
    }

    /// Hand a batch to the engine (blocks while the queue is full).
    ///
    /// # Errors
    /// The engine stopped (its error is returned by [`Background::finish`]).
    pub fn send(&self, table: Table, batch: RecordBatch) -> Result<()> {
        let Some(tx) = &self.tx else { return Err(Error::Stopped("already finished".into())) };
        tx.send((table, batch)).map_err(|_| {
            let why = self.failure.lock().ok().and_then(|f| f.clone());
            Error::Stopped(why.unwrap_or_else(|| "the engine stopped".into()))
        })
    }

    /// Flush the engine (close every window) and return its alerts (rows of the `alerts`
    /// table, sorted by `alert_id`), what is left of its alert states ([`Spent`]) and its
    /// counters.
    ///
    /// # Errors
    /// The engine's first error.
    pub fn finish(mut self) -> Outcome {
        drop(self.tx.take());
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(outcome)) => outcome,
            Some(Err(_)) => Err(Error::Stopped("the detection thread panicked".into())),
            None => Err(Error::Stopped("already finished".into())),
        }
    }
}

fn run(mut engine: Engine, rx: &Receiver<(Table, RecordBatch)>) -> Outcome {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Stopped(format!("cannot start the detection runtime: {e}")))?;
    runtime.block_on(async {
        while let Ok((table, batch)) = rx.recv() {
            engine.push(table, &batch).await?;
        }
        let drained = std::time::Instant::now();
        engine.flush().await?;
        let flushed = drained.elapsed();
        let now = chrono::Utc::now().timestamp_micros();
        let stats = engine.stats().clone();
        let (rows, spent) = engine.into_alert_rows(now)?;
        tracing::debug!(
            flush_ms = flushed.as_millis(),
            rows_ms = (drained.elapsed() - flushed).as_millis(),
            "input drained: last windows closed, alert rows built"
        );
        Ok((rows, spent, stats))
    })
}
