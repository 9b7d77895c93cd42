//! The local scheduler: `jobs` scheduler threads take ready nodes from a queue, restore cache hits
//! and run the rest. (Plain threads, not a rayon pool: stages use rayon themselves, and a node
//! running inside the scheduler's pool would let rayon's work stealing nest other nodes on its
//! stack while it waits.)
//!
//! A node becomes ready when all its dependencies completed. A failure stops only its
//! dependents (or everything with `fail_fast`); cancellation (Ctrl-C) starts nothing new and
//! keeps every completed node, so the next run resumes.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use crate::config::NodeSpec;
use crate::error::{render, Hint};
use crate::graph::Graph;
use crate::hash::Fingerprint;
use crate::plan::{decide_resolved, resolve_inputs, Blocked, Decided, Outputs, ResolvedInputs, Verdict, Why};
use crate::report::{Event, Reporter};
use crate::stage::{RunContext, StageError};
use crate::store::{now, write_atomic, Attempt, NodeRecord, ObjectRef, RunNode, RunState, Store};

/// How an [`Executor`] runs the graph.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Nodes run at once.
    pub jobs: usize,
    /// CPU threads each node may use.
    pub threads: usize,
    /// Stop the whole run at the first failed node (it sets `cancel`), not only its dependents.
    pub fail_fast: bool,
    /// Overwrite published files that were edited by hand.
    pub overwrite: bool,
    /// Nodes to run even where their result is cached (`pipe run -f TARGET`).
    pub rerun: std::collections::HashSet<String>,
    /// Restore cached results only (`pipe pull`): a cache miss fails its node instead of running.
    pub pull_only: bool,
    /// Train from scratch even where a checkpoint could be resumed (`pipe run --no-resume`; `-f`
    /// does the same for the nodes it reruns).
    pub no_resume: bool,
}

/// Why a node dispatched elsewhere did not complete.
pub struct Failure {
    /// What went wrong, for the terminal and the run record (with the end of the stage's log when there is one).
    pub error: String,
    /// The run was interrupted (Ctrl-C), as opposed to the node failing.
    pub cancelled: bool,
}

/// What a [`NodeRunner`] may use of the run: the store, the workspace, the thread budget, the
/// display and the cancel flag; never the scheduler itself.
pub struct RunEnv<'a> {
    /// Where outputs and records go.
    pub store: &'a Store,
    /// The directory `pipe` was started in.
    pub workspace: &'a Path,
    /// CPU threads the node may use.
    pub threads: usize,
    /// Progress and events.
    pub reporter: &'a dyn Reporter,
    /// Set on Ctrl-C.
    pub cancel: &'a Arc<AtomicBool>,
}

/// One node that missed the cache.
pub struct Job<'a> {
    /// The node.
    pub node: &'a NodeSpec,
    /// What its key hashes.
    pub fingerprint: Fingerprint,
    /// Its key.
    pub key: String,
    /// Its inputs in this machine's store (paths, hashes, sources).
    pub inputs: ResolvedInputs,
    /// Its upstream nodes' outputs by node id (what a runner elsewhere fetches).
    pub upstream: BTreeMap<String, BTreeMap<String, ObjectRef>>,
    /// A training kind's checkpoint folder and whether it may resume from it ([`crate::checkpoint`]).
    pub checkpoints: Option<crate::checkpoint::Checkpoints>,
}

/// Runs nodes that missed the cache: in this process ([`Local`]) or elsewhere (Slurm: one job per
/// node). The scheduler decides what runs; a runner only runs it.
pub trait NodeRunner: Sync {
    /// Runs `job`; returns its record once the store holds it (outputs, then the record).
    /// Blocks until then.
    fn run(&self, env: &RunEnv<'_>, job: Job<'_>) -> Result<NodeRecord, Failure>;
    /// Whether a cache hit's objects must be here (fetched and verified), as a local run reads
    /// them; a runner whose jobs fetch their own inputs says no.
    fn fetches_hits(&self) -> bool {
        true
    }
}

/// Runs each node here: the kind's `run` in a scratch folder (a kind served by the worker pool
/// runs there), outputs into the store, then the record.
pub struct Local;

/// Runs a sealed graph: restores cache hits, hands misses to `runner`, records each node's ref and
/// publishes its outputs into the workspace.
pub struct Executor<'a> {
    /// The graph to run.
    pub graph: &'a Graph,
    /// Where outputs, records and refs go.
    pub store: &'a Store,
    /// The namespace the nodes' refs are kept under (`pipe` uses a hash of the pipeline file's path).
    pub pipeline: &'a str,
    /// The directory `pipe` was started in: `file:` inputs and published paths are relative to it.
    pub workspace: PathBuf,
    /// Jobs, threads per node and the other run options.
    pub options: RunOptions,
    /// Receives the run's events and progress.
    pub reporter: &'a dyn Reporter,
    /// Set on Ctrl-C (or by `fail_fast`): nothing new starts and running stages are asked to stop.
    pub cancel: Arc<AtomicBool>,
    /// Where cache misses run: [`Local`], or e.g. Slurm.
    pub runner: &'a dyn NodeRunner,
}

impl Executor<'_> {
    fn env(&self) -> RunEnv<'_> {
        RunEnv { store: self.store, workspace: &self.workspace, threads: self.options.threads, reporter: self.reporter, cancel: &self.cancel }
    }
}

enum Outcome {
    Done { state: RunState, key: String, outputs: BTreeMap<String, ObjectRef>, resumed_from: Option<u64> },
    Failed { key: Option<String>, error: String, cancelled: bool },
}

struct Shared<'a> {
    ex: &'a Executor<'a>,
    outputs: Mutex<Outputs>,
    pending: Vec<AtomicUsize>,
    /// How each finished node ended (what skipping and cancelling decide on); the record of a
    /// run is the [`crate::report::Recorder`]'s, from the `Finished` events.
    results: Mutex<Vec<Option<RunState>>>,
    queue: Mutex<Queue>,
    wake: Condvar,
}

/// Ready nodes, taken last-in first-out: a finished node's dependents run next (depth first), so
/// each grid cell reaches its results early instead of every cell training before any evaluates.
#[derive(Default)]
struct Queue {
    ready: Vec<usize>,
    running: usize,
}

impl Shared<'_> {
    fn push(&self, i: usize) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).ready.push(i);
        self.wake.notify_one();
    }

    /// The next ready node, or None when nothing is ready or running (the run is over).
    fn next(&self) -> Option<usize> {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(i) = q.ready.pop() {
                q.running += 1;
                return Some(i);
            }
            if q.running == 0 {
                self.wake.notify_all();
                return None;
            }
            q = self.wake.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn finished(&self) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.running -= 1;
        drop(q);
        self.wake.notify_all();
    }
}

impl<'a> Executor<'a> {
    /// Runs every node that is not fresh. Every node's end (ran, cached, failed, skipped,
    /// cancelled) is one [`Event::Finished`] to the reporter; a [`crate::report::Recorder`] folds
    /// them into the run record.
    pub fn run(&'a self) {
        let n = self.graph.len();
        let shared = Shared {
            ex: self,
            outputs: Mutex::new(vec![None; n]),
            pending: (0..n).map(|i| AtomicUsize::new(self.graph.dependencies(self.graph.index_of(i)).len())).collect(),
            results: Mutex::new(vec![None; n]),
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        };
        self.reporter.event(&Event::Planned { total: n });
        // Roots in reverse, so the first in file order is taken first.
        for &i in self.graph.order().iter().rev() {
            if shared.pending[i.index()].load(Ordering::SeqCst) == 0 {
                shared.push(i.index());
            }
        }
        std::thread::scope(|s| {
            for k in 0..self.options.jobs.max(1) {
                let sh = &shared;
                std::thread::Builder::new()
                    .name(format!("pipe-job-{k}"))
                    .spawn_scoped(s, move || {
                        while let Some(i) = sh.next() {
                            visit(sh, i);
                            sh.finished();
                        }
                    })
                    .expect("a scheduler thread starts");
            }
        });
        // Nodes never reached: after a failure upstream, skipped; after an interrupt, cancelled.
        let mut state_of = shared.results.into_inner().unwrap_or_else(|e| e.into_inner());
        for &i in self.graph.order() {
            if state_of[i.index()].is_some() {
                continue;
            }
            let node = self.graph.node(i);
            let blocked = self.graph.dependencies(i).into_iter().find(|d| matches!(state_of[d.index()], Some(RunState::Failed | RunState::Skipped)));
            let (state, error) = match blocked {
                Some(d) => (RunState::Skipped, format!("upstream {} did not complete", self.graph.node(d).id)),
                None => (RunState::Cancelled, "not started: run interrupted".to_string()),
            };
            let rn = RunNode {
                node: node.id.clone(),
                stage: node.stage.clone(),
                state,
                duration_s: 0.0,
                key: None,
                error: Some(error),
                resumed_from: None,
            };
            self.reporter.event(&Event::Finished { node: &rn });
            state_of[i.index()] = Some(state);
        }
    }
}

fn visit(sh: &Shared<'_>, i: usize) {
    let ex = sh.ex;
    if ex.cancel.load(Ordering::SeqCst) || sh.results.lock().unwrap_or_else(|e| e.into_inner())[i].is_some() {
        return;
    }
    let node = ex.graph.node(ex.graph.index_of(i));
    let start = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| process(ex, i, &sh.outputs))).unwrap_or_else(|p| {
        let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
        Outcome::Failed { key: None, error: format!("stage panicked: {msg}"), cancelled: false }
    });
    let duration_s = start.elapsed().as_secs_f64();
    match outcome {
        Outcome::Done { state, key, outputs, resumed_from } => {
            let published = publish(ex, node, &outputs);
            sh.outputs.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(outputs);
            // A failed publish fails the node (its result is stored; dependents still run).
            let (state, error) = match published {
                Ok(()) => (state, None),
                Err(e) => (RunState::Failed, Some(render(&e))),
            };
            let rn = RunNode { node: node.id.clone(), stage: node.stage.clone(), state, duration_s, key: Some(key), error, resumed_from };
            ex.reporter.event(&Event::Finished { node: &rn });
            sh.results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(state);
            for d in ex.graph.dependents(ex.graph.index_of(i)) {
                if sh.pending[d.index()].fetch_sub(1, Ordering::SeqCst) == 1 {
                    sh.push(d.index());
                }
            }
        }
        Outcome::Failed { key, error, cancelled } => {
            if ex.options.fail_fast {
                ex.cancel.store(true, Ordering::SeqCst);
            }
            let state = if cancelled { RunState::Cancelled } else { RunState::Failed };
            let rn = RunNode { node: node.id.clone(), stage: node.stage.clone(), state, duration_s, key, error: Some(error), resumed_from: None };
            ex.reporter.event(&Event::Finished { node: &rn });
            sh.results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(state);
            if !cancelled {
                release_after_failure(sh, i);
            }
        }
    }
}

/// After node `i` failed (or was skipped): dependents that reach it only through partial
/// (`allow_missing`) gathers may still run without it; every other dependent is skipped, and so on
/// down the graph.
fn release_after_failure(sh: &Shared<'_>, i: usize) {
    let ex = sh.ex;
    let failed_id = ex.graph.node(ex.graph.index_of(i)).id.clone();
    for d in ex.graph.dependents(ex.graph.index_of(i)) {
        let dn = ex.graph.node(d);
        let partial_only = dn
            .inputs
            .iter()
            .filter(|(_, refs)| refs.iter().any(|r| matches!(r, crate::config::InputRef::Node { node, .. } if *node == i)))
            .all(|(name, _)| dn.partial_inputs.contains(name));
        if partial_only {
            if sh.pending[d.index()].fetch_sub(1, Ordering::SeqCst) == 1 {
                sh.push(d.index());
            }
            continue;
        }
        let newly = {
            let mut results = sh.results.lock().unwrap_or_else(|e| e.into_inner());
            if results[d.index()].is_some() {
                false
            } else {
                let rn = RunNode {
                    node: dn.id.clone(),
                    stage: dn.stage.clone(),
                    state: RunState::Skipped,
                    duration_s: 0.0,
                    key: None,
                    error: Some(format!("upstream {failed_id} did not complete")),
                    resumed_from: None,
                };
                ex.reporter.event(&Event::Finished { node: &rn });
                results[d.index()] = Some(RunState::Skipped);
                true
            }
        };
        if newly {
            release_after_failure(sh, d.index());
        }
    }
}

/// Runs node `i` in this process, given its upstream outputs (a cluster job's side of
/// [`NodeRunner`]). `expected` (the submitter's fingerprint) guards against the pipeline or the
/// environment differing from where it was submitted. Returns `ran` or `cached`.
pub fn run_node(ex: &Executor<'_>, i: usize, outputs: Outputs, expected: &Fingerprint) -> Result<RunState, String> {
    let node = ex.graph.node(ex.graph.index_of(i));
    // Inputs come from the shared store: fetch (and verify) them into this machine's cache.
    for obj in outputs.iter().flatten().flat_map(|o| o.values()) {
        match ex.store.verify(obj) {
            crate::store::Verify::Ok => {}
            crate::store::Verify::Missing => {
                return Err(format!(
                    "input object {} is missing from {} (removed by gc?); run `pipe run` again to recompute it",
                    obj.short(),
                    ex.store.describe()
                ))
            }
            crate::store::Verify::Corrupt { actual } => {
                return Err(format!(
                    "input object {} is corrupt in {} (hash {actual}); run `pipe run` again to recompute it",
                    obj.short(),
                    ex.store.describe()
                ))
            }
            crate::store::Verify::Unavailable(e) => return Err(e),
        }
    }
    let outputs = Mutex::new(outputs);
    let (inputs, fp, key) = match prepare(ex, node, &outputs, Some(expected)) {
        Ok(p) => p,
        Err(Outcome::Done { state, .. }) => return Ok(state),
        Err(Outcome::Failed { error, .. }) => return Err(error),
    };
    let checkpoints = crate::checkpoint::for_node(ex.store.root(), &fp, &node.kind.params(), !ex.options.no_resume).map(|(c, _)| c);
    let job = Job { node, fingerprint: fp, key: key.clone(), inputs, upstream: BTreeMap::new(), checkpoints };
    ex.reporter.event(&Event::Started { node: &node.id });
    Local.run(&ex.env(), job).map_err(|f| f.error)?;
    ex.store.set_ref(ex.pipeline, &node.id, &key).map_err(|e| crate::error::render(&e))?;
    Ok(RunState::Ran)
}

fn process(ex: &Executor<'_>, i: usize, outputs: &Mutex<Outputs>) -> Outcome {
    let node = ex.graph.node(ex.graph.index_of(i));
    let (inputs, fp, key) = match prepare(ex, node, outputs, None) {
        Ok(p) => p,
        Err(done_or_failed) => return done_or_failed,
    };
    if ex.options.pull_only {
        let error = format!("not in {} (key {}); `pipe run` computes it", ex.store.describe(), &key[..12]);
        return Outcome::Failed { key: Some(key), error, cancelled: false };
    }
    let upstream: BTreeMap<String, BTreeMap<String, ObjectRef>> = {
        let outs = outputs.lock().unwrap_or_else(|e| e.into_inner());
        ex.graph
            .dependencies(ex.graph.index_of(i))
            .into_iter()
            .filter_map(|d| Some((ex.graph.node(d).id.clone(), outs[d.index()].clone()?)))
            .collect()
    };
    ex.reporter.event(&Event::Started { node: &node.id });
    let resume = !(ex.options.no_resume || ex.options.rerun.contains(&node.id));
    // Where a training node picks up (the run record keeps it): its latest checkpoint.
    let (checkpoints, resumed_from) = match crate::checkpoint::for_node(ex.store.root(), &fp, &node.kind.params(), resume) {
        Some((c, point)) => (Some(c), point.map(|(epoch, _)| epoch)),
        None => (None, None),
    };
    let job = Job { node, fingerprint: fp, key: key.clone(), inputs, upstream, checkpoints };
    match ex.runner.run(&ex.env(), job) {
        Ok(rec) => match ex.store.set_ref(ex.pipeline, &node.id, &key) {
            Ok(()) => Outcome::Done { state: RunState::Ran, key, outputs: rec.outputs, resumed_from },
            Err(e) => Outcome::Failed { key: Some(key), error: crate::error::render(&e), cancelled: false },
        },
        Err(f) => Outcome::Failed { key: Some(key), error: f.error, cancelled: f.cancelled },
    }
}

/// Resolves inputs and looks the key up: Ok when the node must run, Err(outcome) for a cache hit
/// or a failure. With `expected`, a fingerprint other than the submitter's is a failure.
fn prepare(
    ex: &Executor<'_>,
    node: &NodeSpec,
    outputs: &Mutex<Outputs>,
    expected: Option<&Fingerprint>,
) -> Result<(ResolvedInputs, Fingerprint, String), Outcome> {
    // A Slurm driver needs only to know that a hit's objects exist: the jobs fetch their inputs.
    let inputs = {
        let outs = outputs.lock().unwrap_or_else(|e| e.into_inner());
        resolve_inputs(ex.graph, node, &outs, ex.store, &ex.workspace)
    };
    let inputs = match inputs {
        Ok(r) => r,
        Err(error) => return Err(Outcome::Failed { key: None, error, cancelled: false }),
    };
    let Decided { inputs, fingerprint: fp, key, verdict } =
        match decide_resolved(node, inputs, ex.store, ex.pipeline, ex.runner.fetches_hits(), false) {
            Ok(d) => d,
            Err(Blocked::Input(error)) => return Err(Outcome::Failed { key: None, error, cancelled: false }),
            Err(Blocked::Store { key, error }) => return Err(Outcome::Failed { key: Some(key), error, cancelled: false }),
        };
    if let Some(expected) = expected.filter(|e| **e != fp) {
        let mismatch = KeyMismatch {
            node: node.id.clone(),
            here: key.clone(),
            submitted: expected.key(),
            why: fp.diff(expected, &inputs.sources).join("; "),
            environment: fp.environment != expected.environment,
        };
        let error = render(&mismatch);
        return Err(Outcome::Failed { key: Some(key), error, cancelled: false });
    }
    match verdict {
        Verdict::Hit(_) if ex.options.rerun.contains(&node.id) && !ex.options.pull_only => {}
        Verdict::Hit(rec) => {
            if let Err(e) = ex.store.set_ref(ex.pipeline, &node.id, &key) {
                return Err(Outcome::Failed { key: Some(key), error: crate::error::render(&e), cancelled: false });
            }
            return Err(Outcome::Done { state: RunState::Cached, key, outputs: rec.outputs, resumed_from: None });
        }
        Verdict::Run(Why::Damaged { object, corrupt, output }) => {
            let what = if corrupt { "is corrupt" } else { "is missing" };
            let msg = match (corrupt, ex.store.quarantine(&object)) {
                (true, Some(q)) => format!("object {} ({output}) {what}; moved to {}; recomputing", object.short(), q.display()),
                _ => format!("object {} ({output}) {what}; recomputing", object.short()),
            };
            ex.reporter.event(&Event::Warning { node: &node.id, message: &msg });
            tracing::warn!(node = %node.id, key = %key, object = %object.hash, "{msg}");
            ex.store.remove_record(&key);
        }
        Verdict::Run(Why::BadRecord(e)) => {
            ex.reporter.event(&Event::Warning { node: &node.id, message: &e });
            ex.store.remove_record(&key);
        }
        Verdict::Run(_) => {}
    }
    if ex.cancel.load(Ordering::SeqCst) {
        return Err(Outcome::Failed { key: Some(key), error: "interrupted before start".into(), cancelled: true });
    }
    Ok((inputs, fp, key))
}

impl NodeRunner for Local {
    fn run(&self, env: &RunEnv<'_>, job: Job<'_>) -> Result<NodeRecord, Failure> {
        let Job { node, fingerprint, key, inputs, checkpoints, .. } = job;
        tracing::info!(node = %node.id, key = %key, stage = %node.stage, "running");
        let scratch = env.store.scratch(&key).map_err(|e| Failure { error: crate::error::render(&e), cancelled: false })?;
        // Upstream identity only for kinds whose key holds it (see `StageKind::reads_input_identity`).
        let (input_nodes, input_coords) = if node.kind.reads_input_identity() { (inputs.sources.clone(), inputs.coords) } else { Default::default() };
        let mut ctx = RunContext::new(
            node.id.clone(),
            node.params.clone(),
            inputs.paths,
            input_nodes,
            input_coords,
            node.outputs.clone(),
            scratch.clone(),
            env.workspace.to_path_buf(),
            env.threads,
            // The progress also reaches the store, for `pipe status` elsewhere while this runs.
            Arc::new(crate::live::LiveProgress::new(env.reporter.progress(&node.id), env.store.root(), &node.id, &key)),
            env.cancel.clone(),
        );
        // A training kind's checkpoints: keyed by the fingerprint without its horizon (`epochs`).
        ctx.job.checkpoints = checkpoints;
        let start = Instant::now();
        let result = node.kind.run(&ctx);
        let log = ctx.take_log();
        env.reporter.event(&Event::ProgressDone { node: &node.id });
        // Every attempt's whole log is kept (bounded, `crate::log`): a failed one under
        // `logs/<key>.json` for `pipe show`, a successful one in its record.
        let fail = |error: String, cancelled: bool| {
            let _ = std::fs::remove_dir_all(&scratch);
            let message = log.failure_message(&error);
            let attempt = Attempt {
                node: node.id.clone(),
                stage: node.stage.clone(),
                key: key.clone(),
                finished_at: now(),
                duration_s: start.elapsed().as_secs_f64(),
                error: error.clone(),
                stderr_tail: log.stderr_tail(),
                log: log.text(),
                cancelled,
                fingerprint: Some(fingerprint.clone()),
            };
            if let Err(e) = env.store.write_attempt(&attempt) {
                tracing::warn!(node = %node.id, "cannot keep the failed attempt's log: {}", crate::error::render(&e));
            }
            Failure { error: message, cancelled }
        };
        match result {
            Err(StageError::Cancelled) => return Err(fail("interrupted".into(), true)),
            Err(e) => return Err(fail(render(&e), false)),
            Ok(()) => {}
        }
        let mut objects = BTreeMap::new();
        for o in &node.outputs {
            let path = scratch.join(&o.file);
            if path.is_dir() {
                return Err(fail(
                    format!(
                        "declared output `{}` ({}) is a directory; an output is one file: pack it, e.g. `tar -cf ${{outputs.{}}} -C DIR .`",
                        o.name, o.file, o.name
                    ),
                    false,
                ));
            }
            if !path.is_file() {
                let what = if std::fs::symlink_metadata(&path).is_ok() { "is a dangling symlink or not a regular file" } else { "was not written" };
                return Err(fail(format!("stage's declared output `{}` ({}) {what}", o.name, o.file), false));
            }
            match env.store.put_file(&path) {
                Ok(obj) => {
                    objects.insert(o.name.clone(), obj);
                }
                Err(e) => return Err(fail(crate::error::render(&e), false)),
            }
        }
        let _ = std::fs::remove_dir_all(&scratch);
        let record = NodeRecord {
            key,
            node: node.id.clone(),
            stage: node.stage.clone(),
            fingerprint,
            input_sources: inputs.sources,
            outputs: objects,
            duration_s: start.elapsed().as_secs_f64(),
            finished_at: now(),
            log: log.text(),
        };
        env.store.write_record(&record).map_err(|e| Failure { error: crate::error::render(&e), cancelled: false })?;
        Ok(record)
    }
}

/// Why an output could not be published at `path` (relative to the workspace).
#[derive(Debug)]
pub struct PublishError {
    /// The destination, as the pipeline file names it.
    pub path: PathBuf,
    /// What stopped it.
    pub what: PublishFailure,
}

/// What stopped a publish.
#[derive(Debug)]
pub enum PublishFailure {
    /// A directory sits where the file goes.
    DirectoryInTheWay,
    /// The file there was edited by hand since pipe published it (and `--overwrite` was not given).
    EditedSince,
    /// A file pipe never wrote is there, and the destination was named by the user
    /// ([`Foreign::Refuse`]; `--overwrite` not given).
    NotOurs,
    /// A file pipe did not write there could not be copied into `backups/` first.
    Backup(std::io::Error),
    /// The stored output is on the remote store only, which could not be read.
    Unavailable(String),
    /// The stored output could not be read.
    Read(std::io::Error),
    /// The file could not be written.
    Write(std::io::Error),
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "publish {}: {}", self.path.display(), self.what)
    }
}

impl std::fmt::Display for PublishFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublishFailure::DirectoryInTheWay => write!(f, "a directory is in the way"),
            PublishFailure::EditedSince => write!(f, "the file was edited since pipe published it; not overwritten"),
            PublishFailure::NotOurs => write!(f, "a file pipe did not write is there; not overwritten"),
            PublishFailure::Backup(e) => write!(f, "cannot keep a copy of the existing file: {e}"),
            PublishFailure::Unavailable(e) => write!(f, "{e}"),
            PublishFailure::Read(e) => write!(f, "reading the stored output: {e}"),
            PublishFailure::Write(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for PublishError {}

impl Hint for PublishError {
    fn hint(&self) -> Option<String> {
        let p = self.path.display();
        match &self.what {
            PublishFailure::DirectoryInTheWay => Some(format!("move it away, or publish to `{p}/` to write into it")),
            PublishFailure::EditedSince => Some("move it away, or pass `--overwrite` to overwrite it".into()),
            PublishFailure::NotOurs => Some("name another file, or pass `--overwrite` to overwrite it".into()),
            PublishFailure::Write(_) => Some("check that its folder can be created and written".into()),
            PublishFailure::Backup(_) | PublishFailure::Unavailable(_) | PublishFailure::Read(_) => None,
        }
    }
}

/// A Slurm job's node whose key here differs from the key `pipe run` submitted it under: the job
/// refuses to run (it would store a result under a key nobody asked for).
#[derive(Debug)]
pub struct KeyMismatch {
    /// The node's id.
    pub node: String,
    /// The key computed in the job.
    pub here: String,
    /// The key the submitter computed.
    pub submitted: String,
    /// What differs, per fingerprint part.
    pub why: String,
    /// Whether the stage's declared environment (device, driver, data files) differs.
    pub environment: bool,
}

impl std::fmt::Display for KeyMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} has key {} here, not the submitted {} ({})", self.node, self.here, self.submitted, self.why)
    }
}

impl Hint for KeyMismatch {
    fn hint(&self) -> Option<String> {
        Some(if self.environment {
            "this machine differs from the one that ran `pipe run` in what the stage declares as its environment: pin it in the pipeline (e.g. `device: cuda` instead of `auto`) or submit from a machine like the nodes".into()
        } else {
            "the pipeline file, a param or an input file changed since `pipe run` submitted it: run it again".into()
        })
    }
}

/// Copies published outputs into the workspace when their content differs. Never overwrites silently
/// what pipe did not write: a file edited since pipe published it stops the node (unless
/// `--overwrite`); a file pipe never wrote there is first copied into the store's `backups/`.
/// Errors name the destination.
fn publish(ex: &Executor<'_>, node: &NodeSpec, outputs: &BTreeMap<String, ObjectRef>) -> Result<(), PublishError> {
    for (name, rel) in &node.publish {
        let Some(obj) = outputs.get(name) else { continue };
        let bytes = || {
            // Only on the remote (a Slurm driver's cache): fetch it; a local one is read as is.
            if !ex.store.object_path(obj).is_file() {
                if let crate::store::Verify::Unavailable(e) = ex.store.verify(obj) {
                    return Err(PublishFailure::Unavailable(e));
                }
            }
            std::fs::read(ex.store.object_path(obj)).map_err(PublishFailure::Read)
        };
        let dest = ex.workspace.join(rel);
        if let Some(kept) = publish_file(ex.store, rel, &dest, &obj.hash, bytes, ex.options.overwrite, Foreign::Backup)? {
            let msg = format!("{} was not written by this pipeline's last run; the previous file is kept at {}", rel.display(), kept.display());
            ex.reporter.event(&Event::Warning { node: &node.id, message: &msg });
        }
    }
    Ok(())
}

/// What [`publish_file`] does with a file at its destination that pipe did not write there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Foreign {
    /// Copy it into the store's `backups/` first, then replace it (a pipeline's published outputs).
    Backup,
    /// Keep it and fail unless `overwrite` (a path the user named on the command line).
    Refuse,
}

/// The publish rule for one workspace file: writes `bytes()` (blake3 `hash`) at `dest` (`rel` in
/// messages) unless it already holds them, and remembers that pipe wrote it. A file edited by hand
/// since pipe wrote it is kept (an error) unless `overwrite`; a file pipe never wrote there is
/// backed up or refused as `foreign` says. Returns where a backup was kept, if one was.
pub fn publish_file(
    store: &Store,
    rel: &Path,
    dest: &Path,
    hash: &str,
    bytes: impl FnOnce() -> Result<Vec<u8>, PublishFailure>,
    overwrite: bool,
    foreign: Foreign,
) -> Result<Option<PathBuf>, PublishError> {
    let at = |what: PublishFailure| PublishError { path: rel.to_path_buf(), what };
    let mut kept = None;
    match std::fs::metadata(dest) {
        Ok(m) if m.is_dir() => return Err(at(PublishFailure::DirectoryInTheWay)),
        Ok(_) => {
            // Hashed once: already the content (nothing to write), or what pipe last wrote here.
            let current = crate::hash::hash_file(dest).ok();
            if current.as_deref() == Some(hash) {
                store.set_published(dest, hash);
                return Ok(None);
            }
            match store.published_hash(dest) {
                Some(last) if current.as_deref() == Some(last.as_str()) => {}
                Some(_) if !overwrite => return Err(at(PublishFailure::EditedSince)),
                None if foreign == Foreign::Refuse && !overwrite => return Err(at(PublishFailure::NotOurs)),
                _ => kept = Some(store.backup(dest).map_err(|e| at(PublishFailure::Backup(e)))?),
            }
        }
        Err(_) => {}
    }
    let bytes = bytes().map_err(at)?;
    write_atomic(dest, &bytes).map_err(|e| at(PublishFailure::Write(e)))?;
    store.set_published(dest, hash);
    Ok(kept)
}
