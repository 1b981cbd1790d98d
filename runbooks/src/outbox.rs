//! The durable outbox (stage 5, delivery): every queued notification, its delivery state, the
//! escalation state of every alert and the lifecycle steps not yet recorded, as files in one
//! directory, so nothing is lost across a restart.
//!
//! ```text
//! <outbox>/entries/<key>.json    one per (alert, target, channel): the alert state to send,
//!                                revision, attempts, next attempt, delivered/failed
//! <outbox>/pending/<key>         present while the entry has something to deliver
//! <outbox>/alerts/<id>.json      routing and escalation state of an alert
//! <outbox>/escalations/<id>      present while the alert may still escalate
//! <outbox>/steps/<step>.json     lifecycle steps not yet recorded by the sink
//! <outbox>/targets/<name>.json   recent send times of a target (rate limits)
//! <outbox>/mail/<key>.<rev>.eml  the email, when no SMTP server is configured
//! ```
//!
//! Every file is written to `tmp/` first, synced and renamed into place, so a crash leaves the
//! old or the new version, never half a file. Writes inside one exclusive section are staged and
//! committed together (group commit): the files are written and synced concurrently on a few
//! threads, then renamed into place, then the markers set and files removed. A
//! section reads its own staged changes; large sections commit every few thousand changes, so
//! memory stays bounded. One `fsync` (or, on a filesystem mounted with `discard`, one unlink)
//! at a time costs a millisecond or more, so tens of thousands of alerts handled one file at a
//! time took minutes; concurrently they take seconds. Every read-modify-write runs under an exclusive
//! lock (a mutex in the process and an advisory lock on `.lock` across processes), so `ztlake
//! detect` can queue into the outbox of a running service. Deliveries in flight hold a lease
//! on their entry; a crashed process's leases expire and the entries are retried.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use ztlake_detections::Alert;

use crate::error::{Error, Result};
use crate::lifecycle::LifecycleStep;
use crate::notify::MessageKind;

const DIRS: [&str; 8] =
    ["entries", "pending", "alerts", "escalations", "steps", "targets", "tmp", "corrupt"];

/// One queued notification: an alert to one channel of one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Stable key of (alert, target, channel): 16 hex digits.
    pub key: String,
    /// The alert.
    pub alert_id: String,
    /// The on-call target.
    pub target: String,
    /// The channel.
    pub channel: String,
    /// The alert state the pending (or last) message reports.
    pub alert: Alert,
    /// Why the pending (or last) message is sent.
    pub kind: MessageKind,
    /// For escalations: who did not acknowledge.
    #[serde(default)]
    pub escalated_from: Vec<String>,
    /// The message number (0 = first; updates count up).
    pub revision: u32,
    /// Whether something is waiting to be delivered.
    pub pending: bool,
    /// The last revision delivered.
    pub delivered_revision: Option<u32>,
    /// The count the last delivered message reported.
    pub delivered_count: Option<i64>,
    /// When the last message was delivered, µs.
    pub delivered_at: Option<i64>,
    /// Failed attempts of the pending message.
    pub attempts: u32,
    /// First failed attempt of the pending message, µs.
    pub first_failure: Option<i64>,
    /// The last failure.
    pub last_error: Option<String>,
    /// Given up (`delivery_failed`, final).
    pub failed: bool,
    /// Earliest next attempt, µs.
    pub next_attempt: i64,
    /// Why the next attempt waits (quiet hours, rate limit, backoff, update interval).
    #[serde(default)]
    pub waiting_for: Option<String>,
    /// A delivery in flight until then, µs (0: none).
    pub lease_until: i64,
    /// When the entry was created, µs.
    pub created: i64,
}

/// Routing and escalation state of one alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertState {
    /// The alert id.
    pub alert_id: String,
    /// The latest state submitted.
    pub alert: Alert,
    /// When it was first routed, µs.
    pub routed_at: i64,
    /// Every target notified so far (routes and escalations).
    pub targets: Vec<String>,
    /// The targets of the current escalation level.
    pub level_targets: Vec<String>,
    /// The escalation level (0 = the routed targets).
    pub level: u32,
    /// When the alert escalates next if not acknowledged, µs.
    pub next_escalation: Option<i64>,
    /// `acknowledged`, `resolved` or `exhausted` (no further target): no more escalation.
    pub closed: Option<String>,
}

/// The key of an entry: hex of (alert, target, channel).
pub fn entry_key(alert_id: &str, target: &str, channel: &str) -> String {
    let mut h = Sha256::new();
    for part in [alert_id, target, channel] {
        h.update(part.as_bytes());
        h.update([0x1f]);
    }
    h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// A file name for an id: the id when it is plain, else a hash of it.
fn stem(id: &str) -> String {
    if !id.is_empty()
        && id.len() <= 80
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        id.to_owned()
    } else {
        let digest = Sha256::digest(id.as_bytes());
        format!("h{}", digest.iter().take(16).map(|b| format!("{b:02x}")).collect::<String>())
    }
}

/// The outbox directory.
#[derive(Debug)]
pub(crate) struct Outbox {
    dir: PathBuf,
    guard: Mutex<()>,
    counter: AtomicU64,
    /// Changes a section stages at most before committing them ([`STAGE_MAX_CHANGES`]).
    max_staged: usize,
}

/// An exclusive section over the outbox; its changes are staged and committed together.
pub(crate) struct Tx<'a> {
    outbox: &'a Outbox,
    staged: RefCell<Staged>,
    _lock: std::fs::File,
    _guard: MutexGuard<'a, ()>,
}

/// Changes staged at most before a section commits what it has (bounds memory).
const STAGE_MAX_CHANGES: usize = 4096;

/// Bytes staged at most before a section commits what it has.
const STAGE_MAX_BYTES: usize = 32 << 20;

/// Threads syncing the files of one commit.
const SYNC_THREADS: usize = 16;

/// The final state of a path in a section.
#[derive(Debug, Clone)]
enum Change {
    /// The file's new content.
    Write(Vec<u8>),
    /// An empty marker file, created unless present.
    Touch,
    /// The file is removed.
    Remove,
}

/// The changes a section made and not yet committed.
#[derive(Debug, Default)]
struct Staged {
    /// Path → its last change.
    changes: HashMap<PathBuf, Change>,
    bytes: usize,
}

impl Outbox {
    /// Open (create) the outbox at `dir`.
    pub(crate) fn open(dir: &Path) -> Result<Outbox> {
        for d in DIRS {
            let p = dir.join(d);
            std::fs::create_dir_all(&p).map_err(|e| Error::outbox(&p, e))?;
        }
        Ok(Outbox {
            dir: dir.to_path_buf(),
            guard: Mutex::new(()),
            counter: AtomicU64::new(0),
            max_staged: STAGE_MAX_CHANGES,
        })
    }

    /// The directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Run `f` exclusively (this process's threads and other processes).
    pub(crate) fn with<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        let guard = self.guard.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let path = self.dir.join(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::outbox(&path, e))?;
        file.lock().map_err(|e| Error::outbox(&path, format!("locking: {e}")))?;
        let tx = Tx { outbox: self, staged: RefCell::default(), _lock: file, _guard: guard };
        // What the section changed is committed even when it failed part-way: each change
        // stands on its own, as when every write went to disk at once.
        let out = f(&tx);
        let committed = tx.commit();
        let value = out?;
        committed?;
        Ok(value)
    }

    /// A fresh temporary path in `tmp/`.
    fn tmp_path(&self) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.dir.join("tmp").join(format!("{}.{n}.tmp", std::process::id()))
    }
}

/// Write and sync `bytes` to `tmp`.
fn write_synced(tmp: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::File::create(tmp).map_err(|e| Error::outbox(tmp, e))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(|e| Error::outbox(tmp, e))
}

/// Run `f` on every item, on up to [`SYNC_THREADS`] threads at once: concurrent syncs, renames
/// and removals share the disk's flushes (and discards), where one at a time each waits for
/// its own. Returns the first error.
fn for_each_concurrently<T: Sync>(items: &[T], f: impl Fn(&T) -> Result<()> + Sync) -> Result<()> {
    if items.len() <= 1 {
        return items.iter().try_for_each(&f);
    }
    let threads = SYNC_THREADS.min(items.len());
    let per = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(per)
            .map(|chunk| scope.spawn(move || chunk.iter().try_for_each(f)))
            .collect();
        let mut first = Ok(());
        for h in handles {
            let r = h.join().unwrap_or_else(|_| {
                Err(Error::outbox(Path::new("tmp"), "an outbox writer thread panicked"))
            });
            if first.is_ok() {
                first = r;
            }
        }
        first
    })
}

impl Tx<'_> {
    fn path(&self, dir: &str, name: &str) -> PathBuf {
        self.outbox.dir.join(dir).join(name)
    }

    /// Stage `change` of `path`; commit what is staged when it grew large.
    fn stage(&self, path: &Path, change: Change) -> Result<()> {
        let full = {
            let mut staged = self.staged.borrow_mut();
            if let Change::Write(b) = &change {
                staged.bytes += b.len();
            }
            staged.changes.insert(path.to_path_buf(), change);
            staged.changes.len() >= self.outbox.max_staged || staged.bytes >= STAGE_MAX_BYTES
        };
        if full { self.commit() } else { Ok(()) }
    }

    /// The staged change of `path`, if any.
    fn staged(&self, path: &Path) -> Option<Change> {
        self.staged.borrow().changes.get(path).cloned()
    }

    /// Put every staged change on disk: the files written and synced (concurrently), then
    /// renamed into place, then the markers created and files removed — so a marker never
    /// announces a file that is not in place yet.
    fn commit(&self) -> Result<()> {
        let staged = std::mem::take(&mut *self.staged.borrow_mut());
        if staged.changes.is_empty() {
            return Ok(());
        }
        let mut files: Vec<(PathBuf, PathBuf, Vec<u8>)> = Vec::new();
        let mut markers: Vec<(PathBuf, bool)> = Vec::new();
        for (path, change) in staged.changes {
            match change {
                Change::Write(bytes) => files.push((self.outbox.tmp_path(), path, bytes)),
                Change::Touch => markers.push((path, true)),
                Change::Remove => markers.push((path, false)),
            }
        }
        for_each_concurrently(&files, |(tmp, _, bytes)| write_synced(tmp, bytes))?;
        for_each_concurrently(&files, |(tmp, path, _)| {
            std::fs::rename(tmp, path).map_err(|e| Error::outbox(path, e))
        })?;
        for_each_concurrently(&markers, |(path, present)| {
            if *present {
                // An empty marker has no data to sync: creating it is a directory change, as
                // durable as the rename that publishes every other file (no fsync).
                if !path.exists() {
                    std::fs::File::create(path).map_err(|e| Error::outbox(path, e))?;
                }
                return Ok(());
            }
            match std::fs::remove_file(path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::outbox(path, e)),
            }
        })
    }

    fn read_json<T: DeserializeOwned>(&self, path: &Path) -> Result<Option<T>> {
        let bytes = match self.staged(path) {
            Some(Change::Write(b)) => b,
            Some(Change::Remove) => return Ok(None),
            Some(Change::Touch) | None => match std::fs::read(path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(Error::outbox(path, e)),
            },
        };
        match serde_json::from_slice(&bytes) {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                // A damaged file must not stop delivery of everything else: set it aside.
                let name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
                let aside = self.outbox.dir.join("corrupt").join(name);
                tracing::warn!(path = %path.display(), error = %e, "outbox file unreadable; moved to corrupt/");
                let _ = std::fs::rename(path, aside);
                Ok(None)
            }
        }
    }

    fn write_json<T: Serialize>(&self, path: &Path, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(|e| Error::outbox(path, e))?;
        self.stage(path, Change::Write(bytes))
    }

    fn set_marker(&self, path: &Path, present: bool) -> Result<()> {
        self.stage(path, if present { Change::Touch } else { Change::Remove })
    }

    fn names(&self, dir: &str, suffix: &str) -> Result<Vec<String>> {
        let path = self.outbox.dir.join(dir);
        let mut files: BTreeSet<String> = std::fs::read_dir(&path)
            .map_err(|e| Error::outbox(&path, e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        for (p, change) in &self.staged.borrow().changes {
            let (Some(parent), Some(name)) = (p.parent(), p.file_name().and_then(|n| n.to_str()))
            else {
                continue;
            };
            if parent != path {
                continue;
            }
            match change {
                Change::Write(_) | Change::Touch => files.insert(name.to_owned()),
                Change::Remove => files.remove(name),
            };
        }
        Ok(files
            .into_iter()
            .filter_map(|n| n.strip_suffix(suffix).map(str::to_owned))
            .filter(|n| !n.starts_with('.'))
            .collect())
    }

    /// The entry `key`.
    pub(crate) fn entry(&self, key: &str) -> Result<Option<Entry>> {
        self.read_json(&self.path("entries", &format!("{}.json", stem(key))))
    }

    /// Store `entry` (and its pending marker).
    pub(crate) fn put_entry(&self, entry: &Entry) -> Result<()> {
        let name = stem(&entry.key);
        self.write_json(&self.path("entries", &format!("{name}.json")), entry)?;
        self.set_marker(&self.path("pending", &name), entry.pending)
    }

    /// Keys of the entries with something to deliver.
    pub(crate) fn pending_keys(&self) -> Result<Vec<String>> {
        self.names("pending", "")
    }

    /// Every entry.
    pub(crate) fn entries(&self) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        for name in self.names("entries", ".json")? {
            if let Some(e) = self.entry(&name)? {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// The state of alert `id`.
    pub(crate) fn alert(&self, id: &str) -> Result<Option<AlertState>> {
        self.read_json(&self.path("alerts", &format!("{}.json", stem(id))))
    }

    /// Store an alert's state (and its escalation marker).
    pub(crate) fn put_alert(&self, state: &AlertState) -> Result<()> {
        let name = stem(&state.alert_id);
        self.write_json(&self.path("alerts", &format!("{name}.json")), state)?;
        let escalating = state.closed.is_none() && state.next_escalation.is_some();
        self.set_marker(&self.path("escalations", &name), escalating)
    }

    /// The alerts that may still escalate.
    pub(crate) fn escalating(&self) -> Result<Vec<AlertState>> {
        let mut out = Vec::new();
        for name in self.names("escalations", "")? {
            match self.read_json::<AlertState>(&self.path("alerts", &format!("{name}.json")))? {
                Some(s) => out.push(s),
                None => self.set_marker(&self.path("escalations", &name), false)?,
            }
        }
        Ok(out)
    }

    /// Keep `step` until the sink has recorded it.
    pub(crate) fn journal(&self, step: &LifecycleStep) -> Result<()> {
        self.write_json(&self.path("steps", &format!("{}.json", stem(&step.step_id))), step)
    }

    /// The steps not yet recorded, oldest first.
    pub(crate) fn journaled(&self) -> Result<Vec<LifecycleStep>> {
        let mut out: Vec<LifecycleStep> = Vec::new();
        for name in self.names("steps", ".json")? {
            if let Some(s) = self.read_json(&self.path("steps", &format!("{name}.json")))? {
                out.push(s);
            }
        }
        out.sort_by_key(|s| s.time);
        Ok(out)
    }

    /// Forget recorded steps.
    pub(crate) fn forget_steps(&self, ids: &[String]) -> Result<()> {
        for id in ids {
            self.set_marker(&self.path("steps", &format!("{}.json", stem(id))), false)?;
        }
        Ok(())
    }

    /// Recent send times of `target`, µs.
    pub(crate) fn sends(&self, target: &str) -> Result<Vec<i64>> {
        Ok(self
            .read_json(&self.path("targets", &format!("{}.json", stem(target))))?
            .unwrap_or_default())
    }

    /// Store the recent send times of `target`.
    pub(crate) fn put_sends(&self, target: &str, sends: &[i64]) -> Result<()> {
        self.write_json(&self.path("targets", &format!("{}.json", stem(target))), &sends)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::tests::alert;
    use ztlake_detections::Severity;

    fn entry(key: &str) -> Entry {
        Entry {
            key: key.into(),
            alert_id: "a".into(),
            target: "t".into(),
            channel: "email".into(),
            alert: alert(Severity::High, "aws", &[]),
            kind: MessageKind::New,
            escalated_from: vec![],
            revision: 0,
            pending: true,
            delivered_revision: None,
            delivered_count: None,
            delivered_at: None,
            attempts: 0,
            first_failure: None,
            last_error: None,
            failed: false,
            next_attempt: 0,
            waiting_for: None,
            lease_until: 0,
            created: 0,
        }
    }

    #[test]
    fn a_section_reads_its_staged_changes_and_commits_them_all() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut o = Outbox::open(dir.path()).expect("open");
        o.max_staged = 64;
        let n = 150; // several commits inside the section
        let keys: Vec<String> = (0..n).map(|i| format!("{i:016x}")).collect();
        o.with(|tx| {
            for k in &keys {
                tx.put_entry(&entry(k))?;
                // Read-your-writes: the entry and its pending marker, before the commit.
                assert_eq!(tx.entry(k)?.map(|e| e.key), Some(k.clone()));
            }
            assert_eq!(tx.pending_keys()?.len(), n);
            let mut done = entry(&keys[0]);
            done.pending = false;
            tx.put_entry(&done)?;
            assert_eq!(tx.pending_keys()?.len(), n - 1);
            tx.put_sends("t", &[1])?;
            tx.put_sends("t", &[1, 2])?;
            assert_eq!(tx.sends("t")?, vec![1, 2]);
            Ok(())
        })
        .expect("section");
        let o = Outbox::open(dir.path()).expect("reopen");
        assert_eq!(o.with(|tx| tx.pending_keys()).expect("keys").len(), n - 1);
        assert_eq!(o.with(|tx| tx.entries()).expect("all").len(), n);
        assert_eq!(o.with(|tx| tx.sends("t")).expect("sends"), vec![1, 2]);
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).expect("tmp").count(), 0);
        // A failing section still commits the changes it made before failing.
        let r: Result<()> = o.with(|tx| {
            tx.put_sends("u", &[3])?;
            Err(Error::outbox(Path::new("x"), "boom"))
        });
        assert!(r.is_err());
        assert_eq!(o.with(|tx| tx.sends("u")).expect("sends"), vec![3]);
    }

    #[test]
    fn entries_round_trip_with_pending_markers_and_survive_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = entry_key("a", "t", "email");
        assert_eq!(key.len(), 16);
        assert_ne!(key, entry_key("a", "t", "webhook:x"));
        {
            let o = Outbox::open(dir.path()).expect("open");
            o.with(|tx| tx.put_entry(&entry(&key))).expect("put");
            assert_eq!(o.with(|tx| tx.pending_keys()).expect("keys"), std::slice::from_ref(&key));
        }
        let o = Outbox::open(dir.path()).expect("reopen");
        let mut e = o.with(|tx| tx.entry(&key)).expect("read").expect("present");
        assert_eq!(e, entry(&key));
        e.pending = false;
        o.with(|tx| tx.put_entry(&e)).expect("put");
        assert!(o.with(|tx| tx.pending_keys()).expect("keys").is_empty());
        assert_eq!(o.with(|tx| tx.entries()).expect("all").len(), 1);
        // A damaged file is set aside, not fatal.
        std::fs::write(dir.path().join("entries").join(format!("{key}.json")), b"{not json")
            .expect("write");
        assert_eq!(o.with(|tx| tx.entry(&key)).expect("read"), None);
        assert!(dir.path().join("corrupt").join(format!("{key}.json")).exists());
        // Hostile ids never become paths.
        assert!(stem("../../etc/passwd").starts_with('h'));
        assert_eq!(stem("00000000000000aa"), "00000000000000aa");
        // No temporary files are left behind.
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).expect("tmp").count(), 0);
    }
}
