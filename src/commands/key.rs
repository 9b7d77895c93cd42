//! `pipe key FILE NODE [NODE2] [--run N]`: a node's fingerprint (the exact manifest its cache key
//! hashes), or which of its fields differ between two nodes, or between the node now and in an
//! earlier run: "why did this rerun?" answered field by field (moon's `hash diff`).

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value as Json;

use crate::args::PipelineArgs;
use crate::commands::common::{load, one_node, open_store, ref_namespace, workspace};
use crate::commands::{CliError, Ctx, ExitStatus};
use crate::error::{render, Hint};
use crate::hash::Fingerprint;
use crate::plan;
use crate::store::{RunRecord, Store};

/// `pipe key`'s arguments.
#[derive(clap::Args, Debug)]
pub struct KeyArgs {
    #[command(flatten)]
    pub p: PipelineArgs,
    /// The node (its id or a pattern matching it alone), and optionally a second node to compare
    /// it with, e.g. `'train[mu2=0.5]' 'train[mu2=1.0]'`.
    #[arg(value_name = "NODE")]
    pub nodes: Vec<String>,
    /// Compare the node now with its fingerprint in a run of this pipeline file: `-1` the last run
    /// that holds the node, `-2` the one before, ...; or a run id (or its prefix, `pipe runs`).
    #[arg(long, value_name = "RUN", allow_hyphen_values = true)]
    pub run: Option<String>,
    /// Print JSON: {node, key, fingerprint}, or with two sides {left, right, identical,
    /// differences: [{field, left, right}]} (a side lacking a field has no `left` / `right`).
    #[arg(long)]
    pub json: bool,
}

/// Why `pipe key` cannot answer.
#[derive(Debug)]
pub enum KeyError {
    /// No node named.
    NameANode { file: String },
    /// Three nodes, or two with `--run`.
    TooMany { given: usize, run: bool },
    /// The node's key depends on upstream results not computed for the current params.
    NoKeyYet { node: String, reasons: Vec<String>, file: String },
    /// No run of the file holds the node (at that position).
    NoSuchRun { node: String, which: String, found: usize, file: String },
    /// The run's key of the node has neither a record nor a failed attempt in the store.
    NoRecord { node: String, run: String, key: String },
    /// The store cannot read the record of the run's key of the node.
    RecordUnreadable { error: Box<crate::store::StoreError>, node: String, run: String, key: String },
}

impl KeyError {
    /// The exit status: no node or too many (2), an unknown node or run (7), a node whose inputs
    /// are not computed yet (6), an unreadable store (5).
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            KeyError::NameANode { .. } | KeyError::TooMany { .. } => ExitStatus::Usage,
            KeyError::NoKeyYet { .. } => ExitStatus::Stale,
            KeyError::NoSuchRun { .. } | KeyError::NoRecord { .. } => ExitStatus::NotFound,
            KeyError::RecordUnreadable { .. } => ExitStatus::Store,
        }
    }
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::NameANode { file } => write!(f, "name the node whose key to show, e.g. `pipe key {file} 'train[mu2=0.5]'`"),
            KeyError::TooMany { given, run: false } => write!(f, "{given} nodes given; `pipe key` shows one node or compares two"),
            KeyError::TooMany { given, run: true } => write!(f, "{given} nodes given with --run; --run compares ONE node with itself in a run"),
            KeyError::NoKeyYet { node, reasons, .. } => write!(f, "{node} has no key yet: {}", reasons.join("; ")),
            KeyError::NoSuchRun { node, which, found, file } => {
                write!(f, "--run {which}: {found} run(s) of {file} hold {node}")
            }
            KeyError::NoRecord { node, run, key } => {
                write!(f, "run {run} computed key {key} for {node}, but the store keeps no record of that key")
            }
            // The store's own error, then what it means here (two messages, as ever).
            KeyError::RecordUnreadable { error, node, run, key } => {
                write!(f, "{}\nerror: run {run} computed key {key} for {node}, but the store keeps no record of that key", render(error.as_ref()))
            }
        }
    }
}

impl Hint for KeyError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            KeyError::NameANode { file } => format!("`pipe dag {file}` lists the nodes"),
            KeyError::TooMany { .. } => "`pipe key FILE NODE`, `pipe key FILE NODE NODE2` or `pipe key FILE NODE --run -2`".into(),
            KeyError::NoKeyYet { node, file, .. } => {
                format!("its key holds its inputs' content, known once they are computed: `pipe run {file} '{node}'`")
            }
            KeyError::NoSuchRun { .. } => "`pipe runs` lists the runs; a run id (or its prefix) names one".into(),
            KeyError::NoRecord { .. } | KeyError::RecordUnreadable { .. } => {
                "it was removed (`pipe gc --records`), or the run failed before keeping it".into()
            }
        })
    }
}

/// One side of a comparison: what it is, its key, and its fingerprint.
struct Side {
    node: String,
    /// The run it comes from; `None`: now.
    run: Option<String>,
    key: String,
    fingerprint: Fingerprint,
}

impl Side {
    fn label(&self) -> String {
        match &self.run {
            Some(r) => format!("{} in run {r}", self.node),
            None => self.node.clone(),
        }
    }
    fn json(&self) -> Json {
        let mut v = serde_json::json!({"node": self.node, "key": self.key});
        if let Some(r) = &self.run {
            v["run"] = Json::String(r.clone());
        }
        v
    }
}

/// One field that differs: its path in the fingerprint (`params.mu2`, `inputs.data[0]`) and its
/// value on each side (`None`: the side has no such field).
#[derive(Debug, PartialEq)]
pub struct Difference {
    /// Dotted path in the fingerprint's JSON encoding; list items as `[i]`.
    pub field: String,
    /// The left side's value.
    pub left: Option<Json>,
    /// The right side's value.
    pub right: Option<Json>,
}

/// `pipe key`. Errors: [`KeyError`] (with its exit status), an unknown node (7), an unreadable
/// store (5).
pub(crate) fn run(g: &Ctx<'_>, a: KeyArgs) -> Result<ExitStatus, CliError> {
    let file = a.p.path().display().to_string();
    match (a.nodes.len(), a.run.is_some()) {
        (0, _) => return Err(CliError::key(KeyError::NameANode { file })),
        (1, _) | (2, false) => {}
        (given, run) => return Err(CliError::key(KeyError::TooMany { given, run })),
    }
    let (pipeline, graph) = load(&a.p, g.registry)?;
    let ids = a.nodes.iter().map(|t| one_node(&pipeline.nodes, &graph, std::slice::from_ref(t))).collect::<Result<Vec<_>, _>>()?;
    let store = open_store(g.store, g.cache)?;
    let ns = ref_namespace(a.p.path());
    // Only the nodes and what is upstream of them decide their keys.
    let wanted: Vec<usize> = ids.iter().filter_map(|id| pipeline.nodes.iter().position(|n| &n.id == id)).collect();
    let sub = crate::graph::GraphBuilder::from_nodes(crate::targets::select(&pipeline.nodes, &wanted, false)).seal().map_err(CliError::Cycle)?;
    let status = plan::status(&sub, &store, &ns, &workspace());
    let now = |id: &String| -> Result<Side, CliError> {
        let s = status.iter().find(|s| &s.node == id).expect("every selected node has a status");
        match (&s.key, &s.fingerprint) {
            (Some(key), Some(fp)) => Ok(Side { node: id.clone(), run: None, key: key.clone(), fingerprint: fp.clone() }),
            _ => Err(CliError::key(KeyError::NoKeyYet { node: id.clone(), reasons: s.reasons.clone(), file: file.clone() })),
        }
    };
    let right = now(&ids[0])?;
    let (left, right) = match (&a.run, ids.get(1)) {
        (Some(which), _) => (in_run(&store, &ns, &ids[0], which, &file).map_err(CliError::key)?, right),
        (None, Some(other)) => (right, now(other)?),
        (None, None) => {
            print!("{}", if a.json { show_json(&right) } else { show_text(&right) });
            return Ok(ExitStatus::Success);
        }
    };
    let diffs = differences(&left.fingerprint, &right.fingerprint);
    print!("{}", if a.json { diff_json(&left, &right, &diffs) } else { diff_text(&left, &right, &diffs) });
    Ok(ExitStatus::Success)
}

/// The node's side in the run `which` names among the runs of this pipeline file (namespace `ns`)
/// that hold it: `-N` counts back from the last such run, anything else is a run id or prefix.
/// Its fingerprint is its key's record (or, for a failed node, its failed attempt's).
fn in_run(store: &Store, ns: &str, node: &str, which: &str, file: &str) -> Result<Side, KeyError> {
    let holding = |r: &RunRecord| r.nodes.iter().any(|n| n.node == node && n.key.is_some());
    let runs: Vec<RunRecord> = store.runs().into_iter().filter(|r| ref_namespace(Path::new(&r.file)) == ns && holding(r)).collect();
    let no_run = || KeyError::NoSuchRun { node: node.to_string(), which: which.to_string(), found: runs.len(), file: file.to_string() };
    let run = match which.strip_prefix('-').and_then(|n| n.parse::<usize>().ok()) {
        Some(back) => back.checked_sub(1).and_then(|b| runs.len().checked_sub(b + 1)).and_then(|i| runs.get(i)).ok_or_else(no_run)?,
        None => crate::runs::find(&runs, which).map_err(|_| no_run())?,
    };
    let key = run.nodes.iter().find(|n| n.node == node).and_then(|n| n.key.clone()).expect("the run holds the node with a key");
    let fingerprint = match store.record(&key) {
        Ok(Some(rec)) => Some(rec.fingerprint),
        Ok(None) => store.attempt(&key).and_then(|a| a.fingerprint),
        Err(error) => return Err(KeyError::RecordUnreadable { error: Box::new(error), node: node.to_string(), run: run.run_id.clone(), key }),
    };
    match fingerprint {
        Some(fingerprint) => Ok(Side { node: node.to_string(), run: Some(run.run_id.clone()), key, fingerprint }),
        None => Err(KeyError::NoRecord { node: node.to_string(), run: run.run_id.clone(), key }),
    }
}

/// The fingerprint as JSON, exactly as it is hashed.
fn encode(fp: &Fingerprint) -> Json {
    serde_json::to_value(fp).expect("a fingerprint always serialises")
}

/// Every field of the fingerprint, one `path  value` line each (values in JSON, so `1`, `1.0` and
/// `"1"` stay apart), after the node and its key.
fn show_text(s: &Side) -> String {
    let mut rows = vec![("node".to_string(), s.node.clone()), ("key".to_string(), s.key.clone())];
    flatten("", &encode(&s.fingerprint), &mut rows);
    let width = rows.iter().map(|(f, _)| f.len()).max().unwrap_or(0);
    rows.iter().fold(String::new(), |mut out, (f, v)| {
        let _ = writeln!(out, "{f:<width$}  {v}");
        out
    })
}

fn flatten(path: &str, v: &Json, rows: &mut Vec<(String, String)>) {
    match v {
        Json::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                flatten(&join(path, k), x, rows);
            }
        }
        _ => rows.push((path.to_string(), v.to_string())),
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

fn show_json(s: &Side) -> String {
    let v = serde_json::json!({"node": s.node, "key": s.key, "fingerprint": encode(&s.fingerprint)});
    format!("{}\n", serde_json::to_string_pretty(&v).expect("serialises"))
}

/// The fields whose values differ, in the fingerprint's order: maps are compared key by key (a key
/// on one side only is a difference), lists of equal length item by item, anything else whole.
pub fn differences(left: &Fingerprint, right: &Fingerprint) -> Vec<Difference> {
    let mut out = Vec::new();
    walk("", Some(&encode(left)), Some(&encode(right)), &mut out);
    out
}

fn walk(path: &str, l: Option<&Json>, r: Option<&Json>, out: &mut Vec<Difference>) {
    if l == r {
        return;
    }
    let empty = serde_json::Map::new();
    // A map on one side only counts as an empty map there: each of its fields is listed.
    fn map<'a>(v: Option<&'a Json>, empty: &'a serde_json::Map<String, Json>) -> Option<&'a serde_json::Map<String, Json>> {
        match v {
            Some(Json::Object(m)) => Some(m),
            None => Some(empty),
            Some(_) => None,
        }
    }
    match (map(l, &empty), map(r, &empty), l, r) {
        (Some(a), Some(b), _, _) => {
            // In the encoding's own order: the left side's fields, then those only on the right.
            for k in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
                walk(&join(path, k), a.get(k), b.get(k), out);
            }
        }
        (_, _, Some(Json::Array(a)), Some(Json::Array(b))) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                walk(&format!("{path}[{i}]"), Some(x), Some(y), out);
            }
        }
        _ => out.push(Difference { field: path.to_string(), left: l.cloned(), right: r.cloned() }),
    }
}

/// `field  LEFT  RIGHT` under a header naming each side; or one line saying they are identical.
fn diff_text(left: &Side, right: &Side, diffs: &[Difference]) -> String {
    if diffs.is_empty() {
        return format!("identical: {} and {} have the same fingerprint (key {})\n", left.label(), right.label(), right.key);
    }
    let show = |v: &Option<Json>| v.as_ref().map_or("(absent)".to_string(), Json::to_string);
    let rows: Vec<(String, String, String)> = std::iter::once(("field".to_string(), left.label(), right.label()))
        .chain(diffs.iter().map(|d| (d.field.clone(), show(&d.left), show(&d.right))))
        .collect();
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0).min(48);
    rows.iter().fold(String::new(), |mut out, (f, l, r)| {
        let _ = writeln!(out, "{f:<w0$}  {l:<w1$}  {r}");
        out
    })
}

fn diff_json(left: &Side, right: &Side, diffs: &[Difference]) -> String {
    let differences: Vec<Json> = diffs
        .iter()
        .map(|d| {
            let mut v = serde_json::json!({"field": d.field});
            if let Some(l) = &d.left {
                v["left"] = l.clone();
            }
            if let Some(r) = &d.right {
                v["right"] = r.clone();
            }
            v
        })
        .collect();
    let v = serde_json::json!({"left": left.json(), "right": right.json(), "identical": diffs.is_empty(), "differences": differences});
    format!("{}\n", serde_json::to_string_pretty(&v).expect("serialises"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn fp() -> Fingerprint {
        Fingerprint {
            key_version: 1,
            kind: "command".into(),
            stage_version: 1,
            params: BTreeMap::from([("cmd".to_string(), crate::Value::Str("echo".into())), ("n".to_string(), crate::Value::Int(1))]),
            inputs: BTreeMap::from([("data".to_string(), vec!["ab".repeat(32), "cd".repeat(32)])]),
            environment: BTreeMap::new(),
            input_nodes: BTreeMap::new(),
        }
    }

    #[test]
    fn differences_name_each_field_and_nothing_else() {
        assert_eq!(differences(&fp(), &fp()), vec![]);
        let mut b = fp();
        b.params.insert("n".into(), crate::Value::Float(1.0));
        b.params.insert("extra".into(), crate::Value::Bool(true));
        b.inputs.get_mut("data").unwrap()[1] = "ef".repeat(32);
        b.environment.insert("torch".into(), "2.13.0".into());
        let d = differences(&fp(), &b);
        let mut fields: Vec<&str> = d.iter().map(|d| d.field.as_str()).collect();
        fields.sort();
        assert_eq!(fields, ["environment.torch", "inputs.data[1]", "params.extra", "params.n"]);
        let of = |f: &str| d.iter().find(|d| d.field == f).map(|d| (d.left.clone(), d.right.clone())).unwrap();
        assert_eq!(of("params.n"), (Some(serde_json::json!(1)), Some(serde_json::json!(1.0))), "an int and a float differ");
        assert_eq!(of("params.extra"), (None, Some(Json::Bool(true))));
    }

    #[test]
    fn a_map_on_one_side_only_is_listed_per_field() {
        let mut b = fp();
        b.input_nodes.insert("data".into(), vec!["a".into()]);
        let d = differences(&fp(), &b);
        assert_eq!(d, vec![Difference { field: "input_nodes.data".into(), left: None, right: Some(serde_json::json!(["a"])) }]);
    }
}
