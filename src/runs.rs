//! `pipe runs` (the run history) and `pipe diff` (what changed between two runs: params per stage,
//! metrics per row), as `dvc exp show`, `dvc params diff` and `dvc metrics diff` do.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use polars::prelude::*;

use crate::store::{NodeRecord, RunRecord, Store, Tally};
use crate::value::Value;

/// One line per run, oldest first: id, start, status, counts, duration, commit, file, overrides.
pub fn table(runs: &[RunRecord]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:<20} {:<11} {:>4} {:>6} {:>6} {:>8}  {:<9} file [overrides]",
        "run", "started (UTC)", "status", "ran", "cached", "failed", "wall", "commit"
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
            "{:<20} {:<20} {:<11} {:>4} {:>6} {:>6} {:>7.1}s  {:<9} {}{sets}",
            r.run_id, started, r.status, tally.ran, tally.cached, tally.failed, r.duration_s, commit, r.file
        );
    }
    out
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
/// nodes only in one run; then per results row (a `concat` output both runs hold), the numeric
/// columns that changed.
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
            Ok(lines) if lines.is_empty() => {
                let _ = writeln!(out, "\nmetrics ({node}): no row changed");
            }
            Ok(lines) => {
                let _ = writeln!(out, "\nmetrics ({node}; rows by node id):");
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

/// Per row present in both tables (matched on the `node` column), each float column whose value
/// changed: `evaluate[...]: auc 0.9768 -> 0.9801 (+0.0033)`. Rows in one table only are named.
fn metric_changes(a: &std::path::Path, b: &std::path::Path) -> Result<Vec<String>, String> {
    let read = |p: &std::path::Path| -> Result<DataFrame, String> {
        let file = std::fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
        ParquetReader::new(file).finish().map_err(|e| format!("{}: {e}", p.display()))
    };
    let (ta, tb) = (read(a)?, read(b)?);
    let rows = |t: &DataFrame| -> Result<BTreeMap<String, usize>, String> {
        let col = t.column("node").map_err(|_| "no `node` column".to_string())?;
        let ca = col.str().map_err(|e| e.to_string())?;
        Ok(ca.into_iter().enumerate().filter_map(|(i, v)| Some((v?.to_string(), i))).collect())
    };
    let (ra, rb) = (rows(&ta)?, rows(&tb)?);
    let floats: Vec<String> =
        tb.get_columns().iter().filter(|c| matches!(c.dtype(), DataType::Float64 | DataType::Float32)).map(|c| c.name().to_string()).collect();
    let value = |t: &DataFrame, col: &str, i: usize| -> Option<f64> { t.column(col).ok()?.cast(&DataType::Float64).ok()?.f64().ok()?.get(i) };
    let mut lines = Vec::new();
    for (node, &ib) in &rb {
        let Some(&ia) = ra.get(node) else {
            lines.push(format!("{node}: new row"));
            continue;
        };
        let mut parts = Vec::new();
        for c in &floats {
            match (value(&ta, c, ia), value(&tb, c, ib)) {
                (Some(x), Some(y)) if x != y && !(x.is_nan() && y.is_nan()) => parts.push(format!("{c} {x:.4} -> {y:.4} ({:+.4})", y - x)),
                _ => {}
            }
        }
        if !parts.is_empty() {
            lines.push(format!("{node}: {}", parts.join(", ")));
        }
    }
    for node in ra.keys().filter(|n| !rb.contains_key(*n)) {
        lines.push(format!("{node}: row gone"));
    }
    Ok(lines)
}
