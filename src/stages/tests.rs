//! Each stage kind's executor against the in-memory engine, through the scheduler as a run
//! drives it: what it asks of the seams, what it reports, and what it leaves standing.

use std::collections::HashMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::engine::fake::{Behaviour, Call, FakeEngine};
use crate::engine::{Environments, Serving};
use crate::events::{AttemptOutcome, Change, EventKind, RunState, StageResult};
use crate::scheduler::tests::{request, run_with, Ran};
use crate::smoke::{JourneyReport, Outcome, SmokeReport, StepReport};

/// A fake engine holding Gantry's agents, and the record that vouches for them.
struct Lab {
    fake: Arc<FakeEngine>,
    record: tempfile::TempDir,
}

impl Lab {
    fn new() -> Lab {
        let fake = FakeEngine::new();
        let record = tempfile::tempdir().expect("temp dir");
        let mut lines = String::from("# written by agents/build.sh\n");
        for agent in ["smoke", "load", "router"] {
            let id = fake.add_image(&format!("gantry/{agent}"), HashMap::new());
            lines.push_str(&format!("{agent} {id}\n"));
        }
        std::fs::write(record.path().join("agent-images"), lines).expect("record");
        Lab { fake, record }
    }

    async fn run(&self, run_id: &str, yaml: &str) -> Ran {
        let mut req = request(yaml, 4);
        req.run_id = run_id.into();
        req.policy.agents.record = Some(self.record.path().join("agent-images"));
        req.workspace = crate::stages::container::tar_of(&[("app/Dockerfile", b"FROM scratch\n", 0o644)], &[("app", 0o755)]);
        run_with(&self.fake, req, CancellationToken::new()).await
    }
}

fn outcome(ran: &Ran, stage: &str) -> AttemptOutcome {
    ran.events
        .iter()
        .rev()
        .find_map(|e| match e {
            EventKind::AttemptFinished { stage: s, result, .. } if s == stage => Some(result.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("stage {stage} did not finish: {:?}", ran.events))
}

fn result(ran: &Ran, stage: &str) -> Option<StageResult> {
    ran.events.iter().find_map(|e| match e {
        EventKind::StageResult { stage: s, result } if s == stage => Some(result.clone()),
        _ => None,
    })
}

fn log_of(ran: &Ran, stage: &str) -> String {
    ran.logs.iter().filter(|l| l.stage == stage).map(|l| l.text.as_str()).collect::<Vec<_>>().join("\n")
}

#[tokio::test(start_paused = true)]
async fn a_build_stage_builds_its_context_under_the_interpolated_tag_and_reports_the_id() {
    let lab = Lab::new();
    let ran = lab.run("01b", "name: p\nstages:\n  image: {kind: build, context: app, tag: \"app:${commit.short}\"}\n").await;
    assert_eq!(ran.state, RunState::Succeeded, "{:?}", ran.events);
    assert!(lab.fake.journal().contains(&Call::Built("app:aaaaaaaa".into())));
    match result(&ran, "image") {
        Some(StageResult::Image { tag, image_id }) => {
            assert_eq!(tag, "app:aaaaaaaa");
            assert!(image_id.starts_with("sha256:"), "{image_id}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_build_whose_context_is_not_in_the_commit_fails_naming_it() {
    let lab = Lab::new();
    let ran = lab.run("01b", "name: p\nstages:\n  image: {kind: build, context: nowhere, tag: app}\n").await;
    assert_eq!(ran.state, RunState::Failed);
    match outcome(&ran, "image") {
        AttemptOutcome::Error { message } => assert!(message.contains("nowhere"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(!lab.fake.journal().iter().any(|c| matches!(c, Call::Built(_))), "nothing was built");
}

const PROVISION: &str = "name: p
stages:
  staging:
    kind: provision
    environment: staging
    services:
      cache: {image: gantry/busybox, command: \"exec httpd -f -p 8081\", ports: [\"8081\"]}
";

#[tokio::test(start_paused = true)]
async fn provisioning_starts_missing_services_and_leaves_unchanged_ones_running() {
    let lab = Lab::new();
    let first = lab.run("01p1", PROVISION).await;
    assert_eq!(first.state, RunState::Succeeded, "{:?}", first.events);
    let changes = |ran: &Ran| match result(ran, "staging") {
        Some(StageResult::Environment { services, .. }) => services.into_iter().map(|s| (s.service, s.change)).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(changes(&first), vec![("cache".to_string(), Change::Created)]);
    let second = lab.run("01p2", PROVISION).await;
    assert_eq!(changes(&second), vec![("cache".to_string(), Change::Unchanged)]);
    let started = lab.fake.journal().iter().filter(|c| matches!(c, Call::ServiceStarted(_))).count();
    assert_eq!(started, 1, "an unchanged service is not restarted");
    // The environment outlives the runs that made it.
    assert_eq!(lab.fake.services("staging").await.unwrap().len(), 1);
}

const DEPLOY: &str = "name: p
stages:
  live:
    kind: deploy
    environment: staging
    app: shop
    image: shop:1
    port: 8080
    health: {http: /healthz, deadline: 30s}
";

#[tokio::test(start_paused = true)]
async fn a_deploy_goes_live_after_its_probe_and_keeps_the_one_it_replaced_for_a_rollback() {
    let lab = Lab::new();
    let first = lab.run("01d1", DEPLOY).await;
    assert_eq!(first.state, RunState::Succeeded, "{}", log_of(&first, "live"));
    let second = lab.run("01d2", DEPLOY).await;
    assert_eq!(second.state, RunState::Succeeded, "{}", log_of(&second, "live"));
    let versions = lab.fake.versions("staging", "shop").await.unwrap();
    let serving: Vec<(Option<String>, Serving)> = versions.iter().map(|v| (v.run_id.clone(), v.serving)).collect();
    assert_eq!(serving, vec![(Some("01d1".into()), Serving::Kept), (Some("01d2".into()), Serving::Live)]);
    assert!(log_of(&second, "live").contains("kept stopped for a rollback"), "{}", log_of(&second, "live"));
    // The probe was a step of the run, on the environment's network, and is gone.
    let probe = lab.fake.created().into_iter().find(|n| n.contains("-probe-")).expect("a probe ran");
    assert!(probe.starts_with("gantry-01d1-live-1-probe-"), "{probe}");
    assert!(lab.fake.remaining().is_empty());
    assert!(matches!(result(&second, "live"), Some(StageResult::Deployment(_))));
}

#[tokio::test(start_paused = true)]
async fn an_unhealthy_new_version_is_removed_and_the_live_one_keeps_serving() {
    let lab = Lab::new();
    assert_eq!(lab.run("01d1", DEPLOY).await.state, RunState::Succeeded);
    lab.fake.on_probes([Behaviour::exits(1).prints("GET http://x/healthz: connection refused\n")]);
    let bad = lab.run("01d2", DEPLOY).await;
    assert_eq!(bad.state, RunState::Failed);
    match outcome(&bad, "live") {
        AttemptOutcome::Error { message } => {
            assert!(message.contains("failed its health check"), "{message}");
            assert!(message.contains("the previous version keeps serving"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let versions = lab.fake.versions("staging", "shop").await.unwrap();
    assert_eq!(versions.len(), 1, "the unhealthy version is gone");
    assert_eq!((versions[0].run_id.as_deref(), versions[0].serving), (Some("01d1"), Serving::Live));
}

#[tokio::test(start_paused = true)]
async fn a_missing_app_image_is_said_plainly_and_nothing_is_started() {
    let lab = Lab::new();
    lab.fake.lacks_image("shop:1");
    let ran = lab.run("01d1", DEPLOY).await;
    assert_eq!(ran.state, RunState::Failed);
    match outcome(&ran, "live") {
        AttemptOutcome::Error { message } => assert!(message.contains("'shop:1' is not on this engine"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(lab.fake.versions("staging", "shop").await.unwrap().is_empty());
}

/// The deploy above, then a smoke stage against it.
fn smoke_yaml() -> String {
    format!("{DEPLOY}  smoke:\n    kind: smoke\n    target: staging\n    app: shop\n    journeys:\n      - name: browse\n        steps:\n          - {{name: home, path: /, expect: {{status: 200}}}}\n")
}

fn report(outcome: Outcome, status: u16) -> Vec<u8> {
    let step = StepReport { status: Some(status), outcome, ..StepReport::skipped("home") };
    let passed = outcome == Outcome::Passed;
    let journey = JourneyReport { name: "browse".into(), passed, duration_ms: 3, steps: vec![step] };
    serde_json::to_vec(&SmokeReport { passed, duration_ms: 3, journeys: vec![journey] }).unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_smoke_agent_gets_its_spec_aimed_at_the_live_version_and_its_report_decides() {
    let lab = Lab::new();
    lab.fake.on_stage("smoke", [Behaviour::exits(0).writes("/gantry/out/report.json", report(Outcome::Passed, 200))]);
    let ran = lab.run("01s", &smoke_yaml()).await;
    assert_eq!(ran.state, RunState::Succeeded, "{}", log_of(&ran, "smoke"));
    assert!(matches!(result(&ran, "smoke"), Some(StageResult::Smoke(r)) if r.passed));
    assert_eq!(lab.fake.uploads_of("gantry-01s-smoke-1"), vec!["/gantry".to_string()], "the spec goes into the scratch volume");
    let agent = lab.fake.journal();
    assert!(agent.contains(&Call::Removed("gantry-01s-smoke-1".into())));
}

#[tokio::test(start_paused = true)]
async fn a_failed_journey_fails_the_smoke_stage_and_a_missing_report_is_an_error() {
    let lab = Lab::new();
    lab.fake.on_stage("smoke", [Behaviour::exits(1).writes("/gantry/out/report.json", report(Outcome::Failed, 500))]);
    let failed = lab.run("01s1", &smoke_yaml()).await;
    assert_eq!(failed.state, RunState::Failed);
    assert!(matches!(outcome(&failed, "smoke"), AttemptOutcome::Error { message } if message.contains("browse")));
    assert!(matches!(result(&failed, "smoke"), Some(StageResult::Smoke(r)) if !r.passed), "the failing report is kept");

    lab.fake.on_stage("smoke", [Behaviour::exits(2)]);
    let silent = lab.run("01s2", &smoke_yaml()).await;
    assert!(
        matches!(outcome(&silent, "smoke"), AttemptOutcome::Error { message } if message == "the smoke agent failed (exit code 2) without a report")
    );
}

#[tokio::test(start_paused = true)]
async fn a_replaced_agent_image_is_refused_before_it_runs() {
    let lab = Lab::new();
    // Someone's own gantry/smoke, built over the one the record vouches for.
    lab.fake.add_image("gantry/smoke", HashMap::from([("evil".to_string(), "yes".to_string())]));
    let ran = lab.run("01s", "name: p\nstages:\n  smoke:\n    kind: smoke\n    target: staging\n    app: shop\n    journeys: [{name: j, steps: [{name: s, path: /}]}]\n").await;
    assert_eq!(ran.state, RunState::Failed);
    assert!(!lab.fake.created().iter().any(|n| n.contains("smoke")), "the replaced agent never ran");
}

#[tokio::test(start_paused = true)]
async fn a_load_stage_without_a_live_app_says_where_to_deploy_it() {
    let lab = Lab::new();
    let yaml = "name: p\nstages:\n  load:\n    kind: load\n    target: staging\n    app: shop\n    requests: [{path: /}]\n    rate: 10/s\n    duration: 5s\n";
    let ran = lab.run("01l", yaml).await;
    match outcome(&ran, "load") {
        AttemptOutcome::Error { message } => assert!(message.contains("has no live version of app 'shop'"), "{message}"),
        other => panic!("{other:?}"),
    }
}

fn load_summary(failed_rate: f64) -> Vec<u8> {
    let summary = crate::load::LoadSummary {
        complete: true,
        elapsed_ms: 5_000,
        requests: 50,
        rate: 10.0,
        failed: (failed_rate * 50.0) as u64,
        failed_rate,
        status_counts: Default::default(),
        dropped: 0,
        bytes_received: 0,
        bytes_sent: 0,
        latency_ms: Default::default(),
        histogram: String::new(),
    };
    serde_json::to_vec(&summary).unwrap()
}

fn load_yaml() -> String {
    format!(
        "{DEPLOY}  load:\n    kind: load\n    target: staging\n    app: shop\n    requests: [{{path: /}}]\n    rate: 10/s\n    duration: 5s\n    thresholds:\n      http_req_failed: [\"rate<0.01\"]\n"
    )
}

#[tokio::test(start_paused = true)]
async fn a_load_stage_is_judged_by_its_thresholds_on_the_agents_figures() {
    let lab = Lab::new();
    lab.fake.on_stage("load", [Behaviour::exits(0).writes("/gantry/out/summary.json", load_summary(0.0))]);
    let good = lab.run("01l1", &load_yaml()).await;
    assert_eq!(good.state, RunState::Succeeded, "{}", log_of(&good, "load"));
    assert!(matches!(result(&good, "load"), Some(StageResult::Load { aborted: false, .. })));

    lab.fake.on_stage("load", [Behaviour::exits(0).writes("/gantry/out/summary.json", load_summary(0.2))]);
    let bad = lab.run("01l2", &load_yaml()).await;
    match outcome(&bad, "load") {
        AttemptOutcome::Error { message } => {
            assert!(message.starts_with("load thresholds failed"), "{message}");
            assert!(message.contains("http_req_failed rate<0.01"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

fn release_yaml() -> String {
    format!(
        "{}  release:\n    kind: promote\n    from: staging\n    to: production\n    app: shop\n    port: 8080\n    health: {{http: /healthz, deadline: 30s}}\n    gate: {{stages: [smoke]}}\n",
        smoke_yaml()
    )
}

#[tokio::test(start_paused = true)]
async fn a_passing_gate_promotes_the_image_that_passed_and_a_failing_one_changes_nothing() {
    let lab = Lab::new();
    lab.fake.add_image("shop:1", HashMap::new());
    lab.fake.on_stage("smoke", [Behaviour::exits(1).writes("/gantry/out/report.json", report(Outcome::Failed, 500))]);
    let blocked = lab.run("01r1", &release_yaml()).await;
    assert_eq!(blocked.state, RunState::Failed);
    let verdict = blocked.events.iter().find_map(|e| match e {
        EventKind::GateJudged { verdict, .. } => Some(verdict.clone()),
        _ => None,
    });
    assert!(matches!(verdict, Some(v) if !v.passed), "the gate judged, and blocked");
    assert!(lab.fake.versions("production", "shop").await.unwrap().is_empty(), "production was not touched");

    lab.fake.on_stage("smoke", [Behaviour::exits(0).writes("/gantry/out/report.json", report(Outcome::Passed, 200))]);
    let promoted = lab.run("01r2", &release_yaml()).await;
    assert_eq!(promoted.state, RunState::Succeeded, "{}", log_of(&promoted, "release"));
    let staging = lab.fake.versions("staging", "shop").await.unwrap();
    let live_in_staging = staging.iter().find(|v| v.serving == Serving::Live).expect("staging serves");
    let production = lab.fake.versions("production", "shop").await.unwrap();
    assert_eq!(production.len(), 1);
    assert_eq!(production[0].serving, Serving::Live);
    assert_eq!(production[0].image_id, live_in_staging.image_id, "the exact image that passed, by id");
}
