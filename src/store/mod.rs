//! The sled store: runs (materialised views), their append-only events, and stage logs.
//! Every multi-key write is one sled transaction; the store carries a schema version.

mod approvals;
mod lock;
mod migrate;
mod query;
mod write;
pub mod read;
pub mod record;
pub mod sessions;

use std::path::{Path, PathBuf};

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use crate::events::{Deployment, Event, EventKind, LogLine, RunState, StageResult};
use crate::approval::ApprovalState;
pub use record::{Pusher, RunRecord, StageRecord};

/// Bumped whenever the layout of a tree changes; `open` migrates older stores forward.
/// 2: events and log lines moved to a database of their own (`history/`), so that
/// listings open only the small one.
pub const SCHEMA_VERSION: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("data dir {} is in use by another gantry process ({owner}); wait for it to finish or pass another --data-dir", dir.display())]
    InUse { dir: PathBuf, owner: String },
    #[error("the store in {} has schema version {found}, newer than this gantry understands ({SCHEMA_VERSION}); use a newer gantry", dir.display())]
    TooNew { dir: PathBuf, found: u32 },
    #[error("store error: {0}")]
    Sled(#[from] sled::Error),
    #[error("corrupt record under {key}: {source}")]
    Corrupt { key: String, source: serde_json::Error },
    #[error("no run matches '{0}' (see `gantry runs`)")]
    NoSuchRun(String),
    #[error("'{prefix}' matches several runs ({}); give more characters", candidates.join(", "))]
    Ambiguous { prefix: String, candidates: Vec<String> },
    #[error("run {0} already exists")]
    Duplicate(String),
}

/// One page of a run's log lines, each with its position (see `Store::log_page`).
#[derive(Debug, Default)]
pub struct LogPage {
    pub lines: Vec<(u64, LogLine)>,
    pub more: bool,
}

pub struct Store {
    /// The index database: run views and every index. Small, opened by every command.
    db: sled::Db,
    runs: sled::Tree,
    /// Events written in the same transaction as the run view they fold into, until they
    /// are moved to the history database (a transactional outbox: sled cannot span a
    /// transaction over two databases, and a crash in between must lose nothing).
    outbox: sled::Tree,
    /// Events and log lines, the bulk of a store; opened on first use.
    history: std::sync::OnceLock<History>,
    opening_history: std::sync::Mutex<()>,
    /// Outbox keys copied to the history database but not yet known durable there; they
    /// leave the outbox at the next `flush`, after the history's.
    delivered: std::sync::Mutex<Vec<Vec<u8>>>,
    /// Index: ids of runs not yet finished. Keeps start-up recovery from scanning all runs.
    active: sled::Tree,
    /// Index: ids of finished runs whose Docker objects are not yet known to be gone.
    unswept: sled::Tree,
    /// Every deployment, keyed by finish time (big-endian micros) then run id.
    deployments: sled::Tree,
    /// Index: ids of runs whose promotion waits for approval.
    approvals: sled::Tree,
    /// The service's queue: run id (ULIDs sort by creation) -> the plan to run.
    queue: sled::Tree,
    /// The plan each run ran (or will run): what `gantry rerun` runs again.
    plans: sled::Tree,
    /// Commits already taken by a project: `project \0 sha` -> run id, so the same commit
    /// is not queued twice for one pipeline.
    seen: sled::Tree,
    /// The dashboard's sessions, by the hash of their id (`sessions`).
    sessions: sled::Tree,
    dir: PathBuf,
    _lock: lock::DirLock,
}

/// The history database: append-only events (by run id and sequence) and log lines.
struct History {
    db: sled::Db,
    events: sled::Tree,
    logs: sled::Tree,
}

fn decode<T: serde::de::DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt { key: String::from_utf8_lossy(key).into_owned(), source })
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records serialise")
}

impl Store {
    /// Opens (creating if needed) the store in `dir`, taking the data dir's lock. Runs left
    /// `running` by a process that died are marked interrupted here: holding the lock
    /// proves no live process drives them.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Self::open_waiting(dir, std::time::Duration::ZERO)
    }

    /// Like `open`, but waits up to `wait` for another gantry process to let go of the
    /// data dir (approvals given at the same moment queue here, one after another).
    pub fn open_waiting(dir: &Path, wait: std::time::Duration) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io { path: dir.to_path_buf(), source })?;
        let until = std::time::Instant::now() + wait;
        let lock = loop {
            match lock::DirLock::acquire(dir) {
                Err(StoreError::InUse { .. }) if std::time::Instant::now() < until => {
                    // Jittered, so that many waiters do not wake in step.
                    let jitter = u64::from(std::process::id() % 17) + (ulid::Ulid::new().random() % 23) as u64;
                    std::thread::sleep(std::time::Duration::from_millis(20 + jitter));
                }
                other => break other?,
            }
        };
        migrate::finish_interrupted(dir)?;
        // sled lets go of its own file lock a moment after a process that just released the
        // data dir's lock has dropped its store: wait for that moment rather than fail.
        let mut db = open_sled(&dir.join("db"), DB_CACHE)?;
        let version = |db: &sled::Db| -> Result<Option<u32>, StoreError> {
            Ok(db.open_tree("meta")?.get("schema_version")?.map(|v| u32::from_be_bytes(v.as_ref().try_into().unwrap_or([0, 0, 0, 0]))))
        };
        let mut found = version(&db)?;
        if let Some(found) = found.filter(|f| *f > SCHEMA_VERSION) {
            return Err(StoreError::TooNew { dir: dir.to_path_buf(), found });
        }
        if found.is_some_and(|f| f < 2) {
            drop(db);
            migrate::to_2(dir)?;
            db = open_sled(&dir.join("db"), DB_CACHE)?;
            found = version(&db)?;
        }
        let meta = db.open_tree("meta")?;
        let store = Store {
            runs: db.open_tree("runs")?,
            outbox: db.open_tree("outbox")?,
            history: std::sync::OnceLock::new(),
            opening_history: std::sync::Mutex::new(()),
            delivered: std::sync::Mutex::new(Vec::new()),
            active: db.open_tree("active")?,
            unswept: db.open_tree("unswept")?,
            deployments: db.open_tree("deployments")?,
            approvals: db.open_tree("approvals")?,
            queue: db.open_tree("queue")?,
            plans: db.open_tree("plans")?,
            seen: db.open_tree("seen")?,
            sessions: db.open_tree("sessions")?,
            db,
            dir: dir.to_path_buf(),
            _lock: lock,
        };
        let _ = found;
        meta.insert("schema_version", &SCHEMA_VERSION.to_be_bytes())?;
        if !store.outbox.is_empty() {
            store.deliver_all()?;
        }
        store.interrupt_orphaned_runs()?;
        Ok(store)
    }

    /// The history database, opened on first use.
    fn history(&self) -> Result<&History, StoreError> {
        if let Some(h) = self.history.get() {
            return Ok(h);
        }
        let _only_one = self.opening_history.lock().expect("history lock");
        if let Some(h) = self.history.get() {
            return Ok(h);
        }
        let db = open_sled(&self.dir.join("history"), HISTORY_CACHE)?;
        let history = History { events: db.open_tree("events")?, logs: db.open_tree("logs")?, db };
        let _ = self.history.set(history);
        Ok(self.history.get().expect("just set"))
    }

    /// Copies events of the outbox with these keys to the history database; they leave the
    /// outbox at the next `flush`, once the history has them on disk.
    fn deliver(&self, keys: &[Vec<u8>]) -> Result<(), StoreError> {
        let history = self.history()?;
        let mut into = sled::Batch::default();
        for key in keys {
            if let Some(value) = self.outbox.get(key)? {
                into.insert(key.clone(), value);
            }
        }
        history.events.apply_batch(into)?;
        self.delivered.lock().expect("delivered keys").extend(keys.iter().cloned());
        Ok(())
    }

    /// Delivers whatever a process that died left in the outbox.
    fn deliver_all(&self) -> Result<(), StoreError> {
        let keys: Vec<Vec<u8>> = self.outbox.iter().keys().map(|k| k.map(|k| k.to_vec())).collect::<Result<_, _>>()?;
        self.deliver(&keys)?;
        self.flush()
    }

    /// The dashboard's sessions.
    pub fn sessions(&self) -> sessions::Sessions<'_> {
        sessions::Sessions::new(&self.sessions)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Who holds the data dir now (pid and command), if another process does. Takes and
    /// releases only the lock file: the store itself is not opened.
    pub fn holder(dir: &Path) -> Option<String> {
        match lock::DirLock::acquire(dir) {
            Err(StoreError::InUse { owner, .. }) => Some(owner),
            _ => None,
        }
    }
}

fn deployment_key(d: &Deployment) -> Vec<u8> {
    let mut key = d.finished_at.timestamp_micros().to_be_bytes().to_vec();
    key.extend_from_slice(d.run_id.as_bytes());
    key.extend_from_slice(d.environment.as_bytes());
    key
}

/// Opens one of the store's sled databases. sled lets go of its own file lock a moment
/// after a process that just released the data dir's lock dropped its store: that moment
/// is waited for (up to 2 s) rather than failed on.
/// sled's page cache, per database (its default is 1 GiB each). The history is written
/// far more than it is read, so its cache stays small: a stage printing its whole cap must
/// not grow the service by the cap.
const DB_CACHE: u64 = 128 << 20;
const HISTORY_CACHE: u64 = 32 << 20;

fn open_sled(path: &Path, cache: u64) -> Result<sled::Db, StoreError> {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match sled::Config::new().path(path).cache_capacity(cache).flush_every_ms(Some(200)).open() {
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") && std::time::Instant::now() < until => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

fn seen_key(project: &str, sha: &str) -> Vec<u8> {
    format!("{project}\0{sha}").into_bytes()
}

fn event_key(run_id: &str, seq: u64) -> Vec<u8> {
    let mut key = run_id.as_bytes().to_vec();
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn flatten<T>(result: Result<T, TransactionError<StoreError>>) -> Result<T, StoreError> {
    match result {
        Ok(v) => Ok(v),
        Err(TransactionError::Abort(e)) => Err(e),
        Err(TransactionError::Storage(e)) => Err(StoreError::Sled(e)),
    }
}

/// A new run id: a ULID, lowercase, so ids sort by creation time in the store.
pub fn new_run_id() -> String {
    ulid::Ulid::new().to_string().to_ascii_lowercase()
}

/// The default data dir: under the user's data directory.
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir().unwrap_or_else(|| PathBuf::from(".")).join("gantry")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commit::CommitInfo;

    fn run(id: &str) -> RunRecord {
        let plan = crate::pipeline::parse("p.yml", "name: p\nstages:\n  a: {image: x, commands: [\"true\"]}\n").unwrap();
        let commit = CommitInfo::for_tests();
        RunRecord::new(id.into(), &plan, ".".into(), commit)
    }

    fn line(text: &str) -> LogLine {
        LogLine { at: chrono::Utc::now(), stage: "a".into(), attempt: 1, stream: crate::events::Stream::Stdout, text: text.into() }
    }

    #[test]
    fn a_schema_1_store_moves_its_events_and_logs_to_the_history_database() {
        let dir = tempfile::tempdir().unwrap();
        // A store as schema 1 wrote it: everything in one database.
        {
            // (No flusher thread, so that the files are let go of at once.)
            let db = sled::Config::new().path(dir.path().join("db")).flush_every_ms(None).open().unwrap();
            db.open_tree("meta").unwrap().insert("schema_version", &1u32.to_be_bytes()).unwrap();
            let r = run("r1");
            let created = Event::now(EventKind::RunCreated { pipeline: "p".into(), commit: r.commit.sha.clone() });
            let mut view = r.clone();
            view.apply(&created);
            db.open_tree("runs").unwrap().insert("r1", encode(&view)).unwrap();
            db.open_tree("active").unwrap().insert("r1", &[]).unwrap();
            db.open_tree("events").unwrap().insert(event_key("r1", 0), encode(&created)).unwrap();
            let mut key = b"r1".to_vec();
            key.extend_from_slice(&7u64.to_be_bytes());
            db.open_tree("logs").unwrap().insert(key, encode(&line("from schema 1"))).unwrap();
            db.flush().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.events("r1").unwrap().len(), 2, "its creation, and the interruption found at open");
        assert_eq!(store.logs("r1", None).unwrap()[0].text, "from schema 1");
        assert!(!store.db.tree_names().iter().any(|n| n.as_ref() == b"events" || n.as_ref() == b"logs"));
        let meta = store.db.open_tree("meta").unwrap();
        assert_eq!(meta.get("schema_version").unwrap().unwrap().as_ref(), &SCHEMA_VERSION.to_be_bytes());
        // (A tree handle keeps its database open.)
        drop(meta);
        drop(store);
        // Opening again finds nothing to move and the same history.
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.events("r1").unwrap().len(), 2);
        drop(store);
        // A crash between the two renames of the swap: the next open finishes it.
        std::fs::rename(dir.path().join("db"), dir.path().join("db.v2")).unwrap();
        std::fs::create_dir(dir.path().join("db.v1")).unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.run("r1").unwrap().id, "r1");
        assert!(!dir.path().join("db.v1").exists() && !dir.path().join("db.v2").exists());
    }

    #[test]
    fn events_left_in_the_outbox_by_a_crash_are_delivered_at_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store.create_run(&run("r2")).unwrap();
            let view = store.append("r2", &Event::now(EventKind::Swept { containers: 1, networks: 0, volumes: 0 })).unwrap();
            // As if the process died after the transaction, before the history had the
            // event on disk: it is still in the outbox, and not in the history.
            let key = event_key("r2", view.events - 1);
            let value = store.history().unwrap().events.remove(&key).unwrap().unwrap();
            store.outbox.insert(key, value).unwrap();
            store.delivered.lock().unwrap().clear();
            store.flush().unwrap();
            assert_eq!(store.events("r2").unwrap().len(), 2, "readers see outbox events too");
        }
        let store = Store::open(dir.path()).unwrap();
        assert!(store.outbox.is_empty(), "delivered at open");
        let events = store.events("r2").unwrap();
        assert!(matches!(events[1].kind, EventKind::Swept { containers: 1, .. }), "{events:?}");
        assert!(store.history().unwrap().events.contains_key(event_key("r2", 1)).unwrap());
    }

    #[test]
    fn log_pages_follow_each_other_without_gaps_or_repeats_and_filter_by_stage() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (a, b) = (crate::store::new_run_id(), crate::store::new_run_id());
        let staged = |stage: &str, text: String| LogLine { stage: stage.into(), ..line(&text) };
        for i in 0..7 {
            store.append_logs(&a, &[staged(if i % 2 == 0 { "even" } else { "odd" }, format!("a{i}"))]).unwrap();
            store.append_logs(&b, &[line(&format!("b{i}"))]).unwrap();
        }
        let texts = |p: &LogPage| p.lines.iter().map(|(_, l)| l.text.clone()).collect::<Vec<_>>();
        let first = store.log_page(&a, None, None, 3).unwrap();
        assert_eq!((texts(&first), first.more), (vec!["a0".into(), "a1".into(), "a2".into()], true));
        let second = store.log_page(&a, None, Some(first.lines[2].0), 3).unwrap();
        assert_eq!((texts(&second), second.more), (vec!["a3".into(), "a4".into(), "a5".into()], true));
        let last = store.log_page(&a, None, Some(second.lines[2].0), 3).unwrap();
        assert_eq!((texts(&last), last.more), (vec!["a6".into()], false), "another run's lines never show");
        let done = store.log_page(&a, None, Some(last.lines[0].0), 3).unwrap();
        assert!(done.lines.is_empty() && !done.more);
        let odd = store.log_page(&a, Some("odd"), None, 2).unwrap();
        assert_eq!((texts(&odd), odd.more), (vec!["a1".into(), "a3".into()], true));
        let rest = store.log_page(&a, Some("odd"), Some(odd.lines[1].0), 2).unwrap();
        assert_eq!((texts(&rest), rest.more), (vec!["a5".into()], false));
        // A position past every line (or from another run) starts nowhere, not over.
        assert!(store.log_page(&a, None, Some(u64::MAX), 3).unwrap().lines.is_empty());
    }

    #[test]
    fn listing_runs_does_not_open_the_history_database() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store.create_run(&run("r3")).unwrap();
            store.append_logs("r3", &[line("hello")]).unwrap();
            store.append("r3", &Event::now(EventKind::RunFinished { state: RunState::Succeeded, message: None })).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.list_runs(20).unwrap().len(), 1);
        assert!(store.history.get().is_none(), "a listing reads the index only");
        assert_eq!(store.logs("r3", None).unwrap()[0].text, "hello");
        assert!(store.outbox.is_empty());
    }
}
