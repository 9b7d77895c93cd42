//! `pipe completion SHELL`: a shell completion script on stdout.

use crate::args::Cli;
use crate::commands::{CliError, ExitStatus};

/// `pipe completion`.
pub(crate) fn completion(shell: clap_complete::Shell) -> Result<ExitStatus, CliError> {
    use clap::CommandFactory;
    clap_complete::generate(shell, &mut Cli::command(), "pipe", &mut std::io::stdout());
    Ok(ExitStatus::Success)
}
