//! What a stage may take of the host and which images it may touch, on the real engine:
//! limits that hold (a fork bomb, a memory hog), a maximum the pipeline cannot pass,
//! capabilities dropped, agents run only from the image scripts/setup built, and builds
//! that can neither tag into `gantry/` nor over another project's image.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{require, stage, text, Env, World};

/// A suffix no other test run uses, for image names.
fn unique() -> String {
    let u = ulid::Ulid::new().to_string().to_ascii_lowercase();
    u[u.len() - 8..].to_string()
}

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker").args(args).output().expect("docker cli")
}

fn image_id(image: &str) -> String {
    text(&docker(&["image", "inspect", "-f", "{{.Id}}", image]).stdout).trim().to_string()
}

/// Removes the test's own image names (untags: the images behind them stay).
struct Tags(Vec<String>);

impl Drop for Tags {
    fn drop(&mut self) {
        for t in &self.0 {
            let _ = docker(&["rmi", t]);
        }
    }
}

#[test]
fn a_build_into_the_gantry_namespace_is_refused_at_validation_and_at_run_time() {
    require("gantry/smoke");
    let w = World::new(&[("app/Dockerfile", "FROM gantry/busybox\n")]);
    let p = w.pipeline("name: evil\nstages:\n  image:\n    kind: build\n    context: app\n    tag: gantry/smoke\n");
    let out = w.gantry().arg("validate").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("gantry.yml:6:10: stages.image.tag: `gantry/smoke` is in the gantry/ namespace, which is reserved for Gantry's own images"),
        "{err}"
    );
    assert_eq!(w.run(&p, &[]).status.code(), Some(1));
    assert!(w.json(&["runs"]).as_array().unwrap().is_empty(), "nothing ran");

    // Through a variable the name is only known at run time: refused then, nothing built.
    let before = image_id("gantry/smoke");
    let p = w.pipeline("name: evil\nvars: {ns: gantry}\nstages:\n  image:\n    kind: build\n    context: app\n    tag: \"${var.ns}/smoke\"\n");
    assert_eq!(w.run(&p, &[]).status.code(), Some(1));
    let image = stage(&w.latest(), "image").clone();
    assert_eq!(image["state"], "failed");
    let message = image["message"].as_str().unwrap();
    assert!(message.starts_with("refused: the build's tag gantry/smoke is in the gantry/ namespace, which is reserved"), "{message}");
    assert_eq!(image_id("gantry/smoke"), before, "gantry/smoke is untouched");
}

#[test]
fn a_build_may_not_overwrite_another_projects_tag() {
    // The Dockerfile claims the image for the intruder; the label Gantry gives wins.
    let w = World::new(&[("app/Dockerfile", "FROM gantry/busybox\nLABEL io.gantry.project=intruder\n")]);
    let tag = format!("gantry-test/shared:{}", unique());
    let _cleanup = Tags(vec![tag.clone()]);
    let pipeline = |name: &str| format!("name: {name}\nstages:\n  image:\n    kind: build\n    context: app\n    tag: \"{tag}\"\n");

    let label = |image: &str| text(&docker(&["image", "inspect", "-f", "{{index .Config.Labels \"io.gantry.project\"}}", image]).stdout).trim().to_string();
    let out = w.run(&w.pipeline(&pipeline("storefront")), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(label(&tag), "storefront");
    // The same project builds it again: its own tag.
    assert!(w.run(&w.pipeline(&pipeline("storefront")), &[]).status.success());
    let first = image_id(&tag);

    let out = w.run(&w.pipeline(&pipeline("intruder")), &[]);
    assert_eq!(out.status.code(), Some(1));
    let message = stage(&w.latest(), "image")["message"].as_str().unwrap().to_string();
    assert_eq!(
        message,
        format!("refused: {tag} was built by project storefront's pipeline; project intruder may not overwrite another project's image (use a tag of its own, e.g. intruder/...)")
    );
    assert_eq!(image_id(&tag), first, "the tag still points at storefront's image");
}

/// A config whose agents are the test's own names, checked against a record of its own.
fn agents_config(w: &World, smoke: &str, record: &str) -> std::path::PathBuf {
    let record_path = w.dir.path().join("agent-images");
    std::fs::write(&record_path, record).unwrap();
    let config = w.dir.path().join("config.yml");
    std::fs::write(&config, format!("agents:\n  record: {}\n  smoke: {smoke}\n", record_path.display())).unwrap();
    config
}

#[test]
fn an_agent_image_that_is_not_the_one_setup_built_is_refused() {
    require("gantry/smoke");
    let w = World::new(&[]);
    let env = Env::new(&w, "agent");
    let p = w.pipeline(&format!(
        "name: a\nstages:\n  smoke:\n    kind: smoke\n    target: {}\n    journeys: [{{name: j, steps: [{{name: s, path: /}}]}}]\n",
        env.name
    ));
    let run_with = |config: &std::path::Path| {
        let out = w.gantry().arg("--config").arg(config).arg("run").arg(&p).arg("--repo").arg(w.repo()).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        stage(&w.latest(), "smoke")["message"].as_str().unwrap().to_string()
    };
    let genuine = image_id("gantry/smoke");
    let record = format!("smoke {genuine}\n");
    let (copy, tampered, missing) = (format!("gantry-test/smoke-copy:{}", unique()), format!("gantry-test/smoke-tampered:{}", unique()), format!("gantry-test/smoke-missing:{}", unique()));
    let _cleanup = Tags(vec![copy.clone(), tampered.clone()]);
    assert!(docker(&["tag", "gantry/smoke", &copy]).status.success());
    assert!(docker(&["tag", "gantry/busybox", &tampered]).status.success());

    // Another name for the very image is fine: the check goes on to the target, which
    // has no app here.
    let message = run_with(&agents_config(&w, &copy, &record));
    assert!(message.contains(&format!("environment '{}' has no live version of app", env.name)), "{message}");

    let message = run_with(&agents_config(&w, &tampered, &record));
    let busybox = image_id("gantry/busybox");
    assert!(message.starts_with(&format!("{tampered} is not the smoke agent that agents/build.sh built: it is image {busybox}, the record ")), "{message}");
    assert!(message.contains(&format!("says {genuine}")) && message.ends_with("rebuild it with scripts/setup (or agents/build.sh smoke)"), "{message}");
    let logs = text(&w.gantry().args(["logs", "latest", "smoke"]).output().unwrap().stdout);
    assert!(logs.contains("is not the smoke agent"), "said in the stage's log too: {logs}");

    let message = run_with(&agents_config(&w, &missing, &record));
    assert_eq!(
        message,
        format!("the smoke agent's image {missing} is not on this engine, and Gantry never pulls its agents (a registry's {missing} could be anyone's): build it with scripts/setup (or agents/build.sh smoke)")
    );

    let message = run_with(&agents_config(&w, &copy, "load sha256:0\n"));
    assert!(message.contains("has no line for smoke") && message.contains("scripts/setup"), "{message}");
}

#[test]
fn limits_above_the_operators_maximum_are_refused_before_the_run() {
    let w = World::new(&[]);
    let config = w.dir.path().join("config.yml");
    std::fs::write(&config, "limits:\n  default: {memory: 512m}\n  max:\n    memory: 1g\n    pids: 256\n").unwrap();
    let p = w.pipeline("name: big\nstages:\n  build:\n    image: gantry/busybox\n    commands: [make]\n    limits: {memory: 2g, pids: 128}\n");
    let out = w.gantry().arg("--config").arg(&config).arg("run").arg(&p).arg("--repo").arg(w.repo()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let expected = format!(
        "gantry.yml:6:22: stages.build.limits.memory: asks for 2 GiB, more than the operator allows (1 GiB, limits.max.memory at {}:4); nothing ran",
        config.display()
    );
    assert!(err.contains(&expected), "{err}");
    assert!(w.json(&["runs"]).as_array().unwrap().is_empty(), "nothing was recorded");
    let out = w.gantry().arg("--config").arg(&config).arg("validate").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(&expected));
}

#[test]
fn a_memory_hog_fails_its_stage_as_out_of_memory_not_as_a_bare_137() {
    let w = World::new(&[]);
    // dd's 256 MiB buffer, filled from /dev/zero, cannot fit in 32 MiB.
    let p = w.pipeline("name: hog\nstages:\n  hog:\n    image: gantry/busybox\n    limits: {memory: 32m}\n    commands: [\"dd if=/dev/zero of=/dev/null bs=256M count=1\"]\n");
    let out = w.run(&p, &[]);
    assert_eq!(out.status.code(), Some(1));
    let hog = stage(&w.latest(), "hog").clone();
    assert_eq!(hog["state"], "failed");
    assert_eq!(hog["exit_code"], 137);
    let message = hog["message"].as_str().unwrap();
    assert!(
        message.starts_with("killed for running out of memory: it went over its memory limit of 32 MiB and the kernel's OOM killer ended it (exit code 137)"),
        "{message}"
    );
    assert!(text(&out.stderr).contains("killed for running out of memory"), "{}", text(&out.stderr));
}

#[test]
fn a_fork_bomb_is_contained_by_the_pids_limit_and_the_host_keeps_answering() {
    let w = World::new(&[]);
    // The bomb runs only once the limit is seen from inside (cgroup v1 or v2), so a missing
    // limit fails the test instead of the machine; 2 s later, so that it is watched.
    let p = w.pipeline(
        "name: bomb\nstages:\n  forkbomb:\n    image: gantry/busybox\n    timeout: 15s\n    limits: {pids: 64, cpus: 0.5}\n    commands:\n      - \"test $(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max) = 64 || exit 99\"\n      - sleep 2\n      - \"b() { b | b & }; b; sleep 30\"\n",
    );
    let started = Instant::now();
    let child = w.gantry().arg("run").arg(&p).arg("--repo").arg(w.repo()).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let run_id = common::wait_for_running_stage("forkbomb", Duration::from_secs(30));
    // While it rages: the engine answers, and the container never holds more than 64
    // (read from its cgroup on the host where that is where the engine keeps it, which is
    // fast enough to see the peak; else from `docker stats`).
    let mut most = 0u64;
    let mut slowest = Duration::ZERO;
    let filter = format!("label=io.gantry.run={run_id}");
    let id = text(&docker(&["ps", "-q", "--no-trunc", "--filter", &filter]).stdout).lines().next().unwrap_or_default().to_string();
    let cgroup = [format!("/sys/fs/cgroup/pids/docker/{id}/pids.current"), format!("/sys/fs/cgroup/system.slice/docker-{id}.scope/pids.current")]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let watching = Instant::now();
    while watching.elapsed() < Duration::from_secs(6) {
        match &cgroup {
            Some(path) => {
                let now = std::fs::read_to_string(path).ok().and_then(|t| t.trim().parse().ok());
                most = most.max(now.unwrap_or(0));
                std::thread::sleep(Duration::from_millis(10));
            }
            None => {
                let pids = text(&docker(&["stats", "--no-stream", "--format", "{{.PIDs}}", &id]).stdout);
                most = most.max(pids.trim().parse().unwrap_or(0));
            }
        }
        if watching.elapsed() > Duration::from_secs(1) && slowest.is_zero() {
            let asked = Instant::now();
            let info = Command::new("timeout").args(["20", "docker", "info", "--format", "{{.ServerVersion}}"]).output().unwrap();
            assert!(info.status.success(), "docker info did not answer during the bomb");
            slowest = asked.elapsed();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let bomb = stage(&w.show(&run_id), "forkbomb").clone();
    assert!(bomb["state"] == "failed" || bomb["state"] == "timed_out", "{bomb}");
    assert_ne!(bomb["exit_code"], 99, "the limit was in force");
    assert!(most <= 64, "the container held {most} processes");
    if cgroup.is_some() {
        assert!(most > 8, "the bomb was seen raging against the limit (at most {most} processes seen)");
    }
    let logs = text(&w.gantry().args(["logs", &run_id, "forkbomb"]).output().unwrap().stdout);
    assert!(logs.contains("can't fork") || logs.contains("Resource temporarily unavailable"), "the limit bit: {logs}");
    eprintln!("fork bomb: at most {most} processes seen ({}), docker info answered in {slowest:?}, run over after {:?}", if cgroup.is_some() { "cgroup" } else { "docker stats" }, started.elapsed());
    assert!(common::docker_objects_of(&run_id).is_empty(), "and it was cleaned up");
}

/// The capability bits of `CapEff` in /proc/self/status: 13 NET_RAW, 27 MKNOD, 29 AUDIT_WRITE.
fn has_cap(cap_eff: u64, bit: u32) -> bool {
    cap_eff & (1 << bit) != 0
}

#[test]
fn stage_containers_drop_net_raw_mknod_and_audit_write_and_cannot_gain_privileges() {
    let w = World::new(&[]);
    let p = w.pipeline("name: caps\nstages:\n  caps:\n    image: gantry/busybox\n    commands: [\"grep -E '^(CapEff|NoNewPrivs)' /proc/self/status\", \"chown 1:1 /tmp && echo chown-ok\"]\n");
    let out = w.run(&p, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let logs = text(&w.gantry().args(["logs", "latest", "caps"]).output().unwrap().stdout);
    let field = |name: &str| logs.lines().find_map(|l| l.split_once(&format!("{name}:")).map(|(_, v)| v.trim().to_string())).unwrap_or_else(|| panic!("no {name} in {logs}"));
    let cap_eff = u64::from_str_radix(&field("CapEff"), 16).unwrap();
    for (bit, name) in [(13, "NET_RAW"), (27, "MKNOD"), (29, "AUDIT_WRITE")] {
        assert!(!has_cap(cap_eff, bit), "{name} is dropped: CapEff {cap_eff:x}");
    }
    // What build tools do need stays: chown (0), setuid/setgid (7/6) for package managers.
    for (bit, name) in [(0, "CHOWN"), (6, "SETGID"), (7, "SETUID")] {
        assert!(has_cap(cap_eff, bit), "{name} is kept: CapEff {cap_eff:x}");
    }
    assert_eq!(field("NoNewPrivs"), "1");
    assert!(logs.contains("chown-ok"), "{logs}");
}

#[test]
fn the_router_and_probe_run_read_only_without_capabilities_as_nobody() {
    require("gantry/smoke");
    require("gantry/router");
    let w = World::new(&[]);
    let env = Env::new(&w, "conf");
    let p = w.pipeline(&format!(
        "name: d\nstages:\n  deploy:\n    kind: deploy\n    environment: {}\n    app: web\n    image: gantry/busybox\n    port: 8080\n    command: \"mkdir -p /www && echo up > /www/index.html && exec httpd -f -p 8080 -h /www\"\n    health: {{http: /index.html, deadline: 20s}}\n    limits: {{memory: 64m, pids: 100}}\n",
        env.name
    ));
    let out = w.run(&p, &[]);
    assert!(out.status.success(), "the router and the smoke probe work confined: {}", text(&out.stderr));
    let inspect = |id: &str, format: &str| text(&docker(&["inspect", "-f", format, id]).stdout).trim().to_string();
    let routers = common::env_running(&env.name, "router");
    assert_eq!(routers.len(), 1);
    let router = &routers[0];
    assert_eq!(inspect(router, "{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}} {{.Config.User}}"), "true [ALL] 65534:65534");
    assert_eq!(inspect(router, "{{.Image}}"), image_id("gantry/router"), "run from the verified id");
    // The app version is the pipeline's code: a workload, under the stage's limits.
    let apps = common::env_running(&env.name, "app");
    assert_eq!(inspect(&apps[0], "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.ReadonlyRootfs}}"), format!("{} 100 false", 64 << 20));
    assert_eq!(inspect(&apps[0], "{{.HostConfig.CapDrop}}"), "[NET_RAW MKNOD AUDIT_WRITE]");
}
