//! Deciding what is fresh: fingerprints of nodes, cache lookups, and `pipe status` with reasons.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::config::{InputRef, NodeSpec};
use crate::graph::Graph;
use crate::hash::{hash_file, Fingerprint, KEY_VERSION};
use crate::stage::UNKNOWN;
use crate::store::{NodeRecord, ObjectRef, Store, Verify};

/// The outputs of completed nodes, by expanded-node index.
pub type Outputs = Vec<Option<BTreeMap<String, ObjectRef>>>;

/// A node's resolved inputs: paths to read, content hashes, and upstream ids for messages.
pub struct ResolvedInputs {
    /// Input name -> the files to read (store objects or workspace files), in order.
    pub paths: BTreeMap<String, Vec<PathBuf>>,
    /// Input name -> the blake3 hash (hex) of each of those files, in the same order.
    pub hashes: BTreeMap<String, Vec<String>>,
    /// Input name -> where each file comes from: the upstream node's id, or the workspace path.
    pub sources: BTreeMap<String, Vec<String>>,
    /// Input name -> the coordinates (axis -> value) of each upstream node it reads; `file:` inputs add none.
    pub coords: BTreeMap<String, Vec<BTreeMap<String, crate::value::Value>>>,
}

/// Resolves inputs from upstream outputs (which must all be known) and workspace files.
pub fn resolve_inputs(graph: &Graph, node: &NodeSpec, outputs: &Outputs, store: &Store, workspace: &Path) -> Result<ResolvedInputs, String> {
    let mut r = ResolvedInputs { paths: BTreeMap::new(), hashes: BTreeMap::new(), sources: BTreeMap::new(), coords: BTreeMap::new() };
    for (name, refs) in &node.inputs {
        let (mut paths, mut hashes, mut sources, mut coords) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for input in refs {
            match input {
                // A partial (allow_missing) gather runs without upstream nodes that failed.
                InputRef::Node { node: up, .. } if outputs[*up].is_none() && node.partial_inputs.contains(name) => {}
                InputRef::Node { node: up, output } => {
                    let up_node = graph.node(graph.index_of(*up));
                    let up_id = &up_node.id;
                    coords.push(up_node.coords.iter().cloned().collect());
                    let obj =
                        outputs[*up].as_ref().and_then(|o| o.get(output)).ok_or_else(|| format!("upstream {up_id} has no output `{output}`"))?;
                    paths.push(store.object_path(obj));
                    hashes.push(obj.hash.clone());
                    sources.push(up_id.clone());
                }
                InputRef::File(p) => {
                    let path = workspace.join(p);
                    let h = hash_file(&path).map_err(|e| format!("input file {} ({name}): {e}", path.display()))?;
                    paths.push(path.clone());
                    hashes.push(h);
                    sources.push(p.display().to_string());
                }
            }
        }
        r.paths.insert(name.clone(), paths);
        r.hashes.insert(name.clone(), hashes);
        r.sources.insert(name.clone(), sources);
        r.coords.insert(name.clone(), coords);
    }
    Ok(r)
}

/// The node's fingerprint: kind, version, params (less those naming a location), input content
/// hashes, the kind's environment and, for kinds that read them, upstream node ids. An environment
/// value the kind cannot determine here ([`UNKNOWN`]: its data is absent on this machine) takes the
/// value the node's last run recorded (refs of `pipeline`, here or on the remote), as a lock file
/// would: a cache filled elsewhere then still serves this machine.
pub fn fingerprint(node: &NodeSpec, inputs: &ResolvedInputs, store: &Store, pipeline: &str) -> Fingerprint {
    let locations: Vec<String> = node.kind.params().into_iter().filter(|p| p.location).map(|p| p.name).collect();
    let params = node.params.0.iter().filter(|(k, _)| !locations.contains(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut environment = node.kind.environment(&node.params);
    if environment.values().any(|v| v == UNKNOWN) {
        let previous = store.get_ref(pipeline, &node.id).and_then(|k| store.record(&k).ok().flatten());
        if let Some(prev) = previous {
            for (k, v) in environment.iter_mut().filter(|(_, v)| *v == UNKNOWN) {
                if let Some(old) = prev.fingerprint.environment.get(k) {
                    v.clone_from(old);
                }
            }
        }
    }
    let input_nodes = if node.kind.reads_input_identity() { inputs.sources.clone() } else { BTreeMap::new() };
    Fingerprint {
        key_version: KEY_VERSION,
        kind: node.kind.name().to_string(),
        stage_version: node.kind.version(),
        params,
        inputs: inputs.hashes.clone(),
        environment,
        input_nodes,
    }
}

/// Published files of a node whose content is not its output's, and why: missing, holding what
/// pipe published from another run (another `--set`, another version of the file), or edited by
/// hand since pipe wrote it.
pub fn unpublished(node: &NodeSpec, outputs: &BTreeMap<String, ObjectRef>, store: &Store, workspace: &Path) -> Vec<String> {
    let mut r = Vec::new();
    for (name, rel) in &node.publish {
        let Some(obj) = outputs.get(name) else { continue };
        let dest = workspace.join(rel);
        if !dest.exists() {
            r.push(format!("published file {} is missing (`pipe run` restores it)", rel.display()));
        } else if !crate::store::same_content(&dest, obj) {
            let pipes = store.published_hash(&dest).is_some_and(|h| crate::hash::hash_file(&dest).is_ok_and(|now| now == h));
            r.push(if pipes {
                format!("published file {} holds another run's `{name}` (e.g. one with --set); `pipe run` publishes this one", rel.display())
            } else {
                format!(
                    "published file {} differs from the node's output `{name}` and pipe did not write it (edited by hand? `pipe run --overwrite` overwrites it)",
                    rel.display()
                )
            });
        }
    }
    r
}

/// What the store holds for a key.
pub enum Lookup {
    /// The record, with every object present (and, with `fetch`, verified).
    Hit(NodeRecord),
    /// The store holds no record of the key.
    Miss,
    /// The record exists but an object is gone or damaged.
    Damaged {
        /// The record.
        record: NodeRecord,
        /// The first object found missing or damaged.
        object: ObjectRef,
        /// Corrupt (else missing).
        corrupt: bool,
        /// The name of the output that object is.
        output: String,
    },
    /// The record file itself is unreadable.
    BadRecord(String),
    /// The remote store could not be read (network, credentials): not a reason to recompute.
    Unavailable(String),
}

/// Looks a key up; with `fetch`, objects only on the remote are downloaded into the cache (and
/// hash-checked), otherwise only their presence is checked.
pub fn lookup(store: &Store, key: &str, fetch: bool) -> Lookup {
    let record = match store.record(key) {
        Ok(Some(r)) => r,
        Ok(None) => return Lookup::Miss,
        Err(e @ crate::store::StoreError::Remote { .. }) => return Lookup::Unavailable(crate::error::render(&e)),
        Err(e) => return Lookup::BadRecord(crate::error::render(&e)),
    };
    for (name, obj) in &record.outputs {
        match if fetch { store.verify(obj) } else { store.verify_present(obj) } {
            Verify::Ok => {}
            Verify::Missing => return Lookup::Damaged { object: obj.clone(), corrupt: false, output: name.clone(), record },
            Verify::Corrupt { .. } => return Lookup::Damaged { object: obj.clone(), corrupt: true, output: name.clone(), record },
            Verify::Unavailable(e) => return Lookup::Unavailable(e),
        }
    }
    Lookup::Hit(record)
}

/// A node whose upstream outputs are known, decided: its inputs, fingerprint and key, and what
/// the store says. The one decision `status`, `--dry-run`, `run` and a Slurm job all make.
pub struct Decided {
    /// Paths, hashes and sources of its inputs.
    pub inputs: ResolvedInputs,
    /// What its key hashes.
    pub fingerprint: Fingerprint,
    /// `fingerprint.key()`.
    pub key: String,
    /// Hit or run.
    pub verdict: Verdict,
}

/// What the store says about a decided node.
pub enum Verdict {
    /// The store holds its result (boxed: a record is large beside the other variant).
    Hit(Box<NodeRecord>),
    /// It must run.
    Run(Why),
}

/// Why a node must run.
pub enum Why {
    /// No run of this node was ever recorded (for this pipeline file).
    NeverRun,
    /// What differs from the node's last run (params, inputs, version, environment), or that
    /// its cache entry was removed.
    Changed(Vec<String>),
    /// Its record is there but an object is missing or corrupt.
    Damaged {
        /// The damaged object.
        object: ObjectRef,
        /// Corrupt (else missing).
        corrupt: bool,
        /// The output it is.
        output: String,
    },
    /// Its record cannot be read.
    BadRecord(String),
    /// Not looked into (a run decides without reading the previous record).
    Unexplained,
}

impl Why {
    /// The reasons as `pipe status` prints them.
    pub fn reasons(&self) -> Vec<String> {
        match self {
            Why::NeverRun => vec!["never run".to_string()],
            Why::Changed(r) => r.clone(),
            Why::Damaged { object, corrupt, output } => {
                vec![format!("object {} ({output}) {}", object.short(), if *corrupt { "corrupt" } else { "missing from the store" })]
            }
            Why::BadRecord(e) => vec![e.clone()],
            Why::Unexplained => Vec::new(),
        }
    }
}

/// Why a node cannot be decided.
pub enum Blocked {
    /// An input cannot be resolved (a workspace file missing or unreadable).
    Input(String),
    /// The store cannot be read (network, credentials): not a reason to recompute.
    Store {
        /// Its key.
        key: String,
        /// The store's error.
        error: String,
    },
}

/// Decides one node given its upstream outputs: resolves its inputs, fingerprints it and looks its
/// key up (`fetch`: objects only on the remote are downloaded and verified, else only checked
/// present). With `explain`, a miss reads the node's previous record to say what changed.
#[allow(clippy::too_many_arguments)]
pub fn decide(
    graph: &Graph,
    node: &NodeSpec,
    outputs: &Outputs,
    store: &Store,
    pipeline: &str,
    workspace: &Path,
    fetch: bool,
    explain: bool,
) -> Result<Decided, Blocked> {
    let inputs = resolve_inputs(graph, node, outputs, store, workspace).map_err(Blocked::Input)?;
    decide_resolved(node, inputs, store, pipeline, fetch, explain)
}

/// [`decide`] for a node whose inputs are already resolved (the scheduler resolves them under its
/// lock and decides outside it, since a lookup may download).
pub fn decide_resolved(
    node: &NodeSpec,
    inputs: ResolvedInputs,
    store: &Store,
    pipeline: &str,
    fetch: bool,
    explain: bool,
) -> Result<Decided, Blocked> {
    let fingerprint = fingerprint(node, &inputs, store, pipeline);
    let key = fingerprint.key();
    let verdict = match lookup(store, &key, fetch) {
        Lookup::Hit(rec) => Verdict::Hit(Box::new(rec)),
        Lookup::Unavailable(error) => return Err(Blocked::Store { key, error }),
        Lookup::Damaged { object, corrupt, output, .. } => Verdict::Run(Why::Damaged { object, corrupt, output }),
        Lookup::BadRecord(e) => Verdict::Run(Why::BadRecord(e)),
        Lookup::Miss if !explain => Verdict::Run(Why::Unexplained),
        Lookup::Miss => Verdict::Run(match store.get_ref(pipeline, &node.id) {
            None => Why::NeverRun,
            Some(old_key) => match store.record(&old_key) {
                Ok(Some(old)) => {
                    let reasons = fingerprint.diff(&old.fingerprint, &inputs.sources);
                    Why::Changed(if reasons.is_empty() { vec!["cache entry removed (gc?)".to_string()] } else { reasons })
                }
                _ => Why::Changed(vec!["previous record removed (gc?)".to_string()]),
            },
        }),
    };
    Ok(Decided { inputs, fingerprint, key, verdict })
}

/// Whether a node's result is current (`state` in `pipe status --json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Freshness {
    /// Its result for the current pipeline and inputs is stored (and published).
    Fresh,
    /// It ran before, but something it depends on changed (or its result is damaged).
    Stale,
    /// It never ran (for this pipeline file), or an input is missing.
    Missing,
}

impl Freshness {
    /// The name `pipe status` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Freshness::Fresh => "fresh",
            Freshness::Stale => "stale",
            Freshness::Missing => "missing",
        }
    }
}

impl std::fmt::Display for Freshness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// One node's state, as `pipe status` prints it (one element of `pipe status --json`).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct NodeStatus {
    /// The node's id.
    pub node: String,
    /// The node's stage.
    pub stage: String,
    /// Whether its result is current.
    pub state: Freshness,
    /// Why it is not fresh, one reason per entry; empty when it is fresh.
    pub reasons: Vec<String>,
    /// The node's cache key, when its inputs are known (every upstream node fresh).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Not fresh only because an upstream node is not (its reasons name them): it has no key of
    /// its own yet. Not serialised (`--json` output is unchanged).
    #[serde(skip)]
    pub waiting: bool,
    /// The node is being computed now, by some run ([`crate::live`]): its epoch, loss and time to go.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running: Option<crate::live::Running>,
    /// The run (and Slurm job) that holds this key's claim now: computing it ([`crate::store::Claim`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim: Option<crate::store::ClaimInfo>,
    /// What its key hashes, when it has one (`pipe key` prints it). Not serialised.
    #[serde(skip)]
    pub fingerprint: Option<Fingerprint>,
}

/// One node's outputs by name.
type NodeOutputs = BTreeMap<String, ObjectRef>;

/// Dependency levels: every node's level is one more than its deepest dependency.
pub fn levels(graph: &Graph) -> Vec<Vec<usize>> {
    let mut level = vec![0usize; graph.len()];
    let mut out: Vec<Vec<usize>> = Vec::new();
    for &i in graph.order() {
        let l = graph.dependencies(i).iter().map(|d| level[d.index()] + 1).max().unwrap_or(0);
        level[i.index()] = l;
        if out.len() <= l {
            out.resize_with(l + 1, Vec::new);
        }
        out[l].push(i.index());
    }
    out
}

/// The state of every node, in dependency order, computed level by level in parallel.
pub fn status(graph: &Graph, store: &Store, pipeline: &str, workspace: &Path) -> Vec<NodeStatus> {
    let n = graph.len();
    let mut outputs: Outputs = vec![None; n];
    let mut result: Vec<Option<NodeStatus>> = vec![None; n];
    for level in levels(graph) {
        let computed: Vec<(usize, NodeStatus, Option<NodeOutputs>)> = level
            .par_iter()
            .map(|&i| {
                let node = graph.node(graph.index_of(i));
                let (st, outs) = node_status(graph, node, i, &outputs, &result, store, pipeline, workspace);
                (i, st, outs)
            })
            .collect();
        for (i, st, outs) in computed {
            outputs[i] = outs;
            result[i] = Some(st);
        }
    }
    graph.order().iter().filter_map(|i| result[i.index()].clone()).collect()
}

/// `reasons`, and where a training node would resume from a checkpoint rather than start over,
/// `resumes from epoch K of E` (`pipe run --no-resume` starts over).
fn with_resume(mut reasons: Vec<String>, node: &NodeSpec, fp: &Fingerprint, store: &Store) -> Vec<String> {
    if let Some((epoch, epochs)) = crate::checkpoint::resume_point(store, fp, &node.kind.params()) {
        reasons.push(format!("resumes from epoch {epoch} of {epochs}"));
    }
    reasons
}

#[allow(clippy::too_many_arguments)]
fn node_status(
    graph: &Graph,
    node: &NodeSpec,
    i: usize,
    outputs: &Outputs,
    done: &[Option<NodeStatus>],
    store: &Store,
    pipeline: &str,
    workspace: &Path,
) -> (NodeStatus, Option<BTreeMap<String, ObjectRef>>) {
    let mk = |state: Freshness, reasons: Vec<String>| NodeStatus {
        node: node.id.clone(),
        stage: node.stage.clone(),
        state,
        reasons,
        key: None,
        waiting: false,
        running: None,
        claim: None,
        fingerprint: None,
    };
    let not_fresh = upstream_reasons(
        graph
            .dependencies(graph.index_of(i))
            .iter()
            // An upstream with known outputs (fresh, or fresh but for a published file) is no reason.
            .filter(|d| outputs[d.index()].is_none())
            .map(|d| (graph.node(*d).id.as_str(), done[d.index()].as_ref().map_or("unknown", |s| s.state.as_str()))),
    );
    if !not_fresh.is_empty() {
        let state = if store.get_ref(pipeline, &node.id).is_some() { Freshness::Stale } else { Freshness::Missing };
        return (NodeStatus { waiting: true, ..mk(state, not_fresh) }, None);
    }
    let d = match decide(graph, node, outputs, store, pipeline, workspace, false, true) {
        Ok(d) => d,
        Err(Blocked::Input(e)) => return (mk(Freshness::Missing, vec![e]), None),
        Err(Blocked::Store { key, error }) => return (NodeStatus { key: Some(key), ..mk(Freshness::Stale, vec![error]) }, None),
    };
    let (st, outs) = match d.verdict {
        Verdict::Hit(rec) => {
            let unpublished = unpublished(node, &rec.outputs, store, workspace);
            let state = if unpublished.is_empty() { Freshness::Fresh } else { Freshness::Stale };
            (mk(state, unpublished), Some(rec.outputs))
        }
        Verdict::Run(Why::NeverRun) => (mk(Freshness::Missing, with_resume(Why::NeverRun.reasons(), node, &d.fingerprint, store)), None),
        Verdict::Run(why) => (mk(Freshness::Stale, with_resume(why.reasons(), node, &d.fingerprint, store)), None),
    };
    (NodeStatus { key: Some(d.key), fingerprint: Some(d.fingerprint), ..st }, outs)
}

/// The upstreams a node waits on, as reasons: one per state, naming at most three nodes (a gather
/// over hundreds would otherwise print hundreds of names; each upstream has its own line, with its
/// own reasons, in `pipe status -v`).
fn upstream_reasons<'a>(upstreams: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<String> {
    const NAMED: usize = 3;
    let mut by_state: Vec<(&str, Vec<&str>)> = Vec::new();
    for (id, state) in upstreams {
        match by_state.iter_mut().find(|(s, _)| *s == state) {
            Some((_, ids)) => ids.push(id),
            None => by_state.push((state, vec![id])),
        }
    }
    by_state
        .into_iter()
        .map(|(state, ids)| match ids.len() {
            1 => format!("upstream {} is {state}", ids[0]),
            n if n <= NAMED => format!("upstreams {} and {} are {state}", ids[..n - 1].join(", "), ids[n - 1]),
            n => format!("{n} upstreams are {state}: {} and {} more", ids[..NAMED].join(", "), n - NAMED),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::upstream_reasons;

    #[test]
    fn upstream_reasons_name_a_few_nodes_per_state() {
        let one = upstream_reasons([("a", "missing")].into_iter());
        assert_eq!(one, ["upstream a is missing"]);
        let mixed = upstream_reasons([("a", "missing"), ("b", "stale"), ("c", "missing")].into_iter());
        assert_eq!(mixed, ["upstreams a and c are missing", "upstream b is stale"]);
        let ids: Vec<String> = (0..120).map(|i| format!("e[{i}]")).collect();
        let many = upstream_reasons(ids.iter().map(|i| (i.as_str(), "missing")));
        assert_eq!(many, ["120 upstreams are missing: e[0], e[1], e[2] and 117 more"]);
    }
}
