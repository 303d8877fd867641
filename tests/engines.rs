//! Runs on a pool of engines: three real Docker engines of `scripts/lab` (each in a
//! network namespace of its own, reached over TLS), under a real `gantry serve`.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::service::{Service, VIEWER};
use common::text;

/// The lab's engines come up once per test binary; the tests here take turns (one kills
/// an engine).
static LAB: Mutex<bool> = Mutex::new(false);

struct Lab {
    tls: String,
    hosts: Vec<String>,
    socks: Vec<String>,
}

fn lab() -> (std::sync::MutexGuard<'static, bool>, Lab) {
    let mut up = LAB.lock().unwrap_or_else(|p| p.into_inner());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lab");
    if !*up {
        let out = Command::new(&script).args(["up", "3"]).output().expect("scripts/lab");
        assert!(out.status.success(), "scripts/lab up: {}{}", text(&out.stdout), text(&out.stderr));
        *up = true;
    }
    let out = Command::new(&script).arg("env").output().unwrap();
    let vars: std::collections::BTreeMap<String, String> =
        text(&out.stdout).lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let lab = Lab {
        tls: vars["LAB_TLS"].clone(),
        hosts: (1..=3).map(|i| vars[&format!("LAB_N{i}")].clone()).collect(),
        socks: (1..=3).map(|i| vars[&format!("LAB_SOCK_N{i}")].clone()).collect(),
    };
    (up, lab)
}

impl Lab {
    /// `engines:` of the three, `runs` slots each, TLS from the lab's folder.
    fn engines(&self, runs: usize) -> String {
        let mut out = String::from("engines:\n");
        for (i, host) in self.hosts.iter().enumerate() {
            out += &format!(
                "  n{}: {{host: \"{host}\", runs: {runs}, tls: {{ca: {t}/ca.pem, cert: {t}/cert.pem, key: {t}/key.pem}}}}\n",
                i + 1,
                t = self.tls
            );
        }
        out
    }

    /// Objects labelled with `run` on engine `i` (0-based).
    fn objects_of(&self, i: usize, run: &str) -> Vec<String> {
        let filter = format!("label=io.gantry.run={run}");
        let mut found = Vec::new();
        for args in [vec!["ps", "-a", "-q", "--filter", &filter], vec!["network", "ls", "-q", "--filter", &filter], vec!["volume", "ls", "-q", "--filter", &filter]] {
            let out = Command::new("docker").arg("-H").arg(&self.socks[i]).args(&args).output().expect("docker cli");
            found.extend(text(&out.stdout).lines().filter(|l| !l.is_empty()).map(str::to_string));
        }
        found
    }

    fn script(&self, args: &[&str]) {
        let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lab")).args(args).output().unwrap();
        assert!(out.status.success(), "scripts/lab {args:?}: {}", text(&out.stderr));
    }
}

fn repo(dir: &Path, pipeline: &str) -> std::path::PathBuf {
    let path = dir.join("app");
    std::fs::create_dir_all(&path).unwrap();
    git2::Repository::init_opts(&path, git2::RepositoryInitOptions::new().initial_head("main")).unwrap();
    common::commit_files(&path, &[("gantry.yml", pipeline)], "first");
    path
}

fn project(repo: &Path) -> String {
    format!("  app:\n    repo: {}\n    pipeline: gantry.yml\n    branches: [main]\n", repo.display())
}

fn engines_view(svc: &Service) -> Vec<Value> {
    let (status, body) = svc.call("GET", "/api/engines", Some(VIEWER), None);
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}

#[test]
fn runs_spread_over_three_engines_over_tls_and_each_record_says_where_it_ran() {
    let (_guard, lab) = lab();
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path(), "name: spread\nstages:\n  work:\n    image: gantry/busybox\n    commands: [\"sleep 2\", \"hostname\"]\n");
    let projects = format!("{}{}", project(&repo), lab.engines(2));
    let svc = Service::start(dir.path(), &projects, "{global: 6, per_project: 6}");
    let ids: Vec<String> =
        (0..6).map(|_| svc.trigger("app", json!({"force": true}))["run"].as_str().unwrap().to_string()).collect();
    let mut engines = std::collections::BTreeMap::<String, usize>::new();
    for id in &ids {
        let run = svc.wait_for(id, &["succeeded"]);
        *engines.entry(run["engine"].as_str().expect("the record names its engine").to_string()).or_default() += 1;
    }
    // Six runs, two slots on each of three engines, least loaded first: two each.
    assert_eq!(engines, [("n1".to_string(), 2), ("n2".to_string(), 2), ("n3".to_string(), 2)].into_iter().collect(), "{engines:?}");
    let view = engines_view(&svc);
    assert_eq!(view.iter().map(|e| (e["name"].as_str().unwrap(), e["up"].as_bool().unwrap(), e["placed"].as_u64().unwrap())).collect::<Vec<_>>(),
        [("n1", true, 2), ("n2", true, 2), ("n3", true, 2)]);
    let (_, metrics) = common::http(svc.port, "GET", "/metrics", &[], None).unwrap();
    assert!(metrics.contains("gantry_engine_up{engine=\"n2\"} 1") && metrics.contains("gantry_engine_runs_placed_total{engine=\"n3\"} 2"), "{metrics}");
    for id in &ids {
        for i in 0..3 {
            assert!(lab.objects_of(i, id).is_empty(), "run {id} left {:?} on n{}", lab.objects_of(i, id), i + 1);
        }
    }
    // The local engine ran none of them.
    for id in &ids {
        assert!(common::docker_objects_of(id).is_empty());
    }
}

#[test]
fn a_run_on_an_engine_that_is_killed_is_interrupted_naming_it_and_runs_again_elsewhere() {
    let (_guard, lab) = lab();
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(
        dir.path(),
        "name: sturdy\nretry_on_engine_loss: true\nstages:\n  work:\n    image: gantry/busybox\n    commands: [\"sleep 8\", \"echo done\"]\n",
    );
    let projects = format!("{}{}", project(&repo), lab.engines(1));
    let svc = Service::start(dir.path(), &projects, "{global: 3, per_project: 3}\n  sweep_every: 2s");
    let first = svc.trigger("app", json!({}))["run"].as_str().unwrap().to_string();
    // Once its step runs: kill its engine the hard way, as a machine lost.
    let start = Instant::now();
    let engine = loop {
        let run = svc.run(&first);
        if run["stages"][0]["state"] == "running" {
            break run["engine"].as_str().unwrap().to_string();
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{run}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let index: usize = engine.trim_start_matches('n').parse().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    lab.script(&["kill", &index.to_string()]);
    // Whatever happens below, the engine is started again for the other tests.
    struct Restart(usize);
    impl Drop for Restart {
        fn drop(&mut self) {
            let _ = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lab")).args(["start", &self.0.to_string()]).output();
        }
    }
    let _restart = Restart(index);
    let lost = svc.wait_for(&first, &["interrupted"]);
    assert!(lost["message"].as_str().unwrap().contains("the engine stopped answering"), "{lost}");
    // Queued once more, for another engine, and it succeeds there.
    let start = Instant::now();
    let again = loop {
        if let Some(r) = svc.runs().into_iter().map(|r| svc.run(r["id"].as_str().unwrap())).find(|r| r["rerun_of"] == first.as_str()) {
            break r;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no retry of {first}: {:?}", svc.runs());
        std::thread::sleep(Duration::from_millis(200));
    };
    let again_id = again["id"].as_str().unwrap().to_string();
    let done = svc.wait_for(&again_id, &["succeeded", "failed", "interrupted"]);
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["retry_after_loss_of"], engine.as_str(), "{done}");
    assert_ne!(done["engine"], engine.as_str(), "{done}");
    let view = engines_view(&svc);
    let killed = view.iter().find(|e| e["name"] == engine.as_str()).unwrap();
    assert_eq!((killed["up"].as_bool(), killed["lost"].as_u64()), (Some(false), Some(1)), "{killed}");
    // Nothing of either run on the engines that answered.
    for i in (0..3).filter(|i| i + 1 != index) {
        assert!(lab.objects_of(i, &first).is_empty() && lab.objects_of(i, &again_id).is_empty());
    }
    // The lost engine comes back: back in placement, and what the run left there is swept.
    lab.script(&["start", &index.to_string()]);
    let start = Instant::now();
    loop {
        let view = engines_view(&svc);
        let back = view.iter().find(|e| e["name"] == engine.as_str()).unwrap()["up"] == true;
        if back && lab.objects_of(index - 1, &first).is_empty() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{view:?} {:?}", lab.objects_of(index - 1, &first));
        std::thread::sleep(Duration::from_millis(500));
    }
    // It is not retried twice: one retry per loss.
    assert_eq!(svc.runs().len(), 2, "the run and its one retry: {:?}", svc.runs());
}

#[test]
fn a_pipeline_asking_for_labels_no_engine_has_fails_at_once_and_labels_choose_the_engine() {
    let (_guard, lab) = lab();
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path(), "name: picky\nruns_on: [big]\nstages:\n  work:\n    image: gantry/busybox\n    commands: [\"true\"]\n");
    let engines = lab.engines(2).replacen("runs: 2,", "runs: 2, labels: [big],", 3);
    // Only n3 is big.
    let engines = engines.replacen("labels: [big],", "", 2);
    let projects = format!("{}{}", project(&repo), engines);
    let svc = Service::start(dir.path(), &projects, "{global: 4, per_project: 4}");
    let ids: Vec<String> = (0..3).map(|_| svc.trigger("app", json!({"force": true}))["run"].as_str().unwrap().to_string()).collect();
    for id in &ids {
        assert_eq!(svc.wait_for(id, &["succeeded"])["engine"], "n3");
    }
    common::commit_files(&repo, &[("gantry.yml", "name: picky\nruns_on: [gpu]\nstages:\n  work:\n    image: gantry/busybox\n    commands: [\"true\"]\n")], "gpu");
    let id = svc.trigger("app", json!({}))["run"].as_str().unwrap().to_string();
    let run = svc.wait_for(&id, &["failed"]);
    let message = run["message"].as_str().unwrap();
    assert!(message.contains("runs_on: [gpu]") && message.contains("n3 [big]"), "{message}");
}

#[test]
fn gantry_run_reaches_a_tls_engine_by_the_docker_cli_conventions() {
    let (_guard, lab) = lab();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yml");
    std::fs::write(&file, "name: remote\nstages:\n  hello:\n    image: gantry/busybox\n    commands: [\"echo from afar\"]\n").unwrap();
    let repo = repo(dir.path(), "name: unused\nstages:\n  a: {image: gantry/busybox, commands: [\"true\"]}\n");
    let gantry = |env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gantry"));
        cmd.arg("--data-dir").arg(dir.path().join("data")).arg("--docker-host").arg(&lab.hosts[1]);
        cmd.args(["run"]).arg(&file).arg("--repo").arg(&repo).env_remove("DOCKER_TLS_VERIFY").env_remove("DOCKER_CERT_PATH");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let out = gantry(&[("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", &lab.tls)]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("from afar") || text(&out.stderr).contains("from afar"), "{}", text(&out.stdout));
    // A TLS engine spoken to in plain HTTP answers nothing Gantry can use: one clear error.
    let out = gantry(&[]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains(&lab.hosts[1]), "{}", text(&out.stderr));
    // Certificates named but missing: said with the file.
    let out = gantry(&[("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", "/nonexistent/certs")]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("/nonexistent/certs/ca.pem is missing"), "{}", text(&out.stderr));
}

#[test]
fn with_engines_in_the_config_environments_are_made_and_listed_on_the_engine_they_live_on() {
    let (_guard, lab) = lab();
    let dir = tempfile::tempdir().unwrap();
    let t = &lab.tls;
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "engines:\n  n1: {{host: \"{}\", tls: {{ca: {t}/ca.pem, cert: {t}/cert.pem, key: {t}/key.pem}}}}\n  n2: {{host: \"{}\", tls: {{ca: {t}/ca.pem, cert: {t}/cert.pem, key: {t}/key.pem}}}}\nenvironments:\n  lab-staging: {{engine: n2}}\n",
            lab.hosts[0], lab.hosts[1]
        ),
    )
    .unwrap();
    let file = dir.path().join("p.yml");
    std::fs::write(&file, "name: placed\nstages:\n  env:\n    kind: provision\n    environment: lab-staging\n    services:\n      worker:\n        image: gantry/busybox\n        command: \"exec sleep 3600\"\n        health: {command: \"true\"}\n").unwrap();
    let repo = repo(dir.path(), "name: unused\nstages:\n  a: {image: gantry/busybox, commands: [\"true\"]}\n");
    let gantry = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_gantry"))
            .arg("--config").arg(&config).arg("--data-dir").arg(dir.path().join("data"))
            .args(args).env_remove("DOCKER_HOST").env_remove("DOCKER_TLS_VERIFY")
            .output().unwrap()
    };
    let out = gantry(&["run", file.to_str().unwrap(), "--repo", repo.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let on = |i: usize| {
        let out = Command::new("docker").arg("-H").arg(&lab.socks[i])
            .args(["ps", "-q", "--filter", "label=io.gantry.environment=lab-staging"]).output().unwrap();
        text(&out.stdout).lines().count()
    };
    assert_eq!((on(0), on(1)), (0, 1), "the environment is on n2, where the config puts it");
    let local = Command::new("docker").args(["ps", "-aq", "--filter", "label=io.gantry.environment=lab-staging"]).output().unwrap();
    assert!(text(&local.stdout).trim().is_empty(), "nothing on the local engine");
    let out = gantry(&["env", "list", "--json"]);
    assert!(out.status.success() && text(&out.stdout).contains("lab-staging"), "{}{}", text(&out.stdout), text(&out.stderr));
    let out = gantry(&["env", "destroy", "lab-staging"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(on(1), 0);
}
