//! Node records (`nodes/<key>.json`), refs (`refs/<pipeline>/<hash>.json`) and failed attempts
//! (`logs/<key>.json`): what the store knows about each executed key and each node.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::error::io_err;
use super::{is_hash, write_atomic, Dir, Entry, FailureKind, ObjectRef, Store, StoreError};
use crate::hash::Fingerprint;

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
    /// CPU seconds (user + system, every thread and waited-for child) of the stage's run, where
    /// measured ([`crate::stage::RunContext::cpu_seconds`]); absent in records of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_s: Option<f64>,
    /// CPU threads the stage was given (`pipe run --threads`): floating-point results such as
    /// trained weights are reproducible at a fixed thread count, so two records of one key that
    /// differ in bytes can be told apart from a regression; absent in records of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
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

/// Checks a record read from disk or a remote before any of its names becomes a path.
pub(super) fn check_record(rec: &NodeRecord, key: &str) -> Result<(), String> {
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

impl Store {
    pub(super) fn record_path(&self, key: &str) -> PathBuf {
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
                        let bad = |message: String| StoreError::BadRecord { path: format!("{}/{}", r.url(), Entry::Record(key).rel()), message };
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

    pub(super) fn all_records(&self) -> Vec<NodeRecord> {
        let Ok(entries) = fs::read_dir(self.path(Entry::Dir(Dir::Nodes))) else { return Vec::new() };
        entries.flatten().filter_map(|e| fs::read(e.path()).ok()).filter_map(|b| serde_json::from_slice::<NodeRecord>(&b).ok()).collect()
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
}
