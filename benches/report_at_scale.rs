//! Reports and listings on a large history: seeds a store with 100,000 finished runs and
//! 1,000,000 events (a year of a busy team: one production deployment in five runs),
//! written through the store's own API, then times the `gantry` binary as users run it:
//! `gantry report --since 365d` and `gantry runs` (the first page), against a named
//! baseline measured the same way in this process: `gantry runs --limit 1` on an empty
//! store (process start, store open, nothing to read). Goals (issue 6): report < 1 s,
//! first page < 50 ms. Median of 5.
//!
//!     cargo bench --bench report_at_scale            # RUNS=100000 EVENTS_PER_RUN=10

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use gantry::commit::CommitInfo;
use gantry::events::{AttemptOutcome, Deployment, DeploymentOutcome, Event, EventKind, RunState, StageResult};
use gantry::store::{RunRecord, Store};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A small deterministic generator, so every run of the bench seeds the same history.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn event(at: DateTime<Utc>, kind: EventKind) -> Event {
    Event { at, kind }
}

/// One finished run with `events` events; every fifth deploys to production.
fn run(i: u64, start: DateTime<Utc>, events: u64, rng: &mut Lcg, plan: &gantry::pipeline::Plan) -> (RunRecord, Vec<Event>) {
    let sha = format!("{:040x}", i.wrapping_mul(0x9e3779b97f4a7c15));
    let commit_time = (start - chrono::Duration::minutes((rng.next() % 600) as i64)).fixed_offset();
    let commit = CommitInfo {
        sha: sha.clone(),
        short: sha[..8].to_string(),
        author_name: "Bench".into(),
        author_email: "bench@example.com".into(),
        time: commit_time,
        summary: if rng.next().is_multiple_of(20) { "fix: a bug".into() } else { "a change".into() },
        branch: Some("main".into()),
    };
    let id = format!("{:026}", i);
    let mut record = RunRecord::new(id.clone(), plan, "/nonexistent/bench-repo".into(), commit);
    record.created_at = start;
    let mut out = vec![event(start, EventKind::RunCreated { pipeline: plan.name.clone(), commit: sha.clone() })];
    let mut t = start;
    let stages = ["test", "image", "release"];
    let deploys = i.is_multiple_of(5);
    // Stage events until the budget leaves room for the result, sweep and end.
    let mut s = 0;
    while (out.len() as u64) + 3 < events {
        let stage = stages[s % stages.len()].to_string();
        t += chrono::Duration::seconds(5);
        out.push(event(t, EventKind::StageStarted { stage: stage.clone(), attempt: 1 }));
        t += chrono::Duration::seconds(20);
        out.push(event(t, EventKind::AttemptFinished { stage, attempt: 1, result: AttemptOutcome::Succeeded, will_retry: false }));
        s += 1;
    }
    if deploys {
        let failed = rng.next().is_multiple_of(12);
        let outcome = if failed {
            DeploymentOutcome::FailedVerification {
                reason: "error ratio 0.2 > 0.05".into(),
                restored_at: Some(t + chrono::Duration::minutes(3)),
                restored_to: Some("storefront:previous".into()),
            }
        } else {
            DeploymentOutcome::Succeeded
        };
        let d = Deployment {
            environment: "production".into(),
            app: "storefront".into(),
            image: format!("storefront:{}", &sha[..8]),
            image_id: format!("sha256:{sha}"),
            commit: sha.clone(),
            commit_time,
            author: "Bench".into(),
            run_id: id,
            pipeline: plan.name.clone(),
            started_at: t - chrono::Duration::seconds(10),
            finished_at: t,
            outcome,
            url: None,
            replaced: Vec::new(),
        };
        out.push(event(t, EventKind::StageResult { stage: "release".into(), result: StageResult::Deployment(d) }));
    } else {
        out.push(event(t, EventKind::StageSkipped { stage: "release".into(), reason: "not this time".into() }));
    }
    out.push(event(t, EventKind::Swept { containers: 3, networks: 1, volumes: 1 }));
    out.push(event(t, EventKind::RunFinished { state: RunState::Succeeded, message: None }));
    (record, out)
}

fn seed(dir: &Path, runs: u64, events: u64) -> u64 {
    let plan = gantry::pipeline::parse(
        "bench.yml",
        "name: storefront\nstages:\n  test: {image: x, commands: [\"true\"]}\n  image: {image: x, commands: [\"true\"]}\n  release: {image: x, commands: [\"true\"]}\n",
    )
    .expect("bench pipeline");
    let store = Store::open(dir).expect("store");
    let mut rng = Lcg(42);
    let year = chrono::Duration::days(365);
    let begin = Utc::now() - year;
    let step = year.num_seconds() as u64 / runs;
    let mut written = 0;
    let mut batch = Vec::new();
    for i in 0..runs {
        let start = begin + chrono::Duration::seconds((i * step) as i64);
        let (record, evs) = run(i, start, events, &mut rng, &plan);
        written += evs.len() as u64;
        batch.push((record, evs));
        if batch.len() == 5_000 {
            store.import(&batch).expect("import");
            batch.clear();
        }
    }
    store.import(&batch).expect("import");
    written
}

/// Median wall time of `gantry ARGS` over 5 runs (output discarded, success required).
fn time(data: &Path, args: &[&str]) -> Duration {
    let mut times: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let out = Command::new(env!("CARGO_BIN_EXE_gantry")).arg("--data-dir").arg(data).args(args).output().expect("gantry");
            let took = t.elapsed();
            assert!(out.status.success(), "gantry {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            took
        })
        .collect();
    times.sort();
    times[2]
}

fn main() {
    let runs = env_or("RUNS", 100_000);
    let events = env_or("EVENTS_PER_RUN", 10);
    let dir = tempfile::tempdir().unwrap();
    // BENCH_DIR keeps the seeded store for a later look (seeded once).
    let kept = std::env::var_os("BENCH_DIR").map(std::path::PathBuf::from);
    let root = kept.clone().unwrap_or_else(|| dir.path().to_path_buf());
    let (full, empty) = (root.join("full"), root.join("empty"));
    if !full.exists() {
        let t = Instant::now();
        let written = seed(&full, runs, events);
        println!("seeded {runs} runs and {written} events through Store::import in {:.1}s", t.elapsed().as_secs_f64());
    }
    Store::open(&empty).expect("empty store");

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let baseline = time(&empty, &["runs", "--limit", "1"]);
    println!("{:<44} {:>9.1} ms  (baseline: process start and store open)", "gantry runs --limit 1 (empty store)", ms(baseline));
    for (label, args, goal) in [
        ("gantry runs (first page, 20)", vec!["runs"], 50.0),
        ("gantry runs --json (first page)", vec!["runs", "--json"], 50.0),
        ("gantry report --since 365d", vec!["report", "--since", "365d"], 1000.0),
        ("gantry report --since 365d --json", vec!["report", "--since", "365d", "--json"], 1000.0),
        ("gantry report --since 90d", vec!["report", "--since", "90d"], 1000.0),
    ] {
        let took = time(&full, &args);
        println!(
            "{label:<44} {:>9.1} ms  {:>5.2}x baseline  goal < {goal:.0} ms: {}",
            ms(took),
            ms(took) / ms(baseline),
            if ms(took) < goal { "met" } else { "NOT met" }
        );
    }
    service_first_page(&full, &root);
}

/// The same first page from `gantry serve`, which keeps the store open: median of 21
/// `GET /api/runs?limit=20` (and of `/api/reports?since=365d`) on the seeded store.
fn service_first_page(data: &Path, root: &Path) {
    use std::io::{Read, Write};
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b"bench"))
    };
    let config = root.join("serve.yml");
    std::fs::write(&config, format!("users:\n  b: {{role: viewer, token_sha256: {hash}}}\nserver: {{listen: \"127.0.0.1:{port}\"}}\n"))
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(data)
        .arg("serve")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("gantry serve");
    let get = |path: &str| -> Option<Duration> {
        let t = Instant::now();
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nAuthorization: Bearer bench\r\n\r\n").ok()?;
        let mut body = Vec::new();
        s.read_to_end(&mut body).ok()?;
        body.starts_with(b"HTTP/1.0 200").then(|| t.elapsed())
    };
    let start = Instant::now();
    while get("/healthz").is_none() {
        assert!(start.elapsed() < Duration::from_secs(60), "the service did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    for (label, path) in
        [("GET /api/runs?limit=20 (service)", "/api/runs?limit=20"), ("GET /api/reports?since=365d (service)", "/api/reports?since=365d")]
    {
        let mut times: Vec<Duration> = (0..21).filter_map(|_| get(path)).collect();
        times.sort();
        let median = times[times.len() / 2].as_secs_f64() * 1000.0;
        println!("{label:<44} {median:>9.1} ms  median of {}", times.len());
    }
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
}
