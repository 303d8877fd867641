//! What an approval is, as a run's events carry it: the request a promote stage leaves
//! behind (everything needed to perform the promotion later, in another process) and the
//! decisions of release managers on it. Plain data at the bottom; the workflow that
//! decides who may decide is `approval::decide`, above the store.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Role;
use crate::pipeline::spec::{ApprovalRule, DeploySpec, VerifySpec};

/// A promotion that passed its gate and waits for approval: everything needed to perform
/// it later, in another process, exactly as the run would have (no secrets in here:
/// deployments take none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    /// The promote stage that asks.
    pub stage: String,
    pub from: String,
    pub environment: String,
    pub rule: ApprovalRule,
    pub app: String,
    /// The image that passed, as people know it (its tag), and by id.
    pub image: String,
    pub image_id: String,
    /// The deployment to make: `image` is the image id that passed.
    pub deploy: DeploySpec,
    pub verify: Option<VerifySpec>,
    /// The run's variable values, for the deployment's settings.
    pub vars: BTreeMap<String, String>,
    /// The stage's timeout, for the promotion when it happens.
    pub timeout_secs: u64,
    pub requested_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The commits the promotion brings into the environment, by author.
    #[serde(default)]
    pub change: ChangeSet,
    /// The repository's branches that held the commit when the request was made, among
    /// those the operator's rules name: the decision checks them again.
    #[serde(default)]
    pub branches: Vec<String>,
}

/// What a promotion changes: the candidate's commits that the target environment does not
/// run yet. With `forbid_author`, none of their authors may approve, so a change cannot
/// hide behind a later commit of someone else.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChangeSet {
    /// The commit live in the target when the request was made (None: nothing was live,
    /// or the repository does not know it, and the change is the candidate's history).
    pub since: Option<String>,
    /// How many commits the change holds.
    pub commits: u32,
    /// Each author once, with one of their commits in the change.
    pub authors: Vec<ChangeAuthor>,
    /// Why only the head commit's author is known, when the repository could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeAuthor {
    pub email: String,
    pub name: String,
    pub commit: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    Approve,
    Reject,
}

/// One person's decision, kept forever: who, when, what, why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub user: String,
    pub role: Role,
    pub kind: DecisionKind,
    /// The approver's comment, or the reason for a rejection.
    pub comment: Option<String>,
    pub at: DateTime<Utc>,
}
