//! A headless Chromium for tests: Debian's chromium driven over WebDriver (chromedriver +
//! fantoccini).
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::json;

use super::free_port;

const CHROMIUM: &str = "/usr/bin/chromium";

/// A chromedriver on a free port, in a process group of its own: dropping it ends the
/// driver and any browser it left behind.
pub struct Chromedriver {
    child: Child,
    port: u16,
}

impl Chromedriver {
    pub fn start(log: &Path) -> Chromedriver {
        let found = |bin: &str| Command::new("sh").args(["-c", &format!("command -v {bin}")]).output().is_ok_and(|o| o.status.success());
        assert!(
            Path::new(CHROMIUM).exists() && found("chromedriver"),
            "chromium or chromedriver is missing: run scripts/setup (it installs Debian's chromium and chromium-driver)"
        );
        let port = free_port();
        let log = std::fs::File::create(log).unwrap();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let driver = Chromedriver { child, port };
        let start = Instant::now();
        // (Its /status answers HTTP/1.1 and keeps the connection open: a connect will do.)
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(30), "chromedriver did not start listening on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }

    /// A new headless browser session.
    pub async fn browser(&self) -> Client {
        let args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"];
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), json!({"binary": CHROMIUM, "args": args}));
        ClientBuilder::native()
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("chromedriver opens a chromium session")
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        use nix::sys::signal::{killpg, Signal};
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = killpg(group, Signal::SIGTERM);
        let start = Instant::now();
        while self.child.try_wait().ok().flatten().is_none() && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

