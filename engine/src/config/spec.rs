//! The pipeline file's structure (stages, params, matrix, inputs), read from the marked YAML tree.

use super::diag::{did_you_mean, Diagnostics};
use super::yaml::{Node, NodeKind, Pos};
use crate::value::Value;

/// Where an override from the command line "sits" in the file: nowhere (line 0).
pub const COMMAND_LINE: Pos = Pos { line: 0, col: 0 };

/// A pipeline file's structure as written, before grid expansion; positions are kept for diagnostics.
#[derive(Debug, Clone)]
pub struct PipelineSpec {
    /// The pipeline's `name:`, or the default passed to [`parse_spec`] (the file's stem).
    pub name: String,
    /// Pipeline-wide params, referenced as `${params.NAME}`.
    pub params: Vec<Entry>,
    /// The stages, in file order.
    pub stages: Vec<StageSpec>,
    /// `report: PATH`: where `pipe run` writes the HTML report (`pipe report`), with its position.
    pub report: Option<(String, Pos)>,
    /// `compare:`: how the HTML report compares the cells of each published results table.
    pub compare: Option<CompareSpec>,
}

/// `compare:`: each published results table's cells against a baseline cell, paired over a
/// replicate axis, by the rules of `pipe compare` (per cell mean, sample std and n; the paired
/// differences' t interval, t-test and Wilcoxon p, Holm-adjusted p and a verdict), shown in the
/// HTML report under the table. Names are checked against the grid's axes when the file loads;
/// values are not (narrowing an axis with `--set` leaves the file valid), and a table without the
/// metric or the baseline says so in the report.
#[derive(Debug, Clone)]
pub struct CompareSpec {
    /// `metric: auc`: the float column compared.
    pub metric: String,
    /// Where the metric's value is.
    pub metric_pos: Pos,
    /// `baseline: {method: radius, mu2: 0.0}`: the baseline cell's values, each with its key's position.
    pub baseline: Vec<(String, String, Pos)>,
    /// `replicate: fold`: the axis whose values pair a cell's rows with its baseline's (unwritten:
    /// `seed`, [`CompareSpec::replicate`]).
    pub replicate: Option<(String, Pos)>,
    /// `within: dataset`: Holm's adjustment within each value of this axis instead of over all.
    pub within: Option<(String, Pos)>,
    /// `lower_is_better: true` for a loss or a false-positive rate (default false).
    pub lower_is_better: bool,
    /// Where the `compare:` key is.
    pub pos: Pos,
}

impl CompareSpec {
    /// The replicate axis: as written, else `seed`.
    pub fn replicate(&self) -> &str {
        self.replicate.as_ref().map_or("seed", |(r, _)| r.as_str())
    }
}

/// A `key: value` pair with the key's position.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The key, as written.
    pub key: String,
    /// Where the key is in the file.
    pub pos: Pos,
    /// The value, as written (`${...}` references not yet substituted).
    pub value: Node,
    /// A `--set` value's text exactly as typed (`None` for the file's entries): what a string
    /// param receives, byte for byte, even where the text also reads as a number (`0.50`, `007`).
    pub typed: Option<String>,
}

/// One stage under `stages:`, as written.
#[derive(Debug, Clone)]
pub struct StageSpec {
    /// The stage's name (its key under `stages:`).
    pub name: String,
    /// Where the stage's name is in the file.
    pub pos: Pos,
    /// The `kind:` value, a registered stage kind's name; empty when the stage has none.
    pub kind: String,
    /// Where the `kind:` value is (the stage's position when there is none).
    pub kind_pos: Pos,
    /// The stage's own `matrix:` axes, in file order.
    pub matrix: Vec<Axis>,
    /// The `params:` entries; a `--set` override replaces the entry of its param.
    pub params: Vec<Entry>,
    /// The `inputs:` entries, in file order.
    pub inputs: Vec<InputSpec>,
    /// The `publish:` entries: output name -> workspace path (`${...}` not yet substituted).
    pub publish: Vec<Entry>,
    /// Params that differ for some grid cells (e.g. a longer schedule on CIFAR-10), in file order;
    /// a later matching override wins over an earlier one and over `params`.
    pub overrides: Vec<Override>,
    /// Where each of the file's matrix values holding `${` is, as (axis, value as written,
    /// position): such a value is resolved after `--set`, and its errors point here.
    pub matrix_refs: Vec<(String, String, Pos)>,
}

/// One `overrides:` item: `{when: {AXIS: VALUE | [VALUES]}, params: {...}}`. Applies to the
/// stage's nodes whose coordinates (its own axes and inherited ones) match every `when` entry.
#[derive(Debug, Clone)]
pub struct Override {
    /// Where the item is in the file.
    pub pos: Pos,
    /// Each `when:` entry: the axis, its position, and the values that match (any one of them).
    pub when: Vec<(String, Pos, Vec<Value>)>,
    /// The params set for the matching nodes.
    pub params: Vec<Entry>,
}

/// One matrix axis: a name and its values.
#[derive(Debug, Clone)]
pub struct Axis {
    /// The axis's name.
    pub name: String,
    /// Where the axis's name is in the file.
    pub pos: Pos,
    /// The values in file order, canonicalised (on an axis with any float, ints become floats);
    /// `--set stage.matrix.AXIS=[...]` replaces them.
    pub values: Vec<Value>,
    /// The values the file itself declares (before any `--set`): an `overrides: when:` may name
    /// any of them, so narrowing the axis on the command line leaves the file valid.
    pub declared: Vec<Value>,
}

/// One entry of a stage's `inputs:`.
#[derive(Debug, Clone)]
pub struct InputSpec {
    /// The input's name (its key under `inputs:`).
    pub name: String,
    /// Where the input's name is in the file.
    pub pos: Pos,
    /// What the input reads.
    pub source: Source,
    /// Collect every matching upstream node instead of exactly one (fan-in).
    pub gather: bool,
    /// With `gather`: run with the upstream nodes that completed, skipping failed ones.
    pub allow_missing: bool,
}

/// What an input reads: an upstream stage's output (`stage.output`, `from:`) or a workspace file (`file:`).
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// An output of an upstream stage.
    Output {
        /// The upstream stage's name.
        stage: String,
        /// The name of its output.
        output: String,
    },
    /// A workspace file's path, as written (it may hold `${...}` references).
    File(String),
}

const TOP_KEYS: &[&str] = &["name", "description", "params", "stages", "report", "compare"];
const COMPARE_KEYS: &[&str] = &["metric", "baseline", "replicate", "within", "lower_is_better"];
const STAGE_KEYS: &[&str] = &["kind", "description", "params", "overrides", "matrix", "inputs", "publish"];

/// A pipeline's `name:`: a plain word (it appears in run records and messages, never as a path).
fn is_pipeline_name(s: &str) -> bool {
    s.len() <= 100
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

pub(crate) fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
}

/// Whether the mapping `node` has the key `key`.
fn entries_have(node: &Node, key: &str) -> bool {
    matches!(&node.kind, NodeKind::Map(items) if items.iter().any(|(k, _)| k.as_str() == Some(key)))
}

/// A scalar key as written (`1`, `true`), for hints that quote it.
fn key_text(k: &Node) -> String {
    match &k.kind {
        NodeKind::Scalar(v) => v.to_string(),
        _ => "KEY".into(),
    }
}

fn entries<'a>(node: &'a Node, what: &str, d: &mut Diagnostics) -> Vec<(String, Pos, &'a Node)> {
    match &node.kind {
        NodeKind::Map(items) => items
            .iter()
            .filter_map(|(k, v)| match k.as_str() {
                Some(s) => Some((s.to_string(), k.pos, v)),
                None => {
                    d.error(
                        k.pos,
                        format!("{what} keys must be strings, found {}", k.type_name()),
                        Some(format!("write the key as a name, quoted where it reads as a number or bool (`\"{}\": ...`)", key_text(k))),
                    );
                    None
                }
            })
            .collect(),
        NodeKind::Scalar(Value::Null) => Vec::new(),
        _ => {
            d.error(
                node.pos,
                format!("{what} must be a mapping, found {}", node.type_name()),
                Some("write `key: value` entries indented under it, or `{key: value, ...}` on one line".into()),
            );
            Vec::new()
        }
    }
}

fn unknown_key(d: &mut Diagnostics, pos: Pos, key: &str, where_: &str, allowed: &[&str]) {
    let hint = did_you_mean(key, allowed.iter().copied()).unwrap_or_else(|| format!("allowed keys: {}", allowed.join(", ")));
    d.error(pos, format!("unknown key `{key}` in {where_}"), Some(hint));
}

/// Reads the structure; semantic checks (kinds, params, references) happen in `grid`.
pub fn parse_spec(root: &Node, default_name: &str, d: &mut Diagnostics) -> PipelineSpec {
    let mut spec = PipelineSpec { name: default_name.to_string(), params: Vec::new(), stages: Vec::new(), report: None, compare: None };
    let mut saw_stages = false;
    if !matches!(root.kind, NodeKind::Map(_)) {
        d.error(root.pos, format!("a pipeline file must be a mapping, found {}", root.type_name()), Some("start with `stages:`".into()));
        return spec;
    }
    for (key, pos, value) in entries(root, "the pipeline", d) {
        match key.as_str() {
            "name" => match value.as_str() {
                Some(s) if is_pipeline_name(s) => spec.name = s.to_string(),
                Some(s) => d.error(
                    value.pos,
                    format!("invalid pipeline name `{s}`"),
                    Some("use letters, digits, `.`, `_` and `-`, starting with a letter or digit (at most 100 characters)".into()),
                ),
                None => d.error(
                    value.pos,
                    format!("`name` must be a string, found {}", value.type_name()),
                    Some("name the pipeline with a word, e.g. `name: quick` (quote one that reads as a number: `name: \"2024\"`)".into()),
                ),
            },
            "description" => {}
            "report" => match value.as_str() {
                Some(s) => spec.report = Some((s.to_string(), value.pos)),
                None => d.error(
                    value.pos,
                    format!("`report` must be a path, found {}", value.type_name()),
                    Some("where `pipe run` writes the HTML report, e.g. `report: Deliverables/quick/report.html`".into()),
                ),
            },
            "compare" => spec.compare = parse_compare(pos, value, d),
            "params" => {
                for (k, p, v) in entries(value, "`params`", d) {
                    if !is_identifier(&k) {
                        d.error(p, format!("invalid param name `{k}`"), Some("use letters, digits, `_` and `-`".into()));
                    }
                    spec.params.push(Entry { key: k, pos: p, value: v.clone(), typed: None });
                }
            }
            "stages" => {
                saw_stages = true;
                let stages = entries(value, "`stages`", d);
                // (A mapping whose keys are all invalid is reported key by key.)
                let none_written = match &value.kind {
                    NodeKind::Map(m) => m.is_empty(),
                    NodeKind::Scalar(Value::Null) => true,
                    _ => false,
                };
                if stages.is_empty() && none_written {
                    d.error(value.pos, "`stages` is empty", Some("declare at least one stage".into()));
                }
                for (name, p, v) in stages {
                    if let Some(s) = parse_stage(name, p, v, d) {
                        spec.stages.push(s);
                    }
                }
            }
            _ => unknown_key(d, pos, &key, "the pipeline", TOP_KEYS),
        }
    }
    if !saw_stages {
        d.error(root.pos, "the pipeline has no `stages:` section", Some("add `stages:` with at least one stage".into()));
    }
    spec
}

/// `compare:` (its key at `key_pos`), with an error for each problem; None where its metric or
/// baseline is missing or unusable.
fn parse_compare(key_pos: Pos, node: &Node, d: &mut Diagnostics) -> Option<CompareSpec> {
    const EXAMPLE: &str = "e.g. `compare: {metric: auc, baseline: {method: radius, mu2: 0.0}}` (optional: `replicate: seed`, `within: dataset`, `lower_is_better: true`)";
    if !matches!(node.kind, NodeKind::Map(_)) {
        d.error(node.pos, format!("`compare` must be a mapping, found {}", node.type_name()), Some(EXAMPLE.into()));
        return None;
    }
    let (mut metric, mut baseline, mut replicate, mut within, mut lower_is_better) = (None, None, None, None, false);
    let (mut saw_metric, mut saw_baseline) = (false, false);
    // An axis name (`replicate`, `within`), or any column name (`metric`: a table's column may be `test/auc`).
    let name = |key: &str, v: &Node, axis: bool, d: &mut Diagnostics| -> Option<(String, Pos)> {
        match v.as_str() {
            Some(s) if if axis { is_identifier(s) } else { !s.trim().is_empty() } => Some((s.to_string(), v.pos)),
            _ => {
                let found = v.as_str().map_or_else(|| v.type_name().to_string(), |s| format!("`{s}`"));
                let what = if axis { "an axis of the grid" } else { "a column of the results table" };
                d.error(v.pos, format!("`compare.{key}` must name {what}, found {found}"), Some(EXAMPLE.into()));
                None
            }
        }
    };
    for (key, pos, v) in entries(node, "`compare`", d) {
        match key.as_str() {
            "metric" => {
                saw_metric = true;
                metric = name("metric", v, false, d);
            }
            "replicate" => replicate = name("replicate", v, true, d),
            "within" => within = name("within", v, true, d),
            "lower_is_better" => match &v.kind {
                NodeKind::Scalar(Value::Bool(b)) => lower_is_better = *b,
                _ => d.error(v.pos, format!("`compare.lower_is_better` must be true or false, found {}", v.type_name()), None),
            },
            "baseline" => {
                saw_baseline = true;
                match &v.kind {
                    NodeKind::Map(m) if m.is_empty() => {
                        d.error(
                            v.pos,
                            "`compare.baseline` is empty",
                            Some(format!("name at least one axis and the baseline cell's value of it; {EXAMPLE}")),
                        );
                        continue;
                    }
                    NodeKind::Map(_) => {}
                    _ => {
                        d.error(v.pos, format!("`compare.baseline` must be a mapping of axis values, found {}", v.type_name()), Some(EXAMPLE.into()));
                        continue;
                    }
                }
                let mut cells = Vec::new();
                for (k, p, val) in entries(v, "`compare.baseline`", d) {
                    match &val.kind {
                        NodeKind::Scalar(x) if !matches!(x, Value::Null) => cells.push((k, x.to_string(), p)),
                        _ => d.error(val.pos, format!("`compare.baseline.{k}` must be one value, found {}", val.type_name()), Some(EXAMPLE.into())),
                    }
                }
                baseline = Some(cells);
            }
            _ => unknown_key(d, pos, &key, "`compare`", COMPARE_KEYS),
        }
    }
    for (missing, what) in [(!saw_metric, "metric"), (!saw_baseline, "baseline")] {
        if missing {
            d.error(key_pos, format!("`compare` has no `{what}`"), Some(EXAMPLE.into()));
        }
    }
    let (metric, metric_pos) = metric?;
    Some(CompareSpec { metric, metric_pos, baseline: baseline?, replicate, within, lower_is_better, pos: key_pos })
}

fn parse_stage(name: String, pos: Pos, node: &Node, d: &mut Diagnostics) -> Option<StageSpec> {
    if !is_identifier(&name) {
        d.error(pos, format!("invalid stage name `{name}`"), Some("stage names use letters, digits, `_` and `-`, and start with a letter".into()));
    }
    if !matches!(node.kind, NodeKind::Map(_)) {
        d.error(node.pos, format!("stage `{name}` must be a mapping, found {}", node.type_name()), Some("give it at least `kind:`".into()));
        return None;
    }
    let mut s = StageSpec {
        name: name.clone(),
        pos,
        kind: String::new(),
        kind_pos: pos,
        matrix: Vec::new(),
        params: Vec::new(),
        inputs: Vec::new(),
        publish: Vec::new(),
        overrides: Vec::new(),
        matrix_refs: Vec::new(),
    };
    for (key, kpos, v) in entries(node, &format!("stage `{name}`"), d) {
        match key.as_str() {
            "kind" => match v.as_str() {
                Some(k) => {
                    s.kind = k.to_string();
                    s.kind_pos = v.pos;
                }
                None => d.error(
                    v.pos,
                    format!("`kind` must be a string, found {}", v.type_name()),
                    Some("name one stage kind, e.g. `kind: command` or `kind: train_svdd`".into()),
                ),
            },
            "description" => {}
            "params" => {
                for (k, p, val) in entries(v, &format!("params of stage `{name}`"), d) {
                    s.params.push(Entry { key: k, pos: p, value: val.clone(), typed: None });
                }
            }
            "overrides" => s.overrides = parse_overrides(&name, v, d),
            "matrix" => {
                for (axis, p, vals) in entries(v, &format!("matrix of stage `{name}`"), d) {
                    if !is_identifier(&axis) {
                        d.error(
                            p,
                            format!("invalid matrix axis name `{axis}`"),
                            Some("axis names use letters, digits, `_` and `-`, and start with a letter or `_`".into()),
                        );
                    }
                    let values = match &vals.kind {
                        NodeKind::Seq(items) => items
                            .iter()
                            .filter_map(|it| match &it.kind {
                                NodeKind::Scalar(Value::Null) | NodeKind::Seq(_) | NodeKind::Map(_) => {
                                    d.error(
                                        it.pos,
                                        format!("matrix values must be scalars, found {}", it.type_name()),
                                        Some(format!(
                                            "each value is one number, string or bool: write `{axis}: [a, b]`; quote a value holding `[` or `{{`"
                                        )),
                                    );
                                    None
                                }
                                NodeKind::Scalar(x) => {
                                    if let Value::Str(t) = x {
                                        if t.contains("${") {
                                            s.matrix_refs.push((axis.clone(), t.clone(), it.pos));
                                        }
                                    }
                                    Some(x.clone())
                                }
                            })
                            .collect::<Vec<_>>(),
                        _ => {
                            d.error(
                                vals.pos,
                                format!("matrix axis `{axis}` must be a list, found {}", vals.type_name()),
                                Some(format!("write `{axis}: [a, b]`")),
                            );
                            continue;
                        }
                    };
                    if values.is_empty() {
                        d.error(vals.pos, format!("matrix axis `{axis}` is empty"), Some("give it at least one value, or remove the axis".into()));
                        continue;
                    }
                    let values = match crate::value::canonical_axis(&values) {
                        Ok(v) => v,
                        Err(m) => {
                            d.error(
                                vals.pos,
                                format!("matrix axis `{axis}` {m}"),
                                Some("each value names one grid cell (node ids hold the printed value): remove the duplicate".into()),
                            );
                            // Go on with one value per printed form, so nothing else reports it.
                            let mut seen = std::collections::HashSet::new();
                            values.into_iter().filter(|v| seen.insert(v.to_string())).collect()
                        }
                    };
                    s.matrix.push(Axis { name: axis, pos: p, declared: values.clone(), values });
                }
            }
            "inputs" => {
                for (iname, p, val) in entries(v, &format!("inputs of stage `{name}`"), d) {
                    if let Some(i) = parse_input(iname, p, val, d) {
                        s.inputs.push(i);
                    }
                }
            }
            "publish" => {
                for (out, p, val) in entries(v, &format!("publish of stage `{name}`"), d) {
                    if val.as_str().is_none() {
                        d.error(
                            val.pos,
                            format!("publish path must be a string, found {}", val.type_name()),
                            Some(format!("write `{out}: results/FILE` (a file) or `{out}: results/` (a folder) inside the workspace")),
                        );
                        continue;
                    }
                    s.publish.push(Entry { key: out, pos: p, value: val.clone(), typed: None });
                }
            }
            _ => unknown_key(d, kpos, &key, &format!("stage `{name}`"), STAGE_KEYS),
        }
    }
    // (A `kind:` that is not a string is reported as such.)
    if s.kind.is_empty() && !entries_have(node, "kind") {
        d.error(pos, format!("stage `{name}` has no `kind`"), Some("add e.g. `kind: command`".into()));
    }
    Some(s)
}

const OVERRIDE_HINT: &str = "write `overrides: [{when: {dataset: cifar10}, params: {epochs: 350}}]`";

/// `overrides:` of a stage: a list of `{when: {AXIS: VALUE | [VALUES]}, params: {...}}`.
fn parse_overrides(stage: &str, v: &Node, d: &mut Diagnostics) -> Vec<Override> {
    let NodeKind::Seq(items) = &v.kind else {
        d.error(v.pos, format!("`overrides` of stage `{stage}` must be a list, found {}", v.type_name()), Some(OVERRIDE_HINT.into()));
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        if !matches!(item.kind, NodeKind::Map(_)) {
            d.error(item.pos, format!("an override of stage `{stage}` must be a mapping, found {}", item.type_name()), Some(OVERRIDE_HINT.into()));
            continue;
        }
        let mut o = Override { pos: item.pos, when: Vec::new(), params: Vec::new() };
        let mut saw = (false, false);
        for (k, kpos, val) in entries(item, &format!("an override of stage `{stage}`"), d) {
            match k.as_str() {
                "when" => {
                    saw.0 = true;
                    for (axis, apos, vals) in entries(val, "`when`", d) {
                        let values: Vec<Value> = match &vals.kind {
                            NodeKind::Scalar(x) if *x != Value::Null => vec![x.clone()],
                            NodeKind::Seq(xs) if !xs.is_empty() => xs
                                .iter()
                                .filter_map(|x| match &x.kind {
                                    NodeKind::Scalar(x) if *x != Value::Null => Some(x.clone()),
                                    _ => {
                                        d.error(
                                            x.pos,
                                            format!("`when` values must be scalars, found {}", x.type_name()),
                                            Some(format!("write `when: {{{axis}: VALUE}}` or `when: {{{axis}: [VALUE, VALUE]}}`")),
                                        );
                                        None
                                    }
                                })
                                .collect(),
                            _ => {
                                d.error(
                                    vals.pos,
                                    format!("`when: {{{axis}: ...}}` needs a value or a non-empty list, found {}", vals.type_name()),
                                    Some(format!("e.g. `when: {{{axis}: VALUE}}`")),
                                );
                                continue;
                            }
                        };
                        o.when.push((axis, apos, values));
                    }
                }
                "params" => {
                    saw.1 = true;
                    for (pk, ppos, pv) in entries(val, "override `params`", d) {
                        o.params.push(Entry { key: pk, pos: ppos, value: pv.clone(), typed: None });
                    }
                }
                _ => unknown_key(d, kpos, &k, &format!("an override of stage `{stage}`"), &["when", "params"]),
            }
        }
        if !saw.0 || o.when.is_empty() {
            d.error(
                item.pos,
                format!("an override of stage `{stage}` has no `when`"),
                Some("say which grid cells it applies to, e.g. `when: {dataset: cifar10}`".into()),
            );
        }
        if !saw.1 {
            d.error(item.pos, format!("an override of stage `{stage}` has no `params`"), Some(OVERRIDE_HINT.into()));
        }
        out.push(o);
    }
    out
}

fn parse_ref(text: &str, pos: Pos, d: &mut Diagnostics) -> Option<Source> {
    match text.split_once('.') {
        Some((stage, output)) if !stage.is_empty() && !output.is_empty() => {
            Some(Source::Output { stage: stage.to_string(), output: output.to_string() })
        }
        _ => {
            d.error(
                pos,
                format!("input reference `{text}` is not of the form `stage.output`"),
                Some("name an upstream stage and one of its outputs, e.g. `ingest.dataset`, or use `{file: PATH}`".into()),
            );
            None
        }
    }
}

fn parse_input(name: String, pos: Pos, v: &Node, d: &mut Diagnostics) -> Option<InputSpec> {
    match &v.kind {
        NodeKind::Scalar(Value::Str(text)) => {
            parse_ref(text, v.pos, d).map(|source| InputSpec { name, pos, source, gather: false, allow_missing: false })
        }
        NodeKind::Map(_) => {
            let mut source = None;
            let mut gather = false;
            let mut allow_missing = false;
            for (k, p, val) in entries(v, &format!("input `{name}`"), d) {
                match (k.as_str(), val.as_str()) {
                    ("from", Some(t)) => source = parse_ref(t, val.pos, d),
                    ("file", Some(t)) => source = Some(Source::File(t.to_string())),
                    ("gather" | "allow_missing", _) => match &val.kind {
                        NodeKind::Scalar(Value::Bool(b)) if k == "gather" => gather = *b,
                        NodeKind::Scalar(Value::Bool(b)) => allow_missing = *b,
                        _ => d.error(
                            val.pos,
                            format!("`{k}` must be true or false, found {}", val.type_name()),
                            Some(format!("write `{k}: true` or `{k}: false` (unquoted)")),
                        ),
                    },
                    ("from" | "file", None) => d.error(
                        val.pos,
                        format!("`{k}` must be a string, found {}", val.type_name()),
                        Some(if k == "from" { "write `from: stage.output`".into() } else { "write `file: PATH`, a path in the workspace".into() }),
                    ),
                    _ => unknown_key(d, p, &k, &format!("input `{name}`"), &["from", "file", "gather", "allow_missing"]),
                }
            }
            // (A `from:` or `file:` of the wrong type, or not `stage.output`, is reported as such.)
            if source.is_none() && !entries_have(v, "from") && !entries_have(v, "file") {
                d.error(v.pos, format!("input `{name}` names no source"), Some("write `from: stage.output` or `file: PATH`".into()));
            }
            if gather && matches!(source, Some(Source::File(_))) {
                d.error(
                    v.pos,
                    format!("input `{name}`: `gather` applies to `from:` inputs only"),
                    Some("remove `gather: true`, or gather an upstream stage's output with `from: stage.output`".into()),
                );
            }
            if allow_missing && !gather {
                d.error(v.pos, format!("input `{name}`: `allow_missing` applies to gathered inputs only"), Some("add `gather: true`".into()));
            }
            source.map(|source| InputSpec { name, pos, source, gather, allow_missing })
        }
        _ => {
            d.error(
                v.pos,
                format!("input `{name}` must be `stage.output` or a mapping, found {}", v.type_name()),
                Some(format!("write `{name}: stage.output`, `{name}: {{from: stage.output, gather: true}}` or `{name}: {{file: PATH}}`")),
            );
            None
        }
    }
}
