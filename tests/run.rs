//! `gantry run` against the real Docker engine, real git repositories and a real store.

mod common;

use common::{docker_objects_of, stage, text, World};

#[test]
fn successful_run_records_commit_stages_and_exit_codes() {
    let w = World::new(&[("README", "hello\n")]);
    let p = w.pipeline(
        "name: ok\nstages:\n  one:\n    image: gantry/busybox\n    commands: [\"echo one\"]\n  two:\n    image: gantry/busybox\n    commands: [\"echo two\"]\n",
    );
    let out = w.run(&p, &[]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let run = w.latest();
    assert_eq!(run["state"], "succeeded");
    assert_eq!(run["pipeline"], "ok");
    assert_eq!(run["commit"]["author_name"], "Ada Author");
    assert_eq!(run["commit"]["branch"], "main");
    assert_eq!(run["commit"]["sha"].as_str().unwrap().len(), 40);
    for name in ["one", "two"] {
        assert_eq!(stage(&run, name)["state"], "succeeded");
        assert_eq!(stage(&run, name)["exit_code"], 0);
    }
    // `two` has no needs, so it follows `one`.
    assert!(stage(&run, "two")["started_at"].as_str() >= stage(&run, "one")["finished_at"].as_str());
    assert!(docker_objects_of(run["id"].as_str().unwrap()).is_empty());
}

#[test]
fn failing_command_fails_the_run_naming_stage_and_exit_code() {
    let w = World::new(&[]);
    let p = w.pipeline(
        "name: bad\nstages:\n  build:\n    image: gantry/busybox\n    commands: [\"echo before\", \"exit 3\", \"echo never\"]\n  after:\n    image: gantry/busybox\n    commands: [\"echo should not run\"]\n",
    );
    let out = w.run(&p, &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("stage 'build' exited with code 3"), "stderr: {stderr}");
    let stdout = text(&out.stdout);
    assert!(stdout.contains("before") && !stdout.contains("build | never"), "sh -e stops at the first failure: {stdout}");
    let run = w.latest();
    assert_eq!(run["state"], "failed");
    assert_eq!(stage(&run, "build")["state"], "failed");
    assert_eq!(stage(&run, "build")["exit_code"], 3);
    assert_eq!(stage(&run, "after")["state"], "skipped");
}

#[test]
fn stage_over_its_timeout_is_killed_and_recorded_as_timed_out() {
    let w = World::new(&[]);
    let p = w.pipeline("name: slow\nstages:\n  sleepy:\n    image: gantry/busybox\n    timeout: 2s\n    commands: [\"sleep 60\"]\n");
    let started = std::time::Instant::now();
    let out = w.run(&p, &[]);
    assert_eq!(out.status.code(), Some(1));
    // The 60 s sleep was cut short; a generous bound, this is not a speed test.
    assert!(started.elapsed().as_secs() < 45);
    let run = w.latest();
    assert_eq!(stage(&run, "sleepy")["state"], "timed_out");
    assert!(run["message"].as_str().unwrap().contains("timed out"), "{run}");
    assert!(docker_objects_of(run["id"].as_str().unwrap()).is_empty());
}

#[test]
fn failed_attempt_is_retried_and_can_succeed() {
    let w = World::new(&[]);
    // The workspace outlives an attempt, so the second attempt sees the first one's mark.
    let p = w.pipeline(
        "name: flaky\nstages:\n  flaky:\n    image: gantry/busybox\n    retries: 2\n    commands:\n      - if [ -f .tried ]; then echo second; else touch .tried; echo first; exit 1; fi\n",
    );
    let out = w.run(&p, &[]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let run = w.latest();
    assert_eq!(stage(&run, "flaky")["state"], "succeeded");
    assert_eq!(stage(&run, "flaky")["attempts"], 2);
    let logs = text(&w.gantry().args(["logs", "latest", "flaky"]).output().unwrap().stdout);
    assert!(logs.contains("first") && logs.contains("second"), "{logs}");
}

#[test]
fn retries_run_out_and_the_stage_fails() {
    let w = World::new(&[]);
    let p = w.pipeline("name: never\nstages:\n  never:\n    image: gantry/busybox\n    retries: 1\n    commands: [\"exit 7\"]\n");
    let out = w.run(&p, &[]);
    assert_eq!(out.status.code(), Some(1));
    let run = w.latest();
    assert_eq!(stage(&run, "never")["attempts"], 2);
    assert_eq!(stage(&run, "never")["exit_code"], 7);
}

#[test]
fn stages_whose_needs_are_met_run_in_parallel() {
    let w = World::new(&[]);
    let p = w.pipeline(
        "name: par\nstages:\n  left:\n    image: gantry/busybox\n    needs: []\n    commands: [\"sleep 3\"]\n  right:\n    image: gantry/busybox\n    needs: []\n    commands: [\"sleep 3\"]\n",
    );
    let out = w.run(&p, &[]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let run = w.latest();
    let (l, r) = (stage(&run, "left"), stage(&run, "right"));
    let t = |v: &serde_json::Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    // Overlap: each started before the other finished.
    assert!(t(&l["started_at"]) < t(&r["finished_at"]) && t(&r["started_at"]) < t(&l["finished_at"]), "{run}");
}

#[test]
fn files_written_by_a_stage_are_there_for_the_stages_after_it() {
    let w = World::new(&[("src/data.txt", "from the commit\n")]);
    let p = w.pipeline(
        "name: art\nstages:\n  make:\n    image: gantry/busybox\n    commands: [\"mkdir -p out\", \"cat src/data.txt > out/artifact.txt\", \"echo made-by-make >> out/artifact.txt\"]\n  use:\n    image: gantry/busybox\n    commands: [\"cat out/artifact.txt\"]\n",
    );
    let out = w.run(&p, &[]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("use  | from the commit"), "{stdout}");
    assert!(stdout.contains("use  | made-by-make"), "{stdout}");
}

#[test]
fn stored_logs_equal_what_was_printed() {
    let w = World::new(&[]);
    let p = w.pipeline(
        "name: logs\nstages:\n  a:\n    image: gantry/busybox\n    commands: [\"for i in 1 2 3 4 5; do echo line $i; done\", \"echo to-stderr >&2\", \"printf 'no newline at end'\"]\n  bb:\n    image: gantry/busybox\n    commands: [\"seq 1 200\"]\n",
    );
    let out = w.run(&p, &["--plain"]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stored = w.gantry().args(["logs", "latest"]).output().unwrap();
    assert!(stored.status.success());
    assert_eq!(text(&stored.stdout), text(&out.stdout));
    assert!(text(&out.stdout).contains("a  | no newline at end"));
    assert!(text(&out.stdout).contains("bb | 200"));
}

#[test]
fn when_branch_filter_skips_stages_on_other_branches() {
    let w = World::new(&[]);
    let p = w.pipeline(
        "name: br\nstages:\n  always:\n    image: gantry/busybox\n    commands: [\"true\"]\n  release-only:\n    image: gantry/busybox\n    when: {branch: \"release/*\"}\n    commands: [\"true\"]\n",
    );
    assert!(w.run(&p, &[]).status.success());
    assert_eq!(stage(&w.latest(), "release-only")["state"], "skipped");
    assert!(w.run(&p, &["--branch", "release/1.2"]).status.success());
    assert_eq!(stage(&w.latest(), "release-only")["state"], "succeeded");
}

#[test]
fn a_specific_commit_is_checked_out_not_the_work_tree() {
    let w = World::new(&[("version.txt", "v1\n")]);
    let first = {
        let repo = git2::Repository::open(w.repo()).unwrap();
        let sha = repo.head().unwrap().peel_to_commit().unwrap().id().to_string();
        sha
    };
    w.commit(&[("version.txt", "v2\n")], "second");
    std::fs::write(w.repo().join("version.txt"), "uncommitted\n").unwrap();
    let p = w.dir.path().join("p.yml");
    std::fs::write(&p, "name: co\nstages:\n  show:\n    image: gantry/busybox\n    commands: [\"cat version.txt\"]\n").unwrap();
    let out = w.run(&p, &["--commit", &first]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("show | v1"), "{}", text(&out.stdout));
    assert_eq!(w.latest()["commit"]["sha"], first.as_str());
}

#[test]
fn missing_image_that_cannot_be_pulled_gives_one_clear_sentence() {
    let w = World::new(&[]);
    let p = w.pipeline("name: img\nstages:\n  x:\n    image: gantry/not-built-here:1\n    commands: [\"true\"]\n");
    let out = w.run(&p, &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("image 'gantry/not-built-here:1' is not on this engine and could not be pulled: "),
        "stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{stderr}");
    let run = w.latest();
    assert!(stage(&run, "x")["message"].as_str().unwrap().starts_with("image 'gantry/not-built-here:1' is not on this engine"));
}

#[test]
fn unreachable_docker_is_one_sentence_naming_the_socket() {
    let w = World::new(&[]);
    let p = w.pipeline("name: d\nstages:\n  x:\n    image: gantry/busybox\n    commands: [\"true\"]\n");
    let out = w.gantry()
        .args(["--docker-host", "unix:///nonexistent/docker.sock", "run"])
        .arg(&p)
        .arg("--repo")
        .arg(w.repo())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("gantry: cannot reach the Docker engine at unix:///nonexistent/docker.sock: "), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    // Nothing was recorded for a run that could not start.
    let runs = w.json(&["runs"]);
    assert_eq!(runs.as_array().unwrap().len(), 0);
}

#[test]
fn invalid_pipeline_is_refused_before_any_run_is_recorded() {
    let w = World::new(&[]);
    let p = w.pipeline("name: broken\nstages:\n  x:\n    imgae: gantry/busybox\n    commands: [\"true\"]\n");
    let out = w.run(&p, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("stages.x.imgae"), "{}", text(&out.stderr));
    let validate = w.gantry().arg("validate").arg(&p).output().unwrap();
    assert_eq!(validate.status.code(), Some(1));
    assert!(text(&validate.stderr).contains(":4:5: stages.x.imgae: unknown key"), "{}", text(&validate.stderr));
    assert_eq!(w.json(&["runs"]).as_array().unwrap().len(), 0);
}

#[test]
fn secrets_never_reach_terminal_store_or_logs() {
    let w = World::new(&[]);
    let secrets = w.dir.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let whole = "tok-5f1c9e2a7b";
    let split = "split-secret-0123456789";
    let multi = "-----BEGIN KEY-----\nMIIEvQIBADANBgkq\n-----END KEY-----";
    std::fs::write(secrets.join("WHOLE"), whole).unwrap();
    std::fs::write(secrets.join("SPLIT"), split).unwrap();
    std::fs::write(secrets.join("MULTI"), multi).unwrap();
    // Two writes with a pause between them reach Gantry as separate chunks.
    let script = "echo \"whole: $WHOLE\"\n\
        printf 'split: %s' \"$(echo $SPLIT | cut -c1-9)\"; sleep 0.5; printf '%s\\n' \"$(echo $SPLIT | cut -c10-)\"\n\
        echo \"multi: $MULTI\"\n\
        echo \"to stderr $WHOLE\" >&2\n\
        exit 4\n";
    w.commit(&[("leak.sh", script)], "leaky script");
    let p = w.pipeline("name: sec\nstages:\n  leak:\n    image: gantry/busybox\n    secrets: [WHOLE, SPLIT, MULTI]\n    commands: [\"sh -e leak.sh\"]\n");
    let out = w.run(&p, &["--secrets-dir", secrets.to_str().unwrap(), "--secret", "WHOLE", "--secret", "SPLIT", "--secret", "MULTI"]);
    assert_eq!(out.status.code(), Some(1));
    let printed = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(printed.contains("whole: ***"), "{printed}");
    assert!(printed.contains("split: ***"), "{printed}");
    assert!(printed.contains("multi: ***"), "{printed}");
    let logs = text(&w.gantry().args(["logs", "latest"]).output().unwrap().stdout);
    let shown = text(&w.gantry().args(["show", "latest", "--json"]).output().unwrap().stdout);
    let mut store_bytes = Vec::new();
    for entry in walk(&w.data_dir()) {
        store_bytes.extend(std::fs::read(entry).unwrap());
    }
    let store_text = String::from_utf8_lossy(&store_bytes);
    for value in [whole, split, "MIIEvQIBADANBgkq", "split-sec", "0123456789"] {
        assert!(!printed.contains(value), "{value} printed: {printed}");
        assert!(!logs.contains(value), "{value} in gantry logs");
        assert!(!shown.contains(value), "{value} in gantry show");
        assert!(!store_text.contains(value), "{value} in the store files");
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn missing_secret_is_refused_before_the_run_starts() {
    let w = World::new(&[]);
    let p = w.pipeline("name: ms\nstages:\n  x:\n    image: gantry/busybox\n    secrets: [GANTRY_TEST_NOT_SET_ANYWHERE]\n    commands: [\"true\"]\n");
    let out = w.run(&p, &["--secret", "GANTRY_TEST_NOT_SET_ANYWHERE", "--secrets-from-env"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("secret 'GANTRY_TEST_NOT_SET_ANYWHERE' (used by stage 'x') is not set"), "{}", text(&out.stderr));
    assert!(w.json(&["runs"]).as_array().unwrap().is_empty(), "nothing was recorded");
}

#[test]
fn a_secret_is_granted_by_the_operator_and_the_environment_is_read_only_when_asked() {
    let w = World::new(&[]);
    let p = w.pipeline("name: grants\nstages:\n  x:\n    image: gantry/busybox\n    secrets: [GANTRY_TEST_GRANTED]\n    commands: [\"test \\\"$GANTRY_TEST_GRANTED\\\" = from-env\"]\n");
    let run = |extra: &[&str]| w.gantry().env("GANTRY_TEST_GRANTED", "from-env").env_remove("GANTRY_CONFIG").arg("run").arg(&p).arg("--repo").arg(w.repo()).args(extra).output().unwrap();
    // Not granted: refused before the run starts, naming the secret and the rule.
    let out = run(&["--secrets-from-env"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("stage 'x' names the secret GANTRY_TEST_GRANTED, which pipelines.grants.secrets in"), "{}", text(&out.stderr));
    // Granted, but the environment is not read unless asked.
    let out = run(&["--secret", "GANTRY_TEST_GRANTED"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("is not set"), "{}", text(&out.stderr));
    assert!(w.json(&["runs"]).as_array().unwrap().is_empty(), "refusals record nothing");
    // Granted by the operator's config, read from the environment on request.
    let config = w.dir.path().join("config.yml");
    std::fs::write(&config, "pipelines:\n  grants: {secrets: [GANTRY_TEST_GRANTED]}\n").unwrap();
    let out = run(&["--secrets-from-env", "--plain"]).status;
    let out2 = w.gantry().env("GANTRY_TEST_GRANTED", "from-env").arg("--config").arg(&config).arg("run").arg(&p).arg("--repo").arg(w.repo()).arg("--secrets-from-env").output().unwrap();
    assert_eq!(out.code(), Some(1), "without the config's grant it is still refused");
    assert!(out2.status.success(), "{}", text(&out2.stderr));
}

#[test]
fn log_format_json_gives_machine_readable_diagnostics() {
    let w = World::new(&[]);
    let p = w.pipeline("name: j\nstages:\n  x:\n    image: gantry/busybox\n    commands: [\"true\"]\n");
    let out = w
        .gantry()
        .env("RUST_LOG", "gantry=debug")
        .args(["--log-format", "json", "run"])
        .arg(&p)
        .arg("--repo")
        .arg(w.repo())
        .output()
        .unwrap();
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let records: Vec<serde_json::Value> = stderr.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let connected = records.iter().find(|r| r["fields"]["message"] == "connected to the Docker engine");
    let connected = connected.unwrap_or_else(|| panic!("no JSON diagnostics in: {stderr}"));
    assert_eq!(connected["level"], "DEBUG");
    assert!(connected["fields"]["api"].as_str().unwrap().starts_with("1."));
}

#[test]
fn a_stage_started_ahead_of_its_turn_sees_what_it_would_have_seen() {
    // `two` is created and started (held at its gate) while `one` runs; its commands must
    // begin only after `one` ended, see `one`'s files, and read a closed stdin as before.
    let w = World::new(&[]);
    let p = w.pipeline(
        "name: ahead\nstages:\n  one:\n    image: gantry/busybox\n    commands: [\"sleep 2\", \"echo one > out.txt\"]\n  two:\n    image: gantry/busybox\n    timeout: 60s\n    commands: [\"test \\\"$(cat out.txt)\\\" = one\", \"cat\", \"readlink /proc/self/fd/0\"]\n",
    );
    let out = w.run(&p, &[]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let run = w.latest();
    assert!(stage(&run, "two")["started_at"].as_str() >= stage(&run, "one")["finished_at"].as_str());
    let logs = text(&w.gantry().args(["logs", "latest", "two"]).output().unwrap().stdout);
    assert!(logs.contains("/dev/null"), "stdin is /dev/null, as for a step never held: {logs}");
    assert!(!logs.contains("gantry_go"), "the gate is not part of the stage's script as shown: {logs}");
    assert!(docker_objects_of(run["id"].as_str().unwrap()).is_empty());
}
