//! The service under read load while it drives pipelines: 200 concurrent API clients list
//! runs and read run details for a while as 10 pipelines run (real containers on the
//! local engine). Prints p50/p99/max latency and errors per route, against a named
//! baseline measured the same way in the same process (`GET /healthz`, which touches
//! neither the store nor the engine), and the service's resident memory (peak and at the
//! end). Goals (issue 5): 0 errors, p99 < 50 ms on this 2-core machine, RSS < 100 MiB.
//!
//! Two phases: saturation (each client sends its next request as soon as the last is
//! answered: the most the machine serves, load generator included) and 200 clients at a
//! dashboard's pace (one request every PACE_MS each, default 100 ms: 2,000 req/s in all).
//!
//!     cargo bench --bench api_under_load            # 200 clients, 10 pipelines, 15 s a phase
//!     CLIENTS=50 SECONDS=5 PACE_MS=50 cargo bench --bench api_under_load

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn sha256(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// A repository whose pipeline keeps a container busy for `seconds` and prints a line a second.
fn repo(dir: &Path, seconds: u64) {
    let path = dir.join("repo");
    std::fs::create_dir_all(&path).unwrap();
    let repo = git2::Repository::init_opts(&path, git2::RepositoryInitOptions::new().initial_head("main")).unwrap();
    let yaml = format!(
        "name: busy\nstages:\n  work:\n    image: gantry/busybox\n    commands: [\"for i in $(seq {seconds}); do echo tick $i; sleep 1; done\"]\n"
    );
    std::fs::write(path.join("gantry.yml"), yaml).unwrap();
    let mut index = repo.index().unwrap();
    index.add_all(["*"], git2::IndexAddOption::DEFAULT, None).unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("Bench", "bench@example.com").unwrap();
    repo.commit(Some("HEAD"), &sig, &sig, "bench", &tree, &[]).unwrap();
}

struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
    }
}

/// (VmRSS, VmHWM) of a process, in KiB.
fn rss(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn get(client: &reqwest::Client, url: &str, token: &str) -> Result<(), String> {
    let response = client.get(url).bearer_auth(token).send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    response.bytes().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("status {status}"))
    }
}

struct Route {
    name: &'static str,
    hist: Mutex<Histogram<u64>>,
    errors: AtomicU64,
}

impl Route {
    fn new(name: &'static str) -> Arc<Route> {
        Arc::new(Route { name, hist: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3).unwrap()), errors: AtomicU64::new(0) })
    }

    fn print(&self, baseline_p99: Option<f64>) {
        let h = self.hist.lock().unwrap();
        let ms = |us: u64| us as f64 / 1000.0;
        let p99 = ms(h.value_at_quantile(0.99));
        let ratio = baseline_p99.map(|b| format!("  p99 {:.2}x healthz", p99 / b)).unwrap_or_default();
        println!(
            "{:<28} {:>7} requests  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>8.2} ms  errors {}{ratio}",
            self.name,
            h.len(),
            ms(h.value_at_quantile(0.5)),
            p99,
            ms(h.max()),
            self.errors.load(Ordering::Relaxed)
        );
    }
}

/// One measurement: `clients` tasks for `seconds`, each waiting `pace` between requests
/// (None: none), over the three routes in turn; prints figures and the goals.
#[allow(clippy::too_many_arguments)]
async fn phase(client: &reqwest::Client, base: &str, token: &'static str, ids: &[String], clients: usize, seconds: u64, pace: Option<Duration>, pid: u32) {
    let routes = [Route::new("GET /healthz (baseline)"), Route::new("GET /api/runs?limit=20"), Route::new("GET /api/runs/{id}")];
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..clients {
        let (client, base, stop, ids) = (client.clone(), base.to_string(), stop.clone(), ids.to_vec());
        let routes: Vec<Arc<Route>> = routes.to_vec();
        tasks.push(tokio::spawn(async move {
            let mut n = i;
            while !stop.load(Ordering::Relaxed) {
                let (route, url) = match n % 3 {
                    0 => (&routes[0], format!("{base}/healthz")),
                    1 => (&routes[1], format!("{base}/api/runs?limit=20")),
                    _ => (&routes[2], format!("{base}/api/runs/{}", ids[n % ids.len()])),
                };
                let t = Instant::now();
                match get(&client, &url, token).await {
                    Ok(()) => {
                        let _ = route.hist.lock().unwrap().record(t.elapsed().as_micros() as u64);
                    }
                    Err(e) => {
                        if route.errors.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("first error on {}: {e}", route.name);
                        }
                    }
                }
                n += 1;
                if let Some(p) = pace {
                    tokio::time::sleep(p.saturating_sub(t.elapsed())).await;
                }
            }
        }));
    }
    let mut peak_during = 0;
    let until = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(250)).await;
        peak_during = peak_during.max(rss(pid).0);
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let baseline = routes[0].hist.lock().unwrap().value_at_quantile(0.99) as f64 / 1000.0;
    routes[0].print(None);
    for r in &routes[1..] {
        r.print(Some(baseline));
    }
    let (now, hwm) = rss(pid);
    println!(
        "service RSS: {:.1} MiB at the end, {:.1} MiB peak sampled under load, {:.1} MiB high-water mark (goal < 100 MiB)",
        now as f64 / 1024.0,
        peak_during as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    let errors: u64 = routes.iter().map(|r| r.errors.load(Ordering::Relaxed)).sum();
    let worst = routes[1..].iter().map(|r| r.hist.lock().unwrap().value_at_quantile(0.99)).max().unwrap_or(0) as f64 / 1000.0;
    println!(
        "goals: errors {errors} (goal 0): {}; worst API p99 {worst:.2} ms (goal < 50 ms): {}; RSS {}",
        if errors == 0 { "met" } else { "NOT met" },
        if worst < 50.0 { "met" } else { "NOT met" },
        if hwm < 100 * 1024 { "met" } else { "NOT met" }
    );
}

fn main() {
    let clients = env_or("CLIENTS", 200) as usize;
    let seconds = env_or("SECONDS", 15);
    let pipelines = env_or("PIPELINES", 10);
    let pace_ms = env_or("PACE_MS", 100);
    let dir = tempfile::tempdir().unwrap();
    repo(dir.path(), seconds + 20);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let token = "bench-token";
    let config = dir.path().join("gantry.yml");
    std::fs::write(
        &config,
        format!(
            "users:\n  bench: {{role: developer, token_sha256: {}}}\nserver:\n  listen: \"127.0.0.1:{port}\"\n  concurrency: {{global: {pipelines}, per_project: {pipelines}}}\nprojects:\n  busy: {{repo: {}, pipeline: gantry.yml}}\n",
            sha256(token),
            dir.path().join("repo").display()
        ),
    )
    .unwrap();
    let service = Service(
        Command::new(env!("CARGO_BIN_EXE_gantry"))
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gantry serve"),
    );
    let pid = service.0.id();
    let base = format!("http://127.0.0.1:{port}");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::builder().pool_max_idle_per_host(clients).build().unwrap();
        let started = Instant::now();
        while get(&client, &format!("{base}/healthz"), token).await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "the service did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The pipelines: all running before the clients start.
        let mut ids = Vec::new();
        for _ in 0..pipelines {
            let answer: serde_json::Value = client
                .post(format!("{base}/api/projects/busy/trigger"))
                .bearer_auth(token)
                .json(&serde_json::json!({"force": true}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            ids.push(answer["run"].as_str().expect("a queued run").to_string());
        }
        loop {
            let page: serde_json::Value = client.get(format!("{base}/api/runs?state=running")).bearer_auth(token).send().await.unwrap().json().await.unwrap();
            if page["runs"].as_array().map(Vec::len) == Some(pipelines as usize) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(120), "the pipelines did not all start");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        println!("{pipelines} pipelines running; {clients} clients for {seconds}s against {base}");

        for pace in [None, Some(Duration::from_millis(pace_ms))] {
            match pace {
                None => println!("\nphase 1: {clients} clients, each sending its next request as soon as the last is answered (saturation)"),
                Some(p) => println!("\nphase 2: {clients} clients, each sending a request every {} ms ({} req/s in all)", p.as_millis(), clients as u128 * 1000 / p.as_millis().max(1)),
            }
            phase(&client, &base, token, &ids, clients, seconds, pace, pid).await;
        }
        // The pipelines are cancelled with the service (SIGTERM) when this returns.
    });
    drop(service);
}
