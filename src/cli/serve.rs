//! `gantry serve` (the coordinator service) and `gantry trigger` (ask it for a run).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use super::{CliError, Outcome};
use crate::config::Config;
use crate::coordinator::Coordinator;

#[derive(Args, Debug)]
pub struct TriggerArgs {
    /// The project, as the service's config names it.
    pub project: String,
    /// Branch, tag or sha (default: the project's first branch).
    #[arg(long = "ref", value_name = "REF")]
    pub rev: Option<String>,
    /// Run it even if this commit already ran for the project.
    #[arg(long)]
    pub force: bool,
    /// The service (default: http:// + server.listen of the config).
    #[arg(long, env = "GANTRY_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// API token of a developer (or higher).
    #[arg(long, env = "GANTRY_TOKEN", hide_env_values = true)]
    pub token: String,
    #[arg(long)]
    pub json: bool,
}

/// The engine the environments live on, and the pool's members with its name (None
/// without `engines:`: `--docker-host` / `DOCKER_HOST` does everything, as before).
fn engine_pool(
    config: &Config,
    docker_host: Option<&str>,
) -> (crate::engine::EngineChoice, Option<(Vec<crate::engine::pool::MemberConfig>, String)>) {
    if config.engines.is_empty() {
        return (crate::engine::EngineChoice::docker(docker_host), None);
    }
    let members: Vec<crate::engine::pool::MemberConfig> = config
        .engines
        .iter()
        .map(|e| crate::engine::pool::MemberConfig {
            name: e.name.clone(),
            choice: e.choice(config.registry.as_deref()),
            slots: e.runs,
            labels: e.labels.clone(),
        })
        .collect();
    let home = config.environments_engine_name().unwrap_or_default();
    let choice = config.environments_engine(None);
    (choice, Some((members, home)))
}

/// Starts the service; returns when it was asked to stop and has cleaned up.
pub async fn serve(config_path: &Path, data_dir: Option<&Path>, docker_host: Option<&str>) -> Outcome {
    let config = Config::load(config_path)?;
    // Everything that can be wrong is found before the service takes the data dir.
    crate::server::hook_secrets(&config).map_err(|e| CliError::Service(format!("{}: {e}", config.path.display())))?;
    let tls = match &config.server.tls {
        Some(files) => {
            Some(crate::server::tls::server_config(files).map_err(|e| CliError::Service(format!("{}: {e}", config.path.display())))?)
        }
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let addr: std::net::SocketAddr = config.server.listen.parse().map_err(|e| CliError::Service(format!("server.listen: {e}")))?;
    let data_dir =
        data_dir.map(Path::to_path_buf).or_else(|| config.server.data_dir.clone()).unwrap_or_else(crate::store::default_data_dir);
    // Without `engines:` one engine does everything; with it, runs go to the pool and the
    // environments live on one engine of it, which must answer now.
    let (home, members) = engine_pool(&config, docker_host);
    let engine = crate::engine::connect(&home).await?;
    let pool = match members {
        Some((members, home_name)) => Arc::new(crate::engine::pool::Pool::connect(members, Some(home_name)).await),
        None => Arc::new(crate::engine::pool::Pool::single(engine.clone())),
    };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| CliError::Service(format!("cannot listen on {addr}: {e}")))?;
    let store = super::open_store_on(&data_dir, &home, std::time::Duration::ZERO).await?;
    let projects = config.projects.len();
    let users = config.users.len();
    let store = Arc::new(store);
    let config = Arc::new(config);
    let coord = Coordinator::new(store.clone(), engine, pool, config.clone(), data_dir.clone());
    // The command line reads through this process while it holds the data dir, and
    // cancels through it.
    let steer = coord.clone();
    let cancel = Arc::new(move |run: &str, by: &str| match steer.cancel(run, by) {
        Ok(crate::coordinator::Cancelled::Dequeued { run }) => Ok(format!("run {run} was queued: it is cancelled")),
        Ok(crate::coordinator::Cancelled::Stopping { run }) => {
            Ok(format!("run {run} is stopping: its containers are removed and it ends cancelled"))
        }
        Err(e) => Err(e.to_string()),
    });
    let decider = coord.clone();
    let decide: crate::control::Decider = Arc::new(move |d: crate::control::Decision| {
        let coord = decider.clone();
        Box::pin(async move {
            match coord.decide(&d.run, &d.user, d.kind, d.comment).await {
                Ok(record) => Ok(decided(&record, &d.user.name, d.kind)),
                Err(e) => {
                    let e = crate::server::ApiError::from(e);
                    Err((e.status().as_u16(), e.to_string()))
                }
            }
        })
    });
    let steering = crate::control::Steering { config, cancel, decide: Some(decide) };
    let _answering = crate::control::listen(store, &data_dir, Some(steering))
        .map_err(|e| CliError::Service(format!("cannot answer on {}: {e}", crate::control::socket_path(&data_dir).display())))?;
    eprintln!(
        "gantry serve: listening on {scheme}://{} ({projects} project(s), {users} user(s), data in {})",
        listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| addr.to_string()),
        data_dir.display()
    );
    crate::server::serve(coord, listener, tls).await.map_err(|e| CliError::Service(format!("the service failed: {e}")))?;
    eprintln!("gantry serve: stopped");
    Ok(ExitCode::SUCCESS)
}

/// What `gantry approve/reject` prints for a decision the service recorded.
fn decided(record: &crate::store::RunRecord, by: &str, kind: crate::approval::DecisionKind) -> String {
    use crate::approval::DecisionKind;
    let Some(a) = &record.approval else {
        return format!("recorded for run {}", record.id);
    };
    let target = format!("{} to {}", a.request.image, a.request.environment);
    match kind {
        DecisionKind::Reject => format!("rejected run {}: {target} will not happen. Recorded: {by}.", record.id),
        DecisionKind::Approve if record.state == crate::events::RunState::Promoting => {
            format!(
                "approved run {} as {by}; the service is promoting {target} (follow it with gantry logs {} --follow)",
                record.id, record.id
            )
        }
        DecisionKind::Approve => format!(
            "approved run {} as {by}; {} more approval(s) by a {} needed before {target}",
            record.id,
            a.remaining(),
            a.request.rule.role
        ),
    }
}

pub async fn trigger(args: TriggerArgs, config_path: &Path) -> Outcome {
    let server = match args.server {
        Some(s) => s,
        None => format!("http://{}", Config::load(config_path)?.server.listen),
    };
    let url = format!("{}/api/projects/{}/trigger", server.trim_end_matches('/'), args.project);
    let body = serde_json::json!({"ref": args.rev, "force": args.force});
    let response = reqwest::Client::new()
        .post(&url)
        .bearer_auth(args.token.trim())
        .json(&body)
        .send()
        .await
        .map_err(|e| CliError::Service(format!("cannot reach the service at {server}: {e}")))?;
    let status = response.status();
    let value: serde_json::Value =
        response.json().await.map_err(|e| CliError::Service(format!("the service answered {status} without JSON: {e}")))?;
    if !status.is_success() {
        let message = value["error"].as_str().unwrap_or("no reason given");
        return Err(CliError::Refused(format!("the service refused ({status}): {message}")));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    let short = |c: &str| c[..c.len().min(8)].to_string();
    match serde_json::from_value::<crate::coordinator::Triggered>(value.clone()) {
        Ok(crate::coordinator::Triggered::Queued { run, commit }) => {
            println!("queued run {run} of {} for commit {}", args.project, short(&commit))
        }
        Ok(crate::coordinator::Triggered::Duplicate { run, commit }) => {
            println!("commit {} already ran for {} (run {run}); --force runs it again", short(&commit), args.project)
        }
        Ok(crate::coordinator::Triggered::Invalid { run, message, .. }) => {
            println!("recorded run {run} as failed: {message}")
        }
        Ok(crate::coordinator::Triggered::Ignored { reason }) => println!("not run: {reason}"),
        // A newer service's answer this client does not know: shown as it came.
        Err(_) => println!("{value}"),
    }
    Ok(ExitCode::SUCCESS)
}
