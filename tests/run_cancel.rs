//! Ctrl-C, kill -9 and a second process on the same data dir: whatever happens to the
//! process, the engine keeps nothing of the run and history never shows it running forever.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{docker_objects_of, stage, text, wait_for_running_stage, World};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// `gantry run` of `pipeline` in the background, output captured or dropped.
fn spawn_run(w: &World, pipeline: &std::path::Path, capture: bool) -> std::process::Child {
    let out = || if capture { Stdio::piped() } else { Stdio::null() };
    w.gantry().arg("run").arg(pipeline).arg("--repo").arg(w.repo()).stdout(out()).stderr(out()).spawn().unwrap()
}

fn long_pipeline(w: &World, stage_name: &str) -> std::path::PathBuf {
    w.pipeline(&format!(
        "name: long\nstages:\n  {stage_name}:\n    image: gantry/busybox\n    commands: [\"echo started\", \"sleep 300\"]\n  later:\n    image: gantry/busybox\n    commands: [\"true\"]\n"
    ))
}

#[test]
fn ctrl_c_leaves_no_containers_and_records_cancelled() {
    let w = World::new(&[]);
    let p = long_pipeline(&w, "ctrlc-sleeper");
    let child = spawn_run(&w, &p, true);
    let run_id = wait_for_running_stage("ctrlc-sleeper", Duration::from_secs(60));
    assert!(!docker_objects_of(&run_id).is_empty(), "the run's objects exist while it runs");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "stderr: {}", text(&out.stderr));
    assert_eq!(docker_objects_of(&run_id), Vec::<String>::new());
    let run = w.show(&run_id);
    assert_eq!(run["state"], "cancelled");
    assert_eq!(stage(&run, "ctrlc-sleeper")["state"], "cancelled");
    assert_eq!(stage(&run, "later")["state"], "skipped");
}

#[test]
fn kill_9_mid_run_shows_interrupted_and_the_engine_holds_nothing_of_it() {
    let w = World::new(&[]);
    let p = long_pipeline(&w, "kill9-sleeper");
    let mut child = spawn_run(&w, &p, false);
    let run_id = wait_for_running_stage("kill9-sleeper", Duration::from_secs(60));
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    assert!(!docker_objects_of(&run_id).is_empty(), "kill -9 leaves the container behind until the next command");

    let runs = w.json(&["runs"]);
    let run = runs.as_array().unwrap().iter().find(|r| r["id"] == run_id.as_str()).expect("run is listed");
    assert_eq!(run["state"], "interrupted");
    assert_eq!(stage(run, "kill9-sleeper")["state"], "interrupted");
    assert_eq!(docker_objects_of(&run_id), Vec::<String>::new());
    // And it stays that way: the next command does not sweep or change it again.
    assert_eq!(w.show(&run_id)["state"], "interrupted");
}

#[test]
fn a_second_run_on_the_same_data_dir_is_refused_clearly_while_reads_go_through_the_holder() {
    let w = World::new(&[]);
    let p = long_pipeline(&w, "lock-sleeper");
    let child = spawn_run(&w, &p, true);
    let run_id = wait_for_running_stage("lock-sleeper", Duration::from_secs(60));
    let out = w.gantry().arg("runs").output().unwrap();
    assert!(out.status.success() && text(&out.stdout).contains(&run_id), "a read goes through the holder: {}", text(&out.stderr));
    // A second writer waits a moment for the data dir (10 s), then is refused.
    let out = w.run(&p, &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("is in use by another gantry process (pid "), "{stderr}");
    assert!(stderr.contains(&format!("pid {}", child.id())), "{stderr}");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert_eq!(docker_objects_of(&run_id), Vec::<String>::new());
    assert_eq!(w.show(&run_id)["state"], "cancelled");
}

#[test]
fn a_reader_that_goes_away_does_not_stop_the_run_or_its_cleanup() {
    use std::io::{BufRead, BufReader};
    let w = World::new(&[]);
    let p = w.pipeline("name: piped\nstages:\n  talk:\n    image: gantry/busybox\n    commands: [\"echo first\", \"sleep 2\", \"for i in 1 2 3 4 5; do echo more $i; done\"]\n");
    let mut child = w.gantry().env_remove("GANTRY_CONFIG").arg("run").arg(&p).arg("--repo").arg(w.repo()).arg("--plain")
        .stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null()).spawn().unwrap();
    // As `gantry run ... | head -1`: read a line, then close the pipe.
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.contains("first"), "{first}");
    assert!(child.wait().unwrap().success(), "the run goes on to its end");
    let run = w.latest();
    assert_eq!(run["state"], "succeeded", "{run}");
    assert!(common::docker_objects_of(run["id"].as_str().unwrap()).is_empty(), "nothing of the run is left");
}
