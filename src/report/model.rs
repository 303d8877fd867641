//! What a release-frequency report says: the DORA four keys for one environment (and
//! optionally one pipeline) over a window, each with its band and its trend against the
//! window before, and the weekly series the charts draw. Plain data: computed by
//! `compute`, rendered by `render`.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

/// DORA performance bands, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Band {
    Elite,
    High,
    Medium,
    Low,
}

/// Whether a figure got better or worse than in the window before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trend {
    Better,
    Worse,
    Same,
    /// The window before had no figure to compare with.
    New,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub environment: String,
    pub pipeline: Option<String>,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Production deployments that went live in the window (the denominator of everything).
    pub deployments: usize,
    /// Deployments that never went live (unhealthy), listed apart: they changed nothing.
    pub refused: usize,
    pub frequency: Frequency,
    /// None when no deployment in the window brought a commit.
    pub lead_time: Option<LeadTime>,
    /// None when there were no deployments.
    pub change_failure: Option<ChangeFailure>,
    /// None when no deployment failed.
    pub time_to_restore: Option<TimeToRestore>,
    /// Weeks (Monday, UTC) of the window, oldest first, every week present.
    pub weeks: Vec<Week>,
    /// Every lead time sample (seconds) in the window, for the distribution chart.
    pub lead_time_samples: Vec<f64>,
    /// Where each band boundary comes from.
    pub sources: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Frequency {
    pub per_day: f64,
    pub per_week: f64,
    /// Days (UTC) with at least one deployment, per week: Four Keys' measure.
    pub deployment_days_per_week: f64,
    pub band: Band,
    pub trend: Trend,
    /// The previous window's `per_week`.
    pub previous_per_week: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeadTime {
    pub median_secs: f64,
    pub p90_secs: f64,
    /// Commits counted (every commit a deployment brought, once, at its first deployment).
    pub commits: usize,
    /// Deployments whose repository could not be read: their head commit alone counted.
    pub head_only: usize,
    pub band: Band,
    pub trend: Trend,
    pub previous_median_secs: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeFailure {
    pub failed: usize,
    pub total: usize,
    pub rate: f64,
    pub band: Band,
    pub trend: Trend,
    pub previous_rate: Option<f64>,
    /// Each failed deployment and why it counts.
    pub failures: Vec<Failure>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub run_id: String,
    pub commit: String,
    pub deployed_at: DateTime<Utc>,
    pub reason: FailureReason,
    /// When a healthy version served again (None: not yet).
    pub restored_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// Breached its verification checks and was rolled back by Gantry.
    FailedVerification,
    /// The next deployment put back a version deployed before it (a rollback by hand).
    RolledBack,
    /// The next deployment, within 24 hours, brought a commit whose summary starts with
    /// fix, hotfix or revert.
    FollowedByFix,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimeToRestore {
    pub median_secs: f64,
    pub restored: usize,
    /// Failures with no healthy deployment since.
    pub unrestored: usize,
    pub band: Band,
    pub trend: Trend,
    pub previous_median_secs: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Week {
    /// The Monday (UTC) the week starts.
    pub start: NaiveDate,
    pub deployments: usize,
    pub failed: usize,
    /// Deployments per pipeline: the release-frequency table.
    pub by_pipeline: Vec<(String, usize)>,
}
