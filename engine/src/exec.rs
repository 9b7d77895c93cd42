//! The local scheduler: `jobs` scheduler threads take ready nodes from a queue, restore cache hits
//! and run the rest. (Plain threads, not a rayon pool: stages use rayon themselves, and a node
//! running inside the scheduler's pool would let rayon's work stealing nest other nodes on its
//! stack while it waits.)
//!
//! Every node takes one path ([`process`]): [`prepare`] resolves its inputs and looks its key up,
//! breaking out with the node's [`NodeEnd`] on a hit, a failure or an interrupt, else handing a
//! [`Job`] to a [`NodeRunner`] (here, [`Local`]; or Slurm), which ends it.
//!
//! A node becomes ready when all its dependencies completed. A failure stops only its
//! dependents (or everything with `fail_fast`); cancellation (Ctrl-C) starts nothing new and
//! keeps every completed node, so the next run resumes.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::config::NodeSpec;
use crate::error::{render, Hint};
pub use crate::failure::{InputError, KeyMismatch, NodeFailure, StageFailure, StoreFailure};
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
    /// The run's id: each key it computes is claimed in the store under it first
    /// ([`Store::claim`]), so another run needing the same key waits for it and then finds it
    /// cached. `None` claims nothing (a Slurm job's node: its driver holds the claim).
    pub claim_as: Option<String>,
}

/// How a node ended: what the scheduler, the run record and the terminal are told.
#[derive(Debug)]
pub enum NodeEnd {
    /// It ran (here, or as a Slurm job); the store holds its outputs and record.
    Ran {
        /// Its record.
        record: NodeRecord,
        /// The epoch its training resumed from (a checkpoint), when it did not start over.
        resumed_from: Option<u64>,
    },
    /// The store held its result.
    Cached(NodeRecord),
    /// It did not complete.
    Failed {
        /// Its key, when its inputs could be resolved.
        key: Option<String>,
        /// Why.
        failure: NodeFailure,
    },
    /// The run was interrupted before or while it ran (Ctrl-C, `scancel`).
    Cancelled {
        /// Its key, when its inputs could be resolved.
        key: Option<String>,
        /// What stopped it (with the end of its log when it had started).
        reason: String,
    },
    /// Not an end yet: another run holds the key's claim (it computes the node now). The
    /// scheduler takes other ready nodes and tries this one again later, when it finds the other
    /// run's result cached or takes the claim over; never recorded.
    Busy {
        /// The key.
        key: String,
        /// Who holds it, as it describes itself.
        holder: Option<crate::store::ClaimInfo>,
    },
}

impl NodeEnd {
    /// The failure of the node with key `key`.
    pub fn failed(key: &str, failure: impl Into<NodeFailure>) -> NodeEnd {
        NodeEnd::Failed { key: Some(key.to_string()), failure: failure.into() }
    }

    /// The node's entry in the run record, having taken `duration_s`: the one place a failure is
    /// rendered for the record's `error` (and kept typed in its `failure`).
    pub fn entry(&self, node: &NodeSpec, duration_s: f64) -> RunNode {
        let cpu_s = match self {
            NodeEnd::Ran { record, .. } => record.cpu_s,
            _ => None,
        };
        let (state, key, error, failure, resumed_from) = match self {
            NodeEnd::Ran { record, resumed_from } => (RunState::Ran, Some(&record.key), None, None, *resumed_from),
            NodeEnd::Cached(record) => (RunState::Cached, Some(&record.key), None, None, None),
            NodeEnd::Failed { key, failure } => (RunState::Failed, key.as_ref(), Some(failure.text()), Some(failure.record()), None),
            NodeEnd::Cancelled { key, reason } => (RunState::Cancelled, key.as_ref(), Some(reason.clone()), None, None),
            NodeEnd::Busy { key, holder } => (RunState::Cancelled, Some(key), Some(busy_message(holder.as_ref())), None, None),
        };
        RunNode { node: node.id.clone(), stage: node.stage.clone(), state, duration_s, cpu_s, key: key.cloned(), error, resumed_from, failure }
    }
}

/// What a run says of a node whose key another run computes.
fn busy_message(holder: Option<&crate::store::ClaimInfo>) -> String {
    let who = holder.map_or_else(|| "another run".to_string(), |h| format!("run {} (pid {} on {})", h.run, h.pid, h.host));
    format!("{who} is computing this node; waiting for its result")
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
    /// The epoch of the checkpoint it resumes from, when there is one (the run record keeps it).
    pub resumes_from: Option<u64>,
    /// This run's claims, held until the job ends ([`RunOptions::claim_as`]): on the key, then
    /// (a training kind) on its checkpoint prefix.
    pub claims: Vec<crate::store::Claim>,
}

/// Runs nodes that missed the cache: in this process ([`Local`]) or elsewhere (Slurm: one job per
/// node). The scheduler decides what runs; a runner only runs it.
pub trait NodeRunner: Sync {
    /// Runs `job` and blocks until it ends: [`NodeEnd::Ran`] once the store holds its outputs,
    /// then its record; else [`NodeEnd::Failed`] or [`NodeEnd::Cancelled`].
    fn run(&self, env: &RunEnv<'_>, job: Job<'_>) -> NodeEnd;
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
    /// How often each node found its key another run's (said the first time; the retries back off).
    busy: Mutex<std::collections::HashMap<usize, u32>>,
}

/// Ready nodes, taken last-in first-out: a finished node's dependents run next (depth first), so
/// each grid cell reaches its results early instead of every cell training before any evaluates.
/// A node another run computes ([`NodeEnd::Busy`]) waits in `deferred` until its next try.
#[derive(Default)]
struct Queue {
    ready: Vec<usize>,
    running: usize,
    /// (when to try again, node).
    deferred: Vec<(Instant, usize)>,
}

impl Shared<'_> {
    fn push(&self, i: usize) {
        lock(&self.queue).ready.push(i);
        self.wake.notify_one();
    }

    /// Node `i`'s key is another run's now, for the `tries`-th time: try it again later (after
    /// 0.1 s, doubling to 2 s).
    fn defer(&self, i: usize, tries: u32) {
        let wait = Duration::from_millis(100 << tries.saturating_sub(1).min(4)).min(Duration::from_secs(2));
        lock(&self.queue).deferred.push((Instant::now() + wait, i));
    }

    /// The next ready node (else a deferred one whose time has come), or None when nothing is
    /// ready, deferred or running (the run is over).
    fn next(&self) -> Option<usize> {
        let mut q = lock(&self.queue);
        loop {
            if let Some(i) = q.ready.pop() {
                q.running += 1;
                return Some(i);
            }
            let now = Instant::now();
            if let Some(at) = q.deferred.iter().position(|d| d.0 <= now) {
                let (_, i) = q.deferred.swap_remove(at);
                q.running += 1;
                return Some(i);
            }
            if q.running == 0 && q.deferred.is_empty() {
                self.wake.notify_all();
                return None;
            }
            q = match q.deferred.iter().map(|d| d.0).min() {
                Some(t) => self.wake.wait_timeout(q, t.saturating_duration_since(now)).unwrap_or_else(|e| e.into_inner()).0,
                None => self.wake.wait(q).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }

    fn finished(&self) {
        lock(&self.queue).running -= 1;
        self.wake.notify_all();
    }

    /// Node `i` completed (its outputs are known): dependents whose last dependency it was are ready.
    fn release(&self, i: usize) {
        for d in self.ex.graph.dependents(self.ex.graph.index_of(i)) {
            if self.pending[d.index()].fetch_sub(1, Ordering::SeqCst) == 1 {
                self.push(d.index());
            }
        }
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
            busy: Mutex::default(),
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
            let rn = match blocked {
                Some(d) => RunNode::not_run(&node.id, &node.stage, RunState::Skipped, format!("upstream {} did not complete", self.graph.node(d).id)),
                None => RunNode::not_run(&node.id, &node.stage, RunState::Cancelled, "not started: run interrupted".into()),
            };
            self.reporter.event(&Event::Finished { node: &rn });
            state_of[i.index()] = Some(rn.state);
        }
    }
}

/// The scheduler's side of one ready node: [`process`] it, then hand its outputs downstream,
/// publish them and report its end.
fn visit(sh: &Shared<'_>, i: usize) {
    let ex = sh.ex;
    if ex.cancel.load(Ordering::SeqCst) || lock(&sh.results)[i].is_some() {
        return;
    }
    let node = ex.graph.node(ex.graph.index_of(i));
    let start = Instant::now();
    let end = catch_unwind(AssertUnwindSafe(|| process(ex, i, &sh.outputs, None))).unwrap_or_else(|p| {
        let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
        NodeEnd::Failed {
            key: None,
            failure: StageFailure { error: StageError::Failed(format!("stage panicked: {msg}")), log: String::new() }.into(),
        }
    });
    if let NodeEnd::Busy { holder, .. } = &end {
        let tries = *lock(&sh.busy).entry(i).and_modify(|n| *n += 1).or_insert(1);
        if tries == 1 {
            ex.reporter.event(&Event::Warning { node: &node.id, message: &busy_message(holder.as_ref()) });
        }
        sh.defer(i, tries);
        return;
    }
    let mut rn = end.entry(node, start.elapsed().as_secs_f64());
    match end {
        NodeEnd::Busy { .. } => unreachable!("deferred above"),
        NodeEnd::Ran { record, .. } | NodeEnd::Cached(record) => {
            // A failed publish fails the node (its result is stored; dependents still run).
            if let Err(e) = publish(ex, node, &record.outputs) {
                let failure = NodeFailure::Publish(e);
                (rn.state, rn.error, rn.failure) = (RunState::Failed, Some(failure.text()), Some(failure.record()));
            }
            lock(&sh.outputs)[i] = Some(record.outputs);
            ex.reporter.event(&Event::Finished { node: &rn });
            lock(&sh.results)[i] = Some(rn.state);
            sh.release(i);
        }
        NodeEnd::Failed { .. } => {
            if ex.options.fail_fast {
                ex.cancel.store(true, Ordering::SeqCst);
            }
            ex.reporter.event(&Event::Finished { node: &rn });
            lock(&sh.results)[i] = Some(rn.state);
            release_after_failure(sh, i);
        }
        NodeEnd::Cancelled { .. } => {
            ex.reporter.event(&Event::Finished { node: &rn });
            lock(&sh.results)[i] = Some(rn.state);
        }
    }
}

/// After node `i` failed (or was skipped): dependents that reach it only through partial
/// (`allow_missing`) gathers may still run without it; every other dependent is skipped, and so on
/// down the graph.
fn release_after_failure(sh: &Shared<'_>, i: usize) {
    let ex = sh.ex;
    let failed_id = &ex.graph.node(ex.graph.index_of(i)).id;
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
            let mut results = lock(&sh.results);
            let newly = results[d.index()].is_none();
            if newly {
                let rn = RunNode::not_run(&dn.id, &dn.stage, RunState::Skipped, format!("upstream {failed_id} did not complete"));
                ex.reporter.event(&Event::Finished { node: &rn });
                results[d.index()] = Some(RunState::Skipped);
            }
            newly
        };
        if newly {
            release_after_failure(sh, d.index());
        }
    }
}

/// Runs node `i` given its upstream outputs, on the path every node takes ([`process`]): a Slurm
/// job's side of [`crate::slurm::Slurm`] (its executor's runner is [`Local`]). The upstream
/// objects are first fetched (and verified) into this machine's cache. `expected` (the
/// submitter's fingerprint) guards against the pipeline or the environment differing from where
/// it was submitted. Outputs are not published: the submitter does that.
pub fn run_node(ex: &Executor<'_>, i: usize, outputs: Outputs, expected: &Fingerprint) -> NodeEnd {
    for obj in outputs.iter().flatten().flat_map(|o| o.values()) {
        let failure: NodeFailure = match ex.store.verify(obj) {
            crate::store::Verify::Ok => continue,
            crate::store::Verify::Missing => InputError::Missing { object: obj.short().to_string(), store: ex.store.describe() }.into(),
            crate::store::Verify::Corrupt { actual } => {
                InputError::Corrupt { object: obj.short().to_string(), store: ex.store.describe(), actual }.into()
            }
            crate::store::Verify::Unavailable(e) => StoreFailure::Unavailable(e).into(),
        };
        return NodeEnd::Failed { key: None, failure };
    }
    process(ex, i, &Mutex::new(outputs), Some(expected))
}

/// One node from its inputs to its end: [`prepare`]; on a miss, the executor's runner; then its ref.
fn process(ex: &Executor<'_>, i: usize, outputs: &Mutex<Outputs>, expected: Option<&Fingerprint>) -> NodeEnd {
    let job = match prepare(ex, i, outputs, expected) {
        ControlFlow::Continue(job) => job,
        ControlFlow::Break(end) => return end,
    };
    let (node, key) = (job.node, job.key.clone());
    ex.reporter.event(&Event::Started { node: &node.id });
    match ex.runner.run(&ex.env(), job) {
        NodeEnd::Ran { record, resumed_from } => match ex.store.set_ref(ex.pipeline, &node.id, &key) {
            Ok(()) => NodeEnd::Ran { record, resumed_from },
            Err(e) => NodeEnd::failed(&key, e),
        },
        end => end,
    }
}

/// Resolves node `i`'s inputs and looks its key up (buck2's prepared action): a cache hit (its
/// ref set), a failure or an interrupt breaks out with the node's end; a miss continues with the
/// job to run. With `expected`, a fingerprint other than the submitter's is a failure; with
/// `pull_only`, so is a miss.
fn prepare<'a>(ex: &'a Executor<'_>, i: usize, outputs: &Mutex<Outputs>, expected: Option<&Fingerprint>) -> ControlFlow<NodeEnd, Job<'a>> {
    let at = ex.graph.index_of(i);
    let node = ex.graph.node(at);
    let (inputs, upstream) = {
        let outs = lock(outputs);
        let upstream: BTreeMap<String, BTreeMap<String, ObjectRef>> =
            ex.graph.dependencies(at).into_iter().filter_map(|d| Some((ex.graph.node(d).id.clone(), outs[d.index()].clone()?))).collect();
        (resolve_inputs(ex.graph, node, &outs, ex.store, &ex.workspace), upstream)
    };
    let unresolved = |e| ControlFlow::Break(NodeEnd::Failed { key: None, failure: InputError::Unresolved(e).into() });
    let inputs = match inputs {
        Ok(r) => r,
        Err(e) => return unresolved(e),
    };
    // A Slurm driver needs only to know that a hit's objects exist: the jobs fetch their inputs.
    let Decided { inputs, fingerprint: fp, key, verdict } =
        match decide_resolved(node, inputs, ex.store, ex.pipeline, ex.runner.fetches_hits(), false) {
            Ok(d) => d,
            Err(Blocked::Input(e)) => return unresolved(e),
            Err(Blocked::Store { key, error }) => return ControlFlow::Break(NodeEnd::failed(&key, StoreFailure::Unavailable(error))),
        };
    if let Some(expected) = expected.filter(|e| **e != fp) {
        let mismatch = KeyMismatch {
            node: node.id.clone(),
            here: key.clone(),
            submitted: expected.key(),
            why: fp.diff(expected, &inputs.sources).join("; "),
            environment: fp.environment != expected.environment,
        };
        return ControlFlow::Break(NodeEnd::failed(&key, mismatch));
    }
    match verdict {
        Verdict::Hit(_) if ex.options.rerun.contains(&node.id) && !ex.options.pull_only => {}
        Verdict::Hit(rec) => {
            return ControlFlow::Break(match ex.store.set_ref(ex.pipeline, &node.id, &key) {
                Ok(()) => NodeEnd::Cached(*rec),
                Err(e) => NodeEnd::failed(&key, e),
            });
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
        return ControlFlow::Break(NodeEnd::Cancelled { key: Some(key), reason: "interrupted before start".into() });
    }
    if ex.options.pull_only {
        return ControlFlow::Break(NodeEnd::failed(&key, StoreFailure::NotStored { store: ex.store.describe(), key: key.clone() }));
    }
    let claims = match &ex.options.claim_as {
        Some(run) => match claim(ex, node, &key, crate::checkpoint::prefix(&fp, &node.kind.params()).as_deref(), run) {
            ControlFlow::Continue(c) => c,
            ControlFlow::Break(end) => return ControlFlow::Break(end),
        },
        None => Vec::new(),
    };
    let resume = !(ex.options.no_resume || ex.options.rerun.contains(&node.id));
    // Where a training node picks up (the run record keeps it): its latest checkpoint.
    let (checkpoints, resumes_from) = match crate::checkpoint::for_node(ex.store, &fp, &node.kind.params(), resume) {
        Some((c, point)) => (Some(c), point.map(|(epoch, _)| epoch)),
        None => (None, None),
    };
    ControlFlow::Continue(Job { node, fingerprint: fp, key, inputs, upstream, checkpoints, resumes_from, claims })
}

/// Claims `key` for run `run` ([`crate::store::Claim`]), then a training kind's checkpoint
/// `prefix` (so a run training the same model to another `epochs` waits, then resumes from this
/// one's checkpoint). Where another run holds either, breaks out [`NodeEnd::Busy`] (the scheduler
/// tries again later); where that run has stored the result meanwhile, as a cache hit.
fn claim(ex: &Executor<'_>, node: &NodeSpec, key: &str, prefix: Option<&str>, run: &str) -> ControlFlow<NodeEnd, Vec<crate::store::Claim>> {
    let info = crate::store::ClaimInfo {
        node: node.id.clone(),
        run: run.to_string(),
        host: crate::live::hostname(),
        pid: std::process::id(),
        since: now(),
        job: None,
    };
    let mut claims = Vec::new();
    for name in std::iter::once(key).chain(prefix) {
        match ex.store.try_claim(name, &info) {
            Ok(crate::store::Claimed::Held(c)) => claims.push(c),
            Ok(crate::store::Claimed::Busy(holder)) => return ControlFlow::Break(NodeEnd::Busy { key: key.to_string(), holder }),
            Err(e) => return ControlFlow::Break(NodeEnd::failed(key, e)),
        }
    }
    // The run we waited for (or one that finished between our lookup and our claim) may have
    // stored the result: use it (unless this node is forced, `-f`).
    if !ex.options.rerun.contains(&node.id) {
        // Looked up as before the claim: a record whose objects are damaged is no result.
        if let crate::plan::Lookup::Hit(rec) = crate::plan::lookup(ex.store, key, ex.runner.fetches_hits()) {
            drop(claims);
            return ControlFlow::Break(match ex.store.set_ref(ex.pipeline, &node.id, key) {
                Ok(()) => NodeEnd::Cached(rec),
                Err(e) => NodeEnd::failed(key, e),
            });
        }
    }
    ControlFlow::Continue(claims)
}

impl NodeRunner for Local {
    fn run(&self, env: &RunEnv<'_>, job: Job<'_>) -> NodeEnd {
        let Job { node, fingerprint, key, inputs, checkpoints, resumes_from, .. } = job;
        tracing::info!(node = %node.id, key = %key, stage = %node.stage, "running");
        let scratch = match env.store.scratch(&key) {
            Ok(s) => s,
            Err(e) => return NodeEnd::failed(&key, e),
        };
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
        // A training kind's checkpoints: keyed by the fingerprint without its horizon (`epochs`),
        // kept in step with the remote store while it trains.
        let mirror = checkpoints.as_ref().and_then(|c| crate::checkpoint::Mirror::start(env.store, c));
        ctx.job.checkpoints = checkpoints;
        let start = Instant::now();
        let result = node.kind.run(&ctx);
        drop(mirror);
        let log = ctx.take_log();
        env.reporter.event(&Event::ProgressDone { node: &node.id });
        let tail = log.failure_message("");
        // `None`: interrupted.
        let stored = match result {
            Err(StageError::Cancelled) => Err(None),
            Err(error) => Err(Some(StageFailure { error, log: tail }.into())),
            Ok(()) => store_outputs(env.store, node, &scratch, tail).map_err(Some),
        };
        let _ = std::fs::remove_dir_all(&scratch);
        let objects = match stored {
            Ok(objects) => objects,
            Err(failure) => {
                // Every attempt's whole log is kept (bounded, `crate::log`): a failed one under
                // `logs/<key>.json` for `pipe show`, a successful one in its record.
                let attempt = Attempt {
                    node: node.id.clone(),
                    stage: node.stage.clone(),
                    key: key.clone(),
                    finished_at: now(),
                    duration_s: start.elapsed().as_secs_f64(),
                    error: failure.as_ref().map_or_else(|| "interrupted".into(), |f| render(f)),
                    stderr_tail: log.stderr_tail(),
                    log: log.text(),
                    cancelled: failure.is_none(),
                    kind: failure.as_ref().map(NodeFailure::kind),
                    fingerprint: Some(fingerprint.clone()),
                };
                if let Err(e) = env.store.write_attempt(&attempt) {
                    tracing::warn!(node = %node.id, "cannot keep the failed attempt's log: {}", render(&e));
                }
                return match failure {
                    Some(failure) => NodeEnd::Failed { key: Some(key), failure },
                    None => NodeEnd::Cancelled { key: Some(key), reason: log.failure_message("interrupted") },
                };
            }
        };
        let record = NodeRecord {
            key,
            node: node.id.clone(),
            stage: node.stage.clone(),
            fingerprint,
            input_sources: inputs.sources,
            outputs: objects,
            duration_s: start.elapsed().as_secs_f64(),
            cpu_s: ctx.cpu_seconds(),
            threads: Some(env.threads),
            finished_at: now(),
            log: log.text(),
        };
        match env.store.write_record(&record) {
            Ok(()) => NodeEnd::Ran { record, resumed_from: resumes_from },
            Err(e) => NodeEnd::failed(&record.key, e),
        }
    }
}

/// Moves `node`'s declared outputs from `scratch` into the store. Errors: an output missing or not
/// one file (the stage's fault: `log` is the end of its log), or the store's.
fn store_outputs(store: &Store, node: &NodeSpec, scratch: &Path, log: String) -> Result<BTreeMap<String, ObjectRef>, NodeFailure> {
    let mut objects = BTreeMap::new();
    for o in &node.outputs {
        let path = scratch.join(&o.file);
        let error = if path.is_dir() {
            StageError::Refused {
                message: format!("declared output `{}` ({}) is a directory; an output is one file", o.name, o.file),
                hint: format!("pack it, e.g. `tar -cf ${{outputs.{}}} -C DIR .`", o.name),
            }
        } else if !path.is_file() {
            let what = if std::fs::symlink_metadata(&path).is_ok() { "is a dangling symlink or not a regular file" } else { "was not written" };
            StageError::Failed(format!("stage's declared output `{}` ({}) {what}", o.name, o.file))
        } else {
            objects.insert(o.name.clone(), store.put_file(&path)?);
            continue;
        };
        return Err(StageFailure { error, log }.into());
    }
    Ok(objects)
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
        // One run at a time writes a given workspace file (and what pipe remembers of it), or
        // another run publishing there between the two could take our write for a hand edit.
        let _claim = publishing(ex, &dest);
        if let Some(kept) = publish_file(ex.store, rel, &dest, &obj.hash, bytes, ex.options.overwrite, Foreign::Backup)? {
            let msg = format!("{} was not written by this pipeline's last run; the previous file is kept at {}", rel.display(), kept.display());
            ex.reporter.event(&Event::Warning { node: &node.id, message: &msg });
        }
    }
    Ok(())
}

/// Holds the claim on publishing `dest` (named by the blake3 of its path), waiting the
/// milliseconds another run's publishing there takes; `None` where no claim can be made (a
/// read-only store: then nothing else writes there either).
fn publishing(ex: &Executor<'_>, dest: &Path) -> Option<crate::store::Claim> {
    ex.options.claim_as.as_ref()?;
    let name = blake3::hash(dest.as_os_str().as_encoded_bytes()).to_hex().to_string();
    let info = crate::store::ClaimInfo { node: dest.display().to_string(), pid: std::process::id(), since: now(), ..Default::default() };
    loop {
        match ex.store.try_claim(&name, &info) {
            Ok(crate::store::Claimed::Held(c)) => return Some(c),
            Ok(crate::store::Claimed::Busy(_)) => std::thread::sleep(std::time::Duration::from_millis(5)),
            Err(_) => return None,
        }
    }
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

#[cfg(test)]
mod tests {
    //! The scheduler against a fake runner: each test asserts exactly which nodes ran (the
    //! runner's own witness) and how every node ended (the run record the events fold into).

    use std::collections::{BTreeSet, HashSet};

    use super::*;
    use crate::config::InputRef;
    use crate::graph::GraphBuilder;
    use crate::report::{Recorder, Silent};
    use crate::stage::{InputDecl, OutputSpec, ParamSpec, Params};
    use crate::store::{FailureKind, Tally};
    use crate::value::Value;

    struct Fake;
    impl crate::stage::StageKind for Fake {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn version(&self) -> u32 {
            1
        }
        fn params(&self) -> Vec<ParamSpec> {
            Vec::new()
        }
        fn inputs(&self) -> InputDecl {
            InputDecl::Any
        }
        fn outputs(&self, _: &Params) -> Result<Vec<OutputSpec>, String> {
            Ok(vec![OutputSpec::new("out", "out.txt")])
        }
        fn run(&self, _: &RunContext) -> Result<(), StageError> {
            unreachable!("the fake runner runs nodes")
        }
    }

    /// A node `id` reading, per input name, the `out` of the nodes at these indices; `partial`
    /// names its `allow_missing` gathers.
    fn node(id: &str, inputs: &[(&str, &[usize])], partial: &[&str]) -> NodeSpec {
        NodeSpec {
            id: id.into(),
            stage: id.split('[').next().unwrap_or(id).into(),
            kind: Arc::new(Fake),
            coords: Vec::new(),
            // Distinct keys: the id is a param.
            params: Params(BTreeMap::from([("id".to_string(), Value::Str(id.into()))])),
            inputs: inputs
                .iter()
                .map(|(name, ups)| (name.to_string(), ups.iter().map(|&u| InputRef::Node { node: u, output: "out".into() }).collect()))
                .collect(),
            partial_inputs: partial.iter().map(|p| p.to_string()).collect(),
            outputs: vec![OutputSpec::new("out", "out.txt")],
            publish: Vec::new(),
        }
    }

    /// Runs nodes as told: fails those in `fail`, ends those in `interrupt` as a Ctrl-C during their
    /// run would (the flag set, the node cancelled); stores every other node's output and record.
    /// `ran` is its witness: each node it was handed, with the upstream ids it read.
    #[derive(Default)]
    struct FakeRunner {
        fail: HashSet<&'static str>,
        interrupt: HashSet<&'static str>,
        ran: Mutex<Vec<(String, Vec<String>)>>,
    }

    impl NodeRunner for FakeRunner {
        fn run(&self, env: &RunEnv<'_>, job: Job<'_>) -> NodeEnd {
            let id = job.node.id.as_str();
            let read: Vec<String> = job.inputs.sources.values().flatten().cloned().collect();
            lock(&self.ran).push((id.to_string(), read));
            if self.interrupt.contains(id) {
                env.cancel.store(true, Ordering::SeqCst);
                return NodeEnd::Cancelled { key: Some(job.key), reason: "interrupted".into() };
            }
            if self.fail.contains(id) {
                return NodeEnd::failed(&job.key, StageFailure { error: StageError::Failed(format!("{id} failed")), log: String::new() });
            }
            let dir = env.store.scratch(&job.key).unwrap();
            std::fs::write(dir.join("out.txt"), id).unwrap();
            let out = env.store.put_file(&dir.join("out.txt")).unwrap();
            let record = NodeRecord {
                key: job.key,
                node: id.into(),
                stage: job.node.stage.clone(),
                fingerprint: job.fingerprint,
                input_sources: job.inputs.sources,
                outputs: BTreeMap::from([("out".to_string(), out)]),
                duration_s: 0.0,
                cpu_s: None,
                threads: None,
                finished_at: now(),
                log: String::new(),
            };
            env.store.write_record(&record).unwrap();
            NodeEnd::Ran { record, resumed_from: job.resumes_from }
        }
    }

    struct Run {
        nodes: Vec<RunNode>,
        ran: Vec<(String, Vec<String>)>,
        cancelled: bool,
    }

    impl Run {
        fn ids(&self, state: RunState) -> BTreeSet<&str> {
            self.nodes.iter().filter(|n| n.state == state).map(|n| n.node.as_str()).collect()
        }
        fn ran(&self) -> BTreeSet<&str> {
            self.ran.iter().map(|(id, _)| id.as_str()).collect()
        }
        fn entry(&self, id: &str) -> &RunNode {
            self.nodes.iter().find(|n| n.node == id).expect("every node has an entry")
        }
    }

    fn store(name: &str) -> (PathBuf, Store) {
        let dir = std::env::temp_dir().join(format!("pipe-exec-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(dir.join("store")).unwrap();
        (dir, store)
    }

    fn run(store: &Store, dir: &Path, nodes: &[NodeSpec], runner: FakeRunner, jobs: usize, fail_fast: bool) -> Run {
        let graph = GraphBuilder::from_nodes(nodes.to_vec()).seal().unwrap();
        let recorder = Recorder::new(&Silent);
        let cancel = Arc::new(AtomicBool::new(false));
        let ex = Executor {
            graph: &graph,
            store,
            pipeline: "test",
            workspace: dir.to_path_buf(),
            options: RunOptions {
                jobs,
                threads: 1,
                fail_fast,
                overwrite: false,
                rerun: Default::default(),
                pull_only: false,
                no_resume: false,
                claim_as: None,
            },
            reporter: &recorder,
            cancel: cancel.clone(),
            runner: &runner,
        };
        ex.run();
        Run { nodes: recorder.nodes(&graph), ran: runner.ran.into_inner().unwrap(), cancelled: cancel.load(Ordering::SeqCst) }
    }

    fn set<'a>(ids: &[&'a str]) -> BTreeSet<&'a str> {
        ids.iter().copied().collect()
    }

    /// a -> b -> c, a -> d, e -> f, and g gathers b and e (not partially).
    fn diamond() -> Vec<NodeSpec> {
        vec![
            node("a", &[], &[]),
            node("b", &[("x", &[0])], &[]),
            node("c", &[("x", &[1])], &[]),
            node("d", &[("x", &[0])], &[]),
            node("e", &[], &[]),
            node("f", &[("x", &[4])], &[]),
            node("g", &[("rows", &[1, 4])], &[]),
        ]
    }

    #[test]
    fn a_failure_skips_exactly_its_dependents() {
        let (dir, store) = store("skip");
        let r = run(&store, &dir, &diamond(), FakeRunner { fail: HashSet::from(["a"]), ..Default::default() }, 2, false);
        assert_eq!(r.ran(), set(&["a", "e", "f"]));
        assert_eq!(r.ids(RunState::Failed), set(&["a"]));
        assert_eq!(r.ids(RunState::Skipped), set(&["b", "c", "d", "g"]));
        assert_eq!(r.ids(RunState::Ran), set(&["e", "f"]));
        assert!(!r.cancelled);
        assert_eq!(r.entry("c").error.as_deref(), Some("upstream b did not complete"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_partial_gather_runs_without_what_failed_or_was_skipped() {
        let (dir, store) = store("partial");
        // x1 fails; y2 is skipped (after x2); the partial gather g reads x0 and y0 only; h, which
        // reads x1 through a plain input as well, is skipped; k after g runs.
        let nodes = vec![
            node("x0", &[], &[]),
            node("x1", &[], &[]),
            node("x2", &[], &[]),
            node("y0", &[("x", &[0])], &[]),
            node("y2", &[("x", &[2])], &[]),
            node("g", &[("rows", &[0, 1, 3, 4])], &["rows"]),
            node("h", &[("rows", &[0, 1]), ("one", &[1])], &["rows"]),
            node("k", &[("x", &[5])], &[]),
        ];
        let runner = FakeRunner { fail: HashSet::from(["x1", "x2"]), ..Default::default() };
        let r = run(&store, &dir, &nodes, runner, 1, false);
        assert_eq!(r.ids(RunState::Failed), set(&["x1", "x2"]));
        assert_eq!(r.ids(RunState::Skipped), set(&["y2", "h"]));
        assert_eq!(r.ids(RunState::Ran), set(&["x0", "y0", "g", "k"]));
        let g = &r.ran.iter().find(|(id, _)| id == "g").unwrap().1;
        assert_eq!(g, &["x0", "y0"], "the gather reads what completed");
        // Its record says it completed (a gather that tolerates failures is not failed by them).
        assert_eq!(r.entry("g").failure, None);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn fail_fast_starts_nothing_after_the_first_failure() {
        let (dir, store) = store("fail-fast");
        // One job: a (first in file order) fails first; b, c and e are never started.
        let nodes = vec![node("a", &[], &[]), node("b", &[], &[]), node("c", &[("x", &[0])], &[]), node("e", &[("x", &[1])], &[])];
        let r = run(&store, &dir, &nodes, FakeRunner { fail: HashSet::from(["a"]), ..Default::default() }, 1, true);
        assert_eq!(r.ran(), set(&["a"]));
        assert_eq!(r.ids(RunState::Failed), set(&["a"]));
        assert_eq!(r.ids(RunState::Skipped), set(&["c"]));
        assert_eq!(r.ids(RunState::Cancelled), set(&["b", "e"]));
        assert!(r.cancelled, "fail-fast sets the cancel flag");
        // A failure, not an interrupt (`pipe run` does not count fail-fast's cancel as one): exit code 4.
        assert_eq!(Tally::of(&r.nodes).status(false).exit_code(), crate::exit::NODES_FAILED);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn cancel_ends_what_runs_and_starts_nothing_new() {
        let (dir, store) = store("cancel");
        // a completes; Ctrl-C arrives while b (after a, taken next: depth first) runs; c (after
        // b), e and d (after e) are never started.
        let nodes = vec![
            node("a", &[], &[]),
            node("b", &[("x", &[0])], &[]),
            node("c", &[("x", &[1])], &[]),
            node("e", &[], &[]),
            node("d", &[("x", &[3])], &[]),
        ];
        let r = run(&store, &dir, &nodes, FakeRunner { interrupt: HashSet::from(["b"]), ..Default::default() }, 1, false);
        assert_eq!(r.ran(), set(&["a", "b"]));
        assert_eq!(r.ids(RunState::Ran), set(&["a"]));
        assert_eq!(r.ids(RunState::Cancelled), set(&["b", "c", "d", "e"]));
        assert_eq!(r.entry("b").error.as_deref(), Some("interrupted"));
        assert_eq!(r.entry("e").error.as_deref(), Some("not started: run interrupted"));
        assert!(r.entry("b").key.is_some() && r.entry("e").key.is_none());
        assert_eq!(Tally::of(&r.nodes).status(r.cancelled).exit_code(), crate::exit::INTERRUPTED);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_cache_hit_breaks_out_before_the_runner() {
        let (dir, store) = store("hit");
        let first = run(&store, &dir, &diamond(), FakeRunner { fail: HashSet::from(["d"]), ..Default::default() }, 2, false);
        assert_eq!(first.ids(RunState::Ran), set(&["a", "b", "c", "e", "f", "g"]));
        // Again: only the failed node runs; everything else comes from the store.
        let again = run(&store, &dir, &diamond(), FakeRunner::default(), 2, false);
        assert_eq!(again.ran(), set(&["d"]));
        assert_eq!(again.ids(RunState::Cached), set(&["a", "b", "c", "e", "f", "g"]));
        assert_eq!(again.ids(RunState::Ran), set(&["d"]));
        assert_eq!(again.entry("a").key, first.entry("a").key);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_run_record_folds_each_nodes_end() {
        let (dir, store) = store("fold");
        let r = run(&store, &dir, &diamond(), FakeRunner { fail: HashSet::from(["e"]), ..Default::default() }, 3, false);
        // One entry per node, in the graph's order.
        let order: Vec<&str> = r.nodes.iter().map(|n| n.node.as_str()).collect();
        assert_eq!(order, ["a", "b", "c", "d", "e", "f", "g"]);
        let tally = Tally::of(&r.nodes);
        assert_eq!(tally.to_string(), "4 ran, 0 cached, 1 failed, 2 skipped, 0 cancelled");
        assert_eq!(tally.status(r.cancelled).exit_code(), crate::exit::NODES_FAILED);
        let e = r.entry("e");
        let failure = e.failure.as_ref().expect("a failure is recorded typed");
        assert_eq!((failure.kind, failure.message.as_str(), failure.hint.as_deref()), (FailureKind::Stage, "e failed", None));
        assert_eq!(e.error.as_deref(), Some("e failed"), "the rendered error is kept beside it");
        assert!(e.key.is_some());
        assert_eq!(crate::store::failures_by_kind(&r.nodes), BTreeMap::from([(FailureKind::Stage, 1)]));
        for id in ["f", "g"] {
            assert_eq!((r.entry(id).state, r.entry(id).failure.as_ref()), (RunState::Skipped, None));
        }
        assert_eq!(r.entry("a").error, None);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_recorder_records_a_node_no_event_reached_as_cancelled() {
        let graph = GraphBuilder::from_nodes(vec![node("a", &[], &[]), node("b", &[("x", &[0])], &[])]).seal().unwrap();
        let recorder = Recorder::new(&Silent);
        let a = RunNode::not_run("a", "a", RunState::Skipped, "upstream z did not complete".into());
        recorder.event(&Event::Finished { node: &a });
        let nodes = recorder.nodes(&graph);
        assert_eq!(nodes[0], a);
        assert_eq!((nodes[1].state, nodes[1].error.as_deref()), (RunState::Cancelled, Some("not started")));
    }

    #[test]
    fn a_pull_fails_a_miss_as_a_store_failure() {
        let (dir, store) = store("pull");
        let graph = GraphBuilder::from_nodes(vec![node("a", &[], &[])]).seal().unwrap();
        let runner = FakeRunner::default();
        let ex = Executor {
            graph: &graph,
            store: &store,
            pipeline: "test",
            workspace: dir.clone(),
            options: RunOptions {
                jobs: 1,
                threads: 1,
                fail_fast: false,
                overwrite: false,
                rerun: Default::default(),
                pull_only: true,
                no_resume: false,
                claim_as: None,
            },
            reporter: &Silent,
            cancel: Arc::new(AtomicBool::new(false)),
            runner: &runner,
        };
        let outputs = Mutex::new(vec![None]);
        match prepare(&ex, 0, &outputs, None) {
            ControlFlow::Break(NodeEnd::Failed { key: Some(_), failure }) => {
                assert_eq!(failure.kind(), FailureKind::Store);
                assert!(failure.text().ends_with("\n  = hint: `pipe run` computes it"), "{}", failure.text());
            }
            ControlFlow::Break(other) => panic!("a miss in a pull breaks out failed, not {other:?}"),
            ControlFlow::Continue(_) => panic!("a miss in a pull does not run"),
        }
        assert!(lock(&runner.ran).is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }
}
