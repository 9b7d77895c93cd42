//! The Slurm executor: each node to run becomes one `sbatch` job that runs `pipe run-node` on a
//! cluster node, against the shared store.
//!
//! Design: the driver (`pipe run --executor slurm`) keeps the local scheduler and submits a node
//! only when its inputs are complete and its key misses the cache. Keys depend on upstream CONTENT
//! (early cutoff), so a whole-graph submission with `--dependency=afterok` could neither know the
//! keys in advance nor skip nodes whose upstream recomputed to the same bytes, and it would queue
//! jobs for cache hits. A failed job fails only its dependents, as locally.
//!
//! The hand-over goes through the store, so nothing needs Slurm accounting: the driver writes
//! `tasks/<key>.json` (the upstream outputs); the job writes the node's record on success or
//! `tasks/<key>.failed.json` on failure. The driver watches `squeue` (one call per poll for all
//! jobs); when a job leaves the queue without either marker, it was killed (`scancel`, time
//! limit, node failure) and the node is reported failed with the job's log, so the next `pipe run`
//! reruns it. Ctrl-C cancels every job of the run with `scancel`.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::NodeSpec;
use crate::error::Hint;
use crate::exec::{Job, NodeEnd, NodeFailure, NodeRunner, RunEnv};
use crate::hash::Fingerprint;
use crate::store::{FailureKind, FailureRecord, NodeRecord, ObjectRef};

/// What a job needs besides the pipeline file: the outputs of the node's upstream nodes.
#[derive(Serialize, Deserialize)]
pub struct Task {
    /// The node's id.
    pub node: String,
    /// The node's cache key.
    pub key: String,
    /// The submitter's fingerprint: a job whose own differs says which field.
    pub fingerprint: Fingerprint,
    /// Upstream node id -> its outputs by name, for the job to fetch.
    pub upstream: BTreeMap<String, BTreeMap<String, ObjectRef>>,
}

/// A job's failure marker (`tasks/<key>.failed.json`): why the node failed on the cluster.
#[derive(Serialize, Deserialize)]
pub struct TaskFailure {
    /// The node's id.
    pub node: String,
    /// What went wrong, as the job's terminal showed it.
    pub error: String,
    /// The same, typed (absent from markers of earlier versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureRecord>,
}

/// Where the hand-over of `key` lies in the store ([`crate::store::Entry::Task`]).
pub fn task_rel(key: &str) -> String {
    crate::store::Entry::Task(key).rel()
}

/// Where a job's failure for `key` lies ([`crate::store::Entry::TaskFailure`]).
pub fn failure_rel(key: &str) -> String {
    crate::store::Entry::TaskFailure(key).rel()
}

/// A [`NodeRunner`] that runs each cache miss as one `sbatch` job running `pipe run-node` against the
/// shared store (see the module docs).
pub struct Slurm {
    /// The `pipe` binary the jobs run (it must be reachable from the cluster nodes).
    pub exe: PathBuf,
    /// The pipeline file and `--set` overrides, as given to `pipe run`.
    pub file: PathBuf,
    /// The `--set` overrides (`stage.param=value`), passed on to every job.
    pub sets: Vec<String>,
    /// `--store` and `--cache` as the jobs must see them (absolute).
    pub store_arg: String,
    /// The jobs' cache folder; job logs go to its `slurm/<job id>.out`. With a remote store a job's
    /// `PIPE_JOB_CACHE` overrides it.
    pub cache: PathBuf,
    /// The Slurm partition to submit to; Slurm's default when `None`.
    pub partition: Option<String>,
    /// Extra `sbatch` arguments (`--time`, `--mem`, `--gres`, ...).
    pub sbatch_args: Vec<String>,
    /// Time between checks of a job's state (500 ms from [`Slurm::new`]); one `squeue` call serves all jobs.
    pub poll: Duration,
    /// How many times a node whose job ended without a result (its time limit, a preemption, a
    /// lost machine, `scancel`) is submitted again within the run (`pipe run --requeue N`; 0 from
    /// [`Slurm::new`]). A training node resumes from the checkpoints its last job left in the store.
    pub requeue: u32,
    queue: Mutex<QueueView>,
    submitted: Mutex<Vec<String>>,
}

#[derive(Default)]
struct QueueView {
    taken: Option<Instant>,
    /// Job id -> state, for the jobs `squeue` lists.
    states: HashMap<String, String>,
    error: Option<String>,
    failing_since: Option<Instant>,
}

/// Single-quotes for /bin/sh.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Job states in which the batch script may still be running.
fn active(state: &str) -> bool {
    matches!(
        state,
        "PENDING"
            | "CONFIGURING"
            | "RUNNING"
            | "SUSPENDED"
            | "REQUEUED"
            | "REQUEUE_HOLD"
            | "REQUEUE_FED"
            | "RESIZING"
            | "SIGNALING"
            | "STAGE_OUT"
            | "STOPPED"
    )
}

/// The job script's line setting `$cache` (`cache` quoted for the shell). With a remote store a
/// job may keep its own cache (node-local disk): PIPE_JOB_CACHE in the job's environment;
/// everything it hands back then goes through the remote. PIPE_WORKER_CACHE, its old name, is
/// still read, with a warning in the job's log.
fn cache_line(cache: &str, remote: bool) -> String {
    if !remote {
        return format!("cache={cache}\n");
    }
    format!(
        "if [ -n \"${{PIPE_JOB_CACHE:-}}\" ]; then cache=$PIPE_JOB_CACHE\n\
         elif [ -n \"${{PIPE_WORKER_CACHE:-}}\" ]; then cache=$PIPE_WORKER_CACHE; \
         echo 'warning: PIPE_WORKER_CACHE is deprecated; set PIPE_JOB_CACHE instead' >&2\n\
         else cache={cache}; fi\n"
    )
}

impl Slurm {
    /// A Slurm runner with these settings (see the fields) and a 500 ms poll interval. Nothing is
    /// checked here: [`Slurm::check`] tests that the Slurm commands answer.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        exe: PathBuf,
        file: PathBuf,
        sets: Vec<String>,
        store_arg: String,
        cache: PathBuf,
        partition: Option<String>,
        sbatch_args: Vec<String>,
    ) -> Slurm {
        Slurm {
            exe,
            file,
            sets,
            store_arg,
            cache,
            partition,
            sbatch_args,
            poll: Duration::from_millis(500),
            requeue: 0,
            queue: Mutex::default(),
            submitted: Mutex::default(),
        }
    }

    /// Checks that the Slurm commands answer, before anything is submitted.
    pub fn check(&self) -> Result<(), SlurmError> {
        let out = Command::new("squeue").args(["-h", "--me", "-o", "%i"]).output().map_err(SlurmError::NoClient)?;
        if !out.status.success() {
            return Err(SlurmError::SqueueFailed(String::from_utf8_lossy(&out.stderr).trim().to_string()));
        }
        Ok(())
    }

    fn script(&self, ex: &RunEnv<'_>, node: &NodeSpec, key: &str) -> String {
        let mut s = String::from("#!/bin/sh\n");
        s += &format!("#SBATCH --job-name=pipe:{}\n", node.stage);
        s += &format!("#SBATCH --output={}/slurm/%j.out\n", self.cache.display());
        s += &format!("#SBATCH --cpus-per-task={}\n", ex.threads.max(1));
        s += &format!("#SBATCH --chdir={}\n", ex.workspace.display());
        if let Some(p) = &self.partition {
            s += &format!("#SBATCH --partition={p}\n");
        }
        s += &format!("# pipe node {} key {key}\n", node.id.replace('\n', " "));
        let mut cmd = vec![
            sh_quote(&self.exe.to_string_lossy()),
            "--store".into(),
            sh_quote(&self.store_arg),
            "--cache".into(),
            "\"$cache\"".into(),
            "run-node".into(),
            sh_quote(&self.file.to_string_lossy()),
            "--node".into(),
            sh_quote(&node.id),
            "--key".into(),
            key.to_string(),
            "--threads".into(),
            ex.threads.max(1).to_string(),
        ];
        for set in &self.sets {
            cmd.push("--set".into());
            cmd.push(sh_quote(set));
        }
        s += &cache_line(&sh_quote(&self.cache.to_string_lossy()), self.store_arg.contains("://"));
        s += &format!("exec {}\n", cmd.join(" "));
        s
    }

    fn sbatch(&self, script: &str) -> Result<String, SlurmError> {
        let mut child = Command::new("sbatch")
            .arg("--parsable")
            .args(&self.sbatch_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(SlurmError::Sbatch)?;
        child.stdin.take().expect("piped stdin").write_all(script.as_bytes()).map_err(SlurmError::Sbatch)?;
        let out = child.wait_with_output().map_err(SlurmError::Sbatch)?;
        if !out.status.success() {
            return Err(SlurmError::SbatchRefused(String::from_utf8_lossy(&out.stderr).trim().to_string()));
        }
        // `--parsable` prints `jobid[;cluster]`.
        let text = String::from_utf8_lossy(&out.stdout);
        let id = text.trim().split(';').next().unwrap_or_default().to_string();
        if id.is_empty() {
            return Err(SlurmError::NoJobId(text.to_string()));
        }
        Ok(id)
    }

    /// The job's state as of a `squeue` taken after `since`; None once it has left the queue.
    fn state(&self, job: &str, since: Instant) -> Result<Option<String>, SlurmError> {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.taken.is_none_or(|t| t < since || t.elapsed() >= self.poll) {
            let out = Command::new("squeue").args(["-h", "--me", "-t", "all", "-o", "%i|%T"]).output();
            match out {
                Ok(o) if o.status.success() => {
                    q.states = String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .filter_map(|l| l.split_once('|').map(|(i, s)| (i.trim().to_string(), s.trim().to_string())))
                        .collect();
                    q.error = None;
                    q.failing_since = None;
                }
                Ok(o) => q.error = Some(String::from_utf8_lossy(&o.stderr).trim().to_string()),
                Err(e) => q.error = Some(e.to_string()),
            }
            q.taken = Some(Instant::now());
            if q.error.is_some() {
                let since = *q.failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(120) {
                    return Err(SlurmError::QueueDown(q.error.clone().unwrap_or_default()));
                }
            }
        }
        if q.error.is_some() {
            // Controller briefly unreachable: treat the job as still queued.
            return Ok(Some("UNKNOWN".into()));
        }
        Ok(q.states.get(job).cloned())
    }

    fn scancel(job: &str) {
        let _ = Command::new("scancel").arg(job).status();
    }

    fn log_path(&self, job: &str) -> PathBuf {
        self.cache.join("slurm").join(format!("{job}.out"))
    }

    /// Cancels every job this run submitted that may still be queued or running.
    pub fn cancel_all(&self) {
        let jobs = std::mem::take(&mut *self.submitted.lock().unwrap_or_else(|e| e.into_inner()));
        if !jobs.is_empty() {
            let _ = Command::new("scancel").args(&jobs).status();
        }
    }
}

impl NodeRunner for Slurm {
    /// Submits one `sbatch` job running `pipe run-node` for the node and waits for its record;
    /// a job that ends without one is submitted again up to [`Slurm::requeue`] times.
    fn run(&self, ex: &RunEnv<'_>, job: Job<'_>) -> NodeEnd {
        let resumed_from = job.resumes_from;
        self.submit(ex, job).map_or_else(|end| *end, |record| NodeEnd::Ran { record, resumed_from })
    }
}

/// How a job ended without giving its node a record.
enum Ended {
    /// The node failed (its failure marker), or the run was cancelled: final.
    Final(Box<NodeEnd>),
    /// The job left the queue without a record or a failure marker (time limit, preemption,
    /// `scancel`, a lost machine): worth submitting again.
    WithoutResult(Box<NodeEnd>),
}

impl Slurm {
    /// [`NodeRunner::run`]: the node's record, else how it ended.
    fn submit(&self, ex: &RunEnv<'_>, job: Job<'_>) -> Result<NodeRecord, Box<NodeEnd>> {
        let (node, key) = (job.node, job.key.as_str());
        let fail = |e: SlurmError| Box::new(NodeEnd::failed(key, NodeFailure::Runner(Box::new(e))));
        let store_err = |e: crate::store::StoreError| Box::new(NodeEnd::failed(key, e));
        let task = Task { node: node.id.clone(), key: key.to_string(), fingerprint: job.fingerprint.clone(), upstream: job.upstream.clone() };
        ex.store.remove_meta(&failure_rel(key));
        ex.store.put_meta(&task_rel(key), &serde_json::to_vec_pretty(&task).expect("tasks serialise")).map_err(store_err)?;
        let _ = std::fs::create_dir_all(self.cache.join("slurm"));
        // The node's line on the terminal shows the job and its queue state.
        let bar = ex.reporter.progress(&node.id);
        let claim = job.claims.first();
        // A driver that died (kill -9, a lost login) left this key's claim naming the job it had
        // submitted: while Slurm still has that job queued or running, wait for it instead of
        // computing the node twice.
        let mut adopt = claim
            .and_then(|c| c.previous())
            .and_then(|p| p.job.clone())
            .filter(|j| self.state(j, Instant::now()).ok().flatten().as_deref().is_some_and(active));
        let mut resubmitted = 0;
        let result = loop {
            let since = Instant::now();
            let job = match adopt.take() {
                Some(job) => {
                    let message = format!("adopting Slurm job {job}, submitted by an earlier `pipe run` that ended while it ran");
                    tracing::info!(node = %node.id, %job, %key, "{message}");
                    ex.reporter.event(&crate::report::Event::Warning { node: &node.id, message: &message });
                    job
                }
                None => match self.sbatch(&self.script(ex, node, key)) {
                    Ok(job) => job,
                    Err(e) => break Err(fail(e)),
                },
            };
            if let Some(c) = claim {
                c.set_job(Some(&job));
            }
            self.submitted.lock().unwrap_or_else(|e| e.into_inner()).push(job.clone());
            tracing::info!(node = %node.id, %job, %key, "submitted to Slurm");
            bar.set_message(format!("Slurm job {job} submitted"));
            let ended = self.wait(ex, node, key, &job, since, &*bar);
            self.submitted.lock().unwrap_or_else(|e| e.into_inner()).retain(|j| *j != job);
            match ended {
                Ok(rec) => break Ok(rec),
                Err(Ended::WithoutResult(end)) if resubmitted < self.requeue && !ex.cancel.load(Ordering::SeqCst) => {
                    resubmitted += 1;
                    let why = match &*end {
                        NodeEnd::Failed { failure, .. } => failure.to_string(),
                        _ => format!("Slurm job {job} ended without a result"),
                    };
                    let first = why.lines().next().unwrap_or_default().to_string();
                    let message = format!(
                        "{first}; submitting it again ({resubmitted} of --requeue {}), from its last checkpoint where it saved one",
                        self.requeue
                    );
                    tracing::warn!(node = %node.id, %job, "{message}");
                    ex.reporter.event(&crate::report::Event::Warning { node: &node.id, message: &message });
                }
                Err(Ended::WithoutResult(end) | Ended::Final(end)) => break Err(end),
            }
        };
        ex.reporter.event(&crate::report::Event::ProgressDone { node: &node.id });
        result
    }

    /// Polls until job `job` (node `node`, key `key`) has a result: its record, its failure
    /// marker, or leaving the queue without either.
    fn wait(
        &self,
        ex: &RunEnv<'_>,
        node: &NodeSpec,
        key: &str,
        job: &str,
        since: Instant,
        bar: &dyn crate::stage::Progress,
    ) -> Result<NodeRecord, Ended> {
        let fail = |failure: NodeFailure| Ended::Final(Box::new(NodeEnd::failed(key, failure)));
        let store_err = |e: crate::store::StoreError| fail(e.into());
        let mut shown = String::new();
        loop {
            if ex.cancel.load(Ordering::SeqCst) {
                Self::scancel(job);
                return Err(Ended::Final(Box::new(NodeEnd::Cancelled {
                    key: Some(key.into()),
                    reason: format!("interrupted: Slurm job {job} cancelled"),
                })));
            }
            std::thread::sleep(self.poll);
            let state = self.state(job, since).map_err(|e| fail(NodeFailure::Runner(Box::new(e))))?;
            if let Some(s) = state.as_deref().filter(|s| *s != shown) {
                shown = s.to_string();
                bar.set_message(format!("Slurm job {job} {}", s.to_lowercase()));
                tracing::info!(node = %node.id, %job, state = s, "Slurm job state");
            }
            if state.as_deref().is_some_and(active) || state.as_deref() == Some("UNKNOWN") {
                continue;
            }
            // The batch script has exited (COMPLETING / a final state / gone from the queue).
            if let Some(rec) = ex.store.record(key).map_err(store_err)? {
                ex.store.remove_meta(&task_rel(key));
                return Ok(rec);
            }
            if let Some(bytes) = ex.store.get_meta(&failure_rel(key)).map_err(store_err)? {
                let failure = match serde_json::from_slice::<TaskFailure>(&bytes) {
                    Ok(TaskFailure { failure: Some(f), .. }) => f,
                    Ok(TaskFailure { error, .. }) => FailureRecord { kind: FailureKind::Runner, message: error, hint: None },
                    Err(e) => FailureRecord { kind: FailureKind::Runner, message: format!("unreadable failure marker: {e}"), hint: None },
                };
                let at = format!("Slurm job {job}, log {}", self.log_path(job).display());
                return Err(fail(NodeFailure::Reported { failure, at }));
            }
            if state.as_deref() == Some("COMPLETING") {
                continue;
            }
            let log = std::fs::read_to_string(self.log_path(job)).unwrap_or_default();
            let log = if log.trim().is_empty() {
                String::new()
            } else {
                format!("\n--- last lines of {} ---\n{}", self.log_path(job).display(), tail(&log, 15))
            };
            return Err(Ended::WithoutResult(Box::new(NodeEnd::failed(
                key,
                NodeFailure::runner(format!(
                    "Slurm job {job} ended ({}) without a result: cancelled (scancel), out of time or memory, or its node failed; the next `pipe run` reruns it (a training node from its last checkpoint; `--requeue N` submits it again within the run){log}",
                    state.as_deref().unwrap_or("gone from the queue")
                )),
            ))));
        }
    }
}

/// What went wrong talking to Slurm.
#[derive(Debug)]
pub enum SlurmError {
    /// `squeue` could not be started (the Slurm client commands are not on PATH).
    NoClient(std::io::Error),
    /// `squeue` answered with an error (its stderr).
    SqueueFailed(String),
    /// `sbatch` could not be started or fed the job script.
    Sbatch(std::io::Error),
    /// `sbatch` refused the job (its stderr).
    SbatchRefused(String),
    /// `sbatch` succeeded but printed no job id (what it printed).
    NoJobId(String),
    /// `squeue` has failed for 2 minutes in a row (its last error).
    QueueDown(String),
}

impl std::fmt::Display for SlurmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SlurmError::NoClient(e) => write!(f, "cannot run `squeue` ({e})"),
            SlurmError::SqueueFailed(e) => write!(f, "`squeue` failed: {e}"),
            SlurmError::Sbatch(e) => write!(f, "cannot run `sbatch`: {e}"),
            SlurmError::SbatchRefused(e) => write!(f, "sbatch refused the job: {e}"),
            SlurmError::NoJobId(out) => write!(f, "sbatch printed no job id: {out}"),
            SlurmError::QueueDown(e) => write!(f, "squeue has failed for 2 minutes: {e}"),
        }
    }
}

impl std::error::Error for SlurmError {}

impl Hint for SlurmError {
    fn hint(&self) -> Option<String> {
        match self {
            SlurmError::NoClient(_) => Some("--executor slurm needs the Slurm client commands (sbatch, squeue, scancel) on PATH".into()),
            SlurmError::Sbatch(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Some("--executor slurm needs the Slurm client commands (sbatch, squeue, scancel) on PATH".into())
            }
            SlurmError::Sbatch(_) => None,
            SlurmError::SqueueFailed(_) => Some("is slurmctld up and SLURM_CONF right?".into()),
            SlurmError::SbatchRefused(_) => Some("check --partition, --sbatch-arg and --threads (each job's --cpus-per-task) against `sinfo`".into()),
            SlurmError::NoJobId(_) => None,
            SlurmError::QueueDown(_) => {
                Some("is slurmctld up (`scontrol ping`)? running jobs keep going; the next `pipe run` picks up their results".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_node_ids() {
        assert_eq!(sh_quote("train[dataset=mnist,mu2=0.5]"), "'train[dataset=mnist,mu2=0.5]'");
        assert_eq!(sh_quote("a'b"), r"'a'\''b'");
    }

    /// The job's cache: PIPE_JOB_CACHE, else the deprecated PIPE_WORKER_CACHE (said in the job's
    /// log), else the driver's; a local store's jobs always use the driver's.
    #[test]
    fn a_job_cache_comes_from_pipe_job_cache_or_its_old_name_with_a_warning() {
        let run = |remote: bool, env: &[(&str, &str)]| {
            let script = format!("{}echo \"$cache\"", cache_line(&sh_quote("/shared/c d"), remote));
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .env_remove("PIPE_JOB_CACHE")
                .env_remove("PIPE_WORKER_CACHE")
                .envs(env.iter().copied())
                .output()
                .unwrap();
            (String::from_utf8_lossy(&out.stdout).trim().to_string(), String::from_utf8_lossy(&out.stderr).trim().to_string())
        };
        assert_eq!(run(true, &[]), ("/shared/c d".into(), String::new()));
        assert_eq!(run(true, &[("PIPE_JOB_CACHE", "/local/j"), ("PIPE_WORKER_CACHE", "/local/w")]), ("/local/j".into(), String::new()));
        assert_eq!(
            run(true, &[("PIPE_WORKER_CACHE", "/local/w")]),
            ("/local/w".into(), "warning: PIPE_WORKER_CACHE is deprecated; set PIPE_JOB_CACHE instead".into())
        );
        assert_eq!(run(false, &[("PIPE_JOB_CACHE", "/local/j")]), ("/shared/c d".into(), String::new()));
    }
}
