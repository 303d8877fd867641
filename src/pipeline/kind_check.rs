//! Checks of kind settings that types alone cannot express (one of two keys required,
//! names that end up in Docker object names, threshold syntax), located like all others.

use super::context::{object_name, Ctx, Entry};
use super::spec::{Action, DeployMode, HealthSpec};
use super::yaml::{join, Node, Pos};

pub(crate) fn check(ctx: &mut Ctx<'_>, stage: &Entry<'_>, action: &Action, entries: &[Entry<'_>]) {
    let at = |name: &str| entries.iter().find(|e| e.name == name);
    let pos_of = |name: &str| at(name).map(|e| e.key.pos()).unwrap_or(stage.key.pos());
    let field = |name: &str| join(&stage.field, name);
    match action {
        Action::Run => {}
        Action::Build(b) => {
            if b.context.starts_with('/') || b.context.split('/').any(|p| p == "..") {
                ctx.error(pos_of("context"), &field("context"), format!("`{}` must be a directory inside the repository", b.context));
            }
            // What is written before any `${...}` is known now; the run checks the rest.
            let literal = b.tag.split("${").next().unwrap_or_default();
            if crate::agents::is_reserved(literal) {
                let pos = at("tag").map(|e| e.value.pos()).unwrap_or(stage.key.pos());
                ctx.error(pos, &field("tag"), format!("`{}` is in the {} namespace, which is reserved for Gantry's own images", b.tag, crate::agents::RESERVED_NAMESPACE))
                    .hint("a pipeline may not replace Gantry's agents or base images; tag the image under another name, e.g. `storefront:${commit.short}`");
            }
        }
        Action::Provision(p) => {
            object_name(ctx, pos_of("environment"), &field("environment"), "environment", &p.environment);
            if let Some(services) = at("services") {
                if let Node::Map { entries: svc, .. } = services.value {
                    for (key, value) in svc {
                        let name = key.as_text().unwrap_or_default();
                        let f = join(&services.field, name);
                        object_name(ctx, key.pos(), &f, "service", name);
                        if let (Some(spec), Node::Map { entries: se, .. }) = (p.services.get(name), value) {
                            let health_pos = se.iter().find(|(k, _)| k.as_text() == Some("health")).map(|(k, _)| k.pos());
                            if let (Some(h), Some(pos)) = (&spec.health, health_pos) {
                                health(ctx, pos, &join(&f, "health"), h);
                                if h.http.is_some() && h.port.is_none() && spec.ports.is_empty() {
                                    ctx.error(pos, &join(&f, "health.port"), "an HTTP health check needs a port")
                                        .hint("give the service `ports: [\"8080\"]` or the check `port: 8080`");
                                }
                            }
                        }
                    }
                }
            }
        }
        Action::Deploy(d) => {
            object_name(ctx, pos_of("environment"), &field("environment"), "environment", &d.environment);
            super::environments::check_deploy(ctx, pos_of("environment"), &field("environment"), &d.environment);
            object_name(ctx, pos_of("app"), &field("app"), "app", &d.app);
            if d.mode == DeployMode::Promote {
                for key in ["image", "port", "env", "command", "health", "publish"] {
                    if at(key).is_some() {
                        ctx.error(pos_of(key), &field(key), "a `mode: promote` deployment takes the preview as it is")
                            .hint("set it on the `mode: preview` deployment");
                    }
                }
            } else {
                for key in ["image", "port"] {
                    if at(key).is_none() {
                        ctx.error(stage.key.pos(), &field(key), "required key is missing");
                    }
                }
            }
            if let Some(h) = &d.health {
                health(ctx, pos_of("health"), &field("health"), h);
            }
        }
        Action::Smoke(s) => {
            object_name(ctx, pos_of("target"), &field("target"), "environment", &s.target);
            if s.journeys.is_empty() {
                ctx.error(pos_of("journeys"), &field("journeys"), "must list at least one journey");
            }
            for (i, j) in s.journeys.iter().enumerate() {
                if j.steps.is_empty() {
                    ctx.error(pos_of("journeys"), &format!("{}[{i}].steps", field("journeys")), format!("journey `{}` has no steps", j.name));
                }
            }
        }
        Action::Promote(p) => {
            object_name(ctx, pos_of("from"), &field("from"), "environment", &p.from);
            object_name(ctx, pos_of("to"), &field("to"), "environment", &p.to);
            object_name(ctx, pos_of("app"), &field("app"), "app", &p.app);
            if p.from == p.to {
                ctx.error(pos_of("to"), &field("to"), "a promotion goes to another environment than `from`");
            }
            if let Some(h) = &p.health {
                health(ctx, pos_of("health"), &field("health"), h);
            }
            if let Some(v) = &p.verify {
                if let Err(e) = v.apm.0.validate() {
                    ctx.error(pos_of("verify"), &field("verify.apm"), e.to_string());
                }
            }
        }
        Action::Load(l) => {
            object_name(ctx, pos_of("target"), &field("target"), "environment", &l.target);
            match (&l.path, l.requests.is_empty()) {
                (None, true) => {
                    ctx.error(stage.key.pos(), &field("path"), "a load stage needs `path` or `requests`");
                }
                (Some(_), false) => {
                    ctx.error(pos_of("requests"), &field("requests"), "give either `path` or `requests`, not both");
                }
                _ => {}
            }
            if l.stages.is_empty() && (l.rate.is_none() || l.duration.is_none()) {
                let missing = if l.rate.is_none() { "rate" } else { "duration" };
                ctx.error(stage.key.pos(), &field(missing), "required key is missing")
                    .hint("a load stage needs `rate` and `duration`, or ramp `stages`");
            }
            if !l.stages.is_empty() && (l.rate.is_some() || l.duration.is_some()) {
                ctx.error(pos_of("stages"), &field("stages"), "give either `rate` and `duration`, or `stages`, not both");
            }
            if l.connections == 0 {
                ctx.error(pos_of("connections"), &field("connections"), "must be at least 1");
            }
            if let Some(t) = at("thresholds") {
                thresholds(ctx, t);
            }
            if let Some(apm) = &l.apm {
                if let Err(e) = apm.0.validate() {
                    ctx.error(pos_of("apm"), &field("apm"), e.to_string());
                }
            }
        }
    }
}

fn health(ctx: &mut Ctx<'_>, pos: Pos, field: &str, h: &HealthSpec) {
    match (&h.http, &h.command) {
        (None, None) => {
            ctx.error(pos, field, "a health check needs `http` (a path) or `command`");
        }
        (Some(_), Some(_)) => {
            ctx.error(pos, field, "give either `http` or `command`, not both");
        }
        (Some(path), None) if !path.starts_with('/') => {
            ctx.error(pos, &join(field, "http"), format!("`{path}` must be a path starting with `/`"));
        }
        _ => {}
    }
}


/// Each threshold expression must parse; a syntax error points into the expression.
fn thresholds(ctx: &mut Ctx<'_>, entry: &Entry<'_>) {
    let Node::Map { entries, .. } = entry.value else { return };
    for (metric, list) in entries {
        let metric_name = metric.as_text().unwrap_or_default();
        let mfield = join(&entry.field, metric_name);
        if let Err(e) = crate::gate::threshold::Metric::parse(metric_name) {
            ctx.error(metric.pos(), &mfield, e.to_string());
            continue;
        }
        let Node::Seq { items, .. } = list else { continue };
        for (i, item) in items.iter().enumerate() {
            let Some(expr) = item.as_text() else { continue };
            if let Err((column, message)) = threshold_syntax(metric_name, expr) {
                let mut pos = item.pos();
                // Point at the offending character inside a quoted expression.
                let quoted = matches!(item, Node::Scalar { plain: false, .. });
                pos.column += column + usize::from(quoted);
                ctx.error(pos, &format!("{mfield}[{i}]"), message);
            }
        }
    }
}

/// The column (in the expression) and message of a threshold syntax error.
fn threshold_syntax(metric: &str, expr: &str) -> Result<(), (usize, String)> {
    match crate::gate::threshold::Threshold::parse(metric, expr) {
        Ok(_) => Ok(()),
        Err(e) => {
            // The parser counts bytes; the file's columns count characters.
            let byte = e.column().unwrap_or(0).min(expr.len());
            let chars = expr.char_indices().take_while(|(i, _)| *i < byte).count();
            Err((chars, e.to_string()))
        }
    }
}
