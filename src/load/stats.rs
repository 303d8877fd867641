//! What a run has measured so far: one `Stats` per connection worker (so recording never
//! contends), merged on demand into one for snapshots and the final summary.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP response with this status, `bytes` received (status line, headers, body).
    Response { status: u16, bytes: u64 },
    /// Connection refused/reset or a malformed response: no latency is recorded, since an
    /// instant refusal would otherwise pull the percentiles down.
    ConnectionError,
    /// No answer within the timeout: the time waited is recorded, a lower bound that keeps
    /// a stalled target visible in the percentiles.
    Timeout,
    /// Still unsent when the run's drain deadline passed; counted as a timeout and recorded
    /// with the time it had been due.
    Dropped,
}

#[derive(Debug, Clone)]
pub struct Stats {
    /// Latency in microseconds, 3 significant digits.
    pub latency_us: Histogram<u64>,
    /// Responses by status code (index = code, 0..600); others in `other_status`.
    status: Vec<u64>,
    other_status: BTreeMap<u16, u64>,
    pub errors: u64,
    pub dropped: u64,
    pub failed: u64,
    pub requests: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            latency_us: new_histogram(),
            status: vec![0; 600],
            other_status: BTreeMap::new(),
            errors: 0,
            dropped: 0,
            failed: 0,
            requests: 0,
            bytes_received: 0,
            bytes_sent: 0,
        }
    }
}

/// The histogram every latency goes into: auto-resizing, microseconds, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant digits is a valid histogram precision")
}

impl Stats {
    /// Records one finished request; `sent` is the bytes written for it (0 if never sent).
    pub fn record(&mut self, outcome: Outcome, latency: Duration, sent: u64) {
        self.requests += 1;
        self.bytes_sent += sent;
        let failed = match outcome {
            Outcome::Response { status, bytes } => {
                self.bytes_received += bytes;
                match self.status.get_mut(status as usize) {
                    Some(n) => *n += 1,
                    None => *self.other_status.entry(status).or_default() += 1,
                }
                status >= 400
            }
            Outcome::ConnectionError | Outcome::Timeout => {
                self.errors += 1;
                true
            }
            Outcome::Dropped => {
                self.errors += 1;
                self.dropped += 1;
                true
            }
        };
        self.failed += failed as u64;
        if outcome != Outcome::ConnectionError {
            // Auto-resizing: recording cannot fail for any u64 below i64::MAX / 2.
            let us = (latency.as_micros() as u64).max(1);
            let _ = self.latency_us.record(us);
        }
    }

    pub fn merge(&mut self, other: &Stats) {
        let _ = self.latency_us.add(&other.latency_us);
        for (a, b) in self.status.iter_mut().zip(&other.status) {
            *a += b;
        }
        for (code, n) in &other.other_status {
            *self.other_status.entry(*code).or_default() += n;
        }
        self.errors += other.errors;
        self.dropped += other.dropped;
        self.failed += other.failed;
        self.requests += other.requests;
        self.bytes_received += other.bytes_received;
        self.bytes_sent += other.bytes_sent;
    }

    /// `{"200": n, "500": n, "error": n}`, only the codes seen.
    pub fn status_counts(&self) -> BTreeMap<String, u64> {
        let mut out: BTreeMap<String, u64> = self
            .status
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(code, n)| (code.to_string(), *n))
            .collect();
        for (code, n) in &self.other_status {
            out.insert(code.to_string(), *n);
        }
        if self.errors > 0 {
            out.insert("error".into(), self.errors);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_failures_like_k6() {
        let mut s = Stats::default();
        s.record(Outcome::Response { status: 200, bytes: 10 }, Duration::from_millis(5), 3);
        s.record(Outcome::Response { status: 404, bytes: 10 }, Duration::from_millis(5), 3);
        s.record(Outcome::ConnectionError, Duration::from_millis(1), 0);
        s.record(Outcome::Timeout, Duration::from_secs(10), 3);
        let mut t = Stats::default();
        t.merge(&s);
        assert_eq!((t.requests, t.failed, t.errors, t.bytes_received, t.bytes_sent), (4, 3, 2, 20, 9));
        assert_eq!(t.latency_us.len(), 3, "the connection error has no latency");
        let counts = t.status_counts();
        assert_eq!((counts["200"], counts["404"], counts["error"]), (1, 1, 2));
    }
}
