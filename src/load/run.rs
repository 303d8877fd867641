//! Driving a spec: one task per connection, recording into its own `Stats`.
//!
//! Open model: workers claim request indices from one counter, sleep until the request is
//! due, send it, and measure from when it was *due*. When every connection is busy, no
//! worker claims the next index, so that request waits and the wait is in its latency
//! (no coordinated omission). Closed model: each worker sends back-to-back.
//!
//! Threads: like wrk, one OS thread per core, each with its own single-threaded tokio
//! runtime and its share of the connections. A worker's timers, socket and task then stay
//! on one thread: no work stealing, no cross-thread wake-ups, which on a 2-core machine
//! shared with the target is the difference between trailing wrk and matching it.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, timeout_at, Instant};

use crate::load::conn::{Conn, SendError};
use crate::load::request::{RequestSet, Target};
use crate::load::schedule::Schedule;
use crate::load::spec::{LoadSpec, Mode, SpecError};
use crate::load::stats::{Outcome, Stats};
use crate::load::summary::LoadSummary;

/// Tokio's timer has 1 ms ticks and rounds wake-ups up; waking this much early and
/// measuring from the actual send keeps timer lateness out of the latencies.
const TIMER_SLACK: Duration = Duration::from_millis(1);
/// Pause after a failed connect in the closed loop, so a refused port is not hammered at
/// CPU speed (each attempt is still counted as a failed request).
const CONNECT_BACKOFF: Duration = Duration::from_millis(10);

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("cannot start the load threads: {0}")]
    Threads(#[from] std::io::Error),
}

struct Shared {
    spec: LoadSpec,
    target: Target,
    requests: RequestSet,
    schedule: Option<Schedule>,
    t0: Instant,
    /// Nothing new is due after `end`.
    end: Instant,
    /// `end + timeout`: in-flight requests are cut here and the unsent backlog is dropped,
    /// so a stalled target cannot keep the run going.
    deadline: Instant,
    next: AtomicU64,
    sent: AtomicU64,
    stats: Vec<Mutex<Stats>>,
}

impl Shared {
    fn stats(&self, worker: usize) -> MutexGuard<'_, Stats> {
        // A poisoned lock only means a worker panicked mid-record; its figures still count.
        self.stats[worker].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn merged(&self) -> Stats {
        let mut all = Stats::default();
        for w in 0..self.stats.len() {
            all.merge(&self.stats(w));
        }
        all
    }
}

/// A running load test.
pub struct LoadRun {
    shared: Arc<Shared>,
    /// Closed (all senders dropped) when every load thread has finished.
    done: mpsc::Receiver<()>,
    finished_at: Option<Instant>,
}

/// One line of live progress: `t=3s sent=600 done=598 rate=200.0/s p95=12.3ms failed=0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub elapsed: Duration,
    pub sent: u64,
    pub done: u64,
    pub rate: f64,
    pub p95_ms: f64,
    pub failed: u64,
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "t={}s sent={} done={} rate={:.1}/s p95={:.1}ms failed={}",
            self.elapsed.as_secs(),
            self.sent,
            self.done,
            self.rate,
            self.p95_ms,
            self.failed
        )
    }
}

impl LoadRun {
    /// Validates the spec and starts sending at once, on threads of its own (one per core),
    /// so it needs no particular runtime from the caller; `wait`/`finish` are plain futures.
    pub fn start(spec: LoadSpec) -> Result<LoadRun, LoadError> {
        spec.validate()?;
        let target = Target::parse(&spec.base_url)?;
        let requests = RequestSet::new(&spec)?;
        let schedule = (spec.mode == Mode::ConstantArrivalRate).then(|| Schedule::new(&spec));
        let workers_n = spec.connections as usize;
        let threads_n = std::thread::available_parallelism().map_or(1, |n| n.get()).min(workers_n);
        // Build every runtime before anything starts, so a failure leaves nothing running.
        let runtimes = (0..threads_n)
            .map(|_| tokio::runtime::Builder::new_current_thread().enable_all().build())
            .collect::<Result<Vec<_>, _>>()?;
        let t0 = Instant::now();
        let end = t0 + spec.duration();
        let shared = Arc::new(Shared {
            deadline: end + spec.timeout(),
            target,
            requests,
            schedule,
            t0,
            end,
            next: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            stats: (0..workers_n).map(|_| Mutex::new(Stats::default())).collect(),
            spec,
        });
        let (done_tx, done) = mpsc::channel::<()>(1);
        for (t, runtime) in runtimes.into_iter().enumerate() {
            let shared = shared.clone();
            let done_tx = done_tx.clone();
            std::thread::Builder::new().name(format!("gantry-load-{t}")).spawn(move || {
                runtime.block_on(async {
                    let mut workers = JoinSet::new();
                    for w in (t..workers_n).step_by(threads_n) {
                        match shared.spec.mode {
                            Mode::ConstantArrivalRate => workers.spawn(open_worker(shared.clone(), w)),
                            Mode::MaxThroughput => workers.spawn(closed_worker(shared.clone(), w)),
                        };
                    }
                    while workers.join_next().await.is_some() {}
                });
                drop(done_tx);
            })?;
        }
        Ok(LoadRun { shared, done, finished_at: None })
    }

    pub fn elapsed(&self) -> Duration {
        self.finished_at.unwrap_or_else(Instant::now) - self.shared.t0
    }

    /// Requests handed to a connection so far.
    pub fn sent(&self) -> u64 {
        self.shared.sent.load(Ordering::Relaxed)
    }

    /// The figures so far (`complete` once the run has finished).
    pub fn snapshot(&self) -> LoadSummary {
        LoadSummary::from_stats(&self.shared.merged(), self.elapsed(), self.finished_at.is_some())
    }

    pub fn progress(&self, summary: &LoadSummary) -> Progress {
        Progress {
            elapsed: Duration::from_millis(summary.elapsed_ms),
            sent: self.sent(),
            done: summary.requests,
            rate: summary.rate,
            p95_ms: summary.latency_ms.p95,
            failed: summary.failed,
        }
    }

    pub fn is_finished(&self) -> bool {
        self.finished_at.is_some()
    }

    /// Waits for every worker. Cancel-safe, so it can sit in a `select!` with a ticker.
    pub async fn wait(&mut self) {
        while self.done.recv().await.is_some() {}
        self.finished_at.get_or_insert_with(Instant::now);
    }

    /// Waits for the end and returns the final summary (`complete: true`).
    pub async fn finish(mut self) -> LoadSummary {
        self.wait().await;
        self.snapshot()
    }
}

/// Runs a spec to the end.
pub async fn run(spec: LoadSpec) -> Result<LoadSummary, LoadError> {
    Ok(LoadRun::start(spec)?.finish().await)
}

fn outcome_of(result: Result<Result<(u16, u64), SendError>, tokio::time::error::Elapsed>, conn: &mut Conn) -> Outcome {
    match result {
        Ok(Ok((status, bytes))) => Outcome::Response { status, bytes },
        Ok(Err(_)) => Outcome::ConnectionError,
        Err(_) => {
            conn.reset(); // a half-read response would poison the next request
            Outcome::Timeout
        }
    }
}

async fn open_worker(shared: Arc<Shared>, w: usize) {
    let schedule = shared.schedule.as_ref().expect("open model has a schedule");
    let total = schedule.total();
    let timeout = shared.spec.timeout();
    let mut conn = Conn::new(&shared.target.host, shared.target.port);
    loop {
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        if i >= total {
            break;
        }
        let due = shared.t0 + schedule.offset(i);
        if Instant::now() >= shared.deadline {
            let now = Instant::now();
            shared.stats(w).record(Outcome::Dropped, now.saturating_duration_since(due), 0);
            continue;
        }
        if due > Instant::now() + TIMER_SLACK {
            sleep_until(due - TIMER_SLACK).await;
        }
        let prepared = shared.requests.get(i);
        shared.sent.fetch_add(1, Ordering::Relaxed);
        let start = Instant::now();
        let result = timeout_at((start + timeout).min(shared.deadline), conn.send(prepared.build())).await;
        let done = Instant::now();
        let outcome = outcome_of(result, &mut conn);
        // From when it was due if it went out late (waiting for a connection counts), from
        // the actual send if the timer woke a little early.
        let latency = done - due.min(start);
        shared.stats(w).record(outcome, latency, prepared.wire_bytes);
    }
}

async fn closed_worker(shared: Arc<Shared>, w: usize) {
    let timeout = shared.spec.timeout();
    let stride = shared.stats.len() as u64;
    let mut conn = Conn::new(&shared.target.host, shared.target.port);
    let mut i = w as u64; // worker w sends w, w+N, w+2N...: the spec's mix overall
    while Instant::now() < shared.end {
        let prepared = shared.requests.get(i);
        i += stride;
        // Connect outside the measured time, as wrk does: latency is from the actual send.
        let connect_start = Instant::now();
        match timeout_at(connect_start + timeout, conn.ready()).await {
            Ok(Ok(())) => {}
            failed => {
                let outcome = if failed.is_err() { Outcome::Timeout } else { Outcome::ConnectionError };
                conn.reset();
                shared.stats(w).record(outcome, connect_start.elapsed(), 0);
                sleep(CONNECT_BACKOFF).await;
                continue;
            }
        }
        shared.sent.fetch_add(1, Ordering::Relaxed);
        let start = Instant::now();
        let result = timeout_at((start + timeout).min(shared.deadline), conn.send(prepared.build())).await;
        let latency = start.elapsed();
        let outcome = outcome_of(result, &mut conn);
        shared.stats(w).record(outcome, latency, prepared.wire_bytes);
    }
}
