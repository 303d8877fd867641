//! The service's engine room: it turns triggers (webhooks, polls, API calls) into queued
//! runs, starts queued runs as slots free up (global and per-project limits), and keeps
//! the engine clean (periodic sweep of orphans). The store is the queue, so a restart loses
//! nothing: queued runs stay queued, runs in flight are marked interrupted.

pub mod approvals;
pub mod repo;
pub mod rollback;
mod queue;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::engine::Engine;
use crate::events::RunState;
use crate::pipeline::Plan;
use crate::store::{RunRecord, Store, StoreError};

/// What started a run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "source")]
pub enum Source {
    /// The API or `gantry trigger`, by a user.
    Manual,
    /// A forge's push webhook.
    Webhook { forge: crate::forge::Forge },
    /// The service's polling of the repository.
    Poll,
    /// A repository's `post-receive` hook (scripts/post-receive), after a push.
    Hook,
}

/// A request to run a project's pipeline for a commit.
#[derive(Debug, Clone)]
pub struct TriggerRequest {
    /// Branch, tag or sha (default: the project's first branch).
    pub rev: Option<String>,
    /// The branch the commit was pushed to, when the trigger knows it.
    pub branch: Option<String>,
    pub source: Source,
    /// Who asked (a user of the config, or the pusher named by a webhook).
    pub by: Option<String>,
    /// The forge login that pushed the commit (webhooks).
    pub pusher: Option<crate::store::Pusher>,
    /// Queue it even if this commit already ran for the project.
    pub force: bool,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Triggered {
    Queued {
        run: String,
        commit: String,
    },
    /// The commit's pipeline file is missing or invalid: recorded as a failed run.
    Invalid {
        run: String,
        commit: String,
        message: String,
    },
    /// This commit already ran (or waits) for the project.
    Duplicate {
        run: String,
        commit: String,
    },
    /// A push to a branch the project does not follow.
    Ignored {
        reason: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error("no project '{0}' in the service's config")]
    UnknownProject(String),
    /// The trigger's values do not hold (a branch that does not contain the commit...).
    #[error("{0}")]
    Refused(String),
    /// The run is not in a state the request can change.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Git(#[from] crate::git::GitError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

/// Counters the service reports on `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Runs finished since the service started, by final state.
    pub finished: HashMap<RunState, u64>,
    /// Durations of the stages of runs finished since the service started.
    pub stage_seconds: Histogram,
    pub promotions: u64,
}

/// Upper bounds (seconds) of the stage duration histogram's buckets.
pub const STAGE_BUCKETS: [f64; 10] = [1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0];

/// Cumulative bucket counts, as Prometheus histograms keep them: memory stays constant.
#[derive(Debug, Default)]
pub struct Histogram {
    pub buckets: [u64; STAGE_BUCKETS.len()],
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub fn observe(&mut self, seconds: f64) {
        for (i, bound) in STAGE_BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.buckets[i] += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }
}

/// A run this process drives: its project (for the per-project limit) and the token that
/// stops it.
struct Driven {
    project: String,
    /// The engine of the pool it was placed on (None without `engines:`).
    engine: Option<String>,
    /// Stops the run as interrupted (the service stops, its engine is lost); `cancel`
    /// is its child.
    stop: CancellationToken,
    cancel: CancellationToken,
}

/// What a cancel did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Cancelled {
    /// It was waiting in the queue: it is over.
    Dequeued { run: String },
    /// It is running: it stops now and cleans up, and ends `cancelled`.
    Stopping { run: String },
}

pub struct Coordinator {
    pub store: Arc<Store>,
    /// Where the environments live (and, without `engines:`, the runs too).
    pub engine: Engine,
    /// The engines runs are placed on.
    pub pool: Arc<crate::engine::pool::Pool>,
    pub config: Arc<Config>,
    pub data_dir: PathBuf,
    /// Runs this process is driving, by run id -> project.
    running: Mutex<HashMap<String, Driven>>,
    wake: Notify,
    pub shutdown: CancellationToken,
    pub counters: Mutex<Counters>,
    /// Promotions and rollbacks performed off a request's task: a stopping service waits
    /// for them rather than drop one half-way (its target's lock and new version left on
    /// the engine).
    pub background: tokio_util::task::TaskTracker,
}

impl Coordinator {
    pub fn new(
        store: Arc<Store>,
        engine: Engine,
        pool: Arc<crate::engine::pool::Pool>,
        config: Arc<Config>,
        data_dir: PathBuf,
    ) -> Arc<Coordinator> {
        Arc::new(Coordinator {
            store,
            engine,
            pool,
            config,
            data_dir,
            running: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            shutdown: CancellationToken::new(),
            counters: Mutex::new(Counters::default()),
            background: tokio_util::task::TaskTracker::new(),
        })
    }

    /// Starts the queue runner, the pollers and the periodic sweep.
    pub fn start(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = vec![
            tokio::spawn(queue::run_queue(self.clone())),
            tokio::spawn(queue::sweep_every(self.clone())),
            tokio::spawn(queue::watch_engines(self.clone())),
        ];
        for (name, project) in &self.config.projects {
            if let Some(every) = project.poll {
                tasks.push(tokio::spawn(queue::poll(self.clone(), name.clone(), every)));
            }
        }
        tasks
    }

    /// Stops a queued or running run on behalf of `by`. A run that is over, or that is
    /// running in no process (interrupted at the next start), is refused with its state.
    pub fn cancel(&self, run_id: &str, by: &str) -> Result<Cancelled, TriggerError> {
        let run = self.store.find_run(run_id)?;
        match self.store.cancel(&run.id, by)? {
            Ok(r) if r.state == RunState::Cancelled => Ok(Cancelled::Dequeued { run: r.id }),
            Ok(r) => {
                let driven = self.running.lock().expect("running runs");
                match driven.get(&r.id) {
                    Some(d) => {
                        d.cancel.cancel();
                        Ok(Cancelled::Stopping { run: r.id })
                    }
                    None => Err(TriggerError::Refused(format!("run {} is not driven by this service", r.id))),
                }
            }
            Err(state) => {
                Err(TriggerError::Conflict(format!("run {} is {}; only a queued or running run can be cancelled", run.id, state.name())))
            }
        }
    }

    /// Queues run `run_id` of a project again for `by`: the same plan, commit and variable
    /// values; `failed`: only what failed, the rest taken over when the run starts (what it
    /// takes over is looked at then, on the engine as it is).
    pub fn rerun(&self, run_id: &str, failed: bool, by: &str) -> Result<String, TriggerError> {
        self.queue_again(run_id, failed, by, None)
    }

    /// Queues run `run_id`, interrupted because `engine` stopped answering, once more: its
    /// engine is out of placement, so it goes elsewhere.
    pub fn retry_after_engine_loss(&self, run_id: &str, engine: &str) -> Result<String, TriggerError> {
        self.queue_again(run_id, false, "gantry", Some(engine))
    }

    fn queue_again(&self, run_id: &str, failed: bool, by: &str, lost: Option<&str>) -> Result<String, TriggerError> {
        let old = self.store.find_run(run_id)?;
        let Some(project) = old.project.clone() else {
            return Err(TriggerError::Refused(format!(
                "run {} was run by gantry run, not by the service: run it again with gantry rerun",
                old.id
            )));
        };
        if !self.config.projects.contains_key(&project) {
            return Err(TriggerError::UnknownProject(project));
        }
        let plan =
            crate::scheduler::rerun::check(&old, self.store.plan(&old.id)?, failed).map_err(|e| TriggerError::Conflict(e.to_string()))?;
        let id = crate::store::new_run_id();
        let mut record = RunRecord::new(id.clone(), &plan, old.repo.clone(), old.commit.clone());
        record.state = RunState::Queued;
        record.project = Some(project);
        record.triggered_by = Some(by.to_string());
        // The change is the same, and so are the people a four-eyes rule keeps out.
        record.pushed_by = old.pushed_by.clone();
        record.vars = old.vars.clone();
        record.rerun_of = Some(old.id.clone());
        record.rerun_failed = failed;
        record.retry_after_loss_of = lost.map(str::to_string);
        if let Err(existing) = self.store.enqueue(&record, Some(&plan), None)? {
            return Err(TriggerError::Internal(format!("run id {existing} is taken")));
        }
        self.wake.notify_one();
        Ok(id)
    }

    /// Records `user`'s decision on run `run_id`'s promotion, as `gantry approve/reject`
    /// does (an outdated promotion refused and marked superseded); the approval that claims
    /// the promotion starts it in the background. Returns the run as the decision left it.
    pub async fn decide(
        self: &Arc<Self>,
        run_id: &str,
        user: &crate::config::User,
        kind: crate::approval::DecisionKind,
        comment: Option<String>,
    ) -> Result<RunRecord, approvals::DecideError> {
        let run = self.store.find_run(run_id)?;
        if kind == crate::approval::DecisionKind::Approve {
            approvals::refuse_if_outdated(&self.store, self.engine.environments.as_ref(), &run).await?;
        }
        let record = approvals::record_decision(&self.store, &self.config.protections, &run.id, user, kind, comment, chrono::Utc::now())?;
        if record.state == RunState::Promoting {
            self.promote_in_background(record.clone());
        }
        Ok(record)
    }

    /// Performs a claimed promotion off the caller's task, counting it on `/metrics`.
    pub fn promote_in_background(self: &Arc<Self>, record: RunRecord) {
        let coord = self.clone();
        self.background.spawn(async move {
            let id = record.id.clone();
            match approvals::promote(&coord.store, coord.engine.clone(), record, &mut crate::recorder::Quiet).await {
                Ok(done) => {
                    if done.state == RunState::Succeeded {
                        coord.counters.lock().expect("counters").promotions += 1;
                    }
                    tracing::info!(run = %id, state = ?done.state, "promotion finished");
                }
                Err(e) => tracing::error!(run = %id, error = %e, "recording a promotion failed"),
            }
        });
    }

    /// Ids of the runs this process drives now.
    pub fn running(&self) -> Vec<String> {
        self.running.lock().map(|r| r.keys().cloned().collect()).unwrap_or_default()
    }

    /// Queues a run of `project`'s pipeline for a commit. A commit the project already
    /// took is not queued again (unless forced); a commit whose pipeline file is missing
    /// or invalid is recorded as a failed run with the reason, so history shows it.
    pub async fn trigger(self: &Arc<Self>, project: &str, req: TriggerRequest) -> Result<Triggered, TriggerError> {
        let settings = self.config.projects.get(project).ok_or_else(|| TriggerError::UnknownProject(project.to_string()))?.clone();
        let this = self.clone();
        let name = project.to_string();
        let triggered = tokio::task::spawn_blocking(move || this.trigger_blocking(&name, &settings, req))
            .await
            .map_err(|e| TriggerError::Internal(e.to_string()))??;
        if matches!(triggered, Triggered::Queued { .. }) {
            self.wake.notify_one();
        }
        Ok(triggered)
    }

    fn trigger_blocking(&self, name: &str, project: &crate::config::Project, req: TriggerRequest) -> Result<Triggered, TriggerError> {
        // What a trigger carries is data: a plain revision and a branch by git's rules,
        // and, when a person names the branch, one that really holds the commit.
        if let Some(rev) = req.rev.as_deref().filter(|r| !crate::git::is_plain_revision(r)) {
            return Err(TriggerError::Refused(format!("`{rev}` is not a commit sha, branch or tag name (git's ref-name rules)")));
        }
        if let Some(branch) = req.branch.as_deref().filter(|b| !crate::git::is_branch_name(b)) {
            return Err(TriggerError::Refused(format!("`{branch}` is not a branch name (git's ref-name rules)")));
        }
        let path = repo::local_path(&self.data_dir, name, project, req.source != Source::Poll)?;
        let rev = req.rev.clone().unwrap_or_else(|| repo::default_branch(project));
        let checkout = crate::git::resolve(&path, Some(&rev))?;
        let mut commit = checkout.info.clone();
        if let Some(branch) = &req.branch {
            if matches!(req.source, Source::Manual | Source::Hook) {
                match crate::git::branch_contains(&path, branch, &commit.sha)? {
                    Some(true) => {}
                    Some(false) => {
                        return Err(TriggerError::Refused(format!("branch {branch} does not contain commit {}", commit.short)));
                    }
                    None => return Err(TriggerError::Refused(format!("there is no branch {branch} in {name}'s repository"))),
                }
            }
            commit.branch = Some(branch.clone());
        }
        if req.source != Source::Manual {
            match &commit.branch {
                Some(b) if project.tracks(b) => {}
                Some(b) => return Ok(Triggered::Ignored { reason: format!("{name} does not follow branch {b}") }),
                None => return Ok(Triggered::Ignored { reason: format!("{rev} is not a branch {name} follows") }),
            }
        }
        let sha = commit.sha.clone();
        if !req.force {
            if let Some(run) = self.store.seen(name, &sha)? {
                return Ok(Triggered::Duplicate { run, commit: sha });
            }
        }
        let file = format!("{name}:{}@{}", project.pipeline, commit.short);
        let parsed = match checkout.read_file(&project.pipeline)? {
            Some(text) => crate::pipeline::parse(&file, &text).map_err(|e| format!("the pipeline file is not valid:\n{e}")),
            None => Err(format!("commit {} has no pipeline file {}", commit.short, project.pipeline)),
        };
        let id = crate::store::new_run_id();
        let (mut record, plan) = match &parsed {
            Ok(plan) => (RunRecord::new(id.clone(), plan, project.repo.clone(), commit.clone()), Some(plan)),
            Err(e) => {
                let empty = Plan {
                    name: name.to_string(),
                    source: file.clone(),
                    stages: Vec::new(),
                    vars: Default::default(),
                    environments: Default::default(),
                    placement: Default::default(),
                };
                let mut r = RunRecord::new(id.clone(), &empty, project.repo.clone(), commit.clone());
                r.state = RunState::Failed;
                r.message = Some(e.clone());
                r.finished_at = Some(chrono::Utc::now());
                r.swept = true;
                (r, None)
            }
        };
        if record.state != RunState::Failed {
            record.state = RunState::Queued;
        }
        record.project = Some(name.to_string());
        record.triggered_by = req.by.clone();
        record.pushed_by = req.pusher.clone();
        let seen = (!req.force).then_some((name, sha.as_str()));
        if let Err(existing) = self.store.enqueue(&record, plan, seen)? {
            return Ok(Triggered::Duplicate { run: existing, commit: sha });
        }
        Ok(match parsed {
            Ok(_) => Triggered::Queued { run: id, commit: sha },
            Err(message) => Triggered::Invalid { run: id, commit: sha, message },
        })
    }
}
