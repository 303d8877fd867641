//! The commit a run is for: a model type at the bottom, read from git by `git`, kept in
//! the store's run records, shown by every report. It depends on nothing of Gantry's.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

/// The commit a run is for, as read from git.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitInfo {
    pub sha: String,
    pub short: String,
    pub author_name: String,
    pub author_email: String,
    pub time: DateTime<FixedOffset>,
    pub summary: String,
    pub branch: Option<String>,
}

#[cfg(test)]
impl CommitInfo {
    /// A commit for unit tests: nothing in it matters but that it is one.
    pub fn for_tests() -> CommitInfo {
        CommitInfo {
            sha: "a".repeat(40),
            short: "aaaaaaaa".into(),
            author_name: "A".into(),
            author_email: "a@x".into(),
            time: chrono::Utc::now().fixed_offset(),
            summary: "s".into(),
            branch: None,
        }
    }
}
