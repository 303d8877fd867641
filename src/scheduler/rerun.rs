//! `gantry rerun --failed`: which stages of a run run again, and which the new run takes
//! over as they ended before. A stage runs again when it did not succeed, when it needs
//! one that runs again (its inputs change), or when one that runs again needs it and what
//! it left cannot be taken over: a command stage's files were in the old run's workspace,
//! which its end removed, and a deployment belongs to the run that made it (a promotion
//! takes only a version its own run deployed). Images built, environments provisioned and
//! the results of smoke and load stages are taken over.

use std::collections::{BTreeMap, BTreeSet};

use crate::events::StageState;
use crate::pipeline::spec::Action;
use crate::pipeline::Plan;
use crate::store::{RunRecord, StageRecord};

/// A stage taken over from an earlier run: that run and how the stage ended there.
#[derive(Debug, Clone, PartialEq)]
pub struct TakenOver {
    pub from_run: String,
    pub stage: StageRecord,
}

/// Why a run cannot be run again.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RerunRefusal {
    #[error("run {run} is {state}; run it again once it is over")]
    NotOver { run: String, state: &'static str },
    #[error("run {0} kept no plan to run again (it is older than reruns)")]
    NoPlan(String),
    #[error("run {0} succeeded: nothing failed to run again (run it again without --failed)")]
    NothingFailed(String),
}

/// The plan to run again for `old`, if it can be run again (`failed`: only what failed).
pub fn check(old: &RunRecord, plan: Option<Plan>, failed: bool) -> Result<Plan, RerunRefusal> {
    if !old.state.is_terminal() {
        return Err(RerunRefusal::NotOver { run: old.id.clone(), state: old.state.name() });
    }
    let plan = plan.ok_or_else(|| RerunRefusal::NoPlan(old.id.clone()))?;
    if failed && old.state == crate::events::RunState::Succeeded {
        return Err(RerunRefusal::NothingFailed(old.id.clone()));
    }
    Ok(plan)
}

/// The stages of `plan` the new run takes over from `old` (the rest run again).
pub fn take_over(plan: &Plan, old: &RunRecord) -> BTreeMap<String, TakenOver> {
    let succeeded: BTreeSet<&str> = old.stages.iter().filter(|s| s.state == StageState::Succeeded).map(|s| s.name.as_str()).collect();
    let mut again: BTreeSet<&str> = plan.stages.iter().map(|s| s.name.as_str()).filter(|n| !succeeded.contains(n)).collect();
    // Until nothing changes: downstream of what runs again runs again; upstream of it,
    // what cannot be taken over runs again.
    loop {
        let before = again.len();
        for s in &plan.stages {
            if s.needs.iter().any(|n| again.contains(n.as_str())) {
                again.insert(&s.name);
            }
            // Putting a preview live takes the preview as it finds it, and the promotion
            // after it a version of its own run: the preview runs again too.
            if let (true, Action::Deploy(d)) = (again.contains(s.name.as_str()), &s.action) {
                if d.mode == crate::pipeline::spec::DeployMode::Promote {
                    for p in &plan.stages {
                        if let Action::Deploy(pd) = &p.action {
                            if pd.mode == crate::pipeline::spec::DeployMode::Preview && pd.environment == d.environment && pd.app == d.app {
                                again.insert(&p.name);
                            }
                        }
                    }
                }
            }
            if again.contains(s.name.as_str()) {
                for n in &s.needs {
                    let needed = plan.stages.iter().find(|x| &x.name == n);
                    if needed.is_some_and(|x| matches!(x.action, Action::Run | Action::Deploy(_) | Action::Promote(_))) {
                        again.insert(n);
                    }
                }
            }
        }
        if again.len() == before {
            break;
        }
    }
    old.stages
        .iter()
        .filter(|s| succeeded.contains(s.name.as_str()) && !again.contains(s.name.as_str()) && plan.stages.iter().any(|p| p.name == s.name))
        .map(|s| (s.name.clone(), TakenOver { from_run: old.id.clone(), stage: s.clone() }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{AttemptOutcome, Event, EventKind};

    const DEMO: &str = "name: shop
stages:
  unit-test: {image: x, commands: [\"true\"]}
  image: {kind: build, tag: \"shop:1\", needs: [unit-test]}
  staging: {kind: provision, environment: stg, services: {db: {image: x}}, needs: []}
  preview: {kind: deploy, mode: preview, environment: stg, image: \"shop:1\", port: 80, needs: [image, staging]}
  smoke: {kind: smoke, target: stg, version: preview, journeys: [{name: j, steps: [{name: s, path: /}]}], needs: [preview]}
  load: {kind: load, target: stg, version: preview, path: /, rate: 10/s, duration: 1s, needs: [smoke]}
  go-live: {kind: deploy, mode: promote, environment: stg, needs: [load]}
";

    /// A run of DEMO in which `failed` failed and everything after it was skipped.
    fn run_with(failed: &str) -> (Plan, RunRecord) {
        let plan = crate::pipeline::parse("p.yml", DEMO).unwrap();
        let commit = crate::commit::CommitInfo::for_tests();
        let mut run = RunRecord::new("old".into(), &plan, ".".into(), commit);
        let mut not_ok: Vec<String> = Vec::new();
        for s in plan.stages.clone() {
            let at = chrono::Utc::now();
            if s.needs.iter().any(|n| not_ok.contains(n)) {
                run.apply(&Event { at, kind: EventKind::StageSkipped { stage: s.name.clone(), reason: "needs".into() } });
                not_ok.push(s.name.clone());
                continue;
            }
            run.apply(&Event { at, kind: EventKind::StageStarted { stage: s.name.clone(), attempt: 1 } });
            let result = if s.name == failed { AttemptOutcome::Failed { exit_code: 1 } } else { AttemptOutcome::Succeeded };
            run.apply(&Event { at, kind: EventKind::AttemptFinished { stage: s.name.clone(), attempt: 1, result, will_retry: false } });
            if s.name == failed {
                not_ok.push(s.name.clone());
            }
        }
        (plan, run)
    }

    fn names(t: &BTreeMap<String, TakenOver>) -> Vec<&str> {
        t.keys().map(String::as_str).collect()
    }

    #[test]
    fn a_failed_load_takes_over_tests_image_and_environment_and_runs_the_deployment_again() {
        let (plan, old) = run_with("load");
        // The promotion of the preview needs a preview of its own run, so the preview and
        // the smoke of that preview run again; the unit tests and the image do not.
        assert_eq!(names(&take_over(&plan, &old)), ["image", "staging", "unit-test"]);
    }

    #[test]
    fn a_failed_command_stage_takes_over_nothing_that_needs_it() {
        let (plan, old) = run_with("unit-test");
        assert_eq!(names(&take_over(&plan, &old)), ["staging"]);
    }

    #[test]
    fn a_failed_go_live_runs_its_preview_again_and_what_tested_it() {
        let (plan, old) = run_with("go-live");
        let t = take_over(&plan, &old);
        assert_eq!(names(&t), ["image", "staging", "unit-test"]);
        assert_eq!(t["image"].from_run, "old");
    }
}
