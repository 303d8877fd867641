//! Parsers never fall over: whatever a pushed pipeline file (or the operator's config)
//! holds, validating it ends in a Plan or in errors naming file, line and field; never a
//! panic, a stack overflow, or a value that breaks later at run time.
//!
//! Hand-made hostile files live in tests/fixtures/hostile; each says what it attacks and
//! `# expect: LINE FIELD TEXT` (or `# expect: valid`). Larger inputs are generated here.
//! Every parse runs on a thread with the 2 MiB stack of a tokio worker, where
//! `gantry serve` validates pushes.

use std::path::Path;

use gantry::pipeline::{parse, PipelineError, Plan};

const STACK: usize = 2 * 1024 * 1024;

/// Parses on a thread with a worker's stack; a stack overflow aborts the test binary,
/// a panic fails the test.
fn parse_on_worker(file: &str, text: String) -> Result<Plan, PipelineError> {
    let file = file.to_owned();
    std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || parse(&file, &text))
        .unwrap()
        .join()
        .expect("the parser panicked")
}

fn rejected(file: &str, text: String) -> Vec<gantry::pipeline::Diagnostic> {
    match parse_on_worker(file, text) {
        Ok(plan) => panic!("{file} was accepted: {plan:?}"),
        Err(e) => e.diagnostics().to_vec(),
    }
}

/// The diagnostic at `line` on `field` whose message contains `text`, or a failure
/// listing what was reported instead.
fn assert_reported(diags: &[gantry::pipeline::Diagnostic], line: usize, field: &str, text: &str) {
    let rendered: Vec<String> = diags.iter().map(ToString::to_string).collect();
    assert!(
        diags.iter().any(|d| d.line == line && d.field == field && d.message.contains(text)),
        "expected line {line}, field {field}, `{text}`; got:\n{}",
        rendered.join("\n")
    );
}

#[test]
fn every_hostile_fixture_is_answered_as_it_expects() {
    let dir = Path::new("tests/fixtures/hostile");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let expect = text.lines().find_map(|l| l.strip_prefix("# expect: ")).unwrap_or_else(|| panic!("{} has no `# expect:`", path.display()));
        let name = path.display().to_string();
        if expect == "valid" {
            if let Err(e) = parse_on_worker(&name, text.clone()) {
                panic!("{name} was refused:\n{e}");
            }
        } else {
            let mut parts = expect.splitn(3, ' ');
            let line: usize = parts.next().unwrap().parse().unwrap();
            let field = parts.next().unwrap();
            let message = parts.next().unwrap();
            assert_reported(&rejected(&name, text.clone()), line, field, message);
        }
        seen += 1;
    }
    assert!(seen >= 7, "only {seen} hostile fixtures found");
}

/// `&l1 [[*l0]]`: few lines, each level nesting the one before (two levels a line).
#[test]
fn chained_aliases_are_refused_by_depth_after_expansion() {
    let mut text = String::from("name: chain\nl0: &l0 [x]\n");
    for i in 1..=3000 {
        text.push_str(&format!("l{i}: &l{i} [[*l{p}]]\n", p = i - 1));
    }
    text.push_str("stages: {a: {image: x, commands: [true]}}\n");
    let diags = rejected("chain.yml", text);
    // l32's alias of l31 (63 levels) stands 3 levels deep.
    assert_reported(&diags, 34, "l32[0][0]", "this alias nests deeper than 64 levels once expanded");
}

/// `&l1 [[*l0, *l0]]`: each level also doubles, so the count gives out first.
#[test]
fn chained_doubling_aliases_are_refused_by_their_expanded_count() {
    let mut text = String::from("name: chain\nl0: &l0 [x]\n");
    for i in 1..=3000 {
        text.push_str(&format!("l{i}: &l{i} [[*l{p}, *l{p}]]\n", p = i - 1));
    }
    let diags = rejected("chain.yml", text);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(diags[0].message.contains("aliases expand the document to more than 500000 values"), "{diags:?}");
}

#[test]
fn an_alias_of_a_long_string_repeated_is_refused_by_expanded_size() {
    let mut text = format!("name: big\ns: &s \"{}\"\nlist: [", "x".repeat(64 * 1024));
    text.push_str(&vec!["*s"; 200].join(", "));
    text.push_str("]\nstages: {a: {image: x, commands: [true]}}\n");
    // The 127th copy is the one past 8 MiB.
    assert_reported(&rejected("big.yml", text), 3, "list[126]", "more than 8 MiB of text");
}

#[test]
fn a_file_over_the_size_limit_is_refused_before_parsing() {
    let text = format!("name: huge\n# {}\nstages: {{a: {{image: x}}}}\n", "x".repeat(1024 * 1024));
    assert_reported(&rejected("huge.yml", text), 1, "(file)", "pipeline files may be at most 1024 KiB");
}

#[test]
fn a_branch_glob_too_long_for_its_regex_is_refused_at_validation() {
    let glob = "?".repeat(145_000);
    let text = format!("name: g\nstages:\n  a:\n    image: x\n    commands: [true]\n    when: {{branch: [\"{glob}\"]}}\n");
    assert_reported(&rejected("g.yml", text), 6, "stages.a.when.branch[0]", "at most 256 are allowed");
}

#[test]
fn a_glob_that_validated_matches_at_run_time_without_panicking() {
    let text = "name: g\nstages:\n  a:\n    image: x\n    commands: [true]\n    when: {branch: [\"release/*\", \"[\"]}\n";
    let diags = rejected("g.yml", text.into());
    assert_reported(&diags, 6, "stages.a.when.branch[1]", "is not a valid branch pattern");
}

#[test]
fn a_name_of_100000_characters_is_refused_without_suggestions() {
    let name = "b".repeat(100_000);
    // An explicit key (`? `): YAML itself refuses implicit keys over 1024 characters.
    let text = format!("name: n\nstages:\n  ? {name}\n  : {{image: x, commands: [true]}}\n  a:\n    image: x\n    imagee: y\n");
    let diags = rejected("n.yml", text);
    assert_reported(&diags, 3, &format!("stages.{}...", &name[..40]), "at most 128 are allowed");
    // The short typo still gets its suggestion.
    assert!(diags.iter().any(|d| d.line == 7 && d.hint.as_deref() == Some("did you mean `image`?")), "{diags:?}");
}

#[test]
fn an_unknown_key_of_100000_characters_gets_no_suggestion() {
    let key = "i".repeat(100_000);
    let text = format!("name: n\n? {key}\n: 1\nstages: {{a: {{image: x, commands: [true]}}}}\n");
    let diags = rejected("n.yml", text);
    assert!(diags.iter().all(|d| d.hint.is_none() && d.line == 2), "{diags:?}");
}

/// Positions of many variables are found without recounting from the file start, and
/// still point at the right line and column.
#[test]
fn unknown_variables_among_thousands_are_located_exactly() {
    let mut text = String::from("name: v\nstages:\n  a:\n    image: x\n    commands:\n");
    for _ in 0..20_000 {
        text.push_str("      - echo ${commit.sha}\n");
    }
    text.push_str("      - \"echo é ${commit.sha} ${commit.shaa}\"\n");
    let diags = rejected("v.yml", text);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!((diags[0].line, diags[0].column), (20_006, 31));
    assert_eq!(diags[0].field, "stages.a.commands[20000]");
}

#[test]
fn a_variable_written_with_an_escape_is_placed_at_its_scalar() {
    let text = "name: v\nstages:\n  a:\n    image: x\n    commands: [\"echo \\x24{commit.nope}\", \"echo ${commit.sha}\"]\n";
    let diags = rejected("v.yml", text.into());
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!((diags[0].line, diags[0].column), (5, 16));
}

#[test]
fn a_merge_of_50000_keys_is_read_whole_and_duplicates_are_found() {
    let mut text = String::from("name: m\nbase: &base {");
    text.push_str(&(0..50_000).map(|i| format!("k{i}: v")).collect::<Vec<_>>().join(", "));
    text.push_str("}\nvars: {<<: *base, k1: w, k1: z}\nstages: {a: {image: x, commands: [true]}}\n");
    let diags = rejected("m.yml", text);
    // Only the duplicate (and the anchor's own unknown key) is wrong: the merged keys are
    // valid variable names.
    let found: Vec<(usize, &str)> = diags.iter().map(|d| (d.line, d.field.as_str())).collect();
    assert_eq!(found, [(2, "base"), (3, "vars.k1")], "{diags:?}");
    assert!(diags[1].message.contains("duplicate variable `k1`"), "{diags:?}");
}

#[test]
fn a_selector_too_long_to_compile_is_refused_at_validation() {
    let regex = "a|".repeat(500_000);
    let text = format!(
        "name: s\nstages:\n  load:\n    kind: load\n    target: staging\n    rate: 10/s\n    duration: 5s\n    apm:\n      provider: prometheus-scrape\n      url: http://x/metrics\n      checks:\n        - {{name: r, rate: 'm{{code=~\"{regex}\"}}', threshold: '<1'}}\n"
    );
    let diags = rejected("s.yml", text);
    assert!(diags.iter().any(|d| d.line == 12 && d.message.contains("at most 4096")), "{diags:?}");
}

#[test]
fn a_short_selector_regex_that_compiles_huge_is_refused() {
    let text = "name: s\nstages:\n  load:\n    kind: load\n    target: staging\n    rate: 10/s\n    duration: 5s\n    apm:\n      provider: prometheus-scrape\n      url: http://x/metrics\n      checks:\n        - {name: r, rate: 'm{code=~\"(a{1000}){1000}\"}', threshold: '<1'}\n";
    let diags = rejected("s.yml", text.into());
    assert!(diags.iter().any(|d| d.line == 12 && d.message.contains("bad regex")), "{diags:?}");
}

#[test]
fn an_apm_window_of_a_million_years_is_refused() {
    let text = "name: s\nstages:\n  load:\n    kind: load\n    target: staging\n    rate: 10/s\n    duration: 5s\n    apm:\n      provider: prometheus-scrape\n      url: http://x/metrics\n      window: 1000000y\n      checks:\n        - {name: r, rate: m, threshold: '<1'}\n";
    let diags = rejected("s.yml", text.into());
    assert!(diags.iter().any(|d| d.message.contains("at most 90 days")), "{diags:?}");
}

mod config {
    use std::path::Path;

    use gantry::config::{Config, ConfigError};

    fn parse_on_worker(text: String) -> Result<Config, ConfigError> {
        std::thread::Builder::new()
            .stack_size(super::STACK)
            .spawn(move || Config::parse(Path::new("config.yml"), &text))
            .unwrap()
            .join()
            .expect("the config parser panicked")
    }

    #[test]
    fn chained_aliases_in_the_operator_config_are_refused_with_their_line() {
        let mut text = String::from("x0: &x0 [a]\n");
        for i in 1..=200 {
            text.push_str(&format!("x{i}: &x{i} [*x{}]\n", i - 1));
        }
        match parse_on_worker(text) {
            Err(ConfigError::Invalid { line, message, .. }) => {
                assert_eq!(line, 64, "{message}");
                assert!(message.contains("nests deeper than 64 levels"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_project_branch_glob_too_long_is_refused_when_the_config_is_read() {
        let glob = "?".repeat(145_000);
        let text = format!("projects:\n  shop: {{repo: /srv/shop.git, pipeline: p.yml, branches: [\"{glob}\"]}}\n");
        let message = parse_on_worker(text).unwrap_err().to_string();
        assert!(message.contains("projects.shop.branches: is 145000 characters long; at most 256"), "{message}");
    }

    #[test]
    fn a_lock_wait_of_a_million_years_is_refused() {
        let message = parse_on_worker("locks: {wait: 1000000y}\n".into()).unwrap_err().to_string();
        assert!(message.contains("locks.wait: must be at most 90 days"), "{message}");
    }
}

/// `gantry serve` reads the pipeline out of the pushed commit: an oversized blob is
/// refused by its size in the object header, before it is loaded.
#[test]
fn a_pushed_pipeline_file_over_the_limit_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git").arg("-C").arg(dir.path()).args(args).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(dir.path().join("big.yml"), format!("name: big\n#{}\n", "x".repeat(2 * 1024 * 1024))).unwrap();
    git(&["add", "big.yml"]);
    git(&["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "big"]);
    let checkout = gantry::git::resolve(dir.path(), None).unwrap();
    let message = checkout.read_file("big.yml").unwrap_err().to_string();
    assert!(message.contains("big.yml is 2049 KiB; pipeline files may be at most 1024 KiB"), "{message}");
}
