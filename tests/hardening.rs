//! What a pipeline, a trigger and a crash can reach, on the real service and engine: a
//! pipeline gets only the secrets its project was granted, never the service's own
//! environment.

mod common;

use common::service::{Service, DEV};
use common::{commit_files, text};
use serde_json::json;

/// A repository (on `main`) whose pipeline's one stage names `secrets` and runs `command`.
fn repo_with(dir: &std::path::Path, name: &str, secrets: &str, command: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(&path).unwrap();
    git2::Repository::init_opts(&path, git2::RepositoryInitOptions::new().initial_head("main")).unwrap();
    let yaml = format!("name: {name}\nstages:\n  use:\n    image: gantry/busybox\n    secrets: [{secrets}]\n    commands: [{command:?}]\n");
    commit_files(&path, &[("gantry.yml", &yaml)], "pipeline");
    path
}

#[test]
fn the_service_grants_secrets_per_project_and_never_reads_its_own_environment() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(secrets.join("SITE_KEY"), "s3cr3t-value\n").unwrap();
    let granted = repo_with(dir.path(), "granted", "SITE_KEY", "test \"$SITE_KEY\" = s3cr3t-value && echo key=$SITE_KEY");
    // GH_SECRET is in the service's own environment (the harness sets it for webhooks).
    let taker = repo_with(dir.path(), "taker", "GH_SECRET", "echo $GH_SECRET");
    let granted_env = repo_with(dir.path(), "fromenv", "GH_SECRET", "echo $GH_SECRET");
    let projects = format!(
        "  granted: {{repo: {}, secrets: [SITE_KEY]}}\n  taker: {{repo: {}}}\n  fromenv: {{repo: {}, secrets: [GH_SECRET]}}\n",
        granted.display(),
        taker.display(),
        granted_env.display()
    );
    let concurrency = format!("{{global: 3, per_project: 1}}\n  secrets_dir: {}", secrets.display());
    let svc = Service::start(dir.path(), &projects, &concurrency);
    let config = svc.config.display().to_string();
    let run_of = |project: &str| {
        let (status, answer) = svc.call("POST", &format!("/api/projects/{project}/trigger"), Some(DEV), Some(json!({})));
        assert_eq!(status, 202, "{answer}");
        let id = answer["run"].as_str().unwrap().to_string();
        (svc.wait_for(&id, &["succeeded", "failed"]), id)
    };

    let (run, id) = run_of("granted");
    assert_eq!(run["state"], "succeeded", "{run}");
    let (_, logs) = svc.call("GET", &format!("/api/runs/{id}/logs"), Some(DEV), None);
    let logs = logs.to_string();
    assert!(logs.contains("key=***") && !logs.contains("s3cr3t-value"), "{logs}");

    let (run, _) = run_of("taker");
    assert_eq!(run["state"], "failed");
    assert_eq!(
        run["message"].as_str().unwrap(),
        format!("stage 'use' names the secret GH_SECRET, which projects.taker.secrets in {config} does not grant; nothing ran")
    );

    let (run, _) = run_of("fromenv");
    assert_eq!(run["state"], "failed");
    let message = run["message"].as_str().unwrap();
    assert!(message.starts_with("secret 'GH_SECRET' (used by stage 'use') is not set"), "{message}");
    assert!(!message.contains("environment") && !text(message.as_bytes()).contains(common::service::GITHUB_SECRET), "{message}");
}

#[test]
fn a_trigger_names_only_real_branches_and_a_hostile_branch_name_is_echoed_never_run() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_with(dir.path(), "inj", "", "echo branch=${commit.branch}");
    let git = git2::Repository::open(&repo).unwrap();
    let head = git.head().unwrap().peel_to_commit().unwrap();
    let hostile = "release/$(env|base64>&2)";
    git.branch(hostile, &head, false).unwrap();
    let head = head.id().to_string();
    let side = common::commit_on_branch(&repo, "side", &[("side.txt", "x")], "only on side");
    let projects = format!("  inj: {{repo: {}, branches: [main, \"release/*\"]}}\n", repo.display());
    let svc = Service::start(dir.path(), &projects, "{global: 2, per_project: 1}");
    let trigger = |body: serde_json::Value| svc.call("POST", "/api/projects/inj/trigger", Some(DEV), Some(body));

    for (body, said) in [
        (json!({"ref": head, "branch": "nope"}), "there is no branch nope in inj's repository".to_string()),
        (json!({"ref": side, "branch": "main"}), format!("branch main does not contain commit {}", &side[..8])),
        (json!({"ref": "HEAD~1"}), "`HEAD~1` is not a commit sha, branch or tag name".to_string()),
        (json!({"ref": head, "branch": "a b"}), "`a b` is not a branch name".to_string()),
    ] {
        let (status, answer) = trigger(body.clone());
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(&said), "{body}: {answer}");
    }
    assert!(svc.runs().is_empty(), "a refused trigger queues nothing");

    // The branch exists and holds the commit: it runs, and the shell sees its name as data.
    let (status, answer) = trigger(json!({"ref": head, "branch": hostile}));
    assert_eq!(status, 202, "{answer}");
    let id = answer["run"].as_str().unwrap().to_string();
    let run = svc.wait_for(&id, &["succeeded", "failed"]);
    assert_eq!(run["state"], "succeeded", "{run}");
    let logs = svc.logs(&id, None);
    let lines: Vec<&str> = logs.iter().filter(|l| l["stage"] == "use").map(|l| l["text"].as_str().unwrap()).collect();
    // The shell's trace shows the quoted word; the output is the name, literally.
    assert_eq!(lines, [format!("+ echo branch='{hostile}'"), format!("branch={hostile}")], "echoed literally, nothing else ran");
}

/// kill -9 of the service at several moments between accepting a trigger and the run's
/// first container: after the restart the run is either interrupted (and swept) or runs
/// again from a clean engine; it never fails on its own leftovers.
#[test]
fn a_crash_between_trigger_and_first_container_never_fails_the_run_on_its_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_with(dir.path(), "crash", "", "sleep 1");
    let projects = format!("  crash: {{repo: {}}}\n", repo.display());
    let mut svc = Service::start(dir.path(), &projects, "{global: 2, per_project: 1}");
    let mut seen = Vec::new();
    for delay in [0u64, 50, 100, 200, 400] {
        let (status, answer) = svc.call("POST", "/api/projects/crash/trigger", Some(DEV), Some(json!({"force": true})));
        assert_eq!(status, 202, "{answer}");
        let id = answer["run"].as_str().unwrap().to_string();
        std::thread::sleep(std::time::Duration::from_millis(delay));
        svc.kill_9();
        svc.spawn();
        let run = svc.wait_for(&id, &["succeeded", "failed", "interrupted", "cancelled"]);
        let message = run["message"].as_str().unwrap_or_default();
        assert!(
            run["state"] == "succeeded" || run["state"] == "interrupted",
            "kill -9 {delay} ms after the trigger: the run ended {} ({message})",
            run["state"]
        );
        assert!(!message.contains("already exists") && !message.contains("ambiguous"), "{delay} ms: {message}");
        let start = std::time::Instant::now();
        while !common::docker_objects_of(&id).is_empty() {
            assert!(start.elapsed() < std::time::Duration::from_secs(30), "{delay} ms: left behind {:?}", common::docker_objects_of(&id));
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        seen.push(format!("{delay}ms: {}", run["state"]));
    }
    eprintln!("crash window: {}", seen.join(", "));
}

/// A stage printing 1 GiB: the store keeps the cap and one line saying so, and the
/// service answers its API all the while (how fast, and its memory, are in
/// `benches/output_flood.rs`, not here).
#[test]
fn a_stage_printing_a_gibibyte_is_capped_and_the_service_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_with(dir.path(), "flood", "", "yes $(printf %099d 0) | head -c 1073741824; echo done");
    let projects = format!("  flood: {{repo: {}}}\nlogs: {{max_stage_output: 4MiB}}\n", repo.display());
    let svc = Service::start(dir.path(), &projects, "{global: 2, per_project: 1}");
    let (status, answer) = svc.call("POST", "/api/projects/flood/trigger", Some(DEV), Some(json!({})));
    assert_eq!(status, 202, "{answer}");
    let id = answer["run"].as_str().unwrap().to_string();
    let (mut answered, mut polls) = (0, 0);
    let run = loop {
        polls += 1;
        let (status, body) = svc.call("GET", &format!("/api/runs/{id}"), Some(DEV), None);
        if status == 200 {
            answered += 1;
        }
        if body["state"] == "succeeded" || body["state"] == "failed" {
            break body;
        }
        assert!(polls < 6000, "the run did not end");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(answered, polls, "every API call was answered while the stage printed");
    assert_eq!(run["state"], "succeeded", "{run}");
    let lines = svc.logs(&id, Some("use"));
    let kept: usize = lines.iter().map(|l| l["text"].as_str().unwrap().len() + 1).sum();
    let last = lines.last().unwrap()["text"].as_str().unwrap();
    assert!(last.starts_with("gantry: output of stage 'use' truncated: it printed more than 4 MiB"), "{last}");
    assert!(kept <= (4 << 20) + 1024, "kept {kept} bytes");
    assert!(kept > (4 << 20) - 1024, "kept {kept} bytes: the cap, not less");
}
