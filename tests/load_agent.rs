//! The load generator against a real HTTP server on loopback: request counts, status
//! counts, latency that includes a server stall (no coordinated omission), thresholds on
//! the resulting summaries, and the agent binary end to end.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use gantry::gate::threshold::{evaluate, Threshold};
use gantry::load::{run::run, LoadSpec, LoadSummary};

/// A tiny keep-alive HTTP/1.1 server, one thread per connection. `/status/500` answers
/// 500, anything else 200. It can add a fixed latency to every answer and stall: every
/// request handled inside the stall window waits until the window ends.
#[derive(Clone, Default)]
struct Behaviour {
    delay: Duration,
    stall: Option<(Instant, Instant)>,
}

struct Server {
    addr: SocketAddr,
    behaviour: Arc<Mutex<Behaviour>>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let behaviour = Arc::new(Mutex::new(Behaviour::default()));
        let b = behaviour.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let b = b.clone();
                thread::spawn(move || {
                    let _ = serve(stream, b);
                });
            }
        });
        Server { addr, behaviour }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set_delay(&self, delay: Duration) {
        self.behaviour.lock().unwrap().delay = delay;
    }

    fn stall(&self, from: Instant, length: Duration) {
        self.behaviour.lock().unwrap().stall = Some((from, from + length));
    }
}

fn serve(stream: TcpStream, behaviour: Arc<Mutex<Behaviour>>) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut content_length = 0usize;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header)?;
            if header == "\r\n" || header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    content_length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; content_length];
        reader.read_exact(&mut body)?;
        let b = behaviour.lock().unwrap().clone();
        if let Some((from, until)) = b.stall {
            let now = Instant::now();
            if now >= from && now < until {
                thread::sleep(until - now);
            }
        }
        thread::sleep(b.delay);
        let (status, text) = if path == "/status/500" { (500, "boom") } else { (200, "hello") };
        write!(writer, "HTTP/1.1 {status} X\r\ncontent-length: {}\r\n\r\n{text}", text.len())?;
        writer.flush()?;
    }
}

fn spec(json: serde_json::Value) -> LoadSpec {
    LoadSpec::from_json(&json.to_string()).unwrap()
}

fn check(summary: &LoadSummary, metric: &str, expr: &str) -> bool {
    let t = Threshold::parse(metric, expr).unwrap();
    let r = evaluate(summary, &[t]).remove(0);
    println!("{r}");
    r.passed
}

/// (a) 100/s for 2 s with a 3:1 mix of 200s and 500s, 20 ms of server latency.
async fn constant_rate_run() -> LoadSummary {
    let server = Server::start();
    server.set_delay(Duration::from_millis(20));
    let summary = run(spec(serde_json::json!({
        "base_url": server.url(),
        "requests": [{"path": "/ok", "weight": 3}, {"method": "POST", "path": "/status/500", "body": {"a": 1}, "weight": 1}],
        "mode": "constant-arrival-rate", "rate": 100.0, "duration_ms": 2000, "connections": 10, "timeout_ms": 2000
    })))
    .await
    .unwrap();
    print!("{}", summary.table());
    summary
}

/// (b) 200/s for 3 s; the server stalls for 1 s from t=1 s.
async fn stalled_run() -> LoadSummary {
    let server = Server::start();
    server.stall(Instant::now() + Duration::from_secs(1), Duration::from_secs(1));
    let summary = run(spec(serde_json::json!({
        "base_url": server.url(), "requests": [{"path": "/"}],
        "rate": 200.0, "duration_ms": 3000, "connections": 10, "timeout_ms": 5000
    })))
    .await
    .unwrap();
    print!("{}", summary.table());
    summary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constant_rate_sends_the_scheduled_requests() {
    let s = constant_rate_run().await;
    assert!(s.complete);
    assert!((198..=202).contains(&s.requests), "requests {}", s.requests);
    let (ok, err) = (s.status_counts.get("200").copied().unwrap_or(0), s.status_counts.get("500").copied().unwrap_or(0));
    assert!((148..=152).contains(&ok) && (48..=52).contains(&err), "{:?}", s.status_counts);
    assert!(!s.status_counts.contains_key("error"), "{:?}", s.status_counts);
    assert_eq!(s.failed, err);
    assert!((1900..3000).contains(&s.elapsed_ms), "elapsed {}", s.elapsed_ms);
    assert!(s.latency_ms.med >= 20.0, "the server's 20 ms are in the latency: {:?}", s.latency_ms);
    assert!(s.bytes_received > 0 && s.bytes_sent > 0);
    assert_eq!(s.decode_histogram().unwrap().len(), s.requests);

    // (c) thresholds on this run.
    assert!(check(&s, "http_reqs", "count>=195"));
    assert!(!check(&s, "http_reqs", "count>=1000"));
    assert!(check(&s, "http_reqs", "rate>80"));
    assert!(!check(&s, "http_req_failed", "rate<0.01"), "a quarter failed");
    assert!(check(&s, "http_req_failed", "rate<0.3"));
    assert!(check(&s, "http_req_duration", "p(95)<1s"));
    assert!(!check(&s, "http_req_duration", "min<10ms"), "every answer took at least 20 ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stall_shows_in_the_tail() {
    let s = stalled_run().await;
    assert!(s.complete);
    assert!((598..=602).contains(&s.requests), "requests {}", s.requests);
    assert_eq!(s.failed, 0, "{:?}", s.status_counts);
    // ~200 requests were due during the 1 s stall; measured from when they were due, the
    // earliest of them waited ~1 s. A sender that measured from its actual send (after a
    // free connection appeared) would report at most the 10 stuck in flight as slow.
    assert!(s.latency_ms.p99 >= 800.0, "p99 {:?}", s.latency_ms);
    assert!(s.latency_ms.max >= 900.0, "max {:?}", s.latency_ms);
    assert!(s.latency_ms.med < 100.0, "outside the stall the server is fast: {:?}", s.latency_ms);

    // (c) thresholds on this run: the percentile comes from the decoded histogram.
    assert!(!check(&s, "http_req_duration", "p(99)<500ms"));
    assert!(check(&s, "http_req_duration", "p(99)>=800ms"));
    assert!(check(&s, "http_req_duration", "p(50)<100"));
    assert!(check(&s, "http_req_failed", "rate==0"));
}

#[test]
fn the_agent_binary_writes_snapshots_and_a_final_summary() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("spec.json");
    std::fs::write(
        &spec_path,
        serde_json::json!({"base_url": server.url(), "requests": [{"path": "/"}], "rate": 50.0, "duration_ms": 1500, "connections": 5})
            .to_string(),
    )
    .unwrap();
    // The directory does not exist yet: the agent creates it.
    let out = dir.path().join("gantry/out/summary.json");
    let output = Command::new(env!("CARGO_BIN_EXE_gantry-load")).arg("--spec").arg(&spec_path).arg("--out").arg(&out).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.lines().any(|l| l.starts_with("t=1s sent=") && l.contains(" p95=") && l.contains("/s ")), "{stdout}");
    let s = LoadSummary::from_json(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert!(s.complete);
    assert_eq!(s.requests, 75);
    assert!(!dir.path().join("gantry/out/.summary.json.tmp").exists());

    // A bad spec is the only thing that makes the agent fail.
    std::fs::write(&spec_path, r#"{"base_url":"http://x","requests":[]}"#).unwrap();
    let bad = Command::new(env!("CARGO_BIN_EXE_gantry-load")).arg("--spec").arg(&spec_path).arg("--out").arg(&out).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("at least one request"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_target_is_counted_not_fatal() {
    // A port nobody listens on: every request is a connection error, the run still ends.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let s = run(spec(serde_json::json!({
        "base_url": format!("http://127.0.0.1:{port}"), "requests": [{"path": "/"}],
        "rate": 50.0, "duration_ms": 500, "connections": 5, "timeout_ms": 1000
    })))
    .await
    .unwrap();
    assert_eq!(s.requests, 25);
    assert_eq!(s.status_counts.get("error"), Some(&25));
    assert_eq!(s.failed_rate, 1.0);
}
