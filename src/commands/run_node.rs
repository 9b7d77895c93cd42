//! `pipe run-node`: one node of a pipeline, as a Slurm job of `pipe run --executor slurm` runs
//! it ([`Project::run_job`]); a failure is recorded in the store for the driver.

use crate::args::PipelineArgs;
use crate::commands::common::{load, open_store, workspace};
use crate::commands::{CliError, Ctx, ExitStatus};
use crate::project::{JobEnd, Project};

/// `pipe run-node`: one node, in a Slurm job.
pub(crate) fn run_node(g: &Ctx<'_>, p: PipelineArgs, node: String, key: String, threads: usize) -> Result<ExitStatus, CliError> {
    let (_, graph) = load(&p, g.registry)?;
    let project = Project::new(open_store(g.store, g.cache)?, g.registry, workspace(), g.cancel.clone());
    match project.run_job(p.path(), &graph, &node, &key, threads) {
        JobEnd::Done(state, took) => {
            println!("{node}: {state} in {:.1}s (key {key})", took.as_secs_f64());
            Ok(ExitStatus::Success)
        }
        JobEnd::Interrupted(reason) => Err(CliError::NodeInterrupted { node, reason }),
        JobEnd::Failed { error, unrecorded } => Err(CliError::NodeFailed { node, error, unrecorded }),
    }
}
