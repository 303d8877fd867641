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

/// A site whose pipeline previews a version in `env`, pauses `${var.pause}` seconds while
/// holding it, then puts the preview live, published on `port`. The pause stage is named
/// after `env` (`pause-ENV`): tests running at once each wait for their own.
struct LockSite {
    port: u16,
    // Dropped first: it destroys the environment.
    env: common::Env,
    w: common::World,
    p: std::path::PathBuf,
    _probe: common::World,
}

fn locking_site(prefix: &str) -> LockSite {
    let port = common::free_port();
    let probe = common::World::new(&[]);
    let env = common::Env::new(&probe, prefix);
    let (w, p) = locking_world(&env.name, port);
    LockSite { port, env, w, p, _probe: probe }
}

fn locking_world(env: &str, port: u16) -> (common::World, std::path::PathBuf) {
    let w = common::World::new(&[
        ("site/Dockerfile", "FROM gantry/busybox\nCOPY index.html /www/index.html\nCMD [\"busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n"),
        ("site/index.html", "version 1\n"),
    ]);
    let yaml = format!(
        r#"name: locking
vars: {{pause: "3"}}
stages:
  image: {{kind: build, context: site, tag: "gantry-test/lock-site:${{commit.short}}"}}
  preview: {{kind: deploy, mode: preview, environment: {env}, app: site, image: "gantry-test/lock-site:${{commit.short}}", port: 8080, publish: {port}, health: {{http: /index.html}}}}
  pause-{env}: {{image: gantry/busybox, commands: ["sleep ${{var.pause}}"]}}
  live: {{kind: deploy, mode: promote, environment: {env}, app: site}}
"#
    );
    let p = w.pipeline(&yaml);
    (w, p)
}

fn run_in(w: &common::World, data: &Path, p: &Path, extra: &[&str]) -> common::Reaped {
    common::Reaped(std::process::Command::new(env!("CARGO_BIN_EXE_gantry"))
        .arg("--data-dir").arg(data)
        .args(["run", p.to_str().unwrap(), "--repo", w.repo().to_str().unwrap(), "--plain"])
        .args(extra)
        .env_remove("GANTRY_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap())
}

fn latest_in(data: &Path) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gantry")).arg("--data-dir").arg(data).args(["show", "latest", "--json"]).output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

fn logs_of(data: &Path, run: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gantry")).arg("--data-dir").arg(data).args(["logs", run]).output().unwrap();
    text(&out.stdout)
}

#[test]
fn two_runs_take_turns_in_one_environment_and_a_third_gives_up_after_its_wait() {
    let site = locking_site("lck");
    let (port, env, w, p) = (site.port, &site.env, &site.w, &site.p);
    let (da, db, dc) = (w.dir.path().join("a"), w.dir.path().join("b"), w.dir.path().join("c"));
    let first = w.commit(&[("site/index.html", "version 1\n")], "v1");
    // Long enough for the third run below to build, wait its 1 s and give up while the first
    // still holds the environment, on a slow machine too (checked below, not assumed).
    let mut a = run_in(&w, &da, &p, &["--commit", &first, "--var", "pause=20"]);
    common::wait_for_running_stage(&format!("pause-{}", env.name), std::time::Duration::from_secs(60));
    w.commit(&[("site/index.html", "version 2\n")], "v2");
    let mut b = run_in(&w, &db, &p, &[]);
    // A third that waits 1 s at most.
    let config = w.dir.path().join("impatient.yml");
    std::fs::write(&config, "locks: {wait: 1s}\n").unwrap();
    let c = std::process::Command::new(env!("CARGO_BIN_EXE_gantry"))
        .arg("--data-dir").arg(&dc).arg("--config").arg(&config)
        .args(["run", p.to_str().unwrap(), "--repo", w.repo().to_str().unwrap(), "--plain"])
        .output().unwrap();
    assert!(a.try_wait().unwrap().is_none(), "the first run still holds the environment while the third gives up");
    assert_eq!(c.status.code(), Some(1), "{}", text(&c.stderr));
    let c_run = latest_in(&dc);
    let said = c_run["message"].as_str().unwrap_or_default().to_string();
    assert!(said.contains(&format!("waiting for environment {} (held by run", env.name)) && said.contains("for 1s; gave up"), "{said}");
    assert_ne!(serving(port).as_deref(), Some("version 2"), "nothing of the waiting runs went live");

    assert!(a.wait().unwrap().success());
    assert!(b.wait().unwrap().success(), "the second run waited its turn, then went through");
    let (ra, rb) = (latest_in(&da), latest_in(&db));
    let b_logs = logs_of(&db, rb["id"].as_str().unwrap());
    assert!(b_logs.contains(&format!("waiting for environment {} (held by run {})", env.name, ra["id"].as_str().unwrap())), "{b_logs}");
    // Nothing interleaved: the second run's preview began after the first went live.
    let a_live_end = stage_time(&ra, "live", "finished_at");
    let b_holding = b_logs.lines().find(|l| l.contains("holding environment")).unwrap_or_default().to_string();
    assert!(!b_holding.is_empty(), "{b_logs}");
    assert!(stage_time(&rb, "preview", "finished_at") > a_live_end, "b's preview ended after a went live");
    assert_eq!(serving(port).as_deref(), Some("version 2"));
}

#[test]
fn the_lock_of_a_holder_killed_with_kill_9_is_released_by_the_recovery_and_the_waiter_goes_on() {
    let site = locking_site("lk9");
    let (env, w, p) = (&site.env, &site.w, &site.p);
    let (da, db) = (w.dir.path().join("a"), w.dir.path().join("b"));
    let mut a = run_in(&w, &da, &p, &["--var", "pause=60"]);
    let holder = common::wait_for_running_stage(&format!("pause-{}", env.name), std::time::Duration::from_secs(60));
    let mut b = run_in(&w, &db, &p, &["--var", "pause=0"]);
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(b.try_wait().unwrap().is_none(), "b waits for a");
    a.kill().unwrap();
    a.wait().unwrap();
    // The next gantry command on a's data dir records a interrupted and sweeps its objects,
    // its lock among them.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gantry")).arg("--data-dir").arg(&da).arg("runs").output().unwrap();
    assert!(out.status.success());
    assert_eq!(latest_in(&da)["state"], "interrupted");
    assert!(b.wait().unwrap().success(), "b went on once a's lock was gone");
    let filter = format!("label=io.gantry.lock={}", env.name);
    let locks = std::process::Command::new("docker").args(["ps", "-aq", "--filter", &filter]).output().unwrap();
    assert!(text(&locks.stdout).trim().is_empty(), "no lock is left once b is done");
    // What a run owns goes; the environment it deployed into lives on by design.
    let net = std::process::Command::new("docker").args(["network", "inspect", &format!("gantry-{holder}")]).output().unwrap();
    let vol = std::process::Command::new("docker").args(["volume", "inspect", &format!("gantry-{holder}-workspace")]).output().unwrap();
    assert!(!net.status.success() && !vol.status.success(), "a's network and workspace are swept");
}

fn stage_time(run: &Value, stage: &str, field: &str) -> chrono::DateTime<chrono::Utc> {
    let s = common::stage(run, stage);
    s[field].as_str().and_then(|t| t.parse().ok()).unwrap_or_else(|| panic!("no {field} for {stage}: {run}"))
}

fn serving(port: u16) -> Option<String> {
    common::http_get(port, "/index.html").map(|(_, b)| b.trim().to_string())
}

#[test]
fn env_rollback_puts_the_kept_version_back_and_the_report_counts_the_restore() {
    let port = common::free_port();
    let w = common::World::new(&[
        ("site/Dockerfile", "FROM gantry/busybox\nCOPY index.html /www/index.html\nCMD [\"busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n"),
        ("site/index.html", "version 1\n"),
    ]);
    let env = common::Env::new(&w, "rbk");
    let p = w.pipeline(&format!(
        "name: rb\nstages:\n  image: {{kind: build, context: site, tag: \"gantry-test/rb-site:${{commit.short}}\"}}\n  ship: {{kind: deploy, environment: {}, app: site, image: \"gantry-test/rb-site:${{commit.short}}\", port: 8080, publish: {port}, health: {{http: /index.html}}}}\n",
        env.name
    ));
    assert!(w.run(&p, &[]).status.success());
    let first = w.latest()["commit"]["sha"].as_str().unwrap().to_string();
    w.commit(&[("site/index.html", "version 2\n")], "v2");
    assert!(w.run(&p, &[]).status.success());
    assert_eq!(serving(port).as_deref(), Some("version 2"));

    let out = w.gantry().env_remove("GANTRY_CONFIG").args(["env", "rollback", &env.name, "--to", "nosuch"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("keeps only"), "{}", text(&out.stderr));
    let out = w.gantry().env_remove("GANTRY_CONFIG").args(["env", "rollback", &env.name, "--to", &first[..8]]).output().unwrap();
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(serving(port).as_deref(), Some("version 1"), "the kept version answers again");
    let rollback = w.latest();
    assert_eq!((rollback["pipeline"].as_str(), rollback["state"].as_str()), (Some("rollback"), Some("succeeded")));

    let report = w.json(&["report", "--env", &env.name]);
    let cfr = &report["change_failure"];
    assert_eq!((cfr["failed"].as_u64(), cfr["total"].as_u64()), (Some(1), Some(3)), "{report}");
    assert_eq!(cfr["failures"][0]["reason"], "rolled_back", "version 2 counts as the failed change");
    assert_eq!(report["time_to_restore"]["restored"], 1, "{report}");
}

#[test]
fn rerun_runs_the_same_commit_again_and_rerun_failed_runs_only_what_failed_and_what_it_needs() {
    let w = common::World::new(&[("site/Dockerfile", "FROM gantry/busybox\nCMD [\"true\"]\n")]);
    let p = w.pipeline(
        "name: rr\nstages:\n  prepare: {image: gantry/busybox, commands: [\"echo prepared > made.txt\"]}\n  image: {kind: build, context: site, tag: \"gantry-test/rr:${commit.short}\", needs: []}\n  check: {image: gantry/busybox, secrets: [FLAG], needs: [prepare, image], commands: [\"test -f made.txt\", \"test \\\"$FLAG\\\" = go\"]}\n  after: {image: gantry/busybox, needs: [check], commands: [\"echo after ran\"]}\n",
    );
    let secrets = w.dir.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(secrets.join("FLAG"), "no").unwrap();
    let opts = ["--secrets-dir", secrets.to_str().unwrap(), "--secret", "FLAG"];
    let out = w.run(&p, &opts);
    assert_eq!(out.status.code(), Some(1));
    let first = w.latest();
    assert_eq!(common::stage(&first, "after")["state"], "skipped");
    let first_id = first["id"].as_str().unwrap().to_string();
    // An unchanged world fails the same way, every stage run again.
    let rerun = |extra: &[&str]| w.gantry().env_remove("GANTRY_CONFIG").args(["rerun", &first_id]).args(opts).args(extra).output().unwrap();
    let out = rerun(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("stage'check'") || text(&out.stderr).contains("check"), "{}", text(&out.stderr));
    let again = w.latest();
    assert_eq!((again["rerun_of"].as_str(), again["commit"]["sha"].as_str()), (Some(first_id.as_str()), first["commit"]["sha"].as_str()));
    let again_logs = text(&w.gantry().args(["logs", again["id"].as_str().unwrap()]).output().unwrap().stdout);
    assert!(!again_logs.contains("taken over"), "a plain rerun runs everything: {again_logs}");

    std::fs::write(secrets.join("FLAG"), "go").unwrap();
    // The plain rerun built the tag again (a new image: it carries its run's label), so the
    // first run's image is no longer what the tag names: taking it over would test one
    // image and ship another.
    let out = rerun(&["--failed"]);
    assert_eq!(out.status.code(), Some(1));
    let refused = w.latest();
    assert!(common::stage(&refused, "image")["message"].as_str().unwrap_or_default().contains("is no longer on the engine as it was"), "{refused}");
    let again_id = again["id"].as_str().unwrap();
    let out = w.gantry().env_remove("GANTRY_CONFIG").args(["rerun", again_id, "--failed"]).args(opts).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let fixed = w.latest();
    assert_eq!(fixed["state"], "succeeded");
    let logs = common::text(&w.gantry().args(["logs", fixed["id"].as_str().unwrap()]).output().unwrap().stdout);
    assert!(logs.lines().any(|l| l.starts_with("image ") && l.contains(&format!("| taken over from run {again_id}"))), "the image is taken over: {logs}");
    assert!(!logs.lines().any(|l| l.starts_with("prepare ") && l.contains("| taken over")), "the workspace's maker runs again: {logs}");
    assert!(logs.lines().any(|l| l.starts_with("after ") && l.ends_with("| after ran")), "{logs}");
    let out = w.gantry().args(["rerun", fixed["id"].as_str().unwrap(), "--failed"]).output().unwrap();
    assert!(text(&out.stderr).contains("nothing failed to run again"), "{}", text(&out.stderr));
}

#[test]
fn a_service_run_is_run_again_from_the_api_and_only_what_failed_runs_again() {
    use common::service::{Repo, Service, DEV, VIEWER};
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::new(dir.path(), "again", &["true"]);
    let yaml = "name: again\nstages:\n  first: {image: gantry/busybox, commands: [\"echo first ran\"]}\n  second: {image: gantry/busybox, needs: [], commands: [\"echo second ran\", \"exit 3\"]}\n";
    common::commit_files(&repo.path, &[("gantry.yml", yaml)], "two stages");
    let svc = Service::start(dir.path(), &format!("  again: {{repo: {}}}\n", repo.path.display()), "{global: 1, per_project: 1}");
    let old = svc.trigger("again", json!({}))["run"].as_str().unwrap().to_string();
    assert_eq!(svc.wait_for(&old, &["failed", "succeeded"])["state"], "failed");

    assert_eq!(svc.call("POST", &format!("/api/runs/{old}/rerun"), Some(VIEWER), None).0, 403);
    let (status, answer) = svc.call("POST", &format!("/api/runs/{old}/rerun?failed=true"), Some(DEV), None);
    assert_eq!((status, answer["rerun_of"].as_str()), (202, Some(old.as_str())), "{answer}");
    let again = answer["run"].as_str().unwrap().to_string();
    let done = svc.wait_for(&again, &["failed", "succeeded"]);
    assert_eq!((done["rerun_of"].as_str(), done["rerun_failed"].as_bool(), done["triggered_by"].as_str()), (Some(old.as_str()), Some(true), Some("dev")), "{done}");
    assert_eq!(done["commit"]["sha"], svc.run(&old)["commit"]["sha"]);
    let (_, logs) = svc.call("GET", &format!("/api/runs/{again}/logs"), Some(DEV), None);
    let lines: Vec<String> = logs.as_array().or(logs["lines"].as_array()).map(|a| a.iter().map(|l| format!("{} {}", l["stage"].as_str().unwrap_or_default(), l["text"].as_str().unwrap_or_default())).collect()).unwrap_or_default();
    assert!(lines.iter().any(|l| l.starts_with("first") && l.contains(&format!("taken over from run {old}"))), "{lines:?}");
    assert!(!lines.iter().any(|l| l == "first first ran"), "the stage that passed did not run again: {lines:?}");
    assert!(lines.iter().any(|l| l == "second second ran"), "the one that failed did: {lines:?}");

    // All of it again, from the dashboard's form path as from the API: everything runs.
    let (status, answer) = svc.call("POST", &format!("/api/runs/{old}/rerun"), Some(DEV), None);
    assert_eq!(status, 202, "{answer}");
    let all = answer["run"].as_str().unwrap().to_string();
    svc.wait_for(&all, &["failed", "succeeded"]);
    let (_, logs) = svc.call("GET", &format!("/api/runs/{all}/logs"), Some(DEV), None);
    assert!(logs.to_string().contains("first ran"), "{logs}");

    // The dashboard's run page offers both, to a developer signed in; its form queues a
    // rerun and lands on it.
    let dev = common::web::sign_in(svc.port, DEV);
    let page = common::web::request(svc.port, "GET", &format!("/runs/{old}"), &[("Cookie", &dev.cookie)], None);
    assert!(page.body.contains("Run again") && page.body.contains("Run what failed again"), "{}", page.body);
    let answer = common::web::post_form(svc.port, &format!("/runs/{old}/rerun"), Some(&dev.cookie), &[("csrf", &dev.csrf), ("failed", "true")]);
    assert_eq!(answer.status, 303, "{answer:?}");
    let landed = answer.header("location").unwrap_or_default().trim_start_matches("/runs/").to_string();
    let from_page = svc.wait_for(&landed, &["failed", "succeeded"]);
    assert_eq!((from_page["rerun_of"].as_str(), from_page["rerun_failed"].as_bool()), (Some(old.as_str()), Some(true)), "{from_page}");

    // A run that is not over cannot be run again.
    let yaml = "name: again\nstages:\n  long: {image: gantry/busybox, commands: [\"sleep 30\"]}\n";
    common::commit_files(&repo.path, &[("gantry.yml", yaml)], "long");
    let long = svc.trigger("again", json!({}))["run"].as_str().unwrap().to_string();
    svc.wait_for(&long, &["running"]);
    let (status, answer) = svc.call("POST", &format!("/api/runs/{long}/rerun"), Some(DEV), None);
    assert_eq!(status, 409, "{answer}");
    assert!(answer.to_string().contains("once it is over"), "{answer}");
    svc.call("POST", &format!("/api/runs/{long}/cancel"), Some(DEV), None);
}

#[test]
fn an_environment_is_rolled_back_through_the_api_with_the_role_it_needs() {
    use common::service::{Repo, Service, DEV, VIEWER};
    use serde_json::json;
    let port = common::free_port();
    let probe = common::World::new(&[]);
    let env = common::Env::new(&probe, "srb");
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::new(dir.path(), "site", &["true"]);
    let yaml = format!(
        "name: site\nstages:\n  image: {{kind: build, context: site, tag: \"gantry-test/srb-site:${{commit.short}}\"}}\n  ship: {{kind: deploy, environment: {}, app: site, image: \"gantry-test/srb-site:${{commit.short}}\", port: 8080, publish: {port}, health: {{http: /index.html}}}}\n",
        env.name
    );
    let dockerfile = "FROM gantry/busybox\nCOPY index.html /www/index.html\nCMD [\"busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n";
    common::commit_files(&repo.path, &[("gantry.yml", &yaml), ("site/Dockerfile", dockerfile), ("site/index.html", "version 1\n")], "v1");
    let svc = Service::start(dir.path(), &format!("  site: {{repo: {}}}\n", repo.path.display()), "{global: 1, per_project: 1}");
    let v1 = svc.trigger("site", json!({}))["run"].as_str().unwrap().to_string();
    assert_eq!(svc.wait_for(&v1, &["failed", "succeeded"])["state"], "succeeded");
    common::commit_files(&repo.path, &[("site/index.html", "version 2\n")], "v2");
    let v2 = svc.trigger("site", json!({}))["run"].as_str().unwrap().to_string();
    assert_eq!(svc.wait_for(&v2, &["failed", "succeeded"])["state"], "succeeded");
    assert_eq!(serving(port).as_deref(), Some("version 2"));

    let path = format!("/api/environments/{}/rollback", env.name);
    assert_eq!(svc.call("POST", &path, Some(VIEWER), None).0, 403);
    assert_eq!(serving(port).as_deref(), Some("version 2"), "a refused rollback changes nothing");
    let (status, answer) = svc.call("POST", "/api/environments/nosuch-env/rollback", Some(DEV), None);
    assert_eq!(status, 409, "{answer}");

    // The environments page offers it to a developer; its form starts the rollback and
    // lands on its run.
    let dev = common::web::sign_in(svc.port, DEV);
    let page = common::web::request(svc.port, "GET", "/environments", &[("Cookie", &dev.cookie)], None);
    assert!(page.body.contains("Roll site back to the kept version"), "{}", page.body);
    let answer = common::web::post_form(svc.port, &format!("/environments/{}/rollback", env.name), Some(&dev.cookie), &[("csrf", &dev.csrf), ("app", "site")]);
    assert_eq!(answer.status, 303, "{answer:?}");
    let run = answer.header("location").unwrap_or_default().trim_start_matches("/runs/").to_string();
    let done = svc.wait_for(&run, &["failed", "succeeded"]);
    assert_eq!((done["pipeline"].as_str(), done["state"].as_str(), done["triggered_by"].as_str()), (Some("rollback"), Some("succeeded"), Some("dev")), "{done}");
    assert_eq!(serving(port).as_deref(), Some("version 1"), "the kept version answers again");

    // A third version, then the API's rollback puts version 1 back again.
    common::commit_files(&repo.path, &[("site/index.html", "version 3\n")], "v3");
    let v3 = svc.trigger("site", json!({}))["run"].as_str().unwrap().to_string();
    assert_eq!(svc.wait_for(&v3, &["failed", "succeeded"])["state"], "succeeded");
    assert_eq!(serving(port).as_deref(), Some("version 3"));
    let (status, answer) = svc.call("POST", &path, Some(DEV), None);
    assert_eq!(status, 202, "{answer}");
    let run = answer["run"].as_str().unwrap().to_string();
    assert_eq!(svc.wait_for(&run, &["failed", "succeeded"])["state"], "succeeded");
    assert_eq!(serving(port).as_deref(), Some("version 1"));
}

#[test]
fn with_newest_cancels_waiting_a_newer_run_cancels_the_older_one_waiting_and_goes_live_after_the_holder() {
    let site = locking_site("nwt");
    let (port, env, w, p) = (site.port, &site.env, &site.w, &site.p);
    let config = w.dir.path().join("newest.yml");
    std::fs::write(&config, "locks: {wait: 5m, newest_cancels_waiting: true}\n").unwrap();
    let (da, db, dc) = (w.dir.path().join("a"), w.dir.path().join("b"), w.dir.path().join("c"));
    let with_config = |data: &Path, extra: &[&str]| {
        common::Reaped(std::process::Command::new(env!("CARGO_BIN_EXE_gantry"))
            .arg("--data-dir").arg(data).arg("--config").arg(&config)
            .args(["run", p.to_str().unwrap(), "--repo", w.repo().to_str().unwrap(), "--plain"])
            .args(extra)
            .env_remove("GANTRY_CONFIG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap())
    };
    w.commit(&[("site/index.html", "version 1\n")], "v1");
    let mut a = with_config(&da, &["--var", "pause=25"]);
    common::wait_for_running_stage(&format!("pause-{}", env.name), std::time::Duration::from_secs(60));
    w.commit(&[("site/index.html", "version 2\n")], "v2");
    let mut b = with_config(&db, &["--var", "pause=0"]);
    // b waits for a (its preview stage says so) before c comes.
    let start = std::time::Instant::now();
    while !logs_of(&db, "latest").contains("waiting for environment") {
        assert!(start.elapsed() < std::time::Duration::from_secs(60), "b never waited");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    w.commit(&[("site/index.html", "version 3\n")], "v3");
    let mut c = with_config(&dc, &["--var", "pause=0"]);
    assert_eq!(b.wait().unwrap().code(), Some(130), "b is cancelled once c waits too");
    assert!(a.try_wait().unwrap().is_none(), "while a still holds the environment");
    let (rb, rc_id) = (latest_in(&db), latest_in(&dc)["id"].as_str().unwrap_or_default().to_string());
    assert_eq!(rb["state"], "cancelled", "{rb}");
    let said = rb["message"].as_str().unwrap_or_default();
    assert!(said.contains(&format!("run {rc_id}, newer, waits for environment {}", env.name)), "{said}");
    assert!(a.wait().unwrap().success());
    assert!(c.wait().unwrap().success(), "the newest went through after the holder");
    assert_eq!(serving(port).as_deref(), Some("version 3"), "version 2 never went live");
    let filter = format!("label=io.gantry.waiting={}", env.name);
    let tickets = std::process::Command::new("docker").args(["ps", "-aq", "--filter", &filter]).output().unwrap();
    assert!(text(&tickets.stdout).trim().is_empty(), "no waiting ticket is left");
}
