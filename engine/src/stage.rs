//! The one small interface through which the engine sees a stage kind.
//!
//! A kind declares its name, version, typed params, inputs and outputs, and runs given a
//! [`RunContext`]. The engine never looks inside; the kinds never look at the engine.
//! A kind may run in this process or in a worker process ([`crate::worker`]): everything here
//! crosses that boundary unchanged.
#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::value::Value;

/// The declared type of a parameter; values are checked (and ints widened to floats) against it.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamType {
    /// `true` / `false`.
    Bool,
    /// A 64-bit integer.
    Int,
    /// A finite 64-bit float (an int is accepted and widened).
    Float,
    /// Any string.
    Str,
    /// One of a fixed set of strings.
    Choice(Vec<String>),
    /// A list whose items all have the given type.
    List(Box<ParamType>),
}

impl std::fmt::Display for ParamType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamType::Bool => write!(f, "bool"),
            ParamType::Int => write!(f, "int"),
            ParamType::Float => write!(f, "float"),
            ParamType::Str => write!(f, "string"),
            ParamType::Choice(c) => write!(f, "one of {}", c.join(", ")),
            ParamType::List(t) => write!(f, "list of {t}"),
        }
    }
}

impl ParamType {
    /// One of `options`.
    pub fn choice(options: &[&str]) -> Self {
        ParamType::Choice(options.iter().map(|o| o.to_string()).collect())
    }
    /// Checks `v` against the type, returning the canonical value (ints widened to floats).
    pub fn check(&self, v: &Value) -> Result<Value, String> {
        let mismatch = || format!("expected {self}, found {} `{v}`", v.type_name());
        match (self, v) {
            (ParamType::Bool, Value::Bool(_)) | (ParamType::Int, Value::Int(_)) | (ParamType::Str, Value::Str(_)) => Ok(v.clone()),
            (ParamType::Float, Value::Float(f)) if !f.is_finite() => Err(format!("expected a finite float, found `{v}`")),
            (ParamType::Float, Value::Float(_)) => Ok(v.clone()),
            (ParamType::Float, Value::Int(i)) => Ok(Value::Float(*i as f64)),
            (ParamType::Choice(options), Value::Str(s)) if options.contains(s) => Ok(v.clone()),
            (ParamType::Choice(options), Value::Str(s)) => Err(format!("`{s}` is not one of: {}", options.join(", "))),
            (ParamType::List(t), Value::List(items)) => items
                .iter()
                .enumerate()
                .map(|(i, x)| t.check(x).map_err(|e| format!("item {i}: {e}")))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::List),
            _ => Err(mismatch()),
        }
    }
}

/// One parameter a kind accepts: its name, type, default, help and allowed range.
#[derive(Clone, Debug)]
pub struct ParamSpec {
    /// The name pipelines set (`params: {name: value}`).
    pub name: String,
    /// The type values are checked against when the pipeline is validated.
    pub ty: ParamType,
    /// `None` means the param is required.
    pub default: Option<Value>,
    /// One line for `pipe show` and error messages.
    pub help: String,
    /// Says WHERE something is, not what it is (a data folder): left out of the cache key, so a
    /// cache filled on one machine serves another that keeps the same data elsewhere. The kind
    /// must key the content itself (e.g. through its environment).
    pub location: bool,
    /// Says only how far to train (`epochs`): left out of the key of the node's checkpoints
    /// ([`crate::checkpoint`]), so a node asked to train longer resumes from one saved on the
    /// way, or at the end of a shorter run, instead of starting over. Still in the cache key.
    pub horizon: bool,
    /// Allowed numeric range, checked when the pipeline is validated (before anything runs).
    pub range: Option<Range>,
}

/// Upper bounds for params that count work (epochs, iterations, batch sizes, images), declared
/// by the kinds with [`ParamSpec::at_most`]: a value no machine could finish
/// (`epochs: 9223372036854775807`, a typo) is refused when the pipeline is validated, not hours
/// into a run. Each is far beyond any published setting, so no real pipeline meets it.
pub mod limits {
    /// Training epochs (Ruff et al. use 150 to 350).
    pub const EPOCHS: f64 = 100_000.0;
    /// Iterations of an optimisation that is not training (t-SNE's default is 1,000).
    pub const ITERATIONS: f64 = 1_000_000.0;
    /// Images in one mini-batch (the datasets here hold at most 60,000 training images).
    pub const BATCH_SIZE: f64 = 1_000_000.0;
    /// Images kept, held out or embedded (`limit_train`, `max_points`, ...): more than any dataset holds.
    pub const IMAGES: f64 = 100_000_000.0;
    /// Images drawn into one figure.
    pub const IMAGES_SHOWN: f64 = 10_000.0;
}

/// A numeric param's allowed values: `min` / `max` bounds, each inclusive or not.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    /// Lower bound and whether it is allowed.
    pub min: Option<(f64, bool)>,
    /// Upper bound and whether it is allowed.
    pub max: Option<(f64, bool)>,
}

impl Range {
    /// `None` when `x` is allowed, else what is (e.g. `> 0`, `in [0, 0.5]`).
    pub fn violation(&self, x: f64) -> Option<String> {
        let lo_ok = self.min.is_none_or(|(m, inc)| if inc { x >= m } else { x > m });
        let hi_ok = self.max.is_none_or(|(m, inc)| if inc { x <= m } else { x < m });
        if lo_ok && hi_ok {
            return None;
        }
        Some(match (self.min, self.max) {
            (Some((a, ai)), Some((b, bi))) => format!("in {}{a}, {b}{}", if ai { "[" } else { "(" }, if bi { "]" } else { ")" }),
            (Some((a, true)), None) => format!(">= {a}"),
            (Some((a, false)), None) => format!("> {a}"),
            (None, Some((b, true))) => format!("<= {b}"),
            (None, Some((b, false))) => format!("< {b}"),
            (None, None) => String::new(),
        })
    }
}

impl ParamSpec {
    /// A param every node must set.
    pub fn required(name: &str, ty: ParamType, help: &str) -> Self {
        ParamSpec { name: name.into(), ty, default: None, help: help.into(), location: false, horizon: false, range: None }
    }
    /// A param with a default.
    pub fn optional(name: &str, ty: ParamType, default: Value, help: &str) -> Self {
        ParamSpec { name: name.into(), ty, default: Some(default), help: help.into(), location: false, horizon: false, range: None }
    }
    /// An optional string param naming a place (see [`ParamSpec::location`]); default empty.
    pub fn location(name: &str, help: &str) -> Self {
        ParamSpec {
            name: name.into(),
            ty: ParamType::Str,
            default: Some(Value::Str(String::new())),
            help: help.into(),
            location: true,
            horizon: false,
            range: None,
        }
    }
    /// Marks the param as the training horizon (see [`ParamSpec::horizon`]).
    pub fn horizon(mut self) -> Self {
        self.horizon = true;
        self
    }
    /// At least `min` (inclusive).
    pub fn at_least(mut self, min: f64) -> Self {
        self.range = Some(Range { min: Some((min, true)), max: self.range.and_then(|r| r.max) });
        self
    }
    /// Greater than `min`.
    pub fn above(mut self, min: f64) -> Self {
        self.range = Some(Range { min: Some((min, false)), max: self.range.and_then(|r| r.max) });
        self
    }
    /// At most `max` (inclusive).
    pub fn at_most(mut self, max: f64) -> Self {
        self.range = Some(Range { min: self.range.and_then(|r| r.min), max: Some((max, true)) });
        self
    }
    /// Less than `max`.
    pub fn below(mut self, max: f64) -> Self {
        self.range = Some(Range { min: self.range.and_then(|r| r.min), max: Some((max, false)) });
        self
    }
}

/// Which inputs a kind accepts.
#[derive(Clone, Debug)]
pub enum InputDecl {
    /// Exactly these names; each entry says whether it is required.
    Named(Vec<(String, bool)>),
    /// Any names (the generic `command` kind).
    Any,
}

impl InputDecl {
    /// Exactly these inputs, each with whether it is required.
    pub fn named(inputs: &[(&str, bool)]) -> Self {
        InputDecl::Named(inputs.iter().map(|(n, r)| (n.to_string(), *r)).collect())
    }
}

/// One file a stage produces: `name` is what pipelines reference (`stage.name`), `file` the file name.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OutputSpec {
    /// The name pipelines reference (`stage.name`).
    pub name: String,
    /// The file name the stage writes in its work dir (and `publish` copies).
    pub file: String,
}

impl OutputSpec {
    /// An output named `name`, written as `file`.
    pub fn new(name: &str, file: &str) -> Self {
        OutputSpec { name: name.to_string(), file: file.to_string() }
    }
}

/// Resolved, type-checked params of one node.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Params(pub BTreeMap<String, Value>);

impl Params {
    /// The value of `name`, unless absent or `null`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| **v != Value::Null)
    }
    /// A string param; an error naming the param otherwise.
    pub fn str(&self, name: &str) -> Result<&str, StageError> {
        self.get(name).and_then(Value::as_str).ok_or_else(|| StageError::param(name, "a string"))
    }
    /// A numeric param as a float.
    pub fn f64(&self, name: &str) -> Result<f64, StageError> {
        self.get(name).and_then(Value::as_f64).ok_or_else(|| StageError::param(name, "a number"))
    }
    /// An integer param.
    pub fn i64(&self, name: &str) -> Result<i64, StageError> {
        self.get(name).and_then(Value::as_i64).ok_or_else(|| StageError::param(name, "an integer"))
    }
    /// A non-negative integer param.
    pub fn usize(&self, name: &str) -> Result<usize, StageError> {
        let v = self.i64(name)?;
        usize::try_from(v).map_err(|_| StageError::param(name, "a non-negative integer"))
    }
    /// A list-of-strings param (empty when absent).
    pub fn str_list(&self, name: &str) -> Result<Vec<String>, StageError> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(Value::List(items)) => {
                items.iter().map(|v| v.as_str().map(str::to_string).ok_or_else(|| StageError::param(name, "a list of strings"))).collect()
            }
            Some(_) => Err(StageError::param(name, "a list of strings")),
        }
    }
}

/// Why a stage did not complete.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// A param has the wrong type (validation normally catches this first).
    #[error("param `{name}` must be {expected}")]
    Param {
        /// The param's name.
        name: String,
        /// What it must be, e.g. "a string".
        expected: String,
    },
    /// The run was interrupted (Ctrl-C); not a failure of the stage.
    #[error("interrupted")]
    Cancelled,
    /// The stage failed; the message says why.
    #[error("{0}")]
    Failed(String),
    /// The stage cannot use what it was given; `hint` says how to fix that.
    #[error("{message}")]
    Refused {
        /// What is wrong with the inputs or params.
        message: String,
        /// How to fix them.
        hint: String,
    },
    /// Reading or writing a file failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the file.
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl crate::error::Hint for StageError {
    fn hint(&self) -> Option<String> {
        match self {
            StageError::Refused { hint, .. } => Some(hint.clone()),
            StageError::Param { .. } | StageError::Cancelled | StageError::Failed(_) | StageError::Io { .. } => None,
        }
    }
}

impl StageError {
    /// [`StageError::Param`].
    pub fn param(name: &str, expected: &str) -> Self {
        StageError::Param { name: name.to_string(), expected: expected.to_string() }
    }
    /// [`StageError::Failed`].
    pub fn failed(msg: impl Into<String>) -> Self {
        StageError::Failed(msg.into())
    }
    /// [`StageError::Refused`].
    pub fn refused(message: impl Into<String>, hint: impl Into<String>) -> Self {
        StageError::Refused { message: message.into(), hint: hint.into() }
    }
    /// [`StageError::Io`].
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StageError::Io { context: context.into(), source }
    }
}

/// Progress of long work inside a node (epochs, batches); shown as a bar by the terminal reporter.
pub trait Progress: Send + Sync {
    /// The number of steps (e.g. epochs).
    fn set_length(&self, len: u64);
    /// Steps done so far.
    fn set_position(&self, pos: u64);
    /// A short status shown beside the bar (e.g. the last loss).
    fn set_message(&self, msg: String);
    /// A value of the metric `name` (e.g. `loss`) at step `step` (an epoch): kept, while the node
    /// runs, for the live curves of `pipe report` ([`crate::live`]). Ignored by default.
    fn metric(&self, _name: &str, _step: u64, _value: f64) {}
}

/// A progress sink that shows nothing (tests, non-terminal runs).
pub struct NoProgress;
impl Progress for NoProgress {
    fn set_length(&self, _: u64) {}
    fn set_position(&self, _: u64) {}
    fn set_message(&self, _: String) {}
}

/// What a node's run is given, as data: it crosses to a worker process unchanged
/// ([`crate::worker`]). A [`RunContext`] reads as one (`ctx.params`, `ctx.inputs`, ...).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodeJob {
    /// The node's id, for logs and messages only: it is not in the key, so no output may hold it.
    pub node: String,
    /// The node's type-checked params, defaults filled in.
    pub params: Params,
    /// Input name -> object paths (one for a plain input, several for a gathered one). Read-only.
    pub inputs: BTreeMap<String, Vec<PathBuf>>,
    /// Input name -> node names the paths came from (same order as `inputs`). Empty unless the kind
    /// [`reads_input_identity`](StageKind::reads_input_identity).
    pub input_nodes: BTreeMap<String, Vec<String>>,
    /// Input name -> grid coordinates of each upstream node (same order as `inputs`; empty for
    /// files). Empty unless the kind [`reads_input_identity`](StageKind::reads_input_identity).
    pub input_coords: BTreeMap<String, Vec<BTreeMap<String, Value>>>,
    /// What the kind declared it writes (see [`RunContext::output`]).
    pub outputs: Vec<OutputSpec>,
    /// Private scratch directory; outputs are written here and moved into the store afterwards.
    pub work_dir: PathBuf,
    /// The directory `pipe` was started in (commands run there).
    pub workspace: PathBuf,
    /// CPU threads this node may use (`--threads`); a worker sets its libraries' pools to it.
    pub threads: usize,
    /// Where a kind with a [`ParamSpec::horizon`] param keeps its training checkpoints, and
    /// whether it may resume from them (`None` for other kinds; see [`crate::checkpoint`]).
    #[serde(default)]
    pub checkpoints: Option<crate::checkpoint::Checkpoints>,
}

/// Everything a running stage may use: its [`NodeJob`], a progress sink, the cancel flag, a log.
pub struct RunContext {
    /// The node's inputs, params, outputs and work dir.
    pub job: NodeJob,
    /// Where long work reports its progress.
    pub progress: Arc<dyn Progress>,
    /// Set when the run is interrupted: long work checks it ([`RunContext::check_cancelled`]).
    pub cancel: Arc<AtomicBool>,
    log: Mutex<crate::log::NodeLog>,
    cpu_s: Mutex<Option<f64>>,
}

impl std::ops::Deref for RunContext {
    type Target = NodeJob;
    fn deref(&self) -> &NodeJob {
        &self.job
    }
}

impl RunContext {
    /// A context with an empty log.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        node: String,
        params: Params,
        inputs: BTreeMap<String, Vec<PathBuf>>,
        input_nodes: BTreeMap<String, Vec<String>>,
        input_coords: BTreeMap<String, Vec<BTreeMap<String, Value>>>,
        outputs: Vec<OutputSpec>,
        work_dir: PathBuf,
        workspace: PathBuf,
        threads: usize,
        progress: Arc<dyn Progress>,
        cancel: Arc<AtomicBool>,
    ) -> Self {
        let job = NodeJob { node, params, inputs, input_nodes, input_coords, outputs, work_dir, workspace, threads, checkpoints: None };
        Self::for_job(job, progress, cancel)
    }

    /// A context for `job`, with an empty log.
    pub fn for_job(job: NodeJob, progress: Arc<dyn Progress>, cancel: Arc<AtomicBool>) -> Self {
        RunContext { job, progress, cancel, log: Mutex::new(Default::default()), cpu_s: Mutex::new(None) }
    }

    /// Path the stage must write output `name` to.
    pub fn output(&self, name: &str) -> PathBuf {
        let file = self.outputs.iter().find(|o| o.name == name).map(|o| o.file.as_str()).unwrap_or(name);
        self.work_dir.join(file)
    }

    /// The single path of input `name`.
    pub fn input(&self, name: &str) -> Result<&Path, StageError> {
        match self.inputs.get(name).map(Vec::as_slice) {
            Some([p]) => Ok(p),
            Some(ps) => Err(StageError::failed(format!("input `{name}` has {} files, expected exactly 1", ps.len()))),
            None => Err(StageError::failed(format!("missing input `{name}`"))),
        }
    }

    /// All paths of a (possibly gathered) input, empty when absent.
    pub fn input_all(&self, name: &str) -> &[PathBuf] {
        self.inputs.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether the run was interrupted.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// `Err(StageError::Cancelled)` once the run was interrupted.
    pub fn check_cancelled(&self) -> Result<(), StageError> {
        if self.is_cancelled() {
            Err(StageError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Appends a line to the node's log (saved in its record).
    pub fn log(&self, line: impl AsRef<str>) {
        self.log_from(crate::log::Stream::Stdout, line);
    }

    /// Appends a line that the stage's process wrote to `stream` (a `command` stage's stderr is
    /// kept apart too, for the failure's message).
    pub fn log_from(&self, stream: crate::log::Stream, line: impl AsRef<str>) {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).push(stream, line.as_ref());
    }

    /// The log so far, emptied.
    pub fn take_log(&self) -> crate::log::NodeLog {
        std::mem::take(&mut *self.log.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Records the CPU seconds the node used, as the process that ran it measured them.
    pub fn set_cpu_seconds(&self, s: Option<f64>) {
        *self.cpu_s.lock().unwrap_or_else(|e| e.into_inner()) = s;
    }

    /// The CPU seconds the node used, where the process that ran it measured them (a stage
    /// worker does, and so does the `command` kind, for its shell).
    pub fn cpu_seconds(&self) -> Option<f64> {
        *self.cpu_s.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The files and variables a kind's [`StageKind::environment`] depends on.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Watch {
    /// Files or folders whose presence, size, modification time or inode matter.
    pub paths: Vec<PathBuf>,
    /// Environment variables whose values matter.
    pub vars: Vec<String>,
}

/// An environment value that cannot be determined on this machine (see [`StageKind::environment`]).
pub const UNKNOWN: &str = "unknown on this machine";

/// A stage kind as the engine sees it.
pub trait StageKind: Send + Sync {
    /// The name pipelines use (`kind: NAME`).
    fn name(&self) -> &str;
    /// Bump when the kind's code changes the meaning of its outputs: invalidates its cache entries.
    fn version(&self) -> u32;
    /// Every param the kind accepts; an unknown one in a pipeline is an error.
    fn params(&self) -> Vec<ParamSpec>;
    /// The input names the kind accepts.
    fn inputs(&self) -> InputDecl;
    /// The files a node with these params writes; an error says which param is wrong.
    fn outputs(&self, params: &Params) -> Result<Vec<OutputSpec>, String>;
    /// Extra fingerprint fields (library versions, device) that change what the stage computes.
    ///
    /// A value of [`UNKNOWN`] means "not determinable on this machine" (e.g. the data is absent
    /// here): the engine then uses the value the node's last run recorded, as a lock file would.
    fn environment(&self, _params: &Params) -> BTreeMap<String, String> {
        BTreeMap::new()
    }
    /// What [`environment`](StageKind::environment) reads besides the params: files (their
    /// presence, size and time) and environment variables. A kind served out of process
    /// ([`crate::worker`]) is asked again only when one of them changed; `None` asks every time.
    /// The default, nothing, is right for kinds whose environment is constant for a given build.
    fn environment_watch(&self, _params: &Params) -> Option<Watch> {
        Some(Watch::default())
    }
    /// Whether the kind reads the ids and grid coordinates of its upstream nodes
    /// ([`NodeJob::input_nodes`], [`NodeJob::input_coords`]), e.g. to label gathered rows.
    /// Those then enter its key: an output may embed only what its key covers, and kinds that
    /// answer `false` are given empty maps.
    fn reads_input_identity(&self) -> bool {
        false
    }
    /// Computes the node: reads `ctx`'s inputs, writes every declared output into its work dir.
    fn run(&self, ctx: &RunContext) -> Result<(), StageError>;
}

type Loader = Arc<dyn Fn() -> Result<Vec<Arc<dyn StageKind>>, String> + Send + Sync>;
type Loaded = Result<BTreeMap<String, Arc<dyn StageKind>>, String>;

/// The kinds a pipeline may use, by name: kinds registered in this process, plus kinds described
/// on first use by a loader (the out-of-process worker's, see [`crate::worker::registry`]).
#[derive(Default, Clone)]
pub struct Registry {
    kinds: BTreeMap<String, Arc<dyn StageKind>>,
    lazy: Option<(Loader, Arc<std::sync::OnceLock<Loaded>>)>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a kind in this process (replacing one of the same name).
    pub fn register(&mut self, kind: impl StageKind + 'static) -> &mut Self {
        self.kinds.insert(kind.name().to_string(), Arc::new(kind));
        self
    }
    /// Adds the kinds `load` returns, loaded on first lookup (commands that read no pipeline
    /// never call it). Kinds registered in process take precedence.
    pub fn extend_lazily(&mut self, load: impl Fn() -> Result<Vec<Arc<dyn StageKind>>, String> + Send + Sync + 'static) -> &mut Self {
        self.lazy = Some((Arc::new(load), Arc::new(std::sync::OnceLock::new())));
        self
    }
    fn loaded(&self) -> Option<&Loaded> {
        let (load, cell) = self.lazy.as_ref()?;
        Some(cell.get_or_init(|| load().map(|ks| ks.into_iter().map(|k| (k.name().to_string(), k)).collect())))
    }
    /// The kind named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn StageKind>> {
        self.kinds.get(name).or_else(|| self.loaded()?.as_ref().ok()?.get(name))
    }
    /// Every kind's name, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.kinds.keys().map(String::as_str).collect();
        if let Some(Ok(more)) = self.loaded() {
            names.extend(more.keys().map(String::as_str).filter(|n| !self.kinds.contains_key(*n)));
        }
        names.sort_unstable();
        names
    }
    /// Why the lazily loaded kinds are missing (e.g. the worker could not be started), if they are.
    pub fn problem(&self) -> Option<&str> {
        self.loaded()?.as_ref().err().map(String::as_str)
    }
}
