//! `gantry approvals`, `approve` and `reject`: release managers' decisions on gated
//! promotions, and the finishing of a promotion whose process died.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use chrono::Utc;
use clap::Args;

use super::render::{format_duration, Renderer};
use super::{CliError, Outcome};
use crate::config::Config;
use crate::coordinator::approvals;
use crate::events::RunState;
use crate::approval::DecisionKind;
use crate::store::RunRecord;

#[derive(Args, Debug)]
pub struct DecideArgs {
    /// Run id, a unique prefix of it, or `latest`.
    pub run: String,
    /// Who decides: a user of the operator config (--config). Once the config gives users
    /// tokens, the token decides and this must match it.
    #[arg(long = "as", value_name = "USER")]
    pub user: Option<String>,
    #[command(flatten)]
    pub proof: super::identity::ProofArgs,
    /// How long to wait for another gantry process using the data dir.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub wait: Duration,
}

/// Lists the promotions waiting for approval (with `all`, every run's approval).
pub fn list(store: &dyn crate::store::read::ReadHistory, all: bool, limit: usize, json: bool) -> Outcome {
    let runs: Vec<RunRecord> =
        if all { store.list_runs(limit)?.into_iter().filter(|r| r.approval.is_some()).collect() } else { store.pending_approvals()? };
    if json {
        let items: Vec<serde_json::Value> = runs.iter().map(approvals::summary).collect();
        let text = serde_json::to_string_pretty(&items)?;
        println!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    if runs.is_empty() {
        println!("{}", if all { "no run has asked for approval" } else { "no promotion waits for approval" });
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<26}  {:<14}  {:<8}  {:<16}  {:<30}  {:<10}  {:<17}  {:<9}  EXPIRES",
        "RUN", "PIPELINE", "COMMIT", "AUTHOR", "PROMOTION", "STATE", "APPROVALS", "WAITING"
    );
    let now = Utc::now();
    for r in &runs {
        let Some(a) = &r.approval else { continue };
        let q = &a.request;
        println!(
            "{:<26}  {:<14}  {:<8}  {:<16}  {:<30}  {:<10}  {:<17}  {:<9}  {}",
            r.id,
            r.pipeline,
            r.commit.short,
            r.commit.author_name,
            format!("{} {}->{}", q.image, q.from, q.environment),
            a.state.name(),
            format!("{}/{} {}", a.approvers().len(), q.rule.count, q.rule.role),
            format_duration(now - q.requested_at),
            match q.expires_at {
                Some(at) if at > now => format!("in {}", format_duration(at - now)),
                Some(at) => format!("{}", at.format("%Y-%m-%d %H:%M UTC")),
                None => "never".into(),
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Approves or rejects a run's promotion. The approval that completes the count claims
/// the promotion in the same transaction, and this process then performs it.
pub async fn decide(
    args: DecideArgs,
    kind: DecisionKind,
    comment: Option<String>,
    config: &Path,
    data_dir: &Path,
    docker_host: Option<&str>,
) -> Outcome {
    let config = Config::load(config)?;
    // A service holding the data dir records the decision (and promotes) itself; a
    // `gantry run` holding it takes none, and the data dir is waited for below.
    if let Some(remote) = crate::control::Remote::connect(data_dir) {
        let token = super::identity::presented_token(args.proof.token_file.as_deref(), config.needs_proof())?;
        let ask = crate::control::DecisionAsk {
            who: crate::control::Asker { claimed: args.user.clone(), token },
            kind,
            comment: comment.clone(),
        };
        match remote.decide(&args.run, &ask) {
            Ok(said) => {
                println!("{said}");
                return Ok(ExitCode::SUCCESS);
            }
            Err(crate::control::RemoteRefusal::NotTaken) => {}
            Err(crate::control::RemoteRefusal::Refused(why)) => return Err(CliError::Refused(why)),
        }
    }
    // Proof before anything else: a refusal here records nothing and touches nothing.
    let user = super::identity::identify(&config, args.user.as_deref(), &args.proof)?.user;
    // An approval may have to promote: know that Docker answers before deciding anything.
    let engine = match kind {
        DecisionKind::Approve => Some(crate::engine::connect(&config.environments_engine(docker_host)).await?),
        DecisionKind::Reject => None,
    };
    let store = super::open_store_on(data_dir, &config.environments_engine(docker_host), args.wait).await?;
    let run = store.find_run(&args.run)?;
    if let (DecisionKind::Approve, Some(engine)) = (kind, &engine) {
        approvals::refuse_if_outdated(&store, engine.environments.as_ref(), &run).await?;
    }
    let now = Utc::now();
    let record = approvals::record_decision(&store, &config.protections, &run.id, &user, kind, comment, now)?;
    let Some(a) = &record.approval else {
        return Ok(ExitCode::FAILURE);
    };
    let target = format!("{} to {}", a.request.image, a.request.environment);
    match kind {
        DecisionKind::Reject => {
            println!("rejected run {}: {target} will not happen. Recorded: {} at {}.", record.id, user.name, now.to_rfc3339());
            return Ok(ExitCode::SUCCESS);
        }
        DecisionKind::Approve if record.state != RunState::Promoting => {
            println!(
                "approved run {} as {}; {} more approval(s) by a {} needed before {target}",
                record.id,
                user.name,
                a.remaining(),
                a.request.rule.role
            );
            return Ok(ExitCode::SUCCESS);
        }
        DecisionKind::Approve => {}
    }
    println!("approved run {} as {}; promoting {target}", record.id, user.name);
    let engine = engine.expect("connected above for an approval");
    let mut renderer = Renderer::new(&record, true);
    let done = approvals::promote(&store, engine, record, &mut renderer).await?;
    report(&done);
    Ok(if done.state == RunState::Succeeded { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

pub(super) fn report(r: &RunRecord) {
    let message = r.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
    eprintln!("gantry: run {} {}{message}", r.id, r.state.name());
}
