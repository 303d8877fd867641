//! The channel from a run's scheduler and executors to its recorder: one ordered stream of
//! events and output lines (output emitted before a state change is stored before it).
//! Output is bounded twice: in flight (a stage printing faster than the store writes waits
//! for it: back-pressure, not memory growth) and in total per stage (beyond the cap one
//! line says so and the rest is dropped, while the container's stream is still drained).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, Semaphore};

use crate::events::{Emitted, Event, EventKind, LogLine, Stream};

/// How much output a run may have in flight and keep per stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimits {
    /// Bytes of output sent but not yet taken by the recorder.
    pub in_flight: usize,
    /// Bytes of output kept per stage (all its attempts together).
    pub per_stage: u64,
}

/// 64 MiB per stage, as the README says.
pub const DEFAULT_PER_STAGE: u64 = 64 * 1024 * 1024;

impl Default for OutputLimits {
    fn default() -> Self {
        OutputLimits { in_flight: 8 * 1024 * 1024, per_stage: DEFAULT_PER_STAGE }
    }
}

/// Makes a run's channel.
pub fn channel(limits: OutputLimits) -> (Sender, Receiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let limits = OutputLimits { in_flight: limits.in_flight.max(1), ..limits };
    let budget = Arc::new(Semaphore::new(limits.in_flight));
    let sender = Sender { tx, budget: budget.clone(), limits, kept: Default::default() };
    (sender, Receiver { rx, budget })
}

/// The sending side, shared by every stage of the run.
#[derive(Clone)]
pub struct Sender {
    /// Each item with the part of the in-flight budget it holds (0: not counted).
    tx: mpsc::UnboundedSender<(Emitted, usize)>,
    budget: Arc<Semaphore>,
    limits: OutputLimits,
    /// Bytes kept so far per stage, and whether its truncation line went out.
    kept: Arc<Mutex<HashMap<String, (u64, bool)>>>,
}

/// What one line costs of the in-flight budget (an empty line costs something too).
fn cost(line: &LogLine, in_flight: usize) -> usize {
    (line.text.len() + 1).min(in_flight)
}

impl Sender {
    /// A state change: never waits, never dropped (a run has a handful).
    pub fn event(&self, event: Event) {
        // The receiver lives as long as the run; if it is gone the process is exiting.
        let _ = self.tx.send((Emitted::Event(event), 0));
    }

    /// A line of Gantry's own (what it did, where things answer): few, so not counted.
    pub fn note(&self, line: LogLine) {
        let _ = self.tx.send((Emitted::Log(line), 0));
    }

    /// A line of a container's output: waits while too much is in flight, and is dropped
    /// once its stage has used up its cap (after one line that says so).
    pub async fn output(&self, line: LogLine) {
        let Some(line) = self.admit(line) else { return };
        let n = cost(&line, self.limits.in_flight);
        match self.budget.acquire_many(n as u32).await {
            // Given back by the receiver when it takes the line.
            Ok(permit) => permit.forget(),
            Err(_) => return,
        }
        let _ = self.tx.send((Emitted::Log(line), n));
    }

    /// Output from where nothing can wait (a builder's callback): capped like `output`,
    /// without back-pressure.
    pub fn output_now(&self, line: LogLine) {
        if let Some(line) = self.admit(line) {
            let _ = self.tx.send((Emitted::Log(line), 0));
        }
    }

    /// The line to keep for `line` under its stage's cap: itself, the truncation notice
    /// (once), or nothing.
    fn admit(&self, line: LogLine) -> Option<LogLine> {
        {
            let mut kept = self.kept.lock().expect("output counters");
            let (bytes, told) = kept.entry(line.stage.clone()).or_insert((0, false));
            // Once cut, a stage stays cut: a short line later would fit, but it would
            // read as if it followed what was dropped.
            if !*told && *bytes + line.text.len() as u64 + 1 <= self.limits.per_stage {
                *bytes += line.text.len() as u64 + 1;
                Some(line)
            } else if !*told {
                *told = true;
                Some(LogLine {
                    stream: Stream::Stderr,
                    text: format!(
                        "gantry: output of stage '{}' truncated: it printed more than {}; the rest was not kept (logs.max_stage_output in the operator's config)",
                        line.stage,
                        bytes_in_words(self.limits.per_stage)
                    ),
                    ..line
                })
            } else {
                None
            }
        }
    }
}

/// `64 MiB`, `1.5 GiB`, `512 KiB`.
pub fn bytes_in_words(n: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if n >= size {
            let v = n as f64 / size as f64;
            return if v.fract() == 0.0 { format!("{v:.0} {unit}") } else { format!("{v:.1} {unit}") };
        }
    }
    format!("{n} bytes")
}

/// The recorder's side.
pub struct Receiver {
    rx: mpsc::UnboundedReceiver<(Emitted, usize)>,
    budget: Arc<Semaphore>,
}

impl Receiver {
    fn taken(&self, (item, held): (Emitted, usize)) -> Emitted {
        if held > 0 {
            self.budget.add_permits(held);
        }
        item
    }

    pub async fn recv(&mut self) -> Option<Emitted> {
        let item = self.rx.recv().await?;
        Some(self.taken(item))
    }

    pub fn try_recv(&mut self) -> Option<Emitted> {
        let item = self.rx.try_recv().ok()?;
        Some(self.taken(item))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(stage: &str, text: &str) -> LogLine {
        LogLine { at: chrono::Utc::now(), stage: stage.into(), attempt: 1, stream: Stream::Stdout, text: text.into() }
    }

    #[tokio::test]
    async fn a_stage_over_its_cap_is_cut_with_one_line_saying_so() {
        let (tx, mut rx) = channel(OutputLimits { in_flight: 1 << 20, per_stage: 25 });
        for _ in 0..10 {
            tx.output(line("noisy", "0123456789")).await;
        }
        tx.output(line("noisy", "x")).await;
        tx.output(line("quiet", "still kept")).await;
        drop(tx);
        let mut got = Vec::new();
        while let Some(Emitted::Log(l)) = rx.recv().await {
            got.push((l.stage, l.text));
        }
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got[0].1, "0123456789");
        assert!(got[2].1.starts_with("gantry: output of stage 'noisy' truncated: it printed more than 25 bytes"), "{got:?}");
        assert_eq!(got[3], ("quiet".to_string(), "still kept".to_string()));
    }

    #[tokio::test]
    async fn output_waits_while_too_much_is_in_flight() {
        let (tx, mut rx) = channel(OutputLimits { in_flight: 100, per_stage: u64::MAX });
        let sender = tokio::spawn(async move {
            for _ in 0..50 {
                tx.output(line("s", &"x".repeat(49))).await;
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!sender.is_finished(), "the sender waits for the recorder");
        let mut n = 0;
        while n < 50 {
            if rx.recv().await.is_some() {
                n += 1;
            }
        }
        sender.await.unwrap();
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(bytes_in_words(64 << 20), "64 MiB");
        assert_eq!(bytes_in_words(3 << 29), "1.5 GiB");
        assert_eq!(bytes_in_words(10), "10 bytes");
    }
}

/// The scheduler's and executors' only way to tell the world anything. It also remembers
/// how this run's stages ended and what they produced, for a gate that judges them: the
/// run's own knowledge, not a read of the store.
#[derive(Clone)]
pub struct Emitter {
    tx: Sender,
    memory: std::sync::Arc<std::sync::Mutex<BTreeMap<String, StageMemory>>>,
}

/// What the run knows of one of its stages.
#[derive(Debug, Clone, Default)]
pub struct StageMemory {
    /// Set once the stage is finished (no retry to come).
    pub state: Option<crate::events::StageState>,
    pub message: Option<String>,
    pub results: Vec<crate::events::StageResult>,
}

impl Emitter {
    pub fn new(tx: Sender) -> Self {
        Emitter { tx, memory: Default::default() }
    }

    pub fn event(&self, kind: EventKind) {
        if let Ok(mut memory) = self.memory.lock() {
            match &kind {
                EventKind::AttemptFinished { stage, result, will_retry: false, .. } => {
                    let m = memory.entry(stage.clone()).or_default();
                    m.state = Some(result.stage_state());
                    m.message = Some(result.describe());
                }
                EventKind::StageSkipped { stage, reason } => {
                    let m = memory.entry(stage.clone()).or_default();
                    m.state = Some(crate::events::StageState::Skipped);
                    m.message = Some(reason.clone());
                }
                EventKind::StageResult { stage, result } => {
                    memory.entry(stage.clone()).or_default().results.push(result.clone());
                }
                _ => {}
            }
        }
        self.tx.event(Event::now(kind));
    }

    /// What this run knows of `stage` so far.
    pub fn stage(&self, stage: &str) -> Option<StageMemory> {
        self.memory.lock().ok()?.get(stage).cloned()
    }

    /// A line of Gantry's own in a stage's log.
    pub fn log(&self, stage: &str, attempt: u32, stream: Stream, text: String) {
        self.tx.note(LogLine { at: chrono::Utc::now(), stage: stage.to_string(), attempt, stream, text });
    }

    /// A line of a container's output: waits while the recorder is behind, and counts
    /// towards the stage's cap.
    pub async fn output(&self, stage: &str, attempt: u32, stream: Stream, text: String) {
        self.tx.output(LogLine { at: chrono::Utc::now(), stage: stage.to_string(), attempt, stream, text }).await;
    }

    /// `output` from a callback that cannot wait (the builder's): capped, not held back.
    pub fn output_now(&self, stage: &str, attempt: u32, stream: Stream, text: String) {
        self.tx.output_now(LogLine { at: chrono::Utc::now(), stage: stage.to_string(), attempt, stream, text });
    }
}
