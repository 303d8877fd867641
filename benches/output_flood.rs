//! A stage printing 1 GiB while `gantry serve` answers its API: the coordinator's resident
//! memory and the API's latency during the flood, against a baseline measured the same way
//! in the same process while a quiet stage runs (`sleep`). The stored output is capped
//! (`logs.max_stage_output`, default 64 MiB) and in-flight output is bounded, so memory
//! should stay flat and the API should answer as before.
//!
//!     cargo bench --bench output_flood             # 1 GiB, default cap
//!     FLOOD_MIB=256 cargo bench --bench output_flood

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn sha256(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// A repository on `main` whose pipeline's one stage runs `command`.
fn repo(path: &Path, command: &str) {
    std::fs::create_dir_all(path).unwrap();
    let repo = git2::Repository::init_opts(path, git2::RepositoryInitOptions::new().initial_head("main")).unwrap();
    let yaml = format!("name: flood\nstages:\n  out:\n    image: gantry/busybox\n    commands: [{command:?}]\n");
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

/// (VmRSS, VmHWM) in KiB.
fn rss(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0);
    (field("VmRSS:"), field("VmHWM:"))
}

/// One HTTP/1.0 request; (status, body).
fn call(port: u16, method: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "{method} {path} HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

/// Triggers `project`, then reads the run every 20 ms until it ends: latency of each read,
/// the service's peak memory, how long the run took.
fn measure(port: u16, token: &str, project: &str, pid: u32) -> (Histogram<u64>, u64, Duration, String) {
    let (_, answer) = call(port, "POST", &format!("/api/projects/{project}/trigger"), token, "{\"force\": true}");
    let id = serde_json::from_str::<serde_json::Value>(&answer).unwrap()["run"].as_str().unwrap().to_string();
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let (started, mut peak) = (Instant::now(), 0);
    loop {
        let t = Instant::now();
        let (status, body) = call(port, "GET", &format!("/api/runs/{id}"), token, "");
        latency.record(t.elapsed().as_micros().max(1) as u64).unwrap();
        assert_eq!(status, 200, "{body}");
        peak = peak.max(rss(pid).0);
        let run: serde_json::Value = serde_json::from_str(&body).unwrap();
        if run["state"] == "succeeded" || run["state"] == "failed" {
            return (latency, peak, started.elapsed(), id);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn main() {
    let mib = env_or("FLOOD_MIB", 1024);
    let dir = tempfile::tempdir().unwrap();
    repo(&dir.path().join("quiet"), "sleep 10");
    repo(&dir.path().join("flood"), &format!("yes $(printf %099d 0) | head -c {}", mib << 20));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let token = "bench-token";
    let config = dir.path().join("gantry.yml");
    std::fs::write(
        &config,
        format!(
            "users:\n  bench: {{role: developer, token_sha256: {}}}\nserver:\n  listen: \"127.0.0.1:{port}\"\nprojects:\n  quiet: {{repo: {}}}\n  flood: {{repo: {}}}\n",
            sha256(token),
            dir.path().join("quiet").display(),
            dir.path().join("flood").display()
        ),
    )
    .unwrap();
    let service = Service(
        Command::new(env!("CARGO_BIN_EXE_gantry"))
            .arg("--config").arg(&config).arg("--data-dir").arg(dir.path().join("data")).arg("serve")
            .stdout(Stdio::null()).stderr(Stdio::null())
            .spawn().expect("gantry serve"),
    );
    let pid = service.0.id();
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "the service did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (quiet, quiet_peak, quiet_took, _) = measure(port, token, "quiet", pid);
    let (flood, flood_peak, flood_took, id) = measure(port, token, "flood", pid);
    let (_, hwm) = rss(pid);
    // The logs API is paged: follow `next` to the last page.
    let (mut kept, mut count, mut after) = (0usize, 0usize, String::new());
    loop {
        let (_, page) = call(port, "GET", &format!("/api/runs/{id}/logs?stage=out&limit=5000{after}"), token, "");
        let page: serde_json::Value = serde_json::from_str(&page).expect("a page of logs");
        let lines = page["lines"].as_array().expect("lines");
        count += lines.len();
        kept += lines.iter().map(|l| l["text"].as_str().unwrap_or("").len() + 1).sum::<usize>();
        match page["next"].as_u64() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!("GET /api/runs/{{id}} every 20 ms while a stage runs (service RSS sampled at each read)");
    println!("{:<34} {:>8} {:>9} {:>9} {:>9} {:>12}", "", "reads", "p50 ms", "p99 ms", "max ms", "peak RSS MiB");
    println!("{:<34} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>12.1}", "baseline: `sleep 10`", quiet.len(), ms(&quiet, 0.5), ms(&quiet, 0.99), quiet.max() as f64 / 1000.0, quiet_peak as f64 / 1024.0);
    println!("{:<34} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>12.1}", format!("flood: {mib} MiB of output"), flood.len(), ms(&flood, 0.5), ms(&flood, 0.99), flood.max() as f64 / 1000.0, flood_peak as f64 / 1024.0);
    println!(
        "ratio flood/baseline: p50 {:.2}x, p99 {:.2}x, peak RSS {:.2}x; service high-water mark {:.1} MiB",
        ms(&flood, 0.5) / ms(&quiet, 0.5),
        ms(&flood, 0.99) / ms(&quiet, 0.99),
        flood_peak as f64 / quiet_peak.max(1) as f64,
        hwm as f64 / 1024.0
    );
    println!(
        "the flood took {:.1}s ({:.0} MiB/s through the engine); stored {:.1} MiB of it in {} lines (quiet run: {:.1}s)",
        flood_took.as_secs_f64(),
        mib as f64 / flood_took.as_secs_f64(),
        kept as f64 / (1 << 20) as f64,
        count,
        quiet_took.as_secs_f64()
    );
    drop(service);
}
