//! The scheduler against the in-memory engine: DAG order, the parallelism limit, timeouts,
//! retries, cancellation, and the run's objects gone on every exit path. The clock is
//! tokio's paused clock, so a 1h timeout costs nothing.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::*;
use crate::engine::fake::{Behaviour, Call, FakeEngine, Verb};
use crate::events::{Emitted, LogLine};

pub(crate) struct Ran {
    pub state: RunState,
    pub events: Vec<EventKind>,
    pub logs: Vec<LogLine>,
}

impl Ran {
    /// Stages in the order they started (first attempts).
    fn started(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                EventKind::StageStarted { stage, attempt: 1 } => Some(stage.clone()),
                _ => None,
            })
            .collect()
    }

    fn outcomes(&self, stage: &str) -> Vec<AttemptOutcome> {
        self.events
            .iter()
            .filter_map(|e| match e {
                EventKind::AttemptFinished { stage: s, result, .. } if s == stage => Some(result.clone()),
                _ => None,
            })
            .collect()
    }

    fn skipped(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                EventKind::StageSkipped { stage, .. } => Some(stage.clone()),
                _ => None,
            })
            .collect()
    }
}

pub(crate) fn request(yaml: &str, max_parallel: usize) -> RunRequest {
    let plan = crate::pipeline::parse("test.yml", yaml).expect("a valid pipeline");
    RunRequest {
        run_id: "01test".into(),
        plan,
        commit: crate::commit::CommitInfo::for_tests(),
        workspace: crate::stages::container::tar_of(&[("README", b"hi", 0o644)], &[]),
        secrets: BTreeMap::from([("TOKEN".to_string(), "s3cr3t-value".to_string())]),
        max_parallel,
        var_overrides: Default::default(),
        shutdown: CancellationToken::new(),
        policy: crate::policy::RunPolicy::open(),
        repo: None,
        takeover: Default::default(),
    }
}

pub(crate) async fn run_with(fake: &Arc<FakeEngine>, request: RunRequest, cancel: CancellationToken) -> Ran {
    let (tx, mut rx) = crate::channel::channel(crate::channel::OutputLimits::default());
    let scheduler = tokio::spawn(run(crate::engine::Engine::fake(fake.clone()), request, Emitter::new(tx), cancel));
    let (mut events, mut logs) = (Vec::new(), Vec::new());
    while let Some(emitted) = rx.recv().await {
        match emitted {
            Emitted::Event(e) => events.push(e.kind),
            Emitted::Log(l) => logs.push(l),
        }
    }
    let state = scheduler.await.expect("the scheduler does not panic");
    Ran { state, events, logs }
}

async fn run_yaml(fake: &Arc<FakeEngine>, yaml: &str, max_parallel: usize) -> Ran {
    run_with(fake, request(yaml, max_parallel), CancellationToken::new()).await
}

/// Nothing of the run is left on the engine, and the run said so last.
fn nothing_left(fake: &FakeEngine, ran: &Ran) {
    assert!(fake.remaining().is_empty(), "steps left behind: {:?}", fake.remaining().iter().map(|s| &s.name).collect::<Vec<_>>());
    assert!(fake.remaining_scopes().is_empty(), "network/volume left behind: {:?}", fake.remaining_scopes());
    assert!(fake.journal().contains(&Call::DestroyedRun("01test".into())), "the run was not torn down");
    assert!(matches!(ran.events.last(), Some(EventKind::RunFinished { .. })), "RunFinished is not last: {:?}", ran.events.last());
}

const DIAMOND: &str = "name: p
stages:
  prepare: {image: busybox, commands: [\"true\"]}
  lint: {image: busybox, needs: [prepare], commands: [\"true\"]}
  test: {image: busybox, needs: [prepare], commands: [\"true\"]}
  package: {image: busybox, needs: [lint, test], commands: [\"true\"]}
";

#[tokio::test(start_paused = true)]
async fn stages_start_only_after_what_they_need_and_the_run_is_torn_down() {
    let fake = FakeEngine::new();
    fake.on_stage("lint", [Behaviour::exits(0).takes(Duration::from_secs(3))]);
    fake.on_stage("test", [Behaviour::exits(0).takes(Duration::from_secs(1))]);
    let ran = run_yaml(&fake, DIAMOND, 4).await;
    assert_eq!(ran.state, RunState::Succeeded);
    let started = ran.started();
    assert_eq!(started.first().map(String::as_str), Some("prepare"));
    assert_eq!(started.last().map(String::as_str), Some("package"));
    // package starts after both of its needs finished, not after the first of them.
    let at = |wanted: &dyn Fn(&EventKind) -> bool| ran.events.iter().position(wanted).expect("the event");
    let lint_done = at(&|e| matches!(e, EventKind::AttemptFinished { stage, .. } if stage == "lint"));
    let package_started = at(&|e| matches!(e, EventKind::StageStarted { stage, .. } if stage == "package"));
    assert!(package_started > lint_done);
    assert_eq!(fake.most_running(), 2, "lint and test run side by side");
    nothing_left(&fake, &ran);
}

#[tokio::test(start_paused = true)]
async fn no_more_stages_run_at_once_than_the_limit() {
    let mut yaml = String::from("name: p\nstages:\n");
    for i in 0..6 {
        yaml.push_str(&format!("  s{i}: {{image: busybox, needs: [], commands: [\"true\"]}}\n"));
    }
    let fake = FakeEngine::new();
    fake.on(|_| true, [Behaviour::exits(0).takes(Duration::from_secs(2))]);
    let ran = run_yaml(&fake, &yaml, 2).await;
    assert_eq!(ran.state, RunState::Succeeded);
    assert_eq!(ran.started().len(), 6);
    assert_eq!(fake.most_running(), 2);
    nothing_left(&fake, &ran);
}

#[tokio::test(start_paused = true)]
async fn a_failed_stage_skips_what_needs_it_and_fails_the_run() {
    let fake = FakeEngine::new();
    fake.on_stage("test", [Behaviour::exits(3).complains("assertion failed")]);
    let ran = run_yaml(&fake, DIAMOND, 4).await;
    assert_eq!(ran.state, RunState::Failed);
    assert_eq!(ran.outcomes("test"), vec![AttemptOutcome::Failed { exit_code: 3 }]);
    assert_eq!(ran.skipped(), vec!["package".to_string()]);
    assert!(ran.logs.iter().any(|l| l.stage == "test" && l.text == "assertion failed"), "the stage's output reaches its log");
    nothing_left(&fake, &ran);
}

#[tokio::test(start_paused = true)]
async fn a_stage_past_its_timeout_is_stopped_and_times_out() {
    let fake = FakeEngine::new();
    fake.on_stage("slow", [Behaviour::hangs()]);
    let yaml = "name: p\nstages:\n  slow: {image: busybox, timeout: 30s, commands: [\"sleep 999\"]}\n";
    let ran = run_yaml(&fake, yaml, 1).await;
    assert_eq!(ran.state, RunState::Failed);
    assert!(matches!(ran.outcomes("slow")[..], [AttemptOutcome::TimedOut { after_secs: 30 }]), "{:?}", ran.outcomes("slow"));
    assert!(fake.journal().contains(&Call::Stopped("gantry-01test-slow-1".into())), "the step was not stopped");
    nothing_left(&fake, &ran);
}

#[tokio::test(start_paused = true)]
async fn a_failing_stage_is_retried_until_it_passes_within_its_retries() {
    let fake = FakeEngine::new();
    fake.on_stage("flaky", [Behaviour::exits(1), Behaviour::hangs(), Behaviour::exits(0)]);
    let yaml = "name: p\nstages:\n  flaky: {image: busybox, retries: 2, timeout: 10s, commands: [\"./test\"]}\n";
    let ran = run_yaml(&fake, yaml, 1).await;
    assert_eq!(ran.state, RunState::Succeeded);
    let outcomes = ran.outcomes("flaky");
    assert!(
        matches!(outcomes[..], [AttemptOutcome::Failed { exit_code: 1 }, AttemptOutcome::TimedOut { .. }, AttemptOutcome::Succeeded]),
        "{outcomes:?}"
    );
    // Each attempt is its own step, removed after it.
    let created = fake.created();
    assert_eq!(created, ["gantry-01test-flaky-1", "gantry-01test-flaky-2", "gantry-01test-flaky-3"]);
    nothing_left(&fake, &ran);
}

#[tokio::test(start_paused = true)]
async fn retries_run_out_and_a_refused_or_oom_attempt_is_the_last_word() {
    let fake = FakeEngine::new();
    fake.on_stage("bad", [Behaviour::exits(2)]);
    fake.on_stage("hog", [Behaviour::out_of_memory()]);
    let yaml = "name: p\nstages:\n  bad: {image: busybox, retries: 1, needs: [], commands: [\"false\"]}\n  hog: {image: busybox, needs: [], commands: [\"eat\"]}\n";
    let ran = run_yaml(&fake, yaml, 2).await;
    assert_eq!(ran.state, RunState::Failed);
    assert_eq!(ran.outcomes("bad"), vec![AttemptOutcome::Failed { exit_code: 2 }; 2]);
    assert!(matches!(ran.outcomes("hog")[..], [AttemptOutcome::OutOfMemory { exit_code: 137, memory: Some(_) }]), "{:?}", ran.outcomes("hog"));
    nothing_left(&fake, &ran);
}

#[tokio::test(start_paused = true)]
async fn cancelling_stops_what_runs_starts_nothing_more_and_still_tears_down() {
    let fake = FakeEngine::new();
    fake.on_stage("prepare", [Behaviour::hangs()]);
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        stop.cancel();
    });
    let ran = run_with(&fake, request(DIAMOND, 4), cancel).await;
    assert_eq!(ran.state, RunState::Cancelled);
    assert_eq!(ran.started(), vec!["prepare".to_string()], "nothing starts after a cancel");
    assert_eq!(ran.outcomes("prepare"), vec![AttemptOutcome::Cancelled]);
    nothing_left(&fake, &ran);
}

#[tokio::test(start_paused = true)]
async fn a_service_stopping_interrupts_the_run_rather_than_cancelling_it() {
    let fake = FakeEngine::new();
    fake.on_stage("prepare", [Behaviour::hangs()]);
    let mut req = request(DIAMOND, 4);
    let shutdown = CancellationToken::new();
    req.shutdown = shutdown.clone();
    let cancel = shutdown.child_token();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        shutdown.cancel();
    });
    let ran = run_with(&fake, req, cancel).await;
    assert_eq!(ran.state, RunState::Interrupted);
    nothing_left(&fake, &ran);
}

#[tokio::test(start_paused = true)]
async fn an_engine_error_is_the_stages_error_and_cleanup_still_happens() {
    let fake = FakeEngine::new();
    fake.lacks_image("ghcr.io/nowhere/missing");
    let yaml = "name: p\nstages:\n  a: {image: ghcr.io/nowhere/missing, commands: [\"true\"]}\n  b: {image: busybox, commands: [\"true\"]}\n";
    let ran = run_yaml(&fake, yaml, 1).await;
    assert_eq!(ran.state, RunState::Failed);
    match &ran.outcomes("a")[..] {
        [AttemptOutcome::Error { message }] => assert!(message.contains("could not be pulled"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(ran.skipped(), vec!["b".to_string()]);
    nothing_left(&fake, &ran);
}

#[tokio::test(start_paused = true)]
async fn a_run_whose_setup_fails_fails_with_the_reason_and_leaves_nothing() {
    let fake = FakeEngine::new();
    fake.fail(Verb::SetupRun, "network pool exhausted");
    let ran = run_yaml(&fake, DIAMOND, 4).await;
    assert_eq!(ran.state, RunState::Failed);
    assert!(ran.started().is_empty());
    match ran.events.last() {
        Some(EventKind::RunFinished { message: Some(m), .. }) => assert!(m.contains("network pool exhausted"), "{m}"),
        other => panic!("{other:?}"),
    }
    nothing_left(&fake, &ran);
}

#[tokio::test(start_paused = true)]
async fn a_run_whose_engine_stops_answering_is_interrupted_naming_it_not_failed() {
    let fake = FakeEngine::new();
    fake.fail(Verb::StartStep, "connection reset by peer");
    fake.fail(Verb::Ping, "connection refused");
    let ran = run_yaml(&fake, DIAMOND, 4).await;
    assert_eq!(ran.state, RunState::Interrupted);
    match ran.events.last() {
        Some(EventKind::RunFinished { message: Some(m), .. }) => {
            assert!(m.starts_with(super::ENGINE_LOST) && m.contains("connection refused"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    // The same failure on an engine that still answers is the stage's own failure.
    let fake = FakeEngine::new();
    fake.fail(Verb::StartStep, "no space left on device");
    assert_eq!(run_yaml(&fake, DIAMOND, 4).await.state, RunState::Failed);
}

#[tokio::test(start_paused = true)]
async fn a_step_that_cannot_be_removed_is_still_swept_at_the_end() {
    let fake = FakeEngine::new();
    fake.fail(Verb::RemoveStep, "device busy");
    let ran = run_yaml(&fake, DIAMOND, 4).await;
    assert_eq!(ran.state, RunState::Succeeded);
    let swept = ran.events.iter().find_map(|e| match e {
        EventKind::Swept { containers, .. } => Some(*containers),
        _ => None,
    });
    assert_eq!(swept, Some(4), "the end-of-run sweep removes the four stage steps");
    nothing_left(&fake, &ran);
}

#[tokio::test(start_paused = true)]
async fn the_workspace_goes_into_the_first_step_only_and_secrets_never_reach_the_log() {
    let fake = FakeEngine::new();
    fake.on_stage("prepare", [Behaviour::exits(0).prints("token is s3cr3t-value\n")]);
    let yaml = "name: p\nstages:\n  prepare: {image: busybox, secrets: [TOKEN], commands: [\"echo $TOKEN\"]}\n  next: {image: busybox, commands: [\"true\"]}\n";
    let ran = run_yaml(&fake, yaml, 1).await;
    assert_eq!(ran.state, RunState::Succeeded);
    assert_eq!(fake.uploads_of("gantry-01test-prepare-1"), vec![crate::stages::command::WORKSPACE.to_string()]);
    assert!(fake.uploads_of("gantry-01test-next-1").is_empty());
    let line = ran.logs.iter().find(|l| l.stage == "prepare" && l.text.starts_with("token is")).expect("the output line");
    assert!(!line.text.contains("s3cr3t-value"), "{}", line.text);
    nothing_left(&fake, &ran);
}

const CHAIN: &str = "name: p
stages:
  s0: {image: busybox, commands: [\"true\"]}
  s1: {image: other, commands: [\"true\"]}
";

#[tokio::test(start_paused = true)]
async fn the_next_stage_of_a_chain_is_created_while_its_need_runs_and_removed_if_it_never_does() {
    let fake = FakeEngine::new();
    fake.on_stage("s0", [Behaviour::hangs()]);
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        stop.cancel();
    });
    let ran = run_with(&fake, request(CHAIN, 4), cancel).await;
    assert_eq!(ran.state, RunState::Cancelled);
    assert!(fake.created().contains(&"gantry-01test-s1-1".to_string()), "s1 was not created ahead: {:?}", fake.created());
    assert!(fake.journal().contains(&Call::Held("gantry-01test-s1-1".into())), "s1 waited at its gate");
    assert!(!fake.journal().contains(&Call::Started("gantry-01test-s1-1".into())), "s1's commands never began");
    nothing_left(&fake, &ran);
}

#[tokio::test(start_paused = true)]
async fn a_step_created_ahead_is_the_one_its_stage_runs_and_one_for_a_skipped_stage_goes() {
    let fake = FakeEngine::new();
    fake.on_stage("s0", [Behaviour::exits(0).takes(Duration::from_secs(2))]);
    let ran = run_yaml(&fake, CHAIN, 1).await;
    assert_eq!(ran.state, RunState::Succeeded);
    assert_eq!(fake.created(), ["gantry-01test-s0-1", "gantry-01test-s1-1"], "each step is created once");
    // s1 was held while s0 ran, and its commands began only after s0 had finished.
    let journal = fake.journal();
    let at = |c: Call| journal.iter().position(|j| *j == c).unwrap_or_else(|| panic!("{c:?} missing"));
    assert!(at(Call::Held("gantry-01test-s1-1".into())) < at(Call::Started("gantry-01test-s1-1".into())));
    let s0_done = ran.events.iter().position(|e| matches!(e, EventKind::AttemptFinished { stage, .. } if stage == "s0")).unwrap();
    let s1_began = ran.events.iter().position(|e| matches!(e, EventKind::StageStarted { stage, .. } if stage == "s1")).unwrap();
    assert!(s1_began > s0_done);
    nothing_left(&fake, &ran);

    let fake = FakeEngine::new();
    fake.on_stage("s0", [Behaviour::exits(1).takes(Duration::from_secs(2))]);
    let ran = run_yaml(&fake, CHAIN, 1).await;
    assert_eq!(ran.skipped(), vec!["s1".to_string()]);
    nothing_left(&fake, &ran);
}

#[tokio::test(start_paused = true)]
async fn a_creation_ahead_that_fails_fails_its_stage_as_a_creation_in_turn_would() {
    let fake = FakeEngine::new();
    fake.lacks_image("other");
    fake.on_stage("s0", [Behaviour::exits(0).takes(Duration::from_secs(2))]);
    let ran = run_yaml(&fake, CHAIN, 1).await;
    assert_eq!(ran.state, RunState::Failed);
    match &ran.outcomes("s1")[..] {
        [AttemptOutcome::Error { message }] => assert!(message.contains("'other' is not on this engine"), "{message}"),
        other => panic!("{other:?}"),
    }
    nothing_left(&fake, &ran);
}
