//! The vocabulary of state changes. Executors and the scheduler emit these; only the
//! recorder writes them to the store, and `RunRecord::apply` folds them into a run's view.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a run stands. Terminal states never change again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Waiting in the service's queue for a free slot.
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// The process driving the run died (kill -9, power loss); found by the next gantry command.
    Interrupted,
    /// Every stage is done and a promotion waits for a release manager (`gantry approvals`).
    AwaitingApproval,
    /// Approved: the promotion is under way, in the approver's process. If that process
    /// dies, the next gantry command finishes it.
    Promoting,
    /// Its promotion waited for approval until a newer version went live in the target:
    /// promoting it now would roll that back. Not pending, not failed.
    Superseded,
}

impl RunState {
    /// Whether no process drives the run and none will (a run awaiting approval may still
    /// be promoted, but nothing runs for it meanwhile).
    pub fn is_terminal(self) -> bool {
        !matches!(self, RunState::Queued | RunState::Running | RunState::Promoting)
    }

    pub fn name(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
            RunState::Interrupted => "interrupted",
            RunState::AwaitingApproval => "awaiting approval",
            RunState::Promoting => "promoting",
            RunState::Superseded => "superseded",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageState {
    Pending,
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    Skipped,
    Interrupted,
    /// A promote stage whose gate passed, waiting for approval.
    AwaitingApproval,
}

impl StageState {
    /// The state in words (`timed out`, `awaiting approval`).
    pub fn name(self) -> &'static str {
        match self {
            StageState::Pending => "pending",
            StageState::Running => "running",
            StageState::Succeeded => "succeeded",
            StageState::Failed => "failed",
            StageState::TimedOut => "timed out",
            StageState::Cancelled => "cancelled",
            StageState::Skipped => "skipped",
            StageState::Interrupted => "interrupted",
            StageState::AwaitingApproval => "awaiting approval",
        }
    }

    pub fn is_terminal(self) -> bool {
        !matches!(self, StageState::Pending | StageState::Running)
    }
    /// Whether stages that need this one may run after it.
    pub fn satisfies_needs(self) -> bool {
        matches!(self, StageState::Succeeded | StageState::Skipped)
    }
}

/// How one attempt of a stage ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum AttemptOutcome {
    Succeeded,
    /// The commands exited non-zero.
    Failed { exit_code: i64 },
    /// Gantry could not run the stage at all (missing image, Docker error...).
    Error { message: String },
    TimedOut { after_secs: u64 },
    Cancelled,
    /// The gate passed; the promotion waits for approval.
    AwaitingApproval { environment: String },
    /// The operator's rules forbid the change the stage would make; nothing was changed.
    /// Never retried: a retry would be refused the same way.
    Refused { message: String },
    /// The kernel's OOM killer ended it: it went over its memory limit (`memory`, bytes).
    OutOfMemory { exit_code: i64, memory: Option<u64> },
}

impl AttemptOutcome {
    pub fn stage_state(&self) -> StageState {
        match self {
            AttemptOutcome::Succeeded => StageState::Succeeded,
            AttemptOutcome::Failed { .. }
            | AttemptOutcome::Error { .. }
            | AttemptOutcome::Refused { .. }
            | AttemptOutcome::OutOfMemory { .. } => StageState::Failed,
            AttemptOutcome::TimedOut { .. } => StageState::TimedOut,
            AttemptOutcome::Cancelled => StageState::Cancelled,
            AttemptOutcome::AwaitingApproval { .. } => StageState::AwaitingApproval,
        }
    }

    pub fn exit_code(&self) -> Option<i64> {
        match self {
            AttemptOutcome::Failed { exit_code } | AttemptOutcome::OutOfMemory { exit_code, .. } => Some(*exit_code),
            AttemptOutcome::Succeeded => Some(0),
            _ => None,
        }
    }

    /// One sentence for people.
    pub fn describe(&self) -> String {
        match self {
            AttemptOutcome::Succeeded => "succeeded".into(),
            AttemptOutcome::Failed { exit_code } => format!("exited with code {exit_code}"),
            AttemptOutcome::Error { message } | AttemptOutcome::Refused { message } => message.clone(),
            AttemptOutcome::TimedOut { after_secs } => {
                format!("timed out after {}", humantime::format_duration(std::time::Duration::from_secs(*after_secs)))
            }
            AttemptOutcome::Cancelled => "cancelled".into(),
            // Said as what happened, not as a bare 137 that looks like a kill by anyone.
            AttemptOutcome::OutOfMemory { exit_code, memory } => format!(
                "killed for running out of memory: it went over its memory limit{} and the kernel's OOM killer ended it (exit code {exit_code}); \
                 ask for more with `limits: {{memory: ...}}` (up to the operator's maximum) or make it use less",
                memory.map(|m| format!(" of {}", crate::limits::bytes(m))).unwrap_or_default()
            ),
            AttemptOutcome::AwaitingApproval { environment } => format!("waits for approval to promote to {environment}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One state change of a run, as stored (append-only) in the events tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub kind: EventKind,
}

// A run emits a handful of these, so the size of the largest variant (a load summary)
// costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    RunCreated { pipeline: String, commit: String },
    /// A queued run got its slot and starts, driven by process `pid`, on `engine` of the
    /// operator's pool (when there is one).
    RunStarted {
        pid: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        engine: Option<String>,
    },
    StageStarted { stage: String, attempt: u32 },
    AttemptFinished { stage: String, attempt: u32, result: AttemptOutcome, will_retry: bool },
    StageSkipped { stage: String, reason: String },
    RunFinished { state: RunState, message: Option<String> },
    /// A gate's verdict: every check with its figure, threshold and pass/fail.
    GateJudged { stage: String, verdict: crate::gate::verdict::Verdict },
    /// The checks of a promotion's verification window, in the target environment.
    Verified { stage: String, verdict: crate::gate::verdict::Verdict },
    /// What a stage produced: an image, an environment, a deployment, a test report.
    StageResult { stage: String, result: StageResult },
    /// A promotion passed its gate and waits for approval.
    ApprovalRequested { request: crate::approval::ApprovalRequest },
    /// Someone approved or rejected it.
    ApprovalDecided { decision: crate::approval::Decision },
    /// The approval that completed the count: this process promotes, and no other will.
    PromotionClaimed { by: String, pid: u32 },
    /// Nobody decided before the request's expiry.
    ApprovalExpired,
    /// A newer version went live in the target; this promotion would roll it back.
    ApprovalSuperseded { reason: String },
    /// Someone asked for the run to stop (`gantry cancel`, the API, the dashboard).
    CancelRequested { by: String },
    /// Docker objects of the run were removed (after the run, or by a later sweep).
    Swept { containers: u32, networks: u32, volumes: u32 },
}

impl Event {
    pub fn now(kind: EventKind) -> Self {
        Event { at: Utc::now(), kind }
    }
}

/// A line of a stage's output, already masked. Stored in the logs tree, not as an event,
/// because there are many of them and nothing is derived from them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub at: DateTime<Utc>,
    pub stage: String,
    pub attempt: u32,
    pub stream: Stream,
    pub text: String,
}

/// What the scheduler sends to the recorder: state changes and output, in order.
#[allow(clippy::large_enum_variant)] // log lines dominate and are small; see EventKind
#[derive(Debug, Clone)]
pub enum Emitted {
    Event(Event),
    Log(LogLine),
}

/// What a finished stage of a kind other than `run` produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StageResult {
    Image { tag: String, image_id: String },
    Environment { environment: String, network: String, services: Vec<ServiceChange> },
    Deployment(Deployment),
    Smoke(crate::smoke::SmokeReport),
    /// A load run's figures and each threshold's verdict on them.
    Load {
        summary: crate::load::LoadSummary,
        thresholds: Vec<crate::gate::threshold::ThresholdResult>,
        /// Stopped early because a threshold failed (abort_on_fail).
        aborted: bool,
        /// APM checks measured over the load window.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        apm: Vec<crate::gate::verdict::Check>,
    },
}

/// What provisioning did to one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceChange {
    pub service: String,
    pub change: Change,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Already there with the same spec: left running, not restarted.
    Unchanged,
    Created,
    /// There with another spec, or stopped: replaced.
    Replaced,
    /// There but no longer in the spec: removed.
    Removed,
}

/// One deployment of an app version to an environment: the release reports are built on
/// these records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub environment: String,
    pub app: String,
    pub image: String,
    pub image_id: String,
    pub commit: String,
    pub commit_time: DateTime<chrono::FixedOffset>,
    pub author: String,
    pub run_id: String,
    pub pipeline: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    #[serde(flatten)]
    pub outcome: DeploymentOutcome,
    /// Where the environment's app answers on the host, when published.
    pub url: Option<String>,
    /// Images of the versions this one replaced.
    pub replaced: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum DeploymentOutcome {
    Succeeded,
    /// The new version never became healthy; the previous one kept serving.
    Failed { reason: String },
    /// Went live, then breached its verification checks and was rolled back: a failed
    /// change, restored at `restored_at` (None if the rollback itself failed).
    FailedVerification { reason: String, restored_at: Option<DateTime<Utc>>, restored_to: Option<String> },
}
