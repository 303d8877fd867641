//! `docs/openapi.yaml`'s promises: it documents exactly the routes `server::router` serves,
//! with the same methods, an id, responses and the right security for every operation,
//! and it is an OpenAPI 3.0 document whose every `$ref` resolves. And the served API keeps
//! it: every refusal is the document's JSON error with a status its operation lists, and
//! schemathesis, generating requests from the document against a real `gantry serve`,
//! finds no server error and no response the document does not describe.
//!
//! The routes are read from the source text of `router` in `src/server/mod.rs`; the
//! dashboard's routes, merged from `ui`, are not part of the API and are not read.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml::{Mapping, Value};

const DOCUMENT: &str = include_str!("../docs/openapi.yaml");
const SERVER: &str = include_str!("../src/server/mod.rs");

/// Paths served without a token.
const UNAUTHENTICATED: [&str; 4] = ["/hooks/{forge}", "/metrics", "/healthz", "/openapi.yaml"];

const HTTP_METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

fn document() -> Value {
    serde_yaml::from_str(DOCUMENT).expect("docs/openapi.yaml is valid YAML")
}

fn mapping<'a>(value: &'a Value, what: &str) -> &'a Mapping {
    value.as_mapping().unwrap_or_else(|| panic!("{what} is not a mapping"))
}

/// The text of `fn router`'s body.
fn router_body() -> &'static str {
    let start = SERVER.find("pub fn router(").expect("src/server/mod.rs has `pub fn router(`");
    let open = start + SERVER[start..].find('{').expect("router has a body");
    let close = open + matching_close(&SERVER[open..]);
    &SERVER[open + 1..close]
}

/// The index of the bracket closing the one `text` starts with, skipping string literals.
fn matching_close(text: &str) -> usize {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced brackets in {text:.60}...")
}

/// The identifiers called at the top level of a method router expression:
/// `get(api::run)` gives `get`, `get(a).post(b)` gives `get` and `post`.
fn top_level_calls(expr: &str) -> Vec<String> {
    let mut calls = Vec::new();
    let mut rest = expr.trim();
    while !rest.is_empty() {
        rest = rest.trim_start_matches(|c: char| c == '.' || c.is_whitespace());
        let name_len = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
        let (name, after) = rest.split_at(name_len);
        assert!(after.starts_with('('), "cannot read the method router `{expr}`");
        calls.push(name.rsplit("::").next().unwrap_or(name).to_string());
        let close = matching_close(after);
        rest = &after[close + 1..];
    }
    calls
}

/// Every `.route(PATH, METHODS)` of `router`: path -> methods.
fn router_routes() -> BTreeMap<String, BTreeSet<String>> {
    let body = router_body();
    let mut routes = BTreeMap::new();
    for (at, _) in body.match_indices(".route(") {
        let call = &body[at + ".route".len()..];
        let args = &call[1..matching_close(call)];
        let path = args.trim_start().strip_prefix('"').expect("a route's path is a string literal");
        let (path, methods) = path.split_once('"').expect("the path literal ends");
        let methods = methods.trim_start().strip_prefix(',').expect("a route has a method router");
        let methods: BTreeSet<String> = top_level_calls(methods).into_iter().collect();
        for m in &methods {
            assert!(HTTP_METHODS.contains(&m.as_str()), "route {path}: `{m}` is not an HTTP method");
        }
        // axum 0.8 writes parameters `{id}` like OpenAPI; a catch-all `{*rest}` is `{rest}`.
        let path = path.replace("{*", "{");
        assert!(routes.insert(path.clone(), methods).is_none(), "route {path} is declared twice");
    }
    assert!(!routes.is_empty(), "no `.route(` calls found in router");
    routes
}

/// path -> (method -> operation) of the document.
fn documented_operations(doc: &Value) -> BTreeMap<String, BTreeMap<String, Value>> {
    mapping(&doc["paths"], "paths")
        .iter()
        .map(|(path, item)| {
            let path = path.as_str().expect("paths are strings").to_string();
            let ops = mapping(item, &path)
                .iter()
                .filter_map(|(k, v)| k.as_str().filter(|k| HTTP_METHODS.contains(k)).map(|k| (k.to_string(), v.clone())))
                .collect();
            (path, ops)
        })
        .collect()
}

fn bearer_schemes(doc: &Value) -> BTreeSet<String> {
    mapping(&doc["components"]["securitySchemes"], "components.securitySchemes")
        .iter()
        .filter(|(_, s)| s["type"].as_str() == Some("http") && s["scheme"].as_str().is_some_and(|v| v.eq_ignore_ascii_case("bearer")))
        .filter_map(|(name, _)| name.as_str().map(str::to_string))
        .collect()
}

/// Whether a `security` list has a requirement naming one of `schemes`.
fn requires_one_of(security: &Value, schemes: &BTreeSet<String>) -> bool {
    security.as_sequence().is_some_and(|reqs| {
        reqs.iter()
            .filter_map(Value::as_mapping)
            .any(|req| req.keys().filter_map(Value::as_str).any(|k| schemes.contains(k)))
    })
}

#[test]
fn every_route_of_the_router_is_documented_with_its_methods() {
    let doc = document();
    let documented = documented_operations(&doc);
    for (path, methods) in router_routes() {
        let ops = documented.get(&path).unwrap_or_else(|| panic!("route {path} is not in the document's paths"));
        let doc_methods: BTreeSet<String> = ops.keys().cloned().collect();
        assert_eq!(doc_methods, methods, "methods of {path}: document vs router");
    }
}

#[test]
fn every_documented_path_is_a_real_route() {
    let routes = router_routes();
    for path in documented_operations(&document()).keys() {
        assert!(routes.contains_key(path), "the document has {path}, which router does not serve");
    }
}

#[test]
fn every_operation_has_an_id_and_responses() {
    let mut ids = BTreeSet::new();
    for (path, ops) in documented_operations(&document()) {
        for (method, op) in ops {
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(ids.insert(id.to_string()), "operationId {id} is used twice");
            let responses = op["responses"].as_mapping().unwrap_or_else(|| panic!("{method} {path} has no responses"));
            assert!(!responses.is_empty(), "{method} {path} has an empty responses");
        }
    }
}

#[test]
fn every_api_operation_needs_a_bearer_token_and_the_open_ones_say_so() {
    let doc = document();
    let bearer = bearer_schemes(&doc);
    assert!(!bearer.is_empty(), "components.securitySchemes has no http bearer scheme");
    let global = &doc["security"];
    for (path, ops) in documented_operations(&doc) {
        for (method, op) in ops {
            let own = op.get("security");
            if UNAUTHENTICATED.contains(&path.as_str()) {
                let open = own.and_then(Value::as_sequence).is_some_and(|s| s.is_empty());
                assert!(open, "{method} {path} takes no token, so it must declare `security: []`");
            } else {
                let security = own.unwrap_or(global);
                assert!(requires_one_of(security, &bearer), "{method} {path} does not declare bearer security");
            }
        }
    }
}

/// Every `$ref` (and discriminator mapping) under `value`, with where it was found.
fn refs(value: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Mapping(m) => {
            for (k, v) in m {
                let key = k.as_str().map(str::to_string).unwrap_or_else(|| format!("{k:?}"));
                let here = format!("{at}/{key}");
                match (key.as_str(), v) {
                    ("$ref", Value::String(target)) => out.push((here, target.clone())),
                    ("mapping", Value::Mapping(targets)) if at.ends_with("/discriminator") => {
                        out.extend(targets.values().filter_map(Value::as_str).map(|t| (here.clone(), t.to_string())));
                    }
                    _ => refs(v, &here, out),
                }
            }
        }
        Value::Sequence(items) => {
            for (i, v) in items.iter().enumerate() {
                refs(v, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// The node a local JSON pointer (`#/components/schemas/Run`) names.
fn resolve<'a>(doc: &'a Value, pointer: &str) -> Option<&'a Value> {
    let path = pointer.strip_prefix("#/")?;
    path.split('/').try_fold(doc, |node, part| node.get(part.replace("~1", "/").replace("~0", "~")))
}

#[test]
fn document_is_openapi_3_0_and_every_ref_resolves() {
    let doc = document();
    let version = doc["openapi"].as_str().expect("`openapi` is a string");
    assert!(version.starts_with("3.0."), "openapi is {version}, not 3.0.x");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string(), "info needs a title and a version");
    for schema in ["Run", "RunSummary", "Stage", "LogLine", "Triggered", "ApprovalSummary", "Decision", "Deployment", "Environment", "Error"] {
        assert!(doc["components"]["schemas"].get(schema).is_some(), "components.schemas has no {schema}");
    }
    let mut found = Vec::new();
    refs(&doc, "#", &mut found);
    assert!(!found.is_empty(), "the document has no $ref at all");
    for (at, target) in found {
        assert!(target.starts_with("#/components/"), "{at}: {target} is not a local component");
        assert!(resolve(&doc, &target).is_some(), "{at}: {target} does not exist");
    }
}

/// The statuses an operation lists.
fn statuses_of(op: &Value) -> BTreeSet<u16> {
    op["responses"].as_mapping().map(|m| m.keys().filter_map(|k| k.as_str()?.parse().ok()).collect()).unwrap_or_default()
}

#[test]
fn every_operation_lists_the_errors_its_inputs_can_cause() {
    let doc = document();
    let bearer = bearer_schemes(&doc);
    for (path, ops) in documented_operations(&doc) {
        for (method, op) in ops {
            let statuses = statuses_of(&op);
            let what = format!("{method} {path}");
            let params = op["parameters"].as_sequence().is_some_and(|p| !p.is_empty()) || path.contains('{');
            let body = op.get("requestBody").is_some();
            let open = op.get("security").and_then(Value::as_sequence).is_some_and(|s| s.is_empty());
            if params || body {
                assert!(statuses.contains(&400), "{what} takes parameters or a body, so it can answer 400");
            }
            if body {
                assert!(statuses.contains(&413), "{what} takes a body, so it can answer 413");
            }
            if !open && requires_one_of(op.get("security").unwrap_or(&doc["security"]), &bearer) {
                assert!(statuses.contains(&401), "{what} needs a token, so it can answer 401");
            }
            // Every error the API answers is the one Error schema, as JSON.
            for (status, response) in mapping(&op["responses"], &what) {
                let code = status.as_str().unwrap_or_default();
                if !code.starts_with('4') && !code.starts_with('5') {
                    continue;
                }
                let response = match response.get("$ref").and_then(Value::as_str) {
                    Some(r) => resolve(&doc, r).unwrap_or_else(|| panic!("{what} {code}: {r} does not exist")),
                    None => response,
                };
                let schema = &response["content"]["application/json"]["schema"];
                assert_eq!(schema["$ref"].as_str(), Some("#/components/schemas/Error"), "{what} {code} is not the Error schema as JSON");
            }
        }
    }
}

/// One HTTP/1.0 exchange: status, headers (names lowercased), body.
fn exchange(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> (u16, BTreeMap<String, String>, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("the service listens");
    s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: localhost\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        request.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    request.push_str("\r\n");
    s.write_all(request.as_bytes()).unwrap();
    // The body is written beside the read: the service may answer (413) before it has
    // read it all, and the answer must not wait behind a full socket buffer.
    let writer = body.map(|b| {
        let (mut w, b) = (s.try_clone().unwrap(), b.to_vec());
        std::thread::spawn(move || {
            let _ = w.write_all(&b);
        })
    });
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let _ = s.shutdown(std::net::Shutdown::Both);
    if let Some(w) = writer {
        let _ = w.join();
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("no status in {text:.200}"));
    let headers = lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())).collect();
    (status, headers, body.to_string())
}

fn api_service(dir: &std::path::Path) -> common::service::Service {
    let repo = common::service::Repo::new(dir, "shop", &["echo hi"]);
    let project = format!("  shop:\n    repo: {}\n    pipeline: gantry.yml\n    branches: [main]\n", repo.path.display());
    common::service::Service::start(dir, &project, "{global: 1, per_project: 1}")
}

#[test]
fn every_refusal_is_a_json_error_with_a_status_its_operation_lists() {
    use common::service::{DEV, RM, VIEWER};
    let doc = document();
    let dir = tempfile::tempdir().unwrap();
    let svc = api_service(dir.path());
    let bearer = |t: &str| format!("Bearer {t}");
    let (viewer, dev, rm) = (bearer(VIEWER), bearer(DEV), bearer(RM));
    let json = ("Content-Type", "application/json");
    let big = vec![b' '; 3 << 20];
    // (method, request path, headers, body, status, the operation as documented)
    let cases: Vec<(&str, &str, Vec<(&str, &str)>, Option<&[u8]>, u16, Option<(&str, &str)>)> = vec![
        // Query strings the document constrains: a type, a range, an enum (empty is not in it), a pattern.
        ("GET", "/api/runs?limit=many", vec![("Authorization", &viewer)], None, 400, Some(("/api/runs", "get"))),
        ("GET", "/api/runs?limit=0", vec![("Authorization", &viewer)], None, 400, Some(("/api/runs", "get"))),
        ("GET", "/api/runs?limit=501", vec![("Authorization", &viewer)], None, 400, Some(("/api/runs", "get"))),
        ("GET", "/api/runs?limit=", vec![("Authorization", &viewer)], None, 400, Some(("/api/runs", "get"))),
        ("GET", "/api/runs?state=", vec![("Authorization", &viewer)], None, 400, Some(("/api/runs", "get"))),
        ("GET", "/api/runs?project=", vec![("Authorization", &viewer)], None, 400, Some(("/api/runs", "get"))),
        ("GET", "/api/runs?before=a%2Fb", vec![("Authorization", &viewer)], None, 400, Some(("/api/runs", "get"))),
        ("GET", "/api/runs/latest/logs?after=-1", vec![("Authorization", &viewer)], None, 400, Some(("/api/runs/{id}/logs", "get"))),
        ("GET", "/api/runs/latest/logs?limit=5001", vec![("Authorization", &viewer)], None, 400, Some(("/api/runs/{id}/logs", "get"))),
        ("GET", "/api/runs/latest/logs?stage=a%20b", vec![("Authorization", &viewer)], None, 400, Some(("/api/runs/{id}/logs", "get"))),
        ("GET", "/api/runs/latest/logs/stream", vec![("Authorization", &viewer), ("Last-Event-ID", "soon")], None, 400, Some(("/api/runs/{id}/logs/stream", "get"))),
        ("GET", "/api/reports?since=100000000y", vec![("Authorization", &viewer)], None, 400, Some(("/api/reports", "get"))),
        ("GET", "/api/reports?since=2999-01-01", vec![("Authorization", &viewer)], None, 400, Some(("/api/reports", "get"))),
        ("GET", "/api/reports?env=", vec![("Authorization", &viewer)], None, 400, Some(("/api/reports", "get"))),
        ("GET", "/api/reports?pipeline=", vec![("Authorization", &viewer)], None, 400, Some(("/api/reports", "get"))),
        ("GET", "/api/environments/Not_A_Name", vec![("Authorization", &viewer)], None, 400, Some(("/api/environments/{name}", "get"))),
        // A path segment that is not UTF-8 once decoded, and one that is not a run id.
        ("GET", "/api/runs/%FF", vec![("Authorization", &viewer)], None, 400, Some(("/api/runs/{id}", "get"))),
        ("GET", "/api/runs/a.b", vec![("Authorization", &viewer)], None, 400, Some(("/api/runs/{id}", "get"))),
        ("GET", "/api/runs/zzzz", vec![("Authorization", &viewer)], None, 404, Some(("/api/runs/{id}", "get"))),
        // Bodies: not declared JSON, not JSON, not an object, a field unknown or of the wrong type, too large.
        ("POST", "/api/projects/shop/trigger", vec![("Authorization", &dev), ("Content-Type", "text/plain")], Some(b"{}"), 400, Some(("/api/projects/{project}/trigger", "post"))),
        ("POST", "/api/projects/shop/trigger", vec![("Authorization", &dev), json], Some(b"{"), 400, Some(("/api/projects/{project}/trigger", "post"))),
        ("POST", "/api/projects/shop/trigger", vec![("Authorization", &dev), json], Some(br#"["main", null, true, false]"#), 400, Some(("/api/projects/{project}/trigger", "post"))),
        ("POST", "/api/projects/shop/trigger", vec![("Authorization", &dev), json], Some(br#"{"forse": true}"#), 400, Some(("/api/projects/{project}/trigger", "post"))),
        ("POST", "/api/projects/shop/trigger", vec![("Authorization", &dev), json], Some(br#"{"force": "yes"}"#), 400, Some(("/api/projects/{project}/trigger", "post"))),
        ("POST", "/api/projects/shop/trigger", vec![("Authorization", &dev), json], Some(br#"{"ref": ""}"#), 400, Some(("/api/projects/{project}/trigger", "post"))),
        ("POST", "/api/projects/shop/trigger", vec![("Authorization", &dev), json], Some(&big), 413, Some(("/api/projects/{project}/trigger", "post"))),
        ("POST", "/api/projects/Shop!/trigger", vec![("Authorization", &dev), json], Some(b"{}"), 400, Some(("/api/projects/{project}/trigger", "post"))),
        ("POST", "/api/runs/latest/approve", vec![("Authorization", &rm), json], Some(br#"{"comment": 1}"#), 400, Some(("/api/runs/{id}/approve", "post"))),
        ("POST", "/hooks/github", vec![("X-GitHub-Event", "push")], Some(&big), 413, Some(("/hooks/{forge}", "post"))),
        // No route, and a method a route does not take.
        ("GET", "/api/nothing-here", vec![("Authorization", &viewer)], None, 404, None),
        ("DELETE", "/api/runs", vec![("Authorization", &viewer)], None, 405, None),
        ("GET", "/api/projects/shop/trigger", vec![("Authorization", &dev)], None, 405, None),
    ];
    for (method, path, headers, body, want, op) in cases {
        let (status, got_headers, text) = exchange(svc.port, method, path, &headers, body);
        let what = format!("{method} {path}");
        assert_eq!(status, want, "{what}: {text}");
        assert!(got_headers.get("content-type").is_some_and(|c| c.starts_with("application/json")), "{what}: {got_headers:?}");
        let error: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"));
        let sentence = error["error"].as_str().unwrap_or_else(|| panic!("{what}: not the Error schema: {text}"));
        assert!(!sentence.is_empty() && error.as_object().unwrap().len() == 1, "{what}: {text}");
        match op {
            Some((doc_path, doc_method)) => {
                let listed = statuses_of(&doc["paths"][doc_path][doc_method]);
                assert!(listed.contains(&status), "{what} answered {status}, which {doc_method} {doc_path} does not list ({listed:?})");
            }
            None if status == 405 => assert!(got_headers.contains_key("allow"), "{what}: 405 without Allow"),
            None => {}
        }
    }
    // The report's refusal says why, and the service (which used to panic here) goes on.
    let (_, body) = svc.call("GET", "/api/reports?since=100000000y", Some(VIEWER), None);
    assert!(body["error"].as_str().unwrap().contains("reaches back more than 36525 days"), "{body}");
    assert_eq!(svc.call("GET", "/api/reports?since=36500d", Some(VIEWER), None).0, 200);
}

/// Where `scripts/setup` installs schemathesis.
fn schemathesis() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-tools/bin/schemathesis")
}

#[test]
fn schemathesis_finds_no_server_error_and_no_undocumented_response() {
    let tool = schemathesis();
    // Not a skip: a machine without it has not run scripts/setup, and the contract is unchecked.
    assert!(tool.exists(), "{} is missing: run scripts/setup, which installs schemathesis into .venv-tools", tool.display());
    let dir = tempfile::tempdir().unwrap();
    let svc = api_service(dir.path());
    // A run that is over, so that `latest`, its id and its logs lead somewhere.
    let run = svc.trigger("shop", serde_json::json!({}))["run"].as_str().unwrap().to_string();
    svc.wait_for(&run, &["succeeded"]);
    let seed = std::env::var("GANTRY_SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261127".into());
    let report = dir.path().join("schemathesis");
    let started = std::time::Instant::now();
    let out = std::process::Command::new(&tool)
        .arg("run")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.yaml"))
        .args(["--url", &format!("http://127.0.0.1:{}", svc.port)])
        // A release manager reaches every handler's own checks, not only the role check.
        .args(["--header", &format!("Authorization: Bearer {}", common::service::RM)])
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection,unsupported_method,allow_header_conformance,ignored_auth"])
        .args(["--max-examples", "25", "--seed", &seed, "--workers", "1", "--request-timeout", "30"])
        .args(["--generation-database", "none", "--no-color", "--report", "junit", "--report-dir"])
        .arg(&report)
        .env("SCHEMATHESIS_HOOKS", "")
        // It keeps a cache of what it found (`.schemathesis/`) where it runs: not in the tree.
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("schemathesis runs");
    let stdout = common::text(&out.stdout);
    eprintln!("schemathesis (seed {seed}) took {:.0?}:\n{stdout}", started.elapsed());
    assert!(out.status.success(), "schemathesis found what the document does not say (its report is above): {}", common::text(&out.stderr));
    // It did test: every operation of the document, none of them failing.
    assert!(stdout.contains("passed") && !stdout.contains("No operations"), "{stdout}");
    let (status, _) = svc.call("GET", "/healthz", None, None);
    assert_eq!(status, 200, "the service still answers");
}
