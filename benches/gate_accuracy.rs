//! Gate accuracy: how often does `gate::judge` block a healthy release, and how often does it
//! let a regressed one through?
//!
//! Each trial draws a baseline and a candidate run of GATE_N latencies (default 12,000 =
//! 60 s x 200 req/s) from a lognormal latency model, median 40 ms, sigma 0.5 (p95 91 ms,
//! p99 128 ms: a typical web request), and judges them with the default `JudgeConfig`.
//!
//! Scenarios:
//! - healthy, identical: both runs from the same distribution.
//! - healthy, +/-3% run noise: each run's whole distribution scaled by its own factor, uniform
//!   in [0.97, 1.03] (real runs are never identical: other tenants, caches, JIT).
//! - regressed, whole x1.25: the candidate's whole distribution scaled by 1.25 (median and p95
//!   +25%): everything got slower, e.g. a CPU-bound regression.
//! - regressed, tail only: the candidate's p95 +25% with its median and everything below the
//!   median unchanged (log-latencies above the median stretched by
//!   k = 1 + ln 1.25 / (1.645 sigma) = 1.271): a slow path hit by the slower half of requests.
//! - both regressions again with the +/-3% run noise on both runs.
//!
//! Env: GATE_TRIALS (1000 per scenario), GATE_SEED (1), GATE_N (12000), GATE_HIST_TRIALS (200
//! per scenario also judged through HDR histograms in µs, 3 significant digits), GATE_P95_TEST
//! (1; 0 = the plain Mann-Whitney U test, the first design, for comparison).
//!
//! Run: cargo bench --bench gate_accuracy

use std::time::{Duration, Instant};

use gantry::gate::judge::{judge_from_histograms, judge_latency, JudgeConfig, Finding};
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

const MEDIAN_MS: f64 = 40.0;
const SIGMA: f64 = 0.5;
const REGRESSION: f64 = 1.25;
const JITTER: f64 = 0.03;
const Z95: f64 = 1.644_853_626_951_472_2;

#[derive(Clone, Copy, PartialEq)]
enum Change {
    None,
    Whole,
    TailOnly,
}

struct Scenario {
    name: &'static str,
    change: Change,
    jitter: bool,
}

impl Scenario {
    fn healthy(&self) -> bool {
        self.change == Change::None
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One run of `n` latencies in ms.
fn run(rng: &mut StdRng, n: usize, change: Change, jitter: bool) -> Vec<f64> {
    let scale = if jitter {
        1.0 + rng.random_range(-JITTER..=JITTER)
    } else {
        1.0
    };
    let k = 1.0 + REGRESSION.ln() / (Z95 * SIGMA);
    (0..n)
        .map(|_| {
            let z: f64 = StandardNormal.sample(rng);
            let x = MEDIAN_MS * scale * (SIGMA * z).exp();
            match change {
                Change::None => x,
                Change::Whole => x * REGRESSION,
                Change::TailOnly if z > 0.0 => MEDIAN_MS * scale * (SIGMA * k * z).exp(),
                Change::TailOnly => x,
            }
        })
        .collect()
}

fn histogram_us(samples_ms: &[f64]) -> Histogram<u64> {
    let mut h = Histogram::<u64>::new(3).expect("valid precision");
    for &x in samples_ms {
        h.record((x * 1000.0).round() as u64)
            .expect("auto-resizing histogram");
    }
    h
}

/// Wilson score interval for k successes in n trials, 95%.
fn wilson(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 1.959_963_984_540_054;
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let d = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / d;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / d;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

struct Outcome {
    wrong: usize,
    not_enough: usize,
    trials: usize,
    significant_tolerated: usize,
    effects: Vec<f64>,
    time: Duration,
    hist_trials: usize,
    hist_wrong: usize,
    hist_disagree: usize,
    hist_time: Duration,
}

fn simulate(
    sc: &Scenario,
    cfg: &JudgeConfig,
    seed: u64,
    trials: usize,
    n: usize,
    hist_trials: usize,
) -> Outcome {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut o = Outcome {
        wrong: 0,
        not_enough: 0,
        trials,
        significant_tolerated: 0,
        effects: Vec::with_capacity(trials),
        time: Duration::ZERO,
        hist_trials: 0,
        hist_wrong: 0,
        hist_disagree: 0,
        hist_time: Duration::ZERO,
    };
    let is_wrong = |v: Finding| {
        if sc.healthy() {
            v != Finding::Pass
        } else {
            v != Finding::Regressed
        }
    };
    for t in 0..trials {
        let b = run(&mut rng, n, Change::None, sc.jitter);
        let c = run(&mut rng, n, sc.change, sc.jitter);
        let start = Instant::now();
        let j = judge_latency(&b, &c, cfg);
        o.time += start.elapsed();
        if is_wrong(j.verdict) {
            o.wrong += 1;
        }
        if j.verdict == Finding::NotEnoughData {
            o.not_enough += 1;
        }
        if j.verdict == Finding::Pass && j.p_value < 1.0 - cfg.confidence {
            o.significant_tolerated += 1;
        }
        o.effects.push(j.effect);
        if t < hist_trials {
            let (hb, hc) = (histogram_us(&b), histogram_us(&c));
            let start = Instant::now();
            let jh = judge_from_histograms(&hb, &hc, cfg);
            o.hist_time += start.elapsed();
            o.hist_trials += 1;
            if is_wrong(jh.verdict) {
                o.hist_wrong += 1;
            }
            if jh.verdict != j.verdict {
                o.hist_disagree += 1;
            }
        }
    }
    o.effects.sort_by(f64::total_cmp);
    o
}

fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

fn main() {
    // `cargo bench` passes "--bench"; ignore arguments.
    let trials: usize = env_or("GATE_TRIALS", 1000);
    let seed: u64 = env_or("GATE_SEED", 1);
    let n: usize = env_or("GATE_N", 12_000);
    let hist_trials: usize = env_or("GATE_HIST_TRIALS", 200).min(trials);
    let cfg = JudgeConfig {
        p95_test: env_or("GATE_P95_TEST", 1u8) != 0,
        ..JudgeConfig::default()
    };

    let scenarios = [
        Scenario {
            name: "healthy, identical runs",
            change: Change::None,
            jitter: false,
        },
        Scenario {
            name: "healthy, +/-3% run noise",
            change: Change::None,
            jitter: true,
        },
        Scenario {
            name: "regressed, whole x1.25",
            change: Change::Whole,
            jitter: false,
        },
        Scenario {
            name: "regressed, whole x1.25 + noise",
            change: Change::Whole,
            jitter: true,
        },
        Scenario {
            name: "regressed, tail-only p95+25%",
            change: Change::TailOnly,
            jitter: false,
        },
        Scenario {
            name: "regressed, tail-only + noise",
            change: Change::TailOnly,
            jitter: true,
        },
    ];

    println!("gate accuracy: gantry::gate::judge::judge_latency");
    println!(
        "model: lognormal latency, median {MEDIAN_MS} ms, sigma {SIGMA} (p95 {:.1} ms); \
         {n} samples per run{}; {trials} trials per scenario; seed {seed}",
        MEDIAN_MS * (SIGMA * Z95).exp(),
        if n == 12_000 {
            " (60 s x 200 req/s)"
        } else {
            ""
        }
    );
    println!(
        "config: confidence {}, tolerance +{}% on p95 ratio, min_samples {}, tests: {}; \
         regression: candidate p95 x{REGRESSION}; run noise: each run scaled by U[{}, {}]",
        cfg.confidence,
        cfg.tolerance * 100.0,
        cfg.min_samples,
        if cfg.p95_test {
            "Mann-Whitney U + p95 exceedance (Bonferroni)"
        } else {
            "Mann-Whitney U only (GATE_P95_TEST=0)"
        },
        1.0 - JITTER,
        1.0 + JITTER
    );
    println!("goals: false-block rate <= 1% on healthy pairs, miss rate <= 1% (>= 99% caught) on regressed pairs");
    println!();
    println!(
        "{:<32} {:<11} {:>7} {:>6} {:>8} {:>19} {:>6} {:>9} {:>22} {:>10} {:>12}",
        "scenario",
        "kind",
        "wrong",
        "of",
        "rate",
        "95% CI (Wilson)",
        "goal",
        "meets",
        "p95 ratio min/med/max",
        "sig.+tol.",
        "µs/judgement"
    );
    let mut hist_rows = Vec::new();
    for (i, sc) in scenarios.iter().enumerate() {
        let scenario_seed = seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
        let o = simulate(sc, &cfg, scenario_seed, trials, n, hist_trials);
        let rate = o.wrong as f64 / o.trials as f64;
        let (lo, hi) = wilson(o.wrong, o.trials);
        let meets = if rate <= 0.01 {
            if hi <= 0.01 {
                "yes (CI)"
            } else {
                "yes"
            }
        } else {
            "NO"
        };
        let e = &o.effects;
        println!(
            "{:<32} {:<11} {:>7} {:>6} {:>8} {:>19} {:>6} {:>9} {:>22} {:>10} {:>12.0}",
            sc.name,
            if sc.healthy() { "false-block" } else { "miss" },
            o.wrong,
            o.trials,
            pct(rate),
            format!("[{}, {}]", pct(lo), pct(hi)),
            "<= 1%",
            meets,
            format!("{:.3}/{:.3}/{:.3}", e[0], e[e.len() / 2], e[e.len() - 1]),
            o.significant_tolerated,
            o.time.as_secs_f64() * 1e6 / o.trials as f64,
        );
        if o.not_enough > 0 {
            println!("  ({} trials were NotEnoughData)", o.not_enough);
        }
        hist_rows.push((
            sc.name,
            sc.healthy(),
            o.hist_wrong,
            o.hist_trials,
            o.hist_disagree,
            o.hist_time,
        ));
    }
    println!();
    println!("sig.+tol. = passed although the test was significant (the tolerance absorbed it)");
    println!();
    println!("histogram path (judge_from_histograms, µs, 3 significant digits), first {hist_trials} trials of each scenario:");
    println!(
        "{:<32} {:<11} {:>7} {:>6} {:>8} {:>19} {:>18} {:>12}",
        "scenario",
        "kind",
        "wrong",
        "of",
        "rate",
        "95% CI (Wilson)",
        "verdict != raw",
        "µs/judgement"
    );
    for (name, healthy, wrong, of, disagree, time) in hist_rows {
        let (lo, hi) = wilson(wrong, of);
        println!(
            "{:<32} {:<11} {:>7} {:>6} {:>8} {:>19} {:>18} {:>12.0}",
            name,
            if healthy { "false-block" } else { "miss" },
            wrong,
            of,
            pct(wrong as f64 / of.max(1) as f64),
            format!("[{}, {}]", pct(lo), pct(hi)),
            disagree,
            time.as_secs_f64() * 1e6 / of.max(1) as f64,
        );
    }
}
