//! `pipe pull`: a run that restores a pipeline's results from the store and computes nothing.

use crate::args::{PipelineArgs, RunArgs};
use crate::commands::run::{run, RunSettings};
use crate::commands::{CliError, Ctx, ExitStatus};

/// `pipe pull`: `pipe run` with the defaults, restoring only.
pub(crate) fn pull(g: &Ctx<'_>, p: PipelineArgs, overwrite: bool, verbose: bool) -> Result<ExitStatus, CliError> {
    run(g, RunSettings { p, targets: Vec::new(), run: RunArgs { overwrite, verbose, ..RunArgs::default() }, pull_only: true })
}
