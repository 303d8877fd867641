//! When each request of an open-model run is due: the arrival rate integrated over time.
//!
//! The cumulative count N(t) = ∫ rate is piecewise quadratic (linear ramps between stage
//! targets); request `i` is due at the t where N(t) = i, so a ramp is exactly as dense as
//! asked, with no per-tick rounding.

use std::time::Duration;

use crate::load::spec::LoadSpec;

#[derive(Debug, Clone, Copy)]
struct Segment {
    start: f64, // seconds since the run's start
    len: f64,   // seconds
    r0: f64,    // rate at the start, per second
    r1: f64,    // rate at the end, per second
    n0: f64,    // arrivals before this segment
}

impl Segment {
    fn count(&self) -> f64 {
        (self.r0 + self.r1) / 2.0 * self.len
    }
}

#[derive(Debug, Clone)]
pub struct Schedule {
    segments: Vec<Segment>,
    total: u64,
}

impl Schedule {
    /// The schedule of a validated constant-arrival-rate spec.
    pub fn new(spec: &LoadSpec) -> Schedule {
        let mut segments = Vec::new();
        let (mut start, mut n0) = (0.0, 0.0);
        let mut push = |len: f64, r0: f64, r1: f64| {
            let s = Segment { start, len, r0, r1, n0 };
            start += len;
            n0 += s.count();
            segments.push(s);
        };
        if spec.stages.is_empty() {
            let rate = spec.rate.unwrap_or(0.0);
            push(spec.duration().as_secs_f64(), rate, rate);
        } else {
            let mut from = spec.rate.unwrap_or(0.0);
            for stage in &spec.stages {
                push(stage.duration_ms as f64 / 1000.0, from, stage.target);
                from = stage.target;
            }
        }
        let end: f64 = segments.iter().map(Segment::count).sum();
        // Request i is due while N(t) = i < N(end); the epsilon keeps 200/s × 30 s at 6000
        // whatever the float rounding.
        let total = (end - 1e-9).ceil().max(0.0) as u64;
        Schedule { segments, total }
    }

    /// How many requests the run sends.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// When request `i` (< total) is due, from the run's start.
    pub fn offset(&self, i: u64) -> Duration {
        let i = i as f64;
        // The last segment whose first arrival is at or before i (empty segments, rate 0,
        // share n0 with the next one and are skipped by taking the last match).
        let idx = self.segments.partition_point(|s| s.n0 <= i).saturating_sub(1);
        let s = &self.segments[idx];
        let k = i - s.n0;
        // Solve r0·x + (r1−r0)/(2·len)·x² = k in the form that is stable for either sign of
        // the slope and for r0 = 0.
        let a = (s.r1 - s.r0) / (2.0 * s.len);
        let root = (s.r0 * s.r0 + 4.0 * a * k).max(0.0).sqrt();
        let denom = s.r0 + root;
        let x = if denom > 0.0 { 2.0 * k / denom } else { 0.0 };
        Duration::from_secs_f64(s.start + x.clamp(0.0, s.len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> LoadSpec {
        LoadSpec::from_json(json).unwrap()
    }

    #[test]
    fn constant_rate_is_evenly_spaced() {
        let s = Schedule::new(&spec(r#"{"base_url":"http://a","requests":[{"path":"/"}],"rate":200,"duration_ms":30000}"#));
        assert_eq!(s.total(), 6000);
        assert_eq!(s.offset(0), Duration::ZERO);
        assert!((s.offset(200).as_secs_f64() - 1.0).abs() < 1e-9);
        assert!(s.offset(5999) < Duration::from_secs(30));
    }

    #[test]
    fn ramps_integrate_the_rate() {
        // 0 -> 100/s over 2 s (100 arrivals), then 100/s flat for 1 s (100 more), then 0.
        let s = Schedule::new(&spec(r#"{"base_url":"http://a","requests":[{"path":"/"}],
            "stages":[{"duration_ms":2000,"target":100},{"duration_ms":1000,"target":100},{"duration_ms":1000,"target":0}]}"#));
        assert_eq!(s.total(), 250);
        // N(t) = 25 t² on the first ramp: arrival 25 is at t = 1 s, arrival 100 at 2 s.
        assert!((s.offset(25).as_secs_f64() - 1.0).abs() < 1e-9);
        assert!((s.offset(100).as_secs_f64() - 2.0).abs() < 1e-9);
        assert!((s.offset(150).as_secs_f64() - 2.5).abs() < 1e-9);
        // Offsets never go backwards.
        let offs: Vec<_> = (0..250).map(|i| s.offset(i)).collect();
        assert!(offs.windows(2).all(|w| w[0] <= w[1]));
        assert!(offs[249] < Duration::from_secs(4));
    }

    #[test]
    fn zero_rate_stages_are_skipped() {
        let s = Schedule::new(&spec(r#"{"base_url":"http://a","requests":[{"path":"/"}],
            "stages":[{"duration_ms":1000,"target":0},{"duration_ms":1000,"target":0},{"duration_ms":1000,"target":20}]}"#));
        assert_eq!(s.total(), 10);
        assert!(s.offset(0) >= Duration::from_secs(2));
    }
}
