//! Gantry's own figures in the Prometheus text format: the queue, runs in flight, pending
//! approvals (from the store's indexes, cheap at any history size), and counters of runs
//! and promotions finished and stage durations since the service started.

use std::fmt::Write;

use axum::extract::State;

use super::AppState;
use crate::coordinator::STAGE_BUCKETS;
use crate::events::RunState;

pub async fn metrics(State(s): State<AppState>) -> ([(&'static str, &'static str); 1], String) {
    let c = &s.coord;
    let mut out = String::new();
    let gauge = |out: &mut String, name: &str, help: &str, value: usize| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
    };
    gauge(&mut out, "gantry_queue_depth", "Runs waiting in the queue.", c.store.queue_len());
    gauge(&mut out, "gantry_runs_running", "Runs this service is driving now.", c.running().len());
    gauge(&mut out, "gantry_approvals_pending", "Promotions waiting for approval.", c.store.pending_approval_count());
    let counters = c.counters.lock().expect("counters");
    let _ = writeln!(out, "# HELP gantry_runs_finished_total Runs finished since the service started, by final state.");
    let _ = writeln!(out, "# TYPE gantry_runs_finished_total counter");
    for state in [RunState::Succeeded, RunState::Failed, RunState::Cancelled, RunState::Interrupted, RunState::AwaitingApproval] {
        let n = counters.finished.get(&state).copied().unwrap_or(0);
        let _ = writeln!(out, "gantry_runs_finished_total{{state=\"{}\"}} {n}", serde_json::to_value(state).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default());
    }
    let _ = writeln!(out, "# HELP gantry_promotions_total Promotions performed by this service since it started.");
    let _ = writeln!(out, "# TYPE gantry_promotions_total counter\ngantry_promotions_total {}", counters.promotions);
    let _ = writeln!(out, "# HELP gantry_stage_duration_seconds Durations of stages of runs finished since the service started.");
    let _ = writeln!(out, "# TYPE gantry_stage_duration_seconds histogram");
    let h = &counters.stage_seconds;
    for (bound, n) in STAGE_BUCKETS.iter().zip(h.buckets) {
        let _ = writeln!(out, "gantry_stage_duration_seconds_bucket{{le=\"{bound}\"}} {n}");
    }
    let _ = writeln!(out, "gantry_stage_duration_seconds_bucket{{le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "gantry_stage_duration_seconds_sum {}", h.sum);
    let _ = writeln!(out, "gantry_stage_duration_seconds_count {}", h.count);
    drop(counters);
    engines(&mut out, &c.pool.views());
    ([("content-type", "text/plain; version=0.0.4")], out)
}

/// Each engine of the pool: whether it answers, its slots and what is placed on it.
fn engines(out: &mut String, views: &[crate::engine::pool::EngineView]) {
    if views.is_empty() {
        return;
    }
    let families: [(&str, &str, &str, fn(&crate::engine::pool::EngineView) -> u64); 5] = [
        ("gantry_engine_up", "gauge", "Whether the engine answered its last check (1) or not (0).", |v| v.up as u64),
        ("gantry_engine_slots", "gauge", "Runs the engine takes at once.", |v| v.slots as u64),
        ("gantry_engine_slots_in_use", "gauge", "Runs on the engine now.", |v| v.in_use as u64),
        ("gantry_engine_runs_placed_total", "counter", "Runs placed on the engine since the service started.", |v| v.placed),
        ("gantry_engine_runs_lost_total", "counter", "Runs interrupted because the engine stopped answering.", |v| v.lost),
    ];
    for (name, kind, help, value) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for v in views {
            // Engine names are the operator's, checked to be [a-z0-9-]: safe as label values.
            let _ = writeln!(out, "{name}{{engine=\"{}\"}} {}", v.name, value(v));
        }
    }
}
