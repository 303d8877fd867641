//! A running `gantry serve` for tests, and git repositories whose commits hold a pipeline.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{free_port, http};

/// Tokens of the test config's users, by role.
pub const VIEWER: &str = "viewer-token";
pub const DEV: &str = "dev-token";
pub const RM: &str = "rm-token";
pub const GITHUB_SECRET: &str = "gh-secret";
pub const GITLAB_SECRET: &str = "gl-secret";
pub const GITEA_SECRET: &str = "gt-secret";

pub fn sha256(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

pub fn hmac(secret: &str, body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// A git repository (non-bare, on `main`) whose commits hold a one-stage pipeline.
pub struct Repo {
    pub path: PathBuf,
}

impl Repo {
    pub fn new(dir: &Path, name: &str, commands: &[&str]) -> Repo {
        let path = dir.join(name);
        std::fs::create_dir_all(&path).unwrap();
        git2::Repository::init_opts(&path, git2::RepositoryInitOptions::new().initial_head("main")).unwrap();
        let repo = Repo { path };
        repo.commit(commands, "first");
        repo
    }

    /// Commits a pipeline running `commands`; returns the sha.
    pub fn commit(&self, commands: &[&str], message: &str) -> String {
        let cmds: Vec<String> = commands.iter().map(|c| format!("{c:?}")).collect();
        let yaml = format!("name: svc\nstages:\n  work:\n    image: gantry/busybox\n    commands: [{}]\n", cmds.join(", "));
        super::commit_files(&self.path, &[("gantry.yml", &yaml), ("message.txt", message)], message)
    }
}

/// A running `gantry serve` on a free port, stopped (SIGTERM) when dropped.
pub struct Service {
    child: Option<Child>,
    pub port: u16,
    pub config: PathBuf,
    pub data: PathBuf,
}

impl Service {
    /// Writes the config (users of every role, `projects` as given) and starts the service.
    pub fn start(dir: &Path, projects: &str, concurrency: &str) -> Service {
        Self::start_with(dir, "", projects, concurrency)
    }

    /// `start`, with more users (YAML lines under `users:`).
    pub fn start_with(dir: &Path, users: &str, projects: &str, concurrency: &str) -> Service {
        let port = free_port();
        let config = dir.join("gantry.yml");
        let text = format!(
            "users:\n  vic: {{role: viewer, token_sha256: {}}}\n  dev: {{role: developer, token_sha256: {}}}\n  rita: {{role: release-manager, token_sha256: {}}}\n{users}server:\n  listen: \"127.0.0.1:{port}\"\n  concurrency: {concurrency}\nprojects:\n{projects}",
            sha256(VIEWER),
            sha256(DEV),
            sha256(RM),
        );
        std::fs::write(&config, text).unwrap();
        let mut s = Service { child: None, port, config, data: dir.join("data") };
        s.spawn();
        s
    }

    pub fn spawn(&mut self) {
        // One log file per start, kept beside the data dir for a failing test to read.
        let n = std::fs::read_dir(self.data.parent().unwrap()).unwrap().count();
        let log = std::fs::File::create(self.data.parent().unwrap().join(format!("serve-{n}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_gantry"))
            .arg("--config")
            .arg(&self.config)
            .arg("--data-dir")
            .arg(&self.data)
            .arg("serve")
            .env("GH_SECRET", GITHUB_SECRET)
            .env("GL_SECRET", GITLAB_SECRET)
            .env("GT_SECRET", GITEA_SECRET)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("gantry serve starts");
        self.child = Some(child);
        let start = Instant::now();
        while http(self.port, "GET", "/healthz", &[], None).is_none() {
            assert!(start.elapsed() < Duration::from_secs(30), "the service did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, as an operator stops it; waits for the process to end and returns its
    /// status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
        child.wait().unwrap()
    }

    pub fn kill_9(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        let bytes = body.map(|b| b.to_string().into_bytes());
        let (status, text) = http(self.port, method, path, &headers, bytes.as_deref()).expect("the service answers");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub fn runs(&self) -> Vec<Value> {
        let (status, body) = self.call("GET", "/api/runs?limit=500", Some(VIEWER), None);
        assert_eq!(status, 200, "{body}");
        body["runs"].as_array().unwrap().clone()
    }

    pub fn run(&self, id: &str) -> Value {
        let (status, body) = self.call("GET", &format!("/api/runs/{id}"), Some(VIEWER), None);
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Waits until run `id` is in one of `states`; returns it.
    pub fn wait_for(&self, id: &str, states: &[&str]) -> Value {
        let start = Instant::now();
        loop {
            let run = self.run(id);
            if states.iter().any(|s| run["state"] == *s) {
                return run;
            }
            assert!(start.elapsed() < Duration::from_secs(120), "run {id} never reached {states:?}: {run}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every stored line of run `id` (of `stage`, if given), page after page of the logs API.
    pub fn logs(&self, id: &str, stage: Option<&str>) -> Vec<Value> {
        let mut lines = Vec::new();
        let mut after: Option<u64> = None;
        loop {
            let mut path = format!("/api/runs/{id}/logs?limit=5000");
            if let Some(s) = stage {
                path.push_str(&format!("&stage={s}"));
            }
            if let Some(a) = after {
                path.push_str(&format!("&after={a}"));
            }
            let (status, page) = self.call("GET", &path, Some(VIEWER), None);
            assert_eq!(status, 200, "{page}");
            lines.extend(page["lines"].as_array().expect("a page has lines").iter().cloned());
            match page["next"].as_u64() {
                Some(next) => after = Some(next),
                None => return lines,
            }
        }
    }

    pub fn trigger(&self, project: &str, body: Value) -> Value {
        let (status, answer) = self.call("POST", &format!("/api/projects/{project}/trigger"), Some(DEV), Some(body));
        assert_eq!(status, 202, "{answer}");
        answer
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM);
            let _ = child.wait();
        }
    }
}

