//! Targets, as DVC and Snakemake users type them: a stage name (`train`) or a node pattern
//! (`train[mu2=0.5]`, `train[dataset=mnist,mu2=0.5]`): partial coordinates match every node of the
//! stage that has them. A run of targets runs them with everything upstream of them (and, with
//! `--downstream`, everything that depends on them).

use crate::config::{InputRef, NodeSpec};
use crate::value::Value;

/// A parsed target: the stage and the coordinates a node must have.
#[derive(Clone, Debug, PartialEq)]
pub struct Pattern {
    /// The stage's name.
    pub stage: String,
    /// `(axis, value)` pairs as typed (`mu2=0.5`); a matching node has every one.
    pub coords: Vec<(String, String)>,
}

/// A target that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetError {
    /// The pattern does not parse (`what` says why).
    Malformed {
        /// The target as typed.
        target: String,
        /// What is wrong with it.
        what: String,
    },
    /// No node matches it; `candidates` names the stage's nodes, or the stages.
    NoMatch {
        /// The target as typed.
        target: String,
        /// What it could have been.
        candidates: String,
    },
}

impl std::fmt::Display for TargetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetError::Malformed { target, what } => write!(f, "target `{target}`: {what}"),
            TargetError::NoMatch { target, .. } => write!(f, "target `{target}` matches no node"),
        }
    }
}

impl std::error::Error for TargetError {}

impl crate::error::Hint for TargetError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            TargetError::Malformed { .. } => "write `STAGE` or `STAGE[AXIS=VALUE,...]`, e.g. `train[mu2=0.5]`".into(),
            TargetError::NoMatch { candidates, .. } => candidates.clone(),
        })
    }
}

impl Pattern {
    /// `stage` or `stage[k=v,...]`. Errors say what is malformed.
    pub fn parse(text: &str) -> Result<Pattern, TargetError> {
        let text = text.trim();
        let (stage, rest) = match text.split_once('[') {
            Some((s, r)) => (s, Some(r)),
            None => (text, None),
        };
        if stage.is_empty() {
            return Err(TargetError::Malformed { target: text.to_string(), what: "it names no stage".into() });
        }
        let mut coords = Vec::new();
        if let Some(rest) = rest {
            let inner =
                rest.strip_suffix(']').ok_or_else(|| TargetError::Malformed { target: text.to_string(), what: "it lacks its closing `]`".into() })?;
            for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (k, v) = part
                    .split_once('=')
                    .ok_or_else(|| TargetError::Malformed { target: text.to_string(), what: format!("`{part}` is not AXIS=VALUE") })?;
                coords.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        Ok(Pattern { stage: stage.to_string(), coords })
    }

    /// Whether `node` is of the stage and has every coordinate (numbers compare by value: `mu2=1`
    /// matches `mu2=1.0`).
    pub fn matches(&self, node: &NodeSpec) -> bool {
        node.stage == self.stage
            && self.coords.iter().all(|(k, want)| {
                node.coords.iter().any(|(ck, v)| {
                    ck == k
                        && match (v, want.parse::<f64>()) {
                            (Value::Int(_) | Value::Float(_), Ok(w)) => v.as_f64() == Some(w),
                            _ => v.to_string() == *want,
                        }
                })
            })
    }
}

/// The nodes the patterns match (indices, ascending). Errors: a malformed pattern, or one matching
/// nothing (with the stage's axes and values, or the stage names, as the hint).
pub fn matching(nodes: &[NodeSpec], patterns: &[String]) -> Result<Vec<usize>, TargetError> {
    let mut hit = vec![false; nodes.len()];
    for text in patterns {
        let p = Pattern::parse(text)?;
        let found: Vec<usize> = (0..nodes.len()).filter(|&i| p.matches(&nodes[i])).collect();
        if found.is_empty() {
            let of_stage: Vec<&NodeSpec> = nodes.iter().filter(|n| n.stage == p.stage).collect();
            let candidates = if of_stage.is_empty() {
                let mut stages: Vec<&str> = nodes.iter().map(|n| n.stage.as_str()).collect();
                stages.dedup();
                format!("no stage `{}`; stages: {}", p.stage, stages.join(", "))
            } else {
                let ids: Vec<&str> = of_stage.iter().take(8).map(|n| n.id.as_str()).collect();
                format!("nodes of `{}`: {}{}", p.stage, ids.join(", "), if of_stage.len() > 8 { ", ..." } else { "" })
            };
            return Err(TargetError::NoMatch { target: text.clone(), candidates });
        }
        for i in found {
            hit[i] = true;
        }
    }
    Ok((0..nodes.len()).filter(|&i| hit[i]).collect())
}

/// The targets with everything upstream (and, with `downstream`, everything that depends on them,
/// with their own upstream), as a node list of its own: input indices renumbered, every other node
/// dropped. Keys do not change: a node's key depends on its upstream, all of which is kept.
pub fn select(nodes: &[NodeSpec], targets: &[usize], downstream: bool) -> Vec<NodeSpec> {
    let n = nodes.len();
    let deps = |i: usize| -> Vec<usize> {
        nodes[i].inputs.values().flatten().filter_map(|r| if let InputRef::Node { node, .. } = r { Some(*node) } else { None }).collect()
    };
    let mut keep = vec![false; n];
    let mut stack: Vec<usize> = targets.to_vec();
    if downstream {
        // Dependents: nodes are listed after their inputs, so one forward pass finds them all.
        let mut below = vec![false; n];
        for &t in targets {
            below[t] = true;
        }
        for i in 0..n {
            if !below[i] && deps(i).iter().any(|&d| below[d]) {
                below[i] = true;
                stack.push(i);
            }
        }
    }
    while let Some(i) = stack.pop() {
        if !std::mem::replace(&mut keep[i], true) {
            stack.extend(deps(i));
        }
    }
    let mut new_index = vec![usize::MAX; n];
    let mut out = Vec::new();
    for i in (0..n).filter(|&i| keep[i]) {
        new_index[i] = out.len();
        out.push(nodes[i].clone());
    }
    for node in &mut out {
        for refs in node.inputs.values_mut() {
            for r in refs.iter_mut() {
                if let InputRef::Node { node, .. } = r {
                    *node = new_index[*node];
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_parse() {
        assert_eq!(Pattern::parse("train").unwrap(), Pattern { stage: "train".into(), coords: vec![] });
        assert_eq!(
            Pattern::parse("train[mu2=0.5, dataset=mnist]").unwrap().coords,
            vec![("mu2".to_string(), "0.5".to_string()), ("dataset".to_string(), "mnist".to_string())]
        );
        assert!(Pattern::parse("train[mu2=0.5").unwrap_err().to_string().contains("closing"));
        assert!(Pattern::parse("train[mu2]").unwrap_err().to_string().contains("AXIS=VALUE"));
        assert!(Pattern::parse("[mu2=1]").unwrap_err().to_string().contains("no stage"));
    }
}
