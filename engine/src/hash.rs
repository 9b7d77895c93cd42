//! Cache keys: one typed fingerprint struct, canonically encoded and hashed with blake3.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::value::Value;

/// Bump to invalidate every cache entry (a change of the fingerprint's meaning or encoding).
pub const KEY_VERSION: u32 = 1;

/// Everything that determines a node's outputs. Maps are sorted (BTreeMap) and numbers typed by the
/// kind's param schema (ints widened to floats where a float is declared), so the JSON encoding is
/// canonical. Inputs are the CONTENT hashes of upstream objects, not upstream keys: a recomputed
/// upstream that produces identical bytes leaves this key unchanged (early cutoff).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// [`KEY_VERSION`] of the engine that made the fingerprint.
    pub key_version: u32,
    /// The stage kind's name.
    pub kind: String,
    /// The stage kind's version (`StageKind::version`).
    pub stage_version: u32,
    /// The node's params, less those that only name a location (`ParamSpec::location`).
    pub params: BTreeMap<String, Value>,
    /// Input name -> blake3 hashes (hex) of the content of each file it reads, in order.
    pub inputs: BTreeMap<String, Vec<String>>,
    /// What the kind reports beyond its params (library versions, device: `StageKind::environment`).
    pub environment: BTreeMap<String, String>,
    /// Upstream node ids per input, only for kinds that read them (`StageKind::reads_input_identity`:
    /// a gather labelling its rows). Absent otherwise, so every other key is encoded as before.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub input_nodes: BTreeMap<String, Vec<String>>,
}

impl Fingerprint {
    /// The cache key: the blake3 hash of the fingerprint's JSON encoding, 64 lowercase hex digits.
    pub fn key(&self) -> String {
        let bytes = serde_json::to_vec(self).expect("a fingerprint always serialises");
        blake3::hash(&bytes).to_hex().to_string()
    }

    /// Why `self` (the new fingerprint) differs from `old`, one reason per field, e.g.
    /// `params.mu2 changed 0.5 -> 1.0`. `sources` names the upstream nodes of each input.
    pub fn diff(&self, old: &Fingerprint, sources: &BTreeMap<String, Vec<String>>) -> Vec<String> {
        let mut r = Vec::new();
        if self.key_version != old.key_version {
            r.push(format!("cache key version {} -> {}", old.key_version, self.key_version));
        }
        if self.kind != old.kind {
            r.push(format!("kind {} -> {}", old.kind, self.kind));
        }
        if self.stage_version != old.stage_version {
            r.push(format!("stage version {} -> {}", old.stage_version, self.stage_version));
        }
        diff_maps("params", &old.params, &self.params, &mut r, |v| v.to_string());
        for (name, hashes) in &self.inputs {
            match old.inputs.get(name) {
                None => r.push(format!("input {name} added")),
                Some(h) if h != hashes => {
                    let from = sources.get(name).map(|s| s.join(", ")).unwrap_or_default();
                    if from.is_empty() {
                        r.push(format!("input {name} changed"));
                    } else {
                        r.push(format!("input {name} changed (from {from})"));
                    }
                }
                Some(_) => {}
            }
        }
        for name in old.inputs.keys().filter(|k| !self.inputs.contains_key(*k)) {
            r.push(format!("input {name} removed"));
        }
        diff_maps("environment", &old.environment, &self.environment, &mut r, |v| v.clone());
        for (name, ids) in &self.input_nodes {
            if old.input_nodes.get(name).is_some_and(|o| o != ids) {
                r.push(format!("input {name} now comes from other nodes ({})", ids.join(", ")));
            }
        }
        r
    }
}

fn diff_maps<V: PartialEq>(what: &str, old: &BTreeMap<String, V>, new: &BTreeMap<String, V>, r: &mut Vec<String>, show: impl Fn(&V) -> String) {
    for (k, v) in new {
        match old.get(k) {
            None => r.push(format!("{what}.{k} added (= {})", show(v))),
            Some(o) if o != v => r.push(format!("{what}.{k} changed {} -> {}", show(o), show(v))),
            Some(_) => {}
        }
    }
    for k in old.keys().filter(|k| !new.contains_key(*k)) {
        r.push(format!("{what}.{k} removed"));
    }
}

/// blake3 of a file's bytes, hex.
pub fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = blake3::Hasher::new();
    let len = f.metadata()?.len();
    if len > 1 << 20 {
        h.update_reader(&mut f)?;
    } else {
        let mut buf = Vec::with_capacity(len as usize);
        f.read_to_end(&mut buf)?;
        h.update(&buf);
    }
    Ok(h.finalize().to_hex().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Fingerprint {
        Fingerprint {
            key_version: 1,
            kind: "train_svdd".into(),
            stage_version: 3,
            params: BTreeMap::from([
                ("mu2".to_string(), Value::Float(0.5)),
                ("epochs".to_string(), Value::Int(10)),
                ("objective".to_string(), Value::Str("one-class".into())),
            ]),
            inputs: BTreeMap::from([("data".to_string(), vec!["ab".repeat(32)])]),
            environment: BTreeMap::from([("torch".to_string(), "2.13.0".to_string())]),
            input_nodes: BTreeMap::new(),
        }
    }

    /// Pins the encoding: if this fails, the cache-key encoding changed; bump KEY_VERSION.
    #[test]
    fn golden_key() {
        let f = known();
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"key_version":1,"kind":"train_svdd","stage_version":3,"params":{"epochs":10,"mu2":0.5,"objective":"one-class"},"inputs":{"data":["abababababababababababababababababababababababababababababababab"]},"environment":{"torch":"2.13.0"}}"#
        );
        assert_eq!(f.key(), GOLDEN);
    }
    const GOLDEN: &str = "358a6533dfd6cf3a7d095cce300f691aad0867959d9881efff273500691c8426";

    #[test]
    fn diff_names_fields() {
        let old = known();
        let mut new = known();
        new.params.insert("mu2".into(), Value::Float(1.0));
        new.stage_version = 4;
        new.inputs.insert("data".into(), vec!["cd".repeat(32)]);
        let src = BTreeMap::from([("data".to_string(), vec!["ingest[dataset=mnist]".to_string()])]);
        assert_eq!(
            new.diff(&old, &src),
            vec![
                "stage version 3 -> 4".to_string(),
                "params.mu2 changed 0.5 -> 1.0".to_string(),
                "input data changed (from ingest[dataset=mnist])".to_string(),
            ]
        );
    }

    #[test]
    fn float_and_int_params_hash_differently_only_by_type() {
        let mut a = known();
        let mut b = known();
        a.params.insert("x".into(), Value::Float(1.0));
        b.params.insert("x".into(), Value::Float(1.0));
        assert_eq!(a.key(), b.key());
        b.params.insert("x".into(), Value::Float(1.0000001));
        assert_ne!(a.key(), b.key());
    }
}
