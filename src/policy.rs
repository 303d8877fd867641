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
#[derive(Debug, Clone)]
pub struct RunPolicy {
    pub protections: Arc<BTreeMap<String, Protection>>,
    /// The run's project (for `gantry run`: the pipeline's name).
    pub project: String,
    /// The run's commit.
    pub commit: String,
    /// Branches of the repository that contain the commit, among those any protection names.
    pub branches: Vec<String>,
    /// How long a stage waits for an environment another run holds (`locks.wait`).
    pub lock_wait: std::time::Duration,
    /// `locks.newest_cancels_waiting` of the operator's config.
    pub newest_cancels_waiting: bool,
    /// The operator's limits for stage containers (`limits:`).
    pub limits: crate::limits::LimitSettings,
    /// Which agent images to run, and the record they are checked against (`agents:`).
    pub agents: crate::agents::AgentSettings,
}

impl RunPolicy {
    /// No protections: every environment open (tests, benches).
    pub fn open() -> RunPolicy {
        RunPolicy::default()
    }
}

/// How long a stage waits for an environment by default: 30 minutes.
pub const DEFAULT_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

impl Default for RunPolicy {
    fn default() -> Self {
        RunPolicy { protections: Default::default(), project: String::new(), commit: String::new(), branches: Vec::new(), lock_wait: DEFAULT_LOCK_WAIT, newest_cancels_waiting: false, limits: Default::default(), agents: Default::default() }
    }
}

impl RunPolicy {

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

/// What `gantry validate --config` says of one environment a pipeline touches: the rules
/// that apply, where the file asks for less than the operator, and the stages the rules
/// would refuse.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Review {
    pub environment: String,
    /// Where the operator protects it (None: open).
    pub protected_at: Option<String>,
    pub projects: Option<Vec<String>>,
    pub promote_only: bool,
    pub branches: Option<Vec<String>>,
    /// The approval its promotions need, all rules applied.
    pub approval: Option<ApprovalRule>,
    /// Where the pipeline file asks for less than the operator (the operator's applies).
    pub warnings: Vec<String>,
    /// Stages the operator's rules refuse whatever the commit, each with the sentence a
    /// run would end with.
    pub refusals: Vec<String>,
    /// Rules that depend on who runs it: the project (for `gantry run`, the pipeline's
    /// name) and the branch.
    pub notes: Vec<String>,
}

/// Reviews every environment `plan` changes or declares against the operator's rules.
pub fn review(plan: &crate::pipeline::Plan, protections: &BTreeMap<String, Protection>) -> Vec<Review> {
    use crate::pipeline::spec::Action;
    let mut changes: Vec<(&str, Change, &str)> = Vec::new();
    for stage in &plan.stages {
        match &stage.action {
            Action::Deploy(d) => changes.push((&d.environment, Change::Deploy, &stage.name)),
            Action::Provision(p) => changes.push((&p.environment, Change::Provision, &stage.name)),
            Action::Promote(p) => changes.push((&p.to, Change::Promote, &stage.name)),
            _ => {}
        }
    }
    let mut names: Vec<&str> = changes.iter().map(|(e, _, _)| *e).chain(plan.environments.keys().map(String::as_str)).collect();
    names.sort();
    names.dedup();
    let mut out = Vec::new();
    for name in names {
        let asked = plan.environments.get(name).and_then(|e| e.approval.as_ref());
        let Some(p) = protections.get(name) else {
            out.push(Review {
                environment: name.to_string(),
                protected_at: None,
                projects: None,
                promote_only: false,
                branches: None,
                approval: asked.cloned(),
                warnings: Vec::new(),
                refusals: Vec::new(),
                notes: Vec::new(),
            });
            continue;
        };
        let floor = p.approval.as_ref().map(|a| &a.value);
        let warnings = match floor {
            Some(f) => looser_than_floor(asked, f)
                .into_iter()
                .map(|w| format!("{} {w}; the operator's rule ({}) applies", plan.source, p.approval.as_ref().map(|a| a.at.to_string()).unwrap_or_default()))
                .collect(),
            None => Vec::new(),
        };
        // Refusals that hold for every commit: the kind of change. The project and the
        // branch depend on who runs it, so they are notes.
        let kind_only = Protection { projects: None, branches: None, ..p.clone() };
        let mut refusals = Vec::new();
        for (env, change, stage) in changes.iter().filter(|(e, _, _)| *e == name) {
            let actor = Actor { project: &plan.name, stage, commit: "", branches: &[] };
            if let Err(r) = check(&kind_only, *change, &actor) {
                refusals.push(format!("stage '{stage}' would be refused in {env}: {r}"));
            }
        }
        let mut notes = Vec::new();
        if let Some(projects) = &p.projects {
            if !projects.value.contains(&plan.name) {
                notes.push(format!(
                    "`gantry run` of this file is pipeline {}, which {name} does not admit ({}: projects {}); a service project of that list may run it",
                    plan.name,
                    projects.at,
                    projects.value.join(", ")
                ));
            }
        }
        if let Some(branches) = &p.branches {
            notes.push(format!("only commits on {} may change it ({})", branches.value.join(", "), branches.at));
        }
        out.push(Review {
            environment: name.to_string(),
            protected_at: Some(p.at.to_string()),
            projects: p.projects.as_ref().map(|x| x.value.clone()),
            promote_only: p.promote_only.is_some(),
            branches: p.branches.as_ref().map(|x| x.value.clone()),
            approval: effective_approval(asked, floor),
            warnings,
            refusals,
            notes,
        });
    }
    out
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
    fn a_review_shows_the_effective_rules_warnings_and_what_would_be_refused() {
        let config = "environments:\n  production:\n    projects: [storefront]\n    promote_only: true\n    approval: {count: 2}\n";
        let protections = Config::parse(Path::new("config.yml"), config).unwrap().protections;
        let plan = crate::pipeline::parse(
            "gantry.yml",
            "name: shop\nenvironments:\n  production:\n    approval: {count: 1, forbid_author: false}\nstages:\n  ship: {kind: deploy, environment: staging, image: x, port: 80}\n  hotfix: {kind: provision, environment: production, services: {db: {image: x}}}\n  release: {kind: promote, from: staging, to: production, port: 80, needs: [ship]}\n",
        )
        .unwrap();
        let reviews = review(&plan, &protections);
        let names: Vec<&str> = reviews.iter().map(|r| r.environment.as_str()).collect();
        assert_eq!(names, ["production", "staging"]);
        let prod = &reviews[0];
        assert_eq!(prod.protected_at.as_deref(), Some("config.yml:2"));
        assert_eq!(prod.approval.as_ref().map(|a| (a.count, a.forbid_author)), Some((2, true)));
        assert_eq!(prod.warnings.len(), 2, "{:?}", prod.warnings);
        assert!(prod.warnings[0].starts_with("gantry.yml asks for 1 approval(s), the operator for 2; the operator's rule (config.yml:5) applies"), "{:?}", prod.warnings);
        assert_eq!(prod.refusals, vec!["stage 'hotfix' would be refused in production: config.yml:4: production is promote_only; stage 'hotfix' (kind: provision) may not change it".to_string()]);
        assert!(prod.notes[0].contains("pipeline shop, which production does not admit"), "{:?}", prod.notes);
        assert!(reviews[1].protected_at.is_none() && reviews[1].refusals.is_empty());
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
