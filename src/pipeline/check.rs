//! The validation walk over the located YAML tree: collects every independent problem
//! as a Diagnostic, and builds the Plan only when there are none.


use super::context::{Ctx, Draft, Entry};
use super::environments;
use super::graph::{self, GraphStage};
use super::plan::Plan;
use super::stage;
use super::yaml::{Node, Pos};

/// Top-level keys of a pipeline file.
const TOP_KEYS: &[&str] = &["name", "vars", "environments", "stages", "runs_on", "retry_on_engine_loss"];
/// Top-level keys from the design that later issues will add.
const PLANNED_TOP_KEYS: &[&str] = &["on"];

/// Checks a whole document and builds the Plan, or returns every problem found.
pub(crate) fn check(ctx: &mut Ctx<'_>, root: Option<&Node>) -> Option<Plan> {
    let Some(root) = root.filter(|r| !r.is_null()) else {
        ctx.error(
            Pos {
                line: 1,
                column: 1,
                index: 0,
            },
            "",
            "the file is empty",
        )
        .hint("a pipeline needs at least `name:` and `stages:`");
        return None;
    };
    let Node::Map { entries, pos } = root else {
        ctx.wrong_type(root, "", "a mapping with `name` and `stages`");
        return None;
    };
    let mut name = None;
    let mut stages = None;
    let mut suggested = Vec::new();
    let mut placement = super::plan::Placement::default();
    // Variables first: stages anywhere in the file may use them.
    let vars = entries
        .iter()
        .find(|(k, _)| k.as_text() == Some("vars"))
        .map(|(k, v)| declare_vars(ctx, k, v))
        .unwrap_or_default();
    for entry in ctx.entries(entries, "", "key") {
        match entry.name {
            "vars" => {}
            "name" => match entry.value.as_text() {
                Some(text) if !text.trim().is_empty() => name = Some(text.to_owned()),
                _ if entry.value.as_text().is_some() => {
                    ctx.error(entry.value.pos(), &entry.field, "must not be empty");
                }
                _ => {
                    ctx.wrong_type(entry.value, &entry.field, "a string");
                }
            },
            "stages" => stages = Some(entry),
            "runs_on" => super::placement::runs_on(ctx, &entry, &mut placement),
            "retry_on_engine_loss" => super::placement::retry_on_engine_loss(ctx, &entry, &mut placement),
            // Before the stages, whose checks consult them.
            "environments" => ctx.environments = environments::declare(ctx, entry.value),
            other if PLANNED_TOP_KEYS.contains(&other) => {
                ctx.error(
                    entry.key.pos(),
                    &entry.field,
                    format!("`{other}` is not supported yet"),
                );
            }
            _ => suggested.extend(ctx.unknown_key(&entry, TOP_KEYS)),
        }
    }
    let present = |key: &str| {
        entries.iter().any(|(k, _)| k.as_text() == Some(key)) || suggested.contains(&key)
    };
    if !present("name") {
        ctx.error(*pos, "name", "required key is missing")
            .hint("name the pipeline, e.g. `name: storefront`");
    }
    let drafts = match &stages {
        None if present("stages") => Vec::new(),
        None => {
            ctx.error(*pos, "stages", "required key is missing")
                .hint("a pipeline needs at least one stage under `stages:`");
            Vec::new()
        }
        Some(entry) => check_stages(ctx, entry),
    };

    assemble(ctx, name, &drafts, vars, placement)
}


/// The plan, once every stage checked: stages in the order their needs give, needs
/// resolved, promotions checked against that order. None while anything is wrong.
fn assemble(
    ctx: &mut Ctx<'_>,
    name: Option<String>,
    drafts: &[Draft],
    vars: std::collections::BTreeMap<String, String>,
    placement: super::plan::Placement,
) -> Option<Plan> {
    let graph_stages: Vec<GraphStage> = drafts
        .iter()
        .map(|d| GraphStage {
            name: d.plan.name.clone(),
            needs: d.needs.clone(),
        })
        .collect();
    let order = graph::resolve(ctx, &graph_stages);
    if let Some(order) = &order {
        environments::check_promotions(ctx, drafts, order);
    }

    let (Some(name), Some(order)) = (name, order) else {
        return None;
    };
    if !ctx.diags.is_empty() {
        return None;
    }
    let stages = order
        .into_iter()
        .map(|(index, needs)| {
            let mut plan = drafts[index].plan.clone();
            plan.needs = needs;
            plan
        })
        .collect();
    Some(Plan {
        name,
        source: ctx.file.to_owned(),
        stages,
        vars,
        environments: std::mem::take(&mut ctx.environments),
        placement,
    })
}

/// `vars: {latency_ms: "0"}`: names with default values, overridable with `--var`.
fn declare_vars(ctx: &mut Ctx<'_>, key: &Node, value: &Node) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let Node::Map { entries, .. } = value else {
        if !value.is_null() {
            ctx.wrong_type(value, "vars", "a mapping of names to default values")
                .hint("e.g. `vars: {latency_ms: \"0\"}`, used as `${var.latency_ms}`");
        }
        let _ = key;
        return out;
    };
    for entry in ctx.entries(entries, "vars", "variable") {
        let ok = entry.name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && entry.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !ok {
            ctx.error(entry.key.pos(), &entry.field, format!("`{}` is not a valid variable name", entry.name))
                .hint("use lowercase letters, digits and `_`");
            continue;
        }
        match entry.value.as_text() {
            Some(text) => {
                out.insert(entry.name.to_owned(), text.to_owned());
            }
            None => {
                ctx.wrong_type(entry.value, &entry.field, "a default value (a string or number)");
            }
        }
        ctx.declared_vars.push(entry.name.to_owned());
    }
    out
}

fn check_stages(ctx: &mut Ctx<'_>, stages: &Entry<'_>) -> Vec<Draft> {
    let Node::Map { entries, .. } = stages.value else {
        ctx.wrong_type(
            stages.value,
            &stages.field,
            "a mapping of stage names to stages",
        )
        .hint_opt(
            stages
                .value
                .is_null()
                .then(|| "a pipeline needs at least one stage".to_owned()),
        );
        return Vec::new();
    };
    if entries.is_empty() {
        ctx.error(
            stages.value.pos(),
            &stages.field,
            "a pipeline needs at least one stage",
        );
        return Vec::new();
    }
    ctx.entries(entries, &stages.field, "stage")
        .into_iter()
        .map(|entry| stage::check(ctx, &entry))
        .collect()
}
