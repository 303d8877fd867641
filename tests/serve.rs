//! `gantry serve` with real git repositories, real HTTP and the real engine: signed push
//! webhooks start runs and unsigned ones start nothing, polling finds new commits, the queue
//! keeps its limits, kill -9 loses and orphans nothing, every mutating route checks the
//! caller's token and role, logs stream live, and a post-receive hook notifies the service.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::service::{hmac, Repo, Service, DEV, GITHUB_SECRET, GITEA_SECRET, GITLAB_SECRET, RM, VIEWER};
use common::{docker_objects_of, http, text};
use serde_json::{json, Value};

fn project(name: &str, repo: &Path, extra: &str) -> String {
    format!("  {name}:\n    repo: {}\n    pipeline: gantry.yml\n    branches: [main]\n{extra}", repo.display())
}

fn github_push(full_name: &str, branch: &str, after: &str) -> Vec<u8> {
    json!({"ref": format!("refs/heads/{branch}"), "before": "0".repeat(40), "after": after,
           "repository": {"name": full_name.split('/').next_back().unwrap(), "full_name": full_name,
                          "clone_url": format!("https://example.invalid/{full_name}.git")},
           "pusher": {"name": "ada", "email": "ada@example.com"}})
    .to_string()
    .into_bytes()
}

#[test]
fn a_signed_push_webhook_queues_a_run_and_an_unsigned_one_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::new(dir.path(), "hi", &["echo hello"]);
    let projects = [
        project("hi", &repo.path, "    webhook: {secret_env: GH_SECRET, repository: acme/hi}\n"),
        project("lab", &repo.path, "    webhook: {secret_env: GL_SECRET, repository: acme/lab}\n"),
        project("tea", &repo.path, "    webhook: {secret_env: GT_SECRET, repository: acme/tea}\n"),
    ]
    .concat();
    let svc = Service::start(dir.path(), &projects, "{global: 4, per_project: 2}");
    let head = repo.commit(&["echo pushed"], "pushed");
    let body = github_push("acme/hi", "main", &head);

    // No signature, a wrong one, the right one for another body: 401, and nothing runs.
    let push = |headers: &[(&str, &str)], body: &[u8]| http(svc.port, "POST", "/hooks/github", headers, Some(body)).unwrap();
    let (status, _) = push(&[("X-GitHub-Event", "push")], &body);
    assert_eq!(status, 401);
    let wrong = format!("sha256={}", hmac("not-the-secret", &body));
    assert_eq!(push(&[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &wrong)], &body).0, 401);
    let other = github_push("acme/hi", "main", &"1".repeat(40));
    let mismatched = format!("sha256={}", hmac(GITHUB_SECRET, &other));
    assert_eq!(push(&[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &mismatched)], &body).0, 401);
    assert!(svc.runs().is_empty(), "a refused webhook started something");

    // GitHub, signed: a run of exactly the pushed commit, on its branch.
    let good = format!("sha256={}", hmac(GITHUB_SECRET, &body));
    let (status, answer) = push(&[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &good)], &body);
    assert_eq!(status, 202, "{answer}");
    let runs = svc.runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["project"], "hi");
    assert_eq!(runs[0]["commit"]["sha"], head.as_str());
    assert_eq!(runs[0]["commit"]["branch"], "main");
    assert_eq!(runs[0]["triggered_by"], "ada");
    svc.wait_for(runs[0]["id"].as_str().unwrap(), &["succeeded"]);
    // The same delivery again: the commit already ran.
    let (status, answer) = push(&[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &good)], &body);
    assert_eq!(status, 202);
    assert!(answer.contains("duplicate"), "{answer}");
    assert_eq!(svc.runs().len(), 1);
    // A ping (what GitHub sends when a hook is created) is answered, and runs nothing.
    let ping = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
    let sig = format!("sha256={}", hmac(GITHUB_SECRET, ping));
    assert_eq!(push(&[("X-GitHub-Event", "ping"), ("X-Hub-Signature-256", &sig)], ping).0, 200);
    // A push to a branch the project does not follow runs nothing.
    let side = github_push("acme/hi", "experiment", &head);
    let sig = format!("sha256={}", hmac(GITHUB_SECRET, &side));
    let (_, answer) = push(&[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &sig)], &side);
    assert!(answer.contains("ignored"), "{answer}");

    // GitLab: the shared token; Gitea: an unprefixed HMAC.
    let gitlab = json!({"object_kind": "push", "ref": "refs/heads/main", "after": head, "checkout_sha": head,
        "user_username": "ada", "project": {"name": "lab", "path_with_namespace": "acme/lab",
        "git_http_url": "https://example.invalid/acme/lab.git"}})
    .to_string();
    let headers = [("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", "wrong")];
    assert_eq!(http(svc.port, "POST", "/hooks/gitlab", &headers, Some(gitlab.as_bytes())).unwrap().0, 401);
    let headers = [("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", GITLAB_SECRET)];
    assert_eq!(http(svc.port, "POST", "/hooks/gitlab", &headers, Some(gitlab.as_bytes())).unwrap().0, 202);
    let gitea = github_push("acme/tea", "main", &head);
    let headers = [("X-Gitea-Event", "push"), ("X-Gitea-Signature", &hmac("wrong", &gitea))];
    assert_eq!(http(svc.port, "POST", "/hooks/gitea", &headers, Some(&gitea)).unwrap().0, 401);
    let sig = hmac(GITEA_SECRET, &gitea);
    let headers = [("X-Gitea-Event", "push"), ("X-Gitea-Signature", sig.as_str())];
    assert_eq!(http(svc.port, "POST", "/hooks/gitea", &headers, Some(&gitea)).unwrap().0, 202);
    let mut projects: Vec<String> = svc.runs().iter().map(|r| r["project"].as_str().unwrap().to_string()).collect();
    projects.sort();
    assert_eq!(projects, ["hi", "lab", "tea"]);
}

#[test]
fn polling_picks_up_a_new_commit() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::new(dir.path(), "polled", &["echo first"]);
    // By URL, so the service fetches it into a mirror like any remote repository.
    let url = format!("file://{}", repo.path.display());
    let projects = format!("  polled:\n    repo: {url}\n    pipeline: gantry.yml\n    branches: [main]\n    poll: 1s\n");
    let svc = Service::start(dir.path(), &projects, "{global: 2, per_project: 1}");
    let start = Instant::now();
    while svc.runs().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(30), "the first poll queued nothing");
        std::thread::sleep(Duration::from_millis(100));
    }
    let new = repo.commit(&["echo second"], "second");
    let start = Instant::now();
    loop {
        if let Some(run) = svc.runs().into_iter().find(|r| r["commit"]["sha"] == new.as_str()) {
            assert_eq!(run["project"], "polled");
            svc.wait_for(run["id"].as_str().unwrap(), &["succeeded"]);
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "polling did not pick up {new}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Each commit once, however many polls saw it.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(svc.runs().len(), 2);
}

/// (start, end) of a finished run, in ms since the epoch.
fn span(run: &Value) -> (i64, i64) {
    let t = |k: &str| chrono::DateTime::parse_from_rfc3339(run[k].as_str().unwrap()).unwrap().timestamp_millis();
    (t("started_at"), t("finished_at"))
}

fn overlap(a: (i64, i64), b: (i64, i64)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

#[test]
fn the_queue_keeps_the_per_project_limit_and_uses_the_global_one() {
    let dir = tempfile::tempdir().unwrap();
    let a = Repo::new(dir.path(), "a", &["sleep 2"]);
    let b = Repo::new(dir.path(), "b", &["sleep 2"]);
    let projects = [project("a", &a.path, ""), project("b", &b.path, "")].concat();
    let svc = Service::start(dir.path(), &projects, "{global: 2, per_project: 1}");
    let a1 = svc.trigger("a", json!({}));
    let a2 = svc.trigger("a", json!({"force": true}));
    let b1 = svc.trigger("b", json!({}));
    let ids: Vec<String> = [&a1, &a2, &b1].iter().map(|t| t["run"].as_str().unwrap().to_string()).collect();
    let done: Vec<Value> = ids.iter().map(|id| svc.wait_for(id, &["succeeded"])).collect();
    let (a1, a2, b1) = (span(&done[0]), span(&done[1]), span(&done[2]));
    assert!(!overlap(a1, a2), "two runs of one project ran at once: {a1:?} {a2:?}");
    assert!(overlap(a1, b1) || overlap(a2, b1), "the second slot was not used: {a1:?} {a2:?} {b1:?}");
    // The queue made the second run of `a` wait: it was queued before it started.
    let queued_at = chrono::DateTime::parse_from_rfc3339(done[1]["created_at"].as_str().unwrap()).unwrap().timestamp_millis();
    assert!(a2.0 - queued_at >= 1500, "run a2 should have waited for a1");
}

#[test]
fn kill_9_mid_run_loses_nothing_orphans_nothing_and_the_queue_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::new(dir.path(), "k", &["echo started", "sleep 60"]);
    let mut svc = Service::start(dir.path(), &project("k", &repo.path, ""), "{global: 1, per_project: 1}");
    let first = svc.trigger("k", json!({}))["run"].as_str().unwrap().to_string();
    let head = repo.commit(&["echo second run"], "second");
    let second = svc.trigger("k", json!({"ref": head}))["run"].as_str().unwrap().to_string();
    svc.wait_for(&first, &["running"]);
    // Wait for the stage's container: the run holds Docker objects when it dies.
    let start = Instant::now();
    while !docker_objects_of(&first).iter().any(|o| o.starts_with("container")) {
        assert!(start.elapsed() < Duration::from_secs(60), "the first run's container never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(svc.run(&second)["state"], "queued");
    svc.kill_9();
    assert!(!docker_objects_of(&first).is_empty(), "kill -9 should leave the run's objects for the restart to find");

    svc.spawn();
    let first_run = svc.run(&first);
    assert_eq!(first_run["state"], "interrupted", "{first_run}");
    assert!(docker_objects_of(&first).is_empty(), "left behind: {:?}", docker_objects_of(&first));
    let second_run = svc.wait_for(&second, &["succeeded"]);
    assert_eq!(second_run["commit"]["sha"], head.as_str());
    let logs = svc.logs(&second, None);
    assert!(logs.iter().any(|l| l["text"] == "second run"), "{logs:?}");
}

#[test]
fn every_mutating_route_checks_the_token_and_the_role() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::new(dir.path(), "r", &["echo hi"]);
    let svc = Service::start(dir.path(), &project("r", &repo.path, ""), "{global: 1, per_project: 1}");
    let id = svc.trigger("r", json!({}))["run"].as_str().unwrap().to_string();
    svc.wait_for(&id, &["succeeded"]);
    let (approve, reject) = (format!("/api/runs/{id}/approve"), format!("/api/runs/{id}/reject"));
    let routes = [("POST", "/api/projects/r/trigger"), ("POST", approve.as_str()), ("POST", reject.as_str())];
    for (method, path) in routes {
        assert_eq!(svc.call(method, path, None, Some(json!({}))).0, 401, "{path} without a token");
        assert_eq!(svc.call(method, path, Some("not-a-token"), Some(json!({}))).0, 401, "{path} with a bad token");
        assert_eq!(svc.call(method, path, Some(VIEWER), Some(json!({}))).0, 403, "{path} as a viewer");
    }
    for path in ["/api/runs", "/api/projects", "/api/approvals", "/api/environments", "/api/reports?since=30d", &format!("/api/runs/{id}/logs")] {
        assert_eq!(svc.call("GET", path, None, None).0, 401, "{path} without a token");
        assert_eq!(svc.call("GET", path, Some(VIEWER), None).0, 200, "{path} as a viewer");
    }
    // The dashboard's pages need a session too; with one, the report page answers.
    let cookie = common::web::sign_in(svc.port, VIEWER).cookie;
    let (status, _) = http(svc.port, "GET", "/reports", &[], None).unwrap();
    assert_eq!(status, 303, "to the sign-in page");
    let (status, page) = http(svc.port, "GET", "/reports?since=30d", &[("Cookie", &cookie)], None).unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("no production deployments in production"), "{page}");
    // A developer may trigger, not decide.
    let (status, body) = svc.call("POST", &format!("/api/runs/{id}/approve"), Some(DEV), Some(json!({})));
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("needs the role release-manager"), "{body}");
    // A release manager may decide, but this run asked for nothing.
    let (status, body) = svc.call("POST", &format!("/api/runs/{id}/approve"), Some(RM), Some(json!({})));
    assert_eq!(status, 409, "{body}");
    assert_eq!(svc.call("POST", "/api/projects/nope/trigger", Some(DEV), Some(json!({}))).0, 404);
}

#[test]
fn logs_stream_live_as_server_sent_events_until_the_run_ends() {
    use std::io::{BufRead, BufReader, Write};
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::new(dir.path(), "s", &["echo one", "sleep 1", "echo two", "sleep 1", "echo three"]);
    let svc = Service::start(dir.path(), &project("s", &repo.path, ""), "{global: 1, per_project: 1}");
    let id = svc.trigger("s", json!({}))["run"].as_str().unwrap().to_string();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", svc.port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(stream, "GET /api/runs/{id}/logs/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {VIEWER}\r\n\r\n").unwrap();
    let mut texts = Vec::new();
    let mut event = String::new();
    let mut ended = None;
    let mut saw_running = false;
    for line in BufReader::new(stream).lines() {
        let line = line.unwrap();
        if let Some(name) = line.strip_prefix("event: ") {
            event = name.to_string();
        } else if let Some(data) = line.strip_prefix("data: ") {
            let value: Value = serde_json::from_str(data).unwrap();
            match event.as_str() {
                "log" => {
                    texts.push(value["text"].as_str().unwrap().to_string());
                    // Lines arrive while the run is still going, not only at its end.
                    saw_running |= svc.run(&id)["state"] == "running";
                }
                "end" => {
                    ended = Some(value["state"].clone());
                    break;
                }
                _ => {}
            }
        }
    }
    assert_eq!(ended, Some(json!("succeeded")));
    let printed: Vec<&str> = texts.iter().map(String::as_str).filter(|t| !t.starts_with('+')).collect();
    assert_eq!(printed, ["one", "two", "three"]);
    assert!(saw_running, "no line arrived while the run was running");
}

/// `id`, `event` and `data` of each event of a `text/event-stream` answer, until `end`.
fn sse_events(port: u16, id: &str, headers: &[(&str, &str)]) -> Vec<(Option<String>, String, String)> {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    write!(stream, "GET /api/runs/{id}/logs/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {VIEWER}\r\n{extra}\r\n").unwrap();
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(status.contains(" 200 "), "{status}");
    let (mut events, mut current) = (Vec::new(), (None, String::new(), String::new()));
    for line in reader.lines() {
        let line = line.unwrap();
        if let Some(v) = line.strip_prefix("id: ") {
            current.0 = Some(v.to_string());
        } else if let Some(v) = line.strip_prefix("event: ") {
            current.1 = v.to_string();
        } else if let Some(v) = line.strip_prefix("data: ") {
            current.2 = v.to_string();
        } else if line.is_empty() && !current.1.is_empty() {
            let done = current.1 == "end";
            events.push(std::mem::take(&mut current));
            if done {
                break;
            }
        }
    }
    events
}

#[test]
fn stored_logs_come_in_pages_that_follow_each_other_without_gaps_or_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::new(dir.path(), "p", &["for i in $(seq 1 25); do echo line $i; done", "sleep 3", "echo late"]);
    let svc = Service::start(dir.path(), &project("p", &repo.path, ""), "{global: 1, per_project: 1}");
    let id = svc.trigger("p", json!({}))["run"].as_str().unwrap().to_string();
    // While it sleeps: the last page so far, and its `last`.
    let started = Instant::now();
    let last = loop {
        let (_, page) = svc.call("GET", &format!("/api/runs/{id}/logs"), Some(VIEWER), None);
        if page["lines"].as_array().unwrap().iter().any(|l| l["text"] == "line 25") {
            assert_eq!(page["next"], Value::Null, "{page}");
            break page["last"].as_u64().expect("a page with lines has a last position");
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the lines never came");
        std::thread::sleep(Duration::from_millis(100));
    };
    svc.wait_for(&id, &["succeeded"]);
    // Following on from `last` gives what came since, and only that.
    let (_, since) = svc.call("GET", &format!("/api/runs/{id}/logs?after={last}"), Some(VIEWER), None);
    let since: Vec<&str> = since["lines"].as_array().unwrap().iter().map(|l| l["text"].as_str().unwrap()).filter(|t| !t.starts_with('+')).collect();
    assert_eq!(since, ["late"]);
    let (mut texts, mut after, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let (status, page) = svc.call("GET", &format!("/api/runs/{id}/logs?limit=10{after}"), Some(VIEWER), None);
        assert_eq!(status, 200, "{page}");
        let lines = page["lines"].as_array().unwrap();
        assert!(lines.len() <= 10, "a page holds at most `limit` lines: {page}");
        texts.extend(lines.iter().map(|l| l["text"].as_str().unwrap().to_string()));
        pages += 1;
        match page["next"].as_u64() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    let mut expected: Vec<String> = (1..=25).map(|i| format!("line {i}")).collect();
    expected.push("late".into());
    assert_eq!(texts.iter().filter(|t| !t.starts_with('+')).cloned().collect::<Vec<_>>(), expected);
    // Without `limit` one page (of up to 1000) holds them all, the shell's trace too, and
    // says there is no next: the pages above were exactly that, cut in tens.
    let (_, all) = svc.call("GET", &format!("/api/runs/{id}/logs"), Some(VIEWER), None);
    assert_eq!(all["next"], Value::Null);
    let (_, after_all) = svc.call("GET", &format!("/api/runs/{id}/logs?after={}", all["last"]), Some(VIEWER), None);
    assert_eq!(after_all, json!({"lines": [], "next": null, "last": null}));
    let all: Vec<String> = all["lines"].as_array().unwrap().iter().map(|l| l["text"].as_str().unwrap().to_string()).collect();
    assert_eq!(texts, all);
    assert_eq!(pages, all.len().div_ceil(10), "{all:?}");
    let (status, body) = svc.call("GET", &format!("/api/runs/{id}/logs?limit=0"), Some(VIEWER), None);
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("limit"), "{body}");
}

#[test]
fn the_log_stream_resumes_after_last_event_id_instead_of_replaying() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::new(dir.path(), "r", &["echo one", "echo two", "echo three", "echo four"]);
    let svc = Service::start(dir.path(), &project("r", &repo.path, ""), "{global: 1, per_project: 1}");
    let id = svc.trigger("r", json!({}))["run"].as_str().unwrap().to_string();
    svc.wait_for(&id, &["succeeded"]);
    let text = |e: &(Option<String>, String, String)| serde_json::from_str::<Value>(&e.2).unwrap()["text"].as_str().unwrap().to_string();
    let all = sse_events(svc.port, &id, &[]);
    let (end, logs) = all.split_last().unwrap();
    assert_eq!(end.1, "end");
    assert!(logs.iter().all(|e| e.1 == "log" && e.0.is_some()), "every log event has an id: {all:?}");
    let ids: Vec<u64> = logs.iter().map(|e| e.0.as_deref().unwrap().parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    let printed: Vec<String> = logs.iter().map(text).filter(|t| !t.starts_with('+')).collect();
    assert_eq!(printed, ["one", "two", "three", "four"]);

    // A browser that saw up to "two" reconnects: it gets what came after, then the end.
    let at_two = logs.iter().position(|e| text(e) == "two").unwrap();
    let last_seen = logs[at_two].0.clone().unwrap();
    let resumed = sse_events(svc.port, &id, &[("Last-Event-ID", &last_seen)]);
    let resumed_texts: Vec<String> = resumed.iter().filter(|e| e.1 == "log").map(text).collect();
    let expected: Vec<String> = logs[at_two + 1..].iter().map(text).collect();
    assert_eq!(resumed_texts, expected, "only the lines after Last-Event-ID {last_seen}");
    assert_eq!(resumed.last().unwrap().1, "end");
    // Its ids are the same positions as the first time, and as the paged logs' cursor.
    assert_eq!(resumed.iter().filter(|e| e.1 == "log").map(|e| e.0.clone().unwrap()).collect::<Vec<_>>(),
        logs[at_two + 1..].iter().map(|e| e.0.clone().unwrap()).collect::<Vec<_>>());
    let (_, page) = svc.call("GET", &format!("/api/runs/{id}/logs?after={last_seen}"), Some(VIEWER), None);
    let paged: Vec<String> = page["lines"].as_array().unwrap().iter().map(|l| l["text"].as_str().unwrap().to_string()).collect();
    assert_eq!(paged, expected);
    // An empty Last-Event-ID (a browser that got no id yet) starts at the beginning.
    assert_eq!(sse_events(svc.port, &id, &[("Last-Event-ID", "")]).len(), all.len());
    let (status, body) = http(svc.port, "GET", &format!("/api/runs/{id}/logs/stream"), &[("Authorization", &format!("Bearer {VIEWER}")), ("Last-Event-ID", "two")], None).unwrap();
    assert_eq!(status, 400, "{body}");
}

#[test]
fn a_post_receive_hook_notifies_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let work = Repo::new(dir.path(), "work", &["echo from the hook"]);
    let bare = dir.path().join("central.git");
    let git = |args: &[&str], cwd: &Path| {
        let out = Command::new("git").args(args).current_dir(cwd).output().expect("git");
        assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
    };
    git(&["init", "-q", "--bare", bare.to_str().unwrap()], dir.path());
    let hook = bare.join("hooks/post-receive");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/post-receive"), &hook).unwrap();
    let svc = Service::start(dir.path(), &project("central", &bare, ""), "{global: 1, per_project: 1}");
    git(&["config", "gantry.url", &format!("http://127.0.0.1:{}", svc.port)], &bare);
    git(&["config", "gantry.project", "central"], &bare);
    git(&["config", "gantry.token", DEV], &bare);
    let head = work.commit(&["echo pushed through the hook"], "through the hook");
    let out = Command::new("git").args(["push", "-q", bare.to_str().unwrap(), "main"]).current_dir(&work.path).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("queued"), "the hook says what it did: {}", text(&out.stderr));
    let runs = svc.runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["commit"]["sha"], head.as_str());
    svc.wait_for(runs[0]["id"].as_str().unwrap(), &["succeeded"]);
}

#[test]
fn the_api_refuses_self_approval_and_a_pending_approval_survives_kill_9() {
    let site = common::GatedSite::new("{role: release-manager, count: 1, forbid_author: true}");
    // ada is a release manager, and the author of the site's commits.
    let ada = format!("  ada: {{role: release-manager, emails: [ada@example.com], token_sha256: {}}}\n", common::service::sha256("ada-token"));
    let project = format!("  site:\n    repo: {}\n    pipeline: gantry.yml\n    branches: [main]\n", site.w.repo().display());
    let mut svc = Service::start_with(site.w.dir.path(), &ada, &project, "{global: 1, per_project: 1}");
    let id = svc.trigger("site", json!({}))["run"].as_str().unwrap().to_string();
    svc.wait_for(&id, &["awaiting_approval"]);

    let (status, body) = svc.call("POST", &format!("/api/runs/{id}/approve"), Some("ada-token"), Some(json!({})));
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("authored commit"), "{body}");
    let (status, body) = svc.call("POST", &format!("/api/runs/{id}/reject"), Some(RM), Some(json!({})));
    assert_eq!(status, 400, "a rejection needs a reason: {body}");

    // The command line on the data dir the service holds decides through the service, by
    // its rules, at once rather than waiting for the data dir.
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .arg("--config").arg(&svc.config).arg("--data-dir").arg(&svc.data)
        .env("GANTRY_TOKEN", "ada-token")
        .args(["approve", &id])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("authored commit"), "{}", text(&out.stderr));
    assert!(started.elapsed() < Duration::from_secs(5), "it answers at once rather than waiting");

    svc.kill_9();
    svc.spawn();
    let (status, pending) = svc.call("GET", "/api/approvals", Some(VIEWER), None);
    assert_eq!(status, 200);
    assert_eq!(pending.as_array().unwrap().len(), 1, "still pending after kill -9: {pending}");
    assert_eq!(pending[0]["run"], id.as_str());

    let (status, body) = svc.call("POST", &format!("/api/runs/{id}/approve"), Some(RM), Some(json!({"comment": "ok"})));
    assert_eq!(status, 202, "{body}");
    let done = svc.wait_for(&id, &["succeeded", "failed"]);
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["approval"]["claimed_by"], "rita");
    assert_eq!(site.serving().as_deref(), Some("version 1"));
    let (_, again) = svc.call("POST", &format!("/api/runs/{id}/approve"), Some(RM), Some(json!({})));
    assert!(again["error"].as_str().unwrap().contains("already approved"), "{again}");
    let (_, metrics) = http(svc.port, "GET", "/metrics", &[], None).unwrap();
    assert!(metrics.contains("gantry_promotions_total 1"), "{metrics}");
}


#[test]
fn gantry_trigger_asks_the_service_and_says_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::new(dir.path(), "t", &["echo hi"]);
    let svc = Service::start(dir.path(), &project("t", &repo.path, ""), "{global: 1, per_project: 1}");
    let server = format!("http://127.0.0.1:{}", svc.port);
    let trigger = |token: &str| {
        Command::new(env!("CARGO_BIN_EXE_gantry"))
            .args(["trigger", "t", "--server", &server, "--token", token])
            .env_remove("GANTRY_SERVER")
            .output()
            .unwrap()
    };
    let out = trigger(DEV);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("queued run "), "{}", text(&out.stdout));
    let out = trigger(DEV);
    assert!(text(&out.stdout).contains("already ran for t"), "{}", text(&out.stdout));
    let out = trigger(VIEWER);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("the service refused (403 Forbidden): vic (viewer) may not do this"), "{}", text(&out.stderr));
}

#[test]
fn the_periodic_sweep_removes_what_finished_runs_left_and_nothing_of_others() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::new(dir.path(), "w", &["echo hi"]);
    let svc = Service::start(dir.path(), &project("w", &repo.path, ""), "{global: 1, per_project: 1}\n  sweep_every: 1s");
    let id = svc.trigger("w", json!({}))["run"].as_str().unwrap().to_string();
    svc.wait_for(&id, &["succeeded"]);
    let start_labelled = |run: &str| {
        let out = Command::new("docker")
            .args(["run", "-d", "--label", &format!("io.gantry.run={run}"), "gantry/busybox", "sleep", "300"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    };
    // Something a finished run of this store left behind, and a run of another store's.
    let leftover = start_labelled(&id);
    let foreign_run = format!("not-this-store-{}", std::process::id());
    let foreign = start_labelled(&foreign_run);
    let start = Instant::now();
    while !docker_objects_of(&id).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(20), "the sweep did not remove {leftover}");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let others = docker_objects_of(&foreign_run);
    let _ = Command::new("docker").args(["rm", "-f", &foreign]).output();
    assert_eq!(others.len(), 1, "the sweep must leave other stores' runs alone: {others:?}");
}

#[test]
fn a_wrong_config_or_a_busy_port_stops_the_service_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let serve = |config: &str| {
        let path = dir.path().join("bad.yml");
        std::fs::write(&path, config).unwrap();
        Command::new(env!("CARGO_BIN_EXE_gantry"))
            .arg("--config").arg(&path).arg("--data-dir").arg(dir.path().join("data"))
            .arg("serve")
            .output()
            .unwrap()
    };
    let out = serve("server:\n  listen: 127.0.0.1:0\n  concurency: {global: 2}\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("bad.yml:3:3: server: unknown field `concurency`"), "{}", text(&out.stderr));
    let out = serve("projects:\n  shop: {repo: /r, webhook: {secret_env: GANTRY_TEST_UNSET_HOOK_SECRET}}\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("projects.shop.webhook.secret_env: the environment variable GANTRY_TEST_UNSET_HOOK_SECRET is not set"), "{}", text(&out.stderr));
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let out = serve(&format!("server: {{listen: \"127.0.0.1:{port}\"}}\n"));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(&format!("cannot listen on 127.0.0.1:{port}")), "{}", text(&out.stderr));
    // Nothing was started or recorded: the data dir was not even taken.
    assert!(!dir.path().join("data").join("db").exists());
}

#[test]
fn stopping_the_service_mid_promotion_finishes_it_and_leaves_no_lock_behind() {
    let site = common::GatedSite::new("{role: release-manager, count: 1, forbid_author: false}");
    let project = format!("  site:\n    repo: {}\n    pipeline: gantry.yml\n    branches: [main]\n", site.w.repo().display());
    let mut svc = Service::start_with(site.w.dir.path(), "", &project, "{global: 1, per_project: 1}");
    let id = svc.trigger("site", json!({}))["run"].as_str().unwrap().to_string();
    svc.wait_for(&id, &["awaiting_approval"]);
    let (status, body) = svc.call("POST", &format!("/api/runs/{id}/approve"), Some(RM), Some(json!({})));
    assert_eq!(status, 202, "{body}");
    // SIGTERM while the promotion runs in the service's background.
    assert!(svc.stop().success());
    let out = Command::new(env!("CARGO_BIN_EXE_gantry")).arg("--data-dir").arg(&svc.data).args(["show", &id, "--json"]).output().unwrap();
    let done: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(done["state"], "succeeded", "the promotion was finished, not dropped: {done}");
    assert_eq!(site.serving().as_deref(), Some("version 1"));
    let filter = format!("label=io.gantry.lock={}", site.prod.name);
    let locks = Command::new("docker").args(["ps", "-aq", "--filter", &filter]).output().unwrap();
    assert!(text(&locks.stdout).trim().is_empty(), "no lock of {} is left", site.prod.name);
    // What the run owns goes; the version it put live stays, by design.
    let run_filter = format!("label=io.gantry.run={id}");
    let owned = Command::new("docker").args(["ps", "-a", "--filter", &run_filter, "--format", "{{.Names}} {{.Label \"io.gantry.environment\"}}"]).output().unwrap();
    let outside: Vec<String> = text(&owned.stdout).lines().filter(|l| l.split_whitespace().nth(1).is_none()).map(str::to_string).collect();
    assert!(outside.is_empty(), "containers of the run outside its environments: {outside:?}");
}
