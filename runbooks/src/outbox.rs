//! The durable outbox (stage 5, delivery): every queued notification, its delivery state, the
//! escalation state of every alert and the lifecycle steps not yet recorded, kept in one
//! directory, so nothing is lost across a restart.
//!
//! ```text
//! <outbox>/log/                  the state, log-structured (see the store module):
//!   entries/<key>.json           one per (alert, target, channel): the alert state to send,
//!                                revision, attempts, next attempt, delivered/failed
//!   pending/<key>                present while the entry has something to deliver
//!   alerts/<id>.json             routing and escalation state of an alert
//!   escalations/<id>             present while the alert may still escalate
//!   steps/<step>.json            lifecycle steps not yet recorded by the sink
//!   targets/<name>.json          recent send times of a target (rate limits)
//! <outbox>/mail/<key>.<rev>.eml  the email, when no SMTP server is configured
//! <outbox>/corrupt/              values that could not be read, set aside
//! ```
//!
//! Every read-modify-write runs in an exclusive section (a mutex in the process and an advisory
//! lock on `.lock` across processes), so `ztlake detect` can queue into the outbox of a running
//! service. A section's changes are staged and committed together (group commit) as ONE record
//! appended to the log and synced once; a section reads its own staged changes, and large
//! sections commit every few thousand changes, so memory stays bounded. (The first outbox wrote
//! one synced file per entry, alert, marker and step: thousands of alerts cost seconds of file
//! creation and `fsync`, which starved the pipeline beside it.) An outbox of that earlier
//! layout is imported into the log by the first section that opens it. Deliveries in flight
//! hold a lease on their entry; a crashed process's leases expire and the entries are retried.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use ztlake_detections::Alert;

use crate::error::{Error, Result};
use crate::lifecycle::LifecycleStep;
use crate::notify::MessageKind;
use crate::store::{Op, Store};

/// Directories of the outbox itself (the email channel adds `mail/`).
const DIRS: [&str; 3] = ["log", "tmp", "corrupt"];

/// The kinds of state, each a directory of files in the first outbox layout (imported).
const LEGACY: [&str; 6] = ["entries", "pending", "alerts", "escalations", "steps", "targets"];

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
    store: Mutex<Store>,
    /// Changes a section stages at most before committing them ([`STAGE_MAX_CHANGES`]).
    max_staged: usize,
}

/// An exclusive section over the outbox; its changes are staged and committed together.
pub(crate) struct Tx<'a> {
    outbox: &'a Outbox,
    staged: RefCell<Staged>,
    store: RefCell<MutexGuard<'a, Store>>,
    _lock: std::fs::File,
}

/// Changes staged at most before a section commits what it has (bounds memory).
const STAGE_MAX_CHANGES: usize = 4096;

/// Bytes staged at most before a section commits what it has.
const STAGE_MAX_BYTES: usize = 32 << 20;

/// The final state of a key in a section.
#[derive(Debug, Clone)]
enum Change {
    /// The new value.
    Write(Vec<u8>),
    /// An empty marker, set.
    Touch,
    /// The key is removed.
    Remove,
}

/// The changes a section made and not yet committed.
#[derive(Debug, Default)]
struct Staged {
    /// Key → its last change.
    changes: HashMap<String, Change>,
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
            store: Mutex::new(Store::open(&dir.join("log"))?),
            max_staged: STAGE_MAX_CHANGES,
        })
    }

    /// The directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Run `f` exclusively (this process's threads and other processes).
    pub(crate) fn with<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        let mut store = self.store.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let path = self.dir.join(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::outbox(&path, e))?;
        file.lock().map_err(|e| Error::outbox(&path, format!("locking: {e}")))?;
        store.refresh()?;
        self.import_legacy(&mut store)?;
        let tx = Tx {
            outbox: self,
            staged: RefCell::default(),
            store: RefCell::new(store),
            _lock: file,
        };
        // What the section changed is committed even when it failed part-way: each change
        // stands on its own, as when every write went to disk at once.
        let out = f(&tx);
        let committed = tx.commit();
        let value = out?;
        committed?;
        Ok(value)
    }

    /// Import the files of the first outbox layout (one file per entry, marker, …) into the
    /// log in one commit, then delete them. Runs inside the exclusive section; a section that
    /// cannot finish it fails, so no later change is ever overwritten by a stale file.
    fn import_legacy(&self, store: &mut Store) -> Result<()> {
        let dirs: Vec<(&str, PathBuf)> =
            LEGACY.iter().map(|d| (*d, self.dir.join(d))).filter(|(_, p)| p.is_dir()).collect();
        if dirs.is_empty() {
            return Ok(());
        }
        let mut ops: Vec<Op> = Vec::new();
        let mut files = Vec::new();
        for (kind, dir) in &dirs {
            for e in std::fs::read_dir(dir).map_err(|e| Error::outbox(dir, e))? {
                let e = e.map_err(|e| Error::outbox(dir, e))?;
                let Ok(name) = e.file_name().into_string() else { continue };
                let path = e.path();
                if name.starts_with('.') || !path.is_file() {
                    continue;
                }
                let bytes = std::fs::read(&path).map_err(|e| Error::outbox(&path, e))?;
                ops.push((format!("{kind}/{name}"), Some(bytes)));
                files.push(path);
            }
        }
        let imported = ops.len();
        store.commit(ops)?;
        for path in files {
            std::fs::remove_file(&path).map_err(|e| Error::outbox(&path, e))?;
        }
        for (kind, dir) in dirs {
            // What was not imported (hidden files, odd names) is set aside: the directory
            // must go, or every later section would import it again.
            if std::fs::remove_dir(&dir).is_err() {
                let aside = self.dir.join("corrupt").join(format!("legacy-{kind}"));
                std::fs::rename(&dir, &aside).map_err(|e| Error::outbox(&dir, e))?;
                tracing::warn!(dir = %dir.display(), aside = %aside.display(), "files the outbox could not import were set aside");
            }
        }
        tracing::info!(outbox = %self.dir.display(), files = imported, "outbox files imported into its log");
        Ok(())
    }
}

impl Tx<'_> {
    fn path(&self, dir: &str, name: &str) -> String {
        format!("{dir}/{name}")
    }

    /// Stage `change` of `key`; commit what is staged when it grew large.
    fn stage(&self, key: &str, change: Change) -> Result<()> {
        let full = {
            let mut staged = self.staged.borrow_mut();
            if let Change::Write(b) = &change {
                staged.bytes += b.len();
            }
            staged.changes.insert(key.to_owned(), change);
            staged.changes.len() >= self.outbox.max_staged || staged.bytes >= STAGE_MAX_BYTES
        };
        if full { self.commit() } else { Ok(()) }
    }

    /// The staged change of `key`, if any.
    fn staged(&self, key: &str) -> Option<Change> {
        self.staged.borrow().changes.get(key).cloned()
    }

    /// Put every staged change in the log: one record, synced once.
    fn commit(&self) -> Result<()> {
        let staged = std::mem::take(&mut *self.staged.borrow_mut());
        if staged.changes.is_empty() {
            return Ok(());
        }
        let mut ops: Vec<Op> = staged
            .changes
            .into_iter()
            .map(|(key, change)| match change {
                Change::Write(bytes) => (key, Some(bytes)),
                Change::Touch => (key, Some(Vec::new())),
                Change::Remove => (key, None),
            })
            .collect();
        // A stable order: the same section writes the same record.
        ops.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        self.store.borrow_mut().commit(ops)
    }

    fn read_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let bytes = match self.staged(key) {
            Some(Change::Write(b)) => b,
            Some(Change::Remove) => return Ok(None),
            Some(Change::Touch) | None => match self.store.borrow().get(key)? {
                Some(b) => b,
                None => return Ok(None),
            },
        };
        match serde_json::from_slice(&bytes) {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                // A damaged value must not stop delivery of everything else: set it aside.
                let name = key.replace('/', "-");
                let aside = self.outbox.dir.join("corrupt").join(&name);
                tracing::warn!(key, error = %e, aside = %aside.display(), "outbox value unreadable; moved to corrupt/");
                if let Err(e) = std::fs::write(&aside, &bytes) {
                    tracing::warn!(path = %aside.display(), error = %e, "cannot keep the unreadable value");
                }
                self.stage(key, Change::Remove)?;
                Ok(None)
            }
        }
    }

    fn write_json<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(|e| Error::outbox(Path::new(key), e))?;
        self.stage(key, Change::Write(bytes))
    }

    fn set_marker(&self, key: &str, present: bool) -> Result<()> {
        self.stage(key, if present { Change::Touch } else { Change::Remove })
    }

    /// The names under `dir` (committed and staged) ending in `suffix`, without it.
    fn names(&self, dir: &str, suffix: &str) -> Result<Vec<String>> {
        let prefix = format!("{dir}/");
        let mut names: BTreeSet<String> = self
            .store
            .borrow()
            .keys_with_prefix(&prefix)
            .filter_map(|k| k.strip_prefix(&prefix))
            .map(str::to_owned)
            .collect();
        for (key, change) in &self.staged.borrow().changes {
            let Some(name) = key.strip_prefix(&prefix) else { continue };
            match change {
                Change::Write(_) | Change::Touch => names.insert(name.to_owned()),
                Change::Remove => names.remove(name),
            };
        }
        Ok(names
            .into_iter()
            .filter_map(|n| n.strip_suffix(suffix).map(str::to_owned))
            .filter(|n| !n.starts_with('.') && !n.contains('/'))
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
        // A value that does not parse is set aside, not fatal.
        o.with(|tx| tx.stage(&format!("entries/{key}.json"), Change::Write(b"{not json".to_vec())))
            .expect("damage");
        assert_eq!(o.with(|tx| tx.entry(&key)).expect("read"), None);
        let aside = dir.path().join("corrupt").join(format!("entries-{key}.json"));
        assert_eq!(std::fs::read(&aside).expect("set aside"), b"{not json");
        assert!(o.with(|tx| tx.entries()).expect("all").is_empty(), "removed from the log");
        // Hostile ids never become paths.
        assert!(stem("../../etc/passwd").starts_with('h'));
        assert_eq!(stem("00000000000000aa"), "00000000000000aa");
    }

    /// An outbox of the first layout (a file per entry, marker, alert, step, target) is
    /// imported into the log by the first section, its files deleted, and reads the same.
    #[test]
    fn an_outbox_of_files_is_imported_into_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys: Vec<String> = (0..5).map(|i| entry_key(&format!("a{i}"), "t", "email")).collect();
        for (i, k) in keys.iter().enumerate() {
            let mut e = entry(k);
            e.pending = i % 2 == 0;
            let json = serde_json::to_vec(&e).expect("json");
            for (sub, name, bytes) in
                [("entries", format!("{k}.json"), json), ("pending", k.clone(), Vec::new())]
            {
                if sub == "pending" && !e.pending {
                    continue;
                }
                std::fs::create_dir_all(dir.path().join(sub)).expect("dir");
                std::fs::write(dir.path().join(sub).join(name), bytes).expect("write");
            }
        }
        std::fs::create_dir_all(dir.path().join("targets")).expect("dir");
        std::fs::write(dir.path().join("targets").join("t.json"), b"[7,8]").expect("write");
        // Not an outbox file: set aside, not imported, and no obstacle to the import.
        std::fs::write(dir.path().join("entries").join(".swp"), b"x").expect("write");
        let o = Outbox::open(dir.path()).expect("open");
        assert_eq!(o.with(|tx| tx.entries()).expect("all").len(), 5);
        assert_eq!(o.with(|tx| tx.pending_keys()).expect("pending").len(), 3);
        assert_eq!(o.with(|tx| tx.sends("t")).expect("sends"), vec![7, 8]);
        for sub in LEGACY {
            assert!(!dir.path().join(sub).exists(), "{sub} removed");
        }
        assert!(dir.path().join("corrupt").join("legacy-entries").join(".swp").exists());
        // Another handle (a second process) reads the same from the log alone.
        let other = Outbox::open(dir.path()).expect("reopen");
        let mut read: Vec<String> =
            other.with(|tx| tx.entries()).expect("all").into_iter().map(|e| e.key).collect();
        read.sort_unstable();
        let mut expected = keys.clone();
        expected.sort_unstable();
        assert_eq!(read, expected);
    }
}
