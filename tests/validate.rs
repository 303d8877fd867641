//! `gantry validate`'s promises: a valid file becomes the Plan the user meant, and every
//! malformed file is answered with each problem at its file:line:column and field.
//!
//! Invalid fixtures start with `# expect: ` lines: together, exactly the rendered error.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use gantry::config::Role;
use gantry::pipeline::spec::{ApprovalRule, DurationText, EnvironmentSpec};
use gantry::pipeline::{
    interpolate, load, parse, plan_summary, PipelineError, Plan, Vars, When, DEFAULT_TIMEOUT,
};

const INVALID: &str = "tests/fixtures/pipelines/invalid";
const VALID: &str = "tests/fixtures/pipelines/valid";

fn assert_rejected_as_expected(fixture: &str) {
    let path = format!("{INVALID}/{fixture}");
    let text = std::fs::read_to_string(&path).expect("fixture is readable");
    let expected: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .collect();
    assert!(!expected.is_empty(), "{path} has no `# expect:` line");
    let err = match load(Path::new(&path)) {
        Ok(plan) => panic!("{path} was accepted: {plan:#?}"),
        Err(err) => err,
    };
    assert!(matches!(err, PipelineError::Invalid(_)), "{path}: {err}");
    let rendered = err.to_string();
    let actual: Vec<&str> = rendered.lines().collect();
    assert_eq!(
        actual, expected,
        "\n{path} was rejected with:\n{rendered}\n"
    );
}

macro_rules! rejects {
    ($($test:ident => $fixture:literal,)*) => {
        $(
            #[test]
            fn $test() {
                assert_rejected_as_expected($fixture);
            }
        )*
        const COVERED: &[&str] = &[$($fixture),*];
    };
}

rejects! {
    unknown_key_names_line_and_suggests => "unknown_key.yml",
    unknown_top_level_key_suggests_nearest => "unknown_top_level_key.yml",
    other_ci_systems_words_suggest_ours => "other_ci_word.yml",
    unrelated_unknown_key_gets_no_suggestion => "unrelated_key.yml",
    missing_name_is_reported => "missing_name.yml",
    missing_image_points_at_the_stage => "missing_image.yml",
    missing_commands_points_at_the_stage => "missing_commands.yml",
    commands_as_a_string_must_be_a_list => "commands_as_string.yml",
    unquoted_colon_in_command_explains_quoting => "command_with_colon.yml",
    empty_commands_are_rejected => "empty_commands.yml",
    retries_must_be_a_number => "retries_not_a_number.yml",
    retries_above_ten_are_rejected => "too_many_retries.yml",
    negative_retries_are_rejected => "negative_retries.yml",
    bad_duration_is_quoted_back => "bad_duration.yml",
    duration_without_unit_is_rejected => "duration_without_unit.yml",
    zero_timeout_is_rejected => "zero_timeout.yml",
    needs_naming_no_stage_suggests_nearest => "needs_unknown_stage.yml",
    stage_needing_itself_is_rejected => "needs_itself.yml",
    needs_as_a_string_shows_the_list_form => "needs_as_string.yml",
    cycle_in_needs_names_the_cycle => "cycle.yml",
    cycle_through_implicit_need_explains_it => "cycle_through_implicit_need.yml",
    duplicate_stage_names_the_first_line => "duplicate_stage.yml",
    duplicate_key_in_stage_names_the_first_line => "duplicate_key_in_stage.yml",
    empty_file_is_rejected => "empty_file.yml",
    empty_stages_are_rejected => "empty_stages.yml",
    unknown_variable_suggests_nearest => "unknown_variable.yml",
    variables_are_checked_in_image_and_env => "unknown_variable_in_image_and_env.yml",
    stage_name_with_space_is_rejected => "bad_stage_name.yml",
    stage_name_over_63_chars_is_rejected => "stage_name_too_long.yml",
    secret_name_must_be_env_shaped => "bad_secret_name.yml",
    env_name_must_be_env_shaped => "bad_env_name.yml",
    env_value_list_is_rejected => "env_value_is_a_list.yml",
    when_without_branches_is_rejected => "when_without_branches.yml",
    when_with_bad_glob_is_rejected => "when_bad_glob.yml",
    promotion_to_the_same_environment_is_refused => "promote_to_same_environment.yml",
    unknown_kind_suggests_nearest => "unknown_kind.yml",
    yaml_syntax_error_names_line_and_field => "yaml_syntax_error.yml",
    tab_indentation_is_explained => "tab_indentation.yml",
    top_level_list_is_rejected => "not_a_mapping.yml",
    second_yaml_document_is_rejected => "two_documents.yml",
    planned_top_level_key_is_not_supported_yet => "planned_top_level_key.yml",
    independent_errors_are_reported_together_in_line_order => "many_errors_reported_together.yml",
    deploy_health_bad_duration_points_into_the_flow_mapping => "deploy_health_bad_duration.yml",
    unknown_nested_key_in_kind_settings_suggests_nearest => "deploy_unknown_nested_key.yml",
    build_without_tag_names_the_missing_key => "build_missing_tag.yml",
    load_rate_must_be_a_rate => "load_bad_rate.yml",
    load_needs_a_path_or_requests => "load_needs_path_or_requests.yml",
    smoke_expectation_of_wrong_type_is_located_deep_in_the_journey => "smoke_step_wrong_type.yml",
    environment_names_must_fit_docker_names => "provision_bad_environment_name.yml",
    threshold_syntax_errors_point_into_the_expression => "load_threshold_syntax.yml",
    unknown_key_in_approval_suggests_nearest => "approval_unknown_key.yml",
    approval_by_nobody_is_rejected => "approval_count_zero.yml",
    approval_role_must_be_a_known_role => "approval_bad_role.yml",
    approval_needs_at_least_a_release_manager => "approval_role_too_low.yml",
    approval_expiry_must_be_a_duration => "approval_bad_expiry.yml",
    stage_needing_a_promotion_that_waits_for_approval_is_rejected => "stage_needs_approved_promotion.yml",
    stage_following_a_promotion_that_waits_for_approval_asks_for_explicit_needs => "stage_follows_approved_promotion.yml",
    deploying_into_an_environment_with_approval_is_refused => "deploy_into_approval_environment.yml",
    declared_environment_names_must_fit_docker_names => "bad_environment_name.yml",
}

#[test]
fn every_invalid_fixture_has_a_test() {
    let mut orphans = Vec::new();
    for entry in std::fs::read_dir(INVALID).expect("fixture dir") {
        let name = entry
            .expect("dir entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".yml") && !COVERED.contains(&name.as_str()) {
            orphans.push(name);
        }
    }
    assert!(orphans.is_empty(), "fixtures without a test: {orphans:?}");
}

fn valid(fixture: &str) -> Plan {
    let path = format!("{VALID}/{fixture}");
    load(Path::new(&path)).unwrap_or_else(|e| panic!("{path} was rejected:\n{e}"))
}

fn needs(plan: &Plan, stage: &str) -> Vec<String> {
    plan.stage(stage).expect("stage exists").needs.clone()
}

#[test]
fn valid_pipeline_becomes_the_plan_written() {
    let plan = valid("hello.yml");
    assert_eq!(plan.name, "hello");
    assert_eq!(plan.source, "tests/fixtures/pipelines/valid/hello.yml");
    let names: Vec<&str> = plan.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["prepare", "lint", "test", "package"]);

    let test = plan.stage("test").expect("test stage");
    assert_eq!(test.image, "gantry/rust:${commit.short}");
    assert_eq!(
        test.commands,
        [
            "echo \"$${HOME} is the shell's, ${commit.sha} is ours\"",
            "echo \"on ${commit.branch}\"\necho \"run ${run.id} of ${pipeline.name}\"\n",
        ]
    );
    assert_eq!(test.needs, ["prepare"]);
    assert_eq!(test.timeout, Duration::from_secs(600));
    assert_eq!(test.retries, 2);
    assert_eq!(test.secrets, ["API_TOKEN"]);
    assert_eq!(needs(&plan, "package"), ["lint", "test"]);
}

#[test]
fn absent_needs_means_the_stage_above() {
    let plan = valid("implicit_needs.yml");
    assert!(needs(&plan, "a").is_empty());
    assert_eq!(needs(&plan, "b"), ["a"]);
    assert_eq!(needs(&plan, "c"), ["b"]);
    assert_eq!(needs(&plan, "e"), ["d"]);
}

#[test]
fn explicit_empty_needs_means_no_dependency() {
    let plan = valid("implicit_needs.yml");
    assert!(needs(&plan, "d").is_empty());
    let levels: Vec<Vec<&str>> = plan
        .levels()
        .iter()
        .map(|l| l.iter().map(|s| s.name.as_str()).collect())
        .collect();
    assert_eq!(levels, [vec!["a", "d"], vec!["b", "e"], vec!["c"]]);
}

#[test]
fn omitted_settings_take_their_defaults() {
    let plan = valid("implicit_needs.yml");
    let a = plan.stage("a").expect("stage a");
    assert_eq!(a.timeout, DEFAULT_TIMEOUT);
    assert_eq!(a.retries, 0);
    assert_eq!(a.when, None);
    assert!(a.env.is_empty());
    assert!(a.secrets.is_empty());
}

#[test]
fn env_scalars_become_strings_as_written() {
    let plan = valid("hello.yml");
    let env = &plan.stage("prepare").expect("prepare").env;
    let expected: BTreeMap<String, String> = [
        ("GREETING", "hello"),
        ("PORT", "8080"),
        ("DEBUG", "true"),
        ("RATIO", "1.50"),
        ("EMPTY", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(*env, expected);
}

#[test]
fn when_branch_accepts_a_string_or_a_list() {
    let plan = valid("hello.yml");
    let lint = plan.stage("lint").expect("lint");
    assert_eq!(
        lint.when,
        Some(When {
            branches: vec!["main".into()]
        })
    );
    let test = plan
        .stage("test")
        .expect("test")
        .when
        .clone()
        .expect("when");
    assert_eq!(test.branches, ["main", "release/*"]);
    assert!(test.matches(Some("release/1.2")));
    assert!(!test.matches(Some("feature/x")));
}

#[test]
fn stages_are_planned_in_execution_order() {
    let plan = valid("out_of_order.yml");
    let names: Vec<&str> = plan.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["build", "deploy"]);
}

#[test]
fn merge_keys_share_settings_and_own_keys_win() {
    let plan = valid("merge_keys.yml");
    let two = plan.stage("two").expect("stage two");
    assert_eq!(two.image, "gantry/busybox");
    assert_eq!(two.timeout, Duration::from_secs(300));
    assert_eq!(two.retries, 3);
    assert_eq!(two.commands, ["echo two"]);
}

#[test]
fn summary_shows_stages_by_level() {
    let plan = valid("hello.yml");
    let expected = "\
pipeline hello (tests/fixtures/pipelines/valid/hello.yml): 4 stages
  1. prepare  gantry/busybox
  2. lint     gantry/busybox               needs prepare; only on main
     test     gantry/rust:${commit.short}  needs prepare; only on main, release/*; timeout 10m; retries 2
  3. package  gantry/busybox               needs lint, test
(stages under one number can run in parallel)
";
    assert_eq!(plan_summary(&plan), expected);
}

#[test]
fn environments_carry_their_approval_rules() {
    let plan = valid("environments.yml");
    assert_eq!(
        plan.approval_for("production"),
        Some(&ApprovalRule {
            role: Role::ReleaseManager,
            count: 2,
            forbid_author: false,
            expires: Some(DurationText(Duration::from_secs(24 * 60 * 60))),
        })
    );
    assert_eq!(plan.approval_for("staging"), None);
    assert_eq!(plan.approval_for("nowhere"), None);
}

#[test]
fn environment_without_settings_needs_no_approval() {
    let plan = valid("environments.yml");
    assert_eq!(plan.environments["staging"], EnvironmentSpec { approval: None });
    assert_eq!(plan.environments["preview"], EnvironmentSpec { approval: None });
}

#[test]
fn empty_approval_takes_the_safe_defaults() {
    let plan = valid("environments.yml");
    let expected = ApprovalRule {
        role: Role::ReleaseManager,
        count: 1,
        forbid_author: true,
        expires: None,
    };
    assert_eq!(plan.approval_for("canary"), Some(&expected));
    // `approval:` with nothing under it asks for approval too, never for none.
    assert_eq!(plan.approval_for("qa"), Some(&expected));
}

#[test]
fn summary_shows_promotions_that_wait_for_approval() {
    let plan = valid("environments.yml");
    let summary = plan_summary(&plan);
    assert!(
        summary.contains("promote app staging -> production  needs smoke; waits for approval\n"),
        "{summary}"
    );
    assert!(
        summary.ends_with(
            "environments:
  canary: approval by 1 release-manager, not the author
  production: approval by 2 release-managers, the author may approve, expires after 24h
  qa: approval by 1 release-manager, not the author
"
        ),
        "{summary}"
    );
}

#[test]
fn json_plan_keeps_the_environments() {
    let plan = valid("environments.yml");
    let json = serde_json::to_value(&plan).expect("plan serialises");
    assert_eq!(json["environments"]["production"]["approval"]["role"], "release-manager");
    assert_eq!(json["environments"]["production"]["approval"]["expires"], "1day");
    let back: Plan = serde_json::from_value(json).expect("plan reads back");
    assert_eq!(back, plan);
}

#[test]
fn plan_keeps_variables_for_run_time_interpolation() {
    let plan = valid("hello.yml");
    let test = plan.stage("test").expect("test");
    let vars = Vars::new()
        .with("commit.sha", "4f2a9c0e1b")
        .with("commit.short", "4f2a9c0");
    assert_eq!(interpolate(&test.image, &vars), "gantry/rust:4f2a9c0");
    assert_eq!(
        interpolate(&test.commands[0], &vars),
        "echo \"${HOME} is the shell's, 4f2a9c0e1b is ours\""
    );
}

#[test]
fn unreadable_file_is_an_error_naming_the_path() {
    let err =
        load(Path::new("tests/fixtures/pipelines/no-such-file.yml")).expect_err("missing file");
    assert!(matches!(err, PipelineError::Read { .. }));
    assert!(
        err.to_string()
            .contains("tests/fixtures/pipelines/no-such-file.yml"),
        "{err}"
    );
}

#[test]
fn parse_uses_the_given_name_in_messages() {
    let err = parse(
        "bad.yml",
        "name: x\nstages:\n  build:\n    image: a\n    commands: [b]\n    timeout: 5 parsecs\n",
    )
    .expect_err("bad duration");
    assert_eq!(
        err.diagnostics()[0].to_string().lines().next(),
        Some("bad.yml:6:14: stages.build.timeout: \"5 parsecs\" is not a duration")
    );
}
