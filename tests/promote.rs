//! The release gate on the real engine: a promotion moves the image that passed by id, and
//! a version that breaches its verification checks in production is rolled back
//! automatically (checked over HTTP), with the failed change and its restore recorded.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{free_port, require, stage, storefront_files, storefront_version, text, Env, World};

/// Users of production: a request every 10 ms until dropped.
struct Traffic(Arc<AtomicBool>);

impl Traffic {
    fn start(port: u16) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let _ = common::http_get(port, "/api/products");
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        });
        Traffic(stop)
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn a_breach_after_promotion_rolls_back_and_production_serves_the_previous_version() {
    for image in ["gantry/rust", "gantry/smoke", "gantry/router"] {
        require(image);
    }
    let files = storefront_files();
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    let w = World::new(&refs);
    let (staging, prod) = (Env::new(&w, "stg"), Env::new(&w, "prd"));
    let (staging_port, prod_port) = (free_port(), free_port());
    let yaml = format!(
        r#"name: release
vars: {{error_rate: "0"}}
stages:
  image:
    kind: build
    context: demo/storefront
    target: runtime
    tag: "gantry-test/storefront:${{commit.short}}"
  staging:
    kind: deploy
    environment: {staging}
    app: shop
    image: "gantry-test/storefront:${{commit.short}}"
    port: 8080
    publish: {staging_port}
    env: {{STOREFRONT_VERSION: "${{commit.short}}"}}
    health: {{http: /healthz}}
  release:
    kind: promote
    from: {staging}
    to: {prod}
    app: shop
    port: 8080
    publish: {prod_port}
    env: {{STOREFRONT_VERSION: "${{commit.short}}", STOREFRONT_ERROR_RATE: "${{var.error_rate}}"}}
    health: {{http: /healthz}}
    gate: {{stages: [staging]}}
    verify:
      apm:
        provider: prometheus-scrape
        url: http://127.0.0.1:{prod_port}/metrics
        window: 6s
        checks:
          - name: error ratio
            ratio: {{numerator: 'storefront_http_requests_total{{code=~"5.."}}', denominator: storefront_http_requests_total}}
            threshold: "<0.05"
"#,
        staging = staging.name,
        prod = prod.name
    );
    let p = w.pipeline(&yaml);
    let _traffic = Traffic::start(prod_port);

    let out = w.run(&p, &[]);
    assert!(out.status.success(), "stdout: {}\nstderr: {}", text(&out.stdout), text(&out.stderr));
    let good = w.latest();
    let good_short = good["commit"]["short"].as_str().unwrap().to_string();
    let release = stage(&good, "release");
    assert_eq!(release["verification"]["passed"], true, "{release}");
    assert_eq!(release["result"]["outcome"], "succeeded");
    assert_eq!(release["result"]["image_id"], stage(&good, "image")["result"]["image_id"], "promoted by image id");
    assert_eq!(storefront_version(prod_port).as_deref(), Some(good_short.as_str()));

    // A new commit that answers half its requests with 500 once in production.
    w.commit(&[("demo/storefront/CHANGELOG", "a bad change\n")], "a bad change");
    let out = w.run(&p, &["--var", "error_rate=0.5"]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let bad = w.latest();
    let release = stage(&bad, "release");
    assert_eq!(release["verification"]["passed"], false);
    let result = &release["result"];
    assert_eq!(result["outcome"], "failed_verification", "{result}");
    assert!(result["restored_at"].is_string(), "{result}");
    let message = release["message"].as_str().unwrap();
    assert!(message.contains("failed its verification") && message.contains("rolled back to"), "{message}");
    // Production serves the previous version again.
    assert_eq!(storefront_version(prod_port).as_deref(), Some(good_short.as_str()));
    // Both deployments are in production's history, the failed change marked as such.
    let history = w.json(&["env", "show", &prod.name]);
    let outcomes: Vec<&str> = history["deployments"].as_array().unwrap().iter().map(|d| d["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, vec!["succeeded", "failed_verification"]);
}

#[test]
fn the_gate_compares_latency_with_a_baseline_statistically() {
    for image in ["gantry/rust", "gantry/smoke", "gantry/load", "gantry/router"] {
        require(image);
    }
    let files = storefront_files();
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    let w = World::new(&refs);
    let (base, cand, prod) = (Env::new(&w, "base"), Env::new(&w, "cand"), Env::new(&w, "prd"));
    let deploy = |name: &str, env: &str, latency: &str| {
        format!(
            "  {name}:\n    kind: deploy\n    environment: {env}\n    app: shop\n    image: \"gantry-test/storefront:${{commit.short}}\"\n    port: 8080\n    env: {{STOREFRONT_LATENCY_MS: \"{latency}\"}}\n    health: {{http: /healthz}}\n    needs: [image]\n"
        )
    };
    let load = |name: &str, env: &str, after: &str| {
        format!("  {name}:\n    kind: load\n    target: {env}\n    app: shop\n    path: /api/products\n    rate: 100/s\n    duration: 6s\n    needs: [{after}]\n")
    };
    let yaml = format!(
        "name: judged\nvars: {{cand_latency: \"100\"}}\nstages:\n  image:\n    kind: build\n    context: demo/storefront\n    target: runtime\n    tag: \"gantry-test/storefront:${{commit.short}}\"\n{}{}{}{}  release:\n    kind: promote\n    from: {cand}\n    to: {prod}\n    app: shop\n    port: 8080\n    needs: [load-cand]\n    health: {{http: /healthz}}\n    gate:\n      latency: {{candidate: load-cand, baseline: load-base}}\n",
        deploy("deploy-base", &base.name, "100"),
        deploy("deploy-cand", &cand.name, "${var.cand_latency}"),
        load("load-base", &base.name, "deploy-base, deploy-cand"),
        load("load-cand", &cand.name, "load-base"),
        cand = cand.name,
        prod = prod.name,
    );
    let p = w.pipeline(&yaml);

    // Same latency on both sides (100 ms, so that a busy machine's few ms of scheduling
    // noise stay well inside the 10% tolerance): noise alone does not block.
    let out = w.run(&p, &[]);
    assert!(out.status.success(), "stdout: {}\nstderr: {}", text(&out.stdout), text(&out.stderr));
    let good = w.latest();
    let check = &stage(&good, "release")["verdict"]["checks"][0];
    assert_eq!(check["name"], "latency: load-cand vs load-base");
    assert_eq!(check["passed"], true, "{check}");

    // The candidate twice as slow: blocked, with the figure.
    let out = w.run(&p, &["--var", "cand_latency=200"]);
    assert_eq!(out.status.code(), Some(1));
    let run = w.latest();
    let check = &stage(&run, "release")["verdict"]["checks"][0];
    assert_eq!(check["passed"], false, "{check}");
    assert!(check["measured"].as_str().unwrap().starts_with("p95 x"), "{check}");
    assert!(stage(&run, "release")["message"].as_str().unwrap().contains("latency: load-cand vs load-base"));
}
