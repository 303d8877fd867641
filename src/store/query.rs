//! Reading history: runs by id, prefix or page, their plans, events and logs, the queue,
//! the deployments the reports count.

use super::*;

impl Store {
    /// The plan run `run_id` ran, if it was kept (runs since plans were kept).
    pub fn plan(&self, run_id: &str) -> Result<Option<crate::pipeline::Plan>, StoreError> {
        match self.plans.get(run_id.as_bytes())? {
            Some(bytes) => decode(run_id.as_bytes(), &bytes).map(Some),
            None => Ok(None),
        }
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
