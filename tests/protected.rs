//! Protected environments on the real engine, the real service and real git: the rules
//! that guard production are the operator's, and neither the commit they judge, another
//! project, a trigger's claim, a hidden author, the pusher, nor a name typed on the command
//! line gets around them.

mod common;

use std::process::Output;

use common::service::{hmac, sha256, Service, DEV, GITHUB_SECRET};
use common::{commit_files_as, commit_on_branch, env_containers, free_port, http, http_get, text, Env, GatedSite, World};
use serde_json::{json, Value};

const SITE_DOCKERFILE: &str = "FROM gantry/busybox\nCOPY index.html /www/index.html\nCMD [\"busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n";

/// A pipeline that builds the site and deploys it straight into `env`, published on `port`.
fn straight_to(env: &str, port: u16) -> String {
    format!(
        "name: site\nstages:\n  image: {{kind: build, context: site, tag: \"gantry-test/site:${{commit.short}}\"}}\n  ship: {{kind: deploy, environment: {env}, app: site, image: \"gantry-test/site:${{commit.short}}\", port: 8080, publish: {port}, health: {{http: /index.html}}}}\n"
    )
}

/// A pipeline that deploys the site to `staging` and promotes it to `prod` (published on
/// `port`); it asks for no approval itself.
fn through_staging(staging: &str, prod: &str, port: u16) -> String {
    format!(
        r#"name: site
stages:
  image: {{kind: build, context: site, tag: "gantry-test/site:${{commit.short}}"}}
  staging: {{kind: deploy, environment: {staging}, app: site, image: "gantry-test/site:${{commit.short}}", port: 8080, health: {{http: /index.html}}}}
  release: {{kind: promote, from: {staging}, to: {prod}, app: site, port: 8080, publish: {port}, health: {{http: /index.html}}, gate: {{stages: [staging]}}}}
"#
    )
}

fn github_push(branch: &str, after: &str, pusher: &str) -> Vec<u8> {
    json!({"ref": format!("refs/heads/{branch}"), "before": "0".repeat(40), "after": after,
           "repository": {"name": "site", "full_name": "acme/site", "clone_url": "https://example.invalid/acme/site.git"},
           "pusher": {"name": pusher}})
    .to_string()
    .into_bytes()
}

/// Delivers a signed GitHub push; returns the id of the run it queued.
fn push(svc: &Service, branch: &str, sha: &str, pusher: &str) -> String {
    let body = github_push(branch, sha, pusher);
    let sig = format!("sha256={}", hmac(GITHUB_SECRET, &body));
    let (status, answer) = http(svc.port, "POST", "/hooks/github", &[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &sig)], Some(&body)).unwrap();
    assert_eq!(status, 202, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    answer[0]["result"]["run"].as_str().unwrap_or_else(|| panic!("the push queued no run: {answer}")).to_string()
}

fn stage<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["stages"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no stage {name} in {run}"))
}

fn serving(port: u16) -> Option<String> {
    http_get(port, "/index.html").map(|(_, body)| body.trim().to_string())
}

#[test]
fn the_operators_rules_hold_against_the_pushed_commit_another_project_a_trigger_and_the_change_itself() {
    let w = World::new(&[("site/Dockerfile", SITE_DOCKERFILE), ("site/index.html", "version 1\n")]);
    let (staging, prod) = (Env::new(&w, "stg"), Env::new(&w, "prd"));
    let port = free_port();

    // Before the operator protects it, production is deployed to directly: version 1.
    let first = w.pipeline(&straight_to(&prod.name, port));
    let out = w.gantry().env_remove("GANTRY_CONFIG").arg("run").arg(&first).arg("--repo").arg(w.repo()).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(serving(port).as_deref(), Some("version 1"));
    let prod_before = env_containers(&prod.name, "app");

    let intruder = World::new(&[("gantry.yml", &format!("name: blog\nstages:\n  ship: {{kind: deploy, environment: {}, app: site, image: gantry/busybox, port: 8080}}\n", prod.name))]);
    let users = format!(
        "  mal: {{role: release-manager, emails: [mal@example.com], token_sha256: {}}}\n  rex: {{role: release-manager, forges: {{github: rex-gh}}, token_sha256: {}}}\n  ann: {{role: release-manager, token_sha256: {}}}\n",
        sha256("mal-token"),
        sha256("rex-token"),
        sha256("ann-token")
    );
    let projects = format!(
        "  site:\n    repo: {}\n    branches: [main]\n    webhook: {{secret_env: GH_SECRET, repository: acme/site}}\n  intruder:\n    repo: {}\nenvironments:\n  {}:\n    projects: [site]\n    promote_only: true\n    branches: [main]\n    approval: {{count: 1}}\n",
        w.repo().display(),
        intruder.repo().display(),
        prod.name
    );
    let svc = Service::start_with(w.dir.path(), &users, &projects, "{global: 2, per_project: 1}");
    let config = svc.config.display().to_string();
    let config_text = std::fs::read_to_string(&svc.config).unwrap();
    // The line of a rule under `environments:` (the projects have a `branches:` too).
    let section = config_text.lines().position(|l| l == "environments:").unwrap();
    let line_of = |needle: &str| section + config_text.lines().skip(section).position(|l| l.trim_start().starts_with(needle)).unwrap() + 1;

    // 1. A pushed commit whose pipeline has no approval and deploys straight into production.
    let dropped = commit_files_as(
        &w.repo(),
        &[("site/index.html", "version 2\n"), ("gantry.yml", &straight_to(&prod.name, port))],
        "straight to production",
        ("Mal Icious", "mal@example.com"),
    );
    let run = push(&svc, "main", &dropped, "ada");
    let run = svc.wait_for(&run, &["failed", "succeeded"]);
    assert_eq!(run["state"], "failed", "{run}");
    let ship = stage(&run, "ship");
    let want = format!("refused: {config}:{}: {} is promote_only; stage 'ship' (kind: deploy) may not change it", line_of("promote_only:"), prod.name);
    assert_eq!(ship["message"], want.as_str(), "{run}");
    assert_eq!(ship["attempts"], 1, "a refusal is not retried");
    assert_eq!(serving(port).as_deref(), Some("version 1"), "production still serves the old version");
    assert_eq!(env_containers(&prod.name, "app"), prod_before, "nothing on the engine changed");

    // 2. Another project deploying into this one's environment.
    let (status, answer) = svc.call("POST", "/api/projects/intruder/trigger", Some(DEV), Some(json!({})));
    assert_eq!(status, 202, "{answer}");
    let run = svc.wait_for(answer["run"].as_str().unwrap(), &["failed", "succeeded"]);
    let message = stage(&run, "ship")["message"].as_str().unwrap().to_string();
    assert_eq!(
        message,
        format!("refused: {config}:{}: {} may be changed only by project site; stage 'ship' (kind: deploy) of intruder may not change it", line_of("projects: [site]"), prod.name)
    );

    // 3. A commit that only a feature branch holds, claimed to be on `main`, then not.
    let side = commit_on_branch(&w.repo(), "feature/x", &[("gantry.yml", &through_staging(&staging.name, &prod.name, port))], "from a side branch");
    let (status, answer) = svc.call("POST", "/api/projects/site/trigger", Some(DEV), Some(json!({"ref": side, "branch": "main"})));
    assert_eq!(status, 400, "the claim is checked in the repository: {answer}");
    assert!(answer["error"].as_str().unwrap().contains("branch main does not contain commit"), "{answer}");
    // Named honestly, it runs, and the operator's branch rule refuses the promotion.
    let (status, answer) = svc.call("POST", "/api/projects/site/trigger", Some(DEV), Some(json!({"ref": side, "branch": "feature/x"})));
    assert_eq!(status, 202, "{answer}");
    let run = svc.wait_for(answer["run"].as_str().unwrap(), &["failed", "succeeded", "awaiting_approval"]);
    let message = stage(&run, "release")["message"].as_str().unwrap().to_string();
    assert!(message.starts_with(&format!("refused: {config}:{}: {} takes only commits on main;", line_of("branches: [main]"), prod.name)), "{message}");
    assert_eq!(serving(port).as_deref(), Some("version 1"));

    // 4. A proper promotion whose pipeline asks for no approval still waits for one (the
    // operator's floor), and nobody who took part in the change may give it: mal, whose
    // commit hides behind a later one of someone else, and rex, who pushed it.
    let head = commit_files_as(
        &w.repo(),
        &[("gantry.yml", &through_staging(&staging.name, &prod.name, port))],
        "promote properly",
        ("Dee Eloper", "dee@example.com"),
    );
    let run = push(&svc, "main", &head, "rex-gh");
    let parked = svc.wait_for(&run, &["awaiting_approval", "failed", "succeeded"]);
    assert_eq!(parked["state"], "awaiting_approval", "{parked}");
    assert_eq!(parked["approval"]["request"]["rule"]["count"], 1);
    let authors: Vec<&str> = parked["approval"]["request"]["change"]["authors"].as_array().unwrap().iter().map(|a| a["email"].as_str().unwrap()).collect();
    assert!(authors.contains(&"mal@example.com") && authors.contains(&"dee@example.com"), "{authors:?}");
    let approve = |token: &str| svc.call("POST", &format!("/api/runs/{run}/approve"), Some(token), Some(json!({"comment": "ok"})));
    let (status, answer) = approve("mal-token");
    assert_eq!(status, 403, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains(&format!("they authored commit {} (mal@example.com), part of the change", &dropped[..8])), "{answer}");
    // From the command line, on the data dir the service holds: the service decides, by
    // the same rules as its API.
    let cli_approve = |token: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_gantry"))
            .arg("--data-dir").arg(&svc.data).arg("--config").arg(&svc.config)
            .args(["approve", &run])
            .env("GANTRY_TOKEN", token)
            .env_remove("GANTRY_CONFIG")
            .output()
            .unwrap()
    };
    let out = cli_approve("rex-token");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("they pushed it (github login rex-gh)"), "{}", text(&out.stderr));
    assert!(svc.run(&run)["approval"]["decisions"].as_array().unwrap().is_empty(), "a refusal records nothing");
    let out = cli_approve("ann-token");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("the service is promoting"), "{}", text(&out.stdout));
    let done = svc.wait_for(&run, &["succeeded", "failed"]);
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(serving(port).as_deref(), Some("version 2"), "the promotion that passed every rule went live");
}

/// Runs `gantry <args>` in the gated site's world with the given token (none: no
/// GANTRY_TOKEN at all) and no terminal to prompt on.
fn gantry(site: &GatedSite, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = site.w.gantry();
    cmd.env_remove("GANTRY_TOKEN").env_remove("GANTRY_CONFIG");
    if let Some(t) = token {
        cmd.env("GANTRY_TOKEN", t);
    }
    cmd.args(args).output().unwrap()
}

#[test]
fn gantry_approve_and_env_destroy_need_the_token_of_the_user_they_claim() {
    let site = GatedSite::new("{role: release-manager, count: 1}");
    let config = site.w.dir.path().join("operator.yml");
    std::fs::write(
        &config,
        format!(
            "users:\n  rita: {{role: release-manager, token_sha256: {}}}\n  dev: {{role: developer, token_sha256: {}}}\n  ops: {{role: admin, token_sha256: {}}}\nenvironments:\n  {}:\n    promote_only: true\n",
            sha256("rita-token"),
            sha256("dev-token"),
            sha256("ops-token"),
            site.prod.name
        ),
    )
    .unwrap();
    let c = config.display().to_string();
    let out = gantry(&site, None, &["--config", &c, "run", site.pipeline.to_str().unwrap(), "--repo", site.w.repo().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let run = site.w.latest()["id"].as_str().unwrap().to_string();

    let refused = [
        (None, vec![], "who is this?"),
        (None, vec!["--as", "rita"], "`--as rita` proves nothing"),
        (Some("guess"), vec![], "the token given belongs to no user"),
        (Some("dev-token"), vec!["--as", "rita"], "the token given is dev's, not rita's"),
    ];
    for (token, extra, said) in refused {
        let mut args = vec!["--config", c.as_str(), "approve", run.as_str()];
        args.extend(extra.iter().copied());
        let out = gantry(&site, token, &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(text(&out.stderr).contains(said), "{args:?}: {}", text(&out.stderr));
        let stored = site.w.show(&run);
        assert_eq!(stored["state"], "awaiting_approval", "{args:?}");
        assert!(stored["approval"]["decisions"].as_array().unwrap().is_empty(), "{args:?} recorded a decision");
    }
    assert_eq!(site.serving(), None, "nothing reached production");

    // rita's own token, from a file, decides.
    let token_file = site.w.dir.path().join("rita.token");
    std::fs::write(&token_file, "rita-token\n").unwrap();
    let out = gantry(&site, None, &["--config", &c, "approve", &run, "--token-file", token_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(site.w.show(&run)["approval"]["decisions"][0]["user"], "rita");
    assert_eq!(site.serving().as_deref(), Some("version 1"));

    // A protected environment is destroyed only by an admin who proves it.
    for token in [None, Some("dev-token")] {
        let out = gantry(&site, token, &["--config", &c, "env", "destroy", &site.prod.name]);
        assert_eq!(out.status.code(), Some(1));
        assert!(text(&out.stderr).contains(&format!("{} is protected; destroying it needs an admin", site.prod.name)), "{}", text(&out.stderr));
        assert_eq!(site.serving().as_deref(), Some("version 1"), "a refused destroy removed nothing");
    }
    let out = gantry(&site, Some("ops-token"), &["--config", &c, "env", "destroy", &site.prod.name]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(site.serving(), None);
}

#[test]
fn validate_with_the_config_prints_the_effective_rules_and_refuses_what_a_run_would() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yml");
    std::fs::write(&config, "environments:\n  production:\n    promote_only: true\n    approval: {count: 2, expires: 24h}\n").unwrap();
    let pipeline = dir.path().join("gantry.yml");
    std::fs::write(
        &pipeline,
        "name: shop\nenvironments:\n  production:\n    approval: {count: 1, forbid_author: false}\nstages:\n  ship: {kind: provision, environment: production, services: {db: {image: x}}}\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["--config", config.to_str().unwrap(), "validate", pipeline.to_str().unwrap()])
        .output()
        .unwrap();
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    let c = config.display();
    assert!(said.contains(&format!("production: protected ({c}:2): promote_only; approval by 2 release-managers, not the author, expires after 24h")), "{said}");
    assert!(said.contains(&format!("warning: {} asks for 1 approval(s), the operator for 2", pipeline.display())), "{said}");
    assert!(said.contains("warning:") && said.contains("lets the author approve, the operator does not"), "{said}");
    assert!(said.contains(&format!("error: stage 'ship' would be refused in production: {c}:3: production is promote_only")), "{said}");
    let json = std::process::Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["--config", config.to_str().unwrap(), "validate", "--json", pipeline.to_str().unwrap()])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["policy"]["environments"][0]["approval"]["count"], 2);
}
