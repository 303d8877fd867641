//! The short plan `gantry validate` prints for a valid file.

use super::plan::{Plan, StagePlan, DEFAULT_TIMEOUT};
use super::spec::{Action, DeployMode};

/// What a stage does, in a few words: its image, or its kind and target.
fn what(stage: &StagePlan) -> String {
    match &stage.action {
        Action::Run => stage.image.clone(),
        Action::Build(b) => format!("build {}", b.tag),
        Action::Provision(p) => format!("provision {}", p.environment),
        Action::Deploy(d) => match d.mode {
            DeployMode::Replace => format!("deploy {} to {}", d.app, d.environment),
            DeployMode::Preview => format!("preview {} in {}", d.app, d.environment),
            DeployMode::Promote => format!("promote {} preview in {}", d.app, d.environment),
        },
        Action::Smoke(s) => format!("smoke {}/{}", s.target, s.app),
        Action::Load(l) => format!("load {}/{}", l.target, l.app),
        Action::Promote(p) => format!("promote {} {} -> {}", p.app, p.from, p.to),
    }
}

/// The pipeline's name, its stages level by level (stages that share a level number can
/// run in parallel) and the environments whose promotions wait for approval. Example:
///
/// ```text
/// pipeline hello (pipelines/hello.yml): 3 stages
///   1. prepare  gantry/busybox
///   2. lint     gantry/busybox  needs prepare
///      test     gantry/busybox  needs prepare; retries 2
/// (stages under one number can run in parallel)
/// environments:
///   production: approval by 1 release-manager, not the author, expires after 24h
/// ```
pub fn plan_summary(plan: &Plan) -> String {
    let levels = plan.levels();
    let count = plan.stages.len();
    let mut out = format!(
        "pipeline {} ({}): {count} stage{}",
        plan.name,
        plan.source,
        if count == 1 { "" } else { "s" }
    );
    let name_width = plan.stages.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let image_width = plan.stages.iter().map(|s| what(s).len()).max().unwrap_or(0);
    let number_width = levels.len().to_string().len() + 1;
    for (n, level) in levels.iter().enumerate() {
        for (j, stage) in level.iter().enumerate() {
            let number = if j == 0 {
                format!("{}.", n + 1)
            } else {
                String::new()
            };
            let mut notes = Vec::new();
            if !stage.needs.is_empty() {
                notes.push(format!("needs {}", stage.needs.join(", ")));
            }
            if let Some(when) = &stage.when {
                notes.push(format!("only on {}", when.branches.join(", ")));
            }
            if stage.timeout != DEFAULT_TIMEOUT {
                notes.push(format!(
                    "timeout {}",
                    humantime::format_duration(stage.timeout)
                ));
            }
            if stage.retries > 0 {
                notes.push(format!("retries {}", stage.retries));
            }
            if let Action::Promote(p) = &stage.action {
                if plan.approval_for(&p.to).is_some() {
                    notes.push("waits for approval".into());
                }
            }
            let line = format!(
                "  {number:<number_width$} {:<name_width$}  {:<image_width$}  {}",
                stage.name,
                what(stage),
                notes.join("; ")
            );
            out.push('\n');
            out.push_str(line.trim_end());
        }
    }
    if levels.iter().any(|l| l.len() > 1) {
        out.push_str("\n(stages under one number can run in parallel)");
    }
    let approvals: Vec<_> = plan
        .environments
        .iter()
        .filter_map(|(name, env)| Some((name, env.approval.as_ref()?)))
        .collect();
    if !approvals.is_empty() {
        out.push_str("\nenvironments:");
        for (name, rule) in approvals {
            out.push_str(&format!("\n  {name}: {}", super::environments::describe(rule)));
        }
    }
    // Ends with a newline so that callers can `print!` it as a finished block.
    out.push('\n');
    out
}
