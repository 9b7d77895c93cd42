//! The proxy runner: each kind a worker serves, as the engine's [`StageKind`], answered from the
//! interface cache or the pool, run in the pool.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::cache::Answers;
use super::pool::{Pool, ANSWER_WITHIN};
use super::protocol::{KindDesc, Reply, Request};
use crate::stage::{InputDecl, OutputSpec, ParamSpec, Params, Registry, RunContext, StageError, StageKind};

/// A registry of `local` (in-process) kinds plus every kind the worker at `exe` serves, described
/// on first use (from the cache when the worker is unchanged). The loader's error (the worker is
/// missing, cannot start or does not answer) is [`Registry::problem`].
pub fn registry(local: Registry, exe: PathBuf) -> Registry {
    let mut r = local;
    r.extend_lazily(move || {
        let remote = Arc::new(Remote::open(exe.clone())?);
        Ok(remote.answers.kinds().iter().map(|d| Arc::new(RemoteKind::new(d, remote.clone())) as Arc<dyn StageKind>).collect())
    });
    r
}

/// The worker, its pool and its answers.
struct Remote {
    pool: Pool,
    answers: Answers,
}

impl Remote {
    /// Errors: the executable is missing or unreadable, or it does not describe its kinds.
    fn open(exe: PathBuf) -> Result<Remote, String> {
        let (answers, stat) = Answers::open(&exe)?;
        let remote = Remote { pool: Pool::new(exe, ANSWER_WITHIN).pinned(stat), answers };
        if remote.answers.kinds().is_empty() {
            match remote.pool.ask(&Request::Describe).map_err(|e| e.to_string())? {
                Reply::Kinds { kinds } => remote.answers.set_kinds(kinds),
                other => return Err(format!("the stage worker answered `describe` with {other:?}")),
            }
        }
        remote.answers.save();
        Ok(remote)
    }

    fn outputs(&self, kind: &str, params: &Params) -> Result<Vec<OutputSpec>, String> {
        self.answers.outputs(kind, params, || match self.pool.ask(&Request::Outputs { kind: kind.to_string(), params: params.clone() }) {
            Ok(Reply::Outputs { outputs }) => Ok(outputs),
            Ok(Reply::Error { error }) => Err(error),
            Ok(other) => Err(format!("the stage worker answered `outputs` with {other:?}")),
            Err(e) => Err(e.to_string()),
        })
    }

    fn environment(&self, kind: &str, params: &Params) -> BTreeMap<String, String> {
        self.answers.environment(kind, params, || match self.pool.ask(&Request::Environment { kind: kind.to_string(), params: params.clone() }) {
            Ok(Reply::Environment { values, read }) => Ok((values, read)),
            Ok(Reply::Error { error }) => Err(error),
            Ok(other) => Err(format!("unexpected reply {other:?}")),
            Err(e) => Err(e.to_string()),
        })
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.answers.save();
    }
}

/// A kind served by the worker, as the engine sees it.
pub struct RemoteKind {
    name: String,
    version: u32,
    params: Vec<ParamSpec>,
    inputs: InputDecl,
    reads_input_identity: bool,
    remote: Arc<Remote>,
}

impl RemoteKind {
    fn new(d: &KindDesc, remote: Arc<Remote>) -> Self {
        RemoteKind {
            name: d.name.clone(),
            version: d.version,
            params: d.param_specs(),
            inputs: d.input_decl(),
            reads_input_identity: d.reads_input_identity,
            remote,
        }
    }
}

impl StageKind for RemoteKind {
    fn name(&self) -> &str {
        &self.name
    }
    fn version(&self) -> u32 {
        self.version
    }
    fn params(&self) -> Vec<ParamSpec> {
        self.params.clone()
    }
    fn inputs(&self) -> InputDecl {
        self.inputs.clone()
    }
    fn outputs(&self, params: &Params) -> Result<Vec<OutputSpec>, String> {
        self.remote.outputs(&self.name, params)
    }
    fn environment(&self, params: &Params) -> BTreeMap<String, String> {
        self.remote.environment(&self.name, params)
    }
    fn reads_input_identity(&self) -> bool {
        self.reads_input_identity
    }
    fn run(&self, ctx: &RunContext) -> Result<(), StageError> {
        let r = self.remote.pool.run(&self.name, ctx);
        self.remote.answers.save();
        r
    }
}
