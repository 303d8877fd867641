//! The sled store: runs (materialised views), their append-only events, and stage logs.
//! Every multi-key write is one sled transaction; the store carries a schema version.

mod lock;
mod migrate;
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

    fn interrupt_orphaned_runs(&self) -> Result<(), StoreError> {
        // A run left `promoting` is not interrupted: its promotion was claimed and must be
        // finished (`promotions_to_resume`), not abandoned.
        for id in self.active.iter().keys() {
            let run = self.run(&String::from_utf8_lossy(&id?))?;
            if run.state == RunState::Running {
                self.append(
                    &run.id,
                    &Event::now(EventKind::RunFinished {
                        state: RunState::Interrupted,
                        message: Some(format!("the gantry process driving this run (pid {}) stopped before it finished", run.pid)),
                    }),
                )?;
            }
        }
        Ok(())
    }

    /// The plan run `run_id` ran, if it was kept (runs since plans were kept).
    pub fn plan(&self, run_id: &str) -> Result<Option<crate::pipeline::Plan>, StoreError> {
        match self.plans.get(run_id.as_bytes())? {
            Some(bytes) => decode(run_id.as_bytes(), &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// `create_run`, keeping the plan it runs (for `gantry rerun`).
    pub fn create_run_with_plan(&self, run: &RunRecord, plan: &crate::pipeline::Plan) -> Result<(), StoreError> {
        match self.create(run, Some(plan), None)? {
            Ok(()) => Ok(()),
            Err(_) => Err(StoreError::Duplicate(run.id.clone())),
        }
    }

    /// Stores a new run together with its creation event.
    pub fn create_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        match self.create(run, None, None)? {
            Ok(()) => Ok(()),
            Err(existing) => Err(StoreError::Duplicate(existing)),
        }
    }

    /// Stores a new run in the service's queue with the plan it will run. With `seen`
    /// (`project`, `sha`), a commit the project already took is refused: the answer is
    /// then `Err(id of the run that took it)` and nothing is written.
    pub fn enqueue(
        &self,
        run: &RunRecord,
        plan: Option<&crate::pipeline::Plan>,
        seen: Option<(&str, &str)>,
    ) -> Result<Result<(), String>, StoreError> {
        let created = self.create(run, plan, seen.map(|(project, sha)| seen_key(project, sha)))?;
        // A trigger is answered "queued" only once the queue has it on disk.
        if created.is_ok() {
            self.flush()?;
        }
        Ok(created)
    }

    fn create(
        &self,
        run: &RunRecord,
        plan: Option<&crate::pipeline::Plan>,
        seen_key: Option<Vec<u8>>,
    ) -> Result<Result<(), String>, StoreError> {
        let created = Event::now(EventKind::RunCreated { pipeline: run.pipeline.clone(), commit: run.commit.sha.clone() });
        let mut record = run.clone();
        let seq = record.events;
        record.apply(&created);
        let trees = (&self.runs, &self.outbox, &self.active, &self.queue, &self.seen, &self.plans);
        let result = trees.transaction(|(runs, events, active, queue, seen, plans)| {
            if runs.get(record.id.as_bytes())?.is_some() {
                return Err(ConflictableTransactionError::Abort(StoreError::Duplicate(record.id.clone())));
            }
            if let Some(key) = &seen_key {
                if let Some(existing) = seen.get(key)? {
                    return Ok(Err(String::from_utf8_lossy(&existing).into_owned()));
                }
                seen.insert(key.clone(), record.id.as_bytes())?;
            }
            runs.insert(record.id.as_bytes(), encode(&record))?;
            events.insert(event_key(&record.id, seq), encode(&created))?;
            if let Some(plan) = plan {
                plans.insert(record.id.as_bytes(), encode(plan))?;
            }
            match record.state {
                RunState::Queued => {
                    queue.insert(record.id.as_bytes(), encode(&plan))?;
                }
                s if !s.is_terminal() => {
                    active.insert(record.id.as_bytes(), &[])?;
                }
                _ => {}
            }
            Ok(Ok(()))
        });
        let outcome = flatten(result)?;
        if outcome.is_ok() {
            self.deliver(&[event_key(&record.id, seq)])?;
        }
        self.flush()?;
        Ok(outcome)
    }

    /// Writes finished runs with their whole histories (events folded into each record,
    /// deployments indexed) in one batch per tree and one flush: for importing history and
    /// for seeding benchmarks, not for live runs. Runs already in the store are refused.
    pub fn import(&self, runs: &[(RunRecord, Vec<Event>)]) -> Result<(), StoreError> {
        let (mut run_batch, mut event_batch, mut deployment_batch) =
            (sled::Batch::default(), sled::Batch::default(), sled::Batch::default());
        for (run, events) in runs {
            if self.runs.contains_key(run.id.as_bytes())? {
                return Err(StoreError::Duplicate(run.id.clone()));
            }
            let mut record = run.clone();
            for event in events {
                event_batch.insert(event_key(&record.id, record.events), encode(event));
                record.apply(event);
                if let EventKind::StageResult { result: StageResult::Deployment(d), .. } = &event.kind {
                    deployment_batch.insert(deployment_key(d), encode(d));
                }
            }
            if !record.state.is_terminal() {
                return Err(StoreError::Corrupt {
                    key: record.id.clone(),
                    source: serde::de::Error::custom("only finished runs can be imported"),
                });
            }
            run_batch.insert(record.id.as_bytes(), encode(&record));
        }
        let history = self.history()?;
        history.events.apply_batch(event_batch)?;
        history.db.flush()?;
        self.deployments.apply_batch(deployment_batch)?;
        // The runs last: a run is only visible once its events are there.
        self.runs.apply_batch(run_batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// Queued runs, oldest first, with the plans they will run.
    pub fn queued(&self) -> Result<Vec<(RunRecord, crate::pipeline::Plan)>, StoreError> {
        let mut out = Vec::new();
        for item in self.queue.iter() {
            let (key, bytes) = item?;
            let plan: Option<crate::pipeline::Plan> = decode(&key, &bytes)?;
            let run = self.run(&String::from_utf8_lossy(&key))?;
            if let Some(plan) = plan {
                out.push((run, plan));
            }
        }
        Ok(out)
    }

    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }

    /// The run that took `sha` for `project`, if any.
    pub fn seen(&self, project: &str, sha: &str) -> Result<Option<String>, StoreError> {
        Ok(self.seen.get(seen_key(project, sha))?.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Takes a queued run out of the queue and marks it running, driven by this process.
    /// Durable before it returns: the run's Docker objects are created only after the
    /// store says it is running, so a crash leaves it `interrupted` (and swept), never
    /// `queued` with objects of a first start lying about.
    /// None when the run left the queue meanwhile (cancelled).
    pub fn start_queued(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        let started = Event::now(EventKind::RunStarted { pid: std::process::id() });
        let record = self.append_checked(run_id, |r| if r.state == RunState::Queued { Ok(vec![started.clone()]) } else { Err(()) })?;
        self.flush()?;
        Ok(record.ok())
    }

    /// Appends an event and folds it into the run's record, atomically.
    pub fn append(&self, run_id: &str, event: &Event) -> Result<RunRecord, StoreError> {
        let finished = matches!(event.kind, EventKind::RunFinished { .. });
        let record = self.append_checked(run_id, |_| Ok::<_, StoreError>(vec![event.clone()]))??;
        if finished {
            self.flush()?;
        }
        Ok(record)
    }

    /// Reads the run, asks `decide` which events follow from it, and appends them, all in
    /// one transaction: the check and the write cannot be separated by another writer.
    /// `decide` may run more than once (sled retries on conflict), so it must only compute.
    /// A refusal from `decide` changes nothing and comes back as the inner error.
    pub fn append_checked<E>(
        &self,
        run_id: &str,
        decide: impl Fn(&RunRecord) -> Result<Vec<Event>, E>,
    ) -> Result<Result<RunRecord, E>, StoreError> {
        let trees = (&self.runs, &self.outbox, &self.active, &self.unswept, &self.deployments, &self.approvals, &self.queue);
        let result = trees.transaction(|(runs, events, active, unswept, deployments, approvals, queue)| {
            let bytes = runs
                .get(run_id.as_bytes())?
                .ok_or_else(|| ConflictableTransactionError::Abort(StoreError::NoSuchRun(run_id.to_string())))?;
            let mut record: RunRecord = decode(run_id.as_bytes(), &bytes).map_err(ConflictableTransactionError::Abort)?;
            let new = match decide(&record) {
                Ok(new) => new,
                Err(refused) => return Ok(Err(refused)),
            };
            for event in &new {
                let seq = record.events;
                record.apply(event);
                events.insert(event_key(run_id, seq), encode(event))?;
                match &event.kind {
                    EventKind::RunFinished { .. } => {
                        active.remove(run_id.as_bytes())?;
                        if !record.swept {
                            unswept.insert(run_id.as_bytes(), &[])?;
                        }
                    }
                    EventKind::PromotionClaimed { .. } => {
                        active.insert(run_id.as_bytes(), &[])?;
                    }
                    EventKind::RunStarted { .. } => {
                        active.insert(run_id.as_bytes(), &[])?;
                    }
                    EventKind::Swept { .. } => {
                        unswept.remove(run_id.as_bytes())?;
                    }
                    EventKind::StageResult { result: StageResult::Deployment(d), .. } => {
                        deployments.insert(deployment_key(d), encode(d))?;
                    }
                    _ => {}
                }
            }
            if record.state != RunState::Queued {
                queue.remove(run_id.as_bytes())?;
            }
            runs.insert(run_id.as_bytes(), encode(&record))?;
            let pending =
                record.approval.as_ref().is_some_and(|a| a.state == ApprovalState::Pending) && record.state == RunState::AwaitingApproval;
            if pending {
                approvals.insert(run_id.as_bytes(), &[])?;
            } else if record.approval.is_some() {
                approvals.remove(run_id.as_bytes())?;
            }
            Ok(Ok(record))
        });
        let outcome = flatten(result)?;
        if outcome.is_ok() {
            // This call's events, and any an earlier one left behind.
            let keys: Vec<Vec<u8>> =
                self.outbox.scan_prefix(run_id.as_bytes()).keys().map(|k| k.map(|k| k.to_vec())).collect::<Result<_, _>>()?;
            self.deliver(&keys)?;
        }
        Ok(outcome)
    }

    /// Runs whose promotion waits for approval, oldest first.
    pub fn pending_approvals(&self) -> Result<Vec<RunRecord>, StoreError> {
        let mut out = Vec::new();
        for id in self.approvals.iter().keys() {
            out.push(self.run(&String::from_utf8_lossy(&id?))?);
        }
        Ok(out)
    }

    /// Promotions that were claimed by a process that is gone (it held the data dir's
    /// lock, which is ours now): they must be finished.
    pub fn promotions_to_resume(&self) -> Result<Vec<RunRecord>, StoreError> {
        let mut out = Vec::new();
        for id in self.active.iter().keys() {
            let run = self.run(&String::from_utf8_lossy(&id?))?;
            if run.state == RunState::Promoting {
                out.push(run);
            }
        }
        Ok(out)
    }

    /// Records the expiry of every pending approval whose time is up; returns their runs.
    pub fn expire_approvals(&self, now: chrono::DateTime<chrono::Utc>) -> Result<Vec<String>, StoreError> {
        let mut expired = Vec::new();
        for run in self.pending_approvals()? {
            let outcome = self.append_checked(&run.id, |r| match &r.approval {
                Some(a) if a.is_expired(now) && r.state == RunState::AwaitingApproval => Ok(vec![
                    Event::now(EventKind::ApprovalExpired),
                    Event::now(EventKind::RunFinished {
                        state: RunState::Failed,
                        message: Some(format!("nobody approved the promotion to {} before it expired", a.request.environment)),
                    }),
                ]),
                _ => Err(()),
            })?;
            if outcome.is_ok() {
                expired.push(run.id);
            }
        }
        if !expired.is_empty() {
            self.flush()?;
        }
        Ok(expired)
    }

    /// Asks a queued or running run to stop on behalf of `by`: a queued one ends here and
    /// now (`cancelled by ...`); for a running one the request is recorded and the process
    /// driving it stops it. `Err(state)` when it is neither.
    pub fn cancel(&self, run_id: &str, by: &str) -> Result<Result<RunRecord, RunState>, StoreError> {
        let outcome = self.append_checked(run_id, |r| match r.state {
            RunState::Queued => Ok(vec![
                Event::now(EventKind::CancelRequested { by: by.to_string() }),
                Event::now(EventKind::RunFinished { state: RunState::Cancelled, message: None }),
            ]),
            RunState::Running => Ok(vec![Event::now(EventKind::CancelRequested { by: by.to_string() })]),
            other => Err(other),
        })?;
        self.flush()?;
        Ok(outcome)
    }

    /// Marks a pending approval superseded and ends its run so, if it is still pending.
    /// Returns whether it was.
    pub fn supersede(&self, run_id: &str, reason: &str) -> Result<bool, StoreError> {
        let outcome = self.append_checked(run_id, |r| match &r.approval {
            Some(a) if a.state == crate::approval::ApprovalState::Pending && r.state == RunState::AwaitingApproval => Ok(vec![
                Event::now(EventKind::ApprovalSuperseded { reason: reason.to_string() }),
                Event::now(EventKind::RunFinished { state: RunState::Superseded, message: Some(format!("superseded: {reason}")) }),
            ]),
            _ => Err(()),
        })?;
        if outcome.is_ok() {
            self.flush()?;
        }
        Ok(outcome.is_ok())
    }

    /// Appends log lines of a run; one atomic batch.
    pub fn append_logs(&self, run_id: &str, lines: &[LogLine]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for line in lines {
            let mut key = run_id.as_bytes().to_vec();
            key.extend_from_slice(&self.db.generate_id()?.to_be_bytes());
            batch.insert(key, encode(line));
        }
        self.history()?.logs.apply_batch(batch)?;
        Ok(())
    }

    pub fn flush(&self) -> Result<(), StoreError> {
        // History first: an index that names events the history lost would be worse than
        // events the index does not count yet (the outbox redelivers those).
        if let Some(h) = self.history.get() {
            h.db.flush()?;
            let done = std::mem::take(&mut *self.delivered.lock().expect("delivered keys"));
            if !done.is_empty() {
                let mut out = sled::Batch::default();
                for key in done {
                    out.remove(key);
                }
                self.outbox.apply_batch(out)?;
            }
        }
        self.db.flush()?;
        Ok(())
    }

    pub fn run(&self, id: &str) -> Result<RunRecord, StoreError> {
        let bytes = self.runs.get(id.as_bytes())?.ok_or_else(|| StoreError::NoSuchRun(id.to_string()))?;
        decode(id.as_bytes(), &bytes)
    }

    /// Finds a run by full id, unique prefix, or `latest`.
    pub fn find_run(&self, query: &str) -> Result<RunRecord, StoreError> {
        if query == "latest" || query == "last" {
            return self.list_runs(1)?.into_iter().next().ok_or_else(|| StoreError::NoSuchRun(query.to_string()));
        }
        let prefix = query.to_ascii_lowercase();
        let mut found = Vec::new();
        for item in self.runs.scan_prefix(prefix.as_bytes()).take(6) {
            let (key, bytes) = item?;
            found.push(decode::<RunRecord>(&key, &bytes)?);
        }
        match found.len() {
            0 => Err(StoreError::NoSuchRun(query.to_string())),
            1 => Ok(found.remove(0)),
            _ => Err(StoreError::Ambiguous { prefix: query.to_string(), candidates: found.into_iter().map(|r| r.id).collect() }),
        }
    }

    /// Newest first.
    pub fn list_runs(&self, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.runs.iter().rev().take(limit) {
            let (key, bytes) = item?;
            out.push(decode(&key, &bytes)?);
        }
        Ok(out)
    }

    /// A page of runs, newest first, older than `before` (a run id) when given, keeping
    /// those `keep` accepts; the id to pass as `before` for the next page, if there is one.
    pub fn runs_page(
        &self,
        before: Option<&str>,
        limit: usize,
        keep: impl Fn(&RunRecord) -> bool,
    ) -> Result<(Vec<RunRecord>, Option<String>), StoreError> {
        let range = match before {
            Some(b) => self.runs.range(..b.as_bytes().to_vec()),
            None => self.runs.range::<Vec<u8>, _>(..),
        };
        let mut out = Vec::new();
        for item in range.rev() {
            let (key, bytes) = item?;
            let run: RunRecord = decode(&key, &bytes)?;
            if !keep(&run) {
                continue;
            }
            if out.len() == limit {
                let next = out.last().map(|r: &RunRecord| r.id.clone());
                return Ok((out, next));
            }
            out.push(run);
        }
        Ok((out, None))
    }

    /// Log lines of a run stored after the position `after` (None: from the start), and the
    /// position of the last one returned: live views follow a run's output with this.
    pub fn logs_after(&self, run_id: &str, after: Option<&[u8]>) -> Result<(Vec<LogLine>, Option<Vec<u8>>), StoreError> {
        let start = match after {
            Some(k) => std::ops::Bound::Excluded(k.to_vec()),
            None => std::ops::Bound::Included(run_id.as_bytes().to_vec()),
        };
        let mut out = Vec::new();
        let mut last = after.map(<[u8]>::to_vec);
        for item in self.history()?.logs.range((start, std::ops::Bound::Unbounded)) {
            let (key, bytes) = item?;
            if !key.starts_with(run_id.as_bytes()) {
                break;
            }
            if key.len() == run_id.len() + 8 {
                out.push(decode(&key, &bytes)?);
                last = Some(key.to_vec());
            }
        }
        Ok((out, last))
    }

    /// At most `limit` of a run's log lines after position `after` (None: from the
    /// start), of one stage or all, each with its position; `more` says whether others
    /// follow. A position is the line's sequence number in the store, increasing in the
    /// order lines were recorded: the API's page cursor and the SSE stream's event id.
    pub fn log_page(&self, run_id: &str, stage: Option<&str>, after: Option<u64>, limit: usize) -> Result<LogPage, StoreError> {
        let prefix = run_id.as_bytes();
        let start = match after {
            Some(seq) => std::ops::Bound::Excluded([prefix, &seq.to_be_bytes()].concat()),
            None => std::ops::Bound::Included(prefix.to_vec()),
        };
        let mut page = LogPage::default();
        for item in self.history()?.logs.range((start, std::ops::Bound::Unbounded)) {
            let (key, bytes) = item?;
            if !key.starts_with(prefix) {
                break;
            }
            let Some(seq) = key[prefix.len()..].try_into().ok().map(u64::from_be_bytes) else {
                continue;
            };
            let line: LogLine = decode(&key, &bytes)?;
            if stage.is_some_and(|s| s != line.stage) {
                continue;
            }
            if page.lines.len() == limit {
                page.more = true;
                break;
            }
            page.lines.push((seq, line));
        }
        Ok(page)
    }

    pub fn pending_approval_count(&self) -> usize {
        self.approvals.len()
    }

    pub fn events(&self, run_id: &str) -> Result<Vec<Event>, StoreError> {
        let mut out = Vec::new();
        // Delivered events, and any still in the outbox: all of them, in order.
        let mut found = std::collections::BTreeMap::new();
        for item in self.history()?.events.scan_prefix(run_id.as_bytes()).chain(self.outbox.scan_prefix(run_id.as_bytes())) {
            let (key, bytes) = item?;
            found.insert(key, bytes);
        }
        for (key, bytes) in found {
            if key.len() == run_id.len() + 8 {
                out.push(decode(&key, &bytes)?);
            }
        }
        Ok(out)
    }

    pub fn logs(&self, run_id: &str, stage: Option<&str>) -> Result<Vec<LogLine>, StoreError> {
        let mut out = Vec::new();
        for item in self.history()?.logs.scan_prefix(run_id.as_bytes()) {
            let (key, bytes) = item?;
            if key.len() != run_id.len() + 8 {
                continue;
            }
            let line: LogLine = decode(&key, &bytes)?;
            if stage.is_none_or(|s| s == line.stage) {
                out.push(line);
            }
        }
        Ok(out)
    }

    /// Deployments, oldest first, optionally of one environment only.
    pub fn deployments(&self, environment: Option<&str>) -> Result<Vec<Deployment>, StoreError> {
        let mut out = Vec::new();
        for item in self.deployments.iter() {
            let (key, bytes) = item?;
            let d: Deployment = decode(&key, &bytes)?;
            if environment.is_none_or(|e| e == d.environment) {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Finished runs whose Docker objects may still exist (their process died).
    pub fn unswept_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let mut out = Vec::new();
        for id in self.unswept.iter().keys() {
            out.push(self.run(&String::from_utf8_lossy(&id?))?);
        }
        Ok(out)
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
