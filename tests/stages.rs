//! The delivery stage kinds on the real engine: build, provision, deploy, smoke; real
//! images built locally, real environments (destroyed after each test), real HTTP.

mod common;

use common::{env_containers, env_running, free_port, http_get, require, stage, text, Env, World};

#[test]
fn build_stage_builds_tags_and_records_the_image() {
    let w = World::new(&[
        ("app/Dockerfile", "FROM gantry/busybox\nARG GREETING\nRUN echo \"$GREETING\" > /greeting\nCOPY hello.txt /hello.txt\n"),
        ("app/hello.txt", "hi\n"),
        ("app/.dockerignore", "secret.txt\n"),
        ("app/secret.txt", "must not be in the context\n"),
    ]);
    let tag = format!("gantry-test/built:{}", &ulid::Ulid::new().to_string().to_ascii_lowercase()[20..]);
    let p = w.pipeline(&format!(
        "name: b\nstages:\n  image:\n    kind: build\n    context: app\n    tag: \"{tag}\"\n    build_args: {{GREETING: hello-from-args}}\n"
    ));
    let out = w.run(&p, &[]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let run = w.latest();
    let result = &stage(&run, "image")["result"];
    assert_eq!(result["type"], "image");
    assert_eq!(result["tag"], tag.as_str());
    let id = result["image_id"].as_str().unwrap();
    let inspect = std::process::Command::new("docker").args(["image", "inspect", "-f", "{{.Id}}", &tag]).output().unwrap();
    assert_eq!(text(&inspect.stdout).trim(), id);
    // The builder's own output is in the stage's log.
    let logs = text(&w.gantry().args(["logs", "latest", "image"]).output().unwrap().stdout);
    assert!(logs.contains("Step 1/") && logs.contains(": FROM gantry/busybox"), "{logs}");
    let check = std::process::Command::new("docker")
        .args(["run", "--rm", &tag, "sh", "-c", "cat /greeting; ls /"])
        .output()
        .unwrap();
    assert!(text(&check.stdout).contains("hello-from-args"));
    let _ = std::process::Command::new("docker").args(["rmi", "-f", &tag]).output();
}

#[test]
fn broken_dockerfile_fails_the_stage_with_the_builders_message() {
    let w = World::new(&[("app/Dockerfile", "FROM gantry/busybox\nRUN echo building && exit 3\n")]);
    let p = w.pipeline("name: b\nstages:\n  image:\n    kind: build\n    context: app\n    tag: gantry-test/broken:1\n");
    let out = w.run(&p, &[]);
    assert_eq!(out.status.code(), Some(1));
    let run = w.latest();
    let message = stage(&run, "image")["message"].as_str().unwrap().to_string();
    assert!(message.contains("the build of gantry-test/broken:1 failed"), "{message}");
    assert!(message.contains("returned a non-zero code: 3"), "{message}");

    let w = World::new(&[("app/Dockerfile", "FROM gantry/busybox\nCOPYY x /x\n")]);
    let p = w.pipeline("name: b\nstages:\n  image:\n    kind: build\n    context: app\n    tag: gantry-test/broken:2\n");
    assert_eq!(w.run(&p, &[]).status.code(), Some(1));
    let message = stage(&w.latest(), "image")["message"].as_str().unwrap().to_string();
    assert!(message.to_lowercase().contains("unknown instruction"), "{message}");
}

fn provision_pipeline(env: &str, greeting: &str) -> String {
    format!(
        "name: p\nstages:\n  env:\n    kind: provision\n    environment: {env}\n    services:\n      web:\n        image: gantry/busybox\n        env: {{GREETING: {greeting}}}\n        command: \"mkdir -p /www && echo $GREETING > /www/index.html && exec httpd -f -p 8080 -h /www\"\n        ports: [\"8080\"]\n        health: {{http: /index.html, deadline: 30s}}\n      worker:\n        image: gantry/busybox\n        command: \"exec sleep 3600\"\n        health: {{command: \"true\"}}\n"
    )
}

#[test]
fn provisioning_twice_reconciles_instead_of_duplicating() {
    require("gantry/smoke");
    let w = World::new(&[]);
    let env = Env::new(&w, "prov");
    let p = w.pipeline(&provision_pipeline(&env.name, "one"));
    let out = w.run(&p, &[]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let first = env_containers(&env.name, "service");
    assert_eq!(first.len(), 2);

    // Same spec: nothing restarted, nothing added.
    assert!(w.run(&p, &[]).status.success());
    let mut second = env_containers(&env.name, "service");
    second.sort();
    let mut first_sorted = first.clone();
    first_sorted.sort();
    assert_eq!(second, first_sorted, "same spec keeps the same containers");
    let latest = w.latest();
    let changes = &stage(&latest, "env")["result"]["services"];
    assert_eq!(changes[0]["change"], "unchanged");

    // Changed spec for one service: that one is replaced, the other kept.
    let p = w.pipeline(&provision_pipeline(&env.name, "two"));
    assert!(w.run(&p, &[]).status.success());
    let third = env_containers(&env.name, "service");
    assert_eq!(third.len(), 2);
    let latest = w.latest();
    let changes = &stage(&latest, "env")["result"]["services"];
    let change_of = |s: &str| changes.as_array().unwrap().iter().find(|c| c["service"] == s).unwrap()["change"].clone();
    assert_eq!(change_of("web"), "replaced");
    assert_eq!(change_of("worker"), "unchanged");
}

fn deploy_pipeline(env: &str, port: u16, version: &str, health_path: &str) -> String {
    format!(
        "name: d\nstages:\n  deploy:\n    kind: deploy\n    environment: {env}\n    app: web\n    image: gantry/busybox\n    port: 8080\n    publish: {port}\n    env: {{VERSION: {version}}}\n    command: \"mkdir -p /www && echo $VERSION > /www/index.html && exec httpd -f -p 8080 -h /www\"\n    health: {{http: {health_path}, deadline: 8s}}\n"
    )
}

#[test]
fn deploy_replaces_and_a_failing_health_check_keeps_the_old_version_serving() {
    require("gantry/smoke");
    require("gantry/router");
    let w = World::new(&[]);
    let env = Env::new(&w, "dep");
    let port = free_port();

    assert!(w.run(&w.pipeline(&deploy_pipeline(&env.name, port, "v1", "/index.html")), &[]).status.success());
    assert_eq!(http_get(port, "/").map(|(s, b)| (s, b.trim().to_string())), Some((200, "v1".into())));

    let out = w.run(&w.pipeline(&deploy_pipeline(&env.name, port, "v2", "/index.html")), &[]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(http_get(port, "/").map(|(_, b)| b.trim().to_string()), Some("v2".into()));
    assert_eq!(env_running(&env.name, "app").len(), 1, "the previous version is retired");
    assert_eq!(env_containers(&env.name, "app").len(), 2, "and kept stopped, for a rollback");
    let latest = w.latest();
    let d = &stage(&latest, "deploy")["result"];
    assert_eq!(d["outcome"], "succeeded");
    assert_eq!(d["replaced"][0], "gantry/busybox");

    // v3 never answers its health path: refused, removed, v2 keeps serving.
    let out = w.run(&w.pipeline(&deploy_pipeline(&env.name, port, "v3", "/not-there")), &[]);
    assert_eq!(out.status.code(), Some(1));
    let run = w.latest();
    let message = stage(&run, "deploy")["message"].as_str().unwrap().to_string();
    assert!(message.contains("failed its health check (the previous version keeps serving)"), "{message}");
    assert!(message.contains("/not-there"), "{message}");
    assert_eq!(stage(&run, "deploy")["result"]["outcome"], "failed");
    assert_eq!(http_get(port, "/").map(|(_, b)| b.trim().to_string()), Some("v2".into()));
    assert_eq!(env_running(&env.name, "app").len(), 1, "the refused version is removed");
    assert_eq!(env_containers(&env.name, "app").len(), 2, "v2 live, v1 kept stopped");

    // Every deployment is in the environment's history.
    let shown = w.json(&["env", "show", &env.name]);
    let outcomes: Vec<&str> = shown["deployments"].as_array().unwrap().iter().map(|d| d["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, vec!["succeeded", "succeeded", "failed"]);

    // The environment is listed with its live version and URL, and destroy removes it all.
    let listed = w.json(&["env", "list"]);
    let mine = listed.as_array().unwrap().iter().find(|e| e["name"] == env.name.as_str()).expect("listed");
    assert_eq!(mine["routers"][0]["url"], format!("http://127.0.0.1:{port}").as_str());
    let serving: Vec<&str> = mine["versions"].as_array().unwrap().iter().map(|v| v["serving"].as_str().unwrap()).collect();
    assert!(serving.contains(&"live") && serving.contains(&"stopped (kept for rollback)"), "{serving:?}");
    let out = w.gantry().args(["env", "destroy", &env.name]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(env_containers(&env.name, "app").is_empty() && env_containers(&env.name, "router").is_empty());
    assert_eq!(http_get(port, "/"), None, "nothing answers once destroyed");
    assert_eq!(w.gantry().args(["env", "destroy", &env.name]).output().unwrap().status.code(), Some(1));
}

fn smoke_pipeline(env: &str, port: u16, expect_status: u16) -> String {
    format!(
        "{}  smoke:\n    kind: smoke\n    target: {env}\n    app: web\n    journeys:\n      - name: front page\n        steps:\n          - {{name: index, path: /index.html, expect: {{status: 200, body_contains: v1}}}}\n          - {{name: missing page, path: /nope.html, expect: {{status: {expect_status}}}}}\n          - {{name: after, path: /index.html}}\n      - name: second journey\n        steps:\n          - {{name: index again, path: /index.html}}\n",
        deploy_pipeline(env, port, "v1", "/index.html")
    )
}

#[test]
fn smoke_passes_and_a_failing_step_names_journey_and_step_with_junit() {
    require("gantry/smoke");
    require("gantry/router");
    let w = World::new(&[]);
    let env = Env::new(&w, "smk");
    let port = free_port();
    let out = w.run(&w.pipeline(&smoke_pipeline(&env.name, port, 404)), &[]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(stage(&w.latest(), "smoke")["result"]["passed"], true);

    let out = w.run(&w.pipeline(&smoke_pipeline(&env.name, port, 200)), &[]);
    assert_eq!(out.status.code(), Some(1));
    let run = w.latest();
    let message = stage(&run, "smoke")["message"].as_str().unwrap().to_string();
    assert_eq!(message, "journey 'front page' step 'missing page': expected status 200, got 404");

    let junit = w.gantry().args(["show", "latest", "--junit"]).output().unwrap();
    assert!(junit.status.success());
    let xml = text(&junit.stdout);
    let doc = roxmltree::Document::parse(&xml).expect("valid XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    assert_eq!(root.attribute("tests"), Some("4"));
    assert_eq!(root.attribute("failures"), Some("1"));
    assert_eq!(root.attribute("skipped"), Some("1"));
    let cases = doc.descendants().filter(|n| n.has_tag_name("testcase")).count();
    assert_eq!(cases, 4);
}

#[test]
fn testing_or_promoting_an_environment_with_nothing_deployed_says_so() {
    let w = World::new(&[]);
    let env = Env::new(&w, "empty");
    let p = w.pipeline(&format!(
        "name: e\nstages:\n  smoke:\n    kind: smoke\n    target: {env}\n    journeys: [{{name: j, steps: [{{name: s, path: /}}]}}]\n  release:\n    kind: promote\n    from: {env}\n    to: {env}-prod\n    port: 8080\n    needs: [smoke]\n",
        env = env.name
    ));
    let out = w.run(&p, &[]);
    assert_eq!(out.status.code(), Some(1));
    let run = w.latest();
    assert_eq!(
        stage(&run, "smoke")["message"],
        format!("environment '{}' has no live version of app 'app' (deploy it first with a `kind: deploy` stage)", env.name).as_str()
    );
    // The gate judged nothing failing (no gate stages) and found nothing to promote.
    assert_eq!(
        stage(&run, "release")["message"],
        format!("no version of app deployed by this run is running in {} to promote", env.name).as_str()
    );
}
