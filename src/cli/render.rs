//! What a run looks like in the terminal. Stage output goes to stdout as `stage | line`
//! (exactly what `gantry logs` prints later); Gantry's own status goes to stderr, as a live
//! progress view on a terminal and as plain lines otherwise.

pub use crate::words::format_duration;
use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::events::{Event, EventKind, LogLine, RunState, StageState};
use crate::store::RunRecord;

/// One stored or live output line, as printed.
pub fn format_log_line(width: usize, line: &LogLine) -> String {
    format!("{:width$} | {}", line.stage, line.text)
}

pub fn stage_width(record: &RunRecord) -> usize {
    record.stages.iter().map(|s| s.name.len()).max().unwrap_or(0)
}


impl crate::recorder::Viewer for Renderer {
    fn log(&mut self, line: &LogLine) {
        self.print_log(line);
    }
    fn event(&mut self, event: &Event, record: &RunRecord) {
        self.show_event(event, record);
    }
}

pub struct Renderer {
    width: usize,
    progress: Option<Progress>,
}

struct Progress {
    multi: MultiProgress,
    bars: HashMap<String, ProgressBar>,
}

impl Renderer {
    pub fn new(record: &RunRecord, plain: bool) -> Self {
        let tty = !plain && std::io::stderr().is_terminal() && std::io::stdout().is_terminal();
        let progress = tty.then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let width = stage_width(record);
            let style = ProgressStyle::with_template(&format!("{{spinner}} {{prefix:{width}}}  {{msg}}"))
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            let bars = record
                .stages
                .iter()
                .map(|s| {
                    let bar = multi.add(ProgressBar::new_spinner().with_style(style.clone()));
                    bar.set_prefix(s.name.clone());
                    bar.set_message("pending");
                    (s.name.clone(), bar)
                })
                .collect();
            Progress { multi, bars }
        });
        Renderer { width: stage_width(record), progress }
    }

    fn status(&self, text: String) {
        match &self.progress {
            Some(p) => p.multi.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }

    pub fn started(&self, record: &RunRecord, endpoint: &str, api_version: &str) {
        let branch = record.commit.branch.as_deref().map(|b| format!(" on {b}")).unwrap_or_default();
        self.status(format!(
            "gantry: run {} of {} for {}{} ({}, {}) on {} (API {})",
            record.id,
            record.pipeline,
            record.commit.short,
            branch,
            record.commit.author_name,
            record.commit.summary,
            endpoint,
            api_version
        ));
    }

    fn print_log(&self, line: &LogLine) {
        let text = format_log_line(self.width, line);
        match &self.progress {
            Some(p) => p.multi.suspend(|| out(&text)),
            None => out(&text),
        }
    }

    fn show_event(&mut self, event: &Event, record: &RunRecord) {
        let stage_of = |name: &str| record.stages.iter().find(|s| s.name == name);
        match &event.kind {
            EventKind::StageStarted { stage, attempt } => {
                let note = if *attempt > 1 { format!(" (attempt {attempt})") } else { String::new() };
                if let Some(bar) = self.bar(stage) {
                    bar.set_message(format!("running{note}"));
                    bar.enable_steady_tick(Duration::from_millis(120));
                } else {
                    self.status(format!("gantry: [{stage}] running{note}"));
                }
            }
            EventKind::AttemptFinished { stage, attempt, result, will_retry } => {
                let took = stage_of(stage).and_then(|s| s.duration()).map(format_duration).unwrap_or_default();
                let text = if *will_retry {
                    format!("{} (attempt {attempt}); retrying", result.describe())
                } else {
                    format!("{} in {took}", result.describe())
                };
                if let Some(bar) = self.bar(stage) {
                    if *will_retry {
                        bar.set_message(text);
                    } else {
                        bar.finish_with_message(text);
                    }
                } else {
                    self.status(format!("gantry: [{stage}] {text}"));
                }
            }
            EventKind::StageSkipped { stage, reason } => {
                let text = format!("skipped: {reason}");
                match self.bar(stage) {
                    Some(bar) => bar.finish_with_message(text),
                    None => self.status(format!("gantry: [{stage}] {text}")),
                }
            }
            EventKind::RunFinished { .. } => {
                if let Some(p) = &self.progress {
                    for s in &record.stages {
                        if let Some(bar) = p.bars.get(&s.name) {
                            if !bar.is_finished() {
                                bar.finish_with_message(state_word(s.state).to_string());
                            }
                        }
                    }
                }
            }
            EventKind::ApprovalRequested { request } => {
                let rule = &request.rule;
                self.status(format!(
                    "gantry: [{}] the gate passed; promoting {} to {} needs {} approval(s) by a {}: gantry approve {} (GANTRY_TOKEN=your token)",
                    request.stage, request.image, request.environment, rule.count, rule.role, record.id
                ));
            }
            EventKind::ApprovalDecided { decision } => {
                let verb = match decision.kind {
                    crate::approval::DecisionKind::Approve => "approved",
                    crate::approval::DecisionKind::Reject => "rejected",
                };
                let why = decision.comment.as_deref().map(|c| format!(": {c}")).unwrap_or_default();
                self.status(format!("gantry: {verb} by {}{why}", decision.user));
            }
            EventKind::PromotionClaimed { by, .. } => {
                self.status(format!("gantry: approval complete; {by} promotes run {} now", record.id));
            }
            EventKind::RunCreated { .. }
            | EventKind::RunStarted { .. }
            | EventKind::Swept { .. }
            | EventKind::StageResult { .. }
            | EventKind::GateJudged { .. }
            | EventKind::Verified { .. }
            | EventKind::ApprovalExpired
            | EventKind::ApprovalSuperseded { .. }
            | EventKind::CancelRequested { .. } => {}
        }
    }

    fn bar(&self, stage: &str) -> Option<&ProgressBar> {
        self.progress.as_ref().and_then(|p| p.bars.get(stage))
    }

    pub fn finished(&self, record: &RunRecord) {
        let took = format_duration(record.duration());
        let line = match record.state {
            RunState::Succeeded => format!("gantry: run {} succeeded in {took}", record.id),
            RunState::AwaitingApproval => format!(
                "gantry: run {} waits for approval after {took} (see `gantry approvals`)",
                record.id
            ),
            state => format!(
                "gantry: run {} {} after {took}: {}",
                record.id,
                state_word_run(state),
                record.message.as_deref().unwrap_or("")
            ),
        };
        self.status(line);
        self.status(format!("gantry: details: gantry show {}   output: gantry logs {}", record.id, record.id));
    }
}

pub fn state_word(state: StageState) -> &'static str {
    state.name()
}

pub fn state_word_run(state: RunState) -> &'static str {
    state.name()
}

/// A stage's output line on stdout. A reader that went away (`gantry run ... | head`) must
/// not stop the run: `println!` would panic on the broken pipe and skip the run's cleanup,
/// and the line is in the store anyway.
fn out(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}
