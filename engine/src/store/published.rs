//! What pipe published into the workspace (`published/<hash of path>.json`), so a hand edit is
//! noticed, and backups (`backups/`) of workspace files about to be replaced.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{now, unique, write_atomic, Entry, Store};
use crate::hash::hash_file;

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

impl Store {
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
        let dest = self.path(Entry::Backup(&format!("{}-{}-{name}", now() as u64, unique())));
        fs::create_dir_all(dest.parent().expect("has a parent"))?;
        fs::copy(file, &dest)?;
        Ok(dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
