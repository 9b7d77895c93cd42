//! `pipe diff RUN_A RUN_B`: what changed between two runs.

use crate::commands::common::open_store;
use crate::commands::{CliError, Ctx, ExitStatus};

/// `pipe diff`.
pub(crate) fn diff(g: &Ctx<'_>, a: String, b: String) -> Result<ExitStatus, CliError> {
    let store = open_store(g.store, g.cache)?;
    let runs = store.runs();
    let pick = |w: &str| crate::runs::find(&runs, w).map_err(CliError::NoSuchRun);
    let (ra, rb) = (pick(&a)?, pick(&b)?);
    print!("{}", crate::runs::diff(&store, ra, rb));
    Ok(ExitStatus::Success)
}
