//! An in-memory engine behind both seams, for unit tests of the scheduler, the stage
//! executors and the coordinator that need no Docker. Steps behave as a test programs them
//! (exit code, output, how long they run, files they leave), time passes on tokio's clock
//! (so a paused test clock makes timeouts instant), and every object created or removed is
//! kept in a journal the test can assert on. The real-engine suite stays the proof; this
//! is for the logic above the seams.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::watch;

use super::{
    BuildRequest, EngineError, EnvironmentView, Environments, ExitState, ImageFacts, Lock, ObjectView, Output, OutputChunk, Release, Retired,
    RouterDef, RunScope, ServiceDef, ServiceState, Serving, StepId, StepSpec, Steps, SweepReport, VersionDef, VersionInfo,
};
use crate::labels::{ENVIRONMENT_LABEL, RUN_LABEL, STAGE_LABEL};

/// What a step does once started.
#[derive(Debug, Clone)]
pub struct Behaviour {
    pub exit_code: i64,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// How long it runs before it exits; `None`: until it is stopped.
    pub runs_for: Option<Duration>,
    /// The kernel's OOM killer ended it (with exit code 137).
    pub oom: bool,
    /// Files it leaves behind, readable with `download`: (path, contents).
    pub files: Vec<(String, Vec<u8>)>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour { exit_code: 0, stdout: Vec::new(), stderr: Vec::new(), runs_for: Some(Duration::ZERO), oom: false, files: Vec::new() }
    }
}

impl Behaviour {
    pub fn exits(code: i64) -> Self {
        Behaviour { exit_code: code, ..Default::default() }
    }
    /// Runs until it is stopped.
    pub fn hangs() -> Self {
        Behaviour { runs_for: None, ..Default::default() }
    }
    pub fn out_of_memory() -> Self {
        Behaviour { exit_code: 137, oom: true, ..Default::default() }
    }
    pub fn prints(mut self, text: &str) -> Self {
        self.stdout.extend_from_slice(text.as_bytes());
        self
    }
    pub fn complains(mut self, text: &str) -> Self {
        self.stderr.extend_from_slice(text.as_bytes());
        self
    }
    pub fn takes(mut self, d: Duration) -> Self {
        self.runs_for = Some(d);
        self
    }
    pub fn writes(mut self, path: &str, contents: impl Into<Vec<u8>>) -> Self {
        self.files.push((path.to_string(), contents.into()));
        self
    }
}

/// Which calls a test can make fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    SetupRun,
    CreateStep,
    Upload,
    StartStep,
    RemoveStep,
    DestroyRun,
    StartVersion,
    GoLive,
    Ping,
}

/// One thing that happened on the fake engine, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    SetupRun(String),
    Created(String),
    Uploaded { step: String, path: String },
    Started(String),
    /// Started held, waiting at its gate.
    Held(String),
    Stopped(String),
    Removed(String),
    DestroyedRun(String),
    Built(String),
    ServiceStarted(String),
    VersionStarted(String),
    WentLive(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Created,
    /// Started held: waiting at its gate.
    Held,
    Running,
    Exited(i64),
}

struct FakeStep {
    spec: StepSpec,
    behaviour: Behaviour,
    phase: Phase,
    exit: watch::Sender<Option<i64>>,
    killed: bool,
}

type Matcher = Box<dyn Fn(&StepSpec) -> bool + Send + Sync>;

struct Script {
    matches: Matcher,
    /// One per creation; the last one repeats.
    queue: VecDeque<Behaviour>,
}

#[derive(Default)]
struct FakeEnv {
    network: String,
    services: Vec<(ServiceState, String)>,
    routers: Vec<RouterDef>,
    versions: Vec<VersionInfo>,
    lock: Option<String>,
    tickets: Vec<(String, String)>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    steps: BTreeMap<StepId, FakeStep>,
    /// Networks and volumes of runs: name -> run id.
    networks: BTreeMap<String, String>,
    volumes: BTreeMap<String, String>,
    scripts: Vec<Script>,
    images: HashMap<String, ImageFacts>,
    missing: HashSet<String>,
    failing: HashMap<Verb, String>,
    journal: Vec<Call>,
    running: usize,
    most_running: usize,
    envs: BTreeMap<String, FakeEnv>,
    exec_answers: VecDeque<(i64, String)>,
}

/// The in-memory engine. Cheap to make; one per test.
#[derive(Default)]
pub struct FakeEngine {
    inner: Arc<Mutex<Inner>>,
}

fn with<T>(inner: &Mutex<Inner>, f: impl FnOnce(&mut Inner) -> T) -> T {
    f(&mut inner.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The step begins running: counted, journalled, and on its own clock to its exit.
fn begin(inner: &Mutex<Inner>, step: &str) -> Result<(), EngineError> {
    let (behaviour, exit) = with(inner, |i| {
        let s = i.steps.get_mut(step).ok_or_else(|| lost(step))?;
        if !matches!(s.phase, Phase::Created | Phase::Held) {
            return Err(EngineError::Api { action: "start container".into(), reason: "not waiting to start".into() });
        }
        s.phase = Phase::Running;
        let out = (s.behaviour.clone(), s.exit.clone());
        let name = s.spec.name.clone();
        i.running += 1;
        i.most_running = i.most_running.max(i.running);
        i.journal.push(Call::Started(name));
        Ok::<_, EngineError>(out)
    })?;
    if let Some(after) = behaviour.runs_for {
        // It exits by itself unless stopped first.
        let code = behaviour.exit_code;
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            exit.send_if_modified(|exit| exit.is_none() && exit.replace(code).is_none());
        });
    }
    Ok(())
}

/// The output a started step gives: what it prints, ending when it ends.
fn output_of(behaviour: &Behaviour, mut exit: watch::Receiver<Option<i64>>) -> Output {
    let mut chunks = Vec::new();
    if !behaviour.stdout.is_empty() {
        chunks.push(Ok(OutputChunk::Stdout(Bytes::from(behaviour.stdout.clone()))));
    }
    if !behaviour.stderr.is_empty() {
        chunks.push(Ok(OutputChunk::Stderr(Bytes::from(behaviour.stderr.clone()))));
    }
    let end = futures_util::stream::once(async move {
        let _ = exit.wait_for(Option::is_some).await;
    })
    .filter_map(|()| async { None });
    futures_util::stream::iter(chunks).chain(end).boxed()
}

fn lost(step: &str) -> EngineError {
    EngineError::Api { action: "inspect".into(), reason: format!("no such container: {step}") }
}

impl FakeEngine {
    pub fn new() -> Arc<Self> {
        Arc::new(FakeEngine::default())
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        with(&self.inner, f)
    }

    /// Steps whose spec matches behave as `behaviours` say, one per creation (the last
    /// one repeats). Later scripts win over earlier ones.
    pub fn on(&self, matches: impl Fn(&StepSpec) -> bool + Send + Sync + 'static, behaviours: impl IntoIterator<Item = Behaviour>) {
        let queue: VecDeque<Behaviour> = behaviours.into_iter().collect();
        assert!(!queue.is_empty(), "a script needs at least one behaviour");
        self.with(|i| i.scripts.insert(0, Script { matches: Box::new(matches), queue }));
    }

    /// The containers of a stage's attempts (not its probes) behave as `behaviours` say.
    pub fn on_stage(&self, stage: &str, behaviours: impl IntoIterator<Item = Behaviour>) {
        let stage = stage.to_string();
        self.on(
            move |s| s.labels.get(STAGE_LABEL) == Some(&stage) && !s.name.contains("-probe-"),
            behaviours,
        );
    }

    /// Health probes (of any stage) behave as `behaviours` say.
    pub fn on_probes(&self, behaviours: impl IntoIterator<Item = Behaviour>) {
        self.on(|s| s.name.contains("-probe-"), behaviours);
    }

    /// Makes an image present with these labels; its id is returned.
    pub fn add_image(&self, name: &str, labels: HashMap<String, String>) -> String {
        let id = format!("sha256:{}", crate::labels::fingerprint(&name));
        self.with(|i| i.images.insert(name.to_string(), ImageFacts { id: id.clone(), labels }));
        id
    }

    /// Creating a step from this image fails as an engine without it and no registry would.
    pub fn lacks_image(&self, image: &str) {
        self.with(|i| i.missing.insert(image.to_string()));
    }

    /// Every later call of `verb` fails with `reason`.
    pub fn fail(&self, verb: Verb, reason: &str) {
        self.with(|i| i.failing.insert(verb, reason.to_string()));
    }

    /// `verb` works again.
    pub fn recover(&self, verb: Verb) {
        self.with(|i| i.failing.remove(&verb));
    }

    /// The next `exec`s answer these, in order (then 0 with no output).
    pub fn exec_answers(&self, answers: impl IntoIterator<Item = (i64, String)>) {
        self.with(|i| i.exec_answers.extend(answers));
    }

    pub fn journal(&self) -> Vec<Call> {
        self.with(|i| i.journal.clone())
    }

    /// Names of steps created, in order.
    pub fn created(&self) -> Vec<String> {
        self.with(|i| {
            i.journal
                .iter()
                .filter_map(|c| match c {
                    Call::Created(name) => Some(name.clone()),
                    _ => None,
                })
                .collect()
        })
    }

    /// Specs of steps still on the engine (created and not removed).
    pub fn remaining(&self) -> Vec<StepSpec> {
        self.with(|i| i.steps.values().map(|s| s.spec.clone()).collect())
    }

    /// Networks and volumes of runs still on the engine.
    pub fn remaining_scopes(&self) -> Vec<String> {
        self.with(|i| i.networks.keys().chain(i.volumes.keys()).cloned().collect())
    }

    /// The most steps that ran at the same time.
    pub fn most_running(&self) -> usize {
        self.with(|i| i.most_running)
    }

    /// Paths archives were uploaded to in the step named `name`, in order.
    pub fn uploads_of(&self, name: &str) -> Vec<String> {
        self.with(|i| {
            i.journal
                .iter()
                .filter_map(|c| match c {
                    Call::Uploaded { step, path } if step == name => Some(path.clone()),
                    _ => None,
                })
                .collect()
        })
    }

    fn failing(&self, verb: Verb, action: &str) -> Result<(), EngineError> {
        match self.with(|i| i.failing.get(&verb).cloned()) {
            Some(reason) => Err(EngineError::Api { action: action.into(), reason }),
            None => Ok(()),
        }
    }

    /// A created step's behaviour and exit, once: a step starts at most once.
    fn startable(&self, step: &str) -> Result<(Behaviour, watch::Receiver<Option<i64>>), EngineError> {
        self.with(|i| {
            let s = i.steps.get(step).ok_or_else(|| lost(step))?;
            if s.phase != Phase::Created {
                return Err(EngineError::Api { action: "start container".into(), reason: "already started".into() });
            }
            Ok((s.behaviour.clone(), s.exit.subscribe()))
        })
    }

    fn behaviour_for(inner: &mut Inner, spec: &StepSpec) -> Behaviour {
        for script in &mut inner.scripts {
            if (script.matches)(spec) {
                return if script.queue.len() > 1 { script.queue.pop_front() } else { script.queue.front().cloned() }
                    .unwrap_or_default();
            }
        }
        Behaviour::default()
    }

    fn exited(inner: &mut Inner, step: &str, code: i64) {
        if let Some(s) = inner.steps.get_mut(step) {
            if s.phase == Phase::Running {
                inner.running -= 1;
            }
            if !matches!(s.phase, Phase::Exited(_)) {
                s.phase = Phase::Exited(code);
                let _ = s.exit.send(Some(code));
            }
        }
    }
}

fn step_name(inner: &Inner, step: &str) -> String {
    inner.steps.get(step).map(|s| s.spec.name.clone()).unwrap_or_default()
}

fn tar_file(path: &str, contents: &[u8]) -> Bytes {
    let name = path.rsplit('/').next().unwrap_or(path);
    crate::stages::container::tar_of(&[(name, contents, 0o644)], &[])
}

#[async_trait]
impl Steps for FakeEngine {
    fn endpoint(&self) -> &str {
        "fake://"
    }

    fn version(&self) -> String {
        "fake engine".into()
    }

    async fn ping(&self) -> Result<(), EngineError> {
        self.failing(Verb::Ping, "ping")
    }

    async fn setup_run(&self, scope: &RunScope) -> Result<(), EngineError> {
        self.failing(Verb::SetupRun, "create network")?;
        self.with(|i| {
            i.networks.insert(scope.network.clone(), scope.run_id.clone());
            i.volumes.insert(scope.workspace.clone(), scope.run_id.clone());
            i.journal.push(Call::SetupRun(scope.run_id.clone()));
        });
        Ok(())
    }

    async fn create_step(&self, spec: &StepSpec) -> Result<StepId, EngineError> {
        self.failing(Verb::CreateStep, "create container")?;
        self.with(|i| {
            if i.missing.contains(&spec.image) {
                return Err(EngineError::ImageUnavailable { image: spec.image.clone(), reason: "no registry can be reached".into() });
            }
            if i.steps.values().any(|s| s.spec.name == spec.name) {
                let reason = format!("Conflict. The container name \"/{}\" is already in use", spec.name);
                return Err(EngineError::Api { action: "create container".into(), reason });
            }
            i.next += 1;
            let id = format!("fake{:04}", i.next);
            let behaviour = Self::behaviour_for(i, spec);
            let (exit, _) = watch::channel(None);
            i.steps.insert(
                id.clone(),
                FakeStep { spec: spec.clone(), behaviour, phase: Phase::Created, exit, killed: false },
            );
            i.journal.push(Call::Created(spec.name.clone()));
            Ok(id)
        })
    }

    async fn upload(&self, step: &str, path: &str, tar: Bytes) -> Result<(), EngineError> {
        self.failing(Verb::Upload, "upload")?;
        self.with(|i| {
            let name = i.steps.get(step).ok_or_else(|| lost(step))?.spec.name.clone();
            drop(tar);
            i.journal.push(Call::Uploaded { step: name, path: path.to_string() });
            Ok(())
        })
    }

    async fn start_step(&self, step: &str) -> Result<Output, EngineError> {
        self.failing(Verb::StartStep, "start container")?;
        let (behaviour, exit) = self.startable(step)?;
        begin(&self.inner, step)?;
        Ok(output_of(&behaviour, exit))
    }

    async fn start_held(&self, step: &str) -> Result<(Output, Release), EngineError> {
        self.failing(Verb::StartStep, "start container")?;
        let (behaviour, exit) = self.startable(step)?;
        self.with(|i| {
            if let Some(s) = i.steps.get_mut(step) {
                s.phase = Phase::Held;
            }
            i.journal.push(Call::Held(step_name(i, step)));
        });
        let (release, released) = Release::new();
        let inner = self.inner.clone();
        let id = step.to_string();
        tokio::spawn(async move {
            match released.await {
                Ok(()) => {
                    let _ = begin(&inner, &id);
                }
                // The gate closed: the step ends without running its commands.
                Err(_) => with(&inner, |i| FakeEngine::exited(i, &id, 125)),
            }
        });
        Ok((output_of(&behaviour, exit), release))
    }

    async fn wait_step(&self, step: &str) -> Result<i64, EngineError> {
        let mut exit = self.with(|i| i.steps.get(step).map(|s| s.exit.subscribe())).ok_or_else(|| lost(step))?;
        let code = match exit.wait_for(Option::is_some).await {
            Ok(code) => code.unwrap_or(137),
            // The step was removed under the waiter.
            Err(_) => return Err(lost(step)),
        };
        self.with(|i| Self::exited(i, step, code));
        Ok(code)
    }

    async fn exit_state(&self, step: &str) -> Result<ExitState, EngineError> {
        self.with(|i| {
            let s = i.steps.get(step).ok_or_else(|| lost(step))?;
            Ok(ExitState { oom_killed: s.behaviour.oom && !s.killed, memory_limit: s.spec.limits.map(|l| l.memory) })
        })
    }

    async fn stop_step(&self, step: &str) -> Result<(), EngineError> {
        self.with(|i| {
            let s = i.steps.get_mut(step).ok_or_else(|| lost(step))?;
            s.killed = true;
            let name = s.spec.name.clone();
            i.journal.push(Call::Stopped(name));
            Self::exited(i, step, 137);
            Ok(())
        })
    }

    fn tail_step(&self, step: &str) -> Output {
        let chunks: Vec<Result<OutputChunk, EngineError>> = self.with(|i| match i.steps.get(step) {
            Some(s) => [OutputChunk::Stdout(Bytes::from(s.behaviour.stdout.clone())), OutputChunk::Stderr(Bytes::from(s.behaviour.stderr.clone()))]
                .into_iter()
                .map(Ok)
                .collect(),
            None => vec![Err(lost(step))],
        });
        futures_util::stream::iter(chunks).boxed()
    }

    async fn download(&self, step: &str, path: &str) -> Result<Bytes, EngineError> {
        self.with(|i| {
            let s = i.steps.get(step).ok_or_else(|| lost(step))?;
            let file = s.behaviour.files.iter().find(|(p, _)| p == path);
            match file {
                Some((p, contents)) if matches!(s.phase, Phase::Exited(_)) || s.phase == Phase::Running => Ok(tar_file(p, contents)),
                _ => Err(EngineError::Api { action: "download".into(), reason: format!("no such file: {path}") }),
            }
        })
    }

    async fn remove_step(&self, step: &str) -> Result<(), EngineError> {
        self.failing(Verb::RemoveStep, "remove container")?;
        self.with(|i| {
            Self::exited(i, step, 137);
            let s = i.steps.remove(step).ok_or_else(|| lost(step))?;
            i.journal.push(Call::Removed(s.spec.name));
            Ok(())
        })
    }

    async fn destroy_run(&self, run_id: &str) -> Result<SweepReport, EngineError> {
        self.failing(Verb::DestroyRun, "sweep")?;
        self.with(|i| {
            let mine = |labels: &HashMap<String, String>| {
                labels.get(RUN_LABEL).map(String::as_str) == Some(run_id) && !labels.contains_key(ENVIRONMENT_LABEL)
            };
            let ids: Vec<String> = i.steps.iter().filter(|(_, s)| mine(&s.spec.labels)).map(|(id, _)| id.clone()).collect();
            for id in &ids {
                Self::exited(i, id, 137);
                if let Some(s) = i.steps.remove(id) {
                    i.journal.push(Call::Removed(s.spec.name));
                }
            }
            let before = (i.networks.len(), i.volumes.len());
            i.networks.retain(|_, r| r != run_id);
            i.volumes.retain(|_, r| r != run_id);
            // Locks and tickets are objects of the run: they go with it.
            for e in i.envs.values_mut() {
                e.lock.take_if(|holder| holder == run_id);
                e.tickets.retain(|(r, _)| r != run_id);
            }
            i.journal.push(Call::DestroyedRun(run_id.to_string()));
            Ok(SweepReport {
                containers: ids.len() as u32,
                networks: (before.0 - i.networks.len()) as u32,
                volumes: (before.1 - i.volumes.len()) as u32,
            })
        })
    }

    async fn runs_with_objects(&self) -> Result<Vec<String>, EngineError> {
        self.with(|i| {
            let mut runs: Vec<String> = i
                .steps
                .values()
                .filter(|s| !s.spec.labels.contains_key(ENVIRONMENT_LABEL))
                .filter_map(|s| s.spec.labels.get(RUN_LABEL).cloned())
                .chain(i.networks.values().cloned())
                .collect();
            runs.sort();
            runs.dedup();
            Ok(runs)
        })
    }

    async fn build_image(
        &self,
        _context: Bytes,
        request: &BuildRequest,
        output: &(dyn for<'s> Fn(&'s str) + Send + Sync),
    ) -> Result<String, EngineError> {
        output(&format!("Step 1/1 : FROM scratch (fake build of {})", request.tag));
        let id = self.add_image(&request.tag, request.labels.clone());
        self.with(|i| i.journal.push(Call::Built(request.tag.clone())));
        Ok(id)
    }

    async fn image_facts(&self, image: &str) -> Result<Option<ImageFacts>, EngineError> {
        Ok(self.with(|i| i.images.get(image).cloned()))
    }
}

impl FakeEngine {
    fn env<T>(&self, env: &str, f: impl FnOnce(&mut FakeEnv, &mut Vec<Call>) -> T) -> T {
        self.with(|i| {
            let e = i.envs.entry(env.to_string()).or_insert_with(|| FakeEnv { network: crate::labels::environment_network(env), ..Default::default() });
            f(e, &mut i.journal)
        })
    }

    fn set_serving(&self, env: &str, id: &str, serving: Serving) -> Result<(), EngineError> {
        self.env(env, |e, _| {
            let v = e.versions.iter_mut().find(|v| v.id == id).ok_or_else(|| lost(id))?;
            v.serving = serving;
            Ok(())
        })
    }
}

fn view(name: &str, e: &FakeEnv) -> EnvironmentView {
    let object = |name: &str, image: &str, running: bool, of: &str| ObjectView {
        name: name.to_string(),
        image: image.to_string(),
        running,
        of: of.to_string(),
        commit: None,
        url: None,
        serving: None,
    };
    EnvironmentView {
        name: name.to_string(),
        network: e.network.clone(),
        services: e.services.iter().map(|(s, image)| object(&s.name, image, s.running, s.service.as_deref().unwrap_or(""))).collect(),
        routers: e.routers.iter().map(|r| object(&format!("{}-router", r.app), &r.image, true, &r.app)).collect(),
        versions: e
            .versions
            .iter()
            .map(|v| ObjectView {
                commit: Some(v.commit.clone()),
                serving: (v.serving != Serving::Kept).then(|| v.serving.describe().to_string()),
                ..object(&v.name, &v.image, v.serving != Serving::Kept, v.name.split('-').nth(3).unwrap_or(""))
            })
            .collect(),
        tasks: Vec::new(),
    }
}

#[async_trait]
impl Environments for FakeEngine {
    fn endpoint(&self) -> &str {
        "fake://"
    }

    fn network(&self, env: &str) -> String {
        crate::labels::environment_network(env)
    }

    async fn ensure(&self, env: &str, _run_id: &str) -> Result<String, EngineError> {
        Ok(self.env(env, |e, _| e.network.clone()))
    }

    async fn services(&self, env: &str) -> Result<Vec<ServiceState>, EngineError> {
        Ok(self.env(env, |e, _| e.services.iter().map(|(s, _)| s.clone()).collect()))
    }

    async fn start_service(&self, env: &str, _run_id: &str, service: &ServiceDef) -> Result<String, EngineError> {
        if self.with(|i| i.missing.contains(&service.image)) {
            return Err(EngineError::ImageUnavailable { image: service.image.clone(), reason: "no registry can be reached".into() });
        }
        Ok(self.env(env, |e, journal| {
            let name = crate::labels::service_container(env, &service.name);
            e.services.retain(|(s, _)| s.name != name);
            let handle = format!("svc-{name}");
            let state = ServiceState {
                handle: handle.clone(),
                service: Some(service.name.clone()),
                name: name.clone(),
                fingerprint: Some(service.fingerprint.clone()),
                running: true,
            };
            e.services.push((state, service.image.clone()));
            journal.push(Call::ServiceStarted(name));
            handle
        }))
    }

    async fn remove_service(&self, env: &str, handle: &str) -> Result<(), EngineError> {
        self.env(env, |e, _| e.services.retain(|(s, _)| s.handle != handle));
        Ok(())
    }

    async fn exec(&self, _handle: &str, _cmd: Vec<String>) -> Result<(i64, String), EngineError> {
        Ok(self.with(|i| i.exec_answers.pop_front()).unwrap_or((0, String::new())))
    }

    async fn ensure_router(&self, env: &str, _run_id: &str, router: &RouterDef) -> Result<bool, EngineError> {
        Ok(self.env(env, |e, _| {
            if e.routers.iter().any(|r| r.app == router.app && r.port == router.port && r.publish == router.publish) {
                return false;
            }
            e.routers.retain(|r| r.app != router.app);
            e.routers.push(router.clone());
            true
        }))
    }

    async fn start_version(&self, env: &str, run_id: &str, version: &VersionDef) -> Result<VersionInfo, EngineError> {
        self.failing(Verb::StartVersion, "start version")?;
        if self.with(|i| i.missing.contains(&version.image)) {
            return Err(EngineError::ImageUnavailable { image: version.image.clone(), reason: "no registry can be reached".into() });
        }
        // An image is named by tag or by id, as on a real engine.
        let image_id = self
            .with(|i| i.images.get(&version.image).map(|f| f.id.clone()).or_else(|| i.images.values().find(|f| f.id == version.image).map(|f| f.id.clone())))
            .unwrap_or_else(|| format!("sha256:{}", version.image));
        Ok(self.env(env, |e, journal| {
            let name = crate::labels::app_container(env, &version.app, &version.commit_short, &crate::labels::short_id());
            let info = VersionInfo {
                id: format!("ver-{name}"),
                name: name.clone(),
                image: version.image.clone(),
                image_id,
                commit: version.commit.clone(),
                commit_time: Some(version.commit_time),
                author: version.author.clone(),
                run_id: Some(run_id.to_string()),
                port: Some(version.port),
                health: version.health.clone(),
                serving: Serving::Starting,
            };
            e.versions.push(info.clone());
            journal.push(Call::VersionStarted(name));
            info
        }))
    }

    fn version_output(&self, _id: &str) -> Output {
        futures_util::stream::empty().boxed()
    }

    async fn versions(&self, env: &str, app: &str) -> Result<Vec<VersionInfo>, EngineError> {
        let marker = format!("gantry-env-{env}-{app}-");
        Ok(self.env(env, |e, _| e.versions.iter().filter(|v| v.name.starts_with(&marker)).cloned().collect()))
    }

    async fn remove_version(&self, env: &str, id: &str) -> Result<(), EngineError> {
        self.env(env, |e, _| e.versions.retain(|v| v.id != id));
        Ok(())
    }

    async fn preview(&self, env: &str, app: &str, id: &str) -> Result<Vec<String>, EngineError> {
        let old: Vec<VersionInfo> = self.versions(env, app).await?.into_iter().filter(|v| v.serving == Serving::Preview && v.id != id).collect();
        self.env(env, |e, _| e.versions.retain(|v| !old.iter().any(|o| o.id == v.id)));
        self.set_serving(env, id, Serving::Preview)?;
        Ok(old.into_iter().map(|v| v.name).collect())
    }

    async fn go_live(&self, env: &str, app: &str, id: &str) -> Result<Vec<Retired>, EngineError> {
        self.failing(Verb::GoLive, "go live")?;
        let versions = self.versions(env, app).await?;
        let retired: Vec<Retired> = versions
            .iter()
            .filter(|v| v.serving == Serving::Live && v.id != id)
            .map(|v| Retired { name: v.name.clone(), image: v.image.clone() })
            .collect();
        self.env(env, |e, journal| {
            // One kept version: the one that was live; older kept ones go.
            if !retired.is_empty() {
                e.versions.retain(|v| v.serving != Serving::Kept || v.id == id);
            }
            for v in e.versions.iter_mut() {
                if v.serving == Serving::Live && v.id != id {
                    v.serving = Serving::Kept;
                }
            }
            if let Some(v) = e.versions.iter_mut().find(|v| v.id == id) {
                v.serving = Serving::Live;
                journal.push(Call::WentLive(v.name.clone()));
            }
        });
        Ok(retired)
    }

    async fn revive(&self, env: &str, _app: &str, id: &str) -> Result<(), EngineError> {
        self.set_serving(env, id, Serving::Starting)
    }

    async fn restore(&self, env: &str, app: &str, id: &str) -> Result<Vec<String>, EngineError> {
        let others: Vec<VersionInfo> =
            self.versions(env, app).await?.into_iter().filter(|v| v.id != id && v.serving != Serving::Kept).collect();
        self.env(env, |e, _| e.versions.retain(|v| !others.iter().any(|o| o.id == v.id)));
        self.set_serving(env, id, Serving::Live)?;
        Ok(others.into_iter().map(|v| v.name).collect())
    }

    async fn app_url(&self, env: &str, app: &str, preview: bool) -> Result<Option<String>, EngineError> {
        let want = if preview { Serving::Preview } else { Serving::Live };
        let versions = self.versions(env, app).await?;
        Ok(versions.iter().find(|v| v.serving == want).map(|v| {
            let host = if preview { format!("{app}-preview") } else { app.to_string() };
            format!("http://{host}:{}", v.port.unwrap_or(80))
        }))
    }

    async fn published_url(&self, env: &str, app: &str) -> Result<Option<String>, EngineError> {
        Ok(self.env(env, |e, _| {
            e.routers.iter().find(|r| r.app == app).and_then(|r| r.publish).map(|p| format!("http://127.0.0.1:{p}"))
        }))
    }

    async fn list(&self) -> Result<Vec<EnvironmentView>, EngineError> {
        Ok(self.with(|i| i.envs.iter().map(|(name, e)| view(name, e)).collect()))
    }

    async fn describe(&self, env: &str) -> Result<EnvironmentView, EngineError> {
        Ok(self.env(env, |e, _| view(env, e)))
    }

    async fn destroy(&self, env: &str) -> Result<(u32, u32), EngineError> {
        Ok(self.with(|i| match i.envs.remove(env) {
            Some(e) => ((e.services.len() + e.routers.len() + e.versions.len()) as u32, 1),
            None => (0, 0),
        }))
    }

    async fn lock(&self, env: &str, run_id: &str) -> Result<Lock, EngineError> {
        Ok(self.env(env, |e, _| match &e.lock {
            None => {
                e.lock = Some(run_id.to_string());
                Lock::Taken
            }
            Some(holder) => Lock::HeldBy(Some(holder.clone())),
        }))
    }

    async fn wait_ticket(&self, env: &str, run_id: &str, project: &str) -> Result<(), EngineError> {
        self.env(env, |e, _| e.tickets.push((run_id.to_string(), project.to_string())));
        Ok(())
    }

    async fn drop_ticket(&self, env: &str, run_id: &str) -> Result<(), EngineError> {
        self.env(env, |e, _| e.tickets.retain(|(r, _)| r != run_id));
        Ok(())
    }

    async fn waiting(&self, env: &str, project: &str) -> Result<Vec<String>, EngineError> {
        Ok(self.env(env, |e, _| e.tickets.iter().filter(|(_, p)| p == project).map(|(r, _)| r.clone()).collect()))
    }
}
