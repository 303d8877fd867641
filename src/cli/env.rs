//! `gantry env list|show|destroy`: environments as the engine runs them, with their
//! deployment history from the store.

use std::process::ExitCode;

use clap::Subcommand;

use super::render::format_duration;
use super::{CliError, Outcome};
use crate::engine::EnvironmentView;
use crate::events::DeploymentOutcome;

#[derive(Subcommand, Debug)]
pub enum EnvCommand {
    /// Environments on the engine, with what serves in each.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One environment: services, the app versions serving, and its deployment history.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Put the version kept at the last go-live back live (health-checked), recorded as a deployment.
    Rollback {
        name: String,
        /// The app (default: the environment's only one).
        #[arg(long)]
        app: Option<String>,
        /// The version to go back to, by commit (prefix) or image: it must be the kept one.
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
        /// Who rolls back (a protected environment needs a release manager's proof).
        #[arg(long = "as", value_name = "USER")]
        user: Option<String>,
        #[command(flatten)]
        proof: super::identity::ProofArgs,
    },
    /// Remove an environment's containers and network (a protected one needs an admin's proof).
    Destroy {
        name: String,
        #[command(flatten)]
        proof: super::identity::ProofArgs,
    },
}

pub async fn run(command: EnvCommand, config: Option<&std::path::Path>, data_dir: &std::path::Path, docker_host: Option<&str>) -> Outcome {
    // Where the environments live: the config's engines, unless --docker-host says.
    let at = crate::config::Config::load_for_cli(config)?.environments_engine(docker_host);
    // Before the engine: a refused destroy touches nothing.
    if let EnvCommand::Destroy { name, proof } = &command {
        may_destroy(config, name, proof)?;
    }
    if let EnvCommand::Rollback { name, app, to, user, proof } = &command {
        let by = may_roll_back(config, name, user.as_deref(), proof)?;
        let engine = crate::engine::connect(&at).await?;
        let store = super::open_store_on(data_dir, &at, std::time::Duration::from_secs(10)).await?;
        let mut quiet = crate::recorder::Quiet;
        let done = crate::coordinator::rollback::roll_back(&store, engine, name, app.as_deref(), to.as_deref(), &by, &mut quiet)
            .await?;
        for line in store.logs(&done.id, None)? {
            println!("{}", line.text);
        }
        return match done.state {
            crate::events::RunState::Succeeded => {
                println!("rolled back {name} (run {})", done.id);
                Ok(ExitCode::SUCCESS)
            }
            _ => Err(CliError::Failed(done.message.unwrap_or_else(|| format!("the rollback of {name} failed")))),
        };
    }
    let engine = crate::engine::connect(&at).await?.environments;
    match command {
        EnvCommand::List { json } => {
            let envs = engine.list().await?;
            if json {
                println!("{}", to_json(&envs)?);
            } else if envs.is_empty() {
                println!("no environments (a `kind: provision` or `kind: deploy` stage makes one)");
            } else {
                println!("{:<16}  {:<9}  {:<28}  URL", "ENVIRONMENT", "SERVICES", "LIVE");
                for e in &envs {
                    println!("{:<16}  {:<9}  {:<28}  {}", e.name, e.services.len(), live(e), urls(e));
                }
            }
        }
        EnvCommand::Show { name, json } => {
            let view = engine.describe(&name).await?;
            let store = super::open_reader(data_dir, docker_host).await?;
            let history = store.deployments(Some(&name))?;
            if view.services.is_empty() && view.routers.is_empty() && view.versions.is_empty() && history.is_empty() {
                return Err(CliError::NotFound(format!("there is no environment '{name}' (see `gantry env list`)")));
            }
            if json {
                println!("{}", to_json(&serde_json::json!({"environment": view, "deployments": history}))?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("environment {} (network {})", view.name, view.network);
            for s in &view.services {
                println!("  service  {:<12} {:<24} {}", s.of, s.image, if s.running { "running" } else { "stopped" });
            }
            for r in &view.routers {
                println!("  app      {:<12} {}", r.of, r.url.as_deref().unwrap_or("(not published)"));
            }
            for v in &view.versions {
                let commit = v.commit.as_deref().map(|c| &c[..c.len().min(8)]).unwrap_or("-");
                println!("  version  {:<12} {:<24} {commit}  {}", v.of, v.image, v.serving.as_deref().unwrap_or(""));
            }
            if !view.tasks.is_empty() {
                println!("\ntasks (Swarm), by node:");
                let mut node = None;
                for t in &view.tasks {
                    if node != Some(&t.node) {
                        println!("  {}", t.node);
                        node = Some(&t.node);
                    }
                    let error = t.error.as_deref().map(|e| format!("  ({e})")).unwrap_or_default();
                    println!("    {:<40} {:<10} (wants {}){error}", t.service, t.state, t.desired);
                }
            }
            println!("\ndeployments (oldest first):");
            if history.is_empty() {
                println!("  none recorded in this data dir");
            }
            for d in &history {
                let outcome = match &d.outcome {
                    DeploymentOutcome::Succeeded => "succeeded".to_string(),
                    DeploymentOutcome::Failed { reason } => format!("failed: {reason}"),
                    DeploymentOutcome::FailedVerification { restored_to, .. } => match restored_to {
                        Some(image) => format!("failed verification; rolled back to {image}"),
                        None => "failed verification; rollback failed".to_string(),
                    },
                };
                println!(
                    "  {}  {:<10} {:<24} {}  {:>6}  run {}  {outcome}",
                    d.finished_at.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S"),
                    d.app,
                    d.image,
                    &d.commit[..d.commit.len().min(8)],
                    format_duration(d.finished_at - d.started_at),
                    d.run_id
                );
            }
        }
        EnvCommand::Rollback { .. } => unreachable!("handled above"),
        EnvCommand::Destroy { name, .. } => {
            let (containers, networks) = engine.destroy(&name).await?;
            if containers + networks == 0 {
                return Err(CliError::NotFound(format!("there is no environment '{name}' on this engine")));
            }
            println!("destroyed {name}: {containers} containers, {networks} network(s) removed");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An environment the operator protects is destroyed only by an admin who proves it; a
/// pipeline never destroys one.
fn may_destroy(config: Option<&std::path::Path>, name: &str, proof: &super::identity::ProofArgs) -> Result<(), CliError> {
    let config = crate::config::Config::load_for_cli(config)?;
    let Some(p) = config.protections.get(name) else {
        return Ok(());
    };
    let refuse =
        |why: String| CliError::Refused(format!("{}: {name} is protected; destroying it needs an admin ({why}); nothing was removed", p.at));
    let who = super::identity::identify(&config, None, proof).map_err(|e| refuse(e.to_string()))?;
    if !who.user.role.covers(crate::config::Role::Admin) {
        return Err(refuse(format!("{} is {}", who.user.name, who.user.role)));
    }
    Ok(())
}

/// Who rolls back: in an environment the operator protects, a release manager who proves
/// it; elsewhere whoever runs the command (named, or their login).
fn may_roll_back(
    config: Option<&std::path::Path>,
    name: &str,
    claimed: Option<&str>,
    proof: &super::identity::ProofArgs,
) -> Result<String, CliError> {
    let config = crate::config::Config::load_for_cli(config)?;
    let Some(p) = config.protections.get(name) else {
        let login = crate::config::identity::os_login();
        return Ok(claimed.map(str::to_string).or(login).unwrap_or_else(|| "someone".into()));
    };
    let refuse = |why: String| {
        CliError::Refused(format!("{}: {name} is protected; rolling it back needs a release manager ({why}); nothing changed", p.at))
    };
    let who = super::identity::identify(&config, claimed, proof).map_err(|e| refuse(e.to_string()))?;
    if !who.user.role.covers(crate::config::Role::ReleaseManager) {
        return Err(refuse(format!("{} is {}", who.user.name, who.user.role)));
    }
    Ok(who.user.name)
}

fn live(e: &EnvironmentView) -> String {
    let live: Vec<String> =
        e.versions.iter().filter(|v| v.serving.as_deref().is_some_and(|s| s.starts_with("live"))).map(|v| format!("{} {}", v.of, v.image)).collect();
    if live.is_empty() {
        "-".into()
    } else {
        live.join(", ")
    }
}

fn urls(e: &EnvironmentView) -> String {
    let urls: Vec<String> = e.routers.iter().filter_map(|r| r.url.clone()).collect();
    if urls.is_empty() {
        "-".into()
    } else {
        urls.join(", ")
    }
}

fn to_json(value: &impl serde::Serialize) -> Result<String, CliError> {
    serde_json::to_string_pretty(value).map_err(CliError::from)
}
