//! The materialised view of one run, kept beside its events and updated in the same
//! transaction. `apply` is the only way it changes, so it can always be rebuilt from events.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::approval::{Approval, ApprovalState, DecisionKind};
use crate::commit::CommitInfo;
use crate::events::{AttemptOutcome, Event, EventKind, RunState, StageResult, StageState};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub pipeline: String,
    /// The pipeline file, as the user named it.
    pub source: String,
    pub repo: String,
    pub commit: CommitInfo,
    pub state: RunState,
    pub created_at: DateTime<Utc>,
    /// When it left the queue (None: it never waited in one, see `created_at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub message: Option<String>,
    pub stages: Vec<StageRecord>,
    /// Process that drives the run (for diagnostics only; liveness comes from the store lock).
    pub pid: u32,
    /// Whether the run's Docker objects are known to be gone.
    pub swept: bool,
    /// How many events the run has; the next event's sequence number.
    pub events: u64,
    /// Who started the run (`gantry run --as`, else the login name): with `forbid_author`
    /// they may not approve its promotion.
    #[serde(default)]
    pub triggered_by: Option<String>,
    /// The service's project the run belongs to (None for `gantry run`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// A gated promotion's request, decisions and state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// The forge login whose push started the run (webhooks): with `forbid_author` the
    /// user of that login may not approve its promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed_by: Option<Pusher>,
    /// Values given for the pipeline's variables (`--var`), for a rerun.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub vars: std::collections::BTreeMap<String, String>,
    /// The run this one runs again (`gantry rerun`), if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<String>,
    /// A rerun of only what failed (`--failed`): the rest is taken over from `rerun_of`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rerun_failed: bool,
    /// Who asked for the run to stop, if anyone did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_by: Option<String>,
    /// The engine of the operator's pool the run was placed on (`engines:`), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// For a run queued again because its engine stopped answering: that engine (a run is
    /// retried so once at most).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_loss_of: Option<String>,
}

/// Who pushed a commit, as the forge's webhook named them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pusher {
    /// `github`, `gitlab` or `gitea`.
    pub forge: String,
    pub login: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    pub name: String,
    pub state: StageState,
    pub attempts: u32,
    pub exit_code: Option<i64>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub message: Option<String>,
    /// What the stage produced (image, environment, deployment, report), if its kind does.
    #[serde(default)]
    pub result: Option<StageResult>,
    /// A promote stage's gate verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<crate::gate::verdict::Verdict>,
    /// A promote stage's verification after going live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<crate::gate::verdict::Verdict>,
}

impl StageRecord {
    pub fn pending(name: &str) -> Self {
        StageRecord {
            name: name.to_string(),
            state: StageState::Pending,
            attempts: 0,
            exit_code: None,
            started_at: None,
            finished_at: None,
            message: None,
            result: None,
            verdict: None,
            verification: None,
        }
    }

    pub fn duration(&self) -> Option<chrono::Duration> {
        Some(self.finished_at.unwrap_or_else(Utc::now) - self.started_at?)
    }
}

impl RunRecord {
    /// A run about to start: every stage pending, driven by this process.
    pub fn new(id: String, plan: &crate::pipeline::Plan, repo: String, commit: CommitInfo) -> Self {
        RunRecord {
            id,
            pipeline: plan.name.clone(),
            source: plan.source.clone(),
            repo,
            commit,
            state: RunState::Running,
            created_at: Utc::now(),
            started_at: None,
            finished_at: None,
            message: None,
            stages: plan.stages.iter().map(|s| StageRecord::pending(&s.name)).collect(),
            pid: std::process::id(),
            swept: false,
            events: 0,
            triggered_by: None,
            project: None,
            approval: None,
            pushed_by: None,
            cancelled_by: None,
            vars: Default::default(),
            rerun_of: None,
            rerun_failed: false,
            engine: None,
            retry_after_loss_of: None,
        }
    }

    /// The local repository the run's commit can be read from: its path, or for a service
    /// project following a URL, the mirror under the data dir.
    pub fn local_repo(&self, data_dir: &std::path::Path) -> Option<std::path::PathBuf> {
        if self.repo.contains("://") || self.repo.starts_with("git@") {
            return Some(data_dir.join("repos").join(format!("{}.git", self.project.as_deref()?)));
        }
        Some(std::path::PathBuf::from(&self.repo))
    }

    pub fn stage_mut(&mut self, name: &str) -> Option<&mut StageRecord> {
        self.stages.iter_mut().find(|s| s.name == name)
    }

    /// How long it ran (or has been running), queueing not included.
    pub fn duration(&self) -> chrono::Duration {
        let from = self.started_at.unwrap_or(self.created_at);
        match (self.finished_at, self.state) {
            (_, RunState::Queued) => chrono::Duration::zero(),
            (Some(end), _) => (end - from).max(chrono::Duration::zero()),
            (None, _) => Utc::now() - from,
        }
    }

    fn finish_stage(&mut self, name: &str, state: StageState, message: String, at: DateTime<Utc>) {
        if let Some(s) = self.stage_mut(name) {
            s.state = state;
            s.message = Some(message);
            s.finished_at = Some(at);
        }
    }

    /// Folds one event into the view. Unknown stages are ignored rather than invented.
    pub fn apply(&mut self, event: &Event) {
        self.events += 1;
        match &event.kind {
            EventKind::RunCreated { .. } => {}
            EventKind::RunStarted { pid, engine } => {
                self.state = RunState::Running;
                self.pid = *pid;
                if engine.is_some() {
                    self.engine = engine.clone();
                }
                self.started_at = Some(event.at);
            }
            EventKind::StageStarted { stage, attempt } => {
                if let Some(s) = self.stage_mut(stage) {
                    s.state = StageState::Running;
                    s.attempts = *attempt;
                    s.started_at.get_or_insert(event.at);
                    s.message = None;
                }
            }
            EventKind::AttemptFinished { stage, attempt, result, will_retry } => {
                self.attempt_finished(event.at, stage, *attempt, result, *will_retry)
            }
            EventKind::StageSkipped { stage, reason } => {
                if let Some(s) = self.stage_mut(stage) {
                    s.state = StageState::Skipped;
                    s.message = Some(reason.clone());
                    s.finished_at = Some(event.at);
                }
            }
            EventKind::RunFinished { state, message } => self.run_finished(event.at, *state, message.clone()),
            EventKind::GateJudged { stage, verdict } => {
                if let Some(s) = self.stage_mut(stage) {
                    s.verdict = Some(verdict.clone());
                }
            }
            EventKind::Verified { stage, verdict } => {
                if let Some(s) = self.stage_mut(stage) {
                    s.verification = Some(verdict.clone());
                }
            }
            EventKind::StageResult { stage, result } => {
                if let Some(s) = self.stage_mut(stage) {
                    s.result = Some(result.clone());
                }
            }
            EventKind::Swept { .. } => self.swept = true,
            EventKind::ApprovalRequested { .. }
            | EventKind::ApprovalDecided { .. }
            | EventKind::PromotionClaimed { .. }
            | EventKind::ApprovalSuperseded { .. }
            | EventKind::ApprovalExpired => self.apply_approval(event),
            EventKind::CancelRequested { by } => {
                self.cancelled_by = Some(by.clone());
            }
        }
    }

    /// A stage's attempt ended: the stage ends with it unless it will be retried; an
    /// approved promotion's stage ending says how the promotion went.
    fn attempt_finished(&mut self, at: DateTime<Utc>, stage: &str, attempt: u32, result: &AttemptOutcome, will_retry: bool) {
        if let Some(s) = self.stage_mut(stage) {
            s.attempts = attempt;
            s.exit_code = result.exit_code();
            s.message = match result {
                AttemptOutcome::Succeeded => None,
                other => Some(other.describe()),
            };
            if !will_retry {
                s.state = result.stage_state();
                s.finished_at = Some(at);
            }
        }
        if let Some(a) = self.approval.as_mut().filter(|a| a.request.stage == stage && a.state == ApprovalState::Promoting) {
            if !will_retry {
                a.state = match result {
                    AttemptOutcome::Succeeded => ApprovalState::Promoted,
                    _ => ApprovalState::PromotionFailed,
                };
            }
        }
    }

    /// The run ended: no stage is left claiming to be alive, and a pending approval that
    /// the end did not wait for is withdrawn.
    fn run_finished(&mut self, at: DateTime<Utc>, state: RunState, message: Option<String>) {
        if let Some(a) = self.approval.as_mut().filter(|a| a.state == ApprovalState::Pending) {
            if state != RunState::AwaitingApproval {
                a.state = ApprovalState::Withdrawn;
            }
        }
        self.state = state;
        self.message = match (&self.cancelled_by, state) {
            (Some(by), RunState::Cancelled) => Some(format!("cancelled by {by}")),
            _ => message,
        };
        self.finished_at = Some(at);
        // A run that ends leaves no stage claiming to be alive.
        let leftover = match state {
            RunState::Interrupted => StageState::Interrupted,
            _ => StageState::Cancelled,
        };
        for s in &mut self.stages {
            if !s.state.is_terminal() {
                if s.state == StageState::Running {
                    s.finished_at = Some(at);
                }
                s.state = if s.state == StageState::Pending && state != RunState::Interrupted { StageState::Skipped } else { leftover };
            }
        }
    }

    /// The approval's own events: requested, decided, claimed, superseded, expired.
    fn apply_approval(&mut self, event: &Event) {
        match &event.kind {
            EventKind::ApprovalRequested { request } => self.approval = Some(Approval::new(request.clone())),
            EventKind::ApprovalDecided { decision } => {
                let Some(a) = self.approval.as_mut() else {
                    return;
                };
                a.record(decision);
                if decision.kind == DecisionKind::Reject {
                    let stage = a.request.stage.clone();
                    let why = format!("rejected by {}: {}", decision.user, decision.comment.clone().unwrap_or_default());
                    self.finish_stage(&stage, StageState::Failed, why, event.at);
                }
            }
            EventKind::PromotionClaimed { by, .. } => {
                if let Some(a) = self.approval.as_mut() {
                    a.state = ApprovalState::Promoting;
                    a.claimed_by = Some(by.clone());
                }
                self.state = RunState::Promoting;
                self.finished_at = None;
                self.message = None;
            }
            EventKind::ApprovalSuperseded { reason } => {
                let Some(a) = self.approval.as_mut() else {
                    return;
                };
                a.state = ApprovalState::Superseded;
                let stage = a.request.stage.clone();
                self.finish_stage(&stage, StageState::Skipped, format!("superseded: {reason}"), event.at);
            }
            EventKind::ApprovalExpired => {
                let Some(a) = self.approval.as_mut() else {
                    return;
                };
                a.state = ApprovalState::Expired;
                let stage = a.request.stage.clone();
                let why = match a.request.expires_at {
                    Some(at) => format!("nobody approved before the request expired at {}", at.format("%Y-%m-%d %H:%M UTC")),
                    None => "the request expired".to_string(),
                };
                self.finish_stage(&stage, StageState::Failed, why, event.at);
            }
            _ => {}
        }
    }
}
