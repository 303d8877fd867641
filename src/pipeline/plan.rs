//! The typed, validated Plan: what the scheduler runs. Built only by `pipeline::parse`,
//! so every Plan in the program has passed validation.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::spec::{ApprovalRule, EnvironmentSpec};

/// A validated pipeline: stages in a valid execution (topological) order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Plan {
    pub name: String,
    /// The file the plan came from, as the user named it.
    pub source: String,
    pub stages: Vec<StagePlan>,
    /// Declared variables and their defaults (`${var.NAME}`), overridable per run.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// Declared environments (top-level `environments:`) and their rules, such as who must
    /// approve a promotion into them.
    #[serde(default)]
    pub environments: BTreeMap<String, EnvironmentSpec>,
    /// Where the run may be placed, and whether it is tried again when its engine is lost.
    #[serde(default, skip_serializing_if = "Placement::is_default")]
    pub placement: Placement,
}

/// The pipeline's asks of the operator's engine pool (`runs_on:`, `retry_on_engine_loss:`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Placement {
    /// Labels the run's engine must carry, every one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs_on: Vec<String>,
    /// A run whose engine stops answering is queued once more, for another engine.
    #[serde(default)]
    pub retry_on_engine_loss: bool,
}

impl Placement {
    pub fn is_default(&self) -> bool {
        *self == Placement::default()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StagePlan {
    pub name: String,
    pub image: String,
    /// Each command runs in order under `sh -e`; the first failure stops the stage.
    pub commands: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Resolved dependencies: explicit `needs`, or the stage before it in the file when
    /// `needs` is absent (an explicit `needs: []` means "no dependency").
    pub needs: Vec<String>,
    #[serde(with = "humantime_serde_compat")]
    pub timeout: Duration,
    pub retries: u32,
    pub when: Option<When>,
    /// Names of secrets; values are resolved at run time from the operator's environment
    /// or secrets directory and never stored.
    pub secrets: Vec<String>,
    /// What the stage does: `run` (image/commands/env above) or another kind's settings.
    #[serde(default)]
    pub action: super::spec::Action,
    /// Memory, CPU and processes the stage asks for its containers (else the operator's
    /// defaults), within the operator's maximum.
    #[serde(default, skip_serializing_if = "super::resources::LimitsAsked::is_empty")]
    pub limits: super::resources::LimitsAsked,
}

/// Branch filter: the stage runs only when the run's branch matches one of the globs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct When {
    pub branches: Vec<String>,
}

impl When {
    /// A run with no known branch (detached commit) matches no filter.
    pub fn matches(&self, branch: Option<&str>) -> bool {
        let Some(branch) = branch else { return false };
        // Validation compiled the same globs with the same function, so none is refused
        // here; a Plan built some other way still cannot panic.
        self.branches.iter().any(|pat| super::limits::branch_glob(pat).is_ok_and(|g| g.is_match(branch)))
    }
}

/// Default stage timeout when the pipeline names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60 * 60);

impl Plan {
    pub fn stage(&self, name: &str) -> Option<&StagePlan> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// Whether a stage provisions, deploys, tests or promotes (every kind but `run` and
    /// `build`): such a run goes where the environments live.
    pub fn touches_environments(&self) -> bool {
        self.stages.iter().any(|s| !matches!(s.action, super::spec::Action::Run | super::spec::Action::Build(_)))
    }

    /// The approval a promotion into `environment` waits for, if the file asks for one.
    pub fn approval_for(&self, environment: &str) -> Option<&ApprovalRule> {
        self.environments.get(environment)?.approval.as_ref()
    }

    /// Stages grouped into levels: each stage's needs all lie in earlier levels, so the
    /// stages of one level can run in parallel. Relies on `stages` being in execution
    /// order, which `pipeline::parse` guarantees.
    pub fn levels(&self) -> Vec<Vec<&StagePlan>> {
        let mut level_of: std::collections::HashMap<&str, usize> = Default::default();
        let mut levels: Vec<Vec<&StagePlan>> = Vec::new();
        for stage in &self.stages {
            let level = stage
                .needs
                .iter()
                .filter_map(|n| level_of.get(n.as_str()))
                .max()
                .map_or(0, |l| l + 1);
            level_of.insert(&stage.name, level);
            if levels.len() <= level {
                levels.resize_with(level + 1, Vec::new);
            }
            levels[level].push(stage);
        }
        levels
    }
}

mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}
