//! The content-addressed artifact store: immutable objects, node records, refs, run records, a lock.
//!
//! Layout under the store root (default `artifacts/`; [`Entry`] is the one description of it):
//! `objects/<aa>/<blake3>[.ext]` immutable outputs; `nodes/<key>.json` one record per executed key;
//! `refs/<pipeline>/<hash of node id>.json` the last key of each node (for "why is it stale?");
//! `runs/<run id>.json` + `runs/latest.json`; `tmp/` scratch; `quarantine/` corrupt objects; `lock`;
//! `tasks/<key>.json` work handed to another machine, `tasks/<key>.failed.json` its failure.
//!
//! With a [`Remote`] (S3, or a shared directory) the local directory becomes a read-through cache:
//! records, refs and objects missing here are fetched from the remote (objects verified by hash), and
//! everything written here is also uploaded, objects before the record that names them.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::hash::{hash_file, Fingerprint};
use crate::remote::Remote;

/// Every entry a store keeps and where, relative to its root (the same under a remote's prefix):
/// the one description of the layout.
pub enum Entry<'a> {
    /// `objects/<aa>/<blake3>[.ext]`: an immutable output, named by its content.
    Object(&'a ObjectRef),
    /// `nodes/<key>.json`: the record of one executed key.
    Record(&'a str),
    /// `refs/<pipeline>/<hash of node id>.json`: the key a node of a pipeline file last had.
    Ref {
        /// The pipeline file's namespace (`ref_namespace`); any other string is hashed.
        pipeline: &'a str,
        /// The node's id.
        node: &'a str,
    },
    /// `runs/<id>.json`: one run's record.
    Run(&'a str),
    /// `runs/latest.json`: the last run's record.
    LatestRun,
    /// `tasks/<key>.json`: work handed to another machine (a Slurm job).
    Task(&'a str),
    /// `tasks/<key>.failed.json`: why that work failed.
    TaskFailure(&'a str),
    /// `published/<hash of path>.json`: what pipe wrote at a published path (this cache only); the
    /// path relative to the workspace, or absolute for a file outside it ([`published_key`]).
    /// Entries of earlier versions are at the hash of the absolute path.
    Published(&'a Path),
    /// `logs/<key>.json`: the last failed attempt at a key ([`Attempt`]: its error and whole log).
    Attempt(&'a str),
    /// `checkpoints/<prefix>/`: a training node's checkpoints ([`crate::checkpoint`]).
    Checkpoints(&'a str),
    /// `running/<key>.json`: a node being computed now, with its progress ([`crate::live`]).
    Running(&'a str),
}

impl Entry<'_> {
    /// The folders every store has.
    pub const FOLDERS: [&'static str; 6] = ["objects", "nodes", "refs", "runs", "tmp", "quarantine"];

    /// The entry's path relative to the store root. Never leaves its folder: a key or hash that is
    /// not one (a record read from a remote or edited by hand may hold anything) maps to `invalid`.
    pub fn rel(&self) -> String {
        match self {
            Entry::Object(obj) if !obj.is_valid() => "objects/invalid/invalid".to_string(),
            Entry::Object(obj) => {
                let name = if obj.ext.is_empty() { obj.hash.clone() } else { format!("{}.{}", obj.hash, obj.ext) };
                format!("objects/{}/{name}", &obj.hash[..2])
            }
            Entry::Record(key) => format!("nodes/{}.json", if is_hash(key) { key } else { "invalid" }),
            Entry::Ref { pipeline, node } => {
                let h = blake3::hash(node.as_bytes()).to_hex();
                let ns = if !pipeline.is_empty() && pipeline.len() <= 64 && pipeline.bytes().all(|b| b.is_ascii_hexdigit()) {
                    pipeline.to_string()
                } else {
                    blake3::hash(pipeline.as_bytes()).to_hex()[..32].to_string()
                };
                format!("refs/{ns}/{}.json", &h[..32])
            }
            Entry::Run(id) => format!("runs/{id}.json"),
            Entry::LatestRun => "runs/latest.json".to_string(),
            Entry::Task(key) => format!("tasks/{key}.json"),
            Entry::TaskFailure(key) => format!("tasks/{key}.failed.json"),
            Entry::Attempt(key) => format!("logs/{}.json", if is_hash(key) { key } else { "invalid" }),
            Entry::Checkpoints(prefix) => format!("checkpoints/{}", if is_hash(prefix) { prefix } else { "invalid" }),
            Entry::Running(key) => format!("running/{}.json", if is_hash(key) { key } else { "invalid" }),
            Entry::Published(dest) => format!("published/{}.json", &blake3::hash(dest.as_os_str().as_encoded_bytes()).to_hex()[..32]),
        }
    }
}

/// What went wrong reading or writing the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file of the local store could not be read or written.
    #[error("store {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// A record is not valid JSON of the expected shape (it is ignored; the node is recomputed).
    #[error("store {path}: invalid record ({message}); it will be ignored and recomputed")]
    BadRecord {
        /// The record's file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// The remote store (S3 or a shared folder) failed.
    #[error("remote store {url}: {what}: {message}")]
    Remote {
        /// The store's URL.
        url: String,
        /// What was being done (`upload`, `list`, ...).
        what: String,
        /// The remote's error.
        message: String,
        /// How to get past it ([`crate::error::Hint`]).
        hint: String,
    },
}

impl crate::error::Hint for StoreError {
    fn hint(&self) -> Option<String> {
        match self {
            StoreError::Remote { hint, .. } => Some(hint.clone()),
            StoreError::Io { .. } | StoreError::BadRecord { .. } => None,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.display().to_string(), source }
}

/// A stored object: content hash, extension and size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// blake3 of the content: 64 lowercase hex digits.
    pub hash: String,
    /// The output file's extension, without the dot; empty when it has none.
    pub ext: String,
    /// Size in bytes.
    pub size: u64,
}

impl ObjectRef {
    /// Whether the hash and extension are safe to place under `objects/` (a record read from a
    /// remote or edited by hand may hold anything; nothing unchecked becomes a path).
    pub fn is_valid(&self) -> bool {
        is_hash(&self.hash) && is_ext(&self.ext)
    }

    /// The hash's first 12 hex digits, for messages.
    pub fn short(&self) -> &str {
        &self.hash[..12.min(self.hash.len())]
    }
}

/// What the store keeps for one executed key (`nodes/<key>.json`): its fingerprint, outputs and log.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The cache key (`Fingerprint::key`).
    pub key: String,
    /// The id of the node that ran.
    pub node: String,
    /// The node's stage.
    pub stage: String,
    /// What the key hashes.
    pub fingerprint: Fingerprint,
    /// Upstream node ids per input, for messages only (not part of the key).
    pub input_sources: BTreeMap<String, Vec<String>>,
    /// Output name -> the stored object.
    pub outputs: BTreeMap<String, ObjectRef>,
    /// Wall-clock seconds from the start of the stage's run to its outputs being stored.
    pub duration_s: f64,
    /// When it finished, in seconds since the Unix epoch.
    pub finished_at: f64,
    /// The lines the stage logged (a `command` stage's stdout and stderr), newline-terminated.
    pub log: String,
}

/// A failed attempt at a key (`logs/<key>.json`), kept so that `pipe show` and the report can
/// show why a node that never succeeded failed: the error, the end of stderr and the whole log
/// (bounded as [`crate::log`] says). A success at the key keeps its log in its [`NodeRecord`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Attempt {
    /// The node's id.
    pub node: String,
    /// The node's stage.
    pub stage: String,
    /// The cache key it was computing.
    pub key: String,
    /// When it ended, in seconds since the Unix epoch.
    pub finished_at: f64,
    /// Wall-clock seconds it ran.
    pub duration_s: f64,
    /// Why it failed (without the log lines).
    pub error: String,
    /// The last lines the stage wrote to stderr (empty when it wrote none).
    pub stderr_tail: Vec<String>,
    /// Everything it logged, newline-terminated.
    pub log: String,
    /// The run was interrupted rather than the node failing.
    pub cancelled: bool,
    /// Where the failure arose (absent in attempts kept by earlier versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<FailureKind>,
    /// What the key hashes (`pipe key --run` compares it with the node's now); absent in
    /// attempts kept by earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Fingerprint>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct PublishedEntry {
    /// The key the entry is at ([`published_key`]; an absolute path in earlier versions' entries).
    path: String,
    /// What pipe last wrote there.
    hash: String,
    /// What pipe wrote there before, newest first (at most [`PUBLISHED_KEPT`]): another copy of the
    /// workspace that shares this store publishes its own files at the same relative paths.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    earlier: Vec<String>,
}

/// How many earlier hashes a published entry keeps.
const PUBLISHED_KEPT: usize = 32;

/// The name a published file is remembered by: its path relative to the workspace (the directory
/// pipe runs in), so that a workspace moved or copied elsewhere keeps knowing the files pipe
/// wrote; a file outside the workspace by its absolute path. `.` and `..` are resolved first, and
/// a path through a symbolic link into the workspace counts as inside it.
pub fn published_key(dest: &Path) -> PathBuf {
    let ws = std::env::current_dir().unwrap_or_default();
    let dest = normalize(&ws.join(dest));
    if let Ok(rel) = dest.strip_prefix(&ws) {
        if !rel.as_os_str().is_empty() {
            return rel.to_path_buf();
        }
    }
    let real = |p: &Path| fs::canonicalize(p).ok();
    if let (Some(dir), Some(name), Some(ws)) = (dest.parent().and_then(real), dest.file_name(), real(&ws)) {
        if let Ok(rel) = dir.join(name).strip_prefix(ws) {
            return rel.to_path_buf();
        }
    }
    dest
}

/// `path` with `.` and `..` components resolved by name (no file system access).
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Checks a record read from disk or a remote before any of its names becomes a path.
fn check_record(rec: &NodeRecord, key: &str) -> Result<(), String> {
    if rec.key != key {
        return Err(format!("it describes key {}, not {key}", rec.key));
    }
    match rec.outputs.iter().find(|(_, o)| !o.is_valid()) {
        Some((name, o)) => Err(format!("output `{name}` names an invalid object `{}.{}`", o.hash, o.ext)),
        None => Ok(()),
    }
}

/// A ref (`refs/<pipeline>/<hash of node id>.json`): the key a node of a pipeline file last completed with.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RefEntry {
    /// The node's id (the file name holds only its hash).
    pub node: String,
    /// Its cache key.
    pub key: String,
}

/// The outcome of one node in one run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunNode {
    /// The node's id.
    pub node: String,
    /// The node's stage.
    pub stage: String,
    /// What happened to it.
    pub state: RunState,
    /// Wall-clock seconds it took in this run (0 when it did not start).
    pub duration_s: f64,
    /// Its cache key, when its inputs could be resolved.
    pub key: Option<String>,
    /// Why it failed, was skipped or was cancelled, as the terminal showed it; `None` when it
    /// completed.
    pub error: Option<String>,
    /// The epoch a training node resumed from (its checkpoint), when it did not start over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<u64>,
    /// How it failed, typed (`None` unless it failed, and in records of earlier versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureRecord>,
}

impl RunNode {
    /// The entry of node `node` (stage `stage`) that did not run: skipped or cancelled, and why.
    pub fn not_run(node: &str, stage: &str, state: RunState, why: String) -> RunNode {
        RunNode { node: node.into(), stage: stage.into(), state, duration_s: 0.0, key: None, error: Some(why), resumed_from: None, failure: None }
    }
}

/// A node's failure as the run record keeps it: its kind, what went wrong, and how to get past it
/// (the two halves of [`crate::error::render`]).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FailureRecord {
    /// Where it went wrong.
    pub kind: FailureKind,
    /// What went wrong.
    pub message: String,
    /// What to do about it, when pipe knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl std::fmt::Display for FailureRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl crate::error::Hint for FailureRecord {
    fn hint(&self) -> Option<String> {
        self.hint.clone()
    }
}

/// Where a node's failure arose (`kind` in the run record: `input`, `store`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// An input could not be used (a workspace file, an upstream output missing or corrupt).
    Input,
    /// The store could not be read or written, or does not hold the result (`pipe pull`).
    Store,
    /// The stage's own error, or its outputs not as it declares them.
    Stage,
    /// A stored output could not be published into the workspace.
    Publish,
    /// A Slurm job computed another key than the one it was submitted under.
    KeyMismatch,
    /// What ran the node failed or died (Slurm, a job that ended without a result).
    Runner,
    /// A kind a later version of pipe recorded.
    #[serde(other)]
    Other,
}

impl FailureKind {
    /// The name the run record uses.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Input => "input",
            FailureKind::Store => "store",
            FailureKind::Stage => "stage",
            FailureKind::Publish => "publish",
            FailureKind::KeyMismatch => "key_mismatch",
            FailureKind::Runner => "runner",
            FailureKind::Other => "other",
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Failed nodes per kind of failure, in [`FailureKind`] order; a failure recorded by an earlier
/// version (no kind) counts under [`FailureKind::Other`].
pub fn failures_by_kind(nodes: &[RunNode]) -> BTreeMap<FailureKind, usize> {
    let mut by = BTreeMap::new();
    for n in nodes.iter().filter(|n| n.state == RunState::Failed) {
        *by.entry(n.failure.as_ref().map_or(FailureKind::Other, |f| f.kind)).or_default() += 1;
    }
    by
}

/// What happened to a node in a run (`state` in the run record's JSON: `ran`, `cached`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// It ran and its result is stored.
    Ran,
    /// Its result was in the store.
    Cached,
    /// It ran and failed (or its result could not be published).
    Failed,
    /// Not run: an upstream node did not complete.
    Skipped,
    /// Not run or stopped: the run was interrupted.
    Cancelled,
}

impl RunState {
    /// The name the run record and the terminal use.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Ran => "ran",
            RunState::Cached => "cached",
            RunState::Failed => "failed",
            RunState::Skipped => "skipped",
            RunState::Cancelled => "cancelled",
        }
    }
}

/// A run folded from its nodes: how many ran, came from the cache, failed, were skipped or
/// cancelled. One fold serves the run record's status, the summary line and the exit code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Nodes that ran.
    pub ran: usize,
    /// Nodes restored from the cache.
    pub cached: usize,
    /// Nodes that failed.
    pub failed: usize,
    /// Nodes not run because an upstream node did not complete.
    pub skipped: usize,
    /// Nodes not run or stopped because the run was interrupted.
    pub cancelled: usize,
}

/// How a run ended (the run record's `status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStatus {
    /// Every node completed.
    Ok,
    /// Some node failed (the rest completed or were skipped).
    Failed,
    /// Interrupted (Ctrl-C, SIGTERM); finished nodes are kept.
    Interrupted,
}

impl Tally {
    /// Counts `nodes` by state.
    pub fn of(nodes: &[RunNode]) -> Tally {
        let mut t = Tally::default();
        for n in nodes {
            *match n.state {
                RunState::Ran => &mut t.ran,
                RunState::Cached => &mut t.cached,
                RunState::Failed => &mut t.failed,
                RunState::Skipped => &mut t.skipped,
                RunState::Cancelled => &mut t.cancelled,
            } += 1;
        }
        t
    }

    /// The run's status; `interrupted` when the run was cancelled (not by `--fail-fast` after a
    /// failure, which is a failure).
    pub fn status(&self, interrupted: bool) -> RunStatus {
        if interrupted {
            RunStatus::Interrupted
        } else if self.failed > 0 {
            RunStatus::Failed
        } else {
            RunStatus::Ok
        }
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ran, {} cached, {} failed, {} skipped, {} cancelled", self.ran, self.cached, self.failed, self.skipped, self.cancelled)
    }
}

impl RunStatus {
    /// The word the run record holds.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }
    /// The process exit code (`crate::exit`).
    pub fn exit_code(self) -> i32 {
        match self {
            RunStatus::Ok => crate::exit::OK,
            RunStatus::Failed => crate::exit::NODES_FAILED,
            RunStatus::Interrupted => crate::exit::INTERRUPTED,
        }
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// One run's record (`runs/<run id>.json`, also `runs/latest.json`): when and where it ran, and
/// what happened to each node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunRecord {
    /// `<start in milliseconds since the Unix epoch>-<process id>`.
    pub run_id: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// The pipeline file's path, as given to `pipe`.
    pub file: String,
    /// Seconds since the Unix epoch.
    pub started_at: f64,
    /// The same instant, RFC 3339 in UTC (`2026-11-30T07:12:46Z`).
    #[serde(default)]
    pub started: String,
    /// Where it ran and what ran it: the workspace's git commit (with `dirty` when it had
    /// uncommitted changes), pipe's version, the host, the `--set` overrides.
    #[serde(default)]
    pub git_commit: Option<String>,
    /// Whether tracked files had uncommitted changes; `None` outside a git repository.
    #[serde(default)]
    pub git_dirty: Option<bool>,
    /// The version of `pipe` that ran it.
    #[serde(default)]
    pub pipe_version: String,
    /// The machine's host name.
    #[serde(default)]
    pub host: String,
    /// The `--set` overrides, as given (`stage.param=value`).
    #[serde(default)]
    pub overrides: Vec<String>,
    /// Wall-clock seconds of the whole run.
    pub duration_s: f64,
    /// Nodes run at once (`--jobs`).
    pub jobs: usize,
    /// `ok`, `failed` or `interrupted`.
    pub status: String,
    /// Every node's outcome, in dependency order.
    pub nodes: Vec<RunNode>,
}

/// The result of checking a stored object against its [`ObjectRef`].
#[derive(Debug)]
pub enum Verify {
    /// Present, with the recorded size and hash.
    Ok,
    /// Not in the store (here, nor on the remote when there is one).
    Missing,
    /// Present, but its size or hash differs from the reference.
    Corrupt {
        /// What was found: the actual hash, or the size as `N bytes instead of M`.
        actual: String,
    },
    /// Not here, and the remote could not be read.
    Unavailable(String),
}

/// An artifact store: a local directory, alone or as the cache in front of a [`Remote`]. See the
/// module docs for its layout.
pub struct Store {
    root: PathBuf,
    remote: Option<std::sync::Arc<Remote>>,
    /// Objects found corrupt on the remote: uploaded again even though one of that size is there.
    remote_corrupt: std::sync::Mutex<HashSet<String>>,
}

/// Held for the duration of a run or gc; released on drop (and by the OS if the process dies).
pub struct StoreLock {
    _file: File,
}

/// The current time in seconds since the Unix epoch (0 when the clock is set before it).
pub fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// `<pid>-<n>`, unique per call in this process: for temp and scratch names that several threads
/// (or processes sharing a directory) may want at once.
fn unique() -> String {
    static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    format!("{}-{}", std::process::id(), SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// Writes `bytes` to `path` atomically: temp file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    // Two threads may write the same path at once (e.g. two nodes recording one ref).
    let tmp = dir.join(format!(".{}.{}.tmp", path.file_name().and_then(|s| s.to_str()).unwrap_or("f"), unique()));
    let written = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        // Disk full, a directory in the way: leave nothing behind.
        let _ = fs::remove_file(&tmp);
    }
    written?;
    sync_dir(dir);
    Ok(())
}

/// Whether the file at `path` holds exactly `obj` (size, then hash).
pub fn same_content(path: &Path, obj: &ObjectRef) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == obj.size) && hash_file(path).is_ok_and(|h| h == obj.hash)
}

/// A content hash as the store names things: 64 lowercase hex digits (blake3).
pub fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// An object's file extension: at most 16 ASCII letters and digits.
fn is_ext(s: &str) -> bool {
    s.len() <= 16 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

impl Store {
    /// Opens the store at `root`, creating it and its folders as needed (no remote: see
    /// [`Store::with_remote`]). Errors when a folder cannot be created.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let root = root.into();
        for sub in Entry::FOLDERS {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        Ok(Store { root, remote: None, remote_corrupt: Default::default() })
    }

    /// Puts `remote` behind this (now cache) directory.
    pub fn with_remote(mut self, remote: Remote) -> Store {
        self.remote = Some(std::sync::Arc::new(remote));
        self
    }

    /// The remote, shared, for work that outlives a borrow of the store (a checkpoint
    /// [`crate::checkpoint::Mirror`]'s thread).
    pub fn remote_shared(&self) -> Option<std::sync::Arc<Remote>> {
        self.remote.clone()
    }

    /// The local directory (the cache, when there is a remote).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The remote behind the local directory, if any.
    pub fn remote(&self) -> Option<&Remote> {
        self.remote.as_deref()
    }

    /// Where the artifacts live, for messages.
    pub fn describe(&self) -> String {
        match &self.remote {
            Some(r) => format!("{} (cache {})", r.url(), self.root.display()),
            None => self.root.display().to_string(),
        }
    }

    fn object_rel(obj: &ObjectRef) -> String {
        Entry::Object(obj).rel()
    }

    /// Small JSON documents beside the records (`tasks/...`): written here and to the remote.
    pub fn put_meta(&self, rel: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.root.join(rel);
        write_atomic(&path, bytes).map_err(io_err(&path))?;
        match &self.remote {
            Some(r) => r.put(rel, bytes.to_vec()),
            None => Ok(()),
        }
    }

    /// A document written by [`Store::put_meta`], here or on the remote (not cached: it may change).
    pub fn get_meta(&self, rel: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.root.join(rel);
        match fs::read(&path) {
            Ok(b) => return Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&path)(e)),
        }
        match &self.remote {
            Some(r) => Ok(r.get(rel)?.map(|b| b.to_vec())),
            None => Ok(None),
        }
    }

    /// Deletes a document written by [`Store::put_meta`], here and on the remote; failures are ignored.
    pub fn remove_meta(&self, rel: &str) {
        let _ = fs::remove_file(self.root.join(rel));
        if let Some(r) = &self.remote {
            let _ = r.delete(rel);
        }
    }

    /// Takes the store's exclusive lock, calling `on_wait` once if another process holds it.
    pub fn lock(&self, on_wait: impl FnOnce(&str)) -> Result<StoreLock, StoreError> {
        let path = self.root.join("lock");
        let mut file = OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&path).map_err(io_err(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&path).unwrap_or_default();
                on_wait(holder.trim());
                file.lock().map_err(io_err(&path))?;
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_err(&path)(e)),
        }
        let _ = file.set_len(0);
        let _ = write!(file, "pid {}", std::process::id());
        Ok(StoreLock { _file: file })
    }

    /// Where object `obj` is (or would be) in the local directory; it may not be there.
    pub fn object_path(&self, obj: &ObjectRef) -> PathBuf {
        self.root.join(Self::object_rel(obj))
    }

    /// Uploads a local object unless the remote already holds one of the same size (content
    /// addressing: same name, same bytes; a repeated upload would be harmless, only slower).
    /// Returns whether it uploaded.
    fn upload(&self, obj: &ObjectRef) -> Result<bool, StoreError> {
        let Some(r) = &self.remote else { return Ok(false) };
        let rel = Self::object_rel(obj);
        let known_bad = self.remote_corrupt.lock().unwrap_or_else(|e| e.into_inner()).remove(&obj.hash);
        if !known_bad && r.size(&rel)? == Some(obj.size) {
            return Ok(false);
        }
        r.put_file(&rel, &self.object_path(obj))?;
        Ok(true)
    }

    /// Downloads an object from the remote into the cache: into scratch, hash-checked, then
    /// renamed into place (read-only).
    fn download(&self, obj: &ObjectRef) -> Verify {
        let Some(r) = &self.remote else { return Verify::Missing };
        let tmp = self.root.join("tmp").join(format!("fetch-{}-{}", obj.short(), unique()));
        let got = r.get_to_file(&Self::object_rel(obj), obj.size, &tmp);
        let cleanup = || {
            let _ = fs::remove_file(&tmp);
        };
        let actual = match got {
            Ok(Some(h)) => h,
            Ok(None) => {
                cleanup();
                return Verify::Missing;
            }
            Err(e) => {
                cleanup();
                return Verify::Unavailable(crate::error::render(&e));
            }
        };
        let size = fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0);
        if actual != obj.hash || size != obj.size {
            cleanup();
            tracing::warn!(object = %obj.hash, %actual, "remote object is corrupt; it will be recomputed and replaced");
            self.remote_corrupt.lock().unwrap_or_else(|e| e.into_inner()).insert(obj.hash.clone());
            return Verify::Corrupt { actual };
        }
        match self.place(&tmp, obj) {
            Ok(()) => Verify::Ok,
            Err(e) => {
                cleanup();
                Verify::Unavailable(crate::error::render(&e))
            }
        }
    }

    /// Moves a file whose content is `obj` into `objects/`: read-only, renamed, directory synced.
    fn place(&self, src: &Path, obj: &ObjectRef) -> Result<(), StoreError> {
        let dest = self.object_path(obj);
        let dir = dest.parent().expect("objects have a parent");
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut perms = fs::metadata(src).map_err(io_err(src))?.permissions();
        perms.set_readonly(true);
        fs::set_permissions(src, perms).map_err(io_err(src))?;
        fs::rename(src, &dest).map_err(io_err(&dest))?;
        sync_dir(dir);
        Ok(())
    }

    /// Moves a finished output file into the store (fsynced, renamed into place, made read-only).
    ///
    /// Objects are stored by content: a symlink is replaced by a regular file holding its target's
    /// bytes (the target itself is never moved or chmodded); anything but a regular file is an error.
    pub fn put_file(&self, src: &Path) -> Result<ObjectRef, StoreError> {
        let meta = fs::symlink_metadata(src).map_err(io_err(src))?;
        if meta.file_type().is_symlink() {
            let target = fs::metadata(src).map_err(io_err(src))?;
            if !target.is_file() {
                return Err(StoreError::Io {
                    path: src.display().to_string(),
                    source: io::Error::other("a symlink to something other than a regular file"),
                });
            }
            let copy = src.with_file_name(format!(".{}.{}.copy", src.file_name().and_then(|n| n.to_str()).unwrap_or("out"), unique()));
            fs::copy(src, &copy).map_err(io_err(src))?;
            fs::rename(&copy, src).map_err(io_err(src))?;
        } else if !meta.is_file() {
            return Err(StoreError::Io { path: src.display().to_string(), source: io::Error::other("not a regular file") });
        }
        let f = File::open(src).map_err(io_err(src))?;
        f.sync_all().map_err(io_err(src))?;
        let size = f.metadata().map_err(io_err(src))?.len();
        drop(f);
        let hash = hash_file(src).map_err(io_err(src))?;
        let ext = src.extension().and_then(|e| e.to_str()).unwrap_or("").to_string();
        let obj = ObjectRef { hash, ext, size };
        if matches!(self.verify_local(&obj), Verify::Ok) {
            let _ = fs::remove_file(src);
        } else {
            self.place(src, &obj)?;
        }
        self.upload(&obj)?;
        Ok(obj)
    }

    /// Checks an object's size and hash; one missing here is fetched from the remote, if any.
    pub fn verify(&self, obj: &ObjectRef) -> Verify {
        match self.verify_local(obj) {
            Verify::Missing => self.download(obj),
            v => v,
        }
    }

    /// Like [`Store::verify`], but an object only on the remote is checked by size, not fetched
    /// (its hash is checked when it is fetched): for `status`, and a Slurm driver whose jobs fetch
    /// their own inputs.
    pub fn verify_present(&self, obj: &ObjectRef) -> Verify {
        match (self.verify_local(obj), &self.remote) {
            (Verify::Missing, Some(r)) => match r.size(&Self::object_rel(obj)) {
                Ok(Some(size)) if size == obj.size => Verify::Ok,
                Ok(Some(size)) => Verify::Corrupt { actual: format!("{size} bytes instead of {} on the remote", obj.size) },
                Ok(None) => Verify::Missing,
                Err(e) => Verify::Unavailable(crate::error::render(&e)),
            },
            (v, _) => v,
        }
    }

    fn verify_local(&self, obj: &ObjectRef) -> Verify {
        let path = self.object_path(obj);
        match fs::metadata(&path) {
            Err(_) => return Verify::Missing,
            Ok(m) if m.len() != obj.size => return Verify::Corrupt { actual: format!("{} bytes instead of {}", m.len(), obj.size) },
            Ok(_) => {}
        }
        match hash_file(&path) {
            Ok(h) if h == obj.hash => Verify::Ok,
            Ok(h) => Verify::Corrupt { actual: h },
            Err(_) => Verify::Missing,
        }
    }

    /// Moves a corrupt object aside so it is never used again; returns where it went.
    pub fn quarantine(&self, obj: &ObjectRef) -> Option<PathBuf> {
        let src = self.object_path(obj);
        let dest = self.root.join("quarantine").join(format!("{}.{}.{}", obj.hash, obj.ext, now() as u64));
        fs::rename(&src, &dest).ok().map(|_| dest)
    }

    fn record_path(&self, key: &str) -> PathBuf {
        self.root.join(Entry::Record(key).rel())
    }

    /// The record of `key`, read here or fetched from the remote (and kept here). `None` when there
    /// is none or `key` is not a hash; an error when it cannot be read or is invalid.
    pub fn record(&self, key: &str) -> Result<Option<NodeRecord>, StoreError> {
        if !is_hash(key) {
            return Ok(None);
        }
        let path = self.record_path(key);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => match &self.remote {
                None => return Ok(None),
                Some(r) => match r.get(&Entry::Record(key).rel())? {
                    None => return Ok(None),
                    Some(b) => {
                        let bad = |message: String| StoreError::BadRecord { path: format!("{}/nodes/{key}.json", r.url()), message };
                        let rec: NodeRecord = serde_json::from_slice(&b).map_err(|e| bad(e.to_string()))?;
                        check_record(&rec, key).map_err(bad)?;
                        write_atomic(&path, &b).map_err(io_err(&path))?;
                        return Ok(Some(rec));
                    }
                },
            },
            Err(e) => return Err(io_err(&path)(e)),
        };
        let rec: NodeRecord =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::BadRecord { path: path.display().to_string(), message: e.to_string() })?;
        check_record(&rec, key).map_err(|message| StoreError::BadRecord { path: path.display().to_string(), message })?;
        Ok(Some(rec))
    }

    /// Writes a node's record (here, then on the remote: after its objects, which `put_file` uploaded).
    pub fn write_record(&self, rec: &NodeRecord) -> Result<(), StoreError> {
        let path = self.record_path(&rec.key);
        let bytes = serde_json::to_vec_pretty(rec).expect("records serialise");
        write_atomic(&path, &bytes).map_err(io_err(&path))?;
        match &self.remote {
            Some(r) => r.put(&Entry::Record(&rec.key).rel(), bytes),
            None => Ok(()),
        }
    }

    /// Deletes the local record of `key`, if any (never the remote's); failures are ignored.
    pub fn remove_record(&self, key: &str) {
        let _ = fs::remove_file(self.record_path(key));
    }

    fn ref_rel(pipeline: &str, node: &str) -> String {
        Entry::Ref { pipeline, node }.rel()
    }

    fn ref_path(&self, pipeline: &str, node: &str) -> PathBuf {
        self.root.join(Self::ref_rel(pipeline, node))
    }

    /// Keeps a failed attempt's error and log (here and on the remote, so a cluster job's failure
    /// reaches the driver and `pipe show`).
    pub fn write_attempt(&self, attempt: &Attempt) -> Result<(), StoreError> {
        let rel = Entry::Attempt(&attempt.key).rel();
        let bytes = serde_json::to_vec(attempt).expect("serialises");
        let path = self.root.join(&rel);
        write_atomic(&path, &bytes).map_err(io_err(&path))?;
        match &self.remote {
            Some(r) => r.put_shared(&rel, bytes),
            None => Ok(()),
        }
    }

    /// The last failed attempt at `key`, if one was kept (an unreadable one counts as none).
    pub fn attempt(&self, key: &str) -> Option<Attempt> {
        let bytes = self.get_meta(&Entry::Attempt(key).rel()).ok()??;
        serde_json::from_slice::<Attempt>(&bytes).ok().filter(|a| a.key == key)
    }

    /// The key this node had when it last completed in this pipeline (here, else on the remote).
    pub fn get_ref(&self, pipeline: &str, node: &str) -> Option<String> {
        let bytes = match fs::read(self.ref_path(pipeline, node)) {
            Ok(b) => b,
            Err(_) => self.remote.as_ref()?.get(&Self::ref_rel(pipeline, node)).ok()??.to_vec(),
        };
        let r: RefEntry = serde_json::from_slice(&bytes).ok()?;
        (r.node == node && is_hash(&r.key)).then_some(r.key)
    }

    /// Records `key` as the last key of `node` in pipeline namespace `pipeline`, here and on the
    /// remote (nothing is written when the local ref already says so).
    pub fn set_ref(&self, pipeline: &str, node: &str, key: &str) -> Result<(), StoreError> {
        let path = self.ref_path(pipeline, node);
        let local = fs::read(&path).ok().and_then(|b| serde_json::from_slice::<RefEntry>(&b).ok());
        if local.is_some_and(|r| r.node == node && r.key == key) {
            return Ok(());
        }
        let bytes = serde_json::to_vec(&RefEntry { node: node.to_string(), key: key.to_string() }).expect("refs serialise");
        write_atomic(&path, &bytes).map_err(io_err(&path))?;
        match &self.remote {
            // Nothing to write where the remote already says so (a `pull` from it, a cached run).
            Some(r) if r.get(&Self::ref_rel(pipeline, node)).ok().flatten().is_some_and(|b| b.as_ref() == bytes.as_slice()) => Ok(()),
            Some(r) => r.put_shared(&Self::ref_rel(pipeline, node), bytes),
            None => Ok(()),
        }
    }

    fn published_path(&self, key: &Path) -> PathBuf {
        self.root.join(Entry::Published(key).rel())
    }

    /// The entry of published file `dest`: at its workspace-relative key, else one an earlier
    /// version wrote at its absolute path (any other content there counts as none).
    fn published_entry(&self, dest: &Path) -> Option<PublishedEntry> {
        let read = |key: &Path| -> Option<PublishedEntry> {
            let e: PublishedEntry = serde_json::from_slice(&fs::read(self.published_path(key)).ok()?).ok()?;
            (Path::new(&e.path) == key).then_some(e)
        };
        let key = published_key(dest);
        read(&key).or_else(|| {
            let abs = normalize(&std::env::current_dir().unwrap_or_default().join(dest));
            (abs != key).then(|| read(&abs)).flatten()
        })
    }

    /// The hash of what pipe published at `dest` (a workspace path), if it did: what the file holds
    /// now when pipe wrote that there too (from this copy of the workspace or another sharing the
    /// store), else what pipe wrote there last.
    pub fn published_hash(&self, dest: &Path) -> Option<String> {
        let e = self.published_entry(dest)?;
        if e.earlier.is_empty() {
            return Some(e.hash);
        }
        match hash_file(dest) {
            Ok(now) if now == e.hash || e.earlier.contains(&now) => Some(now),
            _ => Some(e.hash),
        }
    }

    /// Remembers that `dest` holds object `hash`, so a later hand edit is noticed.
    pub fn set_published(&self, dest: &Path, hash: &str) {
        let key = published_key(dest);
        let old = self.published_entry(dest);
        if old.as_ref().is_some_and(|e| e.hash == hash && Path::new(&e.path) == key) {
            return;
        }
        let mut earlier: Vec<String> = old.map(|e| std::iter::once(e.hash).chain(e.earlier).collect()).unwrap_or_default();
        earlier.retain(|h| h != hash);
        earlier.truncate(PUBLISHED_KEPT);
        let e = PublishedEntry { path: key.to_string_lossy().into_owned(), hash: hash.to_string(), earlier };
        let _ = write_atomic(&self.published_path(&key), &serde_json::to_vec(&e).expect("serialises"));
    }

    /// Copies a workspace file about to be replaced into `backups/<time>-<name>`; returns where.
    pub fn backup(&self, file: &Path) -> io::Result<PathBuf> {
        let name = file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "file".into());
        let dest = self.root.join("backups").join(format!("{}-{}-{name}", now() as u64, unique()));
        fs::create_dir_all(dest.parent().expect("has a parent"))?;
        fs::copy(file, &dest)?;
        Ok(dest)
    }

    /// Writes a run record as `runs/<run id>.json` and `runs/latest.json` (the remote gets the
    /// first); returns the local path of the first.
    pub fn write_run(&self, run: &RunRecord) -> Result<PathBuf, StoreError> {
        let bytes = serde_json::to_vec_pretty(run).expect("runs serialise");
        let path = self.root.join(Entry::Run(&run.run_id).rel());
        write_atomic(&path, &bytes).map_err(io_err(&path))?;
        let latest = self.root.join(Entry::LatestRun.rel());
        write_atomic(&latest, &bytes).map_err(io_err(&latest))?;
        if let Some(r) = &self.remote {
            r.put_shared(&Entry::Run(&run.run_id).rel(), bytes)?;
        }
        Ok(path)
    }

    /// Every run record this store holds (and, in front of a remote, the remote's: runs made on
    /// other machines, a Slurm driver or a colleague, reach the remote only), oldest first.
    pub fn runs(&self) -> Vec<RunRecord> {
        let mut out: Vec<RunRecord> = Vec::new();
        for e in fs::read_dir(self.root.join("runs")).into_iter().flatten().flatten() {
            if e.file_name() == "latest.json" {
                continue;
            }
            if let Some(r) = fs::read(e.path()).ok().and_then(|b| serde_json::from_slice::<RunRecord>(&b).ok()) {
                out.push(r);
            }
        }
        if let Some(r) = &self.remote {
            for f in r.list("runs").map(|l| l.0).unwrap_or_default() {
                if !self.root.join(&f.rel).exists() {
                    if let Some(run) = r.get(&f.rel).ok().flatten().and_then(|b| serde_json::from_slice::<RunRecord>(&b).ok()) {
                        out.push(run);
                    }
                }
            }
        }
        out.sort_by(|a, b| a.started_at.total_cmp(&b.started_at).then(a.run_id.cmp(&b.run_id)));
        out
    }

    /// The last run recorded in the local directory (`runs/latest.json`), if there is a readable one.
    pub fn latest_run(&self) -> Option<RunRecord> {
        Self::latest_run_in(&self.root)
    }

    /// The last run recorded in the store folder `root`, without opening (or creating) the store.
    pub fn latest_run_in(root: &Path) -> Option<RunRecord> {
        serde_json::from_slice(&fs::read(root.join(Entry::LatestRun.rel())).ok()?).ok()
    }

    /// A fresh scratch directory for one node execution.
    pub fn scratch(&self, key: &str) -> Result<PathBuf, StoreError> {
        // Unique per call: two nodes with identical keys may run at once.
        let p = self.root.join("tmp").join(format!("{}-{}", &key[..16.min(key.len())], unique()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).map_err(io_err(&p))?;
        Ok(p)
    }

    /// Removes scratch left by killed runs. Call with the lock held.
    pub fn clean_scratch(&self) {
        if let Ok(entries) = fs::read_dir(self.root.join("tmp")) {
            for e in entries.flatten() {
                let _ = fs::remove_dir_all(e.path()).or_else(|_| fs::remove_file(e.path()));
            }
        }
    }

    fn all_records(&self) -> Vec<NodeRecord> {
        let Ok(entries) = fs::read_dir(self.root.join("nodes")) else { return Vec::new() };
        entries.flatten().filter_map(|e| fs::read(e.path()).ok()).filter_map(|b| serde_json::from_slice::<NodeRecord>(&b).ok()).collect()
    }

    /// Keys of every node in the run records started at or after `since` (seconds since the epoch).
    pub fn run_keys_since(&self, since: f64) -> HashSet<String> {
        self.runs().into_iter().filter(|r| r.started_at >= since).flat_map(|r| r.nodes.into_iter().filter_map(|n| n.key)).collect()
    }

    /// Deletes objects no kept record references. With `live`, records whose key is not in it go
    /// first (`pipe gc --records`; the caller decides what is live). With `dry_run`, nothing is
    /// deleted and `removed` lists what would go. Call with the lock held.
    pub fn gc(&self, live: Option<&HashSet<String>>, dry_run: bool) -> Result<GcStats, StoreError> {
        let mut stats = GcStats::default();
        if !dry_run {
            self.clean_scratch();
            // Temp files a crash or a full disk left beside records and run records.
            for dir in ["nodes", "runs", "published", "logs"] {
                for e in fs::read_dir(self.root.join(dir)).into_iter().flatten().flatten() {
                    let name = e.file_name().to_string_lossy().to_string();
                    if name.starts_with('.') && name.ends_with(".tmp") {
                        let _ = fs::remove_file(e.path());
                    }
                }
            }
        }
        let mut recs = self.all_records();
        if let Some(live) = live {
            recs.retain(|r| {
                let keep = live.contains(&r.key);
                if !keep {
                    let size = fs::metadata(self.record_path(&r.key)).map(|m| m.len()).unwrap_or(0);
                    stats.removed.push(format!("record {} ({}, {size} bytes)", &r.key[..12.min(r.key.len())], r.node));
                    if !dry_run {
                        self.remove_record(&r.key);
                    }
                    stats.records_removed += 1;
                    stats.bytes_freed += size;
                }
                keep
            });
        }
        // Failed attempts' logs: with --records, those of keys nothing current uses.
        for e in fs::read_dir(self.root.join("logs")).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(key) = name.strip_suffix(".json") else { continue };
            if live.is_some_and(|l| !l.contains(key)) {
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                stats.removed.push(format!("log of a failed attempt {} ({size} bytes)", &key[..12.min(key.len())]));
                stats.bytes_freed += size;
                if !dry_run {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        let live: HashSet<String> = recs.iter().flat_map(|r| r.outputs.values().map(|o| o.hash.clone())).collect();
        for dir in fs::read_dir(self.root.join("objects")).into_iter().flatten().flatten() {
            for e in fs::read_dir(dir.path()).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let hash = name.split('.').next().unwrap_or_default();
                if !live.contains(hash) {
                    let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                    stats.removed.push(format!("object {name} ({size} bytes)"));
                    if dry_run || fs::remove_file(e.path()).is_ok() {
                        stats.bytes_freed += size;
                        stats.objects_removed += 1;
                    }
                } else {
                    stats.objects_kept += 1;
                }
            }
        }
        for e in fs::read_dir(self.root.join("quarantine")).into_iter().flatten().flatten() {
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            stats.removed.push(format!("quarantined {} ({size} bytes)", e.file_name().to_string_lossy()));
            stats.bytes_freed += size;
            if !dry_run {
                let _ = fs::remove_file(e.path());
            }
        }
        Ok(stats)
    }
}

/// What `pipe push` moved.
#[derive(Debug, Default)]
pub struct PushStats {
    /// Objects uploaded.
    pub objects: usize,
    /// Bytes uploaded, objects only.
    pub bytes: u64,
    /// Node records uploaded.
    pub records: usize,
    /// Refs uploaded.
    pub refs: usize,
    /// Records not pushed because an object they name is missing or corrupt here.
    pub incomplete: Vec<String>,
}

impl Store {
    /// Uploads every record this cache holds that the remote lacks, each after its objects (those
    /// the remote lacks or holds at another size), and the refs. Records whose objects are not
    /// intact here are skipped and listed.
    pub fn push(&self) -> Result<PushStats, StoreError> {
        let mut stats = PushStats::default();
        let Some(r) = &self.remote else { return Ok(stats) };
        for rec in self.all_records() {
            if !is_hash(&rec.key) || check_record(&rec, &rec.key).is_err() {
                continue;
            }
            let rel = Entry::Record(&rec.key).rel();
            if r.size(&rel)?.is_some() {
                continue;
            }
            if let Some((name, _)) = rec.outputs.iter().find(|(_, o)| !matches!(self.verify_local(o), Verify::Ok)) {
                stats.incomplete.push(format!("{} (output `{name}` missing or corrupt here)", rec.node));
                continue;
            }
            for obj in rec.outputs.values() {
                if self.upload(obj)? {
                    stats.objects += 1;
                    stats.bytes += obj.size;
                }
            }
            let bytes = fs::read(self.record_path(&rec.key)).map_err(io_err(&self.record_path(&rec.key)))?;
            r.put(&rel, bytes)?;
            stats.records += 1;
        }
        for ns in fs::read_dir(self.root.join("refs")).into_iter().flatten().flatten() {
            for e in fs::read_dir(ns.path()).into_iter().flatten().flatten() {
                let rel = format!("refs/{}/{}", ns.file_name().to_string_lossy(), e.file_name().to_string_lossy());
                if !rel.ends_with(".json") || r.size(&rel)?.is_some() {
                    continue;
                }
                if let Ok(bytes) = fs::read(e.path()) {
                    r.put(&rel, bytes)?;
                    stats.refs += 1;
                }
            }
        }
        Ok(stats)
    }

    /// Garbage-collects the remote: deletes objects no remote record references (with `live`,
    /// first the records whose key is not in it). Only what is older than `grace_s` seconds goes:
    /// a run elsewhere uploads a node's objects before its record, and must not lose them meanwhile.
    pub fn gc_remote(&self, live: Option<&HashSet<String>>, grace_s: u64) -> Result<GcStats, StoreError> {
        let Some(r) = &self.remote else { return Ok(GcStats::default()) };
        let cutoff = now() as i64 - grace_s as i64;
        let mut stats = GcStats::default();
        let (record_files, _) = r.list("nodes")?;
        let mut recs: Vec<(crate::remote::Listed, NodeRecord)> = Vec::new();
        for f in record_files {
            match r.get(&f.rel)?.map(|b| serde_json::from_slice::<NodeRecord>(&b)) {
                Some(Ok(rec)) => recs.push((f, rec)),
                // An unreadable record protects nothing; a vanished one was just deleted.
                Some(Err(e)) => tracing::warn!(record = %f.rel, "unreadable remote record ignored by gc: {e}"),
                None => {}
            }
        }
        if let Some(current) = live {
            let mut kept = Vec::new();
            for (f, rec) in recs {
                if current.contains(&rec.key) || f.modified > cutoff {
                    kept.push((f, rec));
                } else {
                    r.delete(&f.rel)?;
                    stats.records_removed += 1;
                }
            }
            recs = kept;
        }
        let live: HashSet<&str> = recs.iter().flat_map(|(_, rec)| rec.outputs.values().map(|o| o.hash.as_str())).collect();
        let (_, shards) = r.list("objects")?;
        for shard in shards {
            for f in r.list(shard.trim_end_matches('/'))?.0 {
                let name = f.rel.rsplit('/').next().unwrap_or_default();
                let hash = name.split('.').next().unwrap_or_default();
                if live.contains(hash) || f.modified > cutoff {
                    stats.objects_kept += 1;
                } else {
                    r.delete(&f.rel)?;
                    stats.objects_removed += 1;
                    stats.bytes_freed += f.size;
                }
            }
        }
        Ok(stats)
    }
}

/// What a garbage collection ([`Store::gc`], [`Store::gc_remote`]) removed, or in a dry run would remove.
#[derive(Debug, Default)]
pub struct GcStats {
    /// Objects removed.
    pub objects_removed: usize,
    /// Objects kept: a kept record names them (on a remote, also those younger than the grace period).
    pub objects_kept: usize,
    /// Node records removed.
    pub records_removed: usize,
    /// Bytes freed: objects, and locally also removed records and quarantined files.
    pub bytes_freed: u64,
    /// One line per record, object or quarantined file removed (or, in a dry run, to be removed).
    pub removed: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_folds_into_its_status_summary_and_exit_code() {
        let node = |state| RunNode {
            node: "n".into(),
            stage: "s".into(),
            state,
            duration_s: 0.0,
            key: None,
            error: None,
            resumed_from: None,
            failure: None,
        };
        let t = Tally::of(&[node(RunState::Ran), node(RunState::Cached), node(RunState::Cached), node(RunState::Failed), node(RunState::Skipped)]);
        assert_eq!(t.to_string(), "1 ran, 2 cached, 1 failed, 1 skipped, 0 cancelled");
        assert_eq!((t.status(false), t.status(false).exit_code()), (RunStatus::Failed, 4));
        assert_eq!((t.status(true).as_str(), t.status(true).exit_code()), ("interrupted", 130));
        assert_eq!(Tally::of(&[node(RunState::Cached)]).status(false).exit_code(), 0);
    }

    /// Run records written before failures were typed (no `failure`) still load; new ones add
    /// the field beside `error`, which keeps its rendered text, and only where a node failed.
    #[test]
    fn run_records_of_the_old_shape_still_load() {
        let old = r#"{"run_id":"1-2","pipeline":"p","file":"p.yaml","started_at":1.0,"duration_s":2.0,"jobs":1,"status":"failed",
            "nodes":[{"node":"a","stage":"a","state":"failed","duration_s":0.5,"key":"k","error":"boom"},
                     {"node":"b","stage":"b","state":"skipped","duration_s":0.0,"key":null,"error":"upstream a did not complete"}]}"#;
        let r: RunRecord = serde_json::from_str(old).unwrap();
        assert_eq!((r.nodes[0].error.as_deref(), &r.nodes[0].failure), (Some("boom"), &None));
        assert_eq!(failures_by_kind(&r.nodes), BTreeMap::from([(FailureKind::Other, 1)]));
        let mut a = r.nodes[0].clone();
        a.failure = Some(FailureRecord { kind: FailureKind::KeyMismatch, message: "boom".into(), hint: Some("run it again".into()) });
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(
            json,
            r#"{"node":"a","stage":"a","state":"failed","duration_s":0.5,"key":"k","error":"boom","failure":{"kind":"key_mismatch","message":"boom","hint":"run it again"}}"#
        );
        assert!(!serde_json::to_string(&r.nodes[1]).unwrap().contains("failure"));
        // A kind a later version records reads as `other`, not as an unreadable record.
        let later: RunNode = serde_json::from_str(&json.replace("key_mismatch", "quota")).unwrap();
        assert_eq!(later.failure.map(|f| f.kind), Some(FailureKind::Other));
    }

    /// Pins the layout: stores written by earlier versions (and remotes shared with them) must be
    /// read at the same paths.
    #[test]
    fn the_layout_is_pinned() {
        let (a, c) = ("ab".repeat(32), "cd".repeat(32));
        let obj = ObjectRef { hash: a.clone(), ext: "parquet".into(), size: 1 };
        assert_eq!(Entry::Object(&obj).rel(), format!("objects/ab/{a}.parquet"));
        let bare = ObjectRef { ext: String::new(), ..obj.clone() };
        assert_eq!(Entry::Object(&bare).rel(), format!("objects/ab/{a}"));
        let evil = ObjectRef { hash: "../../etc".into(), ..obj };
        assert_eq!(Entry::Object(&evil).rel(), "objects/invalid/invalid");
        assert_eq!(Entry::Record(&c).rel(), format!("nodes/{c}.json"));
        assert_eq!(Entry::Record("../x").rel(), "nodes/invalid.json");
        let node = &blake3::hash(b"train[mu2=0.5]").to_hex()[..32];
        assert_eq!(Entry::Ref { pipeline: "0123abcd", node: "train[mu2=0.5]" }.rel(), format!("refs/0123abcd/{node}.json"));
        let ns = &blake3::hash(b"../escape").to_hex()[..32];
        assert_eq!(Entry::Ref { pipeline: "../escape", node: "train[mu2=0.5]" }.rel(), format!("refs/{ns}/{node}.json"));
        assert_eq!(Entry::Run("1796-42").rel(), "runs/1796-42.json");
        assert_eq!(Entry::LatestRun.rel(), "runs/latest.json");
        assert_eq!(Entry::Task(&c).rel(), format!("tasks/{c}.json"));
        assert_eq!(Entry::TaskFailure(&c).rel(), format!("tasks/{c}.failed.json"));
        let dest = Path::new("/w/results/quick.parquet");
        let h = &blake3::hash(dest.as_os_str().as_encoded_bytes()).to_hex()[..32];
        assert_eq!(Entry::Published(dest).rel(), format!("published/{h}.json"));
        let rel = Path::new("results/quick.parquet");
        let h = &blake3::hash(b"results/quick.parquet").to_hex()[..32];
        assert_eq!(Entry::Published(rel).rel(), format!("published/{h}.json"));
    }

    /// A published file is remembered by its path relative to the workspace (the current
    /// directory), one outside it by its absolute path; an earlier version's entry (at the
    /// absolute path) is still read, and every hash pipe wrote at a path counts as pipe's.
    #[test]
    fn published_files_are_keyed_by_workspace_path() {
        let ws = std::env::current_dir().unwrap();
        assert_eq!(published_key(&ws.join("results/quick.parquet")), Path::new("results/quick.parquet"));
        assert_eq!(published_key(Path::new("results/./x/../quick.parquet")), Path::new("results/quick.parquet"));
        let dir = std::env::temp_dir().join(format!("pipe-published-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = Store::open(dir.join("store")).unwrap();
        let outside = dir.join("report.html");
        assert_eq!(published_key(&outside), outside);

        let (h1, h2) = ("1".repeat(64), "2".repeat(64));
        let inside = ws.join("no-such-dir/out.txt");
        store.set_published(&inside, &h1);
        let entry: serde_json::Value = serde_json::from_slice(&fs::read(store.published_path(Path::new("no-such-dir/out.txt"))).unwrap()).unwrap();
        assert_eq!(entry["path"], "no-such-dir/out.txt");
        assert_eq!(store.published_hash(Path::new("no-such-dir/out.txt")).as_deref(), Some(h1.as_str()));

        // An entry written by an earlier version: read where it is, ignored when it names another path.
        let old = ws.join("old/out.txt");
        let legacy = |path: &Path| serde_json::to_vec(&serde_json::json!({"path": path.display().to_string(), "hash": h2})).unwrap();
        write_atomic(&store.published_path(&old), &legacy(&old)).unwrap();
        assert_eq!(store.published_hash(&old).as_deref(), Some(h2.as_str()));
        write_atomic(&store.published_path(&old), &legacy(Path::new("/elsewhere/out.txt"))).unwrap();
        assert_eq!(store.published_hash(&old), None);

        // Two hashes written at one path: the one the file holds counts, else the last.
        fs::write(&outside, b"first").unwrap();
        let first = hash_file(&outside).unwrap();
        store.set_published(&outside, &first);
        store.set_published(&outside, &h2);
        assert_eq!(store.published_hash(&outside), Some(first));
        fs::write(&outside, b"by hand").unwrap();
        assert_eq!(store.published_hash(&outside), Some(h2));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn put_verify_corrupt_quarantine() {
        let dir = std::env::temp_dir().join(format!("pipe-store-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let src = dir.join("x.txt");
        fs::write(&src, b"hello").unwrap();
        let obj = store.put_file(&src).unwrap();
        assert_eq!(obj.ext, "txt");
        assert!(matches!(store.verify(&obj), Verify::Ok));
        let path = store.object_path(&obj);
        let mut perms = fs::metadata(&path).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        fs::set_permissions(&path, perms).unwrap();
        fs::write(&path, b"hellp").unwrap();
        assert!(matches!(store.verify(&obj), Verify::Corrupt { .. }));
        assert!(store.quarantine(&obj).is_some());
        assert!(matches!(store.verify(&obj), Verify::Missing));
        fs::remove_dir_all(&dir).unwrap();
    }
}
