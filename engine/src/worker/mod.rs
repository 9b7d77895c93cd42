//! Stage kinds out of process: a pool of persistent worker processes.
//!
//! Kinds that need a heavy runtime (libtorch) live in a separate executable, the *worker*, so the
//! `pipe` binary stays small and starts in milliseconds. The engine talks to it in JSON lines over
//! its stdin/stdout ([`Request`] / [`Reply`], [`protocol`]):
//!
//! ```text
//! pipe (engine)                                   pipe-worker serve
//!   Registry ── RemoteKind "train_svdd" ──┐
//!     describe / outputs / environment ───┼──▶ answered from the kinds' own code,
//!       (cached on disk by the worker's   │      cached per worker content hash
//!        content hash, see cache.rs)     │
//!   exec: RemoteKind::run(ctx) ── Pool ───┴──▶ one node at a time per worker: progress, log,
//!       at most --jobs workers, each started       Done | Failed
//!       on first need; cancel = kill its process group, start a fresh one
//! ```
//!
//! The worker answers every question about a kind from the same code that runs it, so a pipeline is
//! validated (all errors at once, with line:column) exactly as before, and every cache key is what
//! the in-process kind computes. Each node sets its own thread count in its own process.
//!
//! One file per role: [`protocol`] (the messages and their encoding), `server` (the worker's
//! loop), [`pool`] (the processes, with a deadline on every wait), `cache` (the interface cache)
//! and `proxy` (each served kind as a [`StageKind`](crate::stage::StageKind) of the engine's).
#![warn(missing_docs)]

mod cache;
pub mod pool;
pub mod protocol;
mod proxy;
mod server;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::Hint;

pub use pool::{Pool, WaitError};
pub use protocol::{KindDesc, ParamDesc, Read, Reply, Request, RunRequest, Stamp, TypeDesc};
pub use proxy::{registry, RemoteKind};
pub use server::serve;

/// The executable that serves the kinds (next to `pipe`, or `PIPE_WORKER_EXE`).
pub const WORKER_NAME: &str = "pipe-worker";

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
