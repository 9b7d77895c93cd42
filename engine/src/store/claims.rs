//! Claims: which run is computing which key, so that several runs share one store (Nix's and
//! Bazel's per-output locks). A run claims a key before computing it: `claims/<key>.json`, held
//! with an exclusive `flock` for as long as the node runs and describing its holder (run, host,
//! process, since, and the Slurm job computing it, if one is). Another run needing the same key
//! waits for THAT key, then finds its result cached; disjoint work goes on in parallel.
//!
//! The operating system releases a claim whose process died (`kill -9`, a lost login), so a dead
//! run's claim is taken over at once; its description stays readable to the next holder (a Slurm
//! driver adopts the job a dead driver left running: [`Claim::previous`]). A claim file is removed
//! before it is unlocked, and a claim taken on a file that is no longer at its path is retried, so
//! two runs never both hold one key.
//!
//! Claims live where every run that shares the store sees them: in the store's directory, or, for
//! a `file://` remote (a shared folder), in that folder, so runs on several machines with caches
//! of their own never compute one key twice (file locks over NFSv4 or Lustre mounted with
//! `flock`). Where the shared folder refuses a claim (read-only) the local cache holds it. An S3
//! remote has no locks: runs on different machines may then compute one key twice (the same
//! bytes; nothing is lost).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::error::io_err;
use super::{Dir, Entry, Store, StoreError};

/// Who holds a claim: what `pipe status` shows for a running node.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ClaimInfo {
    /// The node's id.
    pub node: String,
    /// The run computing it (its run record's id).
    pub run: String,
    /// The machine it runs on.
    pub host: String,
    /// Its process id there.
    pub pid: u32,
    /// When it claimed the key, seconds since the Unix epoch.
    pub since: f64,
    /// The Slurm job computing the node for it, once submitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
}

/// A held claim on one key; released (its file removed, then unlocked) on drop.
pub struct Claim {
    file: File,
    path: PathBuf,
    info: std::sync::Mutex<ClaimInfo>,
    previous: Option<ClaimInfo>,
}

impl Claim {
    /// What the last holder of this key's claim wrote, where it died holding it (a Slurm driver
    /// killed while its job ran): its job may still be running.
    pub fn previous(&self) -> Option<&ClaimInfo> {
        self.previous.as_ref()
    }

    /// Records the Slurm job now computing the node, so a driver started after this one dies
    /// adopts it instead of submitting the node again.
    pub fn set_job(&self, job: Option<&str>) {
        let mut info = self.info.lock().unwrap_or_else(|e| e.into_inner());
        info.job = job.map(str::to_string);
        let _ = write_info(&self.file, &info);
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        // Removed before unlocked: a waiter that opened this file finds it gone and retries.
        let _ = fs::remove_file(&self.path);
    }
}

fn write_info(mut file: &File, info: &ClaimInfo) -> std::io::Result<()> {
    file.set_len(0)?;
    file.rewind()?;
    file.write_all(&serde_json::to_vec_pretty(info).expect("claims serialise"))?;
    file.flush()
}

fn read_info(mut file: &File) -> Option<ClaimInfo> {
    let mut s = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut s).ok()?;
    serde_json::from_str(&s).ok()
}

/// Whether a claim attempt got the key.
pub enum Claimed {
    /// Ours until dropped.
    Held(Claim),
    /// Another live process holds it (what it says of itself, when readable).
    Busy(Option<ClaimInfo>),
}

impl Store {
    /// Tries once to claim `key` for `info`'s run.
    ///
    /// # Errors
    /// The claims folder or file cannot be created or locked (a read-only store, a full disk).
    pub fn try_claim(&self, key: &str, info: &ClaimInfo) -> Result<Claimed, StoreError> {
        if let Some(shared) = self.remote().and_then(|r| r.shared_dir()) {
            let path = shared.join(Entry::Claim(key).rel());
            if path.parent().is_some_and(|d| fs::create_dir_all(d).is_ok()) {
                if let Ok(claimed) = claim_at(path, info) {
                    return Ok(claimed);
                }
            }
        }
        let path = self.path(Entry::Claim(key));
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        claim_at(path, info)
    }

    /// The claims held now (by live processes), for `pipe status`: a claim file whose lock is
    /// free belongs to no one.
    pub fn claims(&self) -> Vec<(String, ClaimInfo)> {
        let rel = Entry::Dir(Dir::Claims).rel();
        let shared = self.remote().and_then(|r| r.shared_dir()).map(|d| d.join(&rel));
        let mut held = Vec::new();
        for e in [Some(self.root().join(&rel)), shared].into_iter().flatten().flat_map(fs::read_dir).flatten().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(key) = name.strip_suffix(".json") else { continue };
            let Ok(file) = File::open(e.path()) else { continue };
            // Free (its holder died, or is between open and lock): not a claim.
            if file.try_lock_shared().is_ok() {
                continue;
            }
            if let Some(info) = read_info(&file) {
                held.push((key.to_string(), info));
            }
        }
        held.sort_by(|a, b| a.1.since.total_cmp(&b.1.since));
        held
    }
}

/// [`Store::try_claim`] at `path`.
fn claim_at(path: PathBuf, info: &ClaimInfo) -> Result<Claimed, StoreError> {
    loop {
        let file = OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&path).map_err(io_err(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Ok(Claimed::Busy(read_info(&file))),
            Err(fs::TryLockError::Error(e)) => return Err(io_err(&path)(e)),
        }
        // Locked, but is it still the file at the path? Its holder may have removed it (and
        // another run made a new one) between our open and our lock.
        let same = match (file.metadata(), fs::metadata(&path)) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        };
        if !same {
            continue;
        }
        let previous = read_info(&file);
        write_info(&file, info).map_err(io_err(&path))?;
        return Ok(Claimed::Held(Claim { file, path, info: std::sync::Mutex::new(info.clone()), previous }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    fn store(name: &str) -> (PathBuf, Store) {
        let dir = std::env::temp_dir().join(format!("pipe-claims-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        (dir.clone(), Store::open(&dir).unwrap())
    }

    fn info(run: &str) -> ClaimInfo {
        ClaimInfo { node: "n".into(), run: run.into(), host: "h".into(), pid: std::process::id(), since: 1.0, job: None }
    }

    const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// One holder at a time; the second sees the first's description; after release the key is
    /// free, its file gone, and the next holder sees no previous holder.
    #[test]
    fn one_holder_at_a_time() {
        let (dir, s) = store("one");
        let Claimed::Held(a) = s.try_claim(KEY, &info("a")).unwrap() else { panic!("free key") };
        match s.try_claim(KEY, &info("b")).unwrap() {
            Claimed::Busy(Some(holder)) => assert_eq!(holder.run, "a"),
            _ => panic!("a holds it"),
        }
        assert_eq!(s.claims().iter().map(|(k, i)| (k.as_str(), i.run.as_str())).collect::<Vec<_>>(), [(KEY, "a")]);
        drop(a);
        assert!(!s.path(Entry::Claim(KEY)).exists());
        assert!(s.claims().is_empty());
        let Claimed::Held(b) = s.try_claim(KEY, &info("b")).unwrap() else { panic!("released") };
        assert!(b.previous().is_none());
        drop(b);
        let _ = fs::remove_dir_all(dir);
    }

    /// A claim file left by a holder that died (unlocked, not removed) is taken over, and its
    /// description (the Slurm job it had submitted) handed to the new holder.
    #[test]
    fn a_dead_holders_claim_is_taken_over_with_its_description() {
        let (dir, s) = store("dead");
        let path = s.path(Entry::Claim(KEY));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let dead = ClaimInfo { job: Some("42".into()), ..info("dead") };
        fs::write(&path, serde_json::to_vec(&dead).unwrap()).unwrap();
        assert!(s.claims().is_empty(), "an unlocked file is no claim");
        let Claimed::Held(c) = s.try_claim(KEY, &info("new")).unwrap() else { panic!("a dead holder's claim is free") };
        assert_eq!(c.previous(), Some(&dead));
        c.set_job(Some("43"));
        assert_eq!(s.claims()[0].1.job.as_deref(), Some("43"));
        drop(c);
        let _ = fs::remove_dir_all(dir);
    }

    /// Many threads racing for one key, each holding it briefly: never two at once.
    #[test]
    fn racing_claimers_never_overlap() {
        let (dir, s) = store("race");
        let inside = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|sc| {
            for t in 0..8 {
                let (s, inside) = (&s, &inside);
                sc.spawn(move || {
                    for _ in 0..20 {
                        let c = loop {
                            match s.try_claim(KEY, &info(&t.to_string())).unwrap() {
                                Claimed::Held(c) => break c,
                                Claimed::Busy(_) => std::thread::yield_now(),
                            }
                        };
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders at once");
                        std::thread::sleep(Duration::from_micros(200));
                        inside.fetch_sub(1, Ordering::SeqCst);
                        drop(c);
                    }
                });
            }
        });
        let _ = fs::remove_dir_all(dir);
    }
}
