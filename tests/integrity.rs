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
