//! The node DAG (petgraph): built from expanded nodes, then sealed; only a sealed graph runs.

use std::collections::HashMap;
use std::fmt::Write as _;

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;

use crate::config::{InputRef, NodeSpec};

/// A graph still being built.
pub struct GraphBuilder {
    g: DiGraph<NodeSpec, String>,
}

/// A sealed, acyclic graph with its topological order.
pub struct Graph {
    g: DiGraph<NodeSpec, String>,
    order: Vec<NodeIndex>,
    by_id: HashMap<String, NodeIndex>,
}

/// The nodes' dependencies form a cycle, so the graph cannot run.
#[derive(Debug, thiserror::Error)]
#[error("dependency cycle through nodes: {}", nodes.join(" -> "))]
pub struct CycleError {
    /// Ids of the nodes on the cycle.
    pub nodes: Vec<String>,
}

impl GraphBuilder {
    /// Adds every node and one edge per (input, upstream node); labels are input names.
    pub fn from_nodes(nodes: Vec<NodeSpec>) -> Self {
        let mut g = DiGraph::with_capacity(nodes.len(), nodes.len());
        let idx: Vec<NodeIndex> = nodes.iter().map(|n| g.add_node(n.clone())).collect();
        for (i, n) in nodes.iter().enumerate() {
            for (name, refs) in &n.inputs {
                for r in refs {
                    if let InputRef::Node { node, .. } = r {
                        g.add_edge(idx[*node], idx[i], name.clone());
                    }
                }
            }
        }
        GraphBuilder { g }
    }

    /// Checks that the graph is acyclic and fixes its topological order (the order the nodes were
    /// added in, when that is one). Errors with the nodes of a cycle.
    pub fn seal(self) -> Result<Graph, CycleError> {
        let g = self.g;
        // Nodes are expanded stage by stage in dependency order, so index order is usually already
        // topological; keep it (stable, file-ordered output) and fall back to a sort otherwise.
        let forward = g.edge_indices().all(|e| g.edge_endpoints(e).is_some_and(|(a, b)| a < b));
        let order = if forward { Ok(g.node_indices().collect()) } else { petgraph::algo::toposort(&g, None) };
        let order = order.map_err(|_| {
            let scc = petgraph::algo::tarjan_scc(&g).into_iter().find(|c| c.len() > 1).unwrap_or_default();
            CycleError { nodes: scc.iter().map(|n| g[*n].id.clone()).collect() }
        })?;
        let by_id = g.node_indices().map(|i| (g[i].id.clone(), i)).collect();
        Ok(Graph { g, order, by_id })
    }
}

impl Graph {
    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.g.node_count()
    }
    /// Whether the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.g.node_count() == 0
    }
    /// Nodes in dependency order.
    pub fn order(&self) -> &[NodeIndex] {
        &self.order
    }
    /// The node at index `i`; panics when `i` is not a node of this graph.
    pub fn node(&self, i: NodeIndex) -> &NodeSpec {
        &self.g[i]
    }
    /// The index of the node whose id is `id`, if any.
    pub fn find(&self, id: &str) -> Option<NodeIndex> {
        self.by_id.get(id).copied()
    }
    /// Index of the node that expanded list entry `i` became (they are added in order).
    pub fn index_of(&self, expanded: usize) -> NodeIndex {
        NodeIndex::new(expanded)
    }
    /// The nodes that read an output of node `i`, each once.
    pub fn dependents(&self, i: NodeIndex) -> impl Iterator<Item = NodeIndex> + '_ {
        let mut seen = Vec::new();
        self.g.neighbors_directed(i, Direction::Outgoing).filter(move |n| {
            if seen.contains(n) {
                false
            } else {
                seen.push(*n);
                true
            }
        })
    }
    /// The nodes whose outputs node `i` reads, each once, in index order.
    pub fn dependencies(&self, i: NodeIndex) -> Vec<NodeIndex> {
        let mut v: Vec<NodeIndex> = self.g.neighbors_directed(i, Direction::Incoming).collect();
        v.sort();
        v.dedup();
        v
    }

    /// The stage-level graph: one vertex per stage (with its node count), one edge per (upstream
    /// stage, stage, input), in the same formats as [`Graph::render`].
    pub fn render_stages(&self, format: RenderFormat) -> String {
        let mut stages: Vec<(String, String, usize)> = Vec::new();
        for &i in &self.order {
            let n = &self.g[i];
            match stages.iter_mut().find(|(s, _, _)| *s == n.stage) {
                Some(s) => s.2 += 1,
                None => stages.push((n.stage.clone(), n.kind.name().to_string(), 1)),
            }
        }
        let pos = |s: &str| stages.iter().position(|x| x.0 == s).unwrap_or(0);
        let mut edges: Vec<(usize, usize, String)> = self
            .g
            .edge_indices()
            .filter_map(|e| self.g.edge_endpoints(e).map(|(a, b)| (pos(&self.g[a].stage), pos(&self.g[b].stage), self.g[e].clone())))
            .collect();
        edges.sort();
        edges.dedup();
        let mut out = String::new();
        match format {
            RenderFormat::Text => {
                for (i, (s, kind, n)) in stages.iter().enumerate() {
                    let ups: Vec<String> = edges.iter().filter(|e| e.1 == i).map(|e| format!("{}.{}", stages[e.0].0, e.2)).collect();
                    let arrow = if ups.is_empty() { String::new() } else { format!(" <- {}", ups.join(", ")) };
                    let _ = writeln!(out, "{s} ({kind}, {n} node{}){arrow}", if *n == 1 { "" } else { "s" });
                }
            }
            RenderFormat::Dot => {
                out.push_str("digraph stages {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n");
                for (i, (s, kind, n)) in stages.iter().enumerate() {
                    let _ = writeln!(out, "  s{i} [label=\"{s}\\n{kind} x{n}\"];");
                }
                for (a, b, label) in &edges {
                    let _ = writeln!(out, "  s{a} -> s{b} [label=\"{label}\"];");
                }
                out.push_str("}\n");
            }
            RenderFormat::Mermaid => {
                out.push_str("flowchart LR\n");
                for (i, (s, kind, n)) in stages.iter().enumerate() {
                    let _ = writeln!(out, "  s{i}[\"{s} ({kind} x{n})\"]");
                }
                for (a, b, label) in &edges {
                    let _ = writeln!(out, "  s{a} -->|{label}| s{b}");
                }
            }
            RenderFormat::Json => {
                let v = serde_json::json!({
                    "stages": stages.iter().map(|(s, k, n)| serde_json::json!({"stage": s, "kind": k, "nodes": n})).collect::<Vec<_>>(),
                    "edges": edges.iter().map(|(a, b, l)| serde_json::json!({"from": stages[*a].0, "to": stages[*b].0, "input": l})).collect::<Vec<_>>(),
                });
                out = serde_json::to_string_pretty(&v).expect("serialises") + "\n";
            }
        }
        out
    }

    /// The node graph, nodes in dependency order: `Text` gives one line per node with its kind and
    /// upstream nodes, `Dot` Graphviz, `Mermaid` a flowchart, `Json` nodes and edges; edges are labelled
    /// with input names.
    pub fn render(&self, format: RenderFormat) -> String {
        let mut out = String::new();
        let edges = || {
            let mut e: Vec<(NodeIndex, NodeIndex, &str)> =
                self.g.edge_indices().filter_map(|e| self.g.edge_endpoints(e).map(|(a, b)| (a, b, self.g[e].as_str()))).collect();
            e.sort();
            e.dedup();
            e
        };
        match format {
            RenderFormat::Text => {
                for &i in &self.order {
                    let n = &self.g[i];
                    let deps: Vec<String> = self.dependencies(i).iter().map(|d| self.g[*d].id.clone()).collect();
                    if deps.is_empty() {
                        let _ = writeln!(out, "{} ({})", n.id, n.kind.name());
                    } else {
                        let _ = writeln!(out, "{} ({}) <- {}", n.id, n.kind.name(), deps.join(", "));
                    }
                }
            }
            RenderFormat::Dot => {
                out.push_str("digraph pipeline {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n");
                for &i in &self.order {
                    let _ = writeln!(out, "  n{} [label=\"{}\"];", i.index(), self.g[i].id.replace('"', "\\\""));
                }
                for (a, b, label) in edges() {
                    let _ = writeln!(out, "  n{} -> n{} [label=\"{}\"];", a.index(), b.index(), label);
                }
                out.push_str("}\n");
            }
            RenderFormat::Mermaid => {
                out.push_str("flowchart LR\n");
                for &i in &self.order {
                    let _ = writeln!(out, "  n{}[\"{}\"]", i.index(), self.g[i].id.replace('"', "#quot;"));
                }
                for (a, b, label) in edges() {
                    let _ = writeln!(out, "  n{} -->|{}| n{}", a.index(), label, b.index());
                }
            }
            RenderFormat::Json => {
                let nodes: Vec<serde_json::Value> = self
                    .order
                    .iter()
                    .map(|&i| {
                        let n = &self.g[i];
                        let coords: serde_json::Map<String, serde_json::Value> =
                            n.coords.iter().map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or_default())).collect();
                        serde_json::json!({"id": n.id, "stage": n.stage, "kind": n.kind.name(), "coords": coords})
                    })
                    .collect();
                let edges: Vec<serde_json::Value> =
                    edges().into_iter().map(|(a, b, label)| serde_json::json!({"from": self.g[a].id, "to": self.g[b].id, "input": label})).collect();
                out = serde_json::to_string_pretty(&serde_json::json!({"nodes": nodes, "edges": edges})).expect("serialises") + "\n";
            }
        }
        out
    }
}

/// The formats of [`Graph::render`] and [`Graph::render_stages`] (`pipe dag --format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RenderFormat {
    /// One line per node (or stage) with what it reads from.
    Text,
    /// Graphviz `dot` source.
    Dot,
    /// A Mermaid flowchart.
    Mermaid,
    /// `{"nodes": [{id, stage, kind, coords}], "edges": [{from, to, input}]}`.
    Json,
}
