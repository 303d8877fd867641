//! APM providers against real processes: the storefront demo built and run natively on
//! loopback ports, and a real Prometheus server (Debian's package) scraping it every second.
//!
//! Every process is owned by a guard that kills it on drop, so a failing assertion does not
//! leave servers behind. Prometheus must be installed: `scripts/prometheus install`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::stream::{self, StreamExt};
use gantry::gate::apm::run::{begin_scrape, finish_scrape};
use gantry::gate::apm::{self, ApmConfig, ApmError, QueryResult, Selector, Window};

// ---------- processes ----------

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Builds the storefront once per test binary (natively, release, its own target dir).
fn storefront_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = repo().join("demo/storefront");
        let out = Command::new(env!("CARGO"))
            .args(["build", "--release", "--quiet", "--manifest-path"])
            .arg(dir.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(dir.join("target"))
            .output()
            .expect("run cargo to build the storefront");
        assert!(
            out.status.success(),
            "building the storefront failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir.join("target/release/storefront")
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed (and reaped) when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct App {
    port: u16,
    _proc: Guard,
}

impl App {
    async fn start(env: &[(&str, &str)]) -> App {
        let port = free_port();
        let child = Command::new(storefront_bin())
            .env("STOREFRONT_PORT", port.to_string())
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the storefront");
        let app = App {
            port,
            _proc: Guard(child),
        };
        wait_http_ok(&format!("{}/healthz", app.base()), "storefront").await;
        app
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn metrics(&self) -> String {
        format!("{}/metrics", self.base())
    }
}

struct Prometheus {
    port: u16,
    _proc: Guard,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts a private Prometheus on loopback scraping `targets` (job name, port) every
    /// second, with the same flags as `scripts/prometheus start`.
    async fn start(targets: &[(&str, u16)]) -> Prometheus {
        match Command::new("prometheus").arg("--version").output() {
            Ok(o) if o.status.success() => {}
            _ => panic!(
                "the `prometheus` binary is not installed or does not run: \
                 install it with `scripts/prometheus install` (Debian package `prometheus`)"
            ),
        }
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n",
        );
        for (job, port) in targets {
            cfg.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
            ));
        }
        let cfg_path = dir.path().join("prometheus.yml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", cfg_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let p = Prometheus {
            port,
            _proc: Guard(child),
            _dir: dir,
        };
        wait_http_ok(&format!("{}/-/ready", p.url()), "prometheus").await;
        p
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Polls an instant query until `ok` holds on its single value (or the deadline).
    async fn wait_value(&self, expr: &str, ok: impl Fn(f64) -> bool, what: &str) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let last = apm::query(&self.url(), expr, None).await;
            if let Ok(r) = &last {
                if let Ok(v) = r.single_value(expr) {
                    if ok(v) {
                        return v;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last answer to {expr}: {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

async fn wait_http_ok(url: &str, what: &str) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(url).send().await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not answer {url} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends `n` GETs to `path` with `concurrency` in flight; returns the status codes.
async fn drive(app: &App, path: &str, n: usize, concurrency: usize) -> Vec<u16> {
    let client = reqwest::Client::new();
    let url = format!("{}{path}", app.base());
    stream::iter(0..n)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                client
                    .get(&url)
                    .send()
                    .await
                    .expect("request to the storefront")
                    .status()
                    .as_u16()
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

const HIST: &str = "storefront_http_request_duration_seconds";

// ---------- (a) scrape windows ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scrape_window_measures_rate_error_ratio_and_p95() {
    let slow = App::start(&[("STOREFRONT_LATENCY_MS", "100")]).await;
    let before = apm::scrape(&slow.metrics()).await.unwrap();
    let codes = drive(&slow, "/api/products", 40, 8).await;
    let after = apm::scrape(&slow.metrics()).await.unwrap();
    assert!(codes.iter().all(|c| *c == 200));
    let w = Window::new(&before, &after);
    let products = sel(r#"storefront_http_requests_total{route="/api/products"}"#);
    assert_eq!(w.count(&products).unwrap(), 40.0);
    let rate = w.rate(&products).unwrap();
    let expected = 40.0 / w.seconds();
    assert!((rate - expected).abs() < 1e-9, "rate {rate} vs {expected}");
    // 40 requests of >= 100 ms, 8 at a time: at least 0.5 s, so at most 80/s.
    assert!(
        rate > 5.0 && rate <= 80.0,
        "rate {rate}/s over {:.2}s",
        w.seconds()
    );
    let p95 = w
        .quantile(0.95, &sel(&format!(r#"{HIST}{{route="/api/products"}}"#)))
        .unwrap();
    assert!((0.1..=0.25).contains(&p95), "p95 {p95}");
    // No 5xx yet: the 5xx series does not exist, and that is a real zero.
    let err = w
        .ratio(
            &sel(r#"storefront_http_requests_total{code=~"5.."}"#),
            &sel("storefront_http_requests_total"),
        )
        .unwrap();
    assert_eq!(err, 0.0);
    eprintln!(
        "slow app: {:.2}s window, rate {rate:.1}/s, p95 {p95:.4}s",
        w.seconds()
    );

    let flaky = App::start(&[("STOREFRONT_ERROR_RATE", "0.5")]).await;
    let before = apm::scrape(&flaky.metrics()).await.unwrap();
    let codes = drive(&flaky, "/api/products", 200, 8).await;
    let after = apm::scrape(&flaky.metrics()).await.unwrap();
    let w = Window::new(&before, &after);
    let served_5xx = codes.iter().filter(|c| (500..600).contains(*c)).count() as f64;
    let ratio = w
        .ratio(
            &sel(r#"storefront_http_requests_total{code=~"5.."}"#),
            &sel("storefront_http_requests_total"),
        )
        .unwrap();
    assert_eq!(
        ratio,
        served_5xx / 200.0,
        "the ratio counts exactly the 5xx the client saw"
    );
    assert!(
        (0.3..=0.7).contains(&ratio),
        "error ratio {ratio} with STOREFRONT_ERROR_RATE=0.5"
    );
    let errors = w
        .count(&sel(
            r#"storefront_http_errors_total{route="/api/products"}"#,
        ))
        .unwrap();
    assert_eq!(errors, served_5xx);
    eprintln!("flaky app: error ratio {ratio:.3} ({served_5xx} of 200)");
}

// ---------- (b) a real Prometheus ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prometheus_instant_and_range_queries_and_a_baseline_by_selector() {
    let slow = App::start(&[("STOREFRONT_LATENCY_MS", "100")]).await;
    let fast = App::start(&[]).await;
    let prom = Prometheus::start(&[("candidate", slow.port), ("production", fast.port)]).await;

    // Series are created on their first request; let Prometheus see them at their first
    // value, so the traffic after is an increase inside rate()'s range.
    drive(&slow, "/api/products", 1, 1).await;
    drive(&fast, "/api/products", 1, 1).await;
    let count_of = |job: &str| {
        format!(r#"sum(storefront_http_requests_total{{job="{job}",route="/api/products"}})"#)
    };
    prom.wait_value(
        &count_of("candidate"),
        |v| v == 1.0,
        "the first scrape of the candidate",
    )
    .await;
    prom.wait_value(
        &count_of("production"),
        |v| v == 1.0,
        "the first scrape of production",
    )
    .await;

    let (a, b) = tokio::join!(
        drive(&slow, "/api/products", 40, 8),
        drive(&fast, "/api/products", 40, 8)
    );
    assert!(a.iter().chain(&b).all(|c| *c == 200));
    let n = prom
        .wait_value(
            &count_of("candidate"),
            |v| v == 41.0,
            "the candidate's 41 requests",
        )
        .await;
    prom.wait_value(
        &count_of("production"),
        |v| v == 41.0,
        "production's 41 requests",
    )
    .await;
    assert_eq!(n, 41.0);

    // Instant query: a vector with the labels asked for.
    let r = apm::query(
        &prom.url(),
        "sum by (job) (storefront_http_requests_total)",
        None,
    )
    .await
    .unwrap();
    let QueryResult::Vector { samples } = &r else {
        panic!("expected a vector: {r:?}")
    };
    let jobs: Vec<&str> = samples.iter().map(|s| s.labels["job"].as_str()).collect();
    assert!(
        jobs.contains(&"candidate") && jobs.contains(&"production"),
        "{jobs:?}"
    );
    assert!(r.single_value("x").is_err(), "two series are not one value");

    // Range query: a matrix, counters never decreasing, ending at the total.
    let end = Utc::now();
    let start = end - chrono::Duration::seconds(10);
    let r = apm::query_range(
        &prom.url(),
        &count_of("candidate"),
        start,
        end,
        Duration::from_secs(1),
    )
    .await
    .unwrap();
    let QueryResult::Matrix { series } = &r else {
        panic!("expected a matrix: {r:?}")
    };
    assert_eq!(series.len(), 1);
    let pts = &series[0].points;
    // At least the scrape before the traffic (1) and one after (41), one second apart.
    assert!(pts.len() >= 2 && pts[0].1 == 1.0, "{pts:?}");
    assert!(
        pts.windows(2).all(|w| w[0].1 <= w[1].1 && w[0].0 < w[1].0),
        "{pts:?}"
    );
    assert_eq!(pts.last().unwrap().1, 41.0);

    // Errors: the server's own message for bad PromQL; an absent metric is Missing.
    match apm::query(&prom.url(), "sum(rate(x[1m]", None).await {
        Err(ApmError::Query {
            error_type,
            message,
            ..
        }) => {
            assert_eq!(error_type, "bad_data");
            assert!(message.contains("parse error"), "{message}");
        }
        other => panic!("expected a query error: {other:?}"),
    }
    match apm::query(&prom.url(), "no_such_metric_total", None).await {
        Err(ApmError::Missing(m)) => assert!(m.why.contains("no series"), "{m}"),
        other => panic!("expected Missing: {other:?}"),
    }

    // The gate: one PromQL check measured on both jobs through $selector.
    let yaml = format!(
        r#"
provider: prometheus
url: {url}
window: 30s
selectors: {{candidate: 'job="candidate"', baseline: 'job="production"'}}
checks:
  - name: p95 latency
    query: 'histogram_quantile(0.95, sum by (le) (rate({HIST}_bucket{{$selector,route="/api/products"}}[$window])))'
    threshold: "<500ms"
    baseline: "<=+10%"
  - name: absent
    query: 'sum(rate(no_such_metric_total[$window]))'
    threshold: "<1"
"#,
        url = prom.url()
    );
    let cfg: ApmConfig = serde_yaml::from_str(&yaml).unwrap();
    let report = apm::run(&cfg).await.unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&report).unwrap());
    let p95 = &report.results[0];
    let cand = p95.measured.expect("candidate p95 measured");
    let base = p95
        .baseline
        .as_ref()
        .unwrap()
        .value
        .expect("production p95 measured");
    assert!((0.1..=0.25).contains(&cand), "candidate p95 {cand}");
    assert!(base < 0.1, "production p95 {base}");
    assert!(
        !p95.passed && !p95.baseline.as_ref().unwrap().passed,
        "slower than production by far"
    );
    let absent = &report.results[1];
    assert!(!absent.passed && absent.measured.is_none());
    assert!(
        absent.missing.as_ref().unwrap().contains("no series"),
        "{absent:?}"
    );
    assert!(!report.passed);

    // The same checks with on_missing: pass — the absent one passes with a warning.
    let cfg: ApmConfig =
        serde_yaml::from_str(&yaml.replace("window: 30s", "window: 30s\non_missing: pass"))
            .unwrap();
    let report = apm::run(&cfg).await.unwrap();
    assert!(report.results[1].passed);
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(
        !report.results[0].passed,
        "on_missing does not soften a measured failure"
    );
}

// ---------- (c) missing data is never a pass ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unreachable_sources_and_absent_metrics_are_missing_never_passed() {
    let dead = format!("http://127.0.0.1:{}", free_port());
    match apm::query(&dead, "up", None).await {
        Err(ApmError::Unreachable { url, reason }) => {
            assert_eq!(url, dead);
            assert!(!reason.is_empty());
            eprintln!("prometheus down: {reason}");
        }
        other => panic!("expected Unreachable: {other:?}"),
    }
    assert!(matches!(
        apm::scrape(&format!("{dead}/metrics")).await,
        Err(ApmError::Unreachable { .. })
    ));

    // A gate on a dead /metrics: every check blocks, saying why.
    let yaml = format!(
        "provider: prometheus-scrape\nurl: {dead}/metrics\nwindow: 100ms\nchecks:\n  - {{name: rps, rate: storefront_http_requests_total, threshold: '>0'}}\n"
    );
    let report = apm::run(&serde_yaml::from_str(&yaml).unwrap())
        .await
        .unwrap();
    assert!(!report.passed);
    let m = report.results[0].missing.as_deref().unwrap();
    assert!(m.contains("unreachable"), "{m}");

    // A live app without the metric asked for.
    let app = App::start(&[]).await;
    let yaml = format!(
        "provider: prometheus-scrape\nurl: {}\nwindow: 200ms\nchecks:\n  - {{name: typo, rate: storefront_http_request_total, threshold: '<1'}}\n  - {{name: no traffic p95, quantile: 0.95, histogram: {HIST}, threshold: '<1s'}}\n",
        app.metrics()
    );
    let report = apm::run(&serde_yaml::from_str(&yaml).unwrap())
        .await
        .unwrap();
    assert!(!report.passed);
    let typo = &report.results[0];
    assert!(
        !typo.passed
            && typo
                .missing
                .as_deref()
                .unwrap()
                .contains("no metric named 'storefront_http_request_total'"),
        "{typo:?}"
    );
    // No request yet: the histogram does not even exist, so no p95 — not a fast one.
    assert!(!report.results[1].passed && report.results[1].measured.is_none());
}

// ---------- (d) comparison with production ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slower_candidate_fails_its_baseline_and_a_faster_one_passes() {
    let slow = App::start(&[("STOREFRONT_LATENCY_MS", "100")]).await;
    let fast = App::start(&[]).await;

    let config = |candidate: &App, production: &App| -> ApmConfig {
        serde_yaml::from_str(&format!(
            r#"
provider: prometheus-scrape
url: {}
baseline_url: {}
window: 2s
checks:
  - {{name: p95 latency, quantile: 0.95, histogram: {HIST}, threshold: "<1s", baseline: "<=+10%"}}
  - {{name: error ratio, ratio: {{numerator: 'storefront_http_requests_total{{code=~"5.."}}', denominator: storefront_http_requests_total}}, threshold: "<0.01"}}
"#,
            candidate.metrics(),
            production.metrics()
        ))
        .unwrap()
    };

    for (candidate, production, should_pass) in [(&slow, &fast, false), (&fast, &slow, true)] {
        let cfg = config(candidate, production);
        let checks = cfg.validate().unwrap();
        // The window is placed around the traffic, as the promote stage places it around load.
        let start = begin_scrape(&cfg).await;
        tokio::join!(
            drive(candidate, "/api/products", 30, 6),
            drive(production, "/api/products", 30, 6)
        );
        let report = finish_scrape(&cfg, &checks, start).await;
        let p95 = &report.results[0];
        let b = p95.baseline.as_ref().unwrap();
        eprintln!(
            "candidate p95 {:?} vs production {:?} (limit {:?}): passed {}",
            p95.measured, b.value, b.limit, p95.passed
        );
        assert!(p95.missing.is_none(), "{p95:?}");
        assert_eq!(p95.passed, should_pass, "{p95:?}");
        assert_eq!(b.passed, should_pass);
        assert!(
            p95.measured.unwrap() < 1.0,
            "the absolute threshold holds either way"
        );
        assert!(report.results[1].passed, "{:?}", report.results[1]);
        assert_eq!(report.passed, should_pass);
    }
}
