//! Shared test fixtures: real git repositories (git2), a real data dir, the real binary
//! and the real Docker engine. Nothing here pretends.
#![allow(dead_code)]

pub mod browser;
pub mod service;
pub mod web;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

pub const IMAGE: &str = "gantry/busybox";

/// A scratch world for one test: a git repository with a pipeline file, and a data dir.
pub struct World {
    pub dir: tempfile::TempDir,
}

impl World {
    /// A repository whose single commit holds `files` (path, content), on branch `main`.
    pub fn new(files: &[(&str, &str)]) -> World {
        require_image();
        let dir = tempfile::tempdir().expect("tempdir");
        let world = World { dir };
        std::fs::create_dir_all(world.repo()).unwrap();
        let repo = git2::Repository::init_opts(
            world.repo(),
            git2::RepositoryInitOptions::new().initial_head("main"),
        )
        .expect("git init");
        drop(repo);
        world.commit(files, "first commit");
        world
    }

    pub fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Adds a commit with `files` on the current branch; returns its sha.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        commit_files(&self.repo(), files, message)
    }

    /// Writes `pipeline` to the repository (committed) and returns the file's path.
    pub fn pipeline(&self, yaml: &str) -> PathBuf {
        self.commit(&[("gantry.yml", yaml)], "pipeline");
        self.repo().join("gantry.yml")
    }

    pub fn gantry(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gantry"));
        cmd.arg("--data-dir").arg(self.data_dir());
        cmd.env_remove("GANTRY_DATA_DIR").env_remove("RUST_LOG");
        cmd.stdin(Stdio::null());
        cmd
    }

    /// `gantry run <pipeline> --repo <repo>` with extra args, to completion.
    pub fn run(&self, pipeline: &Path, extra: &[&str]) -> Output {
        self.gantry()
            .arg("run")
            .arg(pipeline)
            .arg("--repo")
            .arg(self.repo())
            .args(extra)
            .output()
            .expect("gantry runs")
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.gantry().args(args).arg("--json").output().unwrap();
        assert!(out.status.success(), "gantry {args:?} failed: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("valid JSON")
    }

    pub fn show(&self, run: &str) -> Value {
        self.json(&["show", run])
    }

    pub fn latest(&self) -> Value {
        self.show("latest")
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn stage<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["stages"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no stage {name} in {run}"))
}

fn require_image() {
    let ok = Command::new("docker").args(["image", "inspect", IMAGE]).output().map(|o| o.status.success()).unwrap_or(false);
    assert!(ok, "the base image {IMAGE} is missing: run agents/busybox/build.sh (scripts/test does)");
}

/// Docker objects of any kind that carry the run's label.
pub fn docker_objects_of(run_id: &str) -> Vec<String> {
    let filter = format!("label=io.gantry.run={run_id}");
    let mut found = Vec::new();
    for (kind, args) in [
        ("container", vec!["ps", "-a", "-q", "--filter", &filter]),
        ("network", vec!["network", "ls", "-q", "--filter", &filter]),
        ("volume", vec!["volume", "ls", "-q", "--filter", &filter]),
    ] {
        let out = Command::new("docker").args(&args).output().expect("docker cli");
        found.extend(text(&out.stdout).lines().filter(|l| !l.is_empty()).map(|l| format!("{kind} {l}")));
    }
    found
}

/// Waits until a container of some gantry run is running for a stage named `stage` under
/// this world's... (any run: tests use unique stage names); returns the run id.
pub fn wait_for_running_stage(stage: &str, timeout: std::time::Duration) -> String {
    let start = std::time::Instant::now();
    let filter = format!("label=io.gantry.stage={stage}");
    while start.elapsed() < timeout {
        let out = Command::new("docker")
            .args(["ps", "--filter", &filter, "--format", "{{.Label \"io.gantry.run\"}}"])
            .output()
            .unwrap();
        if let Some(id) = text(&out.stdout).lines().next().filter(|l| !l.is_empty()) {
            return id.to_string();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("no container for stage {stage} started within {timeout:?}");
}

/// Writes `files` (path, content) into the work tree at `repo` and commits everything, as
/// Ada Author <ada@example.com>, on the current branch; returns the sha.
pub fn commit_files(repo: &Path, files: &[(&str, &str)], message: &str) -> String {
    commit_files_as(repo, files, message, ("Ada Author", "ada@example.com"))
}

/// `commit_files`, authored and committed by `(name, email)`.
pub fn commit_files_as(repo: &Path, files: &[(&str, &str)], message: &str, (name, email): (&str, &str)) -> String {
    let git = git2::Repository::open(repo).unwrap();
    for (path, content) in files {
        let full = repo.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
    }
    let mut index = git.index().unwrap();
    index.add_all(["*"], git2::IndexAddOption::DEFAULT, None).unwrap();
    index.write().unwrap();
    let tree = git.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now(name, email).unwrap();
    let parent = git.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    git.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents).unwrap().to_string()
}

/// Commits `files` (top-level paths only) onto branch `branch`, created from the current
/// head, without touching the work tree or HEAD: a commit that the current branch does
/// not contain. Returns the sha.
pub fn commit_on_branch(repo: &Path, branch: &str, files: &[(&str, &str)], message: &str) -> String {
    let git = git2::Repository::open(repo).unwrap();
    let head = git.head().unwrap().peel_to_commit().unwrap();
    let mut tree = git.treebuilder(Some(&head.tree().unwrap())).unwrap();
    for (path, content) in files {
        assert!(!path.contains('/'), "commit_on_branch takes top-level files only");
        let blob = git.blob(content.as_bytes()).unwrap();
        tree.insert(path, blob, 0o100644).unwrap();
    }
    let tree = git.find_tree(tree.write().unwrap()).unwrap();
    let sig = git2::Signature::now("Ada Author", "ada@example.com").unwrap();
    git.commit(Some(&format!("refs/heads/{branch}")), &sig, &sig, message, &tree, &[&head]).unwrap().to_string()
}

/// A free TCP port on the loopback (free at the time of asking).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A unique environment name, destroyed (with everything in it) when dropped.
pub struct Env {
    pub name: String,
    data_dir: PathBuf,
}

impl Env {
    pub fn new(world: &World, prefix: &str) -> Env {
        let suffix = ulid::Ulid::new().to_string().to_ascii_lowercase();
        Env { name: format!("{prefix}-{}", &suffix[suffix.len() - 6..]), data_dir: world.data_dir() }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = Command::new(env!("CARGO_BIN_EXE_gantry"))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["env", "destroy", &self.name])
            .output();
    }
}

/// GET http://127.0.0.1:port/path with a plain HTTP/1.0 request; (status, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http(port, "GET", path, &[], None)
}

/// A plain HTTP/1.0 request to 127.0.0.1:port with extra headers and a body; (status, body).
pub fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(30))).ok()?;
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        request.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    request.push_str("\r\n");
    s.write_all(request.as_bytes()).ok()?;
    if let Some(b) = body {
        s.write_all(b).ok()?;
    }
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

/// Containers of an environment, by role label value (running or not).
pub fn env_containers(env: &str, role: &str) -> Vec<String> {
    env_ps(env, role, true)
}

/// Running containers of an environment, by role label value.
pub fn env_running(env: &str, role: &str) -> Vec<String> {
    env_ps(env, role, false)
}

fn env_ps(env: &str, role: &str, all: bool) -> Vec<String> {
    let env_filter = format!("label=io.gantry.environment={env}");
    let role_filter = format!("label=io.gantry.role={role}");
    let mut args = vec!["ps", "-q", "--no-trunc", "--filter", &env_filter, "--filter", &role_filter];
    if all {
        args.push("-a");
    }
    let out = Command::new("docker").args(&args).output().unwrap();
    text(&out.stdout).lines().map(str::to_string).collect()
}

/// Fails the test with a clear message when a locally built image is missing.
pub fn require(image: &str) {
    let ok = Command::new("docker").args(["image", "inspect", image]).output().map(|o| o.status.success()).unwrap_or(false);
    assert!(ok, "the image {image} is missing: run scripts/setup");
}

/// The storefront demo's source (demo/storefront, without build output), as files for a
/// test repository whose pipeline builds it.
pub fn storefront_files() -> Vec<(String, String)> {
    fn collect(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if rel.ends_with("/target") {
                continue;
            }
            if path.is_dir() {
                collect(&path, root, out);
            } else {
                out.push((rel, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    collect(&root.join("demo/storefront"), root, &mut files);
    files
}

/// The X-Storefront-Version a storefront on 127.0.0.1:port answers with.
pub fn storefront_version(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(s, "GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.lines().find_map(|l| l.strip_prefix("X-Storefront-Version: ").map(str::to_string))
}

/// A repository holding a tiny site (busybox httpd serving `site/index.html`, "version 1")
/// and a pipeline that builds it, deploys it to a staging environment and promotes it to
/// a production environment (published on `port`) that asks for approval with `approval`
/// (YAML). Environments are unique and destroyed when dropped. Seconds per run.
pub struct GatedSite {
    pub w: World,
    pub staging: Env,
    pub prod: Env,
    pub port: u16,
    pub pipeline: PathBuf,
}

impl GatedSite {
    pub fn new(approval: &str) -> GatedSite {
        for image in ["gantry/router", "gantry/smoke"] {
            require(image);
        }
        let w = World::new(&[
            (
                "site/Dockerfile",
                "FROM gantry/busybox\nCOPY index.html /www/index.html\nCMD [\"busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n",
            ),
            ("site/index.html", "version 1\n"),
        ]);
        let (staging, prod) = (Env::new(&w, "stg"), Env::new(&w, "prd"));
        let port = free_port();
        let yaml = format!(
            r#"name: gated
environments:
  {prod}:
    approval: {approval}
stages:
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
    publish: {port}
    health: {{http: /index.html}}
    gate: {{stages: [staging]}}
"#,
            staging = staging.name,
            prod = prod.name
        );
        let pipeline = w.pipeline(&yaml);
        GatedSite { w, staging, prod, port, pipeline }
    }

    /// What production answers at /index.html.
    pub fn serving(&self) -> Option<String> {
        http_get(self.port, "/index.html").map(|(_, body)| body.trim().to_string())
    }

    /// Commits a new version of the page ("version N").
    pub fn new_version(&self, n: u32) {
        self.w.commit(&[("site/index.html", &format!("version {n}\n"))], &format!("version {n}"));
    }
}

/// A child process killed when dropped: a test that fails half-way leaves no gantry
/// running behind it (waiting for a lock for half an hour, holding the test's flock).
pub struct Reaped(pub std::process::Child);

impl std::ops::Deref for Reaped {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
