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
//! [`ParamSpec::horizon`]: crate::stage::ParamSpec::horizon

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::hash::Fingerprint;
use crate::stage::ParamSpec;
use crate::value::Value;

/// Where a node's checkpoints are, as its job carries them to the kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoints {
    /// `<store>/checkpoints/<prefix>`: the kind saves and loads here (creating it as needed).
    pub dir: PathBuf,
    /// Whether the kind may resume from what it finds (`false` with `pipe run -f` or
    /// `--no-resume`: it starts over, and its new checkpoints replace the old).
    pub resume: bool,
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
    root.join(crate::store::Entry::Checkpoints(prefix).rel())
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
/// a checkpoint at or below it exists.
pub fn for_node(root: &Path, fp: &Fingerprint, params: &[ParamSpec], resume: bool) -> Option<(Checkpoints, Option<(u64, u64)>)> {
    let h = horizon(params)?;
    let dir = dir(root, &prefix_key(fp, h));
    let point = match fp.params.get(h) {
        Some(Value::Int(n)) if resume && *n > 0 => latest(&dir, *n as u64).map(|s| (s.epoch, *n as u64)),
        _ => None,
    };
    Some((Checkpoints { dir, resume }, point))
}

/// What a node whose key missed would resume from (see [`for_node`]).
pub fn resume_point(root: &Path, fp: &Fingerprint, params: &[ParamSpec]) -> Option<(u64, u64)> {
    for_node(root, fp, params, true)?.1
}

/// `pipe gc --records` on checkpoints: removes each folder under `root/checkpoints/` whose prefix
/// is not in `live` (the prefixes of the results gc keeps) and whose newest file is older than
/// `since` (seconds since the epoch; a training killed within the kept days keeps its progress).
/// With `dry_run` nothing is removed. Returns one line per folder and the bytes freed.
pub fn collect(root: &Path, live: &std::collections::HashSet<String>, since: f64, dry_run: bool) -> (Vec<String>, u64) {
    let (mut lines, mut freed) = (Vec::new(), 0u64);
    for e in std::fs::read_dir(root.join("checkpoints")).into_iter().flatten().flatten() {
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
