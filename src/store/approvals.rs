//! The store's side of approvals: runs waiting for a decision, promotions to resume after
//! a crash, and requests past their expiry.

use super::*;

impl Store {
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

    pub fn pending_approval_count(&self) -> usize {
        self.approvals.len()
    }
}
