//! Run records (`runs/<id>.json`, `runs/latest.json`): what happened to each node in a run, folded
//! into a [`Tally`], a [`RunStatus`] and the process exit code.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::io_err;
use super::{write_atomic, Dir, Entry, Store, StoreError};

/// The outcome of one node in one run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunNode {
    /// The node's id.
    pub node: String,
    /// The node's stage.
    pub stage: String,
    /// What happened to it.
    pub state: RunState,
    /// Wall-clock seconds it took in this run (0 when it did not start).
    pub duration_s: f64,
    /// CPU seconds it used in this run, where measured (see [`crate::store::NodeRecord::cpu_s`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_s: Option<f64>,
    /// Its cache key, when its inputs could be resolved.
    pub key: Option<String>,
    /// Why it failed, was skipped or was cancelled, as the terminal showed it; `None` when it
    /// completed.
    pub error: Option<String>,
    /// The epoch a training node resumed from (its checkpoint), when it did not start over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<u64>,
    /// How it failed, typed (`None` unless it failed, and in records of earlier versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureRecord>,
}

impl RunNode {
    /// The entry of node `node` (stage `stage`) that did not run: skipped or cancelled, and why.
    pub fn not_run(node: &str, stage: &str, state: RunState, why: String) -> RunNode {
        RunNode {
            node: node.into(),
            stage: stage.into(),
            state,
            duration_s: 0.0,
            cpu_s: None,
            key: None,
            error: Some(why),
            resumed_from: None,
            failure: None,
        }
    }
}

/// A node's failure as the run record keeps it: its kind, what went wrong, and how to get past it
/// (the two halves of [`crate::error::render`]).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FailureRecord {
    /// Where it went wrong.
    pub kind: FailureKind,
    /// What went wrong.
    pub message: String,
    /// What to do about it, when pipe knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl std::fmt::Display for FailureRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl crate::error::Hint for FailureRecord {
    fn hint(&self) -> Option<String> {
        self.hint.clone()
    }
}

/// Where a node's failure arose (`kind` in the run record: `input`, `store`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// An input could not be used (a workspace file, an upstream output missing or corrupt).
    Input,
    /// The store could not be read or written, or does not hold the result (`pipe pull`).
    Store,
    /// The stage's own error, or its outputs not as it declares them.
    Stage,
    /// A stored output could not be published into the workspace.
    Publish,
    /// A Slurm job computed another key than the one it was submitted under.
    KeyMismatch,
    /// What ran the node failed or died (Slurm, a job that ended without a result).
    Runner,
    /// A kind a later version of pipe recorded.
    #[serde(other)]
    Other,
}

impl FailureKind {
    /// The name the run record uses.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Input => "input",
            FailureKind::Store => "store",
            FailureKind::Stage => "stage",
            FailureKind::Publish => "publish",
            FailureKind::KeyMismatch => "key_mismatch",
            FailureKind::Runner => "runner",
            FailureKind::Other => "other",
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Failed nodes per kind of failure, in [`FailureKind`] order; a failure recorded by an earlier
/// version (no kind) counts under [`FailureKind::Other`].
pub fn failures_by_kind(nodes: &[RunNode]) -> BTreeMap<FailureKind, usize> {
    let mut by = BTreeMap::new();
    for n in nodes.iter().filter(|n| n.state == RunState::Failed) {
        *by.entry(n.failure.as_ref().map_or(FailureKind::Other, |f| f.kind)).or_default() += 1;
    }
    by
}

/// What happened to a node in a run (`state` in the run record's JSON: `ran`, `cached`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// It ran and its result is stored.
    Ran,
    /// Its result was in the store.
    Cached,
    /// It ran and failed (or its result could not be published).
    Failed,
    /// Not run: an upstream node did not complete.
    Skipped,
    /// Not run or stopped: the run was interrupted.
    Cancelled,
}

impl RunState {
    /// The name the run record and the terminal use.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Ran => "ran",
            RunState::Cached => "cached",
            RunState::Failed => "failed",
            RunState::Skipped => "skipped",
            RunState::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// A run folded from its nodes: how many ran, came from the cache, failed, were skipped or
/// cancelled. One fold serves the run record's status, the summary line and the exit code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Nodes that ran.
    pub ran: usize,
    /// Nodes restored from the cache.
    pub cached: usize,
    /// Nodes that failed.
    pub failed: usize,
    /// Nodes not run because an upstream node did not complete.
    pub skipped: usize,
    /// Nodes not run or stopped because the run was interrupted.
    pub cancelled: usize,
}

impl Tally {
    /// Counts `nodes` by state.
    pub fn of(nodes: &[RunNode]) -> Tally {
        let mut t = Tally::default();
        for n in nodes {
            *match n.state {
                RunState::Ran => &mut t.ran,
                RunState::Cached => &mut t.cached,
                RunState::Failed => &mut t.failed,
                RunState::Skipped => &mut t.skipped,
                RunState::Cancelled => &mut t.cancelled,
            } += 1;
        }
        t
    }

    /// The run's status; `interrupted` when the run was cancelled (not by `--fail-fast` after a
    /// failure, which is a failure).
    pub fn status(&self, interrupted: bool) -> RunStatus {
        if interrupted {
            RunStatus::Interrupted
        } else if self.failed > 0 {
            RunStatus::Failed
        } else {
            RunStatus::Ok
        }
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ran, {} cached, {} failed, {} skipped, {} cancelled", self.ran, self.cached, self.failed, self.skipped, self.cancelled)
    }
}

/// How a run ended (the run record's `status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStatus {
    /// Every node completed.
    Ok,
    /// Some node failed (the rest completed or were skipped).
    Failed,
    /// Interrupted (Ctrl-C, SIGTERM); finished nodes are kept.
    Interrupted,
}

impl RunStatus {
    /// The word the run record holds.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }
    /// The process exit code (`crate::exit`).
    pub fn exit_code(self) -> i32 {
        match self {
            RunStatus::Ok => crate::exit::OK,
            RunStatus::Failed => crate::exit::NODES_FAILED,
            RunStatus::Interrupted => crate::exit::INTERRUPTED,
        }
    }
}

/// One run's record (`runs/<run id>.json`, also `runs/latest.json`): when and where it ran, and
/// what happened to each node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunRecord {
    /// `<start in milliseconds since the Unix epoch>-<process id>`.
    pub run_id: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// The pipeline file's path, as given to `pipe`.
    pub file: String,
    /// Seconds since the Unix epoch.
    pub started_at: f64,
    /// The same instant, RFC 3339 in UTC (`2026-11-30T07:12:46Z`).
    #[serde(default)]
    pub started: String,
    /// Where it ran and what ran it: the workspace's git commit (with `dirty` when it had
    /// uncommitted changes), pipe's version, the host, the `--set` overrides.
    #[serde(default)]
    pub git_commit: Option<String>,
    /// Whether tracked files had uncommitted changes; `None` outside a git repository.
    #[serde(default)]
    pub git_dirty: Option<bool>,
    /// The version of `pipe` that ran it.
    #[serde(default)]
    pub pipe_version: String,
    /// The machine's host name.
    #[serde(default)]
    pub host: String,
    /// The `--set` overrides, as given (`stage.param=value`).
    #[serde(default)]
    pub overrides: Vec<String>,
    /// Wall-clock seconds of the whole run.
    pub duration_s: f64,
    /// Nodes run at once (`--jobs`).
    pub jobs: usize,
    /// CPU threads each node was given (`--threads`); absent in records of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// `ok`, `failed` or `interrupted`.
    pub status: String,
    /// Every node's outcome, in dependency order.
    pub nodes: Vec<RunNode>,
}

impl Store {
    /// Writes a run record as `runs/<run id>.json` and `runs/latest.json` (the remote gets the
    /// first); returns the local path of the first.
    pub fn write_run(&self, run: &RunRecord) -> Result<PathBuf, StoreError> {
        let bytes = serde_json::to_vec_pretty(run).expect("runs serialise");
        let path = self.root.join(Entry::Run(&run.run_id).rel());
        write_atomic(&path, &bytes).map_err(io_err(&path))?;
        let latest = self.root.join(Entry::LatestRun.rel());
        write_atomic(&latest, &bytes).map_err(io_err(&latest))?;
        if let Some(r) = &self.remote {
            r.put_shared(&Entry::Run(&run.run_id).rel(), bytes)?;
        }
        Ok(path)
    }

    /// Every run record this store holds (and, in front of a remote, the remote's: runs made on
    /// other machines, a Slurm driver or a colleague, reach the remote only), oldest first.
    pub fn runs(&self) -> Vec<RunRecord> {
        let mut out: Vec<RunRecord> = Vec::new();
        let latest = self.path(Entry::LatestRun);
        for e in fs::read_dir(self.path(Entry::Dir(Dir::Runs))).into_iter().flatten().flatten() {
            if e.path() == latest {
                continue;
            }
            if let Some(r) = fs::read(e.path()).ok().and_then(|b| serde_json::from_slice::<RunRecord>(&b).ok()) {
                out.push(r);
            }
        }
        if let Some(r) = &self.remote {
            for f in r.list(Dir::Runs.name()).map(|l| l.0).unwrap_or_default() {
                if !self.root.join(&f.rel).exists() {
                    if let Some(run) = r.get(&f.rel).ok().flatten().and_then(|b| serde_json::from_slice::<RunRecord>(&b).ok()) {
                        out.push(run);
                    }
                }
            }
        }
        out.sort_by(|a, b| a.started_at.total_cmp(&b.started_at).then(a.run_id.cmp(&b.run_id)));
        out
    }

    /// The last run recorded in the local directory (`runs/latest.json`), if there is a readable one.
    pub fn latest_run(&self) -> Option<RunRecord> {
        Self::latest_run_in(&self.root)
    }

    /// The last run recorded in the store folder `root`, without opening (or creating) the store.
    pub fn latest_run_in(root: &Path) -> Option<RunRecord> {
        serde_json::from_slice(&fs::read(root.join(Entry::LatestRun.rel())).ok()?).ok()
    }

    /// Keys of every node in the run records started at or after `since` (seconds since the epoch).
    pub fn run_keys_since(&self, since: f64) -> HashSet<String> {
        self.runs().into_iter().filter(|r| r.started_at >= since).flat_map(|r| r.nodes.into_iter().filter_map(|n| n.key)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_folds_into_its_status_summary_and_exit_code() {
        let node = |state| RunNode {
            node: "n".into(),
            stage: "s".into(),
            state,
            duration_s: 0.0,
            cpu_s: None,
            key: None,
            error: None,
            resumed_from: None,
            failure: None,
        };
        let t = Tally::of(&[node(RunState::Ran), node(RunState::Cached), node(RunState::Cached), node(RunState::Failed), node(RunState::Skipped)]);
        assert_eq!(t.to_string(), "1 ran, 2 cached, 1 failed, 1 skipped, 0 cancelled");
        assert_eq!((t.status(false), t.status(false).exit_code()), (RunStatus::Failed, 4));
        assert_eq!((t.status(true).as_str(), t.status(true).exit_code()), ("interrupted", 130));
        assert_eq!(Tally::of(&[node(RunState::Cached)]).status(false).exit_code(), 0);
    }

    /// Run records written before failures were typed (no `failure`) still load; new ones add
    /// the field beside `error`, which keeps its rendered text, and only where a node failed.
    #[test]
    fn run_records_of_the_old_shape_still_load() {
        let old = r#"{"run_id":"1-2","pipeline":"p","file":"p.yaml","started_at":1.0,"duration_s":2.0,"jobs":1,"status":"failed",
            "nodes":[{"node":"a","stage":"a","state":"failed","duration_s":0.5,"key":"k","error":"boom"},
                     {"node":"b","stage":"b","state":"skipped","duration_s":0.0,"key":null,"error":"upstream a did not complete"}]}"#;
        let r: RunRecord = serde_json::from_str(old).unwrap();
        assert_eq!((r.nodes[0].error.as_deref(), &r.nodes[0].failure), (Some("boom"), &None));
        assert_eq!(failures_by_kind(&r.nodes), BTreeMap::from([(FailureKind::Other, 1)]));
        let mut a = r.nodes[0].clone();
        a.failure = Some(FailureRecord { kind: FailureKind::KeyMismatch, message: "boom".into(), hint: Some("run it again".into()) });
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(
            json,
            r#"{"node":"a","stage":"a","state":"failed","duration_s":0.5,"key":"k","error":"boom","failure":{"kind":"key_mismatch","message":"boom","hint":"run it again"}}"#
        );
        assert!(!serde_json::to_string(&r.nodes[1]).unwrap().contains("failure"));
        // A kind a later version records reads as `other`, not as an unreadable record.
        let later: RunNode = serde_json::from_str(&json.replace("key_mismatch", "quota")).unwrap();
        assert_eq!(later.failure.map(|f| f.kind), Some(FailureKind::Other));
    }
}
