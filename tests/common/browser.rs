//! A headless Chromium for tests: Debian's chromium driven over WebDriver (chromedriver +
//! fantoccini), and the few ways the dashboard's tests look at a page.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
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
        self.browser_with(&[]).await
    }

    /// A new headless browser session with more command-line switches for chromium.
    pub async fn browser_with(&self, extra: &[&str]) -> Client {
        let mut args = vec!["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"];
        args.extend_from_slice(extra);
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


/// How long the browser waits for a page to show what a step expects.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// The visible text of the first element matching `css`, if there is one.
pub async fn text_of(b: &Client, css: &str) -> Option<String> {
    b.find(Locator::Css(css)).await.ok()?.text().await.ok()
}

/// Waits until the element matching `css` shows `want` (reloading the page between looks
/// when `reload`); fails with the page's source when it never does.
pub async fn wait_for_text(b: &Client, css: &str, want: &str, reload: bool) {
    let start = Instant::now();
    loop {
        let seen = text_of(b, css).await;
        if seen.as_deref().is_some_and(|t| t.contains(want)) {
            return;
        }
        if start.elapsed() > PATIENCE {
            let page = b.source().await.unwrap_or_default();
            panic!("`{css}` never showed `{want}` (last seen: {seen:?}) on {:?}:\n{page}", b.current_url().await.ok());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        if network_changed(b).await {
            // Chrome drops a request in flight when an interface comes or goes, and other
            // tests create and remove Docker networks all the time: load the page again.
            if let Ok(url) = b.current_url().await {
                let _ = b.goto(url.as_str()).await;
            }
        } else if reload {
            let _ = b.refresh().await;
        }
    }
}

/// The path of the page the browser shows.
/// Whether the browser shows its own error page for a request it dropped because the
/// machine's network interfaces changed (ERR_NETWORK_CHANGED), not anything Gantry said.
async fn network_changed(b: &Client) -> bool {
    b.source().await.is_ok_and(|page| page.contains("ERR_NETWORK_CHANGED"))
}

pub async fn path_of(b: &Client) -> String {
    b.current_url().await.expect("the browser has a URL").path().to_string()
}

/// Opens the dashboard at `base`, lands on the sign-in page, and signs in with `token`.
pub async fn sign_in(b: &Client, base: &str, token: &str) {
    b.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(path_of(b).await, "/login", "a visitor without a session is sent to sign in");
    b.find(Locator::Id("token")).await.unwrap().send_keys(token).await.unwrap();
    b.find(Locator::Id("sign-in")).await.unwrap().click().await.unwrap();
    wait_for_text(b, "h1", "Runs", false).await;
    assert_eq!(path_of(b).await, "/");
}

/// Runs the browser's part of a test in a task of its own, so that a failed assertion
/// still closes the browser and the driver; then fails the test as that part did.
pub fn drive<F, Fut>(driver: Chromedriver, extra: &[&str], part: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let rt = tokio::runtime::Runtime::new().unwrap();
    let outcome = rt.block_on(async {
        let browser = driver.browser_with(extra).await;
        let outcome = tokio::spawn(part(browser.clone())).await;
        let _ = browser.close().await;
        outcome
    });
    drop(driver);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
