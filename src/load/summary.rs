//! `LoadSummary`: what the agent writes (JSON) and the coordinator reads back.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use base64::prelude::{Engine as _, BASE64_STANDARD};
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::load::stats::Stats;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadSummary {
    /// False for the per-second snapshots, true for the final figures.
    pub complete: bool,
    pub elapsed_ms: u64,
    /// Requests with an outcome (response, error or timeout).
    pub requests: u64,
    /// Achieved requests per second over `elapsed_ms`.
    pub rate: f64,
    /// Status >= 400 or no response (k6's http_req_failed).
    pub failed: u64,
    pub failed_rate: f64,
    /// Responses by status code, plus `error` for connection errors and timeouts.
    pub status_counts: BTreeMap<String, u64>,
    /// Requests never sent because the run's drain deadline passed (also in `error`).
    #[serde(default)]
    pub dropped: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub latency_ms: LatencyMs,
    /// Base64 of the HDR V2 (deflate) serialisation of the latency histogram, in µs.
    pub histogram: String,
}

/// Fixed percentiles for people; a gate decodes `histogram` instead.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyMs {
    pub min: f64,
    pub avg: f64,
    pub med: f64,
    pub max: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p99_9: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    #[error("the summary's histogram is not base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("the summary's histogram is not an HDR V2 histogram: {0}")]
    Hdr(#[from] hdrhistogram::serialization::DeserializeError),
}

fn ms(us: f64) -> f64 {
    // Rounded to the microsecond, which is the histogram's unit anyway.
    (us).round() / 1000.0
}

impl LatencyMs {
    pub fn from_histogram(h: &Histogram<u64>) -> LatencyMs {
        if h.is_empty() {
            return LatencyMs::default();
        }
        let q = |q: f64| ms(h.value_at_quantile(q) as f64);
        LatencyMs {
            min: ms(h.min() as f64),
            avg: ms(h.mean()),
            med: q(0.5),
            max: ms(h.max() as f64),
            p90: q(0.90),
            p95: q(0.95),
            p99: q(0.99),
            p99_9: q(0.999),
        }
    }
}

/// Base64 of the V2-deflate serialisation, the form HdrHistogram tools also read.
pub fn encode_histogram(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    // Writing into a Vec cannot fail, and a histogram always serialises.
    V2DeflateSerializer::new().serialize(h, &mut buf).expect("histogram serialises into memory");
    BASE64_STANDARD.encode(buf)
}

pub fn decode_histogram(text: &str) -> Result<Histogram<u64>, SummaryError> {
    let bytes = BASE64_STANDARD.decode(text.trim())?;
    Ok(Deserializer::new().deserialize(&mut bytes.as_slice())?)
}

impl LoadSummary {
    pub fn from_stats(stats: &Stats, elapsed: Duration, complete: bool) -> LoadSummary {
        let secs = elapsed.as_secs_f64();
        let ratio = |n: u64| if stats.requests == 0 { 0.0 } else { n as f64 / stats.requests as f64 };
        LoadSummary {
            complete,
            elapsed_ms: elapsed.as_millis() as u64,
            requests: stats.requests,
            rate: if secs > 0.0 { stats.requests as f64 / secs } else { 0.0 },
            failed: stats.failed,
            failed_rate: ratio(stats.failed),
            status_counts: stats.status_counts(),
            dropped: stats.dropped,
            bytes_received: stats.bytes_received,
            bytes_sent: stats.bytes_sent,
            latency_ms: LatencyMs::from_histogram(&stats.latency_us),
            histogram: encode_histogram(&stats.latency_us),
        }
    }

    /// The latency histogram (µs) back, to compute any percentile exactly as recorded.
    pub fn decode_histogram(&self) -> Result<Histogram<u64>, SummaryError> {
        decode_histogram(&self.histogram)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a summary serialises")
    }

    pub fn from_json(text: &str) -> Result<LoadSummary, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// A plain-text table for terminals.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let state = if self.complete { "complete" } else { "in progress" };
        let _ = writeln!(out, "requests   {} in {:.1}s ({:.1}/s, {state})", self.requests, self.elapsed_ms as f64 / 1000.0, self.rate);
        let _ = writeln!(out, "failed     {} ({:.2}%)", self.failed, self.failed_rate * 100.0);
        let statuses: Vec<String> = self.status_counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(out, "status     {}", if statuses.is_empty() { "-".into() } else { statuses.join(" ") });
        if self.dropped > 0 {
            let _ = writeln!(out, "dropped    {} (never sent before the drain deadline)", self.dropped);
        }
        let _ = writeln!(out, "data       received {}, sent {}", bytes(self.bytes_received), bytes(self.bytes_sent));
        let l = &self.latency_ms;
        let cols = [("min", l.min), ("avg", l.avg), ("med", l.med), ("p90", l.p90), ("p95", l.p95), ("p99", l.p99), ("p99.9", l.p99_9), ("max", l.max)];
        let _ = write!(out, "latency ms");
        for (name, _) in cols {
            let _ = write!(out, " {name:>9}");
        }
        let _ = write!(out, "\n          ");
        for (_, v) in cols {
            let _ = write!(out, " {v:>9.2}");
        }
        out.push('\n');
        out
    }
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let (mut v, mut u) = (n as f64, 0);
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::stats::Outcome;

    #[test]
    fn histogram_round_trips_through_json() {
        let mut s = Stats::default();
        for ms in 1..=1000 {
            s.record(Outcome::Response { status: 200, bytes: 100 }, Duration::from_millis(ms), 50);
        }
        let summary = LoadSummary::from_stats(&s, Duration::from_secs(10), true);
        assert_eq!(summary.rate, 100.0);
        assert!((summary.latency_ms.p99 - 990.0).abs() < 1.0, "{:?}", summary.latency_ms);
        let back = LoadSummary::from_json(&summary.to_json()).unwrap();
        let h = back.decode_histogram().unwrap();
        assert_eq!(h.len(), 1000);
        assert_eq!(h.value_at_quantile(0.5), s.latency_us.value_at_quantile(0.5));
        assert!(summary.table().contains("status     200=1000"));
    }

    #[test]
    fn bad_histograms_are_typed_errors() {
        assert!(matches!(decode_histogram("not base64!"), Err(SummaryError::Base64(_))));
        assert!(matches!(decode_histogram("AAAA"), Err(SummaryError::Hdr(_))));
    }
}
