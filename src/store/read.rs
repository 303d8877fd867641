//! What the read commands need of history, whether they hold the store themselves or ask
//! the process that does (`crate::control`): one trait, two answers, the same output.

use crate::events::{Deployment, LogLine};
use crate::store::{RunRecord, Store, StoreError};

/// A log cursor: the key of the last line read, opaque to callers.
pub type Cursor = Vec<u8>;

pub trait ReadHistory {
    /// The newest `limit` runs, newest first.
    fn list_runs(&self, limit: usize) -> Result<Vec<RunRecord>, StoreError>;
    /// A run by id, unique prefix, or `latest`.
    fn find_run(&self, query: &str) -> Result<RunRecord, StoreError>;
    /// A run's stored output, of one stage or all.
    fn logs(&self, run_id: &str, stage: Option<&str>) -> Result<Vec<LogLine>, StoreError>;
    /// Output after `after` (from the start without), and the cursor to go on from.
    fn logs_after(&self, run_id: &str, after: Option<&[u8]>) -> Result<(Vec<LogLine>, Option<Cursor>), StoreError>;
    fn pending_approvals(&self) -> Result<Vec<RunRecord>, StoreError>;
    /// Deployments by finish time, of one environment or all.
    fn deployments(&self, environment: Option<&str>) -> Result<Vec<Deployment>, StoreError>;
}

impl ReadHistory for Store {
    fn list_runs(&self, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        Store::list_runs(self, limit)
    }
    fn find_run(&self, query: &str) -> Result<RunRecord, StoreError> {
        Store::find_run(self, query)
    }
    fn logs(&self, run_id: &str, stage: Option<&str>) -> Result<Vec<LogLine>, StoreError> {
        Store::logs(self, run_id, stage)
    }
    fn logs_after(&self, run_id: &str, after: Option<&[u8]>) -> Result<(Vec<LogLine>, Option<Cursor>), StoreError> {
        Store::logs_after(self, run_id, after)
    }
    fn pending_approvals(&self) -> Result<Vec<RunRecord>, StoreError> {
        Store::pending_approvals(self)
    }
    fn deployments(&self, environment: Option<&str>) -> Result<Vec<Deployment>, StoreError> {
        Store::deployments(self, environment)
    }
}
