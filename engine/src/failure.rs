//! Why a node did not complete, typed by where it went wrong ([`FailureKind`]): each part says
//! what (`Display`) and how to get past it ([`Hint`]); only the display renders them
//! ([`NodeFailure::text`]), and the run record keeps both halves ([`NodeFailure::record`]).

use crate::error::{render, Hint};
use crate::exec::PublishError;
use crate::stage::StageError;
use crate::store::{FailureKind, FailureRecord, StoreError};

/// Why a node did not complete.
pub enum NodeFailure {
    /// An input could not be used.
    Input(InputError),
    /// The store could not be read or written, or does not hold the result.
    Store(StoreFailure),
    /// The stage's own error (or its outputs not as it declares them), with the end of its log.
    Stage(StageFailure),
    /// A stored output could not be published into the workspace (the result itself is stored).
    Publish(PublishError),
    /// A Slurm job's key differs from the one it was submitted under.
    KeyMismatch(KeyMismatch),
    /// What ran the node failed or died: Slurm refused or lost its job.
    Runner(Box<dyn Hint + Send + Sync>),
    /// A failure a Slurm job reported from the cluster, of the kind the job recorded.
    Reported {
        /// The job's failure.
        failure: FailureRecord,
        /// Where it happened (the Slurm job and its log).
        at: String,
    },
}

impl NodeFailure {
    /// What ran the node failed, as `message` says.
    pub fn runner(message: String) -> NodeFailure {
        NodeFailure::Runner(Box::new(Message(message)))
    }

    /// Where it went wrong.
    pub fn kind(&self) -> FailureKind {
        match self {
            NodeFailure::Input(_) => FailureKind::Input,
            NodeFailure::Store(_) => FailureKind::Store,
            NodeFailure::Stage(_) => FailureKind::Stage,
            NodeFailure::Publish(_) => FailureKind::Publish,
            NodeFailure::KeyMismatch(_) => FailureKind::KeyMismatch,
            NodeFailure::Runner(_) => FailureKind::Runner,
            NodeFailure::Reported { failure, .. } => failure.kind,
        }
    }

    /// The run record's typed entry: kind, message and hint.
    pub fn record(&self) -> FailureRecord {
        // A stage's failure keeps the end of its log (its stderr), as the terminal shows it: a
        // failure a Slurm job hands back through the store is read by the driver from this.
        let message = match self {
            NodeFailure::Stage(s) => format!("{self}{}", s.log),
            _ => self.to_string(),
        };
        FailureRecord { kind: self.kind(), message, hint: self.hint() }
    }

    /// As the terminal shows it (and the run record's `error` keeps it): the message, the hint,
    /// then the end of the stage's log when there is one.
    pub fn text(&self) -> String {
        match self {
            NodeFailure::Stage(s) => format!("{}{}", render(self), s.log),
            _ => render(self),
        }
    }

    fn part(&self) -> &dyn Hint {
        match self {
            NodeFailure::Input(e) => e,
            NodeFailure::Store(e) => e,
            NodeFailure::Stage(e) => e,
            NodeFailure::Publish(e) => e,
            NodeFailure::KeyMismatch(e) => e,
            NodeFailure::Runner(e) => e.as_ref(),
            NodeFailure::Reported { failure, .. } => failure,
        }
    }
}

impl std::fmt::Display for NodeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeFailure::Reported { failure, at } => write!(f, "{}\n({at})", failure.message),
            _ => self.part().fmt(f),
        }
    }
}

impl Hint for NodeFailure {
    fn hint(&self) -> Option<String> {
        self.part().hint()
    }
}

impl std::fmt::Debug for NodeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind(), render(self))
    }
}

impl From<InputError> for NodeFailure {
    fn from(e: InputError) -> Self {
        NodeFailure::Input(e)
    }
}
impl From<StoreFailure> for NodeFailure {
    fn from(e: StoreFailure) -> Self {
        NodeFailure::Store(e)
    }
}
impl From<StoreError> for NodeFailure {
    fn from(e: StoreError) -> Self {
        NodeFailure::Store(StoreFailure::Io(e))
    }
}
impl From<StageFailure> for NodeFailure {
    fn from(e: StageFailure) -> Self {
        NodeFailure::Stage(e)
    }
}
impl From<PublishError> for NodeFailure {
    fn from(e: PublishError) -> Self {
        NodeFailure::Publish(e)
    }
}
impl From<KeyMismatch> for NodeFailure {
    fn from(e: KeyMismatch) -> Self {
        NodeFailure::KeyMismatch(e)
    }
}

/// A message with no hint (what a runner reports in words).
struct Message(String);
impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl Hint for Message {}

/// An input that could not be used.
#[derive(Debug)]
pub enum InputError {
    /// A workspace file or an upstream output could not be resolved (the message names it).
    Unresolved(String),
    /// An upstream output is missing from the store.
    Missing {
        /// The object's short hash.
        object: String,
        /// The store, as [`crate::store::Store::describe`] names it.
        store: String,
    },
    /// An upstream output's bytes do not match its hash.
    Corrupt {
        /// The object's short hash.
        object: String,
        /// The store.
        store: String,
        /// What was found instead.
        actual: String,
    },
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputError::Unresolved(e) => f.write_str(e),
            InputError::Missing { object, store } => write!(f, "input object {object} is missing from {store} (removed by gc?)"),
            InputError::Corrupt { object, store, actual } => write!(f, "input object {object} is corrupt in {store} (hash {actual})"),
        }
    }
}

impl Hint for InputError {
    fn hint(&self) -> Option<String> {
        match self {
            InputError::Unresolved(_) => None,
            InputError::Missing { .. } | InputError::Corrupt { .. } => Some("run `pipe run` again to recompute it".into()),
        }
    }
}

/// The store could not serve or keep a node's result.
#[derive(Debug)]
pub enum StoreFailure {
    /// Reading or writing it failed.
    Io(StoreError),
    /// It (a remote) could not be read; the message says why.
    Unavailable(String),
    /// `pipe pull`: it does not hold the result.
    NotStored {
        /// The node's key.
        key: String,
        /// The store, as [`crate::store::Store::describe`] names it.
        store: String,
    },
}

impl std::fmt::Display for StoreFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreFailure::Io(e) => e.fmt(f),
            StoreFailure::Unavailable(e) => f.write_str(e),
            StoreFailure::NotStored { key, store } => write!(f, "not in {store} (key {})", &key[..12.min(key.len())]),
        }
    }
}

impl Hint for StoreFailure {
    fn hint(&self) -> Option<String> {
        match self {
            StoreFailure::Io(e) => e.hint(),
            StoreFailure::Unavailable(_) => None,
            StoreFailure::NotStored { .. } => Some("`pipe run` computes it".into()),
        }
    }
}

/// The stage's own error.
#[derive(Debug)]
pub struct StageFailure {
    /// What the kind said (or what is wrong with its outputs).
    pub error: StageError,
    /// The end of its stderr, else of its log, as shown after the error (empty when it wrote none).
    pub log: String,
}

impl std::fmt::Display for StageFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl Hint for StageFailure {
    fn hint(&self) -> Option<String> {
        self.error.hint()
    }
}

/// A Slurm job's node whose key here differs from the key `pipe run` submitted it under: the job
/// refuses to run (it would store a result under a key nobody asked for).
#[derive(Debug)]
pub struct KeyMismatch {
    /// The node's id.
    pub node: String,
    /// The key computed in the job.
    pub here: String,
    /// The key the submitter computed.
    pub submitted: String,
    /// What differs, per fingerprint part.
    pub why: String,
    /// Whether the stage's declared environment (device, driver, data files) differs.
    pub environment: bool,
}

impl std::fmt::Display for KeyMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} has key {} here, not the submitted {} ({})", self.node, self.here, self.submitted, self.why)
    }
}

impl Hint for KeyMismatch {
    fn hint(&self) -> Option<String> {
        Some(if self.environment {
            "this machine differs from the one that ran `pipe run` in what the stage declares as its environment: pin it in the pipeline (e.g. `device: cuda` instead of `auto`) or submit from a machine like the nodes".into()
        } else {
            "the pipeline file, a param or an input file changed since `pipe run` submitted it: run it again".into()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_rendered_only_for_display_and_kept_typed() {
        let stage = NodeFailure::Stage(StageFailure {
            error: StageError::Refused { message: "mu2 must be positive".into(), hint: "set mu2 > 0".into() },
            log: "\n--- end of stderr ---\nboom".into(),
        });
        assert_eq!(stage.kind(), FailureKind::Stage);
        assert_eq!(stage.text(), "mu2 must be positive\n  = hint: set mu2 > 0\n--- end of stderr ---\nboom");
        assert_eq!(
            stage.record(),
            FailureRecord {
                kind: FailureKind::Stage,
                message: "mu2 must be positive\n--- end of stderr ---\nboom".into(),
                hint: Some("set mu2 > 0".into())
            }
        );
        let pull = NodeFailure::from(StoreFailure::NotStored { key: "ab".repeat(32), store: "store /s".into() });
        assert_eq!(pull.text(), "not in store /s (key abababababab)\n  = hint: `pipe run` computes it");
        let reported = NodeFailure::Reported { failure: stage.record(), at: "Slurm job 7, log /c/slurm/7.out".into() };
        assert_eq!(reported.kind(), FailureKind::Stage);
        // The job's stderr reaches the driver's terminal with the failure.
        assert_eq!(reported.text(), "mu2 must be positive\n--- end of stderr ---\nboom\n(Slurm job 7, log /c/slurm/7.out)\n  = hint: set mu2 > 0");
        assert_eq!(NodeFailure::runner("job 7 ended".into()).record().hint, None);
    }
}
