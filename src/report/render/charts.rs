//! The report's inline SVG charts: deployments per week, lead-time buckets, change failure rate.

use super::*;

pub(super) const W: f64 = 640.0;
pub(super) const H: f64 = 260.0;
pub(super) const LEFT: f64 = 52.0;
pub(super) const RIGHT: f64 = 16.0;
pub(super) const TOP: f64 = 20.0;
pub(super) const BOTTOM: f64 = 52.0;
pub(super) const PLOT_W: f64 = W - LEFT - RIGHT;
pub(super) const PLOT_H: f64 = H - TOP - BOTTOM;

pub(super) fn c(v: f64) -> String {
    format!("{v:.1}")
}

/// A round top for a count axis and its step, at most five steps: 7 -> (8, 2).
pub(super) fn count_scale(max: usize) -> (usize, usize) {
    let max = max.max(1);
    let mut magnitude = 1;
    loop {
        for step in [magnitude, 2 * magnitude, 5 * magnitude] {
            let top = max.div_ceil(step) * step;
            if top / step <= 5 {
                return (top, step);
            }
        }
        magnitude *= 10;
    }
}

/// The y axis with grid lines, tick labels and a rotated title; the x axis line and title.
pub(super) fn axes(ticks: &[(f64, String)], y_title: &str, x_title: &str) -> Markup {
    html! {
        g.axes font-size="11" fill=(GREY) {
            @for (y, label) in ticks {
                line x1=(c(LEFT)) x2=(c(LEFT + PLOT_W)) y1=(c(*y)) y2=(c(*y)) stroke=(GRID) stroke-width="1" {}
                text x=(c(LEFT - 6.0)) y=(c(y + 4.0)) text-anchor="end" { (label) }
            }
            line x1=(c(LEFT)) x2=(c(LEFT)) y1=(c(TOP)) y2=(c(TOP + PLOT_H)) stroke=(GREY) stroke-width="1" {}
            line x1=(c(LEFT)) x2=(c(LEFT + PLOT_W)) y1=(c(TOP + PLOT_H)) y2=(c(TOP + PLOT_H)) stroke=(GREY) stroke-width="1" {}
            text x=(c(14.0)) y=(c(TOP + PLOT_H / 2.0)) text-anchor="middle" transform=(format!("rotate(-90 14 {})", c(TOP + PLOT_H / 2.0))) { (y_title) }
            text x=(c(LEFT + PLOT_W / 2.0)) y=(c(H - 6.0)) text-anchor="middle" { (x_title) }
        }
    }
}

pub(super) fn count_ticks(top: usize, step: usize) -> Vec<(f64, String)> {
    (0..=top / step).map(|i| (TOP + PLOT_H - (i * step) as f64 / top as f64 * PLOT_H, (i * step).to_string())).collect()
}

/// Week labels under the x axis, at most about twelve of them.
pub(super) fn week_labels(weeks: &[Week], slot: f64) -> Markup {
    let every = weeks.len().div_ceil(12).max(1);
    html! {
        g.labels font-size="10" fill=(GREY) text-anchor="middle" {
            @for (i, w) in weeks.iter().enumerate().filter(|(i, _)| i % every == 0) {
                text x=(c(LEFT + slot * (i as f64 + 0.5))) y=(c(TOP + PLOT_H + 14.0)) { (week_label(w.start)) }
            }
        }
    }
}

pub(super) fn week_label(d: NaiveDate) -> String {
    d.format("%-d %b").to_string()
}

/// Chart 1: one `rect.bar` per week (all live deployments), its failed part drawn over it
/// in red.
pub(super) fn deployments_chart(weeks: &[Week]) -> Markup {
    let (top, step) = count_scale(weeks.iter().map(|w| w.deployments).max().unwrap_or(0));
    let slot = PLOT_W / weeks.len().max(1) as f64;
    let bar_w = (slot * 0.7).max(1.0);
    let y = |v: usize| TOP + PLOT_H - v as f64 / top as f64 * PLOT_H;
    html! {
        svg #chart-deployments role="img" aria-label="Deployments per week: live deployments as bars, the failed part in red" viewBox=(format!("0 0 {W} {H}")) {
            (axes(&count_ticks(top, step), "deployments", "week starting (Monday, UTC)"))
            (week_labels(weeks, slot))
            @for (i, w) in weeks.iter().enumerate() {
                @let x = LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
                @let tip = format!("week of {}: {}, {} failed", w.start, plural(w.deployments, "deployment", "deployments"), w.failed);
                rect class="bar" x=(c(x)) y=(c(y(w.deployments))) width=(c(bar_w)) height=(c(y(0) - y(w.deployments))) fill=(BLUE) {
                    title { (tip) }
                }
                @if w.failed > 0 {
                    rect class="failed" x=(c(x)) y=(c(y(w.failed))) width=(c(bar_w)) height=(c(y(0) - y(w.failed))) fill=(RED) {
                        title { (tip) }
                    }
                }
            }
            g.legend font-size="11" fill=(GREY) {
                rect x=(c(W - RIGHT - 130.0)) y="4" width="10" height="10" fill=(BLUE) {}
                text x=(c(W - RIGHT - 116.0)) y="13" { "live" }
                rect x=(c(W - RIGHT - 70.0)) y="4" width="10" height="10" fill=(RED) {}
                text x=(c(W - RIGHT - 56.0)) y="13" { "failed" }
            }
        }
    }
}

/// The lead-time buckets: label and upper bound in seconds (exclusive).
pub(super) const LEAD_BUCKETS: [(&str, f64); 7] = [
    ("<1h", 3600.0),
    ("1–4h", 4.0 * 3600.0),
    ("4–24h", 86400.0),
    ("1–3d", 3.0 * 86400.0),
    ("3–7d", 7.0 * 86400.0),
    ("1–4w", 28.0 * 86400.0),
    (">4w", f64::INFINITY),
];

pub(super) fn lead_time_buckets(samples: &[f64]) -> [usize; 7] {
    let mut counts = [0; 7];
    for s in samples.iter().filter(|s| s.is_finite()) {
        let i = LEAD_BUCKETS.iter().position(|(_, upper)| *s < *upper).unwrap_or(LEAD_BUCKETS.len() - 1);
        counts[i] += 1;
    }
    counts
}

/// Chart 2: a histogram of lead times, one `rect.bar` per bucket.
pub(super) fn lead_time_chart(samples: &[f64]) -> Markup {
    let counts = lead_time_buckets(samples);
    let total: usize = counts.iter().sum();
    let (top, step) = count_scale(counts.iter().copied().max().unwrap_or(0));
    let slot = PLOT_W / counts.len() as f64;
    let bar_w = slot * 0.7;
    let y = |v: usize| TOP + PLOT_H - v as f64 / top as f64 * PLOT_H;
    html! {
        svg #chart-lead-time role="img" aria-label="Lead-time distribution: commits per lead-time bucket" viewBox=(format!("0 0 {W} {H}")) {
            (axes(&count_ticks(top, step), "commits", "lead time (commit to production)"))
            g.labels font-size="11" fill=(GREY) text-anchor="middle" {
                @for (i, (label, _)) in LEAD_BUCKETS.iter().enumerate() {
                    text x=(c(LEFT + slot * (i as f64 + 0.5))) y=(c(TOP + PLOT_H + 14.0)) { (label) }
                }
            }
            @for (i, n) in counts.iter().enumerate() {
                @let share = if total == 0 { 0.0 } else { *n as f64 / total as f64 };
                rect class="bar" x=(c(LEFT + slot * i as f64 + (slot - bar_w) / 2.0)) y=(c(y(*n))) width=(c(bar_w)) height=(c(y(0) - y(*n))) fill=(BLUE) {
                    title { (LEAD_BUCKETS[i].0) ": " (plural(*n, "commit", "commits")) " (" (percent(share)) ")" }
                }
            }
            @if total == 0 {
                text x=(c(LEFT + PLOT_W / 2.0)) y=(c(TOP + PLOT_H / 2.0)) text-anchor="middle" font-size="13" fill=(GREY) { "no commits deployed in this window" }
            }
        }
    }
}

/// Chart 3: the change failure rate of each week with deployments, as points joined within
/// runs of consecutive such weeks; weeks with none are skipped (a gap in the line). The
/// window's overall rate is a dashed line.
pub(super) fn change_failure_chart(weeks: &[Week], overall: Option<f64>) -> Markup {
    let slot = PLOT_W / weeks.len().max(1) as f64;
    let x = |i: usize| LEFT + slot * (i as f64 + 0.5);
    let y = |rate: f64| TOP + PLOT_H - rate.clamp(0.0, 1.0) * PLOT_H;
    let points: Vec<(usize, &Week, f64)> =
        weeks.iter().enumerate().filter(|(_, w)| w.deployments > 0).map(|(i, w)| (i, w, w.failed as f64 / w.deployments as f64)).collect();
    let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut last: Option<usize> = None;
    for (i, _, rate) in &points {
        if last.map(|l| l + 1) != Some(*i) {
            runs.push(Vec::new());
        }
        if let Some(run) = runs.last_mut() {
            run.push((x(*i), y(*rate)));
        }
        last = Some(*i);
    }
    let ticks: Vec<(f64, String)> = [0.0, 0.25, 0.5, 0.75, 1.0].iter().map(|r| (y(*r), format!("{:.0}%", r * 100.0))).collect();
    html! {
        svg #chart-change-failure role="img" aria-label="Change failure rate per week; weeks without deployments are skipped" viewBox=(format!("0 0 {W} {H}")) {
            (axes(&ticks, "failed deployments", "week starting (Monday, UTC)"))
            (week_labels(weeks, slot))
            @if let Some(rate) = overall {
                line x1=(c(LEFT)) x2=(c(LEFT + PLOT_W)) y1=(c(y(rate))) y2=(c(y(rate))) stroke=(GREY) stroke-width="1" stroke-dasharray="4 3" {
                    title { "whole window: " (percent(rate)) }
                }
                text x=(c(LEFT + PLOT_W - 2.0)) y=(c(y(rate) - 4.0)) text-anchor="end" font-size="10" fill=(GREY) { "window " (percent(rate)) }
            }
            @for run in runs.iter().filter(|r| r.len() > 1) {
                polyline points=(run.iter().map(|(px, py)| format!("{},{}", c(*px), c(*py))).collect::<Vec<_>>().join(" ")) fill="none" stroke=(RED) stroke-width="2" {}
            }
            @for (i, w, rate) in &points {
                circle class="point" cx=(c(x(*i))) cy=(c(y(*rate))) r="4" fill=(RED) {
                    title { "week of " (w.start) ": " (w.failed) " of " (plural(w.deployments, "deployment", "deployments")) " failed (" (percent(*rate)) ")" }
                }
            }
        }
    }
}
