//! The content-addressed artifact store: immutable objects, node records, refs, run records, a lock.
//!
//! Layout under the store root (default `artifacts/`; [`Entry`] is the one description of it):
//! `objects/<aa>/<blake3>[.ext]` immutable outputs; `nodes/<key>.json` one record per executed key;
//! `refs/<pipeline>/<hash of node id>.json` the last key of each node (for "why is it stale?");
//! `runs/<run id>.json` + `runs/latest.json`; `tmp/` scratch; `quarantine/` corrupt objects; `lock`
//! (shared by runs, held alone by gc); `claims/<key>.json` the run computing a key now;
//! `tasks/<key>.json` work handed to another machine, `tasks/<key>.failed.json` its failure.
//!
//! With a [`Remote`] (S3, or a shared directory) the local directory becomes a read-through cache:
//! records, refs and objects missing here are fetched from the remote (objects verified by hash), and
//! everything written here is also uploaded, objects before the record that names them.

mod claims;
pub(crate) mod error;
mod gc;
mod objects;
mod published;
mod records;
mod runs;

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use claims::{Claim, ClaimInfo, Claimed};
pub use error::StoreError;
pub use gc::{GcStats, PushStats};
pub use objects::{ObjectRef, Verify};
pub use published::published_key;
pub use records::{Attempt, NodeRecord, RefEntry};
pub use runs::{failures_by_kind, FailureKind, FailureRecord, RunNode, RunRecord, RunState, RunStatus, Tally};

use crate::hash::hash_file;
use crate::remote::Remote;
use error::io_err;

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
    /// `claims/<key>.json`: the run computing a key now, locked while it does ([`Claim`]).
    Claim(&'a str),
    /// `tmp/<name>`: scratch (a node's working directory, an object being fetched).
    Tmp(&'a str),
    /// `quarantine/<name>`: a corrupt object moved aside.
    Quarantined(&'a str),
    /// `backups/<name>`: a workspace file pipe was about to replace.
    Backup(&'a str),
    /// `lock`: held by the process running or collecting garbage.
    Lock,
    /// A folder holding one kind of entry.
    Dir(Dir),
}

/// The folders of a store, each holding one kind of [`Entry`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// `objects/`: [`Entry::Object`], in one subfolder per first two hex digits.
    Objects,
    /// `nodes/`: [`Entry::Record`].
    Nodes,
    /// `refs/`: [`Entry::Ref`], in one subfolder per pipeline namespace.
    Refs,
    /// `runs/`: [`Entry::Run`] and [`Entry::LatestRun`].
    Runs,
    /// `tmp/`: [`Entry::Tmp`].
    Tmp,
    /// `quarantine/`: [`Entry::Quarantined`].
    Quarantine,
    /// `published/`: [`Entry::Published`].
    Published,
    /// `logs/`: [`Entry::Attempt`].
    Logs,
    /// `tasks/`: [`Entry::Task`] and [`Entry::TaskFailure`].
    Tasks,
    /// `checkpoints/`: [`Entry::Checkpoints`], one folder per prefix.
    Checkpoints,
    /// `running/`: [`Entry::Running`].
    Running,
    /// `backups/`: [`Entry::Backup`].
    Backups,
    /// `claims/`: [`Entry::Claim`].
    Claims,
}

impl Dir {
    /// The folder's name under the store root (and a remote's prefix).
    pub const fn name(self) -> &'static str {
        match self {
            Dir::Objects => "objects",
            Dir::Nodes => "nodes",
            Dir::Refs => "refs",
            Dir::Runs => "runs",
            Dir::Tmp => "tmp",
            Dir::Quarantine => "quarantine",
            Dir::Published => "published",
            Dir::Logs => "logs",
            Dir::Tasks => "tasks",
            Dir::Checkpoints => "checkpoints",
            Dir::Running => "running",
            Dir::Backups => "backups",
            Dir::Claims => "claims",
        }
    }
}

impl Entry<'_> {
    /// The folders every store has.
    pub const FOLDERS: [&'static str; 6] =
        [Dir::Objects.name(), Dir::Nodes.name(), Dir::Refs.name(), Dir::Runs.name(), Dir::Tmp.name(), Dir::Quarantine.name()];

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
            Entry::Claim(key) => format!("claims/{}.json", if is_hash(key) { key } else { "invalid" }),
            Entry::Published(dest) => format!("published/{}.json", &blake3::hash(dest.as_os_str().as_encoded_bytes()).to_hex()[..32]),
            Entry::Tmp(name) => format!("tmp/{name}"),
            Entry::Quarantined(name) => format!("quarantine/{name}"),
            Entry::Backup(name) => format!("backups/{name}"),
            Entry::Lock => "lock".to_string(),
            Entry::Dir(dir) => dir.name().to_string(),
        }
    }
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
    file: File,
    exclusive: bool,
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        if self.exclusive {
            let _ = self.file.set_len(0);
        }
    }
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

    /// Where `entry` is (or would be) in the local directory.
    fn path(&self, entry: Entry) -> PathBuf {
        self.root.join(entry.rel())
    }

    /// Where the artifacts live, for messages.
    pub fn describe(&self) -> String {
        match &self.remote {
            Some(r) => format!("{} (cache {})", r.url(), self.root.display()),
            None => self.root.display().to_string(),
        }
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

    /// Takes the store's lock alone (`pipe gc`: nothing runs while it deletes), calling `on_wait`
    /// once if runs hold it; what it waits for is said by its caller.
    pub fn lock(&self, on_wait: impl FnOnce(&str)) -> Result<StoreLock, StoreError> {
        self.take_lock(true, on_wait)
    }

    /// Takes the store's lock beside other runs (each node a run computes is claimed on its own,
    /// [`Store::claim`]), calling `on_wait` once with the holder if `pipe gc` holds it alone.
    pub fn lock_shared(&self, on_wait: impl FnOnce(&str)) -> Result<StoreLock, StoreError> {
        self.take_lock(false, on_wait)
    }

    fn take_lock(&self, exclusive: bool, on_wait: impl FnOnce(&str)) -> Result<StoreLock, StoreError> {
        let path = self.path(Entry::Lock);
        let mut file = OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&path).map_err(io_err(&path))?;
        let tried = if exclusive { file.try_lock() } else { file.try_lock_shared() };
        match tried {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&path).unwrap_or_default();
                on_wait(holder.trim());
                if exclusive { file.lock() } else { file.lock_shared() }.map_err(io_err(&path))?;
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_err(&path)(e)),
        }
        // Only a sole holder says who it is (for a run waiting on it).
        if exclusive {
            let _ = file.set_len(0);
            let _ = write!(file, "pid {}", std::process::id());
        }
        Ok(StoreLock { file, exclusive })
    }

    /// A fresh scratch directory for one node execution.
    pub fn scratch(&self, key: &str) -> Result<PathBuf, StoreError> {
        // Unique per call: two nodes with identical keys may run at once.
        let p = self.path(Entry::Tmp(&format!("{}-{}", &key[..16.min(key.len())], unique())));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).map_err(io_err(&p))?;
        Ok(p)
    }

    /// Removes scratch left by runs that were killed: with the lock held alone (`gc`), all of it;
    /// beside other runs, only what no live process on this machine owns (scratch names end in
    /// `<pid>-<n>`, [`unique`]).
    pub fn clean_scratch(&self, alone: bool) {
        let Ok(entries) = fs::read_dir(self.path(Entry::Dir(Dir::Tmp))) else { return };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let owner = name.rsplit('-').nth(1).and_then(|p| p.parse::<i32>().ok());
            let owned =
                owner.is_some_and(|pid| pid as u32 == std::process::id() || nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok());
            if alone || !owned {
                let _ = fs::remove_dir_all(e.path()).or_else(|_| fs::remove_file(e.path()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(Entry::Tmp("fetch-1").rel(), "tmp/fetch-1");
        assert_eq!(Entry::Quarantined("x.txt.9").rel(), "quarantine/x.txt.9");
        assert_eq!(Entry::Backup("9-1-out.txt").rel(), "backups/9-1-out.txt");
        assert_eq!(Entry::Lock.rel(), "lock");
        assert_eq!(Entry::Claim(&"a".repeat(64)).rel(), format!("claims/{}.json", "a".repeat(64)));
        assert_eq!(Entry::Claim("../x").rel(), "claims/invalid.json");
        let dirs = [
            Dir::Objects,
            Dir::Nodes,
            Dir::Refs,
            Dir::Runs,
            Dir::Tmp,
            Dir::Quarantine,
            Dir::Published,
            Dir::Logs,
            Dir::Tasks,
            Dir::Checkpoints,
            Dir::Running,
            Dir::Backups,
            Dir::Claims,
        ];
        let names: Vec<String> = dirs.map(|d| Entry::Dir(d).rel()).into();
        assert_eq!(
            names,
            ["objects", "nodes", "refs", "runs", "tmp", "quarantine", "published", "logs", "tasks", "checkpoints", "running", "backups", "claims"]
        );
        assert_eq!(Entry::FOLDERS, ["objects", "nodes", "refs", "runs", "tmp", "quarantine"]);
    }
}
