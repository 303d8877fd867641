//! A second terminal while a run goes on: the process holding the data dir (`gantry run`,
//! `gantry serve`) answers other gantry commands on its control socket, so history can be
//! read, and a run's output followed, while it runs.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::service::{Service, DEV};
use common::{text, World};
use serde_json::json;

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < Duration::from_secs(60), "{what} never happened");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn runs_logs_follow_and_approvals_work_from_a_second_process_while_gantry_run_holds_the_data_dir() {
    let w = World::new(&[]);
    let p = w.pipeline("name: slow\nstages:\n  talk:\n    image: gantry/busybox\n    commands: [\"for i in 1 2 3 4 5 6; do echo line $i; sleep 0.5; done\"]\n");
    let mut run = w.gantry().arg("run").arg(&p).arg("--repo").arg(w.repo()).arg("--plain").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();

    // The run is listed as running, by a process that does not hold the store.
    let mut id = String::new();
    wait_until("the run listed as running from a second process", || {
        let out = w.gantry().args(["runs", "--json"]).output().unwrap();
        let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        match runs.as_array().and_then(|r| r.first()) {
            Some(r) if r["state"] == "running" => {
                id = r["id"].as_str().unwrap().to_string();
                true
            }
            _ => false,
        }
    });
    let out = w.gantry().args(["approvals"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("no promotion waits for approval"));

    // logs --follow prints the lines as they come and ends with the run.
    let mut follow = w.gantry().args(["logs", &id, "--follow"]).stdout(Stdio::piped()).spawn().unwrap();
    let lines: Vec<String> = BufReader::new(follow.stdout.take().unwrap()).lines().map(Result::unwrap).collect();
    assert!(follow.wait().unwrap().success());
    let said: Vec<&str> = lines.iter().filter_map(|l| l.split(" | ").nth(1)).filter(|l| l.starts_with("line ")).collect();
    assert_eq!(said, ["line 1", "line 2", "line 3", "line 4", "line 5", "line 6"], "{lines:?}");
    assert!(run.wait().unwrap().success());
    // The holder has gone, and with it the socket: the store is read directly again.
    assert!(!w.data_dir().join("control.sock").exists());
    assert_eq!(w.show(&id)["state"], "succeeded");
}

#[test]
fn history_commands_read_through_a_running_service() {
    let dir = tempfile::tempdir().unwrap();
    let repo = common::service::Repo::new(dir.path(), "svc", &["echo from the service"]);
    let projects = format!("  svc: {{repo: {}}}\n", repo.path.display());
    let svc = Service::start(dir.path(), &projects, "{global: 1, per_project: 1}");
    let (status, answer) = svc.call("POST", "/api/projects/svc/trigger", Some(DEV), Some(json!({})));
    assert_eq!(status, 202, "{answer}");
    let id = answer["run"].as_str().unwrap().to_string();
    svc.wait_for(&id, &["succeeded"]);
    let gantry = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_gantry")).arg("--data-dir").arg(&svc.data).args(args).stdin(Stdio::null()).output().unwrap()
    };
    let out = gantry(&["runs"]);
    assert!(out.status.success() && text(&out.stdout).contains(&id), "{}{}", text(&out.stdout), text(&out.stderr));
    let out = gantry(&["logs", &id]);
    assert!(text(&out.stdout).contains("work | from the service"), "{}", text(&out.stdout));
    let out = gantry(&["show", &id[..10], "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["state"], "succeeded");
    let out = gantry(&["report", "--env", "production", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = gantry(&["show", "nosuchrun"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no run matches 'nosuchrun'"), "{}", text(&out.stderr));
}
