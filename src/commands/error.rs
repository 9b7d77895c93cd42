//! [`CliError`]: why a command stopped, what to do about it ([`Hint`]), and its exit status.

use std::path::PathBuf;

use crate::args::DEFAULT_FILE;
use crate::commands::key::KeyError;
use crate::commands::ExitStatus;
use crate::error::{render, Hint};
use crate::plan::Freshness;

/// What a command refuses to do, or could not do, and how to get past it ([`Hint`]). [`main`]
/// prints it once ([`CliError::report`]) and exits with [`CliError::exit_status`].
///
/// [`main`]: crate::commands::main
#[derive(Debug)]
pub enum CliError {
    /// No FILE argument, no `pipe.yaml` here, and no run recorded in the store.
    NoPipelineFile { store: PathBuf },
    /// A `--set` that is not `STAGE.PARAM=VALUE` (the message says which).
    BadSet(String),
    /// The pipeline file cannot be read or is invalid.
    Load(crate::config::LoadError),
    /// The pipeline's nodes depend on each other in a cycle.
    Cycle(crate::graph::CycleError),
    /// A target matches no node (or is not a pattern).
    Targets(crate::targets::TargetError),
    /// Several nodes match where one is needed.
    Ambiguous { targets: String, nodes: Vec<String> },
    /// `--store file:/x`: a URL missing a slash.
    MistypedStore { store: String, scheme: String },
    /// The store directory cannot be opened or created.
    StoreUnopenable(crate::store::StoreError),
    /// The store (its lock, its records, its objects, its remote) cannot be read or written.
    Store(crate::store::StoreError),
    /// `pipe push` with a local store.
    PushNeedsRemote,
    /// `pipe gc --remote` with a local store.
    GcNeedsRemote,
    /// `pipe gc --records` found pipeline files it cannot load: each with its rendered error.
    GcInvalidPipelines(Vec<(PathBuf, String)>),
    /// `pipe run --requeue` without `--executor slurm`.
    RequeueNeedsSlurm,
    /// The binary cannot be located for the Slurm jobs.
    NoExecutable(std::io::Error),
    /// Slurm cannot be used.
    Slurm(crate::slurm::SlurmError),
    /// `pipe run`: the declared report could not be written after the run, which ended as said.
    ReportAfterRun { error: crate::exec::PublishError, run: ExitStatus },
    /// `pipe run-node`: the node failed (or could not start); `unrecorded`: why its failure
    /// marker could not be written either.
    NodeFailed { node: String, error: String, unrecorded: Option<String> },
    /// `pipe run-node`: the node was interrupted.
    NodeInterrupted { node: String, reason: String },
    /// `pipe get` of a node whose stored result is not the current one.
    NotFresh { node: String, state: Freshness, reasons: String, file: PathBuf },
    /// `pipe get` of a fresh node whose objects cannot be read.
    Unreadable { node: String, key: String, store: String, file: PathBuf },
    /// `pipe get` of an output the node does not have.
    NoSuchOutput { node: String, output: String, outputs: Vec<String> },
    /// `pipe get`: the destination cannot be written.
    CannotWrite { path: PathBuf, source: std::io::Error },
    /// `pipe show` without a node.
    NameANode { file: PathBuf },
    /// `pipe report -o PATH` names a file a stage publishes.
    ReportOverPublished { path: PathBuf, node: String },
    /// The HTML report could not be written (the publish rule refused, or the write failed).
    Report(crate::exec::PublishError),
    /// `pipe diff`: a run that does not exist (the message says which).
    NoSuchRun(String),
    /// `pipe query` / `pipe compare`: the table or the query failed.
    Query(crate::query::QueryError),
    /// `pipe compare`'s arguments do not fit the table.
    Compare(crate::compare::CompareError),
    /// `pipe key` cannot answer.
    Key(Box<KeyError>),
    /// The stage worker cannot start (`pipe data`).
    Worker(engine::worker::WorkerError),
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::NoPipelineFile { store } => {
                write!(f, "no pipeline file given, no {DEFAULT_FILE} here, and no earlier run in {}", store.display())
            }
            CliError::BadSet(e) => f.write_str(e),
            CliError::Load(e) => write!(f, "{e}"),
            CliError::Cycle(e) => write!(f, "{e}"),
            CliError::Targets(e) => write!(f, "{e}"),
            CliError::Ambiguous { targets, nodes } => {
                write!(f, "{} nodes match {targets}; name one:", nodes.len())?;
                nodes.iter().try_for_each(|n| write!(f, "\n  {n}"))
            }
            CliError::MistypedStore { store, scheme } => {
                write!(f, "--store {store}: `{scheme}:` reads as a URL, but a store URL is s3://BUCKET/PREFIX or file:///ABSOLUTE/DIR")
            }
            CliError::StoreUnopenable(e) | CliError::Store(e) => write!(f, "{e}"),
            CliError::PushNeedsRemote => f.write_str("push needs a remote store"),
            CliError::GcNeedsRemote => f.write_str("--remote needs a remote store: --store s3://BUCKET/PREFIX or file:///DIR"),
            CliError::GcInvalidPipelines(broken) => {
                for (i, (file, error)) in broken.iter().enumerate() {
                    if i > 0 {
                        f.write_str("\nerror: ")?;
                    }
                    write!(
                        f,
                        "gc --records: {} looks like a pipeline (it has `stages:`) but does not load, so gc cannot tell which results it uses:",
                        file.display()
                    )?;
                    error.lines().try_for_each(|line| write!(f, "\n  {line}"))?;
                }
                Ok(())
            }
            CliError::RequeueNeedsSlurm => f.write_str("--requeue resubmits Slurm jobs: it needs --executor slurm"),
            CliError::NoExecutable(e) => write!(f, "cannot locate the pipe binary for the Slurm jobs: {e}"),
            CliError::Slurm(e) => write!(f, "{e}"),
            CliError::NodeFailed { node, error, unrecorded } => {
                write!(f, "{node}: {error}")?;
                match unrecorded {
                    Some(e) => write!(f, "\nerror: could not record the failure: {e}"),
                    None => Ok(()),
                }
            }
            CliError::NodeInterrupted { node, reason } => write!(f, "{node}: {reason}"),
            CliError::NotFresh { node, state, reasons, .. } => write!(f, "{node} is {state}: {reasons}"),
            CliError::Unreadable { node, key, store, .. } => write!(f, "{node}: its result (key {key}) cannot be read from {store}"),
            CliError::NoSuchOutput { node, output, .. } => write!(f, "{node} has no output `{output}`"),
            CliError::CannotWrite { path, source } => write!(f, "cannot write {}: {source}", path.display()),
            CliError::NameANode { file } => write!(f, "name the node to show, e.g. `pipe show {} 'train[mu2=0.5]'`", file.display()),
            CliError::ReportOverPublished { path, node } => write!(f, "{} is published by {node}; the report does not replace it", path.display()),
            // The same rule as a published output, said as what the user ran.
            CliError::Report(e) | CliError::ReportAfterRun { error: e, .. } => write!(f, "report {}: {}", e.path.display(), e.what),
            CliError::NoSuchRun(e) => f.write_str(e),
            CliError::Query(e) => write!(f, "{e}"),
            CliError::Compare(e) => write!(f, "{e}"),
            CliError::Key(e) => write!(f, "{e}"),
            CliError::Worker(e) => write!(f, "{e}"),
        }
    }
}

impl Hint for CliError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            CliError::NoPipelineFile { .. } => "name one, e.g. `pipe run pipelines/quick.yaml`".into(),
            CliError::Load(e) => return e.hint(),
            CliError::Targets(e) => return e.hint(),
            CliError::MistypedStore { store, .. } => format!("for a local folder whose name holds `:`, write it as ./{store}"),
            CliError::StoreUnopenable(_) => "check that the directory is writable, or pass --store DIR / --cache DIR".into(),
            CliError::Store(e) => return e.hint(),
            CliError::PushNeedsRemote => "pass --store s3://BUCKET/PREFIX or file:///DIR (this machine's cache is --cache)".into(),
            CliError::GcInvalidPipelines(_) => return None,
            CliError::Slurm(e) => return e.hint(),
            CliError::NotFresh { node, file, .. } => {
                format!("its stored result is not the one the file describes now; `pipe run {} '{node}'` computes it", file.display())
            }
            CliError::Unreadable { node, file, .. } => {
                format!("check the store (its connection and credentials for a remote), or recompute it: `pipe run {} '{node}' -f`", file.display())
            }
            CliError::NoSuchOutput { outputs, .. } => format!("its outputs: {}", outputs.join(", ")),
            CliError::NameANode { file } => format!("`pipe dag {}` lists the nodes", file.display()),
            CliError::ReportOverPublished { .. } => "name another file with `-o FILE`".into(),
            CliError::Report(e) | CliError::ReportAfterRun { error: e, .. } => return e.hint(),
            CliError::Query(e) => return e.hint(),
            CliError::Compare(e) => return e.hint(),
            CliError::Key(e) => return e.hint(),
            CliError::Worker(e) => return e.hint(),
            // Said as plain messages, as they always were.
            CliError::BadSet(_)
            | CliError::Cycle(_)
            | CliError::Ambiguous { .. }
            | CliError::GcNeedsRemote
            | CliError::RequeueNeedsSlurm
            | CliError::NoExecutable(_)
            | CliError::NodeFailed { .. }
            | CliError::NodeInterrupted { .. }
            | CliError::CannotWrite { .. }
            | CliError::NoSuchRun(_) => return None,
        })
    }
}

impl CliError {
    /// `pipe key`'s error.
    pub(crate) fn key(e: KeyError) -> CliError {
        CliError::Key(Box::new(e))
    }

    /// The process's exit status for this error.
    pub fn exit_status(&self) -> ExitStatus {
        use crate::exec::{PublishError, PublishFailure};
        match self {
            CliError::NoPipelineFile { .. }
            | CliError::BadSet(_)
            | CliError::Ambiguous { .. }
            | CliError::PushNeedsRemote
            | CliError::GcNeedsRemote
            | CliError::RequeueNeedsSlurm
            | CliError::NoExecutable(_)
            | CliError::Slurm(_)
            | CliError::NameANode { .. }
            | CliError::ReportOverPublished { .. } => ExitStatus::Usage,
            CliError::Load(_) | CliError::Cycle(_) | CliError::GcInvalidPipelines(_) => ExitStatus::InvalidPipeline,
            CliError::Targets(_) | CliError::NotFresh { .. } | CliError::NoSuchOutput { .. } | CliError::NoSuchRun(_) | CliError::Query(_) => {
                ExitStatus::NotFound
            }
            CliError::MistypedStore { .. }
            | CliError::StoreUnopenable(_)
            | CliError::Store(_)
            | CliError::Unreadable { .. }
            | CliError::CannotWrite { .. } => ExitStatus::Store,
            CliError::ReportAfterRun { run, .. } => ExitStatus::from_code(run.code().max(ExitStatus::NodesFailed.code())),
            CliError::NodeFailed { .. } => ExitStatus::NodesFailed,
            CliError::NodeInterrupted { .. } => ExitStatus::Interrupted,
            CliError::Report(PublishError { what: PublishFailure::Write(_) | PublishFailure::Backup(_), .. }) => ExitStatus::Store,
            CliError::Report(_) => ExitStatus::Usage,
            CliError::Compare(e) => ExitStatus::from_code(e.exit_code()),
            CliError::Key(e) => e.exit_status(),
            CliError::Worker(_) => ExitStatus::Internal,
        }
    }

    /// The error as printed: `error: MESSAGE` with its hint ([`render`]); an invalid pipeline
    /// file's diagnostics carry their own `error:`; an interrupted node says `interrupted:`; gc's
    /// refusal ends with how to go on.
    pub fn report(&self) -> String {
        match self {
            CliError::Load(e) => render(e),
            CliError::NodeInterrupted { .. } => format!("interrupted: {self}"),
            CliError::GcInvalidPipelines(_) => format!(
                "error: {self}\nhint: fix the file (`pipe status FILE` shows its errors) and run gc again, or pass --skip-invalid to collect without it (results only it uses are then deleted); nothing was removed"
            ),
            _ => format!("error: {}", render(self)),
        }
    }
}

impl From<crate::project::ProjectLoadError> for CliError {
    fn from(e: crate::project::ProjectLoadError) -> Self {
        match e {
            crate::project::ProjectLoadError::Load(e) => CliError::Load(e),
            crate::project::ProjectLoadError::Cycle(e) => CliError::Cycle(e),
        }
    }
}

impl From<crate::store::StoreError> for CliError {
    fn from(e: crate::store::StoreError) -> CliError {
        CliError::Store(e)
    }
}
