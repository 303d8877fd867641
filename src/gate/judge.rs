//! A statistical judgement of a latency comparison: is the candidate release slower than the
//! baseline, beyond noise?
//!
//! The promotion gate compares the latencies of a baseline run (the release in production)
//! with those of a candidate run. Two runs of the same code never give the same numbers, so a
//! plain "candidate p95 > baseline p95" blocks healthy releases at random, and a fixed margin
//! on it is either too loose for large runs or too tight for small ones. Kayenta (Netflix /
//! Google's canary judge) answers this with two checks that must both fire before a metric
//! counts as regressed, and so does [`judge_latency`]:
//!
//! 1. **Significance.** The candidate is slower than the baseline with the configured
//!    confidence (default 99%), by either of two one-sided, distribution-free tests:
//!    - the Mann-Whitney U test (candidate stochastically greater). It is rank-based, so it makes
//!      no assumption about the shape of latency distributions (skewed, heavy-tailed,
//!      multi-modal), and one 30 s outlier weighs no more than any other slow request. Normal
//!      approximation with the tie correction of the variance and a continuity correction
//!      (scipy's `mannwhitneyu(candidate, baseline, alternative="greater",
//!      method="asymptotic")` gives the same numbers);
//!    - a p95 exceedance test: pool both runs, and test whether the candidate holds more of the
//!      values above the pooled p95 than chance allows (hypergeometric, normal approximation).
//!
//!    The U test is Kayenta's, and it has the most power against a slowdown of the whole
//!    distribution. It is a test of "which run's requests are generally slower", though: when
//!    only the slow half of the requests gets slower (p95 +25%, median unchanged), the U
//!    statistic moves by ~2% of its range, about what a 3% difference between two healthy runs
//!    moves it, so such a regression goes through whenever the baseline run happened to be the
//!    slower one (benches/gate_accuracy: 24% of tail-only regressions missed with +/-3% run
//!    noise). The exceedance test looks where the effect is measured, at the p95, and catches
//!    those. Each test runs at alpha/2 (Bonferroni: reported `p_value` = min(1, 2 min(p_U,
//!    p_p95))), so noise alone rejects at most `1 - confidence` of the time. `p95_test: false`
//!    leaves the U test alone.
//! 2. **Relevance.** The effect, the ratio of the candidate's p95 to the baseline's, exceeds
//!    `1 + tolerance` (default +10%). Significance alone is not enough: at 60 s x 200 req/s =
//!    12,000 requests a run a few percent slower than another is "significant" at any
//!    confidence, and real runs differ by a few percent (noisy neighbours, JIT, caches).
//!
//! Why the p95 ratio as the effect size: the gate's own thresholds, SLOs and the regressions it
//! is there to stop are stated in tail percentiles ("p95 +25%"), and a regression often lives in
//! the tail only (a slow path taken by some requests leaves the median where it was). The
//! Hodges-Lehmann shift (the estimator that goes with the U test) and the ratio of medians
//! measure the middle of the distribution and score such a tail regression as a few percent,
//! inside any sensible tolerance. The p95 of a run of thousands of requests is estimated to
//! about 1% (lognormal, sigma 0.5, n = 12,000: standard error of log p95 ~ 0.01), so the
//! ratio is stable enough to compare against a 10% tolerance; at small n it is noisy, but a
//! significance test must agree before anything is blocked, which keeps the false-block rate
//! at or below `1 - confidence` whatever the noise of the effect estimate. The default 10%
//! sits between healthy run-to-run differences (a few percent of run noise plus ~1.5% p95
//! sampling noise per run: up to ~9% in the bench) and the +25% the gate must catch.
//!
//! A Finding is reached only from valid data: empty or small samples (below `min_samples`),
//! NaN, infinite or negative values and an invalid config all give `NotEnoughData`, never a
//! silent pass.
//!
//! The test is computed from sorted runs of `(value, count)`: the raw-sample path sorts the
//! samples and groups equal values, the histogram path reads an HDR histogram's buckets as they
//! are. One merge pass over both run lists gives U and the tie term, so two load runs can be
//! judged from their histograms alone, in time proportional to the number of buckets.

use std::fmt;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// What one comparison found (the gate's overall verdict is `gate::verdict::Verdict`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finding {
    /// No regression beyond the tolerance with the stated confidence.
    Pass,
    /// The candidate is slower with the stated confidence, by more than the tolerance.
    Regressed,
    /// The data cannot support a judgement (too few samples, invalid values or config). Never
    /// to be read as a pass: the gate should stop or ask for a person.
    NotEnoughData,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Finding::Pass => "pass",
            Finding::Regressed => "regressed",
            Finding::NotEnoughData => "not enough data",
        })
    }
}

/// The judgement of a latency comparison, with the numbers it rests on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    pub verdict: Finding,
    /// The p-value the verdict compares with `1 - confidence`: "candidate slower than baseline",
    /// the Bonferroni combination min(1, 2 min(p_U, p_p95)) of the two one-sided tests (just
    /// p_U with `p95_test` off); 1.0 when no test was run (`NotEnoughData`).
    pub p_value: f64,
    /// One-sided Mann-Whitney U p-value (candidate stochastically greater).
    pub mann_whitney_p: f64,
    /// One-sided p-value of the p95 exceedance test (candidate has more values above the pooled
    /// p95 than chance allows); 1.0 when not run.
    pub p95_test_p: f64,
    /// The confidence the test was run at (from the config), e.g. 0.99.
    pub confidence: f64,
    /// Candidate p95 / baseline p95 (1.0 = unchanged, 1.25 = candidate's p95 is 25% higher);
    /// 1.0 when it could not be computed (empty or invalid input).
    pub effect: f64,
    pub baseline_n: u64,
    pub candidate_n: u64,
    /// One sentence a person can read in the gate's report.
    pub explanation: String,
}

/// How sure the judgement must be, and how large a slowdown matters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JudgeConfig {
    /// Confidence of the one-sided test, in (0, 1): 0.99 means a healthy candidate is blocked
    /// by noise at most 1% of the time.
    pub confidence: f64,
    /// Relative p95 increase still accepted as run-to-run noise even when it is statistically
    /// significant: 0.10 = up to +10%.
    pub tolerance: f64,
    /// Fewest samples each side needs; below it the verdict is `NotEnoughData`. The normal
    /// approximation of the test is poor below ~20 per side, and a p95 from fewer than ~50
    /// samples rests on two or three values.
    pub min_samples: usize,
    /// Also run the p95 exceedance test next to the Mann-Whitney U test (Bonferroni-combined,
    /// see the module doc). `false` gives the plain Kayenta-style U test, which misses
    /// tail-only regressions once runs differ by a few percent.
    pub p95_test: bool,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        JudgeConfig {
            confidence: 0.99,
            tolerance: 0.10,
            min_samples: 50,
            p95_test: true,
        }
    }
}

/// A judge config out of range; the message names the field.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum JudgeConfigError {
    #[error("confidence must be between 0 and 1 (exclusive), got {0}")]
    Confidence(f64),
    #[error("tolerance must be a finite number >= 0, got {0}")]
    Tolerance(f64),
}

impl JudgeConfig {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), JudgeConfigError> {
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return Err(JudgeConfigError::Confidence(self.confidence));
        }
        if !(self.tolerance.is_finite() && self.tolerance >= 0.0) {
            return Err(JudgeConfigError::Tolerance(self.tolerance));
        }
        Ok(())
    }
}

/// The one-sided Mann-Whitney U test of "candidate stochastically greater than baseline".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// U of the candidate: the number of (candidate, baseline) pairs where the candidate is
    /// larger, ties counting one half.
    pub u: f64,
    /// Mean of U under the null hypothesis, n_b * n_c / 2.
    pub mean: f64,
    /// Standard deviation of U under the null hypothesis, tie-corrected.
    pub std_dev: f64,
    /// (U - mean - 0.5) / std_dev, the continuity-corrected normal score.
    pub z: f64,
    /// P(Z >= z); 1.0 when every value of both samples is the same (nothing to test).
    pub p_value: f64,
}

/// Sorted, distinct values with their counts.
type Runs = Vec<(f64, u64)>;

/// The U test over two run lists (each sorted ascending, values distinct), one merge pass.
fn mann_whitney_runs(baseline: &[(f64, u64)], candidate: &[(f64, u64)]) -> MannWhitney {
    let n_b: u64 = baseline.iter().map(|r| r.1).sum();
    let n_c: u64 = candidate.iter().map(|r| r.1).sum();
    // 2U and sum(t^3 - t) are kept as exact integers: at 12,000 a side U is ~7e7 and the tie
    // term of one heavily tied bucket can pass 1e12, both beyond what summing halves in f64
    // keeps exact over thousands of steps.
    let mut twice_u: u128 = 0;
    let mut tie_term: u128 = 0;
    let mut below_b: u128 = 0; // baseline values strictly below the current value
    let (mut i, mut j) = (0, 0);
    while i < baseline.len() || j < candidate.len() {
        let v = match (baseline.get(i), candidate.get(j)) {
            (Some(b), Some(c)) => b.0.min(c.0),
            (Some(b), None) => b.0,
            (None, Some(c)) => c.0,
            (None, None) => unreachable!(),
        };
        let cb = match baseline.get(i) {
            Some(&(x, n)) if x == v => {
                i += 1;
                n as u128
            }
            _ => 0,
        };
        let cc = match candidate.get(j) {
            Some(&(x, n)) if x == v => {
                j += 1;
                n as u128
            }
            _ => 0,
        };
        // Each candidate value here beats every baseline value below it and ties with the
        // `cb` baseline values equal to it (half a win each).
        twice_u += cc * (2 * below_b + cb);
        let t = cb + cc;
        tie_term += t * t * t - t;
        below_b += cb;
    }
    let u = twice_u as f64 / 2.0;
    let (nb, nc) = (n_b as f64, n_c as f64);
    let n = nb + nc;
    let mean = nb * nc / 2.0;
    let variance = if n > 1.0 {
        nb * nc / 12.0 * ((n + 1.0) - tie_term as f64 / (n * (n - 1.0)))
    } else {
        0.0
    };
    let std_dev = variance.max(0.0).sqrt();
    if std_dev.is_nan() || std_dev <= 0.0 {
        // All values equal (or a side is empty): no evidence either way.
        return MannWhitney {
            u,
            mean,
            std_dev: 0.0,
            z: 0.0,
            p_value: 1.0,
        };
    }
    let z = (u - mean - 0.5) / std_dev;
    MannWhitney {
        u,
        mean,
        std_dev,
        z,
        p_value: upper_tail(z),
    }
}

/// The one-sided exceedance test at quantile `q` (Mood's median test moved to the tail): pool
/// both samples, take the pooled q-quantile t, and count the values strictly above t. Under
/// "same distribution" the candidate's share of those A values is hypergeometric (N values,
/// A above, n_c drawn), whatever the distribution and however many ties sit at t, since A is
/// fixed by the pooled data. Normal approximation with continuity correction; returns the
/// p-value for "the candidate has more values above t than chance allows".
fn exceedance_test(baseline: &[(f64, u64)], candidate: &[(f64, u64)], q: f64) -> f64 {
    let n_b: u64 = baseline.iter().map(|r| r.1).sum();
    let n_c: u64 = candidate.iter().map(|r| r.1).sum();
    let n = n_b + n_c;
    if n_b == 0 || n_c == 0 {
        return 1.0;
    }
    // Pooled nearest-rank quantile, found by merging from the top.
    let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
    let above_rank = n - rank; // values strictly after the quantile's rank
    let (mut i, mut j) = (baseline.len(), candidate.len());
    let (mut above, mut above_c) = (0u64, 0u64);
    while i > 0 || j > 0 {
        let v = match (
            i.checked_sub(1).map(|k| baseline[k].0),
            j.checked_sub(1).map(|k| candidate[k].0),
        ) {
            (Some(b), Some(c)) => b.max(c),
            (Some(b), None) => b,
            (None, Some(c)) => c,
            (None, None) => unreachable!(),
        };
        let mut here = 0;
        let mut here_c = 0;
        if i > 0 && baseline[i - 1].0 == v {
            here += baseline[i - 1].1;
            i -= 1;
        }
        if j > 0 && candidate[j - 1].0 == v {
            here += candidate[j - 1].1;
            here_c = candidate[j - 1].1;
            j -= 1;
        }
        // The value holding the quantile's rank is t itself: not "above".
        if above + here > above_rank {
            break;
        }
        above += here;
        above_c += here_c;
    }
    if above == 0 || above == n {
        return 1.0;
    }
    let (nf, nc, a) = (n as f64, n_c as f64, above as f64);
    let share = a / nf;
    let mean = nc * share;
    let variance = nc * share * (1.0 - share) * (nf - nc) / (nf - 1.0);
    if variance.is_nan() || variance <= 0.0 {
        return 1.0;
    }
    upper_tail((above_c as f64 - mean - 0.5) / variance.sqrt())
}

/// P(Z >= z) for a standard normal Z, accurate in the far tail (erfc, not 1 - cdf).
fn upper_tail(z: f64) -> f64 {
    0.5 * statrs::function::erf::erfc(z / std::f64::consts::SQRT_2)
}

/// The one-sided Mann-Whitney U test on raw samples (candidate slower = small p). Samples
/// must be finite; they need not be sorted. O(n log n).
pub fn mann_whitney_u(baseline: &[f64], candidate: &[f64]) -> MannWhitney {
    mann_whitney_runs(&runs_from_samples(baseline), &runs_from_samples(candidate))
}

fn runs_from_samples(samples: &[f64]) -> Runs {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    let mut runs: Runs = Vec::new();
    for v in sorted {
        match runs.last_mut() {
            Some(last) if last.0 == v => last.1 += 1,
            _ => runs.push((v, 1)),
        }
    }
    runs
}

/// Each recorded bucket as (the bucket's middle value, count). Values that share a bucket are
/// ties, which is all the resolution the histogram kept (3 significant digits = 0.1%).
fn runs_from_histogram(h: &Histogram<u64>) -> Runs {
    h.iter_recorded()
        .map(|it| {
            (
                h.median_equivalent(it.value_iterated_to()) as f64,
                it.count_at_value(),
            )
        })
        .collect()
}

/// Nearest-rank quantile (the smallest value with at least q of the samples at or below it),
/// the definition HdrHistogram uses.
fn quantile(runs: &[(f64, u64)], q: f64) -> f64 {
    let n: u64 = runs.iter().map(|r| r.1).sum();
    if n == 0 {
        return f64::NAN;
    }
    let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
    let mut seen = 0;
    for &(v, c) in runs {
        seen += c;
        if seen >= rank {
            return v;
        }
    }
    runs.last().map(|r| r.0).unwrap_or(f64::NAN)
}

/// The effect quantile: p95.
const EFFECT_QUANTILE: f64 = 0.95;

fn ratio(candidate: f64, baseline: f64) -> f64 {
    if baseline > 0.0 {
        candidate / baseline
    } else if candidate > 0.0 {
        f64::MAX // from zero to something: as large as it gets, but still JSON-serialisable
    } else {
        1.0
    }
}

/// Judges raw latency samples (any one unit for both, e.g. ms). See the module doc.
pub fn judge_latency(baseline: &[f64], candidate: &[f64], cfg: &JudgeConfig) -> Judgement {
    let (nb, nc) = (baseline.len() as u64, candidate.len() as u64);
    for (side, samples) in [("baseline", baseline), ("candidate", candidate)] {
        if let Some((i, v)) = samples
            .iter()
            .enumerate()
            .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
        {
            return not_enough(
                cfg,
                nb,
                nc,
                format!(
                    "{side} sample #{i} is {v}: latencies must be finite and >= 0, so the \
                     comparison was not judged"
                ),
            );
        }
    }
    judge_runs(
        &runs_from_samples(baseline),
        &runs_from_samples(candidate),
        cfg,
        &|v| format!("{v:.4}"),
    )
}

/// Judges two HDR latency histograms (values in µs, as the load agent records them) with the
/// same test as [`judge_latency`], ranks taken over the buckets' counts; values sharing a
/// bucket are ties. Both histograms should have the same precision, so buckets line up.
pub fn judge_from_histograms(
    baseline: &Histogram<u64>,
    candidate: &Histogram<u64>,
    cfg: &JudgeConfig,
) -> Judgement {
    judge_runs(
        &runs_from_histogram(baseline),
        &runs_from_histogram(candidate),
        cfg,
        &|us| format!("{:.3} ms", us / 1000.0),
    )
}

fn not_enough(cfg: &JudgeConfig, nb: u64, nc: u64, explanation: String) -> Judgement {
    Judgement {
        verdict: Finding::NotEnoughData,
        p_value: 1.0,
        mann_whitney_p: 1.0,
        p95_test_p: 1.0,
        confidence: cfg.confidence,
        effect: 1.0,
        baseline_n: nb,
        candidate_n: nc,
        explanation,
    }
}

fn fmt_p(p: f64) -> String {
    if p >= 0.001 {
        format!("{p:.4}")
    } else {
        format!("{p:.2e}")
    }
}

fn judge_runs(
    baseline: &[(f64, u64)],
    candidate: &[(f64, u64)],
    cfg: &JudgeConfig,
    fmt_value: &dyn Fn(f64) -> String,
) -> Judgement {
    let nb: u64 = baseline.iter().map(|r| r.1).sum();
    let nc: u64 = candidate.iter().map(|r| r.1).sum();
    if let Err(e) = cfg.validate() {
        return not_enough(cfg, nb, nc, format!("invalid judge config: {e}"));
    }
    let min = cfg.min_samples.max(1) as u64;
    if nb < min || nc < min {
        return not_enough(
            cfg,
            nb,
            nc,
            format!(
                "not enough samples to judge: baseline {nb}, candidate {nc}, at least {min} \
                 each needed"
            ),
        );
    }

    let test = mann_whitney_runs(baseline, candidate);
    let p95_test_p = if cfg.p95_test {
        exceedance_test(baseline, candidate, EFFECT_QUANTILE)
    } else {
        1.0
    };
    // Bonferroni: either test may reject, each at half the alpha, so the chance that noise
    // alone makes one of them reject stays at or below alpha.
    let p_value = if cfg.p95_test {
        (2.0 * test.p_value.min(p95_test_p)).min(1.0)
    } else {
        test.p_value
    };
    let (p95_b, p95_c) = (
        quantile(baseline, EFFECT_QUANTILE),
        quantile(candidate, EFFECT_QUANTILE),
    );
    let effect = ratio(p95_c, p95_b);
    let alpha = 1.0 - cfg.confidence;
    let significant = p_value < alpha;
    let relevant = effect > 1.0 + cfg.tolerance;

    let p95s = format!(
        "p95 {} vs {} (x{:.3}, tolerance x{:.3})",
        fmt_value(p95_c),
        fmt_value(p95_b),
        effect,
        1.0 + cfg.tolerance
    );
    let test_s = if cfg.p95_test {
        format!(
            "p = {} (alpha {:.4}; one-sided Mann-Whitney U p = {}, p95 exceedance p = {}, \
             Bonferroni), n = {nb}/{nc}",
            fmt_p(p_value),
            alpha,
            fmt_p(test.p_value),
            fmt_p(p95_test_p)
        )
    } else {
        format!(
            "one-sided Mann-Whitney U p = {} (alpha {:.4}), n = {nb}/{nc}",
            fmt_p(test.p_value),
            alpha
        )
    };
    let (verdict, explanation) = finding(significant, relevant, cfg.confidence * 100.0, &p95s, &test_s);
    Judgement {
        verdict,
        p_value,
        mann_whitney_p: test.p_value,
        p95_test_p,
        confidence: cfg.confidence,
        effect,
        baseline_n: nb,
        candidate_n: nc,
        explanation,
    }
}

/// What a test's significance and the effect's size mean together, in words.
fn finding(significant: bool, relevant: bool, conf_pct: f64, p95s: &str, test_s: &str) -> (Finding, String) {
    match (significant, relevant) {
    (true, true) => (
        Finding::Regressed,
        format!(
            "regressed: the candidate is slower than the baseline with {conf_pct}% \
             confidence and by more than the tolerance: {p95s}; {test_s}"
        ),
    ),
    (true, false) => (
        Finding::Pass,
        format!(
            "pass: the candidate is slower with {conf_pct}% confidence, but by no more than \
             the tolerance, taken as run-to-run noise: {p95s}; {test_s}"
        ),
    ),
    (false, true) => (
        Finding::Pass,
        format!(
            "pass: the p95 is above the tolerance, but the candidate is not shown slower \
             with {conf_pct}% confidence (noise is enough to explain it at this sample \
             size): {p95s}; {test_s}"
        ),
    ),
    (false, false) => (
        Finding::Pass,
        format!("pass: no slowdown beyond noise: {p95s}; {test_s}"),
    ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};
    use rand_distr::{Distribution, LogNormal};

    // Expected values from scipy 1.17.1:
    // mannwhitneyu(candidate, baseline, alternative="greater", use_continuity=True,
    //              method="asymptotic") -> (statistic = U of the candidate, pvalue)
    const NO_TIES_B: [f64; 8] = [1.1, 2.3, 3.0, 4.2, 5.5, 6.1, 7.7, 8.4];
    const NO_TIES_C: [f64; 9] = [4.9, 6.8, 7.9, 8.8, 9.5, 10.2, 11.0, 12.3, 3.3];
    const NO_TIES_U: f64 = 60.0;
    const NO_TIES_P: f64 = 0.01187069726536293;

    const TIES_B: [f64; 8] = [1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0, 5.0];
    const TIES_C: [f64; 9] = [2.0, 3.0, 3.0, 4.0, 4.0, 5.0, 5.0, 6.0, 6.0];
    const TIES_U: f64 = 55.0;
    const TIES_P: f64 = 0.03458642030768318;

    const FASTER_B: [f64; 7] = [10.0, 12.0, 14.0, 15.0, 18.0, 20.0, 21.0];
    const FASTER_C: [f64; 6] = [8.0, 9.0, 11.0, 12.0, 13.0, 16.0];
    const FASTER_U: f64 = 8.5;
    const FASTER_P: f64 = 0.9685359485218489;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    fn small_cfg() -> JudgeConfig {
        JudgeConfig {
            min_samples: 5,
            ..JudgeConfig::default()
        }
    }

    fn lognormal(seed: u64, n: usize, median: f64, sigma: f64) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        let d = LogNormal::new(median.ln(), sigma).unwrap();
        (0..n).map(|_| d.sample(&mut rng)).collect()
    }

    #[test]
    fn u_and_p_match_scipy_without_ties() {
        let t = mann_whitney_u(&NO_TIES_B, &NO_TIES_C);
        assert_eq!(t.u, NO_TIES_U);
        // Hand check: mean 8*9/2 = 36, sd sqrt(72*18/12) = 10.392, z = 23.5/10.392 = 2.2613.
        assert!(close(t.mean, 36.0, 1e-12));
        assert!(close(t.std_dev, 108f64.sqrt(), 1e-12));
        assert!(close(t.p_value, NO_TIES_P, 1e-9), "{}", t.p_value);
    }

    #[test]
    fn u_and_p_match_scipy_with_ties() {
        let t = mann_whitney_u(&TIES_B, &TIES_C);
        assert_eq!(t.u, TIES_U);
        // Tie groups in the merged 17 values: 2 x3, 3 x5, 4 x3, 5 x3, 6 x2 (1 once):
        // sum(t^3 - t) = 24 + 120 + 24 + 24 + 6 = 198; var = 72/12 * (18 - 198/272).
        let var = 72.0 / 12.0 * (18.0 - 198.0 / 272.0);
        assert!(close(t.std_dev, f64::sqrt(var), 1e-12));
        assert!(close(t.p_value, TIES_P, 1e-9), "{}", t.p_value);
    }

    #[test]
    fn faster_candidate_gives_large_p() {
        let t = mann_whitney_u(&FASTER_B, &FASTER_C);
        assert_eq!(t.u, FASTER_U);
        assert!(close(t.p_value, FASTER_P, 1e-9), "{}", t.p_value);
        let j = judge_latency(&FASTER_B, &FASTER_C, &small_cfg());
        assert_eq!(j.verdict, Finding::Pass);
    }

    #[test]
    fn small_example_verdict_follows_confidence() {
        // p = 0.0119 and the p95 is far up: regressed at 95%, not at 99%.
        let at95 = JudgeConfig {
            confidence: 0.95,
            ..small_cfg()
        };
        let j = judge_latency(&NO_TIES_B, &NO_TIES_C, &at95);
        assert_eq!(j.verdict, Finding::Regressed, "{}", j.explanation);
        assert!(close(j.effect, 12.3 / 8.4, 1e-12));
        let j = judge_latency(&NO_TIES_B, &NO_TIES_C, &small_cfg());
        assert_eq!(j.verdict, Finding::Pass, "{}", j.explanation);
        assert!(
            j.explanation.contains("not shown slower"),
            "{}",
            j.explanation
        );
    }

    #[test]
    fn exceedance_test_matches_hand_computation() {
        // baseline 1..=20, candidate 5..=24, q = 0.8: pooled rank ceil(0.8 * 40) = 32 is the
        // value 18; above it 8 values: 19 and 20 of the baseline, 19..=24 of the candidate (6). Hypergeometric mean 20 * 8/40 = 4, variance
        // 20 * 0.2 * 0.8 * 20/39 = 1.641; z = (6 - 4 - 0.5) / 1.281 = 1.171.
        let runs = |v: Vec<f64>| runs_from_samples(&v);
        let b = runs((1..=20).map(f64::from).collect());
        let c = runs((5..=24).map(f64::from).collect());
        let p = exceedance_test(&b, &c, 0.8);
        assert!(close(p, 0.12081202560318544, 1e-9), "{p}");
        // With ties at the threshold: pooled 11th of 17 at q = 0.6 is a 4 (three of them);
        // above it 5, 5, 5, 6, 6 of which the candidate has 4.
        let p = exceedance_test(&runs(TIES_B.to_vec()), &runs(TIES_C.to_vec()), 0.6);
        assert!(close(p, 0.18876894333364003, 1e-9), "{p}");
        // Nothing above the quantile (all equal): no evidence.
        assert_eq!(
            exceedance_test(&runs(vec![3.0; 60]), &runs(vec![3.0; 60]), 0.95),
            1.0
        );
    }

    /// A run of `n` lognormal latencies whose values above the median are stretched on the log
    /// scale so that the p95 is 1.25x, median and lower half unchanged; all scaled by `scale`.
    fn tail_regressed(seed: u64, n: usize, scale: f64) -> Vec<f64> {
        let k = 1.0 + 1.25f64.ln() / (1.6448536 * 0.5);
        lognormal(seed, n, 40.0, 0.5)
            .iter()
            .map(|&x| {
                let l = (x / 40.0).ln();
                scale * if l > 0.0 { 40.0 * (k * l).exp() } else { x }
            })
            .collect()
    }

    #[test]
    fn tail_only_regression_under_run_noise_is_caught_by_the_p95_test() {
        // The baseline run happened to be 3% slow, the candidate run 3% fast, and the
        // candidate's slow half got slower (p95 +25%, median unchanged).
        let b: Vec<f64> = lognormal(20, 12_000, 40.0, 0.5)
            .iter()
            .map(|x| x * 1.03)
            .collect();
        let c = tail_regressed(21, 12_000, 0.97);
        let j = judge_latency(&b, &c, &JudgeConfig::default());
        assert_eq!(j.verdict, Finding::Regressed, "{}", j.explanation);
        assert!(
            j.mann_whitney_p > 0.5,
            "the U test sees a faster candidate: {j:?}"
        );
        assert!(j.p95_test_p < 1e-10, "{j:?}");
        assert!(close(j.p_value, 2.0 * j.p95_test_p, 1e-12));
        // The plain U test lets it through.
        let plain = JudgeConfig {
            p95_test: false,
            ..JudgeConfig::default()
        };
        let j = judge_latency(&b, &c, &plain);
        assert_eq!(j.verdict, Finding::Pass, "{}", j.explanation);
        assert_eq!(j.p_value, j.mann_whitney_p);
    }

    #[test]
    fn identical_samples_pass() {
        let b = lognormal(1, 2000, 40.0, 0.5);
        let j = judge_latency(&b, &b, &JudgeConfig::default());
        assert_eq!(j.verdict, Finding::Pass, "{}", j.explanation);
        assert_eq!(j.effect, 1.0);
        assert!(j.p_value > 0.5);
        // Two independent draws from one distribution pass too.
        let c = lognormal(2, 2000, 40.0, 0.5);
        let j = judge_latency(&b, &c, &JudgeConfig::default());
        assert_eq!(j.verdict, Finding::Pass, "{}", j.explanation);
    }

    #[test]
    fn all_equal_values_pass() {
        let b = vec![12.0; 100];
        let c = vec![12.0; 80];
        let t = mann_whitney_u(&b, &c);
        assert_eq!(t.u, 4000.0);
        assert_eq!(t.p_value, 1.0);
        let j = judge_latency(&b, &c, &JudgeConfig::default());
        assert_eq!(j.verdict, Finding::Pass, "{}", j.explanation);
        assert_eq!(j.effect, 1.0);
        assert_eq!((j.baseline_n, j.candidate_n), (100, 80));
    }

    #[test]
    fn clear_shift_regresses() {
        let b = lognormal(3, 2000, 40.0, 0.5);
        let c: Vec<f64> = lognormal(4, 2000, 40.0, 0.5)
            .iter()
            .map(|x| x * 1.25)
            .collect();
        let j = judge_latency(&b, &c, &JudgeConfig::default());
        assert_eq!(j.verdict, Finding::Regressed, "{}", j.explanation);
        assert!(j.p_value < 1e-10);
        assert!(j.effect > 1.15 && j.effect < 1.35, "{}", j.effect);
        assert!(j.explanation.starts_with("regressed"));
    }

    #[test]
    fn significant_but_small_shift_is_tolerated() {
        // 3% slower at n = 20,000: the test is sure of it, the tolerance lets it through.
        let b = lognormal(5, 20_000, 40.0, 0.5);
        let c: Vec<f64> = lognormal(6, 20_000, 40.0, 0.5)
            .iter()
            .map(|x| x * 1.03)
            .collect();
        let j = judge_latency(&b, &c, &JudgeConfig::default());
        assert!(j.p_value < 0.01, "{}", j.p_value);
        assert_eq!(j.verdict, Finding::Pass, "{}", j.explanation);
        assert!(j.explanation.contains("no more than the tolerance"));
    }

    #[test]
    fn small_or_empty_samples_are_not_enough_data() {
        let cfg = JudgeConfig::default();
        let b = lognormal(7, 49, 40.0, 0.5);
        let c: Vec<f64> = b.iter().map(|x| x * 3.0).collect();
        for (bb, cc) in [
            (&b[..], &c[..]),
            (&[][..], &c[..]),
            (&b[..], &[][..]),
            (&[][..], &[][..]),
        ] {
            let j = judge_latency(bb, cc, &cfg);
            assert_eq!(j.verdict, Finding::NotEnoughData, "{}", j.explanation);
            assert!(j.explanation.contains("not enough samples"));
        }
        let empty = Histogram::<u64>::new(3).unwrap();
        let j = judge_from_histograms(&empty, &empty, &cfg);
        assert_eq!(j.verdict, Finding::NotEnoughData);
        assert_eq!((j.baseline_n, j.candidate_n), (0, 0));
    }

    #[test]
    fn invalid_values_and_config_are_rejected() {
        let mut b = lognormal(8, 100, 40.0, 0.5);
        let c = lognormal(9, 100, 40.0, 0.5);
        b[17] = f64::NAN;
        let j = judge_latency(&b, &c, &JudgeConfig::default());
        assert_eq!(j.verdict, Finding::NotEnoughData);
        assert!(
            j.explanation.contains("baseline sample #17 is NaN"),
            "{}",
            j.explanation
        );
        b[17] = 1.0;
        let mut c2 = c.clone();
        c2[3] = -2.0;
        let j = judge_latency(&b, &c2, &JudgeConfig::default());
        assert_eq!(j.verdict, Finding::NotEnoughData);
        assert!(
            j.explanation.contains("candidate sample #3 is -2"),
            "{}",
            j.explanation
        );
        c2[3] = f64::INFINITY;
        assert_eq!(
            judge_latency(&b, &c2, &JudgeConfig::default()).verdict,
            Finding::NotEnoughData
        );
        for cfg in [
            JudgeConfig {
                confidence: 1.0,
                ..JudgeConfig::default()
            },
            JudgeConfig {
                confidence: f64::NAN,
                ..JudgeConfig::default()
            },
            JudgeConfig {
                tolerance: -0.1,
                ..JudgeConfig::default()
            },
        ] {
            let j = judge_latency(&b, &c, &cfg);
            assert_eq!(j.verdict, Finding::NotEnoughData);
            assert!(
                j.explanation.starts_with("invalid judge config"),
                "{}",
                j.explanation
            );
        }
    }

    fn histogram_us(samples_ms: &[f64]) -> Histogram<u64> {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for &x in samples_ms {
            h.record((x * 1000.0).round() as u64).unwrap();
        }
        h
    }

    #[test]
    fn histogram_path_agrees_with_raw_samples() {
        let b = lognormal(10, 12_000, 40.0, 0.5);
        let cfg = JudgeConfig::default();
        for (seed, scale, expect) in [
            (11, 1.0, Finding::Pass),
            (12, 1.03, Finding::Pass),
            (13, 1.25, Finding::Regressed),
        ] {
            let c: Vec<f64> = lognormal(seed, 12_000, 40.0, 0.5)
                .iter()
                .map(|x| x * scale)
                .collect();
            let raw = judge_latency(&b, &c, &cfg);
            let hist = judge_from_histograms(&histogram_us(&b), &histogram_us(&c), &cfg);
            assert_eq!(raw.verdict, expect, "{}", raw.explanation);
            assert_eq!(hist.verdict, expect, "{}", hist.explanation);
            assert_eq!((hist.baseline_n, hist.candidate_n), (12_000, 12_000));
            // Bucket width at 3 significant digits is <= 0.1% of the value: each p95 moves by
            // at most that much, the ratio by at most ~0.2%.
            assert!(
                (raw.effect - hist.effect).abs() < 0.002 * raw.effect,
                "{raw:?} {hist:?}"
            );
            // Ranks only change among values within one bucket of each other: z barely moves.
            let (zr, zh) = (
                mann_whitney_u(&b, &c).z,
                mann_whitney_runs(
                    &runs_from_histogram(&histogram_us(&b)),
                    &runs_from_histogram(&histogram_us(&c)),
                )
                .z,
            );
            assert!((zr - zh).abs() < 0.02, "z raw {zr} vs histogram {zh}");
            assert!(hist.explanation.contains(" ms"), "{}", hist.explanation);
        }
    }

    #[test]
    fn judgement_round_trips_through_json() {
        let j = judge_latency(&NO_TIES_B, &NO_TIES_C, &small_cfg());
        let text = serde_json::to_string(&j).unwrap();
        assert!(text.contains("\"verdict\":\"pass\""), "{text}");
        let back: Judgement = serde_json::from_str(&text).unwrap();
        assert_eq!(back, j);
        let cfg: JudgeConfig = serde_json::from_str("{\"tolerance\": 0.2}").unwrap();
        assert_eq!(cfg.confidence, 0.99);
        assert_eq!(cfg.tolerance, 0.2);
        assert!(cfg.p95_test);
    }
}
