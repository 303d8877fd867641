//! Release-manager approval of gated promotions, on the real engine with the real binary:
//! the rules (self-approval, roles, rejection, expiry), a promotion that happens only after
//! approval (checked over HTTP), exactly one promotion under 100 simultaneous approvals,
//! and a promotion that survives kill -9 of the approving process.
//!
//! The app is busybox's httpd serving a page that says which commit it is: small images,
//! built in a second, so these tests spend their time on approvals, not on compilers.

mod common;

use std::io::BufRead;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{docker_objects_of, http_get, stage, text, GatedSite};
use serde_json::Value;

const CONFIG: &str = "users:
  rita: {role: release-manager, emails: [rita@example.com]}
  ops:  {role: admin, emails: [ops@example.com]}
  ada:  {role: release-manager, emails: [ada@example.com]}   # the author of the test commits
  ci:   {role: release-manager}                             # starts the runs (--as ci)
  dev:  {role: developer, emails: [dev@example.com]}
";

/// The gated site (see `common::GatedSite`) and the operator config.
struct Gated {
    site: GatedSite,
    config: std::path::PathBuf,
}

impl std::ops::Deref for Gated {
    type Target = GatedSite;
    fn deref(&self) -> &GatedSite {
        &self.site
    }
}

impl Gated {
    fn new(approval: &str) -> Gated {
        let site = GatedSite::new(approval);
        let config = site.w.dir.path().join("gantry-config.yml");
        std::fs::write(&config, CONFIG).unwrap();
        Gated { site, config }
    }

    /// Runs the pipeline for the repository's head as `ci`; it must end waiting for
    /// approval (exit 3). Returns the run id.
    fn parked_run(&self) -> String {
        let out = self.w.run(&self.pipeline, &["--as", "ci"]);
        assert_eq!(out.status.code(), Some(3), "stdout: {}\nstderr: {}", text(&out.stdout), text(&out.stderr));
        let run = self.w.latest();
        assert_eq!(run["state"], "awaiting_approval", "{run}");
        run["id"].as_str().unwrap().to_string()
    }

    fn decide(&self, verb: &str, run: &str, user: &str, extra: &[&str]) -> Command {
        let mut cmd = self.w.gantry();
        cmd.arg("--config").arg(&self.config).args([verb, run, "--as", user]).args(extra);
        cmd
    }

    fn approve(&self, run: &str, user: &str, extra: &[&str]) -> Output {
        self.decide("approve", run, user, extra).output().unwrap()
    }

    /// Deployments recorded in production for `run`.
    fn prod_deployments_of(&self, run: &str) -> Vec<Value> {
        let env = self.w.json(&["env", "show", &self.prod.name]);
        env["deployments"].as_array().unwrap().iter().filter(|d| d["run_id"] == run).cloned().collect()
    }

}

fn refused(out: &Output, needle: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "expected a refusal; stdout: {}\nstderr: {err}", text(&out.stdout));
    assert!(err.contains(needle), "expected `{needle}` in: {err}");
}

#[test]
fn only_a_release_manager_who_is_not_the_author_promotes_and_every_decision_is_kept() {
    let g = Gated::new("{role: release-manager, count: 1, forbid_author: true}");
    let run = g.parked_run();
    assert_eq!(g.serving(), None, "nothing may reach production before approval");

    let pending = g.w.json(&["approvals"]);
    let pending = pending.as_array().unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0]["run"], run.as_str());
    assert_eq!(pending[0]["state"], "pending");
    assert_eq!(pending[0]["remaining"], 1);
    assert_eq!(pending[0]["environment"], g.prod.name.as_str());
    let staged_image = stage(&g.w.show(&run), "image")["result"]["image_id"].clone();
    assert_eq!(pending[0]["image_id"], staged_image, "the request is for the image that passed, by id");

    refused(&g.approve(&run, "ada", &[]), "ada cannot approve run");
    refused(&g.approve(&run, "ada", &[]), "authored commit");
    refused(&g.approve(&run, "ci", &[]), "triggered the run");
    refused(&g.approve(&run, "dev", &[]), "dev (developer) cannot decide on promotions");
    refused(&g.approve(&run, "mallory", &[]), "no user 'mallory'");
    // None of those refusals changed anything.
    let shown = g.w.show(&run);
    assert_eq!(shown["approval"]["decisions"].as_array().unwrap().len(), 0, "{shown}");
    assert_eq!(shown["state"], "awaiting_approval");

    let out = g.approve(&run, "rita", &["--comment", "smoke and load are green"]);
    assert!(out.status.success(), "stdout: {}\nstderr: {}", text(&out.stdout), text(&out.stderr));
    assert_eq!(g.serving().as_deref(), Some("version 1"), "production serves the approved version");

    let shown = g.w.show(&run);
    assert_eq!(shown["state"], "succeeded", "{shown}");
    assert_eq!(stage(&shown, "release")["state"], "succeeded");
    let approval = &shown["approval"];
    assert_eq!(approval["state"], "promoted");
    assert_eq!(approval["claimed_by"], "rita");
    let decisions = approval["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0]["user"], "rita");
    assert_eq!(decisions[0]["kind"], "approve");
    assert_eq!(decisions[0]["comment"], "smoke and load are green");
    assert!(decisions[0]["at"].is_string());
    let deployed = g.prod_deployments_of(&run);
    assert_eq!(deployed.len(), 1);
    assert_eq!(deployed[0]["image_id"], staged_image);
    assert!(g.w.json(&["approvals"]).as_array().unwrap().is_empty());
    refused(&g.approve(&run, "ops", &[]), "is already approved (by rita)");

    // A second version: rejected, with its reason; production keeps the first.
    g.new_version(2);
    let second = g.parked_run();
    let out = g.decide("reject", &second, "ops", &["--reason", "freeze until Monday"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    refused(&g.approve(&second, "rita", &[]), "was rejected by ops: freeze until Monday");
    let shown = g.w.show(&second);
    assert_eq!(shown["state"], "failed");
    assert_eq!(shown["approval"]["state"], "rejected");
    assert_eq!(stage(&shown, "release")["message"], "rejected by ops: freeze until Monday");
    assert_eq!(g.serving().as_deref(), Some("version 1"));
    assert!(g.prod_deployments_of(&second).is_empty());

    // The human view of the decisions.
    let out = g.w.gantry().args(["show", &run]).output().unwrap();
    let shown = text(&out.stdout);
    assert!(shown.contains("approval  promoted") && shown.contains("approved by rita (release-manager): smoke and load are green"), "{shown}");
    let _ = &g.staging;
}

#[test]
fn an_approval_while_docker_is_unreachable_records_nothing() {
    let g = Gated::new("{count: 1}");
    let run = g.parked_run();
    // The approval would have to promote: without an engine it is refused before anything is recorded.
    let out = g.approve(&run, "rita", &["--docker-host", "unix:///nonexistent/docker.sock"]);
    refused(&out, "/nonexistent/docker.sock");
    let shown = g.w.show(&run);
    assert_eq!(shown["state"], "awaiting_approval", "{shown}");
    assert_eq!(shown["approval"]["decisions"].as_array().unwrap().len(), 0);
    // Once the engine answers, the same approval goes through.
    assert!(g.approve(&run, "rita", &[]).status.success());
    assert_eq!(g.serving().as_deref(), Some("version 1"));
}

#[test]
fn an_expired_request_is_recorded_and_cannot_be_approved() {
    let g = Gated::new("{expires: 2s}");
    let run = g.parked_run();
    std::thread::sleep(Duration::from_millis(2500));
    // Any command notices the expiry and records it.
    assert!(g.w.json(&["approvals"]).as_array().unwrap().is_empty());
    let shown = g.w.show(&run);
    assert_eq!(shown["approval"]["state"], "expired", "{shown}");
    assert_eq!(shown["state"], "failed");
    refused(&g.approve(&run, "rita", &[]), "expired");
    assert_eq!(g.serving(), None);
}

#[test]
fn a_hundred_simultaneous_approvals_promote_exactly_once() {
    let g = Gated::new("{count: 1}");
    let run = g.parked_run();
    let users = ["rita", "ops"];
    let children: Vec<Child> = (0..100)
        .map(|i| g.decide("approve", &run, users[i % 2], &[]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap())
        .collect();
    let outputs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let succeeded: Vec<&Output> = outputs.iter().filter(|o| o.status.success()).collect();
    assert_eq!(succeeded.len(), 1, "exactly one approval promotes");
    for o in outputs.iter().filter(|o| !o.status.success()) {
        refused(o, "is already approved");
    }
    let shown = g.w.show(&run);
    assert_eq!(shown["approval"]["decisions"].as_array().unwrap().len(), 1, "{shown}");
    assert_eq!(shown["approval"]["state"], "promoted");
    assert_eq!(g.prod_deployments_of(&run).len(), 1, "one promotion recorded");
    assert_eq!(g.serving().as_deref(), Some("version 1"));
    let app_versions = common::env_containers(&g.prod.name, "app");
    assert_eq!(app_versions.len(), 1, "one version in production: {app_versions:?}");
}

/// Starts `gantry approve`, waits for the moment given by `until`, and kills it with
/// SIGKILL: the approval is recorded, the promotion is not finished.
fn approve_then_kill(g: &Gated, run: &str, until: &dyn Fn(&mut dyn BufRead) -> bool) {
    let mut child = g.decide("approve", run, "rita", &[]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    assert!(until(&mut out), "the approval process ended before the moment to kill it");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_promotion_interrupted_by_kill_9_is_finished_once_by_the_next_command() {
    let g = Gated::new("{count: 1}");

    // Killed right after the approval and claim are recorded, before anything is deployed.
    let run = g.parked_run();
    approve_then_kill(&g, &run, &|out| {
        let mut line = String::new();
        while out.read_line(&mut line).unwrap_or(0) > 0 {
            if line.contains("promoting") {
                return true;
            }
            line.clear();
        }
        false
    });
    let status = g.w.gantry().args(["runs"]).output().unwrap();
    assert!(status.status.success(), "{}", text(&status.stderr));
    assert!(text(&status.stderr).contains(&format!("finishing the promotion of run {run}")), "{}", text(&status.stderr));
    let shown = g.w.show(&run);
    assert_eq!(shown["state"], "succeeded", "{shown}");
    assert_eq!(shown["approval"]["state"], "promoted");
    assert_eq!(g.prod_deployments_of(&run).len(), 1);
    assert_eq!(g.serving().as_deref(), Some("version 1"));

    // Killed in the middle of the deployment: once the new version's container exists.
    g.new_version(2);
    let second = g.parked_run();
    let prod = g.prod.name.clone();
    let second_id = second.clone();
    approve_then_kill(&g, &second, &move |_| {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            let filter_env = format!("label=io.gantry.environment={prod}");
            let filter_run = format!("label=io.gantry.run={second_id}");
            let out = Command::new("docker")
                .args(["ps", "-aq", "--filter", &filter_env, "--filter", &filter_run, "--filter", "label=io.gantry.role=app"])
                .output()
                .unwrap();
            if !text(&out.stdout).trim().is_empty() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    });
    let out = g.w.gantry().arg("--config").arg(&g.config).args(["approvals"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(&format!("finishing the promotion of run {second}")), "{}", text(&out.stderr));
    let log = text(&g.w.gantry().args(["logs", &second, "release"]).output().unwrap().stdout);
    eprintln!("the resumed promotion's log:\n{log}");
    let shown = g.w.show(&second);
    assert_eq!(shown["state"], "succeeded", "{shown}");
    assert_eq!(g.prod_deployments_of(&second).len(), 1, "promoted once, not twice");
    assert_eq!(g.serving().as_deref(), Some("version 2"));
    // Killed after the new version went live, while the old one is being retired: the
    // next command adopts the live version instead of deploying it again.
    g.new_version(3);
    let third = g.parked_run();
    let port = g.port;
    approve_then_kill(&g, &third, &move |_| {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if http_get(port, "/index.html").is_some_and(|(_, body)| body.trim() == "version 3") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        false
    });
    let out = g.w.gantry().args(["runs"]).output().unwrap();
    assert!(text(&out.stderr).contains(&format!("finishing the promotion of run {third}")), "{}", text(&out.stderr));
    let log = text(&g.w.gantry().args(["logs", &third, "release"]).output().unwrap().stdout);
    assert!(log.contains("of this run is already live; finishing its go-live"), "{log}");
    let shown = g.w.show(&third);
    assert_eq!(shown["state"], "succeeded", "{}\n{log}", shown["message"]);
    assert_eq!(g.prod_deployments_of(&third).len(), 1, "promoted once, not twice");
    assert_eq!(g.serving().as_deref(), Some("version 3"));
    let rollback_to = &g.prod_deployments_of(&third)[0]["replaced"];
    assert_eq!(rollback_to.as_array().map(Vec::len), Some(1), "the version it replaced is kept for a rollback: {rollback_to}");

    // One version serves; the one before is kept stopped for a rollback; nothing else is left.
    assert_eq!(common::env_running(&g.prod.name, "app").len(), 1);
    assert_eq!(common::env_containers(&g.prod.name, "app").len(), 2);
    let leftovers: Vec<String> = docker_objects_of(&third)
        .into_iter()
        .filter(|o| !common::env_containers(&g.prod.name, "app").iter().any(|c| o.ends_with(&c[..12])))
        .filter(|o| !common::env_containers(&g.staging.name, "app").iter().any(|c| o.ends_with(&c[..12])))
        .collect();
    assert!(leftovers.is_empty(), "objects of the run left behind: {leftovers:?}");
}
