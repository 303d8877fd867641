//! Who may change an environment. The operator's protection (`config::Protection`) applied
//! to one change by one run, and the approval a promotion needs: the stricter of what the
//! operator set and what the pipeline asks. Pure: facts in, a verdict out. Executors ask
//! before any engine call that would change an environment; decisions ask again.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{Place, Protection};
use crate::pipeline::spec::ApprovalRule;

/// What a stage (or a command) would do to an environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// `kind: deploy`, any mode: a version started in it, or put live.
    Deploy,
    /// `kind: provision`: its network and services.
    Provision,
    /// `kind: promote` into it, after its gate passed.
    Promote,
}

impl Change {
    fn kind(self) -> &'static str {
        match self {
            Change::Deploy => "deploy",
            Change::Provision => "provision",
            Change::Promote => "promote",
        }
    }
}

/// Who changes it: the run's project (for `gantry run`, the pipeline's name), the stage,
/// and the branches of the repository that contain the run's commit.
#[derive(Debug, Clone, PartialEq)]
pub struct Actor<'a> {
    pub project: &'a str,
    pub stage: &'a str,
    pub commit: &'a str,
    pub branches: &'a [String],
}

/// A change the operator's rules forbid: the rule's place and one sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {message}")]
pub struct Refusal {
    pub at: Place,
    pub message: String,
}

/// Whether `actor` may make `change` to the environment `p` protects.
pub fn check(p: &Protection, change: Change, actor: &Actor) -> Result<(), Refusal> {
    let env = &p.name;
    let who = format!("stage '{}' (kind: {})", actor.stage, change.kind());
    if let Some(projects) = &p.projects {
        if !projects.value.iter().any(|x| x == actor.project) {
            return Err(Refusal {
                at: projects.at.clone(),
                message: format!(
                    "{env} may be changed only by {} {}; {who} of {} may not change it",
                    if projects.value.len() == 1 { "project" } else { "projects" },
                    projects.value.join(", "),
                    actor.project
                ),
            });
        }
    }
    if let Some(rule) = &p.promote_only {
        if change != Change::Promote {
            return Err(Refusal { at: rule.at.clone(), message: format!("{env} is promote_only; {who} may not change it") });
        }
    }
    if let Some(approval) = &p.approval {
        // Only a promotion waits for approval: a deployment would go live without one.
        if change == Change::Deploy {
            return Err(Refusal {
                at: approval.at.clone(),
                message: format!("{env} needs approval to go live; {who} may not deploy into it, only a kind: promote may"),
            });
        }
    }
    if let Some(branches) = &p.branches {
        if !actor.branches.iter().any(|b| p.allows_branch(b)) {
            let short = &actor.commit[..actor.commit.len().min(8)];
            return Err(Refusal {
                at: branches.at.clone(),
                message: format!(
                    "{env} takes only commits on {}; commit {short} is on none of them in the repository, so {who} may not change it",
                    branches.value.join(", ")
                ),
            });
        }
    }
    Ok(())
}

/// The approval a promotion into an environment needs: the stricter of the operator's
/// floor and the pipeline's rule, field by field (higher role, more approvers, the author
/// barred if either bars them, the shorter expiry).
pub fn effective_approval(pipeline: Option<&ApprovalRule>, floor: Option<&ApprovalRule>) -> Option<ApprovalRule> {
    match (pipeline, floor) {
        (None, None) => None,
        (Some(r), None) | (None, Some(r)) => Some(r.clone()),
        (Some(p), Some(f)) => Some(ApprovalRule {
            role: p.role.max(f.role),
            count: p.count.max(f.count),
            forbid_author: p.forbid_author || f.forbid_author,
            expires: match (&p.expires, &f.expires) {
                (Some(a), Some(b)) => Some(if a.0 <= b.0 { a.clone() } else { b.clone() }),
                (a, b) => a.clone().or_else(|| b.clone()),
            },
        }),
    }
}

/// Where the pipeline's rule asks for less than the operator's floor, one phrase per
/// field; the floor applies regardless.
pub fn looser_than_floor(pipeline: Option<&ApprovalRule>, floor: &ApprovalRule) -> Vec<String> {
    let Some(p) = pipeline else {
        return vec!["asks for no approval".into()];
    };
    let mut out = Vec::new();
    if p.role < floor.role {
        out.push(format!("asks for role {}, the operator for {}", p.role, floor.role));
    }
    if p.count < floor.count {
        out.push(format!("asks for {} approval(s), the operator for {}", p.count, floor.count));
    }
    if !p.forbid_author && floor.forbid_author {
        out.push("lets the author approve, the operator does not".into());
    }
    match (&p.expires, &floor.expires) {
        (None, Some(f)) => out.push(format!("never expires, the operator's expire after {}", humantime::format_duration(f.0))),
        (Some(a), Some(f)) if a.0 > f.0 => out.push(format!(
            "expires after {}, the operator's after {}",
            humantime::format_duration(a.0),
            humantime::format_duration(f.0)
        )),
        _ => {}
    }
    out
}

/// The rules a run works under: the operator's protections, and the facts about the run
/// they are checked against.
#[derive(Debug, Clone, Default)]
pub struct RunPolicy {
    pub protections: Arc<BTreeMap<String, Protection>>,
    /// The run's project (for `gantry run`: the pipeline's name).
    pub project: String,
    /// The run's commit.
    pub commit: String,
    /// Branches of the repository that contain the commit, among those any protection names.
    pub branches: Vec<String>,
}

impl RunPolicy {
    /// No protections: every environment open (tests, benches).
    pub fn open() -> RunPolicy {
        RunPolicy::default()
    }

    /// Whether `stage` may make `change` to `environment`.
    pub fn check(&self, environment: &str, change: Change, stage: &str) -> Result<(), Refusal> {
        let Some(p) = self.protections.get(environment) else { return Ok(()) };
        check(p, change, &Actor { project: &self.project, stage, commit: &self.commit, branches: &self.branches })
    }

    /// The operator's approval floor for promotions into `environment`.
    pub fn floor(&self, environment: &str) -> Option<&ApprovalRule> {
        self.protections.get(environment)?.approval.as_ref().map(|a| &a.value)
    }

    /// Every branch glob a protection names: only those branches are looked up in git.
    pub fn branch_globs(protections: &BTreeMap<String, Protection>) -> Vec<String> {
        let mut out: Vec<String> = protections.values().filter_map(|p| p.branches.as_ref()).flat_map(|b| b.value.clone()).collect();
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::config::{Config, Role};
    use crate::pipeline::spec::DurationText;

    fn production(rules: &str) -> Protection {
        let text = format!("environments:\n  production:\n{rules}");
        Config::parse(Path::new("config.yml"), &text).unwrap().protections.remove("production").unwrap()
    }

    fn actor<'a>(project: &'a str, branches: &'a [String]) -> Actor<'a> {
        Actor { project, stage: "ship", commit: "0123456789abcdef", branches }
    }

    #[test]
    fn promote_only_refuses_every_other_kind_naming_the_rule_and_its_line() {
        let p = production("    promote_only: true\n");
        let main = ["main".to_string()];
        let err = check(&p, Change::Deploy, &actor("shop", &main)).unwrap_err();
        assert_eq!(err.to_string(), "config.yml:3: production is promote_only; stage 'ship' (kind: deploy) may not change it");
        assert!(check(&p, Change::Provision, &actor("shop", &main)).is_err());
        assert!(check(&p, Change::Promote, &actor("shop", &main)).is_ok());
    }

    #[test]
    fn only_the_listed_projects_may_change_it() {
        let p = production("    projects: [storefront]\n");
        assert!(check(&p, Change::Promote, &actor("storefront", &[])).is_ok());
        let err = check(&p, Change::Deploy, &actor("blog", &[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config.yml:3: production may be changed only by project storefront; stage 'ship' (kind: deploy) of blog may not change it"
        );
    }

    #[test]
    fn only_commits_on_the_listed_branches_may_change_it() {
        let p = production("    branches: [main, \"release/*\"]\n");
        assert!(check(&p, Change::Promote, &actor("shop", &["release/2".to_string()])).is_ok());
        let err = check(&p, Change::Promote, &actor("shop", &["feature/x".to_string()])).unwrap_err();
        assert!(err.to_string().starts_with("config.yml:3: production takes only commits on main, release/*; commit 01234567 is on none"), "{err}");
        assert!(check(&p, Change::Promote, &actor("shop", &[])).is_err(), "a commit on no branch is refused");
    }

    #[test]
    fn an_approval_floor_forbids_deploying_straight_into_it() {
        let p = production("    approval: {count: 2}\n");
        let err = check(&p, Change::Deploy, &actor("shop", &[])).unwrap_err();
        assert!(err.to_string().starts_with("config.yml:3: production needs approval to go live"), "{err}");
        assert!(check(&p, Change::Promote, &actor("shop", &[])).is_ok());
        assert!(check(&p, Change::Provision, &actor("shop", &[])).is_ok(), "services are not a go-live");
    }

    #[test]
    fn an_open_environment_takes_anything() {
        let policy = RunPolicy { protections: Arc::new(BTreeMap::from([("production".into(), production("    promote_only: true\n"))])), ..RunPolicy::open() };
        assert!(policy.check("staging", Change::Deploy, "x").is_ok());
        assert!(policy.check("production", Change::Deploy, "x").is_err());
    }

    fn rule(role: Role, count: u32, forbid_author: bool, expires: Option<u64>) -> ApprovalRule {
        ApprovalRule { role, count, forbid_author, expires: expires.map(|s| DurationText(Duration::from_secs(s))) }
    }

    #[test]
    fn the_effective_rule_is_the_stricter_of_the_two_field_by_field() {
        let pipeline = rule(Role::Admin, 1, false, Some(3600));
        let floor = rule(Role::ReleaseManager, 2, true, Some(86400));
        assert_eq!(effective_approval(Some(&pipeline), Some(&floor)), Some(rule(Role::Admin, 2, true, Some(3600))));
        assert_eq!(effective_approval(None, Some(&floor)), Some(floor.clone()), "dropping approval from the file changes nothing");
        assert_eq!(effective_approval(Some(&pipeline), None), Some(pipeline.clone()));
        assert_eq!(effective_approval(None, None), None);
        let never = rule(Role::ReleaseManager, 1, true, None);
        assert_eq!(effective_approval(Some(&never), Some(&floor)).unwrap().expires, floor.expires);
    }

    #[test]
    fn asking_for_less_than_the_floor_is_named_field_by_field() {
        let floor = rule(Role::ReleaseManager, 2, true, Some(86400));
        assert_eq!(looser_than_floor(None, &floor), vec!["asks for no approval".to_string()]);
        let weak = rule(Role::ReleaseManager, 1, false, None);
        let said = looser_than_floor(Some(&weak), &floor);
        assert_eq!(said.len(), 3, "{said:?}");
        assert!(said[0].contains("1 approval(s), the operator for 2"), "{said:?}");
        assert!(looser_than_floor(Some(&rule(Role::Admin, 3, true, Some(60))), &floor).is_empty());
    }
}
