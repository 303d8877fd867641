//! Reading history: `validate` (no store needed), `runs`, `show` and `logs`.

use std::path::Path;
use std::process::ExitCode;

use crate::words::result_line;
use super::render::{format_duration, format_log_line, stage_width, state_word, state_word_run};
use super::{CliError, Outcome};
use crate::events::StageResult;
use crate::store::read::ReadHistory;

/// Checks a pipeline file; with the operator's config, also the rules of every
/// environment it touches: what applies, where the file asks for less, what would be refused.
pub fn validate(file: &Path, json: bool, config: Option<&crate::config::Config>) -> Outcome {
    match crate::pipeline::load(file) {
        Ok(plan) => {
            if let Some(Err(e)) = config.map(|c| crate::limits::check(&plan, &c.limits)) {
                eprintln!("{e}");
                return Ok(ExitCode::FAILURE);
            }
            let reviews = config.map(|c| crate::policy::review(&plan, &c.protections));
            let refused = reviews.iter().flatten().any(|r| !r.refusals.is_empty());
            if json {
                let policy = config.map(|c| serde_json::json!({"config": c.path, "environments": reviews}));
                print_json(&serde_json::json!({"valid": !refused, "plan": plan, "policy": policy}))?;
            } else {
                print!("{}", crate::pipeline::plan_summary(&plan));
                if let (Some(c), Some(reviews)) = (config, &reviews) {
                    print!("{}", policy_summary(&c.path, reviews));
                }
            }
            Ok(if refused { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
        Err(crate::pipeline::PipelineError::Invalid(diagnostics)) if json => {
            let errors: Vec<_> = diagnostics
                .iter()
                .map(|d| {
                    serde_json::json!({"file": d.file, "line": d.line, "column": d.column,
                        "field": d.field, "message": d.message, "hint": d.hint})
                })
                .collect();
            print_json(&serde_json::json!({"valid": false, "errors": errors}))?;
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The effective rules of each environment, as `gantry validate --config` prints them.
fn policy_summary(config: &Path, reviews: &[crate::policy::Review]) -> String {
    let mut out = format!("policy ({}):\n", config.display());
    if reviews.is_empty() {
        out.push_str("  the pipeline changes no environment\n");
    }
    for r in reviews {
        let Some(at) = &r.protected_at else {
            let approval = r.approval.as_ref().map(|a| format!("; {}", crate::pipeline::describe_approval(a))).unwrap_or_default();
            out.push_str(&format!("  {}: open (the operator does not protect it){approval}\n", r.environment));
            continue;
        };
        let mut rules = Vec::new();
        if let Some(p) = &r.projects {
            rules.push(format!("projects {}", p.join(", ")));
        }
        if r.promote_only {
            rules.push("promote_only".to_string());
        }
        if let Some(b) = &r.branches {
            rules.push(format!("branches {}", b.join(", ")));
        }
        rules.push(match &r.approval {
            Some(a) => crate::pipeline::describe_approval(a),
            None => "no approval".to_string(),
        });
        out.push_str(&format!("  {}: protected ({at}): {}\n", r.environment, rules.join("; ")));
        for w in &r.warnings {
            out.push_str(&format!("    warning: {w}\n"));
        }
        for n in &r.notes {
            out.push_str(&format!("    note: {n}\n"));
        }
        for e in &r.refusals {
            out.push_str(&format!("    error: {e}\n"));
        }
    }
    out
}

fn print_json(value: &impl serde::Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)?;
    println!("{text}");
    Ok(())
}

pub fn runs(store: &dyn ReadHistory, limit: usize, json: bool) -> Outcome {
    let runs = store.list_runs(limit)?;
    if json {
        print_json(&runs)?;
        return Ok(ExitCode::SUCCESS);
    }
    if runs.is_empty() {
        println!("no runs yet (start one with `gantry run PIPELINE --repo PATH`)");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<26}  {:<16}  {:<11}  {:<8}  {:<12}  {:<19}  DURATION", "RUN", "PIPELINE", "STATE", "COMMIT", "BRANCH", "STARTED");
    for r in runs {
        println!(
            "{:<26}  {:<16}  {:<11}  {:<8}  {:<12}  {:<19}  {}",
            r.id,
            r.pipeline,
            state_word_run(r.state),
            r.commit.short,
            r.commit.branch.as_deref().unwrap_or("-"),
            r.created_at.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S"),
            format_duration(r.duration())
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn show(store: &dyn ReadHistory, query: &str, json: bool) -> Outcome {
    let run = store.find_run(query)?;
    if json {
        print_json(&run)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("run       {}", run.id);
    println!("pipeline  {} ({})", run.pipeline, run.source);
    println!("state     {}{}", state_word_run(run.state), run.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default());
    println!("commit    {} {}", run.commit.sha, run.commit.summary);
    println!("author    {} <{}>", run.commit.author_name, run.commit.author_email);
    println!("committed {}", run.commit.time.to_rfc3339());
    println!("branch    {}", run.commit.branch.as_deref().unwrap_or("-"));
    println!("repo      {}", run.repo);
    if let Some(engine) = &run.engine {
        let retry = run.retry_after_loss_of.as_deref().map(|lost| format!(" (run again after engine {lost} was lost)")).unwrap_or_default();
        println!("engine    {engine}{retry}");
    }
    println!("started   {}", run.created_at.to_rfc3339());
    println!("duration  {}", format_duration(run.duration()));
    println!();
    let width = stage_width(&run).max(5);
    println!("{:width$}  {:<11}  {:>8}  {:>4}  {:>9}  NOTE", "STAGE", "STATE", "ATTEMPTS", "EXIT", "DURATION");
    for s in &run.stages {
        println!(
            "{:width$}  {:<11}  {:>8}  {:>4}  {:>9}  {}",
            s.name,
            state_word(s.state),
            s.attempts,
            s.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
            s.duration().map(format_duration).unwrap_or_else(|| "-".into()),
            s.message.as_deref().or(s.result.as_ref().map(|_| "")).unwrap_or("")
        );
        if let Some(result) = &s.result {
            println!("{:width$}  -> {}", "", result_line(result));
        }
        for verdict in s.verdict.iter().chain(&s.verification) {
            for line in verdict.table().lines() {
                println!("{:width$}     {line}", "");
            }
        }
    }
    if let Some(a) = &run.approval {
        print_approval(a);
    }
    Ok(ExitCode::SUCCESS)
}

/// The approval of a gated promotion: its rule, where it stands, and every decision.
fn print_approval(a: &crate::approval::Approval) {
    let q = &a.request;
    let r = &q.rule;
    println!();
    println!(
        "approval  {} ({} {} -> {}): {} of {} by a {}{}{}",
        a.state.name(),
        q.image,
        q.from,
        q.environment,
        a.approvers().len(),
        r.count,
        r.role,
        if r.forbid_author { ", not the author" } else { "" },
        q.expires_at.map(|at| format!(", expires {}", at.to_rfc3339())).unwrap_or_default()
    );
    println!("          requested {}", q.requested_at.to_rfc3339());
    for d in &a.decisions {
        let what = match d.kind {
            crate::approval::DecisionKind::Approve => "approved",
            crate::approval::DecisionKind::Reject => "rejected",
        };
        let why = d.comment.as_deref().map(|c| format!(": {c}")).unwrap_or_default();
        println!("          {} {what} by {} ({}){why}", d.at.to_rfc3339(), d.user, d.role);
    }
    if let Some(by) = &a.claimed_by {
        println!("          promotion performed by {by}'s approval");
    }
}

pub fn logs(store: &dyn ReadHistory, query: &str, stage: Option<&str>, json: bool) -> Outcome {
    let run = store.find_run(query)?;
    if let Some(stage) = stage {
        if !run.stages.iter().any(|s| s.name == stage) {
            let names: Vec<&str> = run.stages.iter().map(|s| s.name.as_str()).collect();
            return Err(CliError::Usage(format!("run {} has no stage '{stage}' (stages: {})", run.id, names.join(", "))));
        }
    }
    let width = stage_width(&run);
    for line in store.logs(&run.id, stage)? {
        print_log_line(&line, width, json)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One stored line as `gantry logs` prints it.
pub fn print_log_line(line: &crate::events::LogLine, width: usize, json: bool) -> Result<(), CliError> {
    if json {
        println!("{}", serde_json::to_string(line)?);
    } else {
        println!("{}", format_log_line(width, line));
    }
    Ok(())
}

/// `gantry logs --follow`: what is stored, then what comes, until the run ends. The
/// reader may go away under it (the process holding the data dir finished the run and
/// exited): `reopen` gives the next one, and the cursor carries on, the same in both.
pub fn follow(
    mut reader: Box<dyn std::ops::Deref<Target = dyn ReadHistory>>,
    reopen: &dyn Fn() -> Result<Box<dyn std::ops::Deref<Target = dyn ReadHistory>>, CliError>,
    query: &str,
    stage: Option<&str>,
    json: bool,
) -> Outcome {
    let run = reader.find_run(query)?;
    let width = stage_width(&run);
    let mut cursor: Option<Vec<u8>> = None;
    let mut failures = 0;
    loop {
        let step = (|| -> Result<bool, crate::store::StoreError> {
            let ended = reader.find_run(&run.id)?.state.is_terminal();
            let (lines, next) = reader.logs_after(&run.id, cursor.as_deref())?;
            for line in lines.iter().filter(|l| stage.is_none_or(|s| s == l.stage)) {
                let _ = print_log_line(line, width, json);
            }
            if next.is_some() {
                cursor = next;
            }
            Ok(ended)
        })();
        match step {
            Ok(true) => return Ok(ExitCode::SUCCESS),
            Ok(false) => failures = 0,
            Err(e) if failures >= 20 => return Err(e.into()),
            Err(_) => {
                failures += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
                if let Ok(next) = reopen() {
                    reader = next;
                }
                continue;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// JUnit XML of the run's smoke stages: one report per smoke stage, merged as suites.
pub fn junit(store: &dyn ReadHistory, query: &str) -> Outcome {
    let run = store.find_run(query)?;
    let reports: Vec<(&str, &crate::smoke::SmokeReport)> = run
        .stages
        .iter()
        .filter_map(|s| match &s.result {
            Some(StageResult::Smoke(r)) => Some((s.name.as_str(), r)),
            _ => None,
        })
        .collect();
    match reports.as_slice() {
        [] => Err(CliError::NotFound(format!("run {} has no smoke results", run.id))),
        [(stage, report)] => {
            print!("{}", crate::smoke::junit_xml(report, &format!("{} {stage}", run.pipeline)));
            Ok(ExitCode::SUCCESS)
        }
        many => {
            // Several smoke stages: one document, journeys of all of them as suites.
            let mut merged = many[0].1.clone();
            for (_, r) in &many[1..] {
                merged.journeys.extend(r.journeys.iter().cloned());
                merged.passed &= r.passed;
                merged.duration_ms += r.duration_ms;
            }
            print!("{}", crate::smoke::junit_xml(&merged, &run.pipeline));
            Ok(ExitCode::SUCCESS)
        }
    }
}

