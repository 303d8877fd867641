//! Writing history: runs created or queued, events appended (each with the run view it
//! folds into, in one transaction), cancellations, supersessions, log lines, flushes.

use super::*;

impl Store {
    pub(super) fn interrupt_orphaned_runs(&self) -> Result<(), StoreError> {
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

    /// Takes a queued run out of the queue and marks it running, driven by this process.
    /// Durable before it returns: the run's Docker objects are created only after the
    /// store says it is running, so a crash leaves it `interrupted` (and swept), never
    /// `queued` with objects of a first start lying about.
    /// None when the run left the queue meanwhile (cancelled).
    pub fn start_queued(&self, run_id: &str, engine: Option<&str>) -> Result<Option<RunRecord>, StoreError> {
        let started = Event::now(EventKind::RunStarted { pid: std::process::id(), engine: engine.map(str::to_string) });
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
}
