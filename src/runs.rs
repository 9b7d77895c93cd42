//! `pipe runs` (the run history) and `pipe diff` (what changed between two runs: params per stage,
//! metrics per row), as `dvc exp show`, `dvc params diff` and `dvc metrics diff` do.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

use polars::prelude::*;

use crate::store::{failures_by_kind, NodeRecord, RunNode, RunRecord, Store, Tally};
use crate::value::Value;

/// One line per run, oldest first: id, start, status, counts, duration, commit, file, overrides,
/// and the failed nodes per kind of failure.
pub fn table(runs: &[RunRecord]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:<20} {:<11} {:>4} {:>6} {:>6} {:>8} {:>9}  {:<9} file [overrides] (failed per kind)",
        "run", "started (UTC)", "status", "ran", "cached", "failed", "wall", "cpu", "commit"
    );
    for r in runs {
        let tally = Tally::of(&r.nodes);
        let commit = match (&r.git_commit, r.git_dirty) {
            (Some(c), Some(true)) => format!("{}+", &c[..7.min(c.len())]),
            (Some(c), _) => c[..7.min(c.len())].to_string(),
            _ => "-".into(),
        };
        let started = if r.started.is_empty() { format!("{:.0}", r.started_at) } else { r.started.trim_end_matches('Z').replace('T', " ") };
        let sets = if r.overrides.is_empty() { String::new() } else { format!(" [{}]", r.overrides.join(" ")) };
        let _ = writeln!(
            out,
            "{:<20} {:<20} {:<11} {:>4} {:>6} {:>6} {:>7.1}s {:>9}  {:<9} {}{sets}{}",
            r.run_id,
            started,
            r.status,
            tally.ran,
            tally.cached,
            tally.failed,
            r.duration_s,
            cpu(&r.nodes),
            commit,
            r.file,
            failed_per_kind(&r.nodes)
        );
    }
    out
}

/// The CPU seconds of a run's nodes where measured (`12.3s`; `-` where none was): what the run
/// cost, where `wall` is how long it took.
fn cpu(nodes: &[RunNode]) -> String {
    let measured: Vec<f64> = nodes.iter().filter_map(|n| n.cpu_s).collect();
    if measured.is_empty() {
        "-".into()
    } else {
        format!("{:.1}s", measured.iter().sum::<f64>())
    }
}

/// ` (stage 2, input 1)`: a run's failed nodes per kind of failure; empty when none failed.
fn failed_per_kind(nodes: &[RunNode]) -> String {
    let by = failures_by_kind(nodes);
    if by.is_empty() {
        return String::new();
    }
    format!(" ({})", by.iter().map(|(kind, n)| format!("{kind} {n}")).collect::<Vec<_>>().join(", "))
}

/// A run by id, id prefix, or position from the end (`-1` the last, `-2` the one before).
pub fn find<'a>(runs: &'a [RunRecord], which: &str) -> Result<&'a RunRecord, String> {
    if let Some(back) = which.strip_prefix('-').and_then(|n| n.parse::<usize>().ok()) {
        return runs
            .len()
            .checked_sub(back)
            .and_then(|i| runs.get(i))
            .ok_or_else(|| format!("`{which}`: there are only {} runs in this store; `pipe runs` lists them", runs.len()));
    }
    let found: Vec<&RunRecord> = runs.iter().filter(|r| r.run_id.starts_with(which)).collect();
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(format!("no run `{which}`; `pipe runs` lists them")),
        many => Err(format!("`{which}` names {} runs; give more of the id", many.len())),
    }
}

/// What changed from run `a` to run `b`: per stage, the params that differ (with how many nodes),
/// nodes only in one run; then per results row (a `concat` output both runs hold, rows matched on
/// every non-float column), the float columns that changed and the rows added or removed.
pub fn diff(store: &Store, a: &RunRecord, b: &RunRecord) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "diff {} ({}) -> {} ({})", a.run_id, a.started, b.run_id, b.started);
    let keys = |r: &RunRecord| -> BTreeMap<String, (String, String)> {
        r.nodes.iter().filter_map(|n| Some((n.node.clone(), (n.stage.clone(), n.key.clone()?)))).collect()
    };
    let (ka, kb) = (keys(a), keys(b));
    let record = |k: &str| -> Option<NodeRecord> { store.record(k).ok().flatten() };
    // stage -> change line -> nodes
    let mut changes: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut tables: Vec<(String, NodeRecord, NodeRecord)> = Vec::new();
    for (node, (stage, key_b)) in &kb {
        let Some((_, key_a)) = ka.get(node) else { continue };
        if key_a == key_b {
            continue;
        }
        let (Some(ra), Some(rb)) = (record(key_a), record(key_b)) else {
            *changes.entry(stage.clone()).or_default().entry("changed (a record is no longer in the store)".into()).or_default() += 1;
            continue;
        };
        let names: BTreeSet<&String> = ra.fingerprint.params.keys().chain(rb.fingerprint.params.keys()).collect();
        let mut any = false;
        for p in names {
            let (va, vb) = (ra.fingerprint.params.get(p), rb.fingerprint.params.get(p));
            if va != vb {
                let show = |v: Option<&Value>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
                *changes.entry(stage.clone()).or_default().entry(format!("{p}: {} -> {}", show(va), show(vb))).or_default() += 1;
                any = true;
            }
        }
        if !any {
            let why = if ra.fingerprint.stage_version != rb.fingerprint.stage_version {
                format!("stage version {} -> {}", ra.fingerprint.stage_version, rb.fingerprint.stage_version)
            } else if ra.fingerprint.environment != rb.fingerprint.environment {
                "environment changed".to_string()
            } else {
                "inputs changed (upstream)".to_string()
            };
            *changes.entry(stage.clone()).or_default().entry(why).or_default() += 1;
        }
        if rb.fingerprint.kind == "concat" {
            tables.push((node.clone(), ra, rb));
        }
    }
    let only = |x: &BTreeMap<String, (String, String)>, y: &BTreeMap<String, (String, String)>| -> Vec<String> {
        x.keys().filter(|n| !y.contains_key(*n)).cloned().collect()
    };
    let (gone, new) = (only(&ka, &kb), only(&kb, &ka));
    if changes.is_empty() && gone.is_empty() && new.is_empty() {
        let _ = writeln!(out, "\nparams: no node changed");
    } else {
        let _ = writeln!(out, "\nparams (per stage; nodes affected):");
        for (stage, lines) in &changes {
            for (line, n) in lines {
                let _ = writeln!(out, "  {stage:<12} {line}  ({n} node{})", if *n == 1 { "" } else { "s" });
            }
        }
        for (what, list) in [("only in the first run", &gone), ("only in the second run", &new)] {
            if !list.is_empty() {
                let _ = writeln!(out, "  {what}: {}", list.join(", "));
            }
        }
    }
    for (node, ra, rb) in tables {
        let (Some(oa), Some(ob)) = (ra.outputs.get("table"), rb.outputs.get("table")) else { continue };
        match metric_changes(&store.object_path(oa), &store.object_path(ob)) {
            Ok((_, lines)) if lines.is_empty() => {
                let _ = writeln!(out, "\nmetrics ({node}): no row changed");
            }
            Ok((keys, lines)) => {
                let by = if keys.is_empty() { "rows in order".to_string() } else { format!("rows by {}", keys.join(", ")) };
                let _ = writeln!(out, "\nmetrics ({node}; {by}):");
                for l in lines {
                    let _ = writeln!(out, "  {l}");
                }
            }
            Err(e) => {
                let _ = writeln!(out, "\nmetrics ({node}): cannot compare: {e}");
            }
        }
    }
    out
}

/// Per row of two versions of one results table, what changed: `evaluate[...] class=cat: auc
/// 0.9768 -> 0.9801 (+0.0033)`, or that the row was added or removed. Float columns are the
/// metrics; every other column (`node`, a text or integer axis, a class, an epoch) identifies the row, so a
/// node that contributes several rows has each matched by its full key, never by its position.
/// Returns the key columns and the lines.
fn metric_changes(a: &Path, b: &Path) -> Result<(Vec<String>, Vec<String>), String> {
    let read = |p: &Path| crate::query::load(p).map_err(|e| e.to_string());
    let (ta, tb) = (read(a)?, read(b)?);
    // Every column of either table: the newer table's order, then the older one's leftovers.
    let mut names: Vec<String> = Vec::new();
    for t in [&tb, &ta] {
        for c in t.get_columns() {
            if !names.iter().any(|n| n == c.name().as_str()) {
                names.push(c.name().to_string());
            }
        }
    }
    let float = |t: &DataFrame, n: &str| t.column(n).is_ok_and(|c| c.dtype().is_float());
    let (metrics, mut keys): (Vec<String>, Vec<String>) = names.into_iter().partition(|n| float(&ta, n) || float(&tb, n));
    let has_node = match keys.iter().position(|k| k == "node") {
        Some(i) => {
            let node = keys.remove(i);
            keys.insert(0, node);
            true
        }
        None => false,
    };
    let (ra, rb) = (row_keys(&ta, &keys), row_keys(&tb, &keys));
    let index = |rows: &[RowKey]| -> HashMap<RowKey, usize> { rows.iter().enumerate().map(|(i, k)| (k.clone(), i)).collect() };
    let (ia, ib) = (index(&ra), index(&rb));
    // A row is named by its node and the key columns that vary among that node's rows (a node's
    // grid axes do not: its id holds them), plus which repeat it is when its key repeats.
    let first = usize::from(has_node);
    fn group(k: &[String], has_node: bool) -> &str {
        if has_node {
            &k[0]
        } else {
            ""
        }
    }
    let mut seen: HashMap<(&str, usize), BTreeSet<&str>> = HashMap::new();
    for (k, _) in ra.iter().chain(&rb) {
        for (j, v) in k.iter().enumerate().skip(first) {
            seen.entry((group(k, has_node), j)).or_default().insert(v);
        }
    }
    let repeated: HashSet<&Vec<String>> = ra.iter().chain(&rb).filter(|(_, n)| *n > 0).map(|(k, _)| k).collect();
    let label = |(k, n): &RowKey| -> String {
        let mut parts: Vec<String> = if has_node { vec![k[0].clone()] } else { Vec::new() };
        for (j, v) in k.iter().enumerate().skip(first) {
            if seen.get(&(group(k, has_node), j)).is_some_and(|s| s.len() > 1) {
                parts.push(format!("{}={v}", keys[j]));
            }
        }
        if repeated.contains(k) {
            parts.push(format!("#{}", n + 1));
        }
        if !has_node {
            parts.insert(0, "row".into());
        }
        parts.join(" ")
    };
    let mut lines = Vec::new();
    let (fa, fb): (Vec<_>, Vec<_>) = metrics.iter().map(|m| (floats(&ta, m), floats(&tb, m))).unzip();
    for (m, (x, y)) in metrics.iter().zip(fa.iter().zip(&fb)) {
        match (x, y) {
            (Some(_), None) => lines.push(format!("column {m}: only in the first run")),
            (None, Some(_)) => lines.push(format!("column {m}: only in the second run")),
            _ => {}
        }
    }
    let show = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_else(|| "null".into());
    for (i, k) in rb.iter().enumerate() {
        let Some(&j) = ia.get(k) else {
            lines.push(format!("{}: row added", label(k)));
            continue;
        };
        let mut parts = Vec::new();
        for (m, (x, y)) in metrics.iter().zip(fa.iter().zip(&fb)) {
            let (Some(x), Some(y)) = (x, y) else { continue };
            match (x[j], y[i]) {
                (Some(x), Some(y)) if x == y || (x.is_nan() && y.is_nan()) => {}
                (Some(x), Some(y)) => parts.push(format!("{m} {x:.4} -> {y:.4} ({:+.4})", y - x)),
                (None, None) => {}
                (x, y) => parts.push(format!("{m} {} -> {}", show(x), show(y))),
            }
        }
        if !parts.is_empty() {
            lines.push(format!("{}: {}", label(k), parts.join(", ")));
        }
    }
    for k in ra.iter().filter(|k| !ib.contains_key(*k)) {
        lines.push(format!("{}: row removed", label(k)));
    }
    Ok((keys, lines))
}

/// A row's key: its key columns' values as text (`null` for a null, or a column the table lacks),
/// and which row holding that key it is (0 for the first; matched in order).
type RowKey = (Vec<String>, usize);

fn row_keys(t: &DataFrame, keys: &[String]) -> Vec<RowKey> {
    let cols: Vec<Vec<String>> = keys.iter().map(|k| t.column(k).map(texts).unwrap_or_else(|_| vec!["null".into(); t.height()])).collect();
    let mut count: HashMap<Vec<String>, usize> = HashMap::new();
    (0..t.height())
        .map(|i| {
            let k: Vec<String> = cols.iter().map(|c| c[i].clone()).collect();
            let n = count.entry(k.clone()).or_default();
            *n += 1;
            (k, *n - 1)
        })
        .collect()
}

/// A column's values as text: strings as they are, anything else as polars prints it.
fn texts(c: &Column) -> Vec<String> {
    match c.cast(&DataType::String).as_ref().map(|s| s.str()) {
        Ok(Ok(s)) => s.into_iter().map(|v| v.unwrap_or("null").to_string()).collect(),
        _ => (0..c.len()).map(|i| c.get(i).map(|v| v.to_string()).unwrap_or_else(|_| "null".into())).collect(),
    }
}

/// A column's values as floats, or None when the table has no such numeric column.
fn floats(t: &DataFrame, name: &str) -> Option<Vec<Option<f64>>> {
    let c = t.column(name).ok()?.cast(&DataType::Float64).ok()?;
    Some(c.f64().ok()?.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{FailureKind, FailureRecord, RunState};

    #[test]
    fn failures_are_counted_per_kind() {
        let node = |state, kind: Option<FailureKind>| RunNode {
            node: "n".into(),
            stage: "s".into(),
            state,
            duration_s: 0.0,
            cpu_s: None,
            key: None,
            error: Some("e".into()),
            resumed_from: None,
            failure: kind.map(|kind| FailureRecord { kind, message: "e".into(), hint: None }),
        };
        let nodes = [
            node(RunState::Failed, Some(FailureKind::Stage)),
            node(RunState::Failed, Some(FailureKind::Input)),
            node(RunState::Failed, Some(FailureKind::Stage)),
            // A record of an earlier version: failed, no kind.
            node(RunState::Failed, None),
            node(RunState::Skipped, None),
        ];
        assert_eq!(failed_per_kind(&nodes), " (input 1, stage 2, other 1)");
        assert_eq!(failed_per_kind(&nodes[4..]), "");
    }
}
