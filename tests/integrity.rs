//! Delivery integrity on the real engine: a promotion that would roll its target back is
//! never approved, and waiting approvals a newer release made outdated say so.

mod common;

use std::path::Path;
use std::process::Output;

use common::{text, GatedSite};
use serde_json::Value;

const CONFIG: &str = "users:\n  rita: {role: release-manager}\n  ops: {role: admin}\n";

fn gantry(site: &GatedSite, data: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_gantry"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("GANTRY_CONFIG")
        .env_remove("GANTRY_TOKEN")
        .current_dir(site.w.dir.path())
        .output()
        .unwrap()
}

/// Runs the gated pipeline for `rev` with history in `data`; it parks; returns the run id.
fn park(site: &GatedSite, data: &Path, rev: &str) -> String {
    let out = gantry(site, data, &["run", site.pipeline.to_str().unwrap(), "--repo", site.w.repo().to_str().unwrap(), "--commit", rev]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let shown = gantry(site, data, &["show", "latest", "--json"]);
    serde_json::from_slice::<Value>(&shown.stdout).unwrap()["id"].as_str().unwrap().to_string()
}

fn show(site: &GatedSite, data: &Path, run: &str) -> Value {
    serde_json::from_slice(&gantry(site, data, &["show", run, "--json"]).stdout).unwrap()
}

fn approve(site: &GatedSite, data: &Path, config: &Path, run: &str) -> Output {
    gantry(site, data, &["--config", config.to_str().unwrap(), "approve", run, "--as", "rita"])
}

#[test]
fn an_outdated_promotion_is_refused_and_waiting_ones_a_newer_release_overtook_are_superseded() {
    let site = GatedSite::new("{role: release-manager, count: 1, forbid_author: false}");
    let config = site.w.dir.path().join("operator.yml");
    std::fs::write(&config, CONFIG).unwrap();
    let (one, other) = (site.w.data_dir(), site.w.dir.path().join("other-data"));
    site.new_version(2);
    let v2 = site.w.commit(&[("note.txt", "2")], "note");
    let older = park(&site, &one, &v2);
    site.new_version(3);
    let newer = park(&site, &one, "HEAD");
    assert_eq!(show(&site, &one, &older)["state"], "awaiting_approval");

    // The newer one goes live; the older one, still waiting, is superseded, not failed.
    let out = approve(&site, &one, &config, &newer);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(site.serving().as_deref(), Some("version 3"));
    let stale = show(&site, &one, &older);
    assert_eq!(stale["state"], "superseded", "{stale}");
    assert_eq!(stale["approval"]["state"], "superseded");
    let all: Value = serde_json::from_slice(&gantry(&site, &one, &["approvals", "--all", "--json"]).stdout).unwrap();
    let listed = all.as_array().unwrap().iter().find(|a| a["run"] == older.as_str()).unwrap().clone();
    assert_eq!(listed["state"], "superseded", "{listed}");
    let out = approve(&site, &one, &config, &older);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(&format!("run {older} is outdated")), "{}", text(&out.stderr));
    assert_eq!(site.serving().as_deref(), Some("version 3"), "nothing rolled back");

    // Another data dir never saw that promotion: its older run is refused at approval,
    // naming both versions, and marked superseded there too.
    let elsewhere = park(&site, &other, &v2);
    let out = approve(&site, &other, &config, &elsewhere);
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out.stderr);
    assert!(said.contains(&v2[..8]) && said.contains("approving would roll it back"), "{said}");
    assert_eq!(show(&site, &other, &elsewhere)["state"], "superseded");
    assert_eq!(site.serving().as_deref(), Some("version 3"));
}

fn docker_gone(run: &str) {
    let start = std::time::Instant::now();
    while !common::docker_objects_of(run).is_empty() {
        assert!(start.elapsed() < std::time::Duration::from_secs(30), "left behind: {:?}", common::docker_objects_of(run));
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn a_queued_and_a_running_run_of_the_service_are_cancelled_with_who_and_nothing_left() {
    use common::service::{Repo, Service, DEV, VIEWER};
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::new(dir.path(), "long", &["sleep 60"]);
    let svc = Service::start(dir.path(), &format!("  long: {{repo: {}}}\n", repo.path.display()), "{global: 2, per_project: 1}");
    let trigger = || svc.call("POST", "/api/projects/long/trigger", Some(DEV), Some(json!({"force": true}))).1["run"].as_str().unwrap().to_string();
    let (running, queued) = (trigger(), trigger());
    svc.wait_for(&running, &["running"]);
    assert_eq!(svc.run(&queued)["state"], "queued");

    assert_eq!(svc.call("POST", &format!("/api/runs/{queued}/cancel"), Some(VIEWER), None).0, 403);
    let (status, answer) = svc.call("POST", &format!("/api/runs/{queued}/cancel"), Some(DEV), None);
    assert_eq!((status, answer["outcome"].as_str()), (202, Some("dequeued")), "{answer}");
    let done = svc.run(&queued);
    assert_eq!((done["state"].as_str(), done["message"].as_str()), (Some("cancelled"), Some("cancelled by dev")));

    // The running one, from the command line, through the service holding the data dir.
    let token = dir.path().join("dev.token");
    std::fs::write(&token, DEV).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gantry"))
        .arg("--data-dir").arg(&svc.data).arg("--config").arg(&svc.config)
        .args(["cancel", &running, "--token-file", token.to_str().unwrap()])
        .output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("is stopping"), "{}", text(&out.stdout));
    let done = svc.wait_for(&running, &["cancelled", "failed", "succeeded"]);
    assert_eq!((done["state"].as_str(), done["message"].as_str()), (Some("cancelled"), Some("cancelled by dev")), "{done}");
    docker_gone(&running);
    let (status, answer) = svc.call("POST", &format!("/api/runs/{running}/cancel"), Some(DEV), None);
    assert_eq!(status, 409, "{answer}");
}

#[test]
fn gantry_cancel_stops_a_gantry_run_of_another_terminal_as_ctrl_c_does() {
    let w = common::World::new(&[]);
    let p = w.pipeline("name: long\nstages:\n  wait:\n    image: gantry/busybox\n    commands: [\"sleep 60\"]\n");
    let mut run = w.gantry().env_remove("GANTRY_CONFIG").arg("run").arg(&p).arg("--repo").arg(w.repo()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let id = common::wait_for_running_stage("wait", std::time::Duration::from_secs(60));
    let out = w.gantry().env_remove("GANTRY_CONFIG").args(["cancel", "latest", "--as", "ada"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(run.wait().unwrap().code(), Some(130), "gantry run ends as after Ctrl-C");
    let shown = w.show(&id);
    assert_eq!((shown["state"].as_str(), shown["message"].as_str()), (Some("cancelled"), Some("cancelled by ada")), "{shown}");
    docker_gone(&id);
}
