//! The worker's side: `pipe-worker serve` answers [`Request`]s from the kinds' own code.

use std::io::{BufRead, Write};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use super::protocol::{decode, encode, stamp, KindDesc, Read, Reply, Request};
use crate::error::render;
use crate::stage::{Progress, Registry, RunContext, StageError};

/// Serves `registry`'s kinds on stdin/stdout until stdin closes (the `pipe-worker serve` loop).
///
/// Stdout carries only protocol lines: file descriptor 1 is pointed at stderr first, so a library
/// that prints cannot corrupt the stream. Each `run` executes in this process, one at a time; the
/// engine cancels by killing the process, so no cancel flag is needed here.
/// Errors: the standard streams cannot be duplicated, read or written (the engine went away).
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
    let out = Forward(Arc::new(Mutex::new(unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(proto) })));
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let req: Request = match decode(&line) {
            Ok(r) => r,
            Err(e) => {
                out.send(&Reply::Error { error: format!("unreadable request: {e}") })?;
                continue;
            }
        };
        out.send(&answer(registry, req, &out))?;
    }
    Ok(())
}

/// The final reply to `req` (a run's progress and log go to `out` on the way).
fn answer(registry: &Registry, req: Request, out: &Forward) -> Reply {
    let unknown = |k: &str| Reply::Error { error: format!("this worker has no stage kind `{k}`") };
    match req {
        Request::Describe => {
            let kinds = registry.names().into_iter().filter_map(|n| registry.get(n)).map(|k| KindDesc::of(k.as_ref())).collect();
            Reply::Kinds { kinds }
        }
        Request::Outputs { kind, params } => match registry.get(&kind) {
            Some(k) => Reply::Outputs { outputs: k.outputs(&params) },
            None => unknown(&kind),
        },
        Request::Environment { kind, params } => match registry.get(&kind) {
            Some(k) => {
                let read = k.environment_watch(&params).map(|w| Read {
                    paths: w.paths.iter().map(|p| (p.clone(), stamp(p))).collect(),
                    vars: w.vars.iter().map(|v| (v.clone(), std::env::var(v).ok())).collect(),
                });
                Reply::Environment { values: k.environment(&params), read }
            }
            None => unknown(&kind),
        },
        Request::Run(r) => {
            let Some(k) = registry.get(&r.kind).cloned() else {
                return unknown(&r.kind);
            };
            let ctx = RunContext::for_job(r.job, Arc::new(out.clone()), Arc::new(AtomicBool::new(false)));
            // This process serves one node at a time: its CPU time over the node is the node's.
            let cpu_before = cpu_seconds();
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| k.run(&ctx))).unwrap_or_else(|p| {
                let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
                Err(StageError::failed(format!("stage panicked: {msg}")))
            });
            // The log goes first; a write that fails here fails the final reply's write too.
            let _ = out.send(&Reply::Log { text: ctx.take_log().text() });
            match result {
                Ok(()) => Reply::Done { cpu_s: cpu_before.zip(cpu_seconds()).map(|(before, after)| after - before) },
                Err(e) => Reply::Failed { cancelled: matches!(e, StageError::Cancelled), error: render(&e) },
            }
        }
    }
}

/// CPU seconds (user + system) used so far by this process (every thread: libtorch's too) and by
/// the child processes it has waited for (a stage's commands); `None` where the OS will not say.
fn cpu_seconds() -> Option<f64> {
    let used = |who| {
        let mut u = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage writes a whole `rusage` into the pointer on success (return 0).
        if unsafe { libc::getrusage(who, u.as_mut_ptr()) } != 0 {
            return None;
        }
        // SAFETY: initialised by the successful call above.
        Some(crate::command::cpu_seconds_of(&unsafe { u.assume_init() }))
    };
    Some(used(libc::RUSAGE_SELF)? + used(libc::RUSAGE_CHILDREN)?)
}

/// The reply stream, shared by the request loop and a running node's progress.
#[derive(Clone)]
struct Forward(Arc<Mutex<std::fs::File>>);

impl Forward {
    /// Writes one line. Errors: the engine closed the stream.
    fn send(&self, r: &Reply) -> std::io::Result<()> {
        let line = encode(r).map_err(std::io::Error::other)?;
        let mut o = self.0.lock().unwrap_or_else(|e| e.into_inner());
        o.write_all(line.as_bytes())?;
        o.flush()
    }
}

/// Progress of a node running in the worker, written as protocol lines (a lost line is harmless:
/// the final reply's write reports a closed stream).
impl Progress for Forward {
    fn set_length(&self, len: u64) {
        let _ = self.send(&Reply::Length { len });
    }
    fn set_position(&self, pos: u64) {
        let _ = self.send(&Reply::Position { pos });
    }
    fn set_message(&self, text: String) {
        let _ = self.send(&Reply::Message { text });
    }
    fn metric(&self, name: &str, step: u64, value: f64) {
        let _ = self.send(&Reply::Metric { name: name.to_string(), step, value });
    }
}
