//! The README's main job, end to end on the real engine: the storefront pipeline builds,
//! provisions, previews, smoke- and load-tests and puts a good commit live, and production
//! once a release manager approves; a second run
//! with the latency setting turned up fails its load thresholds and the old version keeps
//! serving (checked over HTTP). Runs in its own environment and port.

mod common;

use common::{free_port, http_get, require, stage, storefront_files, storefront_version, text, Env, World};

/// pipelines/storefront.yml aimed at private environments and ports, and a repository
/// holding the storefront's source (what the pipeline checks out and builds).
fn storefront_world() -> (World, Env, u16, Env, u16, std::path::PathBuf) {
    for image in ["gantry/rust", "gantry/smoke", "gantry/load", "gantry/router"] {
        require(image);
    }
    let root = root();
    let files = storefront_files();
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    let w = World::new(&refs);
    let env = Env::new(&w, "shop");
    let prod = Env::new(&w, "prod");
    let (port, prod_port) = (free_port(), free_port());
    let yaml = std::fs::read_to_string(root.join("pipelines/storefront.yml"))
        .unwrap()
        .replace("environment: staging", &format!("environment: {}", env.name))
        .replace("target: staging", &format!("target: {}", env.name))
        .replace("from: staging", &format!("from: {}", env.name))
        .replace("to: production", &format!("to: {}", prod.name))
        .replace("\n  production:\n", &format!("\n  {}:\n", prod.name))
        .replace("publish: 18080", &format!("publish: {port}"))
        .replace("publish: 18081", &format!("publish: {prod_port}"));
    let p = w.dir.path().join("storefront.yml");
    std::fs::write(&p, yaml).unwrap();
    (w, env, port, prod, prod_port, p)
}

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn storefront_goes_live_then_a_slow_build_is_held_back_by_its_load_thresholds() {
    let (w, env, port, prod, prod_port, p) = storefront_world();
    let out = w.run(&p, &["--plain"]);
    assert_eq!(out.status.code(), Some(3), "waits for approval; stdout: {}\nstderr: {}", text(&out.stdout), text(&out.stderr));
    assert_eq!(storefront_version(prod_port), None, "nothing reaches production before approval");
    // The example config's release manager approves, and that promotes.
    let config = root().join("config/example.yml");
    let out = w.gantry().arg("--config").arg(&config).env("GANTRY_TOKEN", "demo-rita-token").args(["approve", "latest"]).output().unwrap();
    assert!(out.status.success(), "stdout: {}\nstderr: {}", text(&out.stdout), text(&out.stderr));
    let good = w.latest();
    assert_eq!(good["state"], "succeeded");
    assert_eq!(good["approval"]["decisions"][0]["user"], "rita");
    let short = good["commit"]["short"].as_str().unwrap().to_string();
    assert_eq!(storefront_version(port).as_deref(), Some(short.as_str()));
    assert_eq!(http_get(port, "/api/products/1").map(|(s, _)| s), Some(200));
    let load = &stage(&good, "load")["result"];
    assert_eq!(load["type"], "load");
    assert!(load["thresholds"].as_array().unwrap().iter().all(|t| t["passed"] == true), "{load}");
    assert_eq!(stage(&good, "go-live")["result"]["outcome"], "succeeded");
    // The gate passed and production runs the very image staging tested.
    let release = stage(&good, "release");
    assert_eq!(release["verdict"]["passed"], true);
    assert_eq!(release["result"]["environment"], prod.name.as_str());
    assert_eq!(release["result"]["image_id"], stage(&good, "image")["result"]["image_id"], "the built image, by id");
    assert_eq!(storefront_version(prod_port).as_deref(), Some(short.as_str()));

    // A new commit whose deployment is slow: every request takes 300 ms.
    w.commit(&[("demo/storefront/CHANGELOG", "slow change\n")], "a slow change");
    let out = w.run(&p, &["--plain", "--var", "latency_ms=300"]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let slow = w.latest();
    let message = stage(&slow, "load")["message"].as_str().unwrap().to_string();
    assert!(message.starts_with("load thresholds failed: http_req_duration p(95)<200ms (measured 3"), "{message}");
    assert_eq!(stage(&slow, "go-live")["state"], "skipped");
    // The gate ran anyway and its verdict names the failed check with its figure.
    let release = stage(&slow, "release");
    assert_eq!(release["state"], "failed");
    assert_eq!(release["verdict"]["passed"], false);
    let failed: Vec<&serde_json::Value> =
        release["verdict"]["checks"].as_array().unwrap().iter().filter(|c| c["passed"] == false).collect();
    assert!(failed.iter().any(|c| c["name"] == "load: http_req_duration" && c["threshold"] == "p(95)<200ms"), "{failed:?}");
    assert!(release["message"].as_str().unwrap().starts_with("the gate blocked the promotion to"), "{release}");
    // The good version still answers in staging and in production.
    assert_eq!(storefront_version(port).as_deref(), Some(short.as_str()));
    assert_eq!(storefront_version(prod_port).as_deref(), Some(short.as_str()));
    drop(env);
    drop(prod);
}
