//! How Gantry words things for people, the same in the terminal and on the dashboard:
//! durations, and what a stage produced.

use crate::events::{DeploymentOutcome, StageResult};

/// `4.2s` under a minute, `3m07s` above.
pub fn format_duration(d: chrono::Duration) -> String {
    let ms = d.num_milliseconds().max(0);
    if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        let s = ms / 1000;
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// What a stage produced, in one line (`gantry show`, the dashboard's run page).
pub fn result_line(result: &StageResult) -> String {
    match result {
        StageResult::Image { tag, image_id } => format!("image {tag} ({})", short_id(image_id)),
        StageResult::Environment { environment, services, .. } => {
            let changes: Vec<String> = services.iter().map(|s| format!("{} {:?}", s.service, s.change).to_lowercase()).collect();
            format!("environment {environment}: {}", if changes.is_empty() { "no services".into() } else { changes.join(", ") })
        }
        StageResult::Deployment(d) => match &d.outcome {
            DeploymentOutcome::Succeeded => {
                format!("{} live in {}{}", d.image, d.environment, d.url.as_deref().map(|u| format!(" at {u}")).unwrap_or_default())
            }
            DeploymentOutcome::Failed { .. } => format!("{} refused in {}", d.image, d.environment),
            DeploymentOutcome::FailedVerification { restored_to, .. } => format!(
                "{} failed verification in {}; {}",
                d.image,
                d.environment,
                restored_to.as_deref().map(|i| format!("rolled back to {i}")).unwrap_or_else(|| "rollback failed".into())
            ),
        },
        StageResult::Smoke(r) => {
            let (p, f, s) = r.counts();
            format!("smoke: {p} passed, {f} failed, {s} skipped")
        }
        StageResult::Load { summary, thresholds, .. } => {
            let failed = thresholds.iter().filter(|t| !t.passed).count();
            format!(
                "load: {} requests, {:.1}/s, p95 {:.1}ms, p99 {:.1}ms, {:.2}% failed; thresholds {} passed, {failed} failed",
                summary.requests,
                summary.rate,
                summary.latency_ms.p95,
                summary.latency_ms.p99,
                summary.failed_rate * 100.0,
                thresholds.len() - failed
            )
        }
    }
}

fn short_id(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}
