//! The stage graph: resolves `needs` (explicit, or implicitly the stage above), reports
//! unknown names, self-needs and cycles, and orders stages into parallel levels.

use super::context::{suggestion, Ctx, NeedRef};

pub(crate) struct GraphStage {
    pub name: String,
    /// `None`: no `needs` key, so the stage needs the one above it in the file.
    pub needs: Option<Vec<NeedRef>>,
}

/// One dependency: stage index, and the `needs` entry that declared it (none if implicit).
struct Edge<'a> {
    to: usize,
    declared: Option<&'a NeedRef>,
}

/// Returns, for a valid graph, `(stage index, resolved needs)` in execution order: by
/// level, then file order. Returns `None` (with diagnostics) if the graph is unusable.
pub(crate) fn resolve(
    ctx: &mut Ctx<'_>,
    stages: &[GraphStage],
) -> Option<Vec<(usize, Vec<String>)>> {
    // First stage of each name, by hash: a file can hold thousands of stages.
    let mut first: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, s) in stages.iter().enumerate() {
        first.entry(s.name.as_str()).or_insert(i);
    }
    let index_of = |name: &str| first.get(name).copied();
    let mut ok = true;
    let mut edges: Vec<Vec<Edge<'_>>> = Vec::with_capacity(stages.len());
    for (i, stage) in stages.iter().enumerate() {
        let mut out = Vec::new();
        match &stage.needs {
            None if i > 0 => out.push(Edge {
                to: i - 1,
                declared: None,
            }),
            None => {}
            Some(needs) => {
                for need in needs {
                    match index_of(&need.name) {
                        Some(j) if j == i => {
                            ctx.error(
                                need.pos,
                                &need.field,
                                format!("stage `{}` needs itself", stage.name),
                            );
                            ok = false;
                        }
                        Some(j) => out.push(Edge {
                            to: j,
                            declared: Some(need),
                        }),
                        None => {
                            let names = stages.iter().map(|s| s.name.as_str());
                            let hint = ctx
                                .spend_suggestions(stages.len())
                                .then(|| suggestion(&need.name, names))
                                .flatten()
                                .map(|n| format!("did you mean `{n}`?"));
                            ctx.error(
                                need.pos,
                                &need.field,
                                format!("no stage named `{}`", need.name),
                            )
                            .hint_opt(hint);
                            ok = false;
                        }
                    }
                }
            }
        }
        edges.push(out);
    }

    let levels = match levels(&edges) {
        Ok(levels) => levels,
        Err(stuck) => {
            report_cycles(ctx, stages, &edges, &stuck);
            return None;
        }
    };
    if !ok {
        return None;
    }
    let mut order: Vec<usize> = (0..stages.len()).collect();
    order.sort_by_key(|&i| (levels[i], i));
    Some(
        order
            .into_iter()
            .map(|i| {
                (
                    i,
                    edges[i].iter().map(|e| stages[e.to].name.clone()).collect(),
                )
            })
            .collect(),
    )
}

/// Level of each stage (1 + the highest level among its needs), or the stages that
/// could not be placed because they lie on or behind a cycle.
fn levels(edges: &[Vec<Edge<'_>>]) -> Result<Vec<usize>, Vec<bool>> {
    let n = edges.len();
    let mut level: Vec<Option<usize>> = vec![None; n];
    // Kahn's order, linear in stages and needs: repeated sweeps were quadratic for a file
    // of thousands of stages each needing the next.
    let mut waiting: Vec<usize> = edges.iter().map(Vec::len).collect();
    let mut needed_by: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, out) in edges.iter().enumerate() {
        for e in out {
            needed_by[e.to].push(i);
        }
    }
    let mut ready: Vec<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
    while let Some(i) = ready.pop() {
        level[i] = Some(edges[i].iter().filter_map(|e| level[e.to]).max().map_or(0, |m| m + 1));
        for &j in &needed_by[i] {
            waiting[j] -= 1;
            if waiting[j] == 0 {
                ready.push(j);
            }
        }
    }
    if level.iter().all(Option::is_some) {
        Ok(level.into_iter().map(|l| l.unwrap_or(0)).collect())
    } else {
        Err(level.iter().map(Option::is_none).collect())
    }
}

/// Every stuck stage needs another stuck stage, so walking `needs` among them always
/// closes a loop; each loop found is reported once, at a `needs` entry that the user
/// wrote (a cycle always has one: implicit needs only point up the file).
fn report_cycles(
    ctx: &mut Ctx<'_>,
    stages: &[GraphStage],
    edges: &[Vec<Edge<'_>>],
    stuck: &[bool],
) {
    let mut done = vec![false; stages.len()];
    for start in 0..stages.len() {
        if !stuck[start] || done[start] {
            continue;
        }
        let mut path = vec![start];
        // Where each stage is on the path, so that closing a long loop stays linear.
        let mut on_path: std::collections::HashMap<usize, usize> = [(start, 0)].into();
        let cycle = loop {
            let Some(&last) = path.last() else { break None };
            let Some(next) = edges[last].iter().map(|e| e.to).find(|&t| stuck[t]) else {
                break None;
            };
            if done[next] {
                break None; // behind a cycle already reported
            }
            if let Some(&at) = on_path.get(&next) {
                break Some(path[at..].to_vec());
            }
            on_path.insert(next, path.len());
            path.push(next);
        };
        for &p in &path {
            done[p] = true;
        }
        if let Some(cycle) = cycle {
            report_cycle(ctx, stages, edges, stuck, &cycle);
        }
    }
}

fn report_cycle(
    ctx: &mut Ctx<'_>,
    stages: &[GraphStage],
    edges: &[Vec<Edge<'_>>],
    stuck: &[bool],
    cycle: &[usize],
) {
    // The edge each member follows in the cycle (the same one the walk took).
    let edge_of = |i: usize| edges[i].iter().find(|e| stuck[e.to]);
    // Start the story at the earliest stage in the file with a written `needs` entry.
    let Some(first) = cycle
        .iter()
        .copied()
        .filter(|&i| edge_of(i).is_some_and(|e| e.declared.is_some()))
        .min()
    else {
        return;
    };
    let at = cycle.iter().position(|&i| i == first).unwrap_or(0);
    let rotated: Vec<usize> = cycle[at..].iter().chain(&cycle[..at]).copied().collect();
    let mut names: Vec<&str> = rotated.iter().map(|&i| stages[i].name.as_str()).collect();
    names.push(&stages[first].name);
    let Some(need) = edge_of(first).and_then(|e| e.declared) else {
        return;
    };
    let implicit = rotated
        .iter()
        .find(|&&i| edge_of(i).is_some_and(|e| e.declared.is_none()))
        .map(|&i| {
            format!(
                "`{}` needs `{}` because it has no `needs` and follows it in the file",
                stages[i].name,
                stages[i - 1].name
            )
        });
    ctx.error(
        need.pos,
        &need.field,
        format!("needs form a cycle: {}", names.join(" -> ")),
    )
    .hint_opt(implicit);
}
