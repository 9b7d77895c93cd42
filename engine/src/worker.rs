//! Stage kinds out of process: a pool of persistent worker processes.
//!
//! Kinds that need a heavy runtime (libtorch) live in a separate executable, the *worker*, so the
//! `pipe` binary stays small and starts in milliseconds. The engine talks to it in JSON lines over
//! its stdin/stdout ([`Request`] / [`Reply`]):
//!
//! ```text
//! pipe (engine)                                   pipe-worker serve
//!   Registry ── RemoteKind "train_svdd" ──┐
//!     describe / outputs / environment ───┼──▶ answered from the kinds' own code,
//!       (cached on disk by the worker's   │      cached per worker content hash
//!        content hash, see KindCache)     │
//!   exec: RemoteKind::run(ctx) ── Pool ───┴──▶ one node at a time per worker: progress, log,
//!       at most --jobs workers, each started       Done | Failed
//!       on first need; cancel = kill its process group, start a fresh one
//! ```
//!
//! The worker answers every question about a kind from the same code that runs it, so a pipeline is
//! validated (all errors at once, with line:column) exactly as before, and every cache key is what
//! the in-process kind computes. Each node sets its own thread count in its own process.
#![warn(missing_docs)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{render, Hint};
use crate::stage::{InputDecl, NodeJob, OutputSpec, ParamSpec, ParamType, Params, Progress, Range, Registry, RunContext, StageError, StageKind};
use crate::value::Value;

/// The executable that serves the kinds (next to `pipe`, or `PIPE_WORKER_EXE`).
pub const WORKER_NAME: &str = "pipe-worker";

/// One request to a worker.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Every kind the worker serves.
    Describe,
    /// `StageKind::outputs` of one kind for one node's params.
    Outputs {
        /// The kind's name.
        kind: String,
        /// One node's params.
        params: Params,
    },
    /// `StageKind::environment` (and what it depends on) for one node's params.
    Environment {
        /// The kind's name.
        kind: String,
        /// One node's params.
        params: Params,
    },
    /// Runs one node; the worker answers with progress and log lines, then `done` or `failed`.
    Run(Box<RunRequest>),
}

/// One node to run: the kind and the node's [`NodeJob`].
#[derive(Debug, Serialize, Deserialize)]
pub struct RunRequest {
    /// The kind's name.
    pub kind: String,
    /// What the node is given.
    pub job: NodeJob,
}

/// One line a worker writes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "msg", rename_all = "snake_case")]
pub enum Reply {
    /// Answers `describe`.
    Kinds {
        /// Every kind served.
        kinds: Vec<KindDesc>,
    },
    /// Answers `outputs`.
    Outputs {
        /// What [`StageKind::outputs`] returned.
        outputs: Result<Vec<OutputSpec>, String>,
    },
    /// Answers `environment`.
    Environment {
        /// What [`StageKind::environment`] returned.
        values: BTreeMap<String, String>,
        /// What [`StageKind::environment_watch`] named, as it was BEFORE `values` were computed
        /// (a file replaced meanwhile then invalidates the answer): paths with their stamps,
        /// variables with their values. `None`: ask again every time.
        read: Option<Read>,
    },
    /// [`Progress::set_length`] of the running node.
    Length {
        /// Steps in all.
        len: u64,
    },
    /// [`Progress::set_position`] of the running node.
    Position {
        /// Steps done.
        pos: u64,
    },
    /// [`Progress::set_message`] of the running node.
    Message {
        /// The status text.
        text: String,
    },
    /// [`Progress::metric`] of the running node.
    Metric {
        /// The metric's name (`loss`).
        name: String,
        /// The step (epoch).
        step: u64,
        /// Its value.
        value: f64,
    },
    /// The node's log (sent once, before `done` / `failed`).
    Log {
        /// The lines, newline-separated.
        text: String,
    },
    /// The node completed; its outputs are in its work dir.
    Done,
    /// The node did not complete.
    Failed {
        /// Why, as [`StageError`]'s message.
        error: String,
        /// It stopped because it was interrupted.
        cancelled: bool,
    },
    /// A request the worker could not read or answer.
    Error {
        /// What went wrong.
        error: String,
    },
}

/// A kind's interface as the engine sees it, in a form that crosses the process boundary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KindDesc {
    /// [`StageKind::name`].
    pub name: String,
    /// [`StageKind::version`].
    pub version: u32,
    /// [`StageKind::params`].
    pub params: Vec<ParamDesc>,
    /// `None`: any input names (like `command`); else (name, required).
    pub inputs: Option<Vec<(String, bool)>>,
    /// [`StageKind::reads_input_identity`].
    pub reads_input_identity: bool,
}

/// A [`ParamSpec`] that crosses the process boundary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamDesc {
    /// [`ParamSpec::name`].
    pub name: String,
    /// [`ParamSpec::ty`].
    pub ty: TypeDesc,
    /// Required params have no default (`null` is a default of its own).
    pub required: bool,
    /// [`ParamSpec::default`] of an optional param.
    pub default: Value,
    /// [`ParamSpec::help`].
    pub help: String,
    /// [`ParamSpec::location`].
    pub location: bool,
    /// [`ParamSpec::horizon`].
    #[serde(default)]
    pub horizon: bool,
    /// [`Range::min`].
    pub min: Option<(f64, bool)>,
    /// [`Range::max`].
    pub max: Option<(f64, bool)>,
}

/// A [`ParamType`] that crosses the process boundary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TypeDesc {
    /// [`ParamType::Bool`].
    Bool,
    /// [`ParamType::Int`].
    Int,
    /// [`ParamType::Float`].
    Float,
    /// [`ParamType::Str`].
    Str,
    /// [`ParamType::Choice`].
    Choice(Vec<String>),
    /// [`ParamType::List`].
    List(Box<TypeDesc>),
}

impl TypeDesc {
    fn of(t: &ParamType) -> Self {
        match t {
            ParamType::Bool => TypeDesc::Bool,
            ParamType::Int => TypeDesc::Int,
            ParamType::Float => TypeDesc::Float,
            ParamType::Str => TypeDesc::Str,
            ParamType::Choice(c) => TypeDesc::Choice(c.iter().map(|s| s.to_string()).collect()),
            ParamType::List(t) => TypeDesc::List(Box::new(TypeDesc::of(t))),
        }
    }
    /// The engine's type. Choice names are leaked: a kind's interface lives as long as the process.
    fn to_type(&self) -> ParamType {
        match self {
            TypeDesc::Bool => ParamType::Bool,
            TypeDesc::Int => ParamType::Int,
            TypeDesc::Float => ParamType::Float,
            TypeDesc::Str => ParamType::Str,
            TypeDesc::Choice(c) => ParamType::Choice(Box::leak(c.iter().map(|s| leak(s)).collect::<Vec<_>>().into_boxed_slice())),
            TypeDesc::List(t) => ParamType::List(Box::new(t.to_type())),
        }
    }
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

impl KindDesc {
    /// The interface of an in-process kind.
    pub fn of(k: &dyn StageKind) -> Self {
        KindDesc {
            name: k.name().to_string(),
            version: k.version(),
            params: k
                .params()
                .iter()
                .map(|p| ParamDesc {
                    name: p.name.to_string(),
                    ty: TypeDesc::of(&p.ty),
                    required: p.default.is_none(),
                    default: p.default.clone().unwrap_or(Value::Null),
                    help: p.help.to_string(),
                    location: p.location,
                    horizon: p.horizon,
                    min: p.range.and_then(|r| r.min),
                    max: p.range.and_then(|r| r.max),
                })
                .collect(),
            inputs: match k.inputs() {
                InputDecl::Any => None,
                InputDecl::Named(v) => Some(v.into_iter().map(|(n, r)| (n.to_string(), r)).collect()),
            },
            reads_input_identity: k.reads_input_identity(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The worker's side.

/// Serves `registry`'s kinds on stdin/stdout until stdin closes (the `pipe-worker serve` loop).
///
/// Stdout carries only protocol lines: file descriptor 1 is pointed at stderr first, so a library
/// that prints cannot corrupt the stream. Each `run` executes in this process, one at a time; the
/// engine cancels by killing the process, so no cancel flag is needed here.
pub fn serve(registry: &Registry) -> std::io::Result<()> {
    // SAFETY: plain descriptor duplication on this process's own standard streams.
    let proto = unsafe {
        // Close-on-exec: a process a kind starts must not hold the engine's reply stream open.
        let fd = libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3);
        if fd < 0 || libc::dup2(2, 1) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        fd
    };
    // SAFETY: `proto` is a fresh descriptor this function owns.
    let out: Arc<Mutex<std::fs::File>> = Arc::new(Mutex::new(unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(proto) }));
    let send = |r: &Reply| -> std::io::Result<()> {
        let mut line = serde_json::to_string(r).map_err(std::io::Error::other)?;
        line.push('\n');
        let mut o = out.lock().unwrap_or_else(|e| e.into_inner());
        o.write_all(line.as_bytes())?;
        o.flush()
    };
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let req: Request = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                send(&Reply::Error { error: format!("unreadable request: {e}") })?;
                continue;
            }
        };
        let unknown = |k: &str| Reply::Error { error: format!("this worker has no stage kind `{k}`") };
        match req {
            Request::Describe => {
                let kinds = registry.names().into_iter().filter_map(|n| registry.get(n)).map(|k| KindDesc::of(k.as_ref())).collect();
                send(&Reply::Kinds { kinds })?;
            }
            Request::Outputs { kind, params } => match registry.get(&kind) {
                Some(k) => send(&Reply::Outputs { outputs: k.outputs(&params) })?,
                None => send(&unknown(&kind))?,
            },
            Request::Environment { kind, params } => match registry.get(&kind) {
                Some(k) => {
                    let read = k.environment_watch(&params).map(|w| Read {
                        paths: w.paths.iter().map(|p| (p.clone(), stamp(p))).collect(),
                        vars: w.vars.iter().map(|v| (v.clone(), std::env::var(v).ok())).collect(),
                    });
                    send(&Reply::Environment { values: k.environment(&params), read })?
                }
                None => send(&unknown(&kind))?,
            },
            Request::Run(r) => {
                let Some(k) = registry.get(&r.kind).cloned() else {
                    send(&unknown(&r.kind))?;
                    continue;
                };
                let progress = Arc::new(Forward(out.clone()));
                let ctx = RunContext::for_job(r.job, progress, Arc::new(AtomicBool::new(false)));
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| k.run(&ctx))).unwrap_or_else(|p| {
                    let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
                    Err(StageError::failed(format!("stage panicked: {msg}")))
                });
                send(&Reply::Log { text: ctx.take_log().text() })?;
                match result {
                    Ok(()) => send(&Reply::Done)?,
                    Err(e) => send(&Reply::Failed { cancelled: matches!(e, StageError::Cancelled), error: render(&e) })?,
                }
            }
        }
    }
    Ok(())
}

/// Progress of a node running in the worker, written as protocol lines.
struct Forward(Arc<Mutex<std::fs::File>>);

impl Forward {
    fn send(&self, r: Reply) {
        if let Ok(mut line) = serde_json::to_string(&r) {
            line.push('\n');
            let mut o = self.0.lock().unwrap_or_else(|e| e.into_inner());
            let _ = o.write_all(line.as_bytes()).and_then(|_| o.flush());
        }
    }
}

impl Progress for Forward {
    fn set_length(&self, len: u64) {
        self.send(Reply::Length { len });
    }
    fn set_position(&self, pos: u64) {
        self.send(Reply::Position { pos });
    }
    fn set_message(&self, text: String) {
        self.send(Reply::Message { text });
    }
    fn metric(&self, name: &str, step: u64, value: f64) {
        self.send(Reply::Metric { name: name.to_string(), step, value });
    }
}

// ---------------------------------------------------------------------------------------------
// The engine's side: processes, the pool, the proxy kinds.

/// A running worker process: its own process group, killed with it.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    replies: Receiver<Result<Reply, String>>,
}

impl Worker {
    fn start(exe: &Path) -> Result<Worker, String> {
        let mut cmd = Command::new(exe);
        cmd.arg("serve").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).process_group(0);
        // SAFETY: the closure only calls prctl (async-signal-safe) between fork and exec: the
        // worker dies with the process that started it.
        unsafe {
            cmd.pre_exec(|| nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).map_err(std::io::Error::from));
        }
        let mut child = cmd.spawn().map_err(|e| render(&WorkerError::CannotStart { exe: exe.to_path_buf(), source: e }))?;
        let stdin = child.stdin.take().ok_or("worker has no stdin")?;
        let stdout = child.stdout.take().ok_or("worker has no stdout")?;
        let (tx, replies) = mpsc::channel();
        std::thread::Builder::new()
            .name("pipe-worker-reader".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let msg = match line {
                        Ok(l) => serde_json::from_str::<Reply>(&l).map_err(|e| format!("unreadable reply from the worker ({e}): {l}")),
                        Err(e) => Err(format!("reading the worker's replies: {e}")),
                    };
                    let stop = msg.is_err();
                    if tx.send(msg).is_err() || stop {
                        return;
                    }
                }
                let _ = tx.send(Err("the worker exited".into()));
            })
            .map_err(|e| e.to_string())?;
        Ok(Worker { child, stdin, replies })
    }

    fn send(&mut self, req: &Request) -> Result<(), String> {
        let mut line = serde_json::to_string(req).map_err(|e| e.to_string())?;
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).and_then(|_| self.stdin.flush()).map_err(|e| format!("writing to the worker: {e}"))
    }

    /// The next reply; a dead worker's exit status is folded into the error.
    fn recv(&mut self, timeout: Duration) -> Result<Option<Reply>, String> {
        match self.replies.recv_timeout(timeout) {
            Ok(Ok(r)) => Ok(Some(r)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Ok(Err(e)) => Err(self.died(e)),
            Err(RecvTimeoutError::Disconnected) => Err(self.died("the worker exited".into())),
        }
    }

    fn died(&mut self, what: String) -> String {
        // It may still be alive (an unreadable reply): never wait on a live worker.
        if matches!(self.child.try_wait(), Ok(None)) {
            kill_group(&self.child);
        }
        let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
        format!("{what} ({status})")
    }

    /// One request, one reply (not `run`).
    fn ask(&mut self, req: &Request) -> Result<Reply, String> {
        self.send(req)?;
        loop {
            if let Some(r) = self.recv(Duration::from_secs(3600))? {
                return Ok(r);
            }
        }
    }

    /// Kills the worker's whole group and reaps it (what dropping it does).
    fn kill(self) {
        drop(self);
    }
}

/// SIGKILL to a worker's whole process group (it was started with `process_group(0)`, so its
/// group id is its pid): the worker and anything a kind started.
fn kill_group(child: &Child) {
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL);
}

impl Drop for Worker {
    fn drop(&mut self) {
        // The whole group, even when the worker itself already died (killed mid-node): what a
        // kind started must not outlive it. Before the worker is reaped, so its pid (the group's
        // id) cannot have been reused.
        kill_group(&self.child);
        let _ = self.child.wait();
    }
}

/// Persistent workers, started on first need and reused; at most as many as nodes run at once
/// (the scheduler's `--jobs`), since each holds one node at a time.
pub struct Pool {
    exe: PathBuf,
    /// (size, mtime ns, inode) of `exe` when the kinds were described: a worker started from a
    /// changed executable would run other code than the one the keys were computed for.
    stat: Option<(u64, i64, u64)>,
    idle: Mutex<Vec<Worker>>,
}

impl Pool {
    /// A pool of workers running `exe`; none is started yet.
    pub fn new(exe: PathBuf) -> Self {
        Pool { exe, stat: None, idle: Mutex::new(Vec::new()) }
    }

    fn take(&self) -> Result<Worker, String> {
        loop {
            let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some(mut w) = idle else { break };
            // An idle worker that died (the OOM killer) is dropped, not handed out.
            if matches!(w.child.try_wait(), Ok(None)) {
                return Ok(w);
            }
        }
        self.start()
    }

    /// A fresh worker, from the executable the kinds were described by.
    fn start(&self) -> Result<Worker, String> {
        if let Some(stat) = self.stat {
            if exe_stat(&self.exe).ok() != Some(stat) {
                return Err(render(&WorkerError::Changed { exe: self.exe.clone() }));
            }
        }
        Worker::start(&self.exe)
    }

    fn give(&self, w: Worker) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(w);
    }

    /// One question answered by some worker (once more by a fresh one if the first has died).
    fn ask(&self, req: &Request) -> Result<Reply, String> {
        let mut w = self.take()?;
        let r = match w.ask(req) {
            Ok(r) => r,
            Err(_) => {
                w = self.start()?;
                w.ask(req)?
            }
        };
        self.give(w);
        Ok(r)
    }

    /// Runs one node in a worker, forwarding progress and log into `ctx`. On cancel the worker's
    /// process group is killed (a fresh one starts on next need).
    fn run(&self, kind: &str, ctx: &RunContext) -> Result<(), StageError> {
        let mut w = self.take().map_err(StageError::Failed)?;
        let req = Request::Run(Box::new(RunRequest { kind: kind.to_string(), job: ctx.job.clone() }));
        w.send(&req).map_err(StageError::Failed)?;
        loop {
            if ctx.is_cancelled() {
                w.kill();
                return Err(StageError::Cancelled);
            }
            let reply = match w.recv(Duration::from_millis(100)) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => return Err(StageError::failed(format!("the stage worker stopped while running {}: {e}", ctx.node))),
            };
            match reply {
                Reply::Length { len } => ctx.progress.set_length(len),
                Reply::Position { pos } => ctx.progress.set_position(pos),
                Reply::Message { text } => ctx.progress.set_message(text),
                Reply::Metric { name, step, value } => ctx.progress.metric(&name, step, value),
                Reply::Log { text } => {
                    for line in text.lines() {
                        ctx.log(line);
                    }
                }
                Reply::Done => {
                    self.give(w);
                    return Ok(());
                }
                Reply::Failed { error, cancelled } => {
                    self.give(w);
                    return Err(if cancelled { StageError::Cancelled } else { StageError::Failed(error) });
                }
                Reply::Error { error } => {
                    self.give(w);
                    return Err(StageError::Failed(error));
                }
                other => {
                    w.kill();
                    return Err(StageError::failed(format!("unexpected reply from the stage worker: {other:?}")));
                }
            }
        }
    }
}

/// Where the worker executable is: `PIPE_WORKER_EXE`, else next to the running executable.
pub fn locate() -> PathBuf {
    if let Some(p) = std::env::var_os("PIPE_WORKER_EXE") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().unwrap_or(Path::new("."));
    // Test executables live one folder below (target/debug/deps).
    let here = dir.join(WORKER_NAME);
    if !here.is_file() && dir.file_name().is_some_and(|n| n == "deps") {
        return dir.parent().unwrap_or(dir).join(WORKER_NAME);
    }
    here
}

/// A registry of `local` (in-process) kinds plus every kind the worker at `exe` serves, described
/// on first use (from the cache when the worker is unchanged).
pub fn registry(local: Registry, exe: PathBuf) -> Registry {
    let mut r = local;
    r.extend_lazily(move || {
        let remote = Remote::open(exe.clone())?;
        let kinds = remote.cache.lock().unwrap_or_else(|e| e.into_inner()).kinds.clone();
        let remote = Arc::new(remote);
        Ok(kinds.iter().map(|d| Arc::new(RemoteKind::new(d, remote.clone())) as Arc<dyn StageKind>).collect())
    });
    r
}

/// The worker, its pool and its answers cache.
struct Remote {
    pool: Pool,
    cache: Mutex<KindCache>,
    cache_file: Option<PathBuf>,
    /// Stamps of watched paths, taken once per process.
    stamps: Mutex<HashMap<PathBuf, Stamp>>,
    last_save: Mutex<std::time::Instant>,
}

/// What a worker said, kept on disk per worker executable and trusted while its content is the
/// same (a rebuilt worker with the same bytes keeps it).
#[derive(Default, Serialize, Deserialize)]
struct KindCache {
    /// blake3 of the worker executable.
    worker: String,
    /// (size, mtime ns, inode) of the executable when `worker` was computed.
    stat: (u64, i64, u64),
    kinds: Vec<KindDesc>,
    /// kind + params (JSON) -> outputs: a pure function of the kind's code and the params.
    outputs: HashMap<String, Result<Vec<OutputSpec>, String>>,
    /// kind + params + working directory -> the environment and the stamps it depended on.
    environment: HashMap<String, CachedEnv>,
    #[serde(skip)]
    dirty: bool,
}

#[derive(Clone, Serialize, Deserialize)]
struct CachedEnv {
    values: BTreeMap<String, String>,
    read: Read,
}

/// What an environment was computed from: files with their stamps, variables with their values.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Read {
    /// Each watched path and what it looked like.
    pub paths: Vec<(PathBuf, Stamp)>,
    /// Each watched variable and its value.
    pub vars: Vec<(String, Option<String>)>,
}

/// What a path looked like: absent, or (size, mtime ns, inode, is a directory).
pub type Stamp = Option<(u64, i64, u64, bool)>;

fn stamp(p: &Path) -> Stamp {
    std::fs::metadata(p).ok().map(|m| (m.len(), m.mtime() * 1_000_000_000 + m.mtime_nsec(), m.ino(), m.is_dir()))
}

fn stat_of(meta: &std::fs::Metadata) -> (u64, i64, u64) {
    (meta.len(), meta.mtime() * 1_000_000_000 + meta.mtime_nsec(), meta.ino())
}

fn exe_stat(exe: &Path) -> std::io::Result<(u64, i64, u64)> {
    std::fs::metadata(exe).map(|m| stat_of(&m))
}

/// Why the stage worker cannot serve this command.
#[derive(Debug)]
pub enum WorkerError {
    /// The executable is not where pipe looks for it.
    Missing {
        /// Where pipe looked.
        exe: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The executable exists but could not be started.
    CannotStart {
        /// The executable.
        exe: PathBuf,
        /// Why it did not start.
        source: std::io::Error,
    },
    /// The executable was replaced (rebuilt) after it described the kinds to this command, so
    /// keys and code could disagree.
    Changed {
        /// The executable.
        exe: PathBuf,
    },
}

impl std::fmt::Display for WorkerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkerError::Missing { exe, source } => write!(f, "the stage worker {} is not there ({source})", exe.display()),
            WorkerError::CannotStart { exe, source } => write!(f, "cannot start the stage worker {}: {source}", exe.display()),
            WorkerError::Changed { exe } => {
                write!(f, "the stage worker {} changed during this command (rebuilt?); its kinds were described by the previous one", exe.display())
            }
        }
    }
}

impl std::error::Error for WorkerError {}

impl Hint for WorkerError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            WorkerError::Missing { .. } | WorkerError::CannotStart { .. } => {
                "build it with `cargo build --workspace` (it sits next to `pipe`), or set PIPE_WORKER_EXE".into()
            }
            WorkerError::Changed { .. } => "run the command again".into(),
        })
    }
}

fn cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|d| d.join("pipe").join("workers"))
}

impl Remote {
    fn open(exe: PathBuf) -> Result<Remote, String> {
        let meta = std::fs::metadata(&exe).map_err(|e| render(&WorkerError::Missing { exe: exe.clone(), source: e }))?;
        let stat = stat_of(&meta);
        let cache_file = cache_dir().map(|d| d.join(format!("{}.json", &blake3::hash(exe.as_os_str().as_encoded_bytes()).to_hex()[..16])));
        let mut cache: KindCache =
            cache_file.as_deref().and_then(|f| std::fs::read(f).ok()).and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        if cache.stat != stat || cache.kinds.is_empty() {
            let content = crate::hash::hash_file(&exe).map_err(|e| format!("reading the stage worker {}: {e}", exe.display()))?;
            if content != cache.worker || cache.kinds.is_empty() {
                cache = KindCache { worker: content, ..Default::default() };
            }
            cache.stat = stat;
            cache.dirty = true;
        }
        let remote = Remote {
            pool: Pool { stat: Some(stat), ..Pool::new(exe) },
            cache: Mutex::new(cache),
            cache_file,
            stamps: Mutex::new(HashMap::new()),
            last_save: Mutex::new(std::time::Instant::now()),
        };
        let needs_describe = remote.cache.lock().unwrap_or_else(|e| e.into_inner()).kinds.is_empty();
        if needs_describe {
            match remote.pool.ask(&Request::Describe)? {
                Reply::Kinds { kinds } => {
                    let mut c = remote.cache.lock().unwrap_or_else(|e| e.into_inner());
                    c.kinds = kinds;
                    c.dirty = true;
                }
                other => return Err(format!("the stage worker answered `describe` with {other:?}")),
            }
        }
        remote.save();
        Ok(remote)
    }

    /// Saves new answers at most every two seconds (a grid of new nodes asks many questions);
    /// the rest are saved when the registry is dropped.
    fn save_soon(&self) {
        let due = self.last_save.lock().unwrap_or_else(|e| e.into_inner()).elapsed() > Duration::from_secs(2);
        if due {
            self.save();
        }
    }

    fn save(&self) {
        *self.last_save.lock().unwrap_or_else(|e| e.into_inner()) = std::time::Instant::now();
        let Some(file) = &self.cache_file else { return };
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if !c.dirty {
            return;
        }
        if let Ok(bytes) = serde_json::to_vec(&*c) {
            // A cache: another process may write it at the same time; the last complete write wins.
            if crate::store::write_atomic(file, &bytes).is_ok() {
                c.dirty = false;
            }
        }
    }

    fn stamp(&self, p: &Path) -> Stamp {
        let mut s = self.stamps.lock().unwrap_or_else(|e| e.into_inner());
        *s.entry(p.to_path_buf()).or_insert_with(|| stamp(p))
    }

    fn outputs(&self, kind: &str, params: &Params) -> Result<Vec<OutputSpec>, String> {
        let key = format!("{kind}\n{}", serde_json::to_string(params).unwrap_or_default());
        if let Some(o) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).outputs.get(&key) {
            return o.clone();
        }
        let outputs = match self.pool.ask(&Request::Outputs { kind: kind.to_string(), params: params.clone() })? {
            Reply::Outputs { outputs } => outputs,
            Reply::Error { error } => return Err(error),
            other => return Err(format!("the stage worker answered `outputs` with {other:?}")),
        };
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        c.outputs.insert(key, outputs.clone());
        c.dirty = true;
        drop(c);
        self.save_soon();
        outputs
    }

    fn environment(&self, kind: &str, params: &Params) -> BTreeMap<String, String> {
        let cwd = std::env::current_dir().unwrap_or_default();
        let key = format!("{kind}\n{}\n{}", serde_json::to_string(params).unwrap_or_default(), cwd.display());
        let cached = self.cache.lock().unwrap_or_else(|e| e.into_inner()).environment.get(&key).cloned();
        if let Some(e) = &cached {
            let same = e.read.paths.iter().all(|(p, s)| self.stamp(p) == *s) && e.read.vars.iter().all(|(v, x)| std::env::var(v).ok() == *x);
            if same {
                return e.values.clone();
            }
        }
        let answer = match self.pool.ask(&Request::Environment { kind: kind.to_string(), params: params.clone() }) {
            Ok(Reply::Environment { values, read }) => Ok((values, read)),
            Ok(Reply::Error { error }) => Err(error),
            Ok(other) => Err(format!("unexpected reply {other:?}")),
            Err(e) => Err(e),
        };
        let (values, read) = match answer {
            Ok(a) => a,
            Err(e) => {
                // A value no run ever recorded: the node is not fresh (never a cache hit on an
                // environment nobody checked), and running it reports the worker's failure.
                tracing::warn!(kind, "the stage worker could not say the environment: {e}");
                return BTreeMap::from([("worker".to_string(), format!("unavailable: {e}"))]);
            }
        };
        if let Some(read) = read {
            let entry = CachedEnv { values: values.clone(), read };
            let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            c.environment.insert(key, entry);
            c.dirty = true;
            drop(c);
            self.save_soon();
        }
        values
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.save();
    }
}

/// A kind served by the worker, as the engine sees it.
pub struct RemoteKind {
    name: &'static str,
    version: u32,
    params: Vec<ParamSpec>,
    inputs: InputDecl,
    reads_input_identity: bool,
    remote: Arc<Remote>,
}

impl RemoteKind {
    fn new(d: &KindDesc, remote: Arc<Remote>) -> Self {
        RemoteKind {
            name: leak(&d.name),
            version: d.version,
            params: d
                .params
                .iter()
                .map(|p| ParamSpec {
                    name: leak(&p.name),
                    ty: p.ty.to_type(),
                    default: (!p.required).then(|| p.default.clone()),
                    help: leak(&p.help),
                    location: p.location,
                    horizon: p.horizon,
                    range: (p.min.is_some() || p.max.is_some()).then_some(Range { min: p.min, max: p.max }),
                })
                .collect(),
            inputs: match &d.inputs {
                None => InputDecl::Any,
                Some(v) => InputDecl::Named(v.iter().map(|(n, r)| (leak(n), *r)).collect()),
            },
            reads_input_identity: d.reads_input_identity,
            remote,
        }
    }
}

impl StageKind for RemoteKind {
    fn name(&self) -> &'static str {
        self.name
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
        self.remote.outputs(self.name, params)
    }
    fn environment(&self, params: &Params) -> BTreeMap<String, String> {
        self.remote.environment(self.name, params)
    }
    fn reads_input_identity(&self) -> bool {
        self.reads_input_identity
    }
    fn run(&self, ctx: &RunContext) -> Result<(), StageError> {
        let r = self.remote.pool.run(self.name, ctx);
        self.remote.save();
        r
    }
}
