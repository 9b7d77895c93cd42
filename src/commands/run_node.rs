//! `pipe run-node`: one node of a pipeline, as a Slurm job of `pipe run --executor slurm` runs
//! it; a failure is recorded in the store for the driver.

use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::args::PipelineArgs;
use crate::commands::common::{load, open_store, ref_namespace, workspace};
use crate::commands::{CliError, Ctx, ExitStatus};
use crate::exec::{Executor, NodeEnd, RunOptions};
use crate::store::RunState;

/// `pipe run-node`: one node, in a Slurm job.
pub(crate) fn run_node(g: &Ctx<'_>, p: PipelineArgs, node: String, key: String, threads: usize) -> Result<ExitStatus, CliError> {
    let (_, graph) = load(&p, g.registry)?;
    let store = open_store(g.store, g.cache)?;
    // The failure is recorded for the driver, which reads it as the node's end.
    let failed = |error: String, failure: Option<crate::store::FailureRecord>| {
        let marker = crate::slurm::TaskFailure { node: node.clone(), error: error.clone(), failure };
        let unrecorded =
            store.put_meta(&crate::slurm::failure_rel(&key), &serde_json::to_vec_pretty(&marker).expect("serialises")).err().map(|e| e.to_string());
        CliError::NodeFailed { node: node.clone(), error, unrecorded }
    };
    let Some(i) = graph.find(&node) else {
        return Err(failed(format!("no such node in {} (was the file edited since submission?)", p.path().display()), None));
    };
    let task: crate::slurm::Task = match store.get_meta(&crate::slurm::task_rel(&key)) {
        Ok(Some(bytes)) => serde_json::from_slice(&bytes).map_err(|e| failed(format!("task file unreadable: {e}"), None))?,
        Ok(None) => return Err(failed(format!("no task {} in {}", crate::slurm::task_rel(&key), store.describe()), None)),
        Err(e) => return Err(failed(e.to_string(), None)),
    };
    let mut outputs = vec![None; graph.len()];
    for (id, outs) in task.upstream {
        let Some(j) = graph.find(&id) else { return Err(failed(format!("upstream node {id} is not in the pipeline"), None)) };
        outputs[j.index()] = Some(outs);
    }
    let ns = ref_namespace(p.path());
    let ex = Executor {
        graph: &graph,
        store: &store,
        pipeline: &ns,
        workspace: workspace(),
        options: RunOptions { jobs: 1, threads, fail_fast: false, overwrite: false, pull_only: false, rerun: Default::default(), no_resume: false },
        reporter: &crate::report::Silent,
        cancel: g.cancel.clone(),
        runner: &crate::exec::Local,
    };
    let t0 = Instant::now();
    if task.key != key || task.fingerprint.key() != key {
        return Err(failed(format!("task {} does not describe key {key}", crate::slurm::task_rel(&key)), None));
    }
    let done = |state: RunState| {
        println!("{node}: {state} in {:.1}s (key {key})", t0.elapsed().as_secs_f64());
        Ok(ExitStatus::Success)
    };
    match crate::exec::run_node(&ex, i.index(), outputs, &task.fingerprint) {
        NodeEnd::Ran { .. } => done(RunState::Ran),
        NodeEnd::Cached(_) => done(RunState::Cached),
        // Cancelled (`scancel`, a time limit): no failure marker; the driver reports the job as
        // ended without a result, and the next `pipe run` reruns it.
        NodeEnd::Cancelled { reason, .. } => Err(CliError::NodeInterrupted { node: node.clone(), reason }),
        NodeEnd::Failed { failure, .. } if g.cancel.load(Ordering::SeqCst) => {
            Err(CliError::NodeInterrupted { node: node.clone(), reason: failure.text() })
        }
        NodeEnd::Failed { failure, .. } => Err(failed(failure.text(), Some(failure.record()))),
    }
}
