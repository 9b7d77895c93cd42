//! Training checkpoints in the store, keyed by the node's fingerprint without its horizon.
//!
//! A kind marks the param that only says how far to train ([`ParamSpec::horizon`], `epochs`).
//! Its checkpoints live in `checkpoints/<prefix>/`, where the prefix is the key of the node's
//! fingerprint with that param left out: every other param (learning rate, milestones, seed),
//! every input's content, the kind's version and environment are in it, so a checkpoint is only
//! ever resumed by a node whose training up to that epoch is the same computation. A node whose
//! key misses resumes from the latest checkpoint at or below its `epochs`
//! (`epoch-N.safetensors` when a run completed at N, `epoch-N.partial.safetensors` saved on the
//! way by a run that was stopped); the kind's training code writes and reads them.
//!
//! With a remote store (S3, a shared folder behind a node-local cache) the checkpoints live on
//! the remote too, under the same `checkpoints/<prefix>/`: a [`Mirror`] started beside the
//! training fetches the one it resumes from (when the remote has a later one than the cache)
//! and uploads each new one within a second of its save, so a Slurm job killed at its time limit,
//! or a machine lost, leaves its progress where the next attempt, on any machine, finds it.
//!
//! [`ParamSpec::horizon`]: crate::stage::ParamSpec::horizon

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::hash::Fingerprint;
use crate::stage::ParamSpec;
use crate::store::{Dir, Entry, Store};
use crate::value::Value;

/// Where a node's checkpoints are, as its job carries them to the kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoints {
    /// `<store>/checkpoints/<prefix>`: the kind saves and loads here (creating it as needed).
    pub dir: PathBuf,
    /// Whether the kind may resume from what it finds (`false` with `pipe run -f` or
    /// `--no-resume`: it starts over, and its new checkpoints replace the old).
    pub resume: bool,
    /// The node's horizon (`epochs`), when a whole number: what it may resume from is at or below it.
    #[serde(default)]
    pub epochs: Option<u64>,
}

/// The horizon param of a kind (`epochs`), if it has one.
pub fn horizon(params: &[ParamSpec]) -> Option<&str> {
    params.iter().find(|p| p.horizon).map(|p| p.name.as_str())
}

/// The prefix key: the key of `fp` without the horizon param `horizon`.
pub fn prefix_key(fp: &Fingerprint, horizon: &str) -> String {
    let mut fp = fp.clone();
    fp.params.remove(horizon);
    fp.key()
}

/// `checkpoints/<prefix>` under the store root `root`.
pub fn dir(root: &Path, prefix: &str) -> PathBuf {
    root.join(Entry::Checkpoints(prefix).rel())
}

/// One checkpoint file in a node's checkpoint folder.
#[derive(Clone, Debug, PartialEq)]
pub struct Saved {
    /// The epoch it was saved after (1-based: after epoch N, N epochs were trained).
    pub epoch: u64,
    /// Saved at the end of a completed run (`epoch-N.safetensors`), not on the way.
    pub completed: bool,
    /// The file.
    pub path: PathBuf,
}

/// Parses `epoch-N.safetensors` / `epoch-N.partial.safetensors`.
fn parse(name: &str) -> Option<(u64, bool)> {
    let rest = name.strip_prefix("epoch-")?;
    if let Some(n) = rest.strip_suffix(".partial.safetensors") {
        return Some((n.parse().ok()?, false));
    }
    Some((rest.strip_suffix(".safetensors")?.parse().ok()?, true))
}

/// Every checkpoint in `dir`, by epoch (an absent folder holds none).
pub fn saved(dir: &Path) -> Vec<Saved> {
    let mut out: Vec<Saved> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let (epoch, completed) = parse(&e.file_name().to_string_lossy())?;
            Some(Saved { epoch, completed, path: e.path() })
        })
        .collect();
    out.sort_by_key(|s| (s.epoch, s.completed));
    out
}

/// The checkpoint a node training for `epochs` resumes from: the latest at or below it.
pub fn latest(dir: &Path, epochs: u64) -> Option<Saved> {
    saved(dir).into_iter().rev().find(|s| s.epoch <= epochs && s.epoch > 0)
}

/// A node's checkpoint folder (`None` when its kind has no horizon param), and, where it may
/// `resume`, what it would resume from: `(epoch, epochs)` when its `epochs` is a whole number and
/// a checkpoint at or below it exists, in the store's folder or on its remote (listed, not fetched:
/// the [`Mirror`] beside the training fetches it).
pub fn for_node(store: &Store, fp: &Fingerprint, params: &[ParamSpec], resume: bool) -> Option<(Checkpoints, Option<(u64, u64)>)> {
    let h = horizon(params)?;
    let prefix = prefix_key(fp, h);
    let dir = dir(store.root(), &prefix);
    let epochs = match fp.params.get(h) {
        Some(Value::Int(n)) if *n > 0 => Some(*n as u64),
        _ => None,
    };
    let point = match epochs {
        Some(n) if resume => {
            let local = latest(&dir, n).map(|s| s.epoch);
            let remote = remote_saved(store, &prefix).into_iter().rev().find(|s| s.epoch <= n && s.epoch > 0).map(|s| s.epoch);
            local.max(remote).map(|e| (e, n))
        }
        _ => None,
    };
    Some((Checkpoints { dir, resume, epochs }, point))
}

/// The checkpoint prefix of a node (the key of its fingerprint without the horizon), `None` when
/// its kind has no horizon param: two runs training the same prefix share its checkpoints, so
/// one claims it while it trains ([`crate::store::Claim`]).
pub fn prefix(fp: &Fingerprint, params: &[ParamSpec]) -> Option<String> {
    Some(prefix_key(fp, horizon(params)?))
}

/// What a node whose key missed would resume from (see [`for_node`]).
pub fn resume_point(store: &Store, fp: &Fingerprint, params: &[ParamSpec]) -> Option<(u64, u64)> {
    for_node(store, fp, params, true)?.1
}

/// The checkpoints of `prefix` on the store's remote that are whole there (the file and its
/// `.sha256`), by epoch; none without a remote or when it cannot be listed (the node then starts
/// from what the cache holds, which loses time, never a result).
fn remote_saved(store: &Store, prefix: &str) -> Vec<Saved> {
    let Some(remote) = store.remote() else { return Vec::new() };
    let rel = Entry::Checkpoints(prefix).rel();
    let listed = match remote.list(&rel) {
        Ok((objects, _)) => objects,
        Err(e) => {
            tracing::warn!(prefix, "cannot list the remote's checkpoints: {}", crate::error::render(&e));
            return Vec::new();
        }
    };
    let names: std::collections::HashSet<String> = listed.iter().filter_map(|l| l.rel.rsplit('/').next().map(str::to_string)).collect();
    let mut out: Vec<Saved> = names
        .iter()
        .filter(|n| names.contains(&format!("{n}.sha256")))
        .filter_map(|n| {
            let (epoch, completed) = parse(n)?;
            Some(Saved { epoch, completed, path: PathBuf::from(format!("{rel}/{n}")) })
        })
        .collect();
    out.sort_by_key(|s| (s.epoch, s.completed));
    out
}

/// Keeps a training's checkpoint folder and the store's remote in step while the training runs
/// (nothing to do without a remote): started before the kind runs, it fetches the checkpoint the
/// node resumes from when the remote's is later than the cache's; then a thread uploads each
/// checkpoint the training saves (the file, then its `.sha256`, so a checkpoint whole on the
/// remote is never a partly uploaded one) and deletes from the remote the partial ones the
/// training superseded. Dropping it stops the thread after a last pass, so a training that ended
/// or was interrupted (Ctrl-C, a Slurm time limit's SIGTERM) leaves its last checkpoint on the
/// remote; after a `kill -9`, what was saved a second before is there.
pub struct Mirror {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How often a [`Mirror`] looks for new checkpoints.
const MIRROR_EVERY: Duration = Duration::from_millis(500);

impl Mirror {
    /// Starts mirroring `ck` for a node whose store is `store`; `None` without a remote. Fetch
    /// and upload failures are logged and cost only progress (the next attempt starts earlier).
    pub fn start(store: &Store, ck: &Checkpoints) -> Option<Mirror> {
        let remote = store.remote_shared()?;
        let prefix = ck.dir.file_name()?.to_string_lossy().to_string();
        let rel = Entry::Checkpoints(&prefix).rel();
        if ck.resume {
            if let Some(n) = ck.epochs {
                fetch(store, &prefix, &ck.dir, n);
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let dir = ck.dir.clone();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("checkpoint-mirror".into())
            .spawn(move || {
                // What the remote holds as this folder does: name -> (size, modified) uploaded.
                let mut sent: BTreeMap<String, (u64, SystemTime)> = listing(&dir).into_iter().collect();
                loop {
                    let last = flag.load(Ordering::SeqCst);
                    sync(&remote, &rel, &dir, &mut sent);
                    if last {
                        break;
                    }
                    std::thread::park_timeout(MIRROR_EVERY);
                }
            })
            .ok()?;
        Some(Mirror { stop, thread: Some(thread) })
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// The checkpoint files in `dir` with their size and modification time.
fn listing(dir: &Path) -> Vec<(String, (u64, SystemTime))> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            parse(&name)?;
            let m = e.metadata().ok()?;
            Some((name, (m.len(), m.modified().ok()?)))
        })
        .collect()
}

/// One pass of a [`Mirror`]: uploads what changed since `sent`, deletes on the remote what the
/// training removed here.
fn sync(remote: &crate::remote::Remote, rel: &str, dir: &Path, sent: &mut BTreeMap<String, (u64, SystemTime)>) {
    let now = listing(dir);
    for (name, stamp) in &now {
        if sent.get(name) == Some(stamp) {
            continue;
        }
        let side = format!("{name}.sha256");
        if !dir.join(&side).is_file() {
            continue; // the training writes it first; the next pass sees both
        }
        let up =
            remote.put_file(&format!("{rel}/{name}"), &dir.join(name)).and_then(|()| remote.put_file(&format!("{rel}/{side}"), &dir.join(&side)));
        match up {
            Ok(()) => {
                tracing::debug!(checkpoint = %name, "checkpoint uploaded");
                sent.insert(name.clone(), *stamp);
            }
            Err(e) => tracing::warn!(checkpoint = %name, "cannot upload the checkpoint: {}", crate::error::render(&e)),
        }
    }
    let here: std::collections::HashSet<&String> = now.iter().map(|(n, _)| n).collect();
    let gone: Vec<String> = sent.keys().filter(|n| !here.contains(n)).cloned().collect();
    for name in gone {
        // Only a partial one the training superseded; the remote keeps completed ones.
        if parse(&name).is_some_and(|(_, completed)| !completed) {
            let _ = remote.delete(&format!("{rel}/{name}.sha256"));
            let _ = remote.delete(&format!("{rel}/{name}"));
        }
        sent.remove(&name);
    }
}

/// Fetches into `dir` the remote's latest checkpoint of `prefix` at or below `epochs` when it is
/// later than the latest one here (into a temporary file, then renamed; its `.sha256` first).
fn fetch(store: &Store, prefix: &str, dir: &Path, epochs: u64) {
    let Some(remote) = store.remote() else { return };
    let Some(best) = remote_saved(store, prefix).into_iter().rev().find(|s| s.epoch <= epochs && s.epoch > 0) else { return };
    if latest(dir, epochs).is_some_and(|l| (l.epoch, l.completed) >= (best.epoch, best.completed)) {
        return;
    }
    let rel = best.path.to_string_lossy().to_string();
    let name = rel.rsplit('/').next().unwrap_or_default().to_string();
    let got = (|| -> Result<(), String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        for (from, to) in [(format!("{rel}.sha256"), format!("{name}.sha256")), (rel.clone(), name.clone())] {
            let size = remote.size(&from).map_err(|e| crate::error::render(&e))?.ok_or_else(|| format!("{from} is gone"))?;
            let tmp = dir.join(format!(".{to}.fetch-{}", std::process::id()));
            let written = remote.get_to_file(&from, size, &tmp).map_err(|e| crate::error::render(&e))?;
            if written.is_none() {
                let _ = std::fs::remove_file(&tmp);
                return Err(format!("{from} is gone"));
            }
            std::fs::rename(&tmp, dir.join(&to)).map_err(|e| format!("rename into {}: {e}", dir.display()))?;
        }
        Ok(())
    })();
    match got {
        Ok(()) => tracing::info!(checkpoint = %name, "checkpoint fetched from the remote"),
        Err(e) => tracing::warn!(checkpoint = %name, "cannot fetch the remote's checkpoint, resuming from what is here: {e}"),
    }
}

/// `pipe gc --records` on checkpoints: removes each folder under `root/checkpoints/` whose prefix
/// is not in `live` (the prefixes of the results gc keeps) and whose newest file is older than
/// `since` (seconds since the epoch; a training killed within the kept days keeps its progress).
/// With `dry_run` nothing is removed. Returns one line per folder and the bytes freed.
pub fn collect(root: &Path, live: &std::collections::HashSet<String>, since: f64, dry_run: bool) -> (Vec<String>, u64) {
    let (mut lines, mut freed) = (Vec::new(), 0u64);
    for e in std::fs::read_dir(root.join(Entry::Dir(Dir::Checkpoints).rel())).into_iter().flatten().flatten() {
        let prefix = e.file_name().to_string_lossy().to_string();
        if live.contains(&prefix) || !e.path().is_dir() {
            continue;
        }
        let files: Vec<std::fs::Metadata> = std::fs::read_dir(e.path()).into_iter().flatten().flatten().filter_map(|f| f.metadata().ok()).collect();
        let newest =
            files.iter().filter_map(|m| m.modified().ok()).max().map(|t| t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64());
        if newest.is_some_and(|t| t >= since) {
            continue;
        }
        let bytes: u64 = files.iter().map(|m| m.len()).sum();
        lines.push(format!("checkpoints {} ({} files, {bytes} bytes)", &prefix[..12.min(prefix.len())], files.len()));
        if dry_run || std::fs::remove_dir_all(e.path()).is_ok() {
            freed += bytes;
        }
    }
    (lines, freed)
}

/// `pipe gc --remote --records` on the remote's checkpoints: deletes each folder under
/// `checkpoints/` whose prefix is not in `live` and whose newest object is older than `since`
/// (seconds since the epoch). Returns the folders and bytes removed.
pub fn collect_remote(
    remote: &crate::remote::Remote,
    live: &std::collections::HashSet<String>,
    since: f64,
) -> Result<(usize, u64), crate::store::StoreError> {
    let (mut folders, mut freed) = (0, 0u64);
    for dir in remote.list(Dir::Checkpoints.name())?.1 {
        let dir = dir.trim_end_matches('/');
        if live.contains(dir.rsplit('/').next().unwrap_or_default()) {
            continue;
        }
        let files = remote.list(dir)?.0;
        if files.iter().any(|f| f.modified as f64 >= since) {
            continue;
        }
        for f in &files {
            remote.delete(&f.rel)?;
            freed += f.size;
        }
        folders += 1;
    }
    Ok((folders, freed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_checkpoint_at_or_below_the_horizon_is_chosen() {
        let d = std::env::temp_dir().join(format!("pipe-ckpt-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        for f in ["epoch-3.safetensors", "epoch-5.partial.safetensors", "epoch-12.safetensors", "notes.txt", "epoch-x.safetensors"] {
            std::fs::write(d.join(f), b"").unwrap();
        }
        assert_eq!(latest(&d, 6).map(|s| (s.epoch, s.completed)), Some((5, false)));
        assert_eq!(latest(&d, 4).map(|s| (s.epoch, s.completed)), Some((3, true)));
        assert_eq!(latest(&d, 12).map(|s| (s.epoch, s.completed)), Some((12, true)));
        assert_eq!(latest(&d, 2), None);
        assert_eq!(saved(&d).len(), 3);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_prefix_key_ignores_only_the_horizon() {
        let mut fp = Fingerprint {
            key_version: 1,
            kind: "train_svdd".into(),
            stage_version: 1,
            params: [("epochs".to_string(), Value::Int(50)), ("lr".to_string(), Value::Float(1e-4))].into(),
            inputs: Default::default(),
            environment: Default::default(),
            input_nodes: Default::default(),
        };
        let a = prefix_key(&fp, "epochs");
        fp.params.insert("epochs".into(), Value::Int(100));
        assert_eq!(prefix_key(&fp, "epochs"), a);
        assert_ne!(fp.key(), a);
        fp.params.insert("lr".into(), Value::Float(1e-3));
        assert_ne!(prefix_key(&fp, "epochs"), a);
    }
}
