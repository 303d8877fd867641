//! Realistic records for the pages' tests, built as the store builds them: a fresh run
//! with its events applied one by one, starting at 2026-11-27 18:00:00 UTC.

use chrono::{DateTime, TimeZone, Utc};

use super::Viewer;
use crate::commit::CommitInfo;
use crate::config::Role;
use crate::engine::{EnvironmentView, ObjectView};
use crate::events::{AttemptOutcome, Deployment, DeploymentOutcome, Event, EventKind, LogLine, RunState, StageResult, Stream};
use crate::approval::{ApprovalRequest, Decision, DecisionKind};
use crate::gate::verdict::{Check, Source, Verdict};
use crate::pipeline::spec::{ApprovalRule, DeployMode, DeploySpec};
use crate::store::RunRecord;

pub fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 18, 0, 0).unwrap()
}

pub fn viewer(role: Role) -> Viewer {
    let user = match role {
        Role::Viewer => "vera",
        Role::Developer => "dev",
        Role::ReleaseManager => "rita",
        Role::Admin => "ops",
    };
    Viewer { user: user.into(), role }
}

const PIPELINE: &str = r#"name: storefront
stages:
  test: {image: x, commands: ["true"]}
  image: {image: x, commands: ["true"], needs: [test]}
  deploy: {image: x, commands: ["true"], needs: [image]}
  release: {image: x, commands: ["true"], needs: [deploy]}
"#;

fn fresh(id: &str) -> RunRecord {
    let plan = crate::pipeline::parse("storefront.yml", PIPELINE).unwrap();
    let commit = CommitInfo {
        sha: "a1b2c3d4".repeat(5),
        short: "a1b2c3d4".into(),
        author_name: "Dev Eloper".into(),
        author_email: "dev@shop.test".into(),
        time: (base() - chrono::Duration::minutes(5)).fixed_offset(),
        summary: "Speed up the basket page".into(),
        branch: Some("main".into()),
    };
    let mut run = RunRecord::new(id.into(), &plan, "/srv/repos/storefront".into(), commit);
    run.created_at = base();
    run.project = Some("shop".into());
    run.triggered_by = Some("ci".into());
    apply(&mut run, 0, EventKind::RunCreated { pipeline: "storefront".into(), commit: "a1b2c3d4".repeat(5) });
    run
}

fn apply(run: &mut RunRecord, secs: i64, kind: EventKind) {
    run.apply(&Event { at: base() + chrono::Duration::seconds(secs), kind });
}

fn stage(run: &mut RunRecord, name: &str, from: i64, to: i64, result: Option<StageResult>) {
    apply(run, from, EventKind::StageStarted { stage: name.into(), attempt: 1 });
    if let Some(result) = result {
        apply(run, to, EventKind::StageResult { stage: name.into(), result });
    }
    let done = EventKind::AttemptFinished { stage: name.into(), attempt: 1, result: AttemptOutcome::Succeeded, will_retry: false };
    apply(run, to, done);
}

/// test, image and deploy succeeded (0-70s).
fn built(id: &str) -> RunRecord {
    let mut run = fresh(id);
    stage(&mut run, "test", 0, 10, None);
    let image = StageResult::Image { tag: "storefront:a1b2c3d4".into(), image_id: "sha256:0123456789abcdef".into() };
    stage(&mut run, "image", 10, 40, Some(image));
    let deployed = deployment("staging", "storefront:a1b2c3d4", id, 40, DeploymentOutcome::Succeeded);
    stage(&mut run, "deploy", 40, 70, Some(StageResult::Deployment(deployed)));
    run
}

/// A run whose `image` stage is building.
pub fn running_run(id: &str) -> RunRecord {
    let mut run = fresh(id);
    stage(&mut run, "test", 0, 10, None);
    apply(&mut run, 10, EventKind::StageStarted { stage: "image".into(), attempt: 1 });
    run
}

fn check(name: &str, measured: &str, threshold: &str, passed: bool) -> Check {
    Check { name: name.into(), source: Source::Apm, measured: Some(measured.into()), threshold: threshold.into(), passed, note: None }
}

/// A run whose promotion was blocked by its gate: `apm: error_rate` measured 0.031 (<0.01).
pub fn blocked_run(id: &str) -> RunRecord {
    let mut run = built(id);
    apply(&mut run, 70, EventKind::StageStarted { stage: "release".into(), attempt: 1 });
    let verdict = Verdict::new(vec![
        Check { source: Source::LoadThreshold, ..check("http_req_duration", "143.2ms", "p(95)<200ms", true) },
        check("apm: error_rate", "0.031", "<0.01", false),
    ]);
    let why = format!("gate blocked: {}", verdict.blocked_by().unwrap());
    apply(&mut run, 100, EventKind::GateJudged { stage: "release".into(), verdict });
    let failed = EventKind::AttemptFinished {
        stage: "release".into(),
        attempt: 1,
        result: AttemptOutcome::Error { message: why.clone() },
        will_retry: false,
    };
    apply(&mut run, 100, failed);
    apply(&mut run, 100, EventKind::RunFinished { state: RunState::Failed, message: Some(why) });
    run
}

fn request(count: u32) -> ApprovalRequest {
    let deploy = DeploySpec {
        environment: "production".into(),
        mode: DeployMode::Replace,
        image: Some("sha256:0123456789abcdef".into()),
        app: "storefront".into(),
        port: Some(8080),
        publish: None,
        env: Default::default(),
        command: None,
        health: None,
        replicas: None,
        update: None,
        placement: Vec::new(),
    };
    ApprovalRequest {
        stage: "release".into(),
        from: "staging".into(),
        environment: "production".into(),
        rule: ApprovalRule { role: Role::ReleaseManager, count, forbid_author: true, expires: None },
        app: "storefront".into(),
        image: "storefront:a1b2c3d4".into(),
        image_id: "sha256:0123456789abcdef".into(),
        deploy,
        verify: None,
        vars: Default::default(),
        timeout_secs: 300,
        requested_at: base() + chrono::Duration::seconds(100),
        expires_at: Some(base() + chrono::Duration::days(1)),
        change: Default::default(),
        branches: Vec::new(),
    }
}

fn parked(id: &str, count: u32) -> RunRecord {
    let mut run = built(id);
    apply(&mut run, 70, EventKind::StageStarted { stage: "release".into(), attempt: 1 });
    let verdict = Verdict::new(vec![check("apm: error_rate", "0.002", "<0.01", true)]);
    apply(&mut run, 100, EventKind::GateJudged { stage: "release".into(), verdict });
    apply(&mut run, 100, EventKind::ApprovalRequested { request: request(count) });
    let waits = AttemptOutcome::AwaitingApproval { environment: "production".into() };
    apply(&mut run, 100, EventKind::AttemptFinished { stage: "release".into(), attempt: 1, result: waits, will_retry: false });
    apply(&mut run, 100, EventKind::RunFinished { state: RunState::AwaitingApproval, message: None });
    run
}

/// A run whose gate passed, waiting for one release manager's approval.
pub fn parked_run(id: &str) -> RunRecord {
    parked(id, 1)
}

fn decide(run: &mut RunRecord, secs: i64, kind: DecisionKind, comment: &str) {
    let decision = Decision {
        user: "rita".into(),
        role: Role::ReleaseManager,
        kind,
        comment: Some(comment.into()),
        at: base() + chrono::Duration::seconds(secs),
    };
    apply(run, secs, EventKind::ApprovalDecided { decision });
}

/// A run needing two approvals, approved once by rita.
pub fn half_approved_run(id: &str) -> RunRecord {
    let mut run = parked(id, 2);
    decide(&mut run, 240, DecisionKind::Approve, "looks good");
    run
}

/// A parked run rita rejected at 18:05:00.
pub fn rejected_run(id: &str) -> RunRecord {
    let mut run = parked_run(id);
    decide(&mut run, 300, DecisionKind::Reject, "p99 looks off");
    let message = Some("the promotion to production was rejected by rita: p99 looks off".into());
    apply(&mut run, 300, EventKind::RunFinished { state: RunState::Failed, message });
    run
}

pub fn log(stage: &str, text: &str) -> LogLine {
    LogLine { at: base(), stage: stage.into(), attempt: 1, stream: Stream::Stdout, text: text.into() }
}

/// A deployment of `image` to `env` by run `run_id`, started `secs` after the base time and
/// taking 20s.
pub fn deployment(env: &str, image: &str, run_id: &str, secs: i64, outcome: DeploymentOutcome) -> Deployment {
    Deployment {
        environment: env.into(),
        app: "storefront".into(),
        image: image.into(),
        image_id: "sha256:0123456789abcdef".into(),
        commit: "a1b2c3d4".repeat(5),
        commit_time: (base() - chrono::Duration::minutes(5)).fixed_offset(),
        author: "Dev Eloper".into(),
        run_id: run_id.into(),
        pipeline: "storefront".into(),
        started_at: base() + chrono::Duration::seconds(secs),
        finished_at: base() + chrono::Duration::seconds(secs + 20),
        outcome,
        url: Some("http://127.0.0.1:18080".into()),
        replaced: Vec::new(),
    }
}

fn object(name: &str, image: &str, of: &str) -> ObjectView {
    ObjectView { name: name.into(), image: image.into(), running: true, of: of.into(), commit: None, url: None, serving: None }
}

/// production: storefront:a1b2c3d4 live, the previous version kept, a router and a cache.
pub fn production() -> EnvironmentView {
    let live = ObjectView {
        commit: Some("a1b2c3d4".repeat(5)),
        serving: Some("live".into()),
        ..object("gantry-production-storefront-r3", "storefront:a1b2c3d4", "storefront")
    };
    let kept = ObjectView {
        running: false,
        commit: Some("0ld0ld0ld0".into()),
        serving: Some("stopped (kept for rollback)".into()),
        ..object("gantry-production-storefront-r0", "storefront:0ld", "storefront")
    };
    let router =
        ObjectView { url: Some("http://127.0.0.1:18080".into()), ..object("gantry-production-storefront", "gantry/router", "storefront") };
    EnvironmentView {
        name: "production".into(),
        network: "gantry-env-production".into(),
        services: vec![object("gantry-production-cache", "redis:7", "cache")],
        routers: vec![router],
        versions: vec![live, kept],
        tasks: Vec::new(),
    }
}
