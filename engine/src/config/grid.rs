//! Grid expansion: stages x matrix axes -> concrete nodes with resolved, type-checked params.
//!
//! A stage's axes are the axes of its (non-gathered) upstream stages plus its own `matrix:`.
//! A plain input binds to the one upstream node with the same coordinates on the upstream's
//! axes; a `gather: true` input binds to every upstream node that agrees on the shared axes.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use petgraph::graph::DiGraph;

use super::diag::{did_you_mean, Diagnostics};
use super::spec::{Entry, Override, PipelineSpec, Source, StageSpec, COMMAND_LINE};
use super::yaml::{Node, NodeKind, Pos};
use crate::stage::{InputDecl, OutputSpec, ParamType, Params, Registry, StageKind};
use crate::value::Value;

/// One concrete unit of work.
#[derive(Clone)]
pub struct NodeSpec {
    /// `stage` or `stage[axis=value,...]`.
    pub id: String,
    /// The name of the stage the node belongs to.
    pub stage: String,
    /// The stage's kind, from the registry.
    pub kind: Arc<dyn StageKind>,
    /// The node's grid coordinates as (axis, value): inherited axes first, then the stage's own `matrix:`.
    pub coords: Vec<(String, Value)>,
    /// The resolved, type-checked params: `--set`, matching `overrides:`, `${...}` substitutions and defaults applied.
    pub params: Params,
    /// Input name -> what it reads: one upstream output for a plain input, one per matching upstream
    /// node for a `gather: true` input, or one workspace file.
    pub inputs: BTreeMap<String, Vec<InputRef>>,
    /// Gathered inputs that tolerate failed upstream nodes (`allow_missing: true`).
    pub partial_inputs: Vec<String>,
    /// The files the node writes, as its kind declares them for these params.
    pub outputs: Vec<OutputSpec>,
    /// Output name -> workspace path it is copied to after the node completes.
    pub publish: Vec<(String, PathBuf)>,
}

impl std::fmt::Debug for NodeSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSpec").field("id", &self.id).field("kind", &self.kind.name()).finish()
    }
}

/// Where an input's data comes from: an upstream node's output or a workspace file.
#[derive(Clone, Debug, PartialEq)]
pub enum InputRef {
    /// Output `output` of the node at index `node` (indices into the expanded node list).
    Node {
        /// Index of the upstream node in the expanded node list (`Pipeline::nodes`).
        node: usize,
        /// The name of that node's output.
        output: String,
    },
    /// A `file:` input's path after `${...}` substitution; a relative path is taken from the workspace.
    File(PathBuf),
}

/// A node's id: `stage` when it has no coordinates, else `stage[axis=value,...]` in coordinate order.
pub fn node_id(stage: &str, coords: &[(String, Value)]) -> String {
    if coords.is_empty() {
        return stage.to_string();
    }
    let inner: Vec<String> = coords.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{stage}[{}]", inner.join(","))
}

/// How a `--set` value is read (README, "Overrides"), stated once for every error that cites it.
pub const SET_RULE: &str = "a --set value is a number only when written in plain decimal (3, -0.5, 1e-3), true, false or null only \
as those lowercase words; a [...] list is read as YAML (quote an item holding `#` or `, `); anything else, and any value given to \
a string param, is the text exactly as typed";

/// The one rule for a `--set` value's text (see [`SET_RULE`]): a plain decimal number, `true`,
/// `false`, `null` and `[a, b]` are values; everything else (`007`, `~`, `True`, `.5`) is the string exactly as typed: `#`, `: `, quotes, spaces and
/// unicode arrive byte for byte, and a `#` is never a comment. Errors: a `[...]` that is not one
/// YAML list, or one holding a ` #` that YAML would read as a comment.
pub fn set_value(raw: &str) -> Result<NodeKind, String> {
    if raw.starts_with('[') {
        let comment = raw.char_indices().any(|(i, c)| c == '#' && i > 0 && raw[..i].ends_with([' ', '\t']) && !inside_quotes(&raw[..i]));
        if comment {
            return Err("a ` #` inside a list would be read as a YAML comment, dropping the rest".into());
        }
        return match super::yaml::parse(raw) {
            Ok((n, problems)) if problems.is_empty() && matches!(n.kind, NodeKind::Seq(_)) => Ok(n.kind),
            _ => Err("it starts with `[` but is not one YAML list".into()),
        };
    }
    match raw {
        "true" => return Ok(NodeKind::Scalar(Value::Bool(true))),
        "false" => return Ok(NodeKind::Scalar(Value::Bool(false))),
        "null" => return Ok(NodeKind::Scalar(Value::Null)),
        _ => {}
    }
    if decimal_number(raw) {
        if let Ok(i) = raw.parse::<i64>() {
            return Ok(NodeKind::Scalar(Value::Int(i)));
        }
        if let Ok(x) = raw.parse::<f64>() {
            return Ok(NodeKind::Scalar(Value::Float(x)));
        }
    }
    Ok(NodeKind::Scalar(Value::Str(raw.to_string())))
}

/// Whether `s` is a number written in plain decimal: `3`, `-0.5`, `1e-3`, `2.5E+4`; not `007`,
/// `+5`, `.5`, `5.`, `0x1f`, `inf` or `.nan` (those stay text, as typed).
fn decimal_number(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    let int_ok = digits(int) && (int == "0" || !int.starts_with('0'));
    let frac_ok = frac.is_none_or(digits);
    let exp_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    int_ok && frac_ok && exp_ok
}

/// Whether `prefix` ends inside a quoted YAML flow item (an odd number of unescaped quotes).
fn inside_quotes(prefix: &str) -> bool {
    let (mut single, mut double) = (false, false);
    let mut prev = ' ';
    for c in prefix.chars() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single && prev != '\\' => double = !double,
            _ => {}
        }
        prev = c;
    }
    single || double
}

/// Applies `--set stage.param=value` and `--set params.name=value` overrides.
pub fn apply_overrides(spec: &mut PipelineSpec, overrides: &[(String, String)], d: &mut Diagnostics) {
    for (target, raw) in overrides {
        let value = match set_value(raw) {
            Ok(kind) => Node { pos: COMMAND_LINE, kind },
            Err(m) => {
                d.push(super::diag::Diagnostic { pos: None, message: format!("override `{target}={raw}`: {m}"), hint: Some(SET_RULE.into()) });
                continue;
            }
        };
        let Some((scope, param)) = target.split_once('.') else {
            d.push(super::diag::Diagnostic {
                pos: None,
                message: format!("override `{target}={raw}` is not of the form `stage.param=value`"),
                hint: Some("e.g. `--set train.mu2=0.5` or `--set params.epochs=3`".into()),
            });
            continue;
        };
        // `--set stage.matrix.AXIS=[a, b]` replaces (or adds) a matrix axis.
        if let Some(axis) = param.strip_prefix("matrix.") {
            let values = match value.to_value() {
                Some(Value::List(v)) => v,
                Some(v) => vec![v],
                None => Vec::new(),
            };
            let values = match crate::value::canonical_axis(&values) {
                Ok(v) => v,
                Err(m) => {
                    d.push(super::diag::Diagnostic {
                        pos: None,
                        message: format!("override `{target}={raw}`: the axis {m}"),
                        hint: Some("each value names one grid cell (node ids hold the printed value): remove the duplicate".into()),
                    });
                    continue;
                }
            };
            match spec.stages.iter_mut().find(|s| s.name == scope) {
                Some(stage) if !values.is_empty() => match stage.matrix.iter_mut().find(|a| a.name == axis) {
                    // Keep the axis's place, so node names keep their coordinate order.
                    Some(a) => a.values = values,
                    None => stage.matrix.push(super::spec::Axis { name: axis.to_string(), pos: COMMAND_LINE, declared: Vec::new(), values }),
                },
                Some(_) => d.push(super::diag::Diagnostic {
                    pos: None,
                    message: format!("override `{target}`: a matrix axis needs at least one value"),
                    hint: Some(format!("e.g. `--set {target}=[0.5, 1.0]`")),
                }),
                None => d.push(super::diag::Diagnostic {
                    pos: None,
                    message: format!("override `{target}`: no stage named `{scope}`"),
                    hint: Some(stage_hint(spec, scope)),
                }),
            }
            continue;
        }
        if scope == "params" && !spec.params.iter().any(|e| e.key == param) {
            let names: Vec<&str> = spec.params.iter().map(|e| e.key.as_str()).collect();
            d.push(super::diag::Diagnostic {
                pos: None,
                message: format!("override `{target}`: the pipeline declares no param `{param}`"),
                hint: did_you_mean(param, names.iter().copied()).or_else(|| {
                    Some(if names.is_empty() { "it has no top-level `params:`".into() } else { format!("params: {}", names.join(", ")) })
                }),
            });
            continue;
        }
        let entry = Entry { key: param.to_string(), pos: COMMAND_LINE, value, typed: Some(raw.clone()) };
        let list = if scope == "params" { Some(&mut spec.params) } else { spec.stages.iter_mut().find(|s| s.name == scope).map(|s| &mut s.params) };
        match list {
            Some(list) => {
                list.retain(|e| e.key != param);
                list.push(entry);
            }
            None => d.push(super::diag::Diagnostic {
                pos: None,
                message: format!("override `{target}`: no stage named `{scope}`"),
                hint: Some(stage_hint(spec, scope)),
            }),
        }
    }
}

/// What a `--set` naming no stage may have meant: the closest stage name (or `params`), else the
/// stages there are.
fn stage_hint(spec: &PipelineSpec, scope: &str) -> String {
    let names: Vec<&str> = spec.stages.iter().map(|s| s.name.as_str()).collect();
    did_you_mean(scope, names.iter().copied().chain(["params"]))
        .unwrap_or_else(|| format!("name a stage of the pipeline (stages: {}) or `params`", names.join(", ")))
}

/// Stage indices in dependency order; reports unknown upstream stages and cycles.
fn stage_order(spec: &PipelineSpec, d: &mut Diagnostics) -> Option<Vec<usize>> {
    let index: HashMap<&str, usize> = spec.stages.iter().enumerate().map(|(i, s)| (s.name.as_str(), i)).collect();
    let mut g = DiGraph::<usize, ()>::new();
    let nodes: Vec<_> = (0..spec.stages.len()).map(|i| g.add_node(i)).collect();
    let mut ok = true;
    for (i, s) in spec.stages.iter().enumerate() {
        for input in &s.inputs {
            if let Source::Output { stage, .. } = &input.source {
                match index.get(stage.as_str()) {
                    Some(&j) => {
                        g.add_edge(nodes[j], nodes[i], ());
                    }
                    None => {
                        ok = false;
                        let hint = did_you_mean(stage, index.keys().copied())
                            .unwrap_or_else(|| format!("stages: {}", spec.stages.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")));
                        d.error(input.pos, format!("input `{}` of stage `{}` refers to unknown stage `{stage}`", input.name, s.name), Some(hint));
                    }
                }
            }
        }
    }
    for scc in petgraph::algo::tarjan_scc(&g) {
        let cyclic = scc.len() > 1 || g.contains_edge(scc[0], scc[0]);
        if cyclic {
            ok = false;
            // Walk the cycle in file order starting from its first stage, so the message reads as a path.
            let mut members: Vec<usize> = scc.iter().map(|n| g[*n]).collect();
            members.sort();
            let names: Vec<&str> = spec.stages.iter().map(|s| s.name.as_str()).collect();
            let path = cycle_path(&g, &nodes, &members, &names);
            let first = &spec.stages[members[0]];
            d.error(
                first.pos,
                format!("dependency cycle: {path}"),
                Some("a stage cannot depend on its own outputs; remove one of these inputs".into()),
            );
        }
    }
    if !ok {
        return None;
    }
    // Stable order: the first stage in file order whose inputs are all placed (Kahn).
    let mut placed = vec![false; spec.stages.len()];
    let mut order = Vec::with_capacity(spec.stages.len());
    while order.len() < spec.stages.len() {
        let next =
            (0..spec.stages.len()).find(|&i| !placed[i] && g.neighbors_directed(nodes[i], petgraph::Direction::Incoming).all(|n| placed[g[n]]))?;
        placed[next] = true;
        order.push(next);
    }
    Some(order)
}

fn cycle_path(g: &DiGraph<usize, ()>, nodes: &[petgraph::graph::NodeIndex], members: &[usize], names: &[&str]) -> String {
    let start = members[0];
    let mut path = vec![start];
    let mut cur = start;
    loop {
        let next = g
            .neighbors(nodes[cur])
            .map(|n| g[n])
            .filter(|m| members.contains(m))
            .filter(|m| *m == start || !path.contains(m))
            .min_by_key(|m| (*m == start && path.len() < members.len(), *m));
        match next {
            Some(n) if n == start => break,
            Some(n) => {
                path.push(n);
                cur = n;
            }
            None => break,
        }
    }
    path.push(start);
    path.iter().map(|i| format!("`{}`", names[*i])).collect::<Vec<_>>().join(" -> ")
}

/// Where a value's `${...}` references are resolved, which decides what they may name.
#[derive(Clone, Copy)]
enum Scope<'a> {
    /// A node's param, `file:` input or publish path: the node's coordinates are its axes;
    /// `${inputs.*}` / `${outputs.*}` are left for run time.
    Node(&'a [(String, Value)]),
    /// A pipeline param (top-level `params:`): resolved once for every node, so it has no axes.
    Pipeline,
    /// A matrix value: it defines the grid, so it must be literal or a pipeline param.
    Matrix,
}

/// A reference that does not resolve: what is wrong, and how to fix it.
#[derive(Debug)]
struct RefError {
    message: String,
    hint: String,
}

/// The text of each `${...}` reference in `s` (`$${` escapes skipped), up to an unclosed one.
fn references(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        let escaped = rest[..start].ends_with('$');
        let after = &rest[start + 2..];
        if escaped {
            rest = after;
            continue;
        }
        let Some(end) = after.find('}') else { break };
        out.push(&after[..end]);
        rest = &after[end + 1..];
    }
    out
}

/// One reference's value: `Ok(None)` for those left for run time (`${inputs.*}`, `${outputs.*}`).
fn lookup(r: &str, globals: &BTreeMap<String, Value>, scope: Scope) -> Result<Option<Value>, RefError> {
    let (ns, name) = r.split_once('.').unwrap_or((r, ""));
    let fail = |message: String, hint: String| Err(RefError { message: format!("`${{{r}}}`: {message}"), hint });
    match (ns, scope) {
        ("params", _) => match globals.get(name) {
            Some(v) => Ok(Some(v.clone())),
            None => {
                let declare = format!("declare `{name}` under the top-level `params:`");
                let hint = match did_you_mean(name, globals.keys().map(String::as_str)) {
                    Some(h) => format!("{h} Or {declare}"),
                    None if globals.is_empty() => format!("{declare} (the pipeline declares none)"),
                    None => format!("{declare} (declared: {})", globals.keys().map(String::as_str).collect::<Vec<_>>().join(", ")),
                };
                fail(format!("no pipeline param `{name}`"), hint)
            }
        },
        ("matrix", Scope::Node(coords)) => match coords.iter().find(|(k, _)| k == name) {
            Some((_, v)) => Ok(Some(v.clone())),
            None => {
                let axes: Vec<&str> = coords.iter().map(|(k, _)| k.as_str()).collect();
                let hint = did_you_mean(name, axes.iter().copied()).unwrap_or_else(|| {
                    if axes.is_empty() {
                        format!("the stage has no matrix axes: add `matrix: {{{name}: [...]}}` to it, or write the value itself")
                    } else {
                        format!("axes of this stage (its own and inherited from its inputs): {}", axes.join(", "))
                    }
                });
                fail(format!("this stage has no matrix axis `{name}`"), hint)
            }
        },
        ("matrix", Scope::Pipeline) => fail(
            "a pipeline param has no matrix axes (it is resolved once, for every node)".into(),
            format!("write `${{matrix.{name}}}` in the params of the stage that has the axis"),
        ),
        ("matrix", Scope::Matrix) => fail(
            "a matrix value cannot refer to a matrix axis (the axes are what the values define)".into(),
            "write the value itself; to combine axes, write `${matrix.A}-${matrix.B}` in the stage's params".into(),
        ),
        ("inputs" | "outputs", Scope::Matrix) => fail(
            format!("a matrix value must be literal or a pipeline param; `{ns}` exist only when a node runs"),
            "write the value itself, or `${params.NAME}`".into(),
        ),
        ("inputs" | "outputs", _) => Ok(None),
        _ => fail(
            "unknown reference".into(),
            format!("use `${{params.NAME}}` or `${{matrix.AXIS}}`, or write `$${{{r}}}` for a literal `${{` (a shell variable)"),
        ),
    }
}

/// References `${params.x}` and `${matrix.x}` resolved; `${inputs.*}`/`${outputs.*}` left for run time.
fn substitute(v: &Value, globals: &BTreeMap<String, Value>, scope: Scope) -> Result<Value, RefError> {
    match v {
        Value::List(items) => items.iter().map(|x| substitute(x, globals, scope)).collect::<Result<_, _>>().map(Value::List),
        Value::Str(s) if s.contains("${") => {
            // A string that is exactly one reference keeps the referenced value's type.
            if let Some(r) = s.strip_prefix("${").and_then(|t| t.strip_suffix('}')) {
                if !r.contains("${") && !r.contains('}') {
                    return Ok(lookup(r, globals, scope)?.unwrap_or_else(|| v.clone()));
                }
            }
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                // `$${` is a literal `${` (for the shell: `$${VAR:-default}`, `$${f%.txt}`).
                if rest[..start].ends_with('$') {
                    out.push_str(&rest[..start - 1]);
                    out.push_str("${");
                    rest = &rest[start + 2..];
                    continue;
                }
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let Some(end) = after.find('}') else {
                    return Err(RefError {
                        message: format!("unclosed `${{` in `{s}`"),
                        hint: "close the reference with `}`, or write `$${` for a literal `${`".into(),
                    });
                };
                let r = &after[..end];
                match lookup(r, globals, scope)? {
                    Some(val) => out.push_str(&val.to_string()),
                    None => out.push_str(&rest[start..start + 2 + end + 1]),
                }
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            Ok(Value::Str(out))
        }
        _ => Ok(v.clone()),
    }
}

/// Each `${params.NAME}` that `v` refers to.
fn param_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::List(items) => items.iter().for_each(|x| param_refs(x, out)),
        Value::Str(s) => out.extend(references(s).into_iter().filter_map(|r| r.strip_prefix("params.")).map(str::to_string)),
        _ => {}
    }
}

/// A value as a node at `pos` (a resolved param written back into the spec).
fn value_node(v: Value, pos: Pos) -> Node {
    match v {
        Value::List(items) => Node { pos, kind: NodeKind::Seq(items.into_iter().map(|x| value_node(x, pos)).collect()) },
        v => Node { pos, kind: NodeKind::Scalar(v) },
    }
}

/// Resolves the references that do not depend on a node, after `--set` and before [`expand`]:
/// pipeline params that refer to other pipeline params (each resolved after those it names; a
/// reference cycle, `a -> b -> a` or `a: ${params.a}`, is an error naming it), then matrix values,
/// which must be literal or resolve to one scalar through the pipeline params. Each resolved value
/// replaces the one written, so expansion sees literals only.
pub fn resolve_refs(spec: &mut PipelineSpec, d: &mut Diagnostics) {
    // The entry each name resolves to (the last, where a key repeats: duplicates are reported).
    let index: HashMap<String, usize> = spec.params.iter().enumerate().map(|(i, e)| (e.key.clone(), i)).collect();
    let n = spec.params.len();
    let values: Vec<Option<Value>> = spec.params.iter().map(|e| e.value.to_value()).collect();
    let deps: Vec<Vec<usize>> = values
        .iter()
        .map(|v| {
            let mut names = Vec::new();
            if let Some(v) = v {
                param_refs(v, &mut names);
            }
            let mut ids: Vec<usize> = names.iter().filter_map(|k| index.get(k).copied()).collect();
            ids.dedup();
            ids
        })
        .collect();
    // Depth-first, without recursion (a chain of thousands of params must not overflow the
    // stack): `order` lists each param after every param it refers to.
    let (mut state, mut cyclic, mut order) = (vec![0u8; n], vec![false; n], Vec::with_capacity(n));
    for root in (0..n).filter(|&i| index.get(&spec.params[i].key) == Some(&i)) {
        if state[root] != 0 {
            continue;
        }
        state[root] = 1;
        let mut stack = vec![(root, 0usize)];
        while let Some(top) = stack.last_mut() {
            let (u, k) = *top;
            let Some(&w) = deps[u].get(k) else {
                state[u] = 2;
                order.push(u);
                stack.pop();
                continue;
            };
            top.1 += 1;
            match state[w] {
                0 => {
                    state[w] = 1;
                    stack.push((w, 0));
                }
                1 => {
                    let at = stack.iter().position(|(x, _)| *x == w).unwrap_or(0);
                    let mut members: Vec<usize> = stack[at..].iter().map(|(x, _)| *x).collect();
                    // Start the path at a member set on the command line (what closed the cycle),
                    // else at the first in the file, so it reads the same however it was found.
                    let first = members.iter().enumerate().min_by_key(|(_, m)| (spec.params[**m].pos != COMMAND_LINE, **m)).map_or(0, |(i, _)| i);
                    members.rotate_left(first);
                    members.iter().for_each(|m| cyclic[*m] = true);
                    let names: Vec<String> = members.iter().chain(members.first()).map(|m| format!("`{}`", spec.params[*m].key)).collect();
                    let e = &spec.params[members[0]];
                    let message = if members.len() == 1 {
                        format!("pipeline param `{}` refers to itself: {}", e.key, names.join(" -> "))
                    } else {
                        format!("pipeline params refer to each other in a cycle: {}", names.join(" -> "))
                    };
                    let hint = if members.len() == 1 {
                        format!("a param's value cannot depend on itself: give `{}` a literal value", e.key)
                    } else {
                        "a param's value cannot depend on itself: give one of these params a literal value".into()
                    };
                    err(d, e.value.pos, message, Some(hint));
                }
                _ => {}
            }
        }
    }
    let mut globals: BTreeMap<String, Value> = BTreeMap::new();
    for u in order {
        let Some(v) = &values[u] else { continue };
        let (key, pos) = (spec.params[u].key.clone(), spec.params[u].value.pos);
        let resolved = if cyclic[u] {
            v.clone()
        } else {
            match substitute(v, &globals, Scope::Pipeline) {
                Ok(r) => r,
                Err(r) => {
                    err(d, pos, format!("pipeline param `{key}`: {}", r.message), Some(r.hint));
                    v.clone()
                }
            }
        };
        if resolved != *v {
            spec.params[u].value = value_node(resolved.clone(), pos);
        }
        globals.insert(key, resolved);
    }
    for s in &mut spec.stages {
        let stage = s.name.clone();
        let at = std::mem::take(&mut s.matrix_refs);
        let places: HashMap<(&str, &str), Pos> = at.iter().map(|(axis, text, p)| ((axis.as_str(), text.as_str()), *p)).collect();
        for a in &mut s.matrix {
            // A value not in the file came from `--set`.
            let pos_of = |v: &str| places.get(&(a.name.as_str(), v)).copied().unwrap_or(COMMAND_LINE);
            for values in [&mut a.values, &mut a.declared] {
                if !values.iter().any(|v| matches!(v, Value::Str(t) if t.contains("${"))) {
                    continue;
                }
                let mut out = Vec::with_capacity(values.len());
                for v in values.iter() {
                    let Value::Str(text) = v else {
                        out.push(v.clone());
                        continue;
                    };
                    match substitute(v, &globals, Scope::Matrix) {
                        Ok(Value::List(_) | Value::Null) => err(
                            d,
                            pos_of(text),
                            format!("matrix axis `{}` of stage `{stage}`: `{text}` is not one value", a.name),
                            Some("a matrix value is one number, string or bool: refer to a param that holds one".into()),
                        ),
                        Ok(r) => out.push(r),
                        Err(r) => err(d, pos_of(text), format!("matrix axis `{}` of stage `{stage}`: {}", a.name, r.message), Some(r.hint)),
                    }
                }
                match crate::value::canonical_axis(&out) {
                    Ok(v) => *values = v,
                    Err(m) => {
                        err(
                            d,
                            a.pos,
                            format!("matrix axis `{}` of stage `{stage}` {m} once its references are resolved", a.name),
                            Some("each value names one grid cell: remove the duplicate".into()),
                        );
                        *values = out;
                    }
                }
            }
        }
        s.matrix_refs = at;
    }
}

fn entry_value(e: &Entry, d: &mut Diagnostics) -> Option<Value> {
    let v = e.value.to_value();
    if v.is_none() {
        d.error(
            e.value.pos,
            format!("`{}` must be a scalar or a list, found a mapping", e.key),
            Some("quote text that holds `: ` or `{`, e.g. `\"echo a: b\"`; a param's value is a number, string, bool or list".into()),
        );
    }
    v
}

fn at(pos: Pos) -> Option<Pos> {
    (pos != COMMAND_LINE).then_some(pos)
}

fn err(d: &mut Diagnostics, pos: Pos, message: String, hint: Option<String>) {
    d.push(super::diag::Diagnostic { pos: at(pos), message, hint });
}

/// Expands every stage into nodes; errors go to `d` (the returned list is partial when `d` is not empty).
pub fn expand(spec: &PipelineSpec, registry: &Registry, d: &mut Diagnostics) -> Vec<NodeSpec> {
    let mut seen = HashMap::new();
    for s in &spec.stages {
        if let Some(first) = seen.insert(s.name.as_str(), s.pos) {
            d.error(
                s.pos,
                format!("duplicate stage name `{}` (first defined at line {})", s.name, first.line),
                Some("rename one of the two stages".into()),
            );
        }
    }
    let mut globals = BTreeMap::new();
    for e in &spec.params {
        if let Some(v) = entry_value(e, d) {
            globals.insert(e.key.clone(), v);
        }
    }
    let kinds: Vec<Option<Arc<dyn StageKind>>> = spec
        .stages
        .iter()
        .map(|s| {
            let k = registry.get(&s.kind).cloned();
            if k.is_none() && !s.kind.is_empty() {
                let hint = match registry.problem() {
                    Some(problem) => problem.to_string(),
                    None => did_you_mean(&s.kind, registry.names()).unwrap_or_else(|| format!("known kinds: {}", registry.names().join(", "))),
                };
                d.error(s.kind_pos, format!("unknown stage kind `{}`", s.kind), Some(hint));
            }
            k
        })
        .collect();
    for (s, k) in spec.stages.iter().zip(&kinds) {
        if let Some(k) = k {
            check_stage_static(s, k.as_ref(), d);
        }
    }
    let Some(order) = stage_order(spec, d) else { return Vec::new() };

    let mut nodes: Vec<NodeSpec> = Vec::new();
    let mut index = UpstreamIndex::default();
    let mut stage_nodes: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut stage_axes: HashMap<&str, Vec<(String, Vec<Value>)>> = HashMap::new();
    // Per stage, each axis's values as run plus those the file declares (an `overrides: when:`
    // may name either; `--set` narrowing an axis must not make the file's own rules errors).
    let mut stage_known: HashMap<&str, Vec<(String, Vec<Value>)>> = HashMap::new();
    for &si in &order {
        let s = &spec.stages[si];
        let Some(kind) = &kinds[si] else { continue };
        // Axes: inherited from plain inputs, then our own.
        let mut axes: Vec<(String, Vec<Value>)> = Vec::new();
        let mut known: Vec<(String, Vec<Value>)> = Vec::new();
        for input in s.inputs.iter().filter(|i| !i.gather) {
            let Source::Output { stage, .. } = &input.source else { continue };
            for (name, values) in stage_known.get(stage.as_str()).into_iter().flatten() {
                if !known.iter().any(|(n, _)| n == name) {
                    known.push((name.clone(), values.clone()));
                }
            }
            for (name, values) in stage_axes.get(stage.as_str()).into_iter().flatten() {
                match axes.iter().find(|(n, _)| n == name) {
                    Some((_, existing)) if existing != values => err(
                        d,
                        input.pos,
                        format!("stage `{}` joins axis `{name}` with different values from its inputs", s.name),
                        Some("declare each matrix axis once upstream, or `gather: true` one of the inputs".into()),
                    ),
                    Some(_) => {}
                    None => axes.push((name.clone(), values.clone())),
                }
            }
        }
        for a in &s.matrix {
            if axes.iter().any(|(n, _)| *n == a.name) {
                err(
                    d,
                    a.pos,
                    format!("matrix axis `{}` of stage `{}` is already inherited from an upstream stage", a.name, s.name),
                    Some("remove it here; the upstream's values already apply".into()),
                );
                continue;
            }
            axes.push((a.name.clone(), a.values.clone()));
            let mut values = a.values.clone();
            values.extend(a.declared.iter().filter(|d| !a.values.iter().any(|v| same_value(v, d))).cloned());
            known.push((a.name.clone(), values));
        }
        let mut combos: Vec<Vec<(String, Value)>> = vec![Vec::new()];
        for (name, values) in &axes {
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    values.iter().map(move |v| {
                        let mut c = c.clone();
                        c.push((name.clone(), v.clone()));
                        c
                    })
                })
                .collect();
        }
        check_overrides(s, &known, d);
        stage_axes.insert(s.name.as_str(), axes);
        stage_known.insert(s.name.as_str(), known);
        let mut mine = Vec::new();
        for coords in combos {
            if let Some(n) = expand_node(&mut index, s, kind, coords, &globals, &nodes, &stage_nodes, d) {
                mine.push(nodes.len());
                nodes.push(n);
            }
        }
        stage_nodes.insert(s.name.as_str(), mine);
    }
    check_identity_and_publish(spec, &nodes, d);
    nodes
}

/// A publish destination as a normalised path relative to the workspace: a path ending in `/` is a
/// folder (the output keeps its file name there). Errors for empty, absolute or `..` paths, which
/// would write outside the workspace.
pub fn publish_dest(raw: &str, file: &str) -> Result<PathBuf, String> {
    use std::path::Component;
    let joined = if raw.ends_with('/') { format!("{raw}{file}") } else { raw.to_string() };
    let mut out = PathBuf::new();
    for c in std::path::Path::new(&joined).components() {
        match c {
            Component::Normal(p) if p.len() > MAX_NAME_BYTES => {
                return Err(format!(
                    "`{}` holds a name of {} bytes (`{}`); each folder or file name may be at most {MAX_NAME_BYTES}",
                    short(raw),
                    p.len(),
                    short(&p.to_string_lossy())
                ))
            }
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => return Err(format!("`{raw}` leaves the workspace (`..`)")),
            Component::RootDir | Component::Prefix(_) => return Err(format!("`{raw}` is absolute; pipe only writes inside the workspace")),
        }
    }
    if out.as_os_str().is_empty() {
        return Err("the destination is empty".into());
    }
    Ok(out)
}

/// The longest output name or published path component, in bytes: file systems allow 255 bytes
/// per name, and the store writes an output beside temporary names longer than its own.
pub const MAX_NAME_BYTES: usize = 200;

/// `s`, or its first 40 characters and `…` when longer than 60 (a message stays readable).
fn short(s: &str) -> String {
    if s.chars().count() <= 60 {
        return s.to_string();
    }
    format!("{}…", s.chars().take(40).collect::<String>())
}

/// How to write a kind's outputs, for errors about them: the `outputs` param's help where the kind
/// has one (the `command` kind), else the kind's params.
fn outputs_hint(specs: &[crate::stage::ParamSpec]) -> String {
    match specs.iter().find(|p| p.name == "outputs") {
        Some(_) => format!("list plain file names under `outputs`, e.g. `outputs: [model.bin, scores.csv]`: no `/`, not starting with `.`, each once, at most {MAX_NAME_BYTES} bytes"),
        None => format!("check the stage's params: {}", specs.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")),
    }
}

/// Where a node's `outputs` param is written: the list item `pick` chooses, else the entry (the
/// matching override's, or the stage's), else the stage.
fn outputs_pos(s: &StageSpec, coords: &[(String, Value)], pick: impl Fn(&str) -> bool) -> Pos {
    let entry = s
        .overrides
        .iter()
        .rev()
        .filter(|o| override_applies(o, coords))
        .find_map(|o| o.params.iter().find(|e| e.key == "outputs"))
        .or_else(|| s.params.iter().find(|e| e.key == "outputs"));
    let Some(e) = entry else { return s.pos };
    if e.pos == COMMAND_LINE {
        return COMMAND_LINE;
    }
    match &e.value.kind {
        NodeKind::Seq(items) => items.iter().find(|it| it.as_str().is_some_and(&pick)).map_or(e.value.pos, |it| it.pos),
        _ => e.value.pos,
    }
}

/// A workspace path in the form `publish_dest` gives (`./a//b` -> `a/b`), for comparisons.
fn lexical(p: &std::path::Path) -> PathBuf {
    p.components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect()
}

/// Whole-pipeline checks: node ids unique by their printed form; no two nodes publish one path;
/// no `{file: PATH}` input reads what a stage publishes (it would have no edge to that stage, so a
/// run would read the previous run's file).
fn check_identity_and_publish(spec: &PipelineSpec, nodes: &[NodeSpec], d: &mut Diagnostics) {
    let stage_of = |name: &str| spec.stages.iter().find(|s| s.name == name);
    let mut ids: HashMap<&str, &NodeSpec> = HashMap::with_capacity(nodes.len());
    // (Two stages of one name are reported as such, where the file repeats the key.)
    let repeated = |stage: &str| spec.stages.iter().filter(|s| s.name == stage).count() > 1;
    for n in nodes {
        if ids.insert(n.id.as_str(), n).is_some() && !repeated(&n.stage) {
            let pos = stage_of(&n.stage).map(|s| s.pos).unwrap_or(COMMAND_LINE);
            err(
                d,
                pos,
                format!("two nodes of stage `{}` print as `{}`", n.stage, n.id),
                Some("matrix values holding `,`, `=` or `]` make node ids ambiguous: rename them".into()),
            );
        }
    }
    let mut published: HashMap<PathBuf, (&NodeSpec, &str)> = HashMap::new();
    for n in nodes {
        for (output, dest) in &n.publish {
            if let Some((first, first_out)) = published.insert(dest.clone(), (n, output.as_str())) {
                let pos = stage_of(&n.stage).and_then(|s| s.publish.iter().find(|e| e.key == *output)).map(|e| e.value.pos).unwrap_or(COMMAND_LINE);
                let hint = if first.stage == n.stage {
                    format!(
                        "put a matrix value in the path, e.g. `results/${{matrix.AXIS}}/{}`",
                        dest.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default()
                    )
                } else {
                    "publish each output to its own path".to_string()
                };
                err(d, pos, format!("`{}` is published by both {} ({first_out}) and {} ({output})", dest.display(), first.id, n.id), Some(hint));
                published.insert(dest.clone(), (first, first_out));
            }
        }
    }
    for n in nodes {
        for (name, refs) in &n.inputs {
            for r in refs {
                let InputRef::File(p) = r else { continue };
                let Some((by, output)) = published.get(&lexical(p)) else { continue };
                let pos = stage_of(&n.stage).and_then(|s| s.inputs.iter().find(|i| i.name == *name)).map(|i| i.pos).unwrap_or(COMMAND_LINE);
                err(
                    d,
                    pos,
                    format!("input `{name}` of stage `{}` reads `{}`, which {} publishes", n.stage, p.display(), by.id),
                    Some(format!("read it from the store, so the run orders the two: `{name}: {}.{output}`", by.stage)),
                );
            }
        }
    }
}

/// Whether a grid value equals a `when` value (numbers by value: `when: {mu2: 1}` matches 1.0).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn override_applies(o: &Override, coords: &[(String, Value)]) -> bool {
    o.when.iter().all(|(axis, _, values)| coords.iter().any(|(k, v)| k == axis && values.iter().any(|w| same_value(v, w))))
}

/// Each `when` names an axis the stage's nodes have and values that axis takes in the file or on
/// the command line (`axes`: both), so an override never silently matches nothing (a typo such as
/// `cifar-10`), while `--set` narrowing an axis leaves the file's own rules valid.
fn check_overrides(s: &StageSpec, axes: &[(String, Vec<Value>)], d: &mut Diagnostics) {
    for o in &s.overrides {
        for (axis, pos, values) in &o.when {
            let Some((_, have)) = axes.iter().find(|(n, _)| n == axis) else {
                let names: Vec<&str> = axes.iter().map(|(n, _)| n.as_str()).collect();
                let hint = did_you_mean(axis, names.iter().copied()).unwrap_or_else(|| {
                    if names.is_empty() {
                        format!("stage `{}` has no matrix axes", s.name)
                    } else {
                        format!("axes of stage `{}`: {}", s.name, names.join(", "))
                    }
                });
                err(d, *pos, format!("override of stage `{}`: no matrix axis `{axis}`", s.name), Some(hint));
                continue;
            };
            for v in values.iter().filter(|v| !have.iter().any(|h| same_value(h, v))) {
                let list: Vec<String> = have.iter().map(|h| h.to_string()).collect();
                let hint = did_you_mean(&v.to_string(), list.iter().map(String::as_str))
                    .unwrap_or_else(|| format!("axis `{axis}` takes: {}", list.join(", ")));
                err(d, *pos, format!("override of stage `{}`: `{axis}` never takes the value {v}, so it would apply to no node", s.name), Some(hint));
            }
        }
    }
}

/// Checks that do not depend on matrix coordinates: param names, input names, required inputs.
fn check_stage_static(s: &StageSpec, kind: &dyn StageKind, d: &mut Diagnostics) {
    let specs = kind.params();
    let names: Vec<&str> = specs.iter().map(|p| p.name.as_str()).collect();
    for e in s.params.iter().chain(s.overrides.iter().flat_map(|o| &o.params)) {
        if !names.contains(&e.key.as_str()) {
            let hint = did_you_mean(&e.key, names.iter().copied()).unwrap_or_else(|| format!("params of `{}`: {}", kind.name(), names.join(", ")));
            err(d, e.pos, format!("unknown param `{}` for stage kind `{}`", e.key, kind.name()), Some(hint));
        }
    }
    if let InputDecl::Named(decl) = kind.inputs() {
        let allowed: Vec<&str> = decl.iter().map(|(n, _)| n.as_str()).collect();
        for i in &s.inputs {
            if !allowed.contains(&i.name.as_str()) {
                let hint = did_you_mean(&i.name, allowed.iter().copied()).unwrap_or_else(|| {
                    format!("inputs of `{}`: {}", kind.name(), if allowed.is_empty() { "none".into() } else { allowed.join(", ") })
                });
                d.error(i.pos, format!("unknown input `{}` for stage kind `{}`", i.name, kind.name()), Some(hint));
            }
        }
        for (n, required) in decl {
            if required && !s.inputs.iter().any(|i| i.name == n) {
                d.error(s.pos, format!("stage `{}` is missing required input `{n}`", s.name), Some(format!("add `inputs: {{{n}: STAGE.OUTPUT}}`")));
            }
        }
    }
}

/// Upstream nodes by their coordinates on the axes shared with a downstream node, built once per
/// (stage, shared axes): matching is then a hash lookup, not a scan (grids of 10,000+ nodes).
#[derive(Default)]
struct UpstreamIndex {
    by_axes: HashMap<(String, Vec<String>), HashMap<String, Vec<usize>>>,
}

impl UpstreamIndex {
    fn matching(&mut self, stage: &str, ups: &[usize], nodes: &[NodeSpec], coords: &[(String, Value)]) -> Vec<usize> {
        let Some(&first) = ups.first() else { return Vec::new() };
        let shared: Vec<String> = nodes[first].coords.iter().map(|(k, _)| k.clone()).filter(|k| coords.iter().any(|(c, _)| c == k)).collect();
        let key_of = |c: &[(String, Value)]| -> String {
            shared.iter().map(|a| c.iter().find(|(k, _)| k == a).map(|(_, v)| format!("{a}={v:?};")).unwrap_or_default()).collect()
        };
        let table = self.by_axes.entry((stage.to_string(), shared.clone())).or_insert_with(|| {
            let mut t: HashMap<String, Vec<usize>> = HashMap::new();
            for &u in ups {
                t.entry(key_of(&nodes[u].coords)).or_default().push(u);
            }
            t
        });
        table.get(&key_of(coords)).cloned().unwrap_or_default()
    }
}

#[allow(clippy::too_many_arguments)]
fn expand_node(
    index: &mut UpstreamIndex,
    s: &StageSpec,
    kind: &Arc<dyn StageKind>,
    coords: Vec<(String, Value)>,
    globals: &BTreeMap<String, Value>,
    nodes: &[NodeSpec],
    stage_nodes: &HashMap<&str, Vec<usize>>,
    d: &mut Diagnostics,
) -> Option<NodeSpec> {
    let before = d.items.len();
    let specs = kind.params();
    let mut params = BTreeMap::new();
    for p in &specs {
        // Precedence: `--set` (the command line), then the last matching override, then `params`.
        let plain = s.params.iter().find(|e| e.key == p.name);
        let explicit = plain
            .filter(|e| e.pos == COMMAND_LINE)
            .or_else(|| s.overrides.iter().rev().filter(|o| override_applies(o, &coords)).find_map(|o| o.params.iter().find(|e| e.key == p.name)))
            .or(plain);
        let raw = match explicit {
            Some(e) => {
                let v = match &e.typed {
                    // `--set stage.name=0.50` for a string param is the text as typed, never `0.5`.
                    Some(text) if p.ty == ParamType::Str => Value::Str(text.clone()),
                    _ => match entry_value(e, d) {
                        Some(v) => v,
                        None => continue,
                    },
                };
                match substitute(&v, globals, Scope::Node(&coords)) {
                    Ok(v) => Some((v, e.value.pos)),
                    Err(r) => {
                        err(d, e.value.pos, format!("param `{}` of stage `{}`: {}", p.name, s.name, r.message), Some(r.hint));
                        continue;
                    }
                }
            }
            // An axis of the stage's OWN matrix binds a param of the same name. (Inherited axes do
            // not: a `method` axis upstream must not silently set this stage's `method`; write
            // `param: "${matrix.AXIS}"` to pass one on.)
            None => coords
                .iter()
                .find(|(k, _)| **k == p.name && s.matrix.iter().any(|a| a.name == *k))
                .map(|(_, v)| (v.clone(), s.pos))
                .or(p.default.clone().map(|v| (v, s.pos))),
        };
        let Some((v, pos)) = raw else { continue };
        if v == Value::Null && p.default == Some(Value::Null) {
            params.insert(p.name.to_string(), Value::Null);
            continue;
        }
        // `--set stage.name=true` for a string param means the string.
        let v = match (&p.ty, &v) {
            (ParamType::Str, Value::Bool(_) | Value::Int(_) | Value::Float(_)) if pos == COMMAND_LINE => Value::Str(v.to_string()),
            _ => v,
        };
        match p.ty.check(&v) {
            Ok(v) => {
                let out_of_range = p.range.zip(v.as_f64()).and_then(|(r, x)| r.violation(x));
                if let Some(want) = out_of_range {
                    err(
                        d,
                        pos,
                        format!("param `{}` of stage `{}`: {v} is out of range; it must be {want}", p.name, s.name),
                        Some(format!("`{}`: {}", p.name, p.help)),
                    );
                    continue;
                }
                params.insert(p.name.to_string(), v);
            }
            Err(m) => err(d, pos, format!("param `{}` of stage `{}`: {m}", p.name, s.name), Some(format!("`{}`: {}", p.name, p.help))),
        }
    }
    for p in specs.iter().filter(|p| p.default.is_none() && !params.contains_key(&p.name)) {
        let given = s.params.iter().any(|e| e.key == p.name)
            || s.overrides.iter().filter(|o| override_applies(o, &coords)).any(|o| o.params.iter().any(|e| e.key == p.name));
        if !given {
            d.error(
                s.pos,
                format!("stage `{}` is missing required param `{}` ({})", s.name, p.name, p.ty),
                Some(format!("`{}`: {}", p.name, p.help)),
            );
        }
    }
    let params = Params(params);
    let id = node_id(&s.name, &coords);
    let outputs = match kind.outputs(&params) {
        Ok(o) => o,
        Err(m) => {
            err(d, outputs_pos(s, &coords, |item| m.contains(&format!("`{item}`"))), format!("stage `{}`: {m}", s.name), Some(outputs_hint(&specs)));
            Vec::new()
        }
    };
    for o in &outputs {
        for name in [&o.name, &o.file] {
            if name.len() > MAX_NAME_BYTES {
                err(
                    d,
                    outputs_pos(s, &coords, |item| item == name),
                    format!(
                        "stage `{}`: output name `{}` is {} bytes long; an output's name may be at most {MAX_NAME_BYTES}",
                        s.name,
                        short(name),
                        name.len()
                    ),
                    Some(format!("shorten it: file systems allow 255 bytes per name, and the store adds to it; {}", outputs_hint(&specs))),
                );
                break;
            }
        }
    }
    let mut inputs = BTreeMap::new();
    for i in &s.inputs {
        let refs = match &i.source {
            Source::File(path) => match substitute(&Value::Str(path.clone()), globals, Scope::Node(&coords)) {
                Ok(Value::Str(p)) => vec![InputRef::File(PathBuf::from(p))],
                Ok(_) => vec![InputRef::File(PathBuf::from(path))],
                Err(r) => {
                    err(d, i.pos, format!("input `{}`: {}", i.name, r.message), Some(r.hint));
                    continue;
                }
            },
            Source::Output { stage, output } => {
                let ups = stage_nodes.get(stage.as_str()).map(Vec::as_slice).unwrap_or(&[]);
                let matching = index.matching(stage, ups, nodes, &coords);
                if let Some(&u) = matching.first() {
                    if !nodes[u].outputs.iter().any(|o| o.name == *output) {
                        let outs: Vec<&str> = nodes[u].outputs.iter().map(|o| o.name.as_str()).collect();
                        let hint = did_you_mean(output, outs.iter().copied())
                            .unwrap_or_else(|| format!("outputs of `{stage}`: {}", if outs.is_empty() { "none".into() } else { outs.join(", ") }));
                        err(d, i.pos, format!("input `{}` of stage `{}`: stage `{stage}` has no output `{output}`", i.name, s.name), Some(hint));
                        continue;
                    }
                }
                if matching.is_empty() {
                    if !ups.is_empty() {
                        err(
                            d,
                            i.pos,
                            format!("input `{}` of stage `{}` matches no node of `{stage}` for {id}", i.name, s.name),
                            Some("the matrix values of the two stages do not overlap".into()),
                        );
                    }
                    continue;
                }
                matching.into_iter().map(|u| InputRef::Node { node: u, output: output.clone() }).collect()
            }
        };
        inputs.insert(i.name.clone(), refs);
    }
    let mut publish = Vec::new();
    for e in &s.publish {
        if !outputs.iter().any(|o| o.name == e.key) {
            let outs: Vec<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
            err(d, e.pos, format!("publish: stage `{}` has no output `{}`", s.name, e.key), Some(format!("outputs: {}", outs.join(", "))));
            continue;
        }
        let raw = Value::Str(e.value.as_str().unwrap_or_default().to_string());
        let file = outputs.iter().find(|o| o.name == e.key).map(|o| o.file.as_str()).unwrap_or_default();
        match substitute(&raw, globals, Scope::Node(&coords)) {
            Ok(Value::Str(p)) => match publish_dest(&p, file) {
                Ok(dest) => publish.push((e.key.clone(), dest)),
                Err(m) => err(
                    d,
                    e.value.pos,
                    format!("publish `{}` of stage `{}`: {m}", e.key, s.name),
                    Some(format!(
                        "publish to a path inside the workspace (relative, no `..`, names of at most {MAX_NAME_BYTES} bytes), e.g. `results/table.parquet` or a folder `Deliverables/`"
                    )),
                ),
            },
            Ok(_) => {}
            Err(r) => err(d, e.value.pos, format!("publish `{}`: {}", e.key, r.message), Some(r.hint)),
        }
    }
    (d.items.len() == before).then(|| NodeSpec {
        id,
        stage: s.name.clone(),
        kind: kind.clone(),
        coords,
        params,
        inputs,
        partial_inputs: s.inputs.iter().filter(|i| i.allow_missing).map(|i| i.name.clone()).collect(),
        outputs,
        publish,
    })
}

#[cfg(test)]
mod tests {
    //! Grid expansion from pipeline text to nodes, with test kinds: no processes, no libtorch.
    use std::path::Path;

    use super::*;
    use crate::stage::{ParamSpec, RunContext, StageError};

    /// A kind with a float `lr`, an int `seed` and a string `tag`, each with a default, and one
    /// optional input (so it can sit downstream of itself).
    struct Probe(&'static str);

    impl StageKind for Probe {
        fn name(&self) -> &str {
            self.0
        }
        fn version(&self) -> u32 {
            1
        }
        fn params(&self) -> Vec<ParamSpec> {
            vec![
                ParamSpec::optional("lr", ParamType::Float, Value::Float(0.01), "learning rate"),
                ParamSpec::optional("seed", ParamType::Int, Value::Int(0), "seed"),
                ParamSpec::optional("tag", ParamType::Str, Value::Str("none".into()), "a label"),
            ]
        }
        fn inputs(&self) -> InputDecl {
            InputDecl::named(&[("data", false)])
        }
        fn outputs(&self, _params: &Params) -> Result<Vec<OutputSpec>, String> {
            Ok(vec![OutputSpec::new("out", "out.txt")])
        }
        fn run(&self, _ctx: &RunContext) -> Result<(), StageError> {
            Ok(())
        }
    }

    fn registry() -> Registry {
        let mut r = Registry::new();
        r.register(Probe("probe")).register(Probe("sink"));
        r
    }

    /// The pipeline's nodes, or the rendered diagnostics.
    fn expand_text(src: &str, set: &[(&str, &str)]) -> Result<Vec<NodeSpec>, String> {
        let set: Vec<(String, String)> = set.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        super::super::parse(Path::new("t.yaml"), src, &registry(), &set).map(|p| p.nodes).map_err(|e| e.to_string())
    }

    fn nodes(src: &str, set: &[(&str, &str)]) -> Vec<NodeSpec> {
        expand_text(src, set).unwrap_or_else(|e| panic!("pipeline did not expand: {e}\n{src}"))
    }

    fn lr(n: &NodeSpec) -> f64 {
        n.params.get("lr").and_then(Value::as_f64).unwrap_or_else(|| panic!("{} has no lr", n.id))
    }

    /// Where the stage's own `lr` comes from, besides `--set` and `overrides:`.
    #[derive(Clone, Copy, Debug)]
    enum StageParam {
        None,
        /// `params: {lr: 0.3}`.
        Literal,
        /// `params: {lr: "${params.lr}"}`, the pipeline's `lr` being 0.2.
        Pipeline,
    }

    /// One param set at every level in every combination; each node gets the value of the
    /// highest level present for it: `--set stage.lr` (0.5) > a matching `overrides:` entry (0.4,
    /// `ds=a` only) > the stage's `params` (0.3 as written, or 0.2 through `${params.lr}`) > the
    /// stage's own matrix axis `lr` (0.1) > the kind's default (0.01).
    #[test]
    fn a_param_takes_the_value_of_its_highest_level() {
        for set in [false, true] {
            for overridden in [false, true] {
                for stage in [StageParam::None, StageParam::Literal, StageParam::Pipeline] {
                    for axis in [false, true] {
                        let mut src = String::from("params: {lr: 0.2}\nstages:\n  probe:\n    kind: probe\n");
                        src += if axis { "    matrix: {ds: [a, b], lr: [0.1]}\n" } else { "    matrix: {ds: [a, b]}\n" };
                        match stage {
                            StageParam::None => {}
                            StageParam::Literal => src += "    params: {lr: 0.3}\n",
                            StageParam::Pipeline => src += "    params: {lr: \"${params.lr}\"}\n",
                        }
                        if overridden {
                            src += "    overrides: [{when: {ds: a}, params: {lr: 0.4}}]\n";
                        }
                        let set_args: &[(&str, &str)] = if set { &[("probe.lr", "0.5")] } else { &[] };
                        let got = nodes(&src, set_args);
                        assert_eq!(got.len(), 2, "{src}");
                        for n in &got {
                            let ds_a = n.coords.iter().any(|(k, v)| k == "ds" && *v == Value::Str("a".into()));
                            let want = if set {
                                0.5
                            } else if overridden && ds_a {
                                0.4
                            } else {
                                match stage {
                                    StageParam::Literal => 0.3,
                                    StageParam::Pipeline => 0.2,
                                    StageParam::None if axis => 0.1,
                                    StageParam::None => 0.01,
                                }
                            };
                            assert_eq!(lr(n), want, "{} with --set {set}, overrides {overridden}, params {stage:?}, axis {axis}", n.id);
                        }
                    }
                }
            }
        }
    }

    /// Of several matching overrides the last wins; one that does not match changes nothing.
    #[test]
    fn the_last_matching_override_wins() {
        let src = "stages:\n  probe:\n    kind: probe\n    matrix: {ds: [a, b], seed: [1, 2]}\n    overrides:\n      - {when: {ds: a}, params: {lr: 0.4}}\n      - {when: {ds: a, seed: 2}, params: {lr: 0.6}}\n      - {when: {ds: b, seed: 9}, params: {lr: 0.9}}\n";
        let err = expand_text(src, &[]).unwrap_err();
        assert!(err.contains("never takes the value 9"), "{err}");
        let src = src.replace("seed: 9", "seed: 1");
        let got: Vec<(String, f64)> = nodes(&src, &[]).iter().map(|n| (n.id.clone(), lr(n))).collect();
        let want = [("probe[ds=a,seed=1]", 0.4), ("probe[ds=a,seed=2]", 0.6), ("probe[ds=b,seed=1]", 0.9), ("probe[ds=b,seed=2]", 0.01)];
        assert_eq!(got, want.map(|(id, v)| (id.to_string(), v)));
    }

    /// `--set params.x` changes what `${params.x}` gives every param that refers to it, and only
    /// those: a stage's literal value still wins, and `--set stage.param` still wins over it.
    #[test]
    fn set_params_reaches_only_the_references() {
        let src = "params: {lr: 0.2}\nstages:\n  probe:\n    kind: probe\n    params: {lr: \"${params.lr}\"}\n  sink:\n    kind: sink\n    params: {lr: 0.3}\n";
        let lrs = |set: &[(&str, &str)]| nodes(src, set).iter().map(|n| (n.id.clone(), lr(n))).collect::<Vec<_>>();
        let pair = |a: f64, b: f64| vec![("probe".to_string(), a), ("sink".to_string(), b)];
        assert_eq!(lrs(&[]), pair(0.2, 0.3));
        assert_eq!(lrs(&[("params.lr", "0.25")]), pair(0.25, 0.3));
        assert_eq!(lrs(&[("params.lr", "0.25"), ("probe.lr", "0.5")]), pair(0.5, 0.3));
    }

    /// A stage's axes expand to one node per combination, in axis order, named by their
    /// coordinates; a downstream stage inherits the upstream's axes before its own and reads the
    /// upstream node with the same coordinates. Only the stage's OWN axis binds a param of its name.
    #[test]
    fn matrix_axes_expand_to_node_ids_and_coordinates() {
        let src = "stages:\n  probe:\n    kind: probe\n    matrix: {ds: [a, b], seed: [1, 2]}\n  sink:\n    kind: sink\n    matrix: {lr: [0, 0.5]}\n    inputs: {data: probe.out}\n";
        let got = nodes(src, &[]);
        let ids: Vec<&str> = got.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "probe[ds=a,seed=1]",
                "probe[ds=a,seed=2]",
                "probe[ds=b,seed=1]",
                "probe[ds=b,seed=2]",
                "sink[ds=a,seed=1,lr=0.0]",
                "sink[ds=a,seed=1,lr=0.5]",
                "sink[ds=a,seed=2,lr=0.0]",
                "sink[ds=a,seed=2,lr=0.5]",
                "sink[ds=b,seed=1,lr=0.0]",
                "sink[ds=b,seed=1,lr=0.5]",
                "sink[ds=b,seed=2,lr=0.0]",
                "sink[ds=b,seed=2,lr=0.5]",
            ]
        );
        let last = &got[11];
        let coords = vec![("ds".to_string(), Value::Str("b".into())), ("seed".to_string(), Value::Int(2)), ("lr".to_string(), Value::Float(0.5))];
        assert_eq!(last.coords, coords);
        assert_eq!(node_id("sink", &last.coords), last.id);
        assert_eq!(last.inputs["data"], vec![InputRef::Node { node: 3, output: "out".into() }]);
        // The probe's own `seed` axis sets its `seed`; the sink inherits the axis but keeps its default.
        assert_eq!(got[3].params.get("seed"), Some(&Value::Int(2)));
        assert_eq!(last.params.get("seed"), Some(&Value::Int(0)));
        assert_eq!(lr(last), 0.5);
        assert_eq!(got[0].params.get("tag"), Some(&Value::Str("none".into())));
    }

    /// `--set stage.matrix.AXIS` narrows (or adds) an axis; the file's overrides for the values
    /// narrowed away stay valid.
    #[test]
    fn set_matrix_narrows_an_axis() {
        let src = "stages:\n  probe:\n    kind: probe\n    matrix: {ds: [a, b]}\n    overrides: [{when: {ds: a}, params: {lr: 0.4}}]\n";
        let got = nodes(src, &[("probe.matrix.ds", "[b]"), ("probe.matrix.seed", "[3, 4]")]);
        let ids: Vec<(&str, f64, Option<&Value>)> = got.iter().map(|n| (n.id.as_str(), lr(n), n.params.get("seed"))).collect();
        assert_eq!(ids, [("probe[ds=b,seed=3]", 0.01, Some(&Value::Int(3))), ("probe[ds=b,seed=4]", 0.01, Some(&Value::Int(4)))]);
    }
}
