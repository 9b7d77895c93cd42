//! `pipe data ...` runs in the stage worker, where the dataset readers are: the same arguments.

use crate::commands::{CliError, ExitStatus};

/// `pipe data`: the worker's own exit code is passed on.
pub(crate) fn data(args: &[std::ffi::OsString]) -> Result<ExitStatus, CliError> {
    let worker = engine::worker::locate();
    match std::process::Command::new(&worker).arg("data").args(args).status() {
        Ok(s) => Ok(ExitStatus::from_code(s.code().unwrap_or(crate::exit::INTERNAL))),
        Err(e) => Err(CliError::Worker(engine::worker::WorkerError::CannotStart { exe: worker, source: e })),
    }
}
