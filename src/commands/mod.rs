//! One file per command: each takes its clap arguments (`crate::args`) and the shared [`Ctx`],
//! and returns an [`ExitStatus`] or a [`CliError`]; [`main`] prints the error, once, and maps
//! either to the process exit code.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::args::{Cli, Cmd};
use crate::exit;
use crate::stage::Registry;

pub mod common;
pub mod compare;
pub mod completion;
pub mod dag;
pub mod data;
pub mod diff;
pub mod error;
pub mod gc;
pub mod get;
pub mod key;
pub mod pull;
pub mod push;
pub mod query;
pub mod report;
pub mod run;
pub mod run_node;
pub mod runs;
pub mod show;
pub mod status;

pub use error::CliError;

/// How a command ended, as the process exit code says it (the constants of [`crate::exit`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything asked for completed ([`exit::OK`]).
    Success,
    /// An unexpected internal error ([`exit::INTERNAL`]).
    Internal,
    /// Bad command-line usage ([`exit::USAGE`]).
    Usage,
    /// The pipeline file is unreadable or invalid ([`exit::INVALID_PIPELINE`]).
    InvalidPipeline,
    /// Some node failed ([`exit::NODES_FAILED`]).
    NodesFailed,
    /// The store could not be read or written ([`exit::STORE`]).
    Store,
    /// `status --check`: some node is not fresh; `key`: a node has no key yet ([`exit::STALE`]).
    Stale,
    /// A node, run, output or query named does not exist ([`exit::NOT_FOUND`]).
    NotFound,
    /// Interrupted ([`exit::INTERRUPTED`]).
    Interrupted,
    /// Another process's own code, passed on (`pipe data` runs in the stage worker).
    External(i32),
}

impl ExitStatus {
    /// The process exit code.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Success => exit::OK,
            ExitStatus::Internal => exit::INTERNAL,
            ExitStatus::Usage => exit::USAGE,
            ExitStatus::InvalidPipeline => exit::INVALID_PIPELINE,
            ExitStatus::NodesFailed => exit::NODES_FAILED,
            ExitStatus::Store => exit::STORE,
            ExitStatus::Stale => exit::STALE,
            ExitStatus::NotFound => exit::NOT_FOUND,
            ExitStatus::Interrupted => exit::INTERRUPTED,
            ExitStatus::External(code) => code,
        }
    }

    /// The status a named exit code stands for; any other code is passed on as it is.
    pub fn from_code(code: i32) -> ExitStatus {
        [
            ExitStatus::Success,
            ExitStatus::Internal,
            ExitStatus::Usage,
            ExitStatus::InvalidPipeline,
            ExitStatus::NodesFailed,
            ExitStatus::Store,
            ExitStatus::Stale,
            ExitStatus::NotFound,
            ExitStatus::Interrupted,
        ]
        .into_iter()
        .find(|s| s.code() == code)
        .unwrap_or(ExitStatus::External(code))
    }
}

impl From<crate::store::RunStatus> for ExitStatus {
    fn from(s: crate::store::RunStatus) -> ExitStatus {
        ExitStatus::from_code(s.exit_code())
    }
}

/// What every command may use: the store arguments, the stage kinds, the interrupt flag.
pub(crate) struct Ctx<'a> {
    pub(crate) store: &'a str,
    pub(crate) cache: &'a Path,
    pub(crate) registry: &'a Registry,
    pub(crate) cancel: &'a Arc<AtomicBool>,
}

/// Runs the command; prints its error, if any (the one place errors are printed); returns the
/// process exit code.
pub fn main(cli: Cli, registry: &Registry, cancel: Arc<AtomicBool>) -> i32 {
    match run(cli, registry, cancel) {
        Ok(status) => status.code(),
        Err(e) => {
            eprintln!("{}", e.report());
            e.exit_status().code()
        }
    }
}

/// Resolves the pipeline file, then runs the command.
fn run(mut cli: Cli, registry: &Registry, cancel: Arc<AtomicBool>) -> Result<ExitStatus, CliError> {
    let mut none = Vec::new();
    let (p, targets) = match &mut cli.command {
        Cmd::Run { p, targets, .. } | Cmd::Status { p, targets, .. } | Cmd::Show { p, targets, .. } => (Some(p), targets),
        Cmd::Key(k) => (Some(&mut k.p), &mut k.nodes),
        Cmd::Pull { p, .. } | Cmd::Dag { p, .. } | Cmd::RunNode { p, .. } | Cmd::Report { p, .. } => (Some(p), &mut none),
        _ => (None, &mut none),
    };
    if let Some(p) = p {
        common::resolve_file(p, targets, &cli.store, &cli.cache)?;
    }
    let g = Ctx { store: &cli.store, cache: &cli.cache, registry, cancel: &cancel };
    match cli.command {
        Cmd::Push => push::push(&g),
        Cmd::Pull { p, overwrite, verbose } => pull::pull(&g, p, overwrite, verbose),
        Cmd::Run { p, targets, run } => run::run(&g, run::RunSettings { p, targets, run, pull_only: false }),
        Cmd::RunNode { p, node, key, threads } => run_node::run_node(&g, p, node, key, threads),
        Cmd::Completion { shell } => completion::completion(shell),
        Cmd::Report { p, output, overwrite } => report::report(&g, p, output, overwrite),
        Cmd::Get { file, set, node, output, dest } => get::get(&g, get::GetArgs { file, set, node, output, dest }),
        Cmd::Runs { json, last } => runs::runs(&g, json, last),
        Cmd::Diff { a, b } => diff::diff(&g, a, b),
        Cmd::Status { p, targets, json, check, verbose } => status::status(&g, p, targets, status::StatusArgs { json, check, verbose }),
        Cmd::Dag { p, format, stages } => dag::dag(&g, p, format, stages),
        Cmd::Show { p, targets, json } => show::show(&g, p, targets, json),
        Cmd::Key(args) => key::run(&g, args),
        Cmd::Query { sql, results, format } => query::query(sql, results, format),
        Cmd::Compare { table, metric, baseline, replicate, within, lower_is_better, json } => {
            compare::compare(&table, compare::CompareArgs { metric, baseline, replicate, within, lower_is_better, json })
        }
        Cmd::Data { args } => data::data(&args),
        Cmd::Gc { records, keep_days, dry_run, remote, older_than, skip_invalid } => {
            gc::gc(&g, gc::GcArgs { records, keep_days, dry_run, remote, older_than, skip_invalid })
        }
    }
}
