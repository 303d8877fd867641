//! The smoke report: what the agent writes and the coordinator reads back.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmokeReport {
    /// True when every journey passed.
    pub passed: bool,
    pub duration_ms: u64,
    pub journeys: Vec<JourneyReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JourneyReport {
    pub name: String,
    pub passed: bool,
    pub duration_ms: u64,
    pub steps: Vec<StepReport>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Passed,
    Failed,
    /// Not run because an earlier step of the same journey failed.
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    pub name: String,
    pub outcome: Outcome,
    pub duration_ms: u64,
    /// Response status; null when no response was received (or the step was skipped).
    pub status: Option<u16>,
    /// Checks that did not hold (empty unless `outcome` is failed with a response).
    #[serde(default)]
    pub failures: Vec<Failure>,
    /// Why no response could be checked (connection refused, timeout, ...).
    #[serde(default)]
    pub error: Option<String>,
}

/// One check that did not hold. `check` is `status`, `body_contains`, `json <pointer>`,
/// `max_latency`, `header <name>` or `capture <name>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub check: String,
    pub expected: String,
    pub got: String,
}

/// Longest `got` quoted in a one-line message (the full text stays in the report).
const ONE_LINE_GOT: usize = 120;

impl Failure {
    /// `expected status 201, got 500`.
    pub fn describe(&self) -> String {
        format!("expected {} {}, got {}", self.check, self.expected, shorten(&self.got, ONE_LINE_GOT))
    }
}

impl StepReport {
    pub(crate) fn skipped(name: &str) -> Self {
        StepReport { name: name.into(), outcome: Outcome::Skipped, duration_ms: 0, status: None, failures: vec![], error: None }
    }

    /// What went wrong, on one line; None unless the step failed.
    pub fn problem(&self) -> Option<String> {
        if self.outcome != Outcome::Failed {
            return None;
        }
        let mut parts: Vec<String> = self.error.iter().cloned().collect();
        parts.extend(self.failures.iter().map(Failure::describe));
        if parts.is_empty() {
            parts.push("failed".into());
        }
        Some(parts.join("; "))
    }
}

impl JourneyReport {
    /// The step that stopped this journey, if any.
    pub fn failed_step(&self) -> Option<&StepReport> {
        self.steps.iter().find(|s| s.outcome == Outcome::Failed)
    }
}

impl SmokeReport {
    /// The line the coordinator prints for a failed smoke stage, e.g.
    /// `journey 'browse and buy' step 'add to cart': expected status 201, got 500`;
    /// with more failing journeys, ` (and 2 more failing journeys)` is appended.
    /// None when the run passed.
    pub fn failure_message(&self) -> Option<String> {
        let mut failing = self.journeys.iter().filter(|j| !j.passed);
        let first = failing.next()?;
        let mut msg = match first.failed_step() {
            Some(step) => format!(
                "journey '{}' step '{}': {}",
                first.name,
                step.name,
                step.problem().unwrap_or_default()
            ),
            None => format!("journey '{}' failed", first.name),
        };
        let more = failing.count();
        if more > 0 {
            msg.push_str(&format!(" (and {more} more failing journey{})", if more == 1 { "" } else { "s" }));
        }
        Some(msg)
    }

    /// Steps by outcome: (passed, failed, skipped).
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for step in self.journeys.iter().flat_map(|j| &j.steps) {
            match step.outcome {
                Outcome::Passed => c.0 += 1,
                Outcome::Failed => c.1 += 1,
                Outcome::Skipped => c.2 += 1,
            }
        }
        c
    }
}

/// First `max` characters of `s` (on a char boundary), with `…` when cut.
pub(crate) fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(name: &str, outcome: Outcome, failures: Vec<Failure>, error: Option<&str>) -> StepReport {
        StepReport { name: name.into(), outcome, duration_ms: 1, status: Some(500), failures, error: error.map(Into::into) }
    }

    #[test]
    fn failure_message_names_journey_and_step() {
        let status = Failure { check: "status".into(), expected: "201".into(), got: "500".into() };
        let report = SmokeReport {
            passed: false,
            duration_ms: 3,
            journeys: vec![
                JourneyReport { name: "ok".into(), passed: true, duration_ms: 1, steps: vec![step("a", Outcome::Passed, vec![], None)] },
                JourneyReport {
                    name: "browse and buy".into(),
                    passed: false,
                    duration_ms: 1,
                    steps: vec![step("add to cart", Outcome::Failed, vec![status], None), StepReport::skipped("pay")],
                },
                JourneyReport {
                    name: "other".into(),
                    passed: false,
                    duration_ms: 1,
                    steps: vec![step("x", Outcome::Failed, vec![], Some("connection refused"))],
                },
            ],
        };
        assert_eq!(
            report.failure_message().unwrap(),
            "journey 'browse and buy' step 'add to cart': expected status 201, got 500 (and 1 more failing journey)"
        );
        assert_eq!(report.counts(), (1, 2, 1));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["journeys"][1]["steps"][1]["outcome"], "skipped");
        assert_eq!(json["journeys"][1]["steps"][1]["status"], serde_json::Value::Null);
        let back: SmokeReport = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn shorten_respects_char_boundaries() {
        assert_eq!(shorten("héllo", 2), "hé…");
        assert_eq!(shorten("hé", 2), "hé");
    }
}
