//! Issue 2: what does Gantry add on top of the container lifecycle it drives?
//!
//! Runs N trivial stages (`true`) through Gantry exactly as `gantry run` does (scheduler +
//! recorder + sled store), and the same N container lifecycles through the bare Engine API
//! with the same bollard client, in the same process, and prints the per-stage cost of each
//! and their ratio. Goal (issue 13): Gantry's chain at <= 0.85x the raw sequential
//! create/start/wait/remove, which it can beat only by taking work off the critical path
//! (the next stage's step is created while the one it needs runs; removals go to the background).
//!
//! Both sides are sequential (the pipeline is a chain of `needs`), so the comparison is one
//! lifecycle after another on both sides, not Gantry's parallelism against a serial loop.
//! Rounds alternate raw/gantry so drift in the engine (caches, disk, other load) hits both.
//!
//! Env: BENCH_STAGES (default 20), BENCH_ROUNDS (default 5, after one warm-up round),
//! BENCH_PROFILE=1 also prints where a Gantry-shaped lifecycle spends its time, phase by phase.
//! Needs a Docker engine and the local image `gantry/busybox` (agents/busybox/build.sh).
//! Reports only: a benchmark does not fail on speed, only on a run that did not succeed.
// bollard 0.19 deprecates its hand-written option structs for generated builders; they
// still work, and moving every call over is its own change.
#![allow(deprecated)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::container::NetworkingConfig;
use bollard::container::{Config, ListContainersOptions, RemoveContainerOptions, StartContainerOptions, WaitContainerOptions};
use bollard::models::{EndpointSettings, HostConfig, Mount, MountTypeEnum};
use bollard::network::CreateNetworkOptions;
use bollard::volume::CreateVolumeOptions;
use bollard::Docker;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use gantry::commit::CommitInfo;
use gantry::docker::DockerEngine;
use gantry::engine::{Engine, RunScope, StepSpec, Steps};
use gantry::events::RunState;
use gantry::labels::{RUN_LABEL, STAGE_LABEL};
use gantry::scheduler::{self, RunRequest};
use gantry::stages::Emitter;
use gantry::store::{RunRecord, Store};

const IMAGE: &str = "gantry/busybox";
/// Marks the raw side's containers, so a bench that dies half-way can be cleaned up by label.
const BENCH_LABEL: &str = "io.gantry.bench";

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{name} must be a positive integer, got '{v}'")),
        Err(_) => default,
    }
}

fn main() {
    let stages = env_usize("BENCH_STAGES", 20).max(1);
    let rounds = env_usize("BENCH_ROUNDS", 5).max(1);
    let profile = std::env::var("BENCH_PROFILE").is_ok_and(|v| !v.is_empty() && v != "0");
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(bench(stages, rounds, profile));
}

async fn bench(stages: usize, rounds: usize, profile: bool) {
    let engine = Arc::new(DockerEngine::connect(None, None).await.expect("a Docker engine (set DOCKER_HOST?)"));
    engine
        .raw()
        .inspect_image(IMAGE)
        .await
        .unwrap_or_else(|e| panic!("image {IMAGE} is missing ({e}); build it with agents/busybox/build.sh"));
    let data = tempfile::tempdir().expect("temp dir");
    let store = Store::open(data.path()).expect("sled store");
    let gantry = GantrySide::new(engine.clone(), store, stages);

    let mut bare_ms = Vec::with_capacity(rounds);
    let mut raw_ms = Vec::with_capacity(rounds);
    let mut gantry_ms = Vec::with_capacity(rounds);
    // Round 0 is the warm-up: first-use costs (image layers in the page cache, the engine's
    // network allocator, sled's file creation) belong to neither side.
    for round in 0..=rounds {
        let bare = per_stage_ms(raw_round(engine.raw(), stages, RawShape::Bare).await, stages);
        let raw = per_stage_ms(raw_round(engine.raw(), stages, RawShape::Isolated).await, stages);
        let ours = per_stage_ms(gantry.round().await, stages);
        let tag = if round == 0 { "warm-up".to_string() } else { format!("round {round}") };
        eprintln!(
            "  {tag:>8}: bare {bare:7.1}  raw {raw:7.1}  gantry {ours:7.1} ms/stage   ({:.2}x raw, {:.2}x bare)",
            ours / raw,
            ours / bare
        );
        if round > 0 {
            bare_ms.push(bare);
            raw_ms.push(raw);
            gantry_ms.push(ours);
        }
    }

    let (bare_med, raw_med, ours_med) = (median(&bare_ms), median(&raw_ms), median(&gantry_ms));
    let (raw_min, ours_min) = (min(&raw_ms), min(&gantry_ms));
    println!("stage_overhead: {stages} sequential trivial stages, {rounds} rounds (median)");
    println!("  raw Engine API, same lifecycles (run network + workspace volume, created and removed per round)");
    println!("    create/start/wait/remove              : {raw_med:7.1} ms/stage   (min {raw_min:.1})");
    println!("  gantry (scheduler + store + logs)       : {ours_med:7.1} ms/stage   (min {ours_min:.1})");
    println!("  ratio gantry/raw                        : {:.2}x  (goal <= 0.85x)", ours_med / raw_med);
    println!("  ratio gantry/raw, best rounds           : {:.2}x", ours_min / raw_min);
    println!("  for scale: bare lifecycles on the default network, no volume: {bare_med:.1} ms/stage;");
    println!("    gantry/bare {:.2}x (what a per-run network costs on this engine)", ours_med / bare_med);

    if profile {
        profile_phases(&engine, stages).await;
    }
    remove_bench_containers(engine.raw()).await;
}

fn per_stage_ms(total: Duration, stages: usize) -> f64 {
    total.as_secs_f64() * 1000.0 / stages as f64
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

fn min(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::INFINITY, f64::min)
}

// ---------------------------------------------------------------------------------------
// Raw side: the least a program must do to run `true` in a container and leave nothing.

/// `RawShape::Bare`: the least a program must do to run `true` in a container. `Isolated`:
/// the same lifecycles as Gantry's (on a per-round network with the stage's alias, with a
/// workspace volume mounted; both created and removed inside the timed round), so the ratio
/// is what Gantry itself adds, not what Docker charges for the isolation it asks for.
#[derive(Clone, Copy)]
enum RawShape {
    Bare,
    Isolated,
}

async fn raw_round(docker: &Docker, stages: usize, shape: RawShape) -> Duration {
    let started = Instant::now();
    let scope = format!("gantry-bench-raw-{}", ulid::Ulid::new().to_string().to_ascii_lowercase());
    let labels = HashMap::from([(BENCH_LABEL.to_string(), "raw".to_string())]);
    let isolated = matches!(shape, RawShape::Isolated);
    if isolated {
        let net = CreateNetworkOptions { name: scope.clone(), driver: "bridge".into(), labels: labels.clone(), ..Default::default() };
        docker.create_network(net).await.expect("raw network");
        let vol = CreateVolumeOptions { name: scope.clone(), labels: labels.clone(), ..Default::default() };
        docker.create_volume(vol).await.expect("raw volume");
    }
    for i in 0..stages {
        let mut config = Config {
            image: Some(IMAGE.to_string()),
            cmd: Some(vec!["sh".into(), "-e".into(), "-c".into(), "true".into()]),
            labels: Some(labels.clone()),
            ..Default::default()
        };
        if isolated {
            config.host_config = Some(HostConfig {
                network_mode: Some(scope.clone()),
                mounts: Some(vec![Mount {
                    typ: Some(MountTypeEnum::VOLUME),
                    source: Some(scope.clone()),
                    target: Some("/workspace".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            });
            config.networking_config = Some(NetworkingConfig {
                endpoints_config: HashMap::from([(
                    scope.clone(),
                    EndpointSettings { aliases: Some(vec![format!("s{i}")]), ..Default::default() },
                )]),
            });
        }
        let id = docker.create_container(None::<bollard::query_parameters::CreateContainerOptions>, config).await.expect("raw create").id;
        docker.start_container(&id, None::<StartContainerOptions<String>>).await.expect("raw start");
        let mut wait = docker.wait_container(&id, None::<WaitContainerOptions<String>>);
        let status = wait.next().await.expect("raw wait answers").expect("raw container exits 0");
        assert_eq!(status.status_code, 0, "raw container failed");
        let force = RemoveContainerOptions { force: true, ..Default::default() };
        docker.remove_container(&id, Some(force)).await.expect("raw remove");
    }
    if isolated {
        docker.remove_network(&scope).await.expect("raw network removal");
        docker.remove_volume(&scope, None::<bollard::query_parameters::RemoveVolumeOptions>).await.expect("raw volume removal");
    }
    started.elapsed()
}

// ---------------------------------------------------------------------------------------
// Gantry side: everything `gantry run` does once its inputs are checked (src/cli/run.rs),
// minus the terminal renderer, which the recorder's `Quiet` viewer stands in for.

struct GantrySide {
    engine: Arc<DockerEngine>,
    store: Store,
    plan_yaml: String,
    stages: usize,
    /// A one-file workspace: the upload into the volume is part of a real run's cost.
    workspace: Bytes,
    commit: CommitInfo,
}

impl GantrySide {
    fn new(engine: Arc<DockerEngine>, store: Store, stages: usize) -> Self {
        // Explicit `needs` rather than the implicit "stage above" rule: the chain is the
        // point of the measurement, so it should not depend on a default.
        GantrySide { engine, store, plan_yaml: chain_yaml(stages), stages, workspace: one_file_tar().into(), commit: bench_commit() }
    }

    /// One whole run; the time covers recording the run's creation through its final
    /// (flushed) record, i.e. setup, every stage, the sweep and the store writes.
    async fn round(&self) -> Duration {
        // Parsing is per run in real use too, but it is microseconds and not what issue 2
        // is about; keep it outside the timed part.
        let plan = gantry::pipeline::parse("stage_overhead.yml", &self.plan_yaml).expect("generated pipeline is valid");
        assert_eq!(plan.stages.len(), self.stages);
        let started = Instant::now();
        let run_id = gantry::store::new_run_id();
        let record = RunRecord::new(run_id.clone(), &plan, "(bench)".into(), self.commit.clone());
        self.store.create_run(&record).expect("create run");
        let (tx, rx) = gantry::channel::channel(gantry::channel::OutputLimits::default());
        let request = RunRequest {
            run_id: run_id.clone(),
            plan,
            commit: self.commit.clone(),
            workspace: self.workspace.clone(),
            secrets: Default::default(),
            max_parallel: 4,
            var_overrides: Default::default(),
            shutdown: CancellationToken::new(),
            policy: gantry::policy::RunPolicy::open(),
            repo: None,
            takeover: Default::default(),
        };
        let scheduler = tokio::spawn(scheduler::run(
            Engine { steps: self.engine.clone(), environments: self.engine.clone() },
            request,
            Emitter::new(tx),
            CancellationToken::new(),
        ));
        let recorded = gantry::recorder::record(&self.store, &run_id, rx, &mut gantry::recorder::Quiet).await;
        let state = scheduler.await.expect("scheduler task");
        let elapsed = started.elapsed();

        let record = recorded.expect("recorder");
        if state != RunState::Succeeded || record.state != RunState::Succeeded {
            // The scheduler sweeps on every path, but a failed bench should not leave
            // anything behind even if that sweep failed too.
            let _ = self.engine.destroy_run(&run_id).await;
            panic!("gantry run {run_id} did not succeed: {state:?}, {:?}", record.message);
        }
        elapsed
    }
}

/// Commit metadata by hand: no git repository is needed to measure the run itself.
/// A chain of `stages` trivial stages. Explicit `needs` rather than the implicit "stage
/// above" rule: the chain is the point of the measurement, so it should not rest on a default.
fn chain_yaml(stages: usize) -> String {
    let mut yaml = String::from("name: stage-overhead\nstages:\n");
    for i in 0..stages {
        let needs = if i == 0 { "[]".to_string() } else { format!("[s{}]", i - 1) };
        yaml.push_str(&format!("  s{i}: {{image: {IMAGE}, commands: [\"true\"], needs: {needs}}}\n"));
    }
    yaml
}

fn bench_commit() -> CommitInfo {
    CommitInfo {
        sha: "0123456789abcdef0123456789abcdef01234567".into(),
        short: "01234567".into(),
        author_name: "bench".into(),
        author_email: "bench@example.invalid".into(),
        time: chrono::Utc::now().fixed_offset(),
        summary: "stage_overhead bench".into(),
        branch: Some("main".into()),
    }
}

fn one_file_tar() -> Vec<u8> {
    let content = b"stage_overhead bench workspace\n";
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder.append_data(&mut header, "README", &content[..]).expect("tar entry");
    builder.into_inner().expect("tar archive")
}

/// Removes raw-side containers a panicking round may have left (the normal path leaves none).
async fn remove_bench_containers(docker: &Docker) {
    let filters = HashMap::from([("label".to_string(), vec![BENCH_LABEL.to_string()])]);
    let options = ListContainersOptions { all: true, filters: filters.clone(), ..Default::default() };
    for c in docker.list_containers(Some(options)).await.unwrap_or_default() {
        if let Some(id) = c.id {
            let force = RemoveContainerOptions { force: true, v: true, ..Default::default() };
            let _ = docker.remove_container(&id, Some(force)).await;
        }
    }
    let networks = bollard::network::ListNetworksOptions { filters: filters.clone() };
    for n in docker.list_networks(Some(networks)).await.unwrap_or_default() {
        let _ = docker.remove_network(&n.id.unwrap_or_default()).await;
    }
    let volumes = bollard::volume::ListVolumesOptions { filters };
    for v in docker.list_volumes(Some(volumes)).await.ok().and_then(|v| v.volumes).unwrap_or_default() {
        let _ = docker.remove_volume(&v.name, None::<bollard::query_parameters::RemoveVolumeOptions>).await;
    }
}

// ---------------------------------------------------------------------------------------
// BENCH_PROFILE=1: where does a stage's time go? The lifecycle is run in five shapes, from
// the raw side's to exactly what src/stages/command.rs asks of the engine, adding one
// difference at a time, and each Engine API call is timed. No scheduler or store is around
// these, so the gap between the last shape and the gantry rounds above is Gantry's own code.
// Shapes are interleaved stage by stage so background load hits all of them alike.

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    /// The raw side: bollard, default bridge, no mounts.
    Raw,
    /// Gantry's Backend::create_container (no-new-privileges, attach flags), default bridge.
    Backend,
    /// + the run's user-defined network with a DNS alias.
    Network,
    /// + the run's workspace volume mounted at /workspace.
    Volume,
    /// + image inspect, workspace upload (first stage), the script, env and the log
    ///   stream: the whole stage as Gantry runs it.
    Stage,
}

const SHAPES: [(Shape, &str); 5] = [
    (Shape::Raw, "raw (bench raw side)"),
    (Shape::Backend, "Backend spec, bridge"),
    (Shape::Network, "+ run network/alias"),
    (Shape::Volume, "+ workspace volume"),
    (Shape::Stage, "+ inspect/upload/logs"),
];
const PHASES: [&str; 6] = ["inspect", "create", "upload", "start", "wait", "remove"];

/// Accumulates time per phase; `lap` charges the time since the previous lap to `phase`.
struct Laps {
    last: Instant,
    totals: [Duration; PHASES.len()],
}

impl Laps {
    fn new() -> Self {
        Laps { last: Instant::now(), totals: [Duration::ZERO; PHASES.len()] }
    }

    fn lap(&mut self, phase: usize) {
        let now = Instant::now();
        self.totals[phase] += now - self.last;
        self.last = now;
    }
}

struct ProfileRun {
    run_id: String,
    network: String,
    volume: String,
    workspace: Bytes,
}

async fn profile_phases(engine: &Arc<DockerEngine>, stages: usize) {
    let run_id = format!("bench-{}", gantry::store::new_run_id().to_lowercase());
    let run = ProfileRun {
        network: format!("gantry-{run_id}"),
        volume: format!("gantry-{run_id}-workspace"),
        workspace: one_file_tar().into(),
        run_id,
    };
    let scope = RunScope { run_id: run.run_id.clone(), network: run.network.clone(), workspace: run.volume.clone() };
    let setup_started = Instant::now();
    engine.setup_run(&scope).await.expect("network and volume");
    let setup = setup_started.elapsed();

    let mut laps: Vec<Laps> = SHAPES.iter().map(|_| Laps::new()).collect();
    for i in 0..stages {
        for ((shape, _), laps) in SHAPES.iter().zip(laps.iter_mut()) {
            laps.last = Instant::now();
            profiled_lifecycle(engine, *shape, &run, i, laps).await;
        }
    }
    let sweep_started = Instant::now();
    let report = engine.destroy_run(&run.run_id).await.expect("sweep");
    let sweep = sweep_started.elapsed();

    println!();
    println!("profile: one lifecycle per shape, interleaved, {stages} stages each (mean ms/stage)");
    print!("  {:<22}", "shape");
    for phase in PHASES {
        print!(" {phase:>8}");
    }
    println!(" {:>8}", "total");
    for ((_, name), laps) in SHAPES.iter().zip(&laps) {
        print!("  {name:<22}");
        for total in laps.totals {
            print!(" {:8.1}", per_stage_ms(total, stages));
        }
        println!(" {:8.1}", per_stage_ms(laps.totals.iter().sum(), stages));
    }
    println!("  (profile objects swept: {} container(s), {} network(s), {} volume(s))", report.containers, report.networks, report.volumes);
    println!("per run (amortised over the run's stages in the gantry rounds above):");
    println!("  create network + volume : {:7.1} ms", setup.as_secs_f64() * 1000.0);
    println!("  sweep_run               : {:7.1} ms", sweep.as_secs_f64() * 1000.0);
    let (per_run, per_stage) = store_costs(stages).await;
    println!("  store, per run          : {:7.1} ms  (create_run + RunFinished, each flushed)", per_run);
    println!("  store, per stage        : {:7.2} ms  (StageStarted + AttemptFinished + one log line)", per_stage);
}

/// The writes the recorder makes for a run of `stages` one-line stages, without Docker.
async fn store_costs(stages: usize) -> (f64, f64) {
    use gantry::events::{AttemptOutcome, Event, EventKind, LogLine, Stream};
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("store");
    let run_id = gantry::store::new_run_id();
    let names: Vec<String> = (0..stages).map(|i| format!("s{i}")).collect();
    let plan = gantry::pipeline::parse("stage_overhead.yml", &chain_yaml(stages)).expect("valid");
    let record = RunRecord::new(run_id.clone(), &plan, "(bench)".into(), bench_commit());
    let t = Instant::now();
    store.create_run(&record).expect("create run");
    let mut per_run = t.elapsed();
    let t = Instant::now();
    for name in &names {
        store.append(&run_id, &Event::now(EventKind::StageStarted { stage: name.clone(), attempt: 1 })).expect("append");
        let line = LogLine { at: chrono::Utc::now(), stage: name.clone(), attempt: 1, stream: Stream::Stdout, text: "+ true".into() };
        store.append_logs(&run_id, &[line]).expect("logs");
        let finished = EventKind::AttemptFinished { stage: name.clone(), attempt: 1, result: AttemptOutcome::Succeeded, will_retry: false };
        store.append(&run_id, &Event::now(finished)).expect("append");
    }
    let per_stage = t.elapsed();
    let t = Instant::now();
    let done = EventKind::RunFinished { state: RunState::Succeeded, message: None };
    store.append(&run_id, &Event::now(done)).expect("append");
    per_run += t.elapsed();
    (per_run.as_secs_f64() * 1000.0, per_stage_ms(per_stage, stages))
}

async fn profiled_lifecycle(engine: &DockerEngine, shape: Shape, run: &ProfileRun, i: usize, laps: &mut Laps) {
    const WORKSPACE: &str = gantry::stages::command::WORKSPACE;
    if shape == Shape::Raw {
        let docker = engine.raw();
        let config = Config {
            image: Some(IMAGE.to_string()),
            cmd: Some(vec!["sh".into(), "-e".into(), "-c".into(), "true".into()]),
            labels: Some(HashMap::from([(BENCH_LABEL.to_string(), "profile".to_string())])),
            ..Default::default()
        };
        let id = docker.create_container(None::<bollard::query_parameters::CreateContainerOptions>, config).await.expect("create").id;
        laps.lap(1);
        docker.start_container(&id, None::<StartContainerOptions<String>>).await.expect("start");
        laps.lap(3);
        let status = docker.wait_container(&id, None::<WaitContainerOptions<String>>).next().await;
        assert_eq!(status.expect("wait answers").expect("exit 0").status_code, 0);
        laps.lap(4);
        let force = RemoveContainerOptions { force: true, ..Default::default() };
        docker.remove_container(&id, Some(force)).await.expect("remove");
        laps.lap(5);
        return;
    }

    let stage = shape == Shape::Stage;
    laps.lap(0);
    let mut spec = StepSpec {
        name: format!("gantry-{}-{}-{i}", run.run_id, shape as u8),
        image: IMAGE.into(),
        entrypoint: vec!["/bin/sh".into(), "-e".into(), "-c".into()],
        cmd: vec!["true".into()],
        working_dir: WORKSPACE.into(),
        labels: HashMap::from([(RUN_LABEL.to_string(), run.run_id.clone()), (STAGE_LABEL.to_string(), format!("s{i}"))]),
        ..Default::default()
    };
    if matches!(shape, Shape::Network | Shape::Volume | Shape::Stage) {
        spec.network = Some(run.network.clone());
        spec.aliases = vec![format!("s{i}")];
    }
    if matches!(shape, Shape::Volume | Shape::Stage) {
        spec.volumes = vec![(run.volume.clone(), WORKSPACE.into())];
    }
    if stage {
        spec.cmd = vec![gantry::stages::command::script(&["true".to_string()])];
        spec.env = ["CI=true", "GANTRY=true", "GANTRY_RUN_ID=x", "GANTRY_PIPELINE=x", "GANTRY_STAGE=x"].map(String::from).to_vec();
    }
    let id = engine.create_step(&spec).await.expect("create");
    laps.lap(1);
    if stage && i == 0 {
        engine.upload(&id, WORKSPACE, run.workspace.clone()).await.expect("upload");
    }
    laps.lap(2);
    // As in Gantry, the log stream is made before start but first polled (i.e. requested)
    // after it, concurrently with the wait; its draining is charged to "wait".
    let output = engine.start_step(&id).await.expect("start");
    laps.lap(3);
    let logs = stage.then(|| {
        let mut output = output;
        tokio::spawn(async move {
            while let Some(chunk) = output.next().await {
                chunk.expect("log chunk");
            }
        })
    });
    assert_eq!(engine.wait_step(&id).await.expect("wait"), 0, "profiled container failed");
    if let Some(logs) = logs {
        logs.await.expect("log task");
    }
    laps.lap(4);
    engine.remove_step(&id).await.expect("remove");
    laps.lap(5);
}
