//! `gantry report` end to end: a history written through the store's own API, commits in a
//! real git repository (lead time counts every commit a deployment brought), figures
//! computed by hand beforehand; and the HTML report opened in headless Chromium.

mod common;

use std::path::Path;
use std::process::Command;

use chrono::{DateTime, FixedOffset, Utc};
use gantry::commit::CommitInfo;
use gantry::events::{Deployment, DeploymentOutcome, Event, EventKind, RunState, StageResult};
use gantry::store::{RunRecord, Store};
use serde_json::Value;

fn at(text: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(text).unwrap()
}

/// Commits `summary` at `time` (with its own offset) on main; returns the sha.
fn commit(repo: &git2::Repository, summary: &str, time: &str) -> String {
    let t = at(time);
    let when = git2::Time::new(t.timestamp(), t.offset().local_minus_utc() / 60);
    let sig = git2::Signature::new("Ada Author", "ada@example.com", &when).unwrap();
    std::fs::write(repo.workdir().unwrap().join("file.txt"), summary).unwrap();
    let mut index = repo.index().unwrap();
    index.add_path(Path::new("file.txt")).unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, summary, &tree, &parents).unwrap().to_string()
}

/// A finished run that deployed `sha` to `environment`, finishing at `finished`.
fn deployed(
    n: u32,
    repo: &Path,
    environment: &str,
    sha: &str,
    commit_time: &str,
    finished: &str,
    outcome: DeploymentOutcome,
) -> (RunRecord, Vec<Event>) {
    let plan = gantry::pipeline::parse("p.yml", "name: shop\nstages:\n  release: {image: x, commands: [\"true\"]}\n").unwrap();
    let commit = CommitInfo {
        sha: sha.to_string(),
        short: sha[..8].to_string(),
        author_name: "Ada Author".into(),
        author_email: "ada@example.com".into(),
        time: at(commit_time),
        summary: "a change".into(),
        branch: Some("main".into()),
    };
    let id = format!("01run{n:021}");
    let finished_at = at(finished).to_utc();
    let mut run = RunRecord::new(id.clone(), &plan, repo.display().to_string(), commit);
    run.created_at = finished_at - chrono::Duration::minutes(10);
    let d = Deployment {
        environment: environment.into(),
        app: "shop".into(),
        image: format!("shop:{}", &sha[..8]),
        image_id: format!("sha256:{sha}"),
        commit: sha.to_string(),
        commit_time: at(commit_time),
        author: "Ada Author".into(),
        run_id: id,
        pipeline: "shop".into(),
        started_at: finished_at - chrono::Duration::minutes(1),
        finished_at,
        outcome,
        url: None,
        replaced: Vec::new(),
    };
    let event = |kind| Event { at: finished_at, kind };
    let events = vec![
        event(EventKind::RunCreated { pipeline: "shop".into(), commit: sha.to_string() }),
        event(EventKind::StageResult { stage: "release".into(), result: StageResult::Deployment(d) }),
        event(EventKind::Swept { containers: 0, networks: 0, volumes: 0 }),
        event(EventKind::RunFinished { state: RunState::Succeeded, message: None }),
    ];
    (run, events)
}

/// The history of the known-answer test, in a data dir; returns its path.
///
/// Commits: c1 2026-01-05 10:00Z, c2 2026-01-06 09:00+02:00 (07:00Z), c3 2026-01-07 12:00Z.
/// production: c1 at 01-05 12:00 (brings c1), c3 at 01-08 12:00 (brings c2, c3), c3 again
/// at 01-09 12:00 (brings nothing: the same commit), c3 again at 01-10 12:00, which fails
/// verification and is restored at 12:05. staging: c1 at 01-05 11:00.
fn history(dir: &Path) -> std::path::PathBuf {
    let repo_dir = dir.join("repo");
    std::fs::create_dir_all(&repo_dir).unwrap();
    let repo = git2::Repository::init_opts(&repo_dir, git2::RepositoryInitOptions::new().initial_head("main")).unwrap();
    let c1 = commit(&repo, "first", "2026-01-05T10:00:00Z");
    let c2 = commit(&repo, "second", "2026-01-06T09:00:00+02:00");
    let c3 = commit(&repo, "third", "2026-01-07T12:00:00Z");
    let ok = || DeploymentOutcome::Succeeded;
    let failed = DeploymentOutcome::FailedVerification {
        reason: "error ratio 0.3 > 0.05".into(),
        restored_at: Some(at("2026-01-10T12:05:00Z").to_utc()),
        restored_to: Some("shop:previous".into()),
    };
    let runs = vec![
        deployed(1, &repo_dir, "staging", &c1, "2026-01-05T10:00:00Z", "2026-01-05T11:00:00Z", ok()),
        deployed(2, &repo_dir, "production", &c1, "2026-01-05T10:00:00Z", "2026-01-05T12:00:00Z", ok()),
        deployed(3, &repo_dir, "production", &c3, "2026-01-07T12:00:00Z", "2026-01-08T12:00:00Z", ok()),
        deployed(4, &repo_dir, "production", &c3, "2026-01-07T12:00:00Z", "2026-01-09T12:00:00Z", ok()),
        deployed(5, &repo_dir, "production", &c3, "2026-01-07T12:00:00Z", "2026-01-10T12:00:00Z", failed),
    ];
    let _ = c2;
    let data = dir.join("data");
    Store::open(&data).unwrap().import(&runs).unwrap();
    data
}

fn report(data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gantry")).arg("--data-dir").arg(data).arg("report").args(args).output().unwrap()
}

fn report_json(data: &Path, args: &[&str]) -> Value {
    let out = report(data, &[args, &["--json"]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

const JANUARY: [&str; 4] = ["--since", "2026-01-01", "--until", "2026-02-01"];

#[test]
fn the_four_keys_of_a_known_history() {
    let dir = tempfile::tempdir().unwrap();
    let data = history(dir.path());
    let r = report_json(&data, &JANUARY);
    assert_eq!(r["environment"], "production");
    // 4 live deployments in 31 days: 4/31 = 0.12903 a day, 0.90323 a week; 4 distinct days.
    assert_eq!(r["deployments"], 4);
    let f = &r["frequency"];
    assert!((f["per_day"].as_f64().unwrap() - 4.0 / 31.0).abs() < 1e-9, "{f}");
    assert!((f["per_week"].as_f64().unwrap() - 28.0 / 31.0).abs() < 1e-9, "{f}");
    assert!((f["deployment_days_per_week"].as_f64().unwrap() - 28.0 / 31.0).abs() < 1e-9, "{f}");
    // One week of five with deployments: not daily, not weekly; January had some: monthly.
    assert_eq!(f["band"], "medium");
    assert_eq!(f["trend"], "new", "December had none");
    // Lead times: c1 2h (deployed 12:00, committed 10:00); c2 53h (01-08 12:00 - 01-06 07:00Z);
    // c3 24h; the redeploys of c3 bring nothing. Median 24h: not under a day, so high.
    let lt = &r["lead_time"];
    assert_eq!(lt["commits"], 3, "{lt}");
    assert_eq!(lt["head_only"], 0);
    assert_eq!(lt["median_secs"].as_f64().unwrap(), 24.0 * 3600.0);
    assert_eq!(lt["band"], "high");
    let mut samples: Vec<f64> = r["lead_time_samples"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    samples.sort_by(f64::total_cmp);
    assert_eq!(samples, vec![2.0 * 3600.0, 24.0 * 3600.0, 53.0 * 3600.0]);
    // One of four failed (verification): 25%, low. Restored in 5 minutes: elite.
    let cf = &r["change_failure"];
    assert_eq!((cf["failed"].as_u64(), cf["total"].as_u64()), (Some(1), Some(4)), "{cf}");
    assert_eq!(cf["band"], "low");
    assert_eq!(cf["failures"][0]["reason"], "failed_verification");
    let ttr = &r["time_to_restore"];
    assert_eq!(ttr["median_secs"].as_f64().unwrap(), 300.0);
    assert_eq!(ttr["band"], "elite");
    // Weeks from Monday 2025-12-29 to Monday 2026-01-26; all four in the week of 01-05.
    let weeks: Vec<(String, u64)> = r["weeks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["start"].as_str().unwrap().to_string(), w["deployments"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        weeks,
        [("2025-12-29", 0), ("2026-01-05", 4), ("2026-01-12", 0), ("2026-01-19", 0), ("2026-01-26", 0)].map(|(d, n)| (d.to_string(), n))
    );

    // The same commit c1 through staging: staging's own report counts it (1h).
    let staging = report_json(&data, &[&JANUARY[..], &["--env", "staging"]].concat());
    assert_eq!(staging["deployments"], 1);
    assert_eq!(staging["lead_time"]["median_secs"].as_f64().unwrap(), 3600.0);

    // The terminal table and CSV say the same.
    let table = String::from_utf8(report(&data, &JANUARY).stdout).unwrap();
    assert!(table.contains("production") && table.to_lowercase().contains("lead time"), "{table}");
    let csv = String::from_utf8(report(&data, &[&JANUARY[..], &["--csv"]].concat()).stdout).unwrap();
    assert!(csv.lines().count() > 4, "{csv}");
}

#[test]
fn an_empty_window_says_so_instead_of_showing_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let data = history(dir.path());
    let args = ["--since", "2025-06-01", "--until", "2025-07-01"];
    let out = report(&data, &args);
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("no production deployments"), "{table}");
    let r = report_json(&data, &args);
    assert_eq!(r["deployments"], 0);
    assert!(r["lead_time"].is_null() && r["change_failure"].is_null() && r["time_to_restore"].is_null(), "{r}");
    let bad = report(&data, &["--since", "soon"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--since: `soon` is neither a span like 90d nor a date"));
}

#[test]
fn the_html_report_opens_offline_in_chromium_and_shows_its_charts() {
    let dir = tempfile::tempdir().unwrap();
    let data = history(dir.path());
    let file = dir.path().join("report.html");
    let out = report(&data, &[&JANUARY[..], &["--html", file.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(&file).unwrap();
    assert!(!html.contains("http://") && !html.contains("https://"), "the page must not fetch anything");

    let driver = common::browser::Chromedriver::start(&dir.path().join("chromedriver.log"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let counts = rt.block_on(async {
        let b = driver.browser().await;
        b.goto(&format!("file://{}", file.display())).await.unwrap();
        let count = |css: &'static str| {
            let b = b.clone();
            async move { b.find_all(fantoccini::Locator::Css(css)).await.map(|v| v.len()).unwrap_or(0) }
        };
        let counts = (
            count("svg#chart-deployments").await,
            count("svg#chart-deployments rect.bar").await,
            count("svg#chart-lead-time rect.bar").await,
            count("svg#chart-change-failure circle.point").await,
        );
        // The charts are drawn: the deployments chart has a real size on the page.
        let svg = b.find(fantoccini::Locator::Css("svg#chart-deployments")).await.unwrap();
        let (_, _, w, h) = svg.rectangle().await.unwrap();
        let _ = b.close().await;
        (counts, w, h)
    });
    let ((charts, week_bars, lead_bars, failure_points), w, h) = counts;
    assert_eq!(charts, 1);
    assert!(week_bars >= 1, "a bar for the week with deployments");
    assert!(lead_bars >= 1, "lead-time histogram bars");
    assert_eq!(failure_points, 1, "one week had deployments, so one change-failure point");
    assert!(w > 100.0 && h > 50.0, "the chart is drawn at {w}x{h}");
    let _ = Utc::now();
}
