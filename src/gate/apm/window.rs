//! What happened between two scrapes: counter increases, and from them rates, ratios,
//! counts and histogram quantiles, in PromQL's terms.
//!
//! Increases are per series, then summed (as `sum(increase(...))`):
//! - after >= before: the difference;
//! - after < before: the counter was reset (the process restarted), so it counted `after`
//!   since the reset; what it counted before the reset, after the first scrape, is lost —
//!   as in Prometheus with two points;
//! - a series only in the second scrape started at 0 during the window: client libraries
//!   (and the demo) create a labelled series on its first event, so the first 500 answer
//!   must count, where Prometheus' `increase` would miss it;
//! - a series only in the first scrape (gone after a restart) contributes 0.
//!
//! What is missing and what is zero: a metric name absent from the second scrape, or a
//! matcher on a label no series of that metric carries (a typo: `status` for `code`), is
//! [`Missing`]. A metric that exists but has no series matching the values asked for
//! (`code=~"5.."` before the first error) has counted zero such events, which is a real 0.
//! A ratio with a zero denominator and a quantile without observations are [`Missing`].

use std::collections::BTreeMap;
use std::time::Duration;

use super::exposition::{parse_value, Sample};
use super::quantile::{histogram_quantile, Bucket};
use super::scrape::Scrape;
use super::selector::Selector;
use super::Missing;

type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone)]
pub struct Window {
    pub url: String,
    pub duration: Duration,
    before: BTreeMap<(String, Labels), f64>,
    after: Vec<Sample>,
}

impl Window {
    pub fn new(before: &Scrape, after: &Scrape) -> Window {
        Window {
            url: after.url.clone(),
            duration: after.at.saturating_duration_since(before.at),
            before: before
                .samples
                .iter()
                .map(|s| ((s.name.clone(), s.labels.clone()), s.value))
                .collect(),
            after: after.samples.clone(),
        }
    }

    pub fn seconds(&self) -> f64 {
        self.duration.as_secs_f64()
    }

    /// The increase of every series the selector matches, with its labels.
    fn increases(&self, sel: &Selector, what: &str) -> Result<Vec<(Labels, f64)>, Missing> {
        let of_metric: Vec<&Sample> = self.after.iter().filter(|s| s.name == sel.metric).collect();
        if of_metric.is_empty() {
            return Err(Missing::new(
                what,
                format!("{} exposes no metric named '{}'", self.url, sel.metric),
            ));
        }
        for m in sel.matchers.iter().filter(|m| m.requires_label()) {
            if !of_metric.iter().any(|s| s.labels.contains_key(&m.label)) {
                return Err(Missing::new(
                    what,
                    format!("no series of '{}' has a label '{}'", sel.metric, m.label),
                ));
            }
        }
        let mut out = Vec::new();
        for s in of_metric
            .into_iter()
            .filter(|s| sel.matches_labels(&s.labels))
        {
            if !s.value.is_finite() {
                return Err(Missing::new(
                    what,
                    format!("series {} has the value {}", s.name, s.value),
                ));
            }
            let before = self
                .before
                .get(&(s.name.clone(), s.labels.clone()))
                .copied();
            let inc = match before {
                Some(b) if s.value >= b => s.value - b,
                // Reset, or born during the window: it counted `after` from zero.
                _ => s.value,
            };
            out.push((s.labels.clone(), inc));
        }
        Ok(out)
    }

    /// Total increase of the matching counter series over the window (`sum(increase())`).
    pub fn count(&self, sel: &Selector) -> Result<f64, Missing> {
        let what = format!("increase of {sel}");
        Ok(self.increases(sel, &what)?.iter().map(|(_, v)| v).sum())
    }

    /// Per-second rate of the matching counter series (`sum(rate())`).
    pub fn rate(&self, sel: &Selector) -> Result<f64, Missing> {
        let what = format!("rate of {sel}");
        let secs = self.seconds();
        if secs <= 0.0 {
            return Err(Missing::new(what, "the window has no length"));
        }
        Ok(self
            .increases(sel, &what)?
            .iter()
            .map(|(_, v)| v)
            .sum::<f64>()
            / secs)
    }

    /// `increase(numerator) / increase(denominator)`, e.g. 5xx answers / all answers.
    pub fn ratio(&self, numerator: &Selector, denominator: &Selector) -> Result<f64, Missing> {
        let what = format!("ratio {numerator} / {denominator}");
        let num: f64 = self
            .increases(numerator, &what)?
            .iter()
            .map(|(_, v)| v)
            .sum();
        let den: f64 = self
            .increases(denominator, &what)?
            .iter()
            .map(|(_, v)| v)
            .sum();
        if den <= 0.0 {
            return Err(Missing::new(
                what,
                format!(
                    "the denominator did not increase in the {:.1}s window",
                    self.seconds()
                ),
            ));
        }
        Ok(num / den)
    }

    /// The q-quantile of histogram `sel` (its base name, without `_bucket`) over the
    /// window: bucket increases summed across the matching series by `le`, then
    /// [`histogram_quantile`]. In the histogram's unit: seconds for `*_seconds`.
    pub fn quantile(&self, q: f64, sel: &Selector) -> Result<f64, Missing> {
        let what = format!("p{} of {sel}", fmt_q(q));
        let buckets_sel = sel.with_metric(&format!("{}_bucket", sel.metric));
        let mut by_le: BTreeMap<u64, Bucket> = BTreeMap::new();
        for (labels, inc) in self.increases(&buckets_sel, &what)? {
            let le = labels
                .get("le")
                .and_then(|v| parse_value(v))
                .ok_or_else(|| Missing::new(&what, "a bucket series has no numeric 'le' label"))?;
            // Key by the bits of the bound so "0.1" from every series lands in one bucket.
            by_le
                .entry(le.to_bits())
                .or_insert(Bucket {
                    upper_bound: le,
                    count: 0.0,
                })
                .count += inc;
        }
        if by_le.is_empty() {
            return Err(Missing::new(
                what,
                format!("no series match in the {:.1}s window", self.seconds()),
            ));
        }
        let buckets: Vec<Bucket> = by_le.into_values().collect();
        histogram_quantile(q, &buckets)
            .map_err(|e| Missing::new(&what, format!("{e} in the {:.1}s window", self.seconds())))
    }
}

/// 0.95 → "95", 0.999 → "99.9".
pub(crate) fn fmt_q(q: f64) -> String {
    let p = (q * 1000.0).round() / 10.0;
    if p.fract() == 0.0 {
        format!("{}", p as i64)
    } else {
        format!("{p}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn window(before: &str, after: &str, secs: u64) -> Window {
        let t0 = Instant::now();
        let b = Scrape::from_text("http://app/metrics", before, t0).unwrap();
        let a =
            Scrape::from_text("http://app/metrics", after, t0 + Duration::from_secs(secs)).unwrap();
        Window::new(&b, &a)
    }

    fn sel(s: &str) -> Selector {
        Selector::parse(s).unwrap()
    }

    const BEFORE: &str = r#"
reqs{route="/",code="200"} 100
reqs{route="/x",code="200"} 50
h_bucket{route="/",le="0.1"} 10
h_bucket{route="/",le="0.25"} 10
h_bucket{route="/",le="+Inf"} 10
h_bucket{route="/x",le="0.1"} 0
h_bucket{route="/x",le="0.25"} 0
h_bucket{route="/x",le="+Inf"} 0
"#;
    const AFTER: &str = r#"
reqs{route="/",code="200"} 180
reqs{route="/",code="500"} 20
reqs{route="/x",code="200"} 10
h_bucket{route="/",le="0.1"} 20
h_bucket{route="/",le="0.25"} 110
h_bucket{route="/",le="+Inf"} 110
h_bucket{route="/x",le="0.1"} 0
h_bucket{route="/x",le="0.25"} 0
h_bucket{route="/x",le="+Inf"} 0
"#;

    #[test]
    fn counts_rates_and_ratios_with_new_series_and_resets() {
        let w = window(BEFORE, AFTER, 10);
        // "/" 200: +80; "/" 500: new series, +20; "/x" 200: reset 50 → 10, so +10.
        assert_eq!(w.count(&sel("reqs")).unwrap(), 110.0);
        assert_eq!(w.rate(&sel("reqs")).unwrap(), 11.0);
        assert_eq!(w.rate(&sel(r#"reqs{route="/"}"#)).unwrap(), 10.0);
        let r = w.ratio(&sel(r#"reqs{code=~"5.."}"#), &sel("reqs")).unwrap();
        assert!((r - 20.0 / 110.0).abs() < 1e-12);
        // A matching value that never occurred is a real zero ...
        assert_eq!(w.count(&sel(r#"reqs{code="503"}"#)).unwrap(), 0.0);
    }

    #[test]
    fn absent_metric_unknown_label_and_zero_denominator_are_missing() {
        let w = window(BEFORE, AFTER, 10);
        let m = w.rate(&sel("nope_total")).unwrap_err();
        assert!(m.why.contains("no metric named 'nope_total'"), "{m}");
        // ... but a matcher on a label that no series has is a mistake, not a zero.
        let m = w.count(&sel(r#"reqs{status="500"}"#)).unwrap_err();
        assert!(m.why.contains("label 'status'"), "{m}");
        let m = w
            .ratio(&sel("reqs"), &sel(r#"reqs{route="/none"}"#))
            .unwrap_err();
        assert!(m.why.contains("denominator"), "{m}");
        let m = w.quantile(0.95, &sel(r#"h{route="/x"}"#)).unwrap_err();
        assert!(m.why.contains("no observations"), "{m}");
        assert_eq!(m.what, r#"p95 of h{route="/x"}"#);
        let still = window(BEFORE, BEFORE, 0);
        assert!(still
            .rate(&sel("reqs"))
            .unwrap_err()
            .why
            .contains("no length"));
    }

    #[test]
    fn quantile_from_bucket_deltas_summed_across_series() {
        let w = window(BEFORE, AFTER, 10);
        // Deltas: le 0.1 → 10, le 0.25 → 100, +Inf → 100. p95: rank 95 in (0.1, 0.25].
        let p95 = w.quantile(0.95, &sel("h")).unwrap();
        assert!((p95 - (0.1 + 0.15 * 85.0 / 90.0)).abs() < 1e-12, "{p95}");
        assert!(w.quantile(0.5, &sel(r#"h{route="/"}"#)).is_ok());
    }

    #[test]
    fn formats_quantiles() {
        assert_eq!(fmt_q(0.95), "95");
        assert_eq!(fmt_q(0.999), "99.9");
        assert_eq!(fmt_q(0.5), "50");
    }
}
