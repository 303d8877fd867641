//! `docs/openapi.yaml`'s promises: it documents exactly the routes `server::router` serves,
//! with the same methods, an id, responses and the right security for every operation,
//! and it is an OpenAPI 3.0 document whose every `$ref` resolves.
//!
//! The routes are read from the source text of `router` in `src/server/mod.rs`; the
//! dashboard's routes, merged from `ui`, are not part of the API and are not read.

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
