//! `pipe status`: every node's state (fresh / stale / missing) and why, per stage or per node.

use std::fmt::Write as _;

use crate::args::PipelineArgs;
use crate::commands::common::{load, open_store, ref_namespace, select, workspace};
use crate::commands::{CliError, Ctx, ExitStatus};
use crate::plan::{self, Freshness};

/// `pipe status`'s switches.
pub(crate) struct StatusArgs {
    /// A JSON array instead of text.
    pub json: bool,
    /// Exit 6 when some node is not fresh.
    pub check: bool,
    /// One line per node.
    pub verbose: bool,
}

/// `pipe status`.
pub(crate) fn status(g: &Ctx<'_>, p: PipelineArgs, targets: Vec<String>, a: StatusArgs) -> Result<ExitStatus, CliError> {
    let StatusArgs { json, check, verbose } = a;
    let per_node = verbose || !targets.is_empty();
    let (pipeline, graph) = load(&p, g.registry)?;
    let (graph, shown) = if targets.is_empty() {
        (graph, None)
    } else {
        let (g, hit) = select(&pipeline.nodes, &targets, false)?;
        (g, Some(hit.into_iter().collect::<std::collections::HashSet<String>>()))
    };
    let store = open_store(g.store, g.cache)?;
    let mut st = plan::status(&graph, &store, &ref_namespace(p.path()), &workspace());
    if let Some(shown) = &shown {
        st.retain(|s| shown.contains(&s.node));
    }
    // Nodes some run computes now (this one's key): which run (and Slurm job) claimed it, since
    // when, and its epoch, loss and time to go.
    let live = crate::live::running(store.root());
    let claims = store.claims();
    for s in st.iter_mut() {
        s.running = live.iter().find(|r| Some(&r.key) == s.key.as_ref() || (s.key.is_none() && r.node == s.node)).cloned();
        s.claim = claims.iter().find(|(k, c)| Some(k) == s.key.as_ref() || (s.key.is_none() && c.node == s.node)).map(|(_, c)| c.clone());
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&st).expect("status serialises"));
    } else if !per_node {
        print!("{}", stage_summary(&st));
        for (s, line) in st.iter().filter_map(|s| Some((s, running_line(s)?))) {
            println!("running {}: {line}", s.node);
        }
    } else {
        let width = st.iter().map(|s| s.node.len()).max().unwrap_or(0);
        for s in &st {
            if s.reasons.is_empty() {
                println!("{:<7} {}", s.state, s.node);
            } else {
                println!("{:<7} {:<width$}  {}", s.state, s.node, s.reasons.join("; "));
            }
            if let Some(line) = running_line(s) {
                println!("{:<7} {:<width$}  running: {line}", "", "");
            }
        }
        let fresh = st.iter().filter(|s| s.state == Freshness::Fresh).count();
        println!("{fresh} of {} nodes fresh", st.len());
    }
    Ok(if check && st.iter().any(|s| s.state != Freshness::Fresh) { ExitStatus::Stale } else { ExitStatus::Success })
}

/// What computes a node now: its progress (epoch, loss, time to go; pid and host) and the run
/// (and Slurm job) holding its claim, since when. `None`: nothing does.
fn running_line(s: &plan::NodeStatus) -> Option<String> {
    // A node is claimed a moment before its progress is first written: then how long it has run
    // comes from the claim, so the line always says it.
    let progress =
        s.running.as_ref().map(|r| r.describe()).or_else(|| {
            s.claim.as_ref().map(|c| format!("{} so far (pid {} on {})", crate::live::human(crate::store::now() - c.since), c.pid, c.host))
        });
    let claim = s.claim.as_ref().map(|c| {
        let job = c.job.as_ref().map(|j| format!(", Slurm job {j}")).unwrap_or_default();
        format!("run {}{job}, since {}", c.run, crate::commands::common::rfc3339(c.since))
    });
    match (progress, claim) {
        (None, None) => None,
        (Some(p), None) => Some(p),
        (None, Some(c)) => Some(c),
        (Some(p), Some(c)) => Some(format!("{p}; {c}")),
    }
}

/// `status` without -v: one line per stage, in pipeline order: how many nodes are fresh, how many
/// changed themselves (a param, an input file, the stage version), how many only wait on a changed
/// upstream node, and how many never ran; then the total.
fn stage_summary(st: &[plan::NodeStatus]) -> String {
    let mut order: Vec<&str> = Vec::new();
    let mut counts: std::collections::HashMap<&str, [usize; 5]> = std::collections::HashMap::new();
    // Per stage, why its nodes changed (not why they wait): reason -> nodes.
    let mut why: std::collections::HashMap<&str, Vec<(&str, usize)>> = std::collections::HashMap::new();
    for s in st {
        if !counts.contains_key(s.stage.as_str()) {
            order.push(&s.stage);
        }
        let c = counts.entry(&s.stage).or_default();
        c[0] += 1;
        match s.state {
            Freshness::Fresh => c[1] += 1,
            _ if s.waiting => c[3] += 1,
            Freshness::Missing => c[4] += 1,
            Freshness::Stale => c[2] += 1,
        }
        if s.state == Freshness::Stale && !s.waiting {
            let reasons = why.entry(&s.stage).or_default();
            for r in &s.reasons {
                match reasons.iter_mut().find(|(x, _)| x == r) {
                    Some((_, n)) => *n += 1,
                    None => reasons.push((r, 1)),
                }
            }
        }
    }
    let width = order.iter().map(|s| s.len()).max().unwrap_or(5).max(5);
    let mut out = String::new();
    for stage in &order {
        let [n, fresh, changed, waiting, never] = counts[stage];
        let mut parts = vec![format!("{fresh}/{n} fresh")];
        for (k, what) in [(changed, "changed"), (waiting, "waiting on upstream"), (never, "never run")] {
            if k > 0 {
                parts.push(format!("{k} {what}"));
            }
        }
        let _ = writeln!(out, "{stage:<width$}  {}", parts.join(", "));
        let reasons = why.get(stage).map(Vec::as_slice).unwrap_or_default();
        for (r, n) in reasons.iter().take(3) {
            let _ = writeln!(out, "{:width$}    {r}{}", "", if *n > 1 { format!(" ({n} nodes)") } else { String::new() });
        }
        if reasons.len() > 3 {
            let _ = writeln!(out, "{:width$}    ... {} more reasons", "", reasons.len() - 3);
        }
    }
    let fresh = st.iter().filter(|s| s.state == Freshness::Fresh).count();
    let _ = writeln!(out, "{fresh} of {} nodes fresh (`pipe status FILE -v` lists each node and why)", st.len());
    out
}
