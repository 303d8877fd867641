//! The load stage on the real engine: the load agent against a deployed app, thresholds
//! judged by the coordinator (a pass, a failure, and abort_on_fail stopping early).

mod common;

use common::{free_port, require, stage, storefront_files, text, Env, World};

fn pipeline(env: &str, port: u16, thresholds: &str, extra: &str) -> String {
    format!(
        "name: l\nstages:\n  deploy:\n    kind: deploy\n    environment: {env}\n    app: web\n    image: gantry/busybox\n    port: 8080\n    publish: {port}\n    command: \"mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www\"\n    health: {{http: /index.html, deadline: 10s}}\n  load:\n    kind: load\n    target: {env}\n    app: web\n    path: /index.html\n    rate: 50/s\n    duration: 4s\n    connections: 20\n{extra}    thresholds:\n{thresholds}"
    )
}

#[test]
fn load_thresholds_pass_and_fail_as_judged_by_the_coordinator() {
    for image in ["gantry/smoke", "gantry/load", "gantry/router"] {
        require(image);
    }
    let w = World::new(&[]);
    let env = Env::new(&w, "load");
    let port = free_port();
    let ok = "      http_req_failed: [\"rate<0.01\"]\n      http_reqs: [\"count>=150\"]\n";
    let out = w.run(&w.pipeline(&pipeline(&env.name, port, ok, "")), &[]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let run = w.latest();
    let result = &stage(&run, "load")["result"];
    assert_eq!(result["summary"]["complete"], true);
    let requests = result["summary"]["requests"].as_u64().unwrap();
    assert!((190..=210).contains(&requests), "50/s for 4 s sent {requests}");

    // 404 on every request: http_req_failed fails, and the message says by how much.
    let bad = "      http_req_failed: [\"rate<0.01\"]\n";
    let p = pipeline(&env.name, port, bad, "").replace("path: /index.html\n    rate", "path: /missing.html\n    rate");
    let out = w.run(&w.pipeline(&p), &[]);
    assert_eq!(out.status.code(), Some(1));
    let run = w.latest();
    let message = stage(&run, "load")["message"].as_str().unwrap().to_string();
    assert_eq!(message, "load thresholds failed: http_req_failed rate<0.01 (measured 1 (100%))");
    let verdicts = &stage(&run, "load")["result"]["thresholds"];
    assert_eq!(verdicts[0]["passed"], false);
}

#[test]
fn abort_on_fail_stops_the_load_early_and_keeps_the_figures() {
    for image in ["gantry/smoke", "gantry/load", "gantry/router"] {
        require(image);
    }
    let w = World::new(&[]);
    let env = Env::new(&w, "abort");
    let port = free_port();
    let p = pipeline(&env.name, port, "      http_req_failed: [\"rate<0.01\"]\n", "    abort_on_fail: true\n")
        .replace("path: /index.html\n    rate", "path: /missing.html\n    rate")
        .replace("duration: 4s", "duration: 60s");
    let started = std::time::Instant::now();
    let out = w.run(&w.pipeline(&p), &[]);
    assert_eq!(out.status.code(), Some(1));
    let run = w.latest();
    let result = &stage(&run, "load")["result"];
    assert_eq!(result["aborted"], true);
    assert_eq!(result["summary"]["complete"], false);
    assert!(stage(&run, "load")["message"].as_str().unwrap().contains("aborted early"));
    // Far short of the 60 s asked for (a bound on behaviour, not a speed goal).
    assert!(started.elapsed().as_secs() < 50);
}

#[test]
fn apm_checks_scrape_the_apps_metrics_over_the_load_and_can_fail_it() {
    for image in ["gantry/rust", "gantry/smoke", "gantry/load", "gantry/router"] {
        require(image);
    }
    let files = storefront_files();
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    let w = World::new(&refs);
    let env = Env::new(&w, "apm");
    let port = free_port();
    let pipeline = |error_rate: &str| {
        format!(
            "name: apm\nstages:\n  image:\n    kind: build\n    context: demo/storefront\n    target: runtime\n    tag: \"gantry-test/storefront:${{commit.short}}\"\n  deploy:\n    kind: deploy\n    environment: {env}\n    app: shop\n    image: \"gantry-test/storefront:${{commit.short}}\"\n    port: 8080\n    publish: {port}\n    env: {{STOREFRONT_ERROR_RATE: \"{error_rate}\"}}\n    health: {{http: /healthz}}\n  load:\n    kind: load\n    target: {env}\n    app: shop\n    path: /api/products\n    rate: 50/s\n    duration: 4s\n    apm:\n      provider: prometheus-scrape\n      url: http://127.0.0.1:{port}/metrics\n      checks:\n        - {{name: p95 latency, quantile: 0.95, histogram: storefront_http_request_duration_seconds, threshold: \"<200ms\"}}\n        - name: error ratio\n          ratio: {{numerator: 'storefront_http_requests_total{{code=~\"5..\"}}', denominator: storefront_http_requests_total}}\n          threshold: \"<0.01\"\n",
            env = env.name
        )
    };
    let out = w.run(&w.pipeline(&pipeline("0")), &[]);
    assert!(out.status.success(), "stdout: {}\nstderr: {}", text(&out.stdout), text(&out.stderr));
    let run = w.latest();
    let apm = &stage(&run, "load")["result"]["apm"];
    assert_eq!(apm.as_array().unwrap().len(), 2, "{apm}");
    assert!(apm.as_array().unwrap().iter().all(|c| c["passed"] == true), "{apm}");

    // Half the requests fail: the load thresholds say nothing about it (none given), the
    // APM error ratio does.
    let out = w.run(&w.pipeline(&pipeline("0.5")), &[]);
    assert_eq!(out.status.code(), Some(1));
    let run = w.latest();
    let message = stage(&run, "load")["message"].as_str().unwrap().to_string();
    assert!(message.starts_with("APM checks failed: apm: error ratio <0.01 (measured 0."), "{message}");
}
