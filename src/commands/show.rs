//! `pipe show FILE NODE`: a node's params, inputs, outputs, last record and last failed attempt.

use crate::args::PipelineArgs;
use crate::commands::common::{load, one_node, open_store, ref_namespace, rfc3339, workspace};
use crate::commands::{CliError, Ctx, ExitStatus};
use crate::plan;

/// `pipe show`.
pub(crate) fn show(g: &Ctx<'_>, p: PipelineArgs, targets: Vec<String>, json: bool) -> Result<ExitStatus, CliError> {
    let (pipeline, graph) = load(&p, g.registry)?;
    if targets.is_empty() {
        return Err(CliError::NameANode { file: p.path().to_path_buf() });
    }
    let node = one_node(&pipeline.nodes, &graph, &targets)?;
    let i = graph.find(&node).expect("one_node names a node of the graph");
    let store = open_store(g.store, g.cache)?;
    let n = graph.node(i);
    // The node's key now; a failed attempt at it is shown with its error and log, even when the
    // node never succeeded. (A key whose inputs are not computed yet has none.)
    let now_key = plan::status(&graph, &store, &ref_namespace(p.path()), &workspace()).into_iter().find(|s| s.node == n.id).and_then(|s| s.key);
    // The result of these params if there is one, else the node's last run (of other params or
    // inputs, which is said).
    let last = now_key
        .as_deref()
        .and_then(|k| store.record(k).ok().flatten())
        .or_else(|| store.get_ref(&ref_namespace(p.path()), &n.id).and_then(|k| store.record(&k).ok().flatten()));
    let current = last.as_ref().is_some_and(|r| Some(&r.key) == now_key.as_ref());
    let attempt =
        now_key.as_deref().and_then(|k| store.attempt(k)).filter(|a| last.as_ref().is_none_or(|r| r.key != a.key || a.finished_at > r.finished_at));
    if json {
        let v = serde_json::json!({
            "node": n.id,
            "stage": n.stage,
            "kind": n.kind.name(),
            "version": n.kind.version(),
            "coords": n.coords.iter().map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or_default())).collect::<serde_json::Map<_, _>>(),
            "params": n.params.0,
            "outputs": n.outputs.iter().map(|o| serde_json::json!({"name": o.name, "file": o.file})).collect::<Vec<_>>(),
            "last_run": last.as_ref().map(|rec| serde_json::json!({
                "key": rec.key,
                "current": current,
                "duration_s": rec.duration_s,
                "cpu_s": rec.cpu_s,
                "threads": rec.threads,
                "outputs": rec.outputs.iter().map(|(name, obj)| (name.clone(), serde_json::json!({"path": store.object_path(obj), "bytes": obj.size}))).collect::<serde_json::Map<_, _>>(),
                "log": rec.log,
            })),
            "last_failed_attempt": attempt.as_ref().map(|a| serde_json::json!({
                "key": a.key,
                "finished_at": a.finished_at,
                "duration_s": a.duration_s,
                "error": a.error,
                "stderr_tail": a.stderr_tail,
                "log": a.log,
                "cancelled": a.cancelled,
            })),
        });
        println!("{}", serde_json::to_string_pretty(&v).expect("serialises"));
        return Ok(ExitStatus::Success);
    }
    println!("node    {}\nstage   {} (kind {} v{})", n.id, n.stage, n.kind.name(), n.kind.version());
    for (k, v) in &n.params.0 {
        println!("param   {k} = {v}");
    }
    for o in &n.outputs {
        println!("output  {} ({})", o.name, o.file);
    }
    match last {
        Some(rec) => {
            let spent = format!(
                "{:.2}s{}{}",
                rec.duration_s,
                rec.cpu_s.map(|c| format!(", {c:.2} CPU s")).unwrap_or_default(),
                rec.threads.map(|t| format!(", {t} thread{}", if t == 1 { "" } else { "s" })).unwrap_or_default()
            );
            if current {
                println!("last run: key {} ({spent})", rec.key);
            } else {
                println!(
                    "last run: key {} ({spent}), of other params or inputs than the ones above (`pipe status {}` says what changed)",
                    rec.key,
                    p.path().display()
                );
            }
            for (name, obj) in &rec.outputs {
                println!("  {name}: {} ({} bytes)", store.object_path(obj).display(), obj.size);
            }
            if !rec.log.is_empty() {
                println!("log:\n{}", crate::log::printable(&rec.log));
            }
        }
        None if attempt.is_some() => println!("never completed"),
        None => println!("never run"),
    }
    if let Some(a) = attempt {
        let what = if a.cancelled { "was interrupted" } else { "failed" };
        println!(
            "last attempt {what}: key {} at {} ({:.2}s)\nerror: {}",
            a.key,
            rfc3339(a.finished_at),
            a.duration_s,
            crate::log::printable(&a.error)
        );
        if !a.log.is_empty() {
            println!("log:\n{}", crate::log::printable(a.log.trim_end_matches('\n')));
        }
    }
    Ok(ExitStatus::Success)
}
