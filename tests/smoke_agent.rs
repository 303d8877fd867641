//! The smoke library and agent binaries against real servers on loopback.
//! Each test starts its own tiny HTTP server so tests share no state (sessions, ports).

use gantry::smoke::{self, junit_xml, Outcome, SmokeReport, SmokeSpec};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

// ---------------------------------------------------------------- test storefront

struct Req {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn session(&self) -> Option<String> {
        let cookies = self.header("cookie")?;
        cookies.split(';').find_map(|c| c.trim().strip_prefix("session=").map(str::to_string))
    }
}

/// A storefront with just enough routes for the journeys: HTML, JSON, a login that sets
/// a session cookie (a new one per login), a cart that needs it, a slow and a failing route.
async fn storefront() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let logins = Arc::new(AtomicU32::new(0));
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let logins = logins.clone();
            tokio::spawn(async move {
                let Some(req) = read_request(&mut stream).await else { return };
                let (status, extra, ctype, body) = route(&req, &logins).await;
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
            });
        }
    });
    addr
}

async fn route(req: &Req, logins: &AtomicU32) -> (u16, String, &'static str, String) {
    const JSON: &str = "application/json";
    let json = |status, v: Value| (status, String::new(), JSON, v.to_string());
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/") => (200, String::new(), "text/html; charset=utf-8", "<html><h1>Storefront</h1></html>".into()),
        ("GET", "/products") => json(200, json!([{"id": 1, "name": "Mug"}, {"id": 42, "name": "Tee"}])),
        ("GET", "/products/42") => json(200, json!({"id": 42, "name": "Tee"})),
        ("GET", "/login") => {
            let n = logins.fetch_add(1, Ordering::SeqCst) + 1;
            (200, format!("set-cookie: session=s{n}; Path=/\r\n"), JSON, json!({"ok": true}).to_string())
        }
        ("GET", "/whoami") => match req.session() {
            Some(s) => json(200, json!({"session": s})),
            None => json(401, json!({"session": null})),
        },
        ("POST", "/cart") => {
            let Some(session) = req.session() else { return json(401, json!({"error": "login first"})) };
            let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            json(201, json!({"added": body["product_id"], "session": session, "ctype": req.header("content-type")}))
        }
        ("GET", "/token") => json(200, json!({"token": req.header("x-token")})),
        ("GET", "/slow") => {
            tokio::time::sleep(Duration::from_millis(150)).await;
            json(200, json!({"slow": true}))
        }
        ("GET", "/fail") => (500, String::new(), "text/plain", "boom".into()),
        _ => (404, String::new(), "text/plain", "not found".into()),
    }
}

async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Req> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())))
        .collect();
    let len: usize = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-length")).and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Req { method, path, headers, body })
}

// ---------------------------------------------------------------- helpers

fn spec(addr: SocketAddr, journeys: Value) -> SmokeSpec {
    let text = json!({"base_url": format!("http://{addr}"), "journeys": journeys, "timeout_ms": 2000}).to_string();
    SmokeSpec::from_json(&text).unwrap()
}

fn step(name: &str, method: &str, path: &str, expect: Value) -> Value {
    json!({"name": name, "request": {"method": method, "path": path}, "expect": expect})
}

async fn run(spec: &SmokeSpec) -> SmokeReport {
    smoke::run(spec, |_, _| {}).await.unwrap()
}

fn outcomes(report: &SmokeReport, journey: usize) -> Vec<Outcome> {
    report.journeys[journey].steps.iter().map(|s| s.outcome).collect()
}

// ---------------------------------------------------------------- library

#[tokio::test]
async fn passing_journey_with_captures_and_cookies() {
    let addr = storefront().await;
    let mut products = step("products", "GET", "/products", json!({"status": 200, "json": {"/0/id": 1, "/1/name": "Tee"}}));
    products["capture"] = json!({"product_id": "/1/id", "name": "/1/name"});
    let mut add = step("add to cart", "POST", "/cart", json!({"status": 201, "json": {"/added": 42, "/session": "s1", "/ctype": "application/json"}}));
    add["request"]["json"] = json!({"product_id": "{{product_id}}"});
    let mut token = step("token", "GET", "/token", json!({"json": {"/token": "t-42-Tee"}}));
    token["request"]["headers"] = json!({"x-token": "t-{{product_id}}-{{name}}"});
    let spec = spec(
        addr,
        json!([
            {"name": "browse and buy", "steps": [
                step("home", "GET", "/", json!({"status": 200, "body_contains": ["Storefront"], "headers": {"content-type": "text/html"}, "max_latency_ms": 1000})),
                products,
                step("detail", "GET", "/products/{{product_id}}", json!({"json": {"/id": 42}})),
                step("login", "GET", "/login", json!({})),
                step("whoami", "GET", "/whoami", json!({"status": 200, "json": {"/session": "s1"}})),
                add,
                token,
            ]},
            // A second journey has its own cookie jar: the session of the first is not sent.
            {"name": "anonymous", "steps": [step("whoami", "GET", "/whoami", json!({"status": 401}))]},
        ]),
    );
    let mut seen = Vec::new();
    let report = smoke::run(&spec, |j, s| seen.push(format!("{j}/{}", s.name))).await.unwrap();
    assert!(report.passed, "{}", serde_json::to_string_pretty(&report).unwrap());
    assert_eq!(report.failure_message(), None);
    assert_eq!(seen.len(), 8, "every step reported live: {seen:?}");
    assert_eq!(report.journeys[0].steps[0].status, Some(200));
    let (passed, failed, skipped) = report.counts();
    assert_eq!((passed, failed, skipped), (8, 0, 0));
}

#[tokio::test]
async fn failing_status_stops_the_journey_but_not_others() {
    let addr = storefront().await;
    let spec = spec(
        addr,
        json!([
            {"name": "checkout", "steps": [
                step("home", "GET", "/", json!({"status": 200})),
                step("add to cart", "POST", "/cart", json!({"status": 201})),
                step("pay", "GET", "/", json!({})),
                step("receipt", "GET", "/", json!({})),
            ]},
            {"name": "browse", "steps": [step("home", "GET", "/", json!({}))]},
        ]),
    );
    let report = run(&spec).await;
    assert!(!report.passed);
    assert_eq!(outcomes(&report, 0), [Outcome::Passed, Outcome::Failed, Outcome::Skipped, Outcome::Skipped]);
    assert!(report.journeys[1].passed, "other journeys still run");
    assert_eq!(report.failure_message().unwrap(), "journey 'checkout' step 'add to cart': expected status 201, got 401");
    let failed = &report.journeys[0].steps[1];
    assert_eq!((failed.status, failed.failures.len()), (Some(401), 1));

    // JUnit: 5 tests, 1 failure, 2 skipped, one suite per journey.
    let xml = junit_xml(&report, "smoke");
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let root = doc.root_element();
    assert_eq!(
        ["tests", "failures", "skipped"].map(|a| root.attribute(a).unwrap()),
        ["5", "1", "2"]
    );
    assert_eq!(root.children().filter(|n| n.has_tag_name("testsuite")).count(), 2);
    assert_eq!(doc.descendants().filter(|n| n.has_tag_name("failure")).count(), 1);
    assert_eq!(doc.descendants().filter(|n| n.has_tag_name("skipped")).count(), 2);
}

#[tokio::test]
async fn body_json_latency_and_header_failures_are_reported() {
    let addr = storefront().await;
    let spec = spec(
        addr,
        json!([
            {"name": "body", "steps": [step("home", "GET", "/", json!({"body_contains": ["Storefront", "Checkout"]}))]},
            {"name": "json", "steps": [step("products", "GET", "/products", json!({"json": {"/0/id": 2, "/9/id": 1}}))]},
            {"name": "not json", "steps": [step("home", "GET", "/", json!({"json": {"/id": 1}}))]},
            {"name": "latency", "steps": [step("slow", "GET", "/slow", json!({"max_latency_ms": 50}))]},
            {"name": "header", "steps": [step("home", "GET", "/", json!({"headers": {"content-type": "application/json", "x-missing": "y"}}))]},
            {"name": "capture", "steps": [
                {"name": "products", "request": {"path": "/products"}, "capture": {"id": "/5/id"}},
                step("detail", "GET", "/products/{{id}}", json!({})),
            ]},
        ]),
    );
    let report = run(&spec).await;
    let failures = |j: usize| report.journeys[j].steps[0].failures.clone();

    let body = failures(0);
    assert_eq!(body.len(), 1);
    assert_eq!((body[0].check.as_str(), body[0].expected.as_str()), ("body_contains", "Checkout"));
    assert_eq!(body[0].got, "<html><h1>Storefront</h1></html>");

    let json = failures(1);
    assert_eq!(json.iter().map(|f| (f.check.as_str(), f.got.as_str())).collect::<Vec<_>>(), [("json /0/id", "1"), ("json /9/id", "<missing>")]);
    assert!(failures(2)[0].got.starts_with("body is not JSON"));

    let latency = &failures(3)[0];
    assert_eq!((latency.check.as_str(), latency.expected.as_str()), ("max_latency", "50ms"));
    let got_ms: u64 = latency.got.trim_end_matches("ms").parse().unwrap();
    assert!(got_ms >= 150, "{got_ms}");

    let headers = failures(4);
    assert_eq!(headers[0].got, "text/html; charset=utf-8");
    assert_eq!(headers[1].got, "<missing>");

    assert_eq!(failures(5)[0].check, "capture id");
    assert_eq!(outcomes(&report, 5), [Outcome::Failed, Outcome::Skipped]);
    assert!(report.journeys.iter().all(|j| !j.passed));
    assert!(report.failure_message().unwrap().ends_with("(and 5 more failing journeys)"));
}

#[tokio::test]
async fn connection_refused_is_an_error_not_a_check() {
    // A port that was just free: nothing listens there.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let spec = spec(addr, json!([{"name": "down", "steps": [step("home", "GET", "/", json!({})), step("next", "GET", "/", json!({}))]}]));
    let report = run(&spec).await;
    let step = &report.journeys[0].steps[0];
    assert_eq!((step.outcome, step.status), (Outcome::Failed, None));
    let error = step.error.as_deref().unwrap();
    assert!(error.starts_with("connection refused"), "{error}");
    assert!(report.failure_message().unwrap().starts_with("journey 'down' step 'home': connection refused"));
    assert_eq!(outcomes(&report, 0)[1], Outcome::Skipped);
}

// ---------------------------------------------------------------- gantry-smoke binary

/// Runs the server on its own runtime thread so that blocking `Command`s can talk to it.
fn storefront_in_background() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            tx.send(storefront().await).unwrap();
            std::future::pending::<()>().await
        });
    });
    rx.recv().unwrap()
}

#[test]
fn smoke_binary_runs_specs_and_probes() {
    let addr = storefront_in_background();
    let bin = env!("CARGO_BIN_EXE_gantry-smoke");
    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("spec.json");
    let spec = json!({"base_url": format!("http://{addr}"), "journeys": [
        {"name": "browse and buy", "steps": [step("home", "GET", "/", json!({})), step("add to cart", "POST", "/cart", json!({"status": 201}))]}
    ]});
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let out = dir.path().join("out/nested/report.json");
    let junit = dir.path().join("out/junit.xml");
    let run = Command::new(bin)
        .args(["run", "--spec"]).arg(&spec_path).arg("--out").arg(&out).arg("--junit").arg(&junit)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "a failing run still exits 0: {stdout}");
    assert!(stdout.contains("✓ browse and buy / home 200"), "{stdout}");
    assert!(stdout.contains("✗ browse and buy / add to cart 401") && stdout.contains("expected status 201, got 401"), "{stdout}");
    let report: SmokeReport = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert!(!report.passed);
    assert!(std::fs::read_to_string(&junit).unwrap().contains("<testsuites name=\"smoke\""));

    std::fs::write(&spec_path, r#"{"base_url": "http://x", "journeys": [{"name": "j", "steps": [{"name": "s", "request": {"path": "/{{nope}}"}}]}]}"#).unwrap();
    let bad = Command::new(bin).args(["run", "--spec"]).arg(&spec_path).arg("--out").arg(dir.path().join("bad.json")).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("{{nope}}"));

    let probe = |url: String, extra: &[&str]| Command::new(bin).arg("probe").arg(url).args(extra).output().unwrap();
    let healthy = probe(format!("http://{addr}/"), &[]);
    assert_eq!(healthy.status.code(), Some(0), "{}", String::from_utf8_lossy(&healthy.stdout));
    assert_eq!(probe(format!("http://{addr}/whoami"), &["--expect-status", "401"]).status.code(), Some(0));

    let started = Instant::now();
    let sick = probe(format!("http://{addr}/fail"), &["--timeout", "400ms", "--interval", "100ms"]);
    let stdout = String::from_utf8_lossy(&sick.stdout);
    assert_eq!(sick.status.code(), Some(1), "{stdout}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(stdout.contains("attempt 1") && stdout.contains("status 500") && stdout.contains("last body: boom"), "{stdout}");
}

// ---------------------------------------------------------------- gantry-router binary

struct Router {
    child: std::process::Child,
    addr: SocketAddr,
    stderr: std::sync::mpsc::Receiver<String>,
}

impl Router {
    fn start(upstream: &str) -> Router {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gantry-router"))
            .args(["--listen", "127.0.0.1:0", "--upstream", upstream, "--connect-timeout", "1s"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let first = rx.recv_timeout(Duration::from_secs(10)).expect("router announces its address");
        let addr = first.split("listening on ").nth(1).unwrap().split(',').next().unwrap().parse().unwrap();
        Router { child, addr, stderr: rx }
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The router may close the connection before the request is written (upstream down):
    // that is a valid outcome here, shown as an empty response.
    if write!(s, "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").is_err() {
        return String::new();
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn router_forwards_resolves_per_connection_and_stops_on_sigterm() {
    let addr = storefront_in_background();
    // `localhost` makes the router resolve a name, as it does with a Docker alias.
    let router = Router::start(&format!("localhost:{}", addr.port()));
    for _ in 0..3 {
        let response = http_get(router.addr, "/");
        assert!(response.starts_with("HTTP/1.1 200") && response.ends_with("<h1>Storefront</h1></html>"), "{response}");
    }

    let pid = nix::unistd::Pid::from_raw(router.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let started = Instant::now();
    let mut router = router;
    let status = loop {
        if let Some(status) = router.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(3), "router did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    let last: Vec<String> = router.stderr.try_iter().collect();
    assert!(last.iter().any(|l| l.contains("SIGTERM") && l.contains("3 connections")), "{last:?}");
}

#[test]
fn router_closes_clients_when_upstream_is_down_and_keeps_running() {
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let router = Router::start(&down.to_string());
    for n in 1..=2 {
        let response = http_get(router.addr, "/");
        assert_eq!(response, "", "client is closed without a response");
        let line = router.stderr.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(line.contains("unreachable") && line.contains(&format!("({n} so far)")), "{line}");
    }
}
