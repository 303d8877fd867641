//! Validation is linear in the size of the file (issue 11): the demo's storefront
//! pipeline is the named baseline (×1), then scaled ×10 and ×100 by repeating its stages
//! under new names, and hostile files of about 1 MiB (the size limit) built the ways that
//! used to be quadratic. Each line prints the file size, the median time, and the time per
//! KiB as a ratio to the baseline's time per KiB: linear validation keeps the ratio near
//! 1 (a little above is fixed costs shrinking; far above is superlinear). Goal: a 1 MiB
//! pipeline well under a second. Median of 5, release build.
//!
//!     cargo bench --bench validate_at_scale

use std::time::{Duration, Instant};

const STOREFRONT: &str = include_str!("../pipelines/storefront.yml");
const MIB: usize = 1024 * 1024;

/// The storefront's stages, then `copies - 1` more copies of all but the promotion, each
/// with its own stage and environment names, needs renamed with them.
fn storefront_times(copies: usize) -> String {
    let (head, stages) = STOREFRONT.split_once("\nstages:\n").expect("storefront has stages");
    // Copies go before the promotion: no stage may follow an approved promotion.
    let (body, release) = stages.split_once("\n  # The gate judges").expect("storefront has its gate");
    let mut text = format!("{head}\nstages:\n{body}\n");
    let names = ["unit-test", "image", "staging", "preview", "smoke", "load", "go-live"];
    for i in 1..copies {
        let mut copy = body.to_string();
        for name in names {
            copy = copy.replace(&format!("  {name}:\n"), &format!("  {name}-{i}:\n"));
        }
        copy = copy
            .replace("needs: [image, staging]", &format!("needs: [image-{i}, staging-{i}]"))
            .replace("environment: staging", &format!("environment: staging-{i}"))
            .replace("target: staging", &format!("target: staging-{i}"));
        text.push_str(&copy);
        text.push('\n');
    }
    text.push_str("  # The gate judges");
    text.push_str(release);
    text
}

/// Many lines each with `${commit.sha}` (positions once recounted from the file start).
fn many_variables(size: usize) -> String {
    let mut text = String::from("name: vars\nstages:\n  a:\n    image: x\n    commands:\n");
    while text.len() < size {
        text.push_str("      - echo ${commit.sha} ${commit.short}\n");
    }
    text
}

/// Thousands of declared vars, each used (once a list scan per use).
fn declared_times_used(size: usize) -> String {
    let n = size / 64;
    let mut text = String::from("name: vars\nvars:\n");
    for i in 0..n {
        text.push_str(&format!("  v{i}: \"{i}\"\n"));
    }
    text.push_str("stages:\n  a:\n    image: x\n    commands:\n");
    for i in 0..n {
        text.push_str(&format!("      - echo ${{var.v{i}}}\n"));
    }
    text
}

/// One anchor of many keys merged into a mapping (once a list scan per key).
fn big_merge(size: usize) -> String {
    let n = size / 12;
    let keys: Vec<String> = (0..n).map(|i| format!("k{i}: v")).collect();
    format!("name: m\nstages:\n  a: {{image: x, commands: [true], env: &e {{{}}}}}\n  b: {{image: x, commands: [true], env: {{<<: *e}}}}\n", keys.join(", "))
}

/// Misspelt variables among many declared ones ("did you mean" for each).
fn misspelt_variables(size: usize) -> String {
    let n = size / 80;
    let mut text = String::from("name: vars\nvars:\n");
    for i in 0..n / 2 {
        text.push_str(&format!("  variable_{i}: \"{i}\"\n"));
    }
    text.push_str("stages:\n  a:\n    image: x\n    commands:\n");
    for i in 0..n / 2 {
        text.push_str(&format!("      - echo ${{var.variabel_{i}}}\n"));
    }
    text
}

/// A long misspelt key (edit distance against every known key).
fn long_names(size: usize) -> String {
    format!("name: n\nstages:\n  a:\n    image: x\n    commands: [true]\n    ? {}\n    : 1\n", "imagee".repeat(size / 6))
}

/// Smoke steps whose paths are `{{` floods (the scan once searched on after each).
fn template_braces(size: usize) -> String {
    format!(
        "name: s\nstages:\n  smoke:\n    kind: smoke\n    target: staging\n    journeys:\n      - name: j\n        steps:\n          - {{name: s, path: \"/{}}}}}\"}}\n",
        "{{".repeat(size / 2)
    )
}

/// Median of 5; `valid` checks the outcome where it is known (the scaled storefronts must
/// validate, or the bench would time the error path).
fn median_time(text: &str, valid: Option<bool>) -> Duration {
    let mut times: Vec<Duration> = (0..5)
        .map(|_| {
            let start = Instant::now();
            let result = gantry::pipeline::parse("bench.yml", text);
            let took = start.elapsed();
            assert!(valid.is_none_or(|v| v == result.is_ok()), "{}", result.err().map(|e| e.to_string().chars().take(500).collect::<String>()).unwrap_or_default());
            took
        })
        .collect();
    times.sort();
    times[2]
}

/// Thousands of stages, each needing the next one down the file (once a sweep per level).
fn needs_chain(size: usize) -> String {
    let n = size / 56;
    let mut text = String::from("name: chain\nstages:\n");
    for i in 0..n {
        let needs = if i + 1 < n { format!("[s{}]", i + 1) } else { "[]".into() };
        text.push_str(&format!("  s{i}: {{image: x, commands: [true], needs: {needs}}}\n"));
    }
    text
}

/// One stage needing tens of thousands of stages that do not exist (a linear scan per
/// name for duplicates, a "did you mean" over every stage for each).
fn long_needs(size: usize) -> String {
    let names: Vec<String> = (0..size / 9).map(|i| format!("n{i}")).collect();
    format!("name: needs\nstages:\n  a: {{image: x, commands: [true]}}\n  b: {{image: x, commands: [true], needs: [{}]}}\n", names.join(", "))
}

fn main() {
    let baseline = storefront_times(1);
    let base_time = median_time(&baseline, Some(true));
    let per_kib = |t: Duration, len: usize| t.as_secs_f64() / (len as f64 / 1024.0);
    let base_per_kib = per_kib(base_time, baseline.len());
    println!("{:<36} {:>10} {:>12} {:>18}", "file", "size", "median", "per-KiB vs x1");
    let row = |name: &str, text: &str, valid: Option<bool>| {
        let t = median_time(text, valid);
        println!(
            "{:<36} {:>7} KiB {:>9.2} ms {:>17.2}x",
            name,
            text.len() / 1024,
            t.as_secs_f64() * 1e3,
            per_kib(t, text.len()) / base_per_kib
        );
    };
    row("storefront x1 (baseline)", &baseline, Some(true));
    row("storefront x10", &storefront_times(10), Some(true));
    row("storefront x100", &storefront_times(100), Some(true));
    // As many copies as fit in the size limit.
    let per_copy = storefront_times(2).len() - baseline.len();
    let mut copies = (MIB - baseline.len()) / per_copy;
    while storefront_times(copies).len() > MIB - 1024 {
        copies -= 1;
    }
    row(&format!("storefront x{copies} (~1 MiB)"), &storefront_times(copies), Some(true));
    // The shapes that were quadratic, at a quarter of the limit and at the limit: linear
    // validation keeps the two ratios close.
    let shapes: [(&str, fn(usize) -> String); 8] = [
        ("needs: list of unknown stages", long_needs),
        ("${commit.sha} on every line", many_variables),
        ("declared vars x uses", declared_times_used),
        ("<<: merge of one big anchor", big_merge),
        ("misspelt vars (did you mean)", misspelt_variables),
        ("one long misspelt key", long_names),
        ("smoke path of {{{{...}}", template_braces),
        ("stages each needing the next", needs_chain),
    ];
    for (name, make) in &shapes {
        for size in [MIB / 4, MIB - 1024] {
            row(name, &make(size), None);
        }
    }
}
