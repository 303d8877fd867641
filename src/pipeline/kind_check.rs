//! Checks of kind settings that types alone cannot express (one of two keys required,
//! names that end up in Docker object names, threshold syntax), located like all others.

use super::context::{object_name, Ctx, Entry};
use super::spec::{Action, BuildSpec, DeployMode, DeploySpec, HealthSpec, LoadSpec, PromoteSpec, ProvisionSpec, SmokeSpec};
use super::yaml::{join, Node, Pos};

pub(crate) fn check(ctx: &mut Ctx<'_>, stage: &Entry<'_>, action: &Action, entries: &[Entry<'_>]) {
    let k = Keys { stage, entries };
    match action {
        Action::Run => {}
        Action::Build(b) => build(ctx, &k, b),
        Action::Provision(p) => provision(ctx, &k, p),
        Action::Deploy(d) => deploy(ctx, &k, d),
        Action::Smoke(s) => smoke(ctx, &k, s),
        Action::Promote(p) => promote(ctx, &k, p),
        Action::Load(l) => load(ctx, &k, l),
    }
}

/// Where a stage's keys are written, to point at them.
struct Keys<'e, 'n> {
    stage: &'e Entry<'n>,
    entries: &'e [Entry<'n>],
}

impl<'e, 'n> Keys<'e, 'n> {
    fn at(&self, name: &str) -> Option<&'e Entry<'n>> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// Where `name` is written, else where the stage is.
    fn pos_of(&self, name: &str) -> Pos {
        self.at(name).map(|e| e.key.pos()).unwrap_or(self.stage.key.pos())
    }

    fn field(&self, name: &str) -> String {
        join(&self.stage.field, name)
    }
}

fn build(ctx: &mut Ctx<'_>, k: &Keys<'_, '_>, b: &BuildSpec) {
    if b.context.starts_with('/') || b.context.split('/').any(|p| p == "..") {
        ctx.error(k.pos_of("context"), &k.field("context"), format!("`{}` must be a directory inside the repository", b.context));
    }
    // What is written before any `${...}` is known now; the run checks the rest.
    let literal = b.tag.split("${").next().unwrap_or_default();
    if crate::agents::is_reserved(literal) {
        let pos = k.at("tag").map(|e| e.value.pos()).unwrap_or(k.stage.key.pos());
        ctx.error(pos, &k.field("tag"), format!("`{}` is in the {} namespace, which is reserved for Gantry's own images", b.tag, crate::agents::RESERVED_NAMESPACE))
            .hint("a pipeline may not replace Gantry's agents or base images; tag the image under another name, e.g. `storefront:${commit.short}`");
    }
}

fn provision(ctx: &mut Ctx<'_>, k: &Keys<'_, '_>, p: &ProvisionSpec) {
    object_name(ctx, k.pos_of("environment"), &k.field("environment"), "environment", &p.environment);
    if let Some(services) = k.at("services") {
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

fn deploy(ctx: &mut Ctx<'_>, k: &Keys<'_, '_>, d: &DeploySpec) {
    object_name(ctx, k.pos_of("environment"), &k.field("environment"), "environment", &d.environment);
    super::environments::check_deploy(ctx, k.pos_of("environment"), &k.field("environment"), &d.environment);
    object_name(ctx, k.pos_of("app"), &k.field("app"), "app", &d.app);
    if d.mode == DeployMode::Promote {
        for key in ["image", "port", "env", "command", "health", "publish", "replicas", "update", "placement"] {
            if k.at(key).is_some() {
                ctx.error(k.pos_of(key), &k.field(key), "a `mode: promote` deployment takes the preview as it is")
                    .hint("set it on the `mode: preview` deployment");
            }
        }
    } else {
        for key in ["image", "port"] {
            if k.at(key).is_none() {
                ctx.error(k.stage.key.pos(), &k.field(key), "required key is missing");
            }
        }
    }
    if let Some(h) = &d.health {
        health(ctx, k.pos_of("health"), &k.field("health"), h);
    }
    rollout(ctx, k, d.replicas, d.update.as_ref());
}

/// Replicas and Swarm's update settings: bounded, because a pipeline is not trusted with
/// the size of a cluster.
fn rollout(ctx: &mut Ctx<'_>, k: &Keys<'_, '_>, replicas: Option<u32>, update: Option<&crate::pipeline::spec::UpdateSpec>) {
    use crate::pipeline::spec::MAX_REPLICAS;
    if let Some(r) = replicas.filter(|r| *r == 0 || *r > MAX_REPLICAS) {
        ctx.error(k.pos_of("replicas"), &k.field("replicas"), format!("{r} is not between 1 and {MAX_REPLICAS}"));
    }
    if let Some(u) = update {
        if !(0.0..=1.0).contains(&u.max_failure_ratio) {
            ctx.error(k.pos_of("update"), &k.field("update.max_failure_ratio"), "must be between 0 and 1");
        }
        if u.parallelism > MAX_REPLICAS {
            ctx.error(k.pos_of("update"), &k.field("update.parallelism"), format!("{} is more than {MAX_REPLICAS} tasks", u.parallelism));
        }
    }
}

fn smoke(ctx: &mut Ctx<'_>, k: &Keys<'_, '_>, s: &SmokeSpec) {
    object_name(ctx, k.pos_of("target"), &k.field("target"), "environment", &s.target);
    if s.journeys.is_empty() {
        ctx.error(k.pos_of("journeys"), &k.field("journeys"), "must list at least one journey");
    }
    for (i, j) in s.journeys.iter().enumerate() {
        if j.steps.is_empty() {
            ctx.error(k.pos_of("journeys"), &format!("{}[{i}].steps", k.field("journeys")), format!("journey `{}` has no steps", j.name));
        }
    }
}

fn promote(ctx: &mut Ctx<'_>, k: &Keys<'_, '_>, p: &PromoteSpec) {
    object_name(ctx, k.pos_of("from"), &k.field("from"), "environment", &p.from);
    object_name(ctx, k.pos_of("to"), &k.field("to"), "environment", &p.to);
    object_name(ctx, k.pos_of("app"), &k.field("app"), "app", &p.app);
    if p.from == p.to {
        ctx.error(k.pos_of("to"), &k.field("to"), "a promotion goes to another environment than `from`");
    }
    if let Some(h) = &p.health {
        health(ctx, k.pos_of("health"), &k.field("health"), h);
    }
    rollout(ctx, k, p.replicas, p.update.as_ref());
    if let Some(v) = &p.verify {
        if let Err(e) = v.apm.0.validate() {
            ctx.error(k.pos_of("verify"), &k.field("verify.apm"), e.to_string());
        }
    }
}

fn load(ctx: &mut Ctx<'_>, k: &Keys<'_, '_>, l: &LoadSpec) {
    object_name(ctx, k.pos_of("target"), &k.field("target"), "environment", &l.target);
    match (&l.path, l.requests.is_empty()) {
        (None, true) => {
            ctx.error(k.stage.key.pos(), &k.field("path"), "a load stage needs `path` or `requests`");
        }
        (Some(_), false) => {
            ctx.error(k.pos_of("requests"), &k.field("requests"), "give either `path` or `requests`, not both");
        }
        _ => {}
    }
    if l.stages.is_empty() && (l.rate.is_none() || l.duration.is_none()) {
        let missing = if l.rate.is_none() { "rate" } else { "duration" };
        ctx.error(k.stage.key.pos(), &k.field(missing), "required key is missing")
            .hint("a load stage needs `rate` and `duration`, or ramp `stages`");
    }
    if !l.stages.is_empty() && (l.rate.is_some() || l.duration.is_some()) {
        ctx.error(k.pos_of("stages"), &k.field("stages"), "give either `rate` and `duration`, or `stages`, not both");
    }
    if l.connections == 0 {
        ctx.error(k.pos_of("connections"), &k.field("connections"), "must be at least 1");
    }
    if let Some(t) = k.at("thresholds") {
        thresholds(ctx, t);
    }
    if let Some(apm) = &l.apm {
        if let Err(e) = apm.0.validate() {
            ctx.error(k.pos_of("apm"), &k.field("apm"), e.to_string());
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
