//! The dashboard's session against the threat it exists for: browsers do not separate
//! cookies by port, so every app Gantry deploys on `127.0.0.1:<port>` receives a signed-in
//! release manager's session cookie, and can make the browser post to the dashboard. The
//! real service, the real engine, and headless Chromium where the browser is the point:
//!
//! - an app deployed by a pipeline on another port collects the cookie and auto-submits an
//!   approve form: the form gets 403; the cookie, replayed from outside a browser with
//!   forged headers, cannot call the API or decide; the release stays unapproved and
//!   production keeps the old version;
//! - without the session's CSRF token, with another session's, or from another origin, a
//!   decision is refused and nothing is recorded; with it, from the dashboard, it counts;
//! - sign-out and expiry end a session; sessions survive a restart; the old cookie that
//!   held a raw token is neither taken nor kept;
//! - every response carries the security headers; sign-in is rate-limited per address;
//! - `server.tls`: an HTTPS service signs in through the browser with a `Secure` cookie,
//!   and a certificate it cannot read stops it before it takes its data dir.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::browser::{path_of, sign_in, text_of, wait_for_text, Chromedriver};
use common::service::{sha256, Service, DEV, RM, VIEWER};
use common::web::{self, post_form, request, Signed};
use common::{free_port, http_get, Env, World};
use fantoccini::{Client, Locator};
use serde_json::{json, Value};

fn project(repo: &Path) -> String {
    format!("  site:\n    repo: {}\n    pipeline: gantry.yml\n    branches: [main]\n", repo.display())
}

/// `Service::start` with more `server:` settings (YAML lines, indented by two).
fn start(dir: &Path, projects: &str, server: &str) -> Service {
    Service::start(dir, projects, &format!("{{global: 1, per_project: 1}}\n{server}"))
}

/// A one-stage pipeline that succeeds, for services that need a project but no engine work.
fn plain_world() -> World {
    World::new(&[("gantry.yml", "name: plain\nstages:\n  work: {image: gantry/busybox, commands: [\"true\"]}\n")])
}

fn approval_of(svc: &Service, run: &str) -> Value {
    svc.run(run)["approval"].clone()
}

// ---------------------------------------------------------------------------------------
// An app on another port

/// A storefront page (busybox httpd) whose CGI scripts play the hostile app: `lure` keeps
/// the `Cookie` header it receives and answers a page that auto-submits an approve form to
/// the dashboard (`?port=P&run=ID`); `stolen` prints every cookie it kept.
const LURE: &str = r#"#!/bin/sh
echo "$HTTP_COOKIE" >> /tmp/cookies
port=$(echo "$QUERY_STRING" | sed -n 's/.*port=\([0-9]*\).*/\1/p')
run=$(echo "$QUERY_STRING" | sed -n 's/.*run=\([0-9a-z]*\).*/\1/p')
printf 'Content-Type: text/html\r\n\r\n'
cat <<EOF
<!doctype html><html><head><title>Storefront (staging)</title></head><body>
<h1>Storefront</h1>
<form id="f" method="post" action="http://127.0.0.1:$port/runs/$run/approve">
<input name="comment" value="approved by a page on another port"></form>
<script>document.getElementById('f').submit();</script>
</body></html>
EOF
"#;

const STOLEN: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\ncat /tmp/cookies\n";

const LURE_DOCKERFILE: &str = "FROM gantry/busybox\nCOPY index.html /www/index.html\nCOPY cgi-bin /www/cgi-bin\n\
RUN [\"/bin/busybox\", \"chmod\", \"755\", \"/www/cgi-bin/lure\", \"/www/cgi-bin/stolen\"]\n\
CMD [\"busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n";

const SITE_DOCKERFILE: &str =
    "FROM gantry/busybox\nCOPY index.html /www/index.html\nCMD [\"busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n";

/// A pipeline that deploys the lure on its own environment (published on `lure_port`), the
/// site to staging, and promotes the site to production (on `prod_port`) on one release
/// manager's approval.
struct Lured {
    w: World,
    _envs: [Env; 3],
    lure_port: u16,
    prod_port: u16,
}

impl Lured {
    fn new() -> Lured {
        for image in ["gantry/router", "gantry/smoke"] {
            common::require(image);
        }
        let w = World::new(&[
            ("site/Dockerfile", SITE_DOCKERFILE),
            ("site/index.html", "version 1\n"),
            ("lure/Dockerfile", LURE_DOCKERFILE),
            ("lure/index.html", "storefront staging\n"),
            ("lure/cgi-bin/lure", LURE),
            ("lure/cgi-bin/stolen", STOLEN),
        ]);
        let (lure, staging, prod) = (Env::new(&w, "lure"), Env::new(&w, "stg"), Env::new(&w, "prd"));
        let (lure_port, prod_port) = (free_port(), free_port());
        let yaml = format!(
            r#"name: lured
environments:
  {prod}:
    approval: {{role: release-manager, count: 1}}
stages:
  lure-image: {{kind: build, context: lure, tag: "gantry-test/lure:${{commit.short}}"}}
  lure:
    kind: deploy
    environment: {lure}
    app: lure
    image: "gantry-test/lure:${{commit.short}}"
    port: 8080
    publish: {lure_port}
    health: {{http: /index.html}}
  image: {{kind: build, context: site, tag: "gantry-test/site:${{commit.short}}"}}
  staging:
    kind: deploy
    environment: {staging}
    app: site
    image: "gantry-test/site:${{commit.short}}"
    port: 8080
    health: {{http: /index.html}}
  release:
    kind: promote
    from: {staging}
    to: {prod}
    app: site
    port: 8080
    publish: {prod_port}
    health: {{http: /index.html}}
    gate: {{stages: [staging]}}
"#,
            lure = lure.name,
            staging = staging.name,
            prod = prod.name
        );
        w.pipeline(&yaml);
        Lured { w, _envs: [lure, staging, prod], lure_port, prod_port }
    }

    fn serving(&self) -> Option<String> {
        http_get(self.prod_port, "/index.html").map(|(_, body)| body.trim().to_string())
    }
}

/// What the browser part learns, for the part outside the browser.
struct Seen {
    /// The CSRF token the dashboard's page keeps for rita's session.
    csrf: String,
}

/// Rita signs in, then opens the staging app's page (on another port), which auto-submits
/// an approve form to the dashboard.
async fn rita_visits_the_app(b: Client, base: String, lure: String, run: String) -> Seen {
    sign_in(&b, &base, RM).await;
    let csrf = b.execute("return window.localStorage.getItem('gantry-csrf');", vec![]).await.unwrap();
    let csrf = csrf.as_str().expect("the signed-in page keeps the session's CSRF token").to_string();
    assert_eq!(csrf.len(), 64, "{csrf}");

    b.goto(&lure).await.unwrap();
    wait_for_text(&b, "h1", "Refused", false).await;
    assert_eq!(path_of(&b).await, format!("/runs/{run}/approve"), "the app's form reached the dashboard");
    let why = text_of(&b, "main").await.unwrap();
    assert!(why.contains("Nothing was done") && why.contains("Sec-Fetch-Site: same-site"), "{why}");
    let noted = b.execute("return window.localStorage.getItem('gantry-csrf');", vec![]).await.unwrap();
    assert_eq!(noted.as_str(), Some(csrf.as_str()), "the dashboard's page still holds its token");
    Seen { csrf }
}

#[test]
fn an_app_on_another_port_gets_the_cookie_but_neither_its_form_nor_the_replayed_cookie_can_approve() {
    let site = Lured::new();
    let svc = Service::start(site.w.dir.path(), &project(&site.w.repo()), "{global: 1, per_project: 1}");

    // Version 1 goes live on an approval through the API.
    let first = svc.trigger("site", json!({}))["run"].as_str().unwrap().to_string();
    assert_eq!(svc.wait_for(&first, &["awaiting_approval", "failed"])["state"], "awaiting_approval");
    assert_eq!(svc.call("POST", &format!("/api/runs/{first}/approve"), Some(RM), Some(json!({}))).0, 202);
    assert_eq!(svc.wait_for(&first, &["succeeded", "failed"])["state"], "succeeded");
    assert_eq!(site.serving().as_deref(), Some("version 1"));

    // Version 2 waits for a decision; the app it deployed on another port is up.
    site.w.commit(&[("site/index.html", "version 2\n")], "version 2");
    let run = svc.trigger("site", json!({}))["run"].as_str().unwrap().to_string();
    assert_eq!(svc.wait_for(&run, &["awaiting_approval", "failed"])["state"], "awaiting_approval");
    assert_eq!(http_get(site.lure_port, "/index.html").map(|(s, _)| s), Some(200), "the app serves on its own port");

    let base = web::origin(svc.port);
    let lure = format!("http://127.0.0.1:{}/cgi-bin/lure?port={}&run={run}", site.lure_port, svc.port);
    let driver = Chromedriver::start(&site.w.dir.path().join("chromedriver.log"));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let keep = seen.clone();
    let r = run.clone();
    common::browser::drive(driver, &[], move |b| async move {
        let s = rita_visits_the_app(b, base, lure, r).await;
        *keep.lock().unwrap() = Some(s);
    });
    let csrf = seen.lock().unwrap().take().unwrap().csrf;

    // The app's server received rita's session cookie (cookies ignore ports), never her token.
    let (_, kept) = http_get(site.lure_port, "/cgi-bin/stolen").expect("the app answers");
    assert!(!kept.contains(RM), "the cookie holds no token: {kept}");
    let stolen = kept
        .split(';')
        .map(str::trim)
        .find(|c| c.starts_with("gantry_session="))
        .unwrap_or_else(|| panic!("the app received the session cookie: {kept}"))
        .to_string();

    // Replayed from outside a browser, with every header forged, it cannot use the API...
    let own = web::origin(svc.port);
    let forged = [("Cookie", stolen.as_str()), ("Origin", own.as_str()), ("Sec-Fetch-Site", "same-origin")];
    for (method, path) in [("GET", format!("/api/runs/{run}")), ("GET", "/api/approvals".to_string()), ("GET", format!("/api/runs/{run}/logs/stream"))] {
        assert_eq!(request(svc.port, method, &path, &forged, None).status, 401, "{method} {path} with the cookie");
    }
    let json_headers = [forged[0], forged[1], forged[2], ("Content-Type", "application/json")];
    let api = request(svc.port, "POST", &format!("/api/runs/{run}/approve"), &json_headers, Some(b"{}"));
    assert_eq!(api.status, 401, "{api:?}");
    // ...nor decide on the dashboard without the session's CSRF token, which it cannot get.
    let approve = format!("/runs/{run}/approve");
    let guess = "0".repeat(64);
    for fields in [vec![("comment", "replayed")], vec![("comment", "replayed"), ("csrf", guess.as_str())]] {
        let answer = post_form(svc.port, &approve, Some(&stolen), &fields);
        assert_eq!(answer.status, 403, "{answer:?}");
        assert!(answer.body.contains("Nothing was done"), "{}", answer.body);
    }
    // What the cookie still does: read the pages a signed-in viewer reads. None holds the token.
    for path in ["/", "/approvals", &format!("/runs/{run}"), "/environments"] {
        let page = request(svc.port, "GET", path, &[("Cookie", stolen.as_str())], None);
        assert_eq!(page.status, 200, "{path}");
        assert!(!page.body.contains(&csrf), "{path} gives away the CSRF token");
    }

    // The release is still waiting, nobody decided, production keeps the old version.
    let approval = approval_of(&svc, &run);
    assert_eq!(svc.run(&run)["state"], "awaiting_approval");
    assert_eq!(approval["state"], "pending", "{approval}");
    assert_eq!(approval["decisions"], json!([]), "{approval}");
    assert_eq!(site.serving().as_deref(), Some("version 1"));
}

// ---------------------------------------------------------------------------------------
// CSRF, outside a browser

#[test]
fn a_decision_needs_the_sessions_own_csrf_token_and_the_dashboards_origin() {
    let gated = common::GatedSite::new("{role: release-manager, count: 1}");
    let svc = Service::start(gated.w.dir.path(), &project(&gated.w.repo()), "{global: 1, per_project: 1}");
    let run = svc.trigger("site", json!({}))["run"].as_str().unwrap().to_string();
    assert_eq!(svc.wait_for(&run, &["awaiting_approval", "failed"])["state"], "awaiting_approval");
    let approve = format!("/runs/{run}/approve");
    let rita = web::sign_in(svc.port, RM);
    let other = web::sign_in(svc.port, DEV);
    assert_ne!(rita.csrf, other.csrf);

    let refused = |what: &str, answer: web::Answer| {
        assert_eq!(answer.status, 403, "{what}: {answer:?}");
        assert!(answer.body.contains("Nothing was done"), "{what}: {}", answer.body);
    };
    refused("no token", post_form(svc.port, &approve, Some(&rita.cookie), &[("comment", "x")]));
    refused("an empty token", post_form(svc.port, &approve, Some(&rita.cookie), &[("csrf", "")]));
    refused("another session's token", post_form(svc.port, &approve, Some(&rita.cookie), &[("csrf", &other.csrf)]));
    refused("no session", post_form(svc.port, &approve, None, &[("csrf", &rita.csrf)]));
    let form = web::form(&[("csrf", &rita.csrf)]);
    let cross = |headers: &[(&str, &str)]| {
        let mut all = vec![("Content-Type", "application/x-www-form-urlencoded"), ("Cookie", rita.cookie.as_str())];
        all.extend_from_slice(headers);
        request(svc.port, "POST", &approve, &all, Some(form.as_bytes()))
    };
    refused("another port", cross(&[("Origin", "http://127.0.0.1:1"), ("Sec-Fetch-Site", "same-site")]));
    refused("another site", cross(&[("Origin", "http://evil.example"), ("Sec-Fetch-Site", "cross-site")]));
    refused("no origin at all", cross(&[]));
    let approval = approval_of(&svc, &run);
    assert_eq!((approval["state"].as_str(), approval["decisions"].clone()), (Some("pending"), json!([])), "{approval}");

    // The same form with the session's token, from the dashboard, is recorded.
    let answer = post_form(svc.port, &approve, Some(&rita.cookie), &[("comment", "from the page"), ("csrf", &rita.csrf)]);
    assert_eq!((answer.status, answer.header("location")), (303, Some(format!("/runs/{run}").as_str())), "{answer:?}");
    assert_eq!(svc.wait_for(&run, &["succeeded", "failed"])["approval"]["decisions"][0]["user"], "rita");
    assert_eq!(gated.serving().as_deref(), Some("version 1"));
}

// ---------------------------------------------------------------------------------------
// The session's life

#[test]
fn sign_out_ends_the_session_and_a_session_survives_a_restart() {
    let w = plain_world();
    let mut svc = Service::start(w.dir.path(), &project(&w.repo()), "{global: 1, per_project: 1}");
    let Signed { cookie, csrf } = web::sign_in(svc.port, VIEWER);
    let with_cookie = [("Cookie", cookie.as_str())];
    assert_eq!(request(svc.port, "GET", "/", &with_cookie, None).status, 200);

    svc.kill_9();
    svc.spawn();
    assert_eq!(request(svc.port, "GET", "/", &with_cookie, None).status, 200, "the session is in the store");

    assert_eq!(post_form(svc.port, "/logout", Some(&cookie), &[]).status, 403, "sign-out needs the token too");
    let out = post_form(svc.port, "/logout", Some(&cookie), &[("csrf", &csrf)]);
    assert_eq!(out.status, 200, "{out:?}");
    assert!(out.all("set-cookie").iter().any(|c| c.starts_with("gantry_session=;") && c.contains("Max-Age=0")), "{out:?}");
    assert!(out.body.contains(r#"data-csrf="" data-next="/login""#), "the page forgets the token: {}", out.body);
    let after = request(svc.port, "GET", "/", &with_cookie, None);
    assert_eq!((after.status, after.header("location")), (303, Some("/login")), "the old cookie no longer works");
    assert_eq!(post_form(svc.port, "/logout", Some(&cookie), &[("csrf", &csrf)]).status, 403);
}

#[test]
fn a_session_ends_at_its_expiry() {
    let w = plain_world();
    let svc = start(w.dir.path(), &project(&w.repo()), "  session_ttl: 1s\n");
    let rita = web::sign_in(svc.port, RM);
    let set = web::post_form(svc.port, "/login", None, &[("token", DEV)]);
    assert!(set.all("set-cookie").iter().any(|c| c.contains("Max-Age=1")), "the cookie lasts as long as the session: {set:?}");
    // Past the expiry (1s), the session is refused, whatever the cookie's own lifetime.
    std::thread::sleep(Duration::from_millis(1500));
    let page = request(svc.port, "GET", "/", &[("Cookie", rita.cookie.as_str())], None);
    assert_eq!((page.status, page.header("location")), (303, Some("/login")), "{page:?}");
    let out = post_form(svc.port, "/logout", Some(&rita.cookie), &[("csrf", &rita.csrf)]);
    assert_eq!(out.status, 403, "{out:?}");
    assert!(out.body.contains("your session has ended"), "{}", out.body);
}

#[test]
fn the_old_token_cookie_is_neither_taken_nor_kept() {
    let w = plain_world();
    let svc = Service::start(w.dir.path(), &project(&w.repo()), "{global: 1, per_project: 1}");
    let legacy = format!("gantry_token={RM}");
    let page = request(svc.port, "GET", "/", &[("Cookie", legacy.as_str())], None);
    assert_eq!((page.status, page.header("location")), (303, Some("/login")));
    assert!(page.all("set-cookie").iter().any(|c| c.starts_with("gantry_token=;") && c.contains("Max-Age=0")), "{page:?}");
    assert_eq!(request(svc.port, "GET", "/api/runs", &[("Cookie", legacy.as_str())], None).status, 401);
    let fresh = post_form(svc.port, "/login", Some(&legacy), &[("token", RM)]);
    assert!(fresh.all("set-cookie").iter().any(|c| c.starts_with("gantry_token=;")), "signing in clears it too: {fresh:?}");
}

// ---------------------------------------------------------------------------------------
// Headers, rate limit

#[test]
fn every_response_carries_the_security_headers_and_the_policy_forbids_inline_script() {
    let w = plain_world();
    let svc = Service::start(w.dir.path(), &project(&w.repo()), "{global: 1, per_project: 1}");
    let rita = web::sign_in(svc.port, RM);
    let id = svc.trigger("site", json!({}))["run"].as_str().unwrap().to_string();
    svc.wait_for(&id, &["succeeded"]);
    let signed = [("Cookie", rita.cookie.as_str())];
    let bearer = format!("Bearer {VIEWER}");
    let answers = [
        ("GET /login", request(svc.port, "GET", "/login", &[], None)),
        ("GET /", request(svc.port, "GET", "/", &signed, None)),
        ("GET /runs/{id}", request(svc.port, "GET", &format!("/runs/{id}"), &signed, None)),
        ("GET /approvals", request(svc.port, "GET", "/approvals", &signed, None)),
        ("GET /reports", request(svc.port, "GET", "/reports", &signed, None)),
        ("GET / signed out", request(svc.port, "GET", "/", &[], None)),
        ("GET /api/runs", request(svc.port, "GET", "/api/runs", &[("Authorization", bearer.as_str())], None)),
        ("GET /api/runs without a token", request(svc.port, "GET", "/api/runs", &[], None)),
        ("GET /healthz", request(svc.port, "GET", "/healthz", &[], None)),
    ];
    for (what, a) in &answers {
        let csp = a.header("content-security-policy").unwrap_or_else(|| panic!("{what}: no CSP: {a:?}"));
        let script_src = csp.split(';').map(str::trim).find(|d| d.starts_with("script-src ")).unwrap_or_else(|| panic!("{what}: {csp}"));
        assert!(script_src.split_whitespace().skip(1).all(|s| s.starts_with("'sha256-")), "{what}: scripts by hash only: {csp}");
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"), "{what}: {csp}");
        assert_eq!(a.header("x-content-type-options"), Some("nosniff"), "{what}");
        assert_eq!(a.header("referrer-policy"), Some("no-referrer"), "{what}");
        assert_eq!(a.header("x-frame-options"), Some("DENY"), "{what}");
    }
    // The pages' scripts are exactly those the policy allows.
    let csp = answers[1].1.header("content-security-policy").unwrap();
    for (what, a) in &answers[..5] {
        for script in a.body.split("<script>").skip(1).map(|s| s.split("</script>").next().unwrap()) {
            use base64::prelude::{Engine as _, BASE64_STANDARD};
            use sha2::Digest;
            let hash = format!("'sha256-{}'", BASE64_STANDARD.encode(sha2::Sha256::digest(script.as_bytes())));
            assert!(csp.contains(&hash), "{what}: a script the policy does not allow: {script}");
        }
        assert!(!a.body.contains(" onclick=") && !a.body.contains(" onsubmit="), "{what}: an inline handler");
    }
}

#[test]
fn sign_in_attempts_are_limited_per_address() {
    let w = plain_world();
    let svc = Service::start(w.dir.path(), &project(&w.repo()), "{global: 1, per_project: 1}");
    for n in 1..=5 {
        assert_eq!(post_form(svc.port, "/login", None, &[("token", "guess")]).status, 401, "attempt {n}");
    }
    let limited = post_form(svc.port, "/login", None, &[("token", "guess")]);
    assert_eq!(limited.status, 429, "{limited:?}");
    assert!(limited.body.contains("Too many sign-in attempts from your address"), "{}", limited.body);
    let wait: u64 = limited.header("retry-after").and_then(|s| s.parse().ok()).expect("Retry-After in seconds");
    assert!((1..=12).contains(&wait), "{wait}");
    let right = post_form(svc.port, "/login", None, &[("token", RM)]);
    assert_eq!(right.status, 429, "the right token waits its turn too");
    assert_eq!(web::session_cookie(&right), None, "and opens no session");
    // The API's bearer tokens are not rate-limited by the dashboard's sign-in.
    assert_eq!(svc.call("GET", "/api/runs", Some(VIEWER), None).0, 200);
}

// ---------------------------------------------------------------------------------------
// HTTPS

/// A `gantry serve` with `server.tls`, started and stopped by the test.
struct TlsService {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

/// Users of every role, `server.tls` with `cert` and `key`, no project.
fn tls_config(dir: &Path, port: u16, cert: &Path, key: &Path) -> PathBuf {
    let config = dir.join("gantry.yml");
    let text = format!(
        "users:\n  vic: {{role: viewer, token_sha256: {}}}\n  rita: {{role: release-manager, token_sha256: {}}}\nserver:\n  listen: \"127.0.0.1:{port}\"\n  tls: {{cert: {}, key: {}}}\nprojects: {{}}\n",
        sha256(VIEWER),
        sha256(RM),
        cert.display(),
        key.display()
    );
    std::fs::write(&config, text).unwrap();
    config
}

fn gantry_serve(dir: &Path, config: &Path, log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_gantry"))
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("serve")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("gantry serve starts")
}

impl TlsService {
    fn start(dir: &Path) -> TlsService {
        let c = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, c.cert.pem()).unwrap();
        std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
        let port = free_port();
        let config = tls_config(dir, port, &cert, &key);
        let log = dir.join("serve.log");
        let mut child = gantry_serve(dir, &config, &log);
        let start = Instant::now();
        while !std::fs::read_to_string(&log).unwrap_or_default().contains("listening on https://") {
            assert!(child.try_wait().unwrap().is_none(), "gantry serve stopped: {}", std::fs::read_to_string(&log).unwrap_or_default());
            assert!(start.elapsed() < Duration::from_secs(30), "the service did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        TlsService { child: Some(child), port, log }
    }

    /// SIGTERM, and how the process ended.
    fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
        child.wait().unwrap()
    }
}

impl Drop for TlsService {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop();
        }
    }
}

async fn sign_in_and_out_over_https(b: Client, base: String) {
    sign_in(&b, &base, RM).await;
    assert!(b.current_url().await.unwrap().as_str().starts_with("https://127.0.0.1:"));
    assert_eq!(text_of(&b, ".who .user").await.as_deref(), Some("rita"));
    let cookie = b.get_named_cookie("__Host-gantry_session").await.expect("the session cookie, with the __Host- prefix");
    assert_eq!(cookie.secure(), Some(true), "{cookie:?}");
    assert_eq!(cookie.http_only(), Some(true), "{cookie:?}");
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)", "{cookie:?}");
    assert_eq!(cookie.path(), Some("/"), "{cookie:?}");
    assert_eq!(cookie.value().len(), 64, "an opaque id, not the token");
    // Signing out (a form with the CSRF token, over HTTP/2) works and drops the cookie.
    b.find(Locator::Id("sign-out")).await.unwrap().click().await.unwrap();
    wait_for_text(&b, "h1", "Sign in", false).await;
    assert!(b.get_named_cookie("__Host-gantry_session").await.is_err(), "the cookie is gone");
}

#[test]
fn an_https_service_signs_in_through_the_browser_with_a_secure_cookie_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut svc = TlsService::start(dir.path());
    let base = format!("https://127.0.0.1:{}", svc.port);
    let driver = Chromedriver::start(&dir.path().join("chromedriver.log"));
    common::browser::drive(driver, &["--ignore-certificate-errors"], move |b| sign_in_and_out_over_https(b, base));
    let status = svc.stop();
    let log = std::fs::read_to_string(&svc.log).unwrap();
    assert!(status.success(), "SIGTERM ends the service cleanly: {status:?}\n{log}");
    assert!(log.contains("gantry serve: stopped"), "{log}");
}

#[test]
fn a_certificate_that_cannot_be_read_stops_the_service_before_it_takes_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing-cert.pem");
    let config = tls_config(dir.path(), free_port(), &missing, &dir.path().join("key.pem"));
    let log = dir.path().join("serve.log");
    let status = gantry_serve(dir.path(), &config, &log).wait().unwrap();
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "{said}");
    assert!(said.contains(&format!("server.tls.cert: cannot read {}", missing.display())), "{said}");
    assert!(said.contains("gantry.yml"), "the config file is named: {said}");
    assert!(!dir.path().join("data").exists(), "the data dir was not taken");
}
