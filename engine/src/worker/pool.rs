//! The engine's side of the processes: one [`Worker`] per `pipe-worker serve` process, and the
//! [`Pool`] that starts them on first need and reuses them. Every wait on a worker is bounded: a
//! question has [`Pool::answer_within`] to be answered, a running node is watched every
//! [`POLL`] (a dead worker fails it at once, naming the worker and the node).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::protocol::{decode, encode, Reply, Request, RunRequest};
use super::{exe_stat, WorkerError};
use crate::error::render;
use crate::stage::{RunContext, StageError};

/// How long a worker may take to answer a question (`describe`, `outputs`, `environment`) by
/// default: far above the slowest real answer (an environment hashing a dataset without a
/// checksum file, seconds), far below "hung".
pub const ANSWER_WITHIN: Duration = Duration::from_secs(120);

/// How often a running node's worker is checked (alive, cancelled) between its messages.
pub const POLL: Duration = Duration::from_millis(100);

/// Why a wait on a worker ended without the reply it waited for.
#[derive(Debug, PartialEq)]
pub enum WaitError {
    /// Nothing came within the deadline; the worker was killed.
    Timeout {
        /// The worker (its executable and pid).
        worker: String,
        /// What it was asked ([`Request::what`]).
        request: String,
        /// How long it was given.
        waited: Duration,
    },
    /// It exited, or wrote something that is not a reply.
    Died {
        /// The worker (its executable and pid).
        worker: String,
        /// What it was asked ([`Request::what`]).
        request: String,
        /// What happened, with its exit status.
        why: String,
    },
    /// It could not be started, or asked.
    Start(String),
}

impl std::fmt::Display for WaitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitError::Timeout { worker, request, waited } => {
                write!(f, "the stage worker {worker} did not answer `{request}` within {} s; it was stopped", waited.as_secs_f64())
            }
            WaitError::Died { worker, request, why } => write!(f, "the stage worker {worker} stopped during `{request}`: {why}"),
            WaitError::Start(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for WaitError {}

/// A running worker process: its own process group, killed with it.
pub(crate) struct Worker {
    child: Child,
    stdin: ChildStdin,
    replies: Receiver<Result<Reply, String>>,
    /// `EXE (pid N)`, for messages.
    name: String,
}

impl Worker {
    /// Starts `exe serve`. Errors: it cannot be started (rendered [`WorkerError::CannotStart`]).
    pub(crate) fn start(exe: &Path) -> Result<Worker, String> {
        let mut cmd = Command::new(exe);
        cmd.arg("serve").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).process_group(0);
        // SAFETY: the closure only calls prctl (async-signal-safe) between fork and exec: the
        // worker dies with the process that started it.
        unsafe {
            cmd.pre_exec(|| nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).map_err(std::io::Error::from));
        }
        let mut child = cmd.spawn().map_err(|e| render(&WorkerError::CannotStart { exe: exe.to_path_buf(), source: e }))?;
        let name = format!("{} (pid {})", exe.display(), child.id());
        // Dropped (killed) on any error below.
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let (Some(stdin), Some(stdout)) = (stdin, stdout) else { return Err(format!("the stage worker {name} has no stdin or stdout")) };
        let (tx, replies) = mpsc::channel();
        let reader = std::thread::Builder::new().name("pipe-worker-reader".into()).spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let msg = match line {
                    Ok(l) => decode::<Reply>(&l).map_err(|e| format!("unreadable reply ({e}): {l}")),
                    Err(e) => Err(format!("reading its replies: {e}")),
                };
                let stop = msg.is_err();
                if tx.send(msg).is_err() || stop {
                    return;
                }
            }
            let _ = tx.send(Err("it exited".into()));
        });
        let w = Worker { child, stdin, replies, name };
        reader.map_err(|e| format!("cannot read the stage worker {}: {e}", w.name))?;
        Ok(w)
    }

    /// Whether the process is still running.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn send(&mut self, req: &Request) -> Result<(), WaitError> {
        let line = encode(req).map_err(|e| WaitError::Start(e.to_string()))?;
        match self.stdin.write_all(line.as_bytes()).and_then(|_| self.stdin.flush()) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.died(req, format!("writing to it: {e}"))),
        }
    }

    /// The next reply within `wait`: `Ok(None)` when none came. Errors: it died (its exit status
    /// folded in) or wrote an unreadable line.
    fn recv(&mut self, req: &Request, wait: Duration) -> Result<Option<Reply>, WaitError> {
        match self.replies.recv_timeout(wait) {
            Ok(Ok(r)) => Ok(Some(r)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Ok(Err(e)) => Err(self.died(req, e)),
            Err(RecvTimeoutError::Disconnected) => Err(self.died(req, "it exited".into())),
        }
    }

    fn died(&mut self, req: &Request, what: String) -> WaitError {
        // It may still be alive (an unreadable reply): never wait on a live worker.
        if self.alive() {
            kill_group(&self.child);
        }
        let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
        WaitError::Died { worker: self.name.clone(), request: req.what(), why: format!("{what} ({status})") }
    }

    /// One request, one reply within `deadline` (not `run`). Errors: no reply in time (the
    /// worker is then killed: a late answer would be read as the next request's), or it died.
    pub(crate) fn ask(&mut self, req: &Request, deadline: Duration) -> Result<Reply, WaitError> {
        self.send(req)?;
        match self.recv(req, deadline)? {
            Some(r) => Ok(r),
            None => {
                kill_group(&self.child);
                Err(WaitError::Timeout { worker: self.name.clone(), request: req.what(), waited: deadline })
            }
        }
    }

    /// Kills the worker's whole group and reaps it (what dropping it does).
    pub(crate) fn kill(self) {
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
        // id) cannot have been reused. SIGKILL cannot be ignored, so the wait ends.
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
    /// How long a question may take ([`ANSWER_WITHIN`] unless set).
    pub answer_within: Duration,
    idle: Mutex<Vec<Worker>>,
}

impl Pool {
    /// A pool of workers running `exe` that must answer a question within `answer_within`; none
    /// is started yet.
    pub fn new(exe: PathBuf, answer_within: Duration) -> Self {
        Pool { exe, stat: None, answer_within, idle: Mutex::new(Vec::new()) }
    }

    /// The same pool, refusing to start a worker once `exe`'s (size, mtime, inode) is no longer
    /// `stat`, the executable the kinds were described by.
    pub(crate) fn pinned(self, stat: (u64, i64, u64)) -> Self {
        Pool { stat: Some(stat), ..self }
    }

    fn take(&self) -> Result<Worker, String> {
        loop {
            let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some(mut w) = idle else { break };
            // An idle worker that died (the OOM killer) is dropped, not handed out.
            if w.alive() {
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

    /// One question answered by some worker within [`Pool::answer_within`] (once more by a fresh
    /// worker if the first had died meanwhile; never again after a timeout).
    /// Errors: no worker can be started, the answer did not come in time, or the worker died.
    pub fn ask(&self, req: &Request) -> Result<Reply, WaitError> {
        let mut w = self.take().map_err(WaitError::Start)?;
        let r = match w.ask(req, self.answer_within) {
            Ok(r) => r,
            Err(WaitError::Died { .. }) => {
                w = self.start().map_err(WaitError::Start)?;
                w.ask(req, self.answer_within)?
            }
            Err(e) => return Err(e),
        };
        self.give(w);
        Ok(r)
    }

    /// Runs one node in a worker, forwarding progress and log into `ctx`. A node may run for
    /// days, so the run has no deadline; the worker is checked every [`POLL`]: on cancel its
    /// process group is killed (a fresh one starts on next need), and a worker that died fails
    /// the node, naming the worker and the node.
    /// Errors: the node failed or was cancelled; no worker could be started; the worker died or
    /// wrote what is not a reply.
    pub fn run(&self, kind: &str, ctx: &RunContext) -> Result<(), StageError> {
        let mut w = self.take().map_err(StageError::Failed)?;
        let req = Request::Run(Box::new(RunRequest { kind: kind.to_string(), job: ctx.job.clone() }));
        w.send(&req).map_err(|e| StageError::Failed(e.to_string()))?;
        let started = Instant::now();
        loop {
            if ctx.is_cancelled() {
                w.kill();
                return Err(StageError::Cancelled);
            }
            let reply = match w.recv(&req, POLL) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => return Err(StageError::failed(format!("{e} (after {:.1} s)", started.elapsed().as_secs_f64()))),
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
                Reply::Done { cpu_s } => {
                    ctx.set_cpu_seconds(cpu_s);
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
                    let name = w.name.clone();
                    w.kill();
                    return Err(StageError::failed(format!("the stage worker {name} answered `{}` with {other:?}", req.what())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A fake worker: a shell script standing in for `pipe-worker serve`.
    fn fake(name: &str, script: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("pipe-fake-worker-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let exe = dir.join("pipe-worker");
        std::fs::write(&exe, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        (dir, exe)
    }

    #[test]
    fn a_worker_that_never_answers_fails_within_the_deadline_naming_it_and_the_request() {
        let (dir, exe) = fake("silent", "exec sleep 600");
        let pool = Pool::new(exe.clone(), Duration::from_millis(300));
        let t0 = Instant::now();
        let e = pool.ask(&Request::Describe).unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(5), "waited {:?}", t0.elapsed());
        assert!(matches!(&e, WaitError::Timeout { request, waited, .. } if request == "describe" && *waited == Duration::from_millis(300)), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains(&exe.display().to_string()) && msg.contains("(pid ") && msg.contains("`describe` within 0.3 s"), "{msg}");
        assert!(pool.idle.lock().unwrap().is_empty(), "a worker that timed out is not reused");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_worker_that_dies_is_an_error_at_once_naming_its_exit() {
        let (dir, exe) = fake("dies", "read line; exit 3");
        let pool = Pool::new(exe, Duration::from_secs(60));
        let t0 = Instant::now();
        let e = pool.ask(&Request::Outputs { kind: "train_svdd".into(), params: Default::default() }).unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(10), "waited {:?}", t0.elapsed());
        let msg = e.to_string();
        assert!(msg.contains("stopped during `outputs of train_svdd`") && msg.contains("exit status: 3"), "{msg}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn an_answer_in_time_is_read_and_the_worker_kept() {
        let (dir, exe) = fake("answers", r#"while read line; do echo '{"msg":"error","error":"no such kind"}'; done"#);
        let pool = Pool::new(exe, Duration::from_secs(60));
        for _ in 0..2 {
            assert_eq!(pool.ask(&Request::Describe).unwrap(), Reply::Error { error: "no such kind".into() });
        }
        assert_eq!(pool.idle.lock().unwrap().len(), 1, "one worker, reused");
        let _ = std::fs::remove_dir_all(dir);
    }
}
