//! A project: one store, the workspace its pipelines read inputs from and publish into, the stage
//! kinds it knows, and the Ctrl-C flag. What `pipe run` does between parsing its command line and
//! printing its summary is [`Project::run`]; `pipe pull` is the same run in its restore-only mode
//! ([`RunOptions::pull_only`]); a Slurm job's one node is [`Project::run_job`].
//!
//! ```text
//! Project::load(file, --set) -> Loaded { pipeline, graph, namespace }
//! Project::run(&Plan, RunOptions, runner, reporter) -> lock -> Executor -> run record -> Finished
//! Project::run_job(graph, node, key) -> task file -> exec::run_node -> JobEnd (failure marker)
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{self, LoadError, Pipeline};
use crate::exec::{self, Executor, NodeEnd, NodeRunner, RunOptions};
use crate::graph::{CycleError, Graph, GraphBuilder};
use crate::plan::{self, NodeStatus};
use crate::report::{Recorder, Reporter, Silent};
use crate::stage::Registry;
use crate::store::{now, FailureRecord, RunRecord, RunState, RunStatus, Store, StoreError, Tally};

/// One store, the workspace, the stage kinds and the Ctrl-C flag: what every command that loads
/// or runs a pipeline works on.
pub struct Project<'r> {
    store: Store,
    registry: &'r Registry,
    workspace: PathBuf,
    cancel: Arc<AtomicBool>,
}

/// A pipeline file loaded by [`Project::load`].
pub struct Loaded {
    /// The pipeline, its `--set` overrides applied.
    pub pipeline: Pipeline,
    /// Its whole graph.
    pub graph: Graph,
    /// Where its refs live in the store ([`namespace`]).
    pub namespace: String,
}

/// Why a pipeline file did not load.
#[derive(Debug)]
pub enum ProjectLoadError {
    /// The file (its YAML, its stages, its params).
    Load(LoadError),
    /// Its stages depend on each other in a circle.
    Cycle(CycleError),
}

impl std::fmt::Display for ProjectLoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProjectLoadError::Load(e) => write!(f, "{e}"),
            ProjectLoadError::Cycle(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ProjectLoadError {}

/// What one run runs: the graph (the pipeline's, or one narrowed to targets) and what its run
/// record says about where it came from.
pub struct Plan<'p> {
    /// The pipeline (its name goes in the run record).
    pub pipeline: &'p Pipeline,
    /// The nodes to run.
    pub graph: &'p Graph,
    /// The pipeline file as given: the run record names it, and refs live under [`namespace`] of it.
    pub file: &'p Path,
    /// The `--set` overrides, as given (for the run record).
    pub overrides: &'p [String],
}

/// Something to call every `every` while a run goes (`pipe run` rewrites the pipeline's declared
/// report with it), on its own thread; never after [`Project::run`] returns.
pub struct Periodic<'f> {
    /// How often.
    pub every: Duration,
    /// What.
    pub call: &'f (dyn Fn() + Sync),
}

/// How a run ended, once its run record is written.
pub struct Finished {
    /// The run record, as written.
    pub record: RunRecord,
    /// Where it was written.
    pub path: PathBuf,
    /// Its nodes counted by how they ended.
    pub tally: Tally,
    /// The run's status (and so the process's exit code).
    pub status: RunStatus,
}

/// How a Slurm job's node ended ([`Project::run_job`]).
#[derive(Debug)]
pub enum JobEnd {
    /// It ran, or its result was found cached, in this time.
    Done(RunState, Duration),
    /// Cancelled (`scancel`, a time limit): no failure is recorded, so the driver reports the job
    /// as ended without a result and may submit it again.
    Interrupted(String),
    /// Failed (the node, or the job before the node could start); the failure marker the driver
    /// reads is written, unless writing it failed too (`unrecorded` says why).
    Failed {
        /// What failed.
        error: String,
        /// Why the failure marker could not be written.
        unrecorded: Option<String>,
    },
}

/// Where a pipeline's refs (the last key of each node) live: the pipeline FILE, by its path
/// relative to `workspace` (absolute when outside it), hashed. Not its free-text `name:`, which two
/// files may share; relative, so another clone of the workspace (with a shared remote store) finds
/// them. 32 hex digits.
pub fn namespace(workspace: &Path, file: &Path) -> String {
    let absolute = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { workspace.join(p) };
    let abs = std::fs::canonicalize(file).unwrap_or_else(|_| absolute(file));
    let ws = std::fs::canonicalize(workspace).unwrap_or_else(|_| workspace.to_path_buf());
    let id = match abs.strip_prefix(&ws) {
        Ok(rel) => rel.to_string_lossy().to_string(),
        Err(_) => abs.to_string_lossy().to_string(),
    };
    blake3::hash(id.as_bytes()).to_hex()[..32].to_string()
}

/// [`Project::load`] where no store is open (`pipe dag`, `pipe key`): the pipeline file with its
/// overrides, its sealed graph and its refs' namespace.
///
/// # Errors
/// The file's load error (naming file, line and field) or the stages' cycle.
pub fn load(registry: &Registry, workspace: &Path, file: &Path, overrides: &[(String, String)]) -> Result<Loaded, ProjectLoadError> {
    let pipeline = config::load(file, registry, overrides).map_err(ProjectLoadError::Load)?;
    let graph = GraphBuilder::from_nodes(pipeline.nodes.clone()).seal().map_err(ProjectLoadError::Cycle)?;
    Ok(Loaded { pipeline, graph, namespace: namespace(workspace, file) })
}

impl<'r> Project<'r> {
    /// A project on `store`, reading and publishing under `workspace`; `cancel` is set on Ctrl-C.
    pub fn new(store: Store, registry: &'r Registry, workspace: PathBuf, cancel: Arc<AtomicBool>) -> Self {
        Project { store, registry, workspace, cancel }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The workspace: `file:` inputs and published paths are relative to it.
    pub fn workspace(&self) -> &Path {
        &self.workspace
    }

    /// Loads a pipeline file with `--set` overrides (`stage.param`, value) and seals its graph.
    ///
    /// # Errors
    /// The file's load error (naming file, line and field) or the stages' cycle.
    pub fn load(&self, file: &Path, overrides: &[(String, String)]) -> Result<Loaded, ProjectLoadError> {
        load(self.registry, &self.workspace, file, overrides)
    }

    /// Each node's freshness (what `pipe status` and `pipe run -n` show).
    pub fn status(&self, graph: &Graph, file: &Path) -> Vec<NodeStatus> {
        plan::status(graph, &self.store, &namespace(&self.workspace, file), &self.workspace)
    }

    /// Runs every node of `plan` that is not fresh (all of them with `pull_only`: restoring only),
    /// independent nodes in parallel, where `runner` says; then writes the run record. Other runs
    /// may share the store: each key is computed under this run's claim (`options.claim_as` is
    /// set to the run's id), and a key another run is computing is waited for, not computed twice. Waits for
    /// the store's lock first (`on_wait` is told who holds it). `periodic` is called on its own
    /// thread while the nodes run. The caller ends the display and says the summary.
    ///
    /// # Errors
    /// The store's lock or the run record could not be written. A node's failure is not an error:
    /// it is in the record (and in `status`).
    pub fn run(
        &self,
        plan: &Plan<'_>,
        options: RunOptions,
        runner: &dyn NodeRunner,
        reporter: &dyn Reporter,
        on_wait: impl FnOnce(&str),
        periodic: Option<Periodic<'_>>,
    ) -> Result<Finished, StoreError> {
        // Beside other runs: each node is claimed on its own; only `pipe gc` waits for all of them.
        let _lock = self.store.lock_shared(on_wait)?;
        self.store.clean_scratch(false);
        let recorder = Recorder::new(reporter);
        let started_at = now();
        let run_id = format!("{}-{}", (started_at * 1000.0) as u64, std::process::id());
        // Every key this run computes is claimed under its id.
        let options = RunOptions { claim_as: Some(run_id.clone()), ..options };
        let t0 = Instant::now();
        let (jobs, threads, fail_fast) = (options.jobs, options.threads, options.fail_fast);
        let namespace = namespace(&self.workspace, plan.file);
        let ex = Executor {
            graph: plan.graph,
            store: &self.store,
            pipeline: &namespace,
            workspace: self.workspace.clone(),
            options,
            reporter: &recorder,
            cancel: self.cancel.clone(),
            runner,
        };
        let running = AtomicBool::new(true);
        std::thread::scope(|scope| {
            if let Some(Periodic { every, call }) = periodic {
                let running = &running;
                scope.spawn(move || {
                    let mut last = Instant::now();
                    while running.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(200).min(every));
                        if last.elapsed() >= every && running.load(Ordering::SeqCst) {
                            call();
                            last = Instant::now();
                        }
                    }
                });
            }
            ex.run();
            running.store(false, Ordering::SeqCst);
        });
        let nodes = recorder.nodes(plan.graph);
        let tally = Tally::of(&nodes);
        let status = tally.status(self.cancel.load(Ordering::SeqCst) && !(fail_fast && tally.failed > 0));
        let (git_commit, git_dirty) = git_state(&self.workspace);
        let record = RunRecord {
            run_id,
            pipeline: plan.pipeline.name.clone(),
            file: plan.file.display().to_string(),
            started_at,
            started: rfc3339(started_at),
            git_commit,
            git_dirty,
            pipe_version: env!("CARGO_PKG_VERSION").to_string(),
            host: crate::live::hostname(),
            overrides: plan.overrides.to_vec(),
            duration_s: t0.elapsed().as_secs_f64(),
            jobs,
            threads: Some(threads),
            status: status.as_str().into(),
            nodes,
        };
        let path = self.store.write_run(&record)?;
        Ok(Finished { record, path, tally, status })
    }

    /// One node of `graph` as a Slurm job of `pipe run --executor slurm` runs it: its task file
    /// (the upstream outputs and fingerprint the driver planned, under [`crate::slurm::task_rel`])
    /// is read, the fingerprint checked against `key`, the node run on `threads` threads. A failure,
    /// also one before the node could start, is written where the driver reads it
    /// ([`crate::slurm::failure_rel`]); an interruption is not.
    pub fn run_job(&self, file: &Path, graph: &Graph, node: &str, key: &str, threads: usize) -> JobEnd {
        let failed = |error: String, failure: Option<FailureRecord>| {
            let marker = crate::slurm::TaskFailure { node: node.to_string(), error: error.clone(), failure };
            let bytes = serde_json::to_vec_pretty(&marker).expect("failure markers serialise");
            let unrecorded = self.store.put_meta(&crate::slurm::failure_rel(key), &bytes).err().map(|e| e.to_string());
            JobEnd::Failed { error, unrecorded }
        };
        let Some(i) = graph.find(node) else {
            return failed(format!("no such node in {} (was the file edited since submission?)", file.display()), None);
        };
        let task: crate::slurm::Task = match self.store.get_meta(&crate::slurm::task_rel(key)) {
            Ok(Some(bytes)) => match serde_json::from_slice(&bytes) {
                Ok(task) => task,
                Err(e) => return failed(format!("task file unreadable: {e}"), None),
            },
            Ok(None) => return failed(format!("no task {} in {}", crate::slurm::task_rel(key), self.store.describe()), None),
            Err(e) => return failed(e.to_string(), None),
        };
        if task.key != key || task.fingerprint.key() != key {
            return failed(format!("task {} does not describe key {key}", crate::slurm::task_rel(key)), None);
        }
        let mut outputs = vec![None; graph.len()];
        for (id, outs) in task.upstream {
            let Some(j) = graph.find(&id) else { return failed(format!("upstream node {id} is not in the pipeline"), None) };
            outputs[j.index()] = Some(outs);
        }
        let namespace = namespace(&self.workspace, file);
        let ex = Executor {
            graph,
            store: &self.store,
            pipeline: &namespace,
            workspace: self.workspace.clone(),
            options: RunOptions {
                jobs: 1,
                threads,
                fail_fast: false,
                overwrite: false,
                pull_only: false,
                rerun: HashSet::new(),
                no_resume: false,
                // Its driver holds the key's claim.
                claim_as: None,
            },
            reporter: &Silent,
            cancel: self.cancel.clone(),
            runner: &exec::Local,
        };
        let t0 = Instant::now();
        match exec::run_node(&ex, i.index(), outputs, &task.fingerprint) {
            NodeEnd::Ran { .. } => JobEnd::Done(RunState::Ran, t0.elapsed()),
            NodeEnd::Cached(_) => JobEnd::Done(RunState::Cached, t0.elapsed()),
            NodeEnd::Cancelled { reason, .. } => JobEnd::Interrupted(reason),
            // A job's executor claims nothing (its driver holds the claim), so it is never busy.
            NodeEnd::Busy { key, .. } => JobEnd::Interrupted(format!("key {key} is claimed by another run")),
            NodeEnd::Failed { failure, .. } if self.cancel.load(Ordering::SeqCst) => JobEnd::Interrupted(failure.text()),
            NodeEnd::Failed { failure, .. } => failed(failure.text(), Some(failure.record())),
        }
    }
}

/// Seconds since the epoch as RFC 3339 UTC, to the second.
pub fn rfc3339(secs: f64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_secs_f64(secs.max(0.0));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The workspace's git commit and whether tracked files differ from it; (None, None) outside git.
fn git_state(dir: &Path) -> (Option<String>, Option<bool>) {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "HEAD"]) {
        Some(commit) => (Some(commit), git(&["status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty())),
        None => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The namespace is the file's path relative to the workspace, so two clones of one
    /// workspace (a shared remote store) find each other's refs; the same file named two ways is
    /// one namespace.
    #[test]
    fn namespace_is_the_workspace_relative_path() {
        let root = std::env::temp_dir().join(format!("pipe-project-{}", std::process::id()));
        let (a, b) = (root.join("a"), root.join("b"));
        for ws in [&a, &b] {
            std::fs::create_dir_all(ws.join("pipelines")).unwrap();
            std::fs::write(ws.join("pipelines/p.yaml"), "name: p\nstages: {}\n").unwrap();
        }
        let rel = namespace(&a, Path::new("pipelines/p.yaml"));
        assert_eq!(rel, namespace(&b, Path::new("pipelines/p.yaml")));
        assert_eq!(rel, namespace(&a, &a.join("pipelines/../pipelines/p.yaml")));
        assert_eq!(rel, blake3::hash(b"pipelines/p.yaml").to_hex()[..32]);
        assert_ne!(rel, namespace(&a, Path::new("pipelines/q.yaml")));
        let _ = std::fs::remove_dir_all(root);
    }
}
