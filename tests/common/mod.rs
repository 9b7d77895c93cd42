//! Helpers for integration tests: a scratch workspace and the real `pipe` binary.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

pub struct Workspace {
    pub dir: PathBuf,
}

impl Workspace {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("pipe-it-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Workspace { dir }
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.dir.join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pipe"));
        c.args(args).current_dir(&self.dir).env_remove("PIPE_STORE").env("RUST_LOG", "warn");
        c
    }

    pub fn pipe(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs and asserts success, returning stderr.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.pipe(args);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "pipe {args:?} failed ({:?}):\n{stderr}\n{}", out.status, String::from_utf8_lossy(&out.stdout));
        stderr
    }

    pub fn store(&self) -> PathBuf {
        self.dir.join("artifacts")
    }

    /// The latest run record as (node, state) pairs.
    pub fn last_run(&self) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(self.store().join("runs/latest.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["nodes"].as_array().unwrap().iter().map(|n| (n["node"].as_str().unwrap().to_string(), n["state"].as_str().unwrap().to_string())).collect()
    }

    pub fn last_run_status(&self) -> String {
        let text = std::fs::read_to_string(self.store().join("runs/latest.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["status"].as_str().unwrap().to_string()
    }

    /// Node ids with the given state in the latest run, sorted.
    pub fn nodes_in(&self, state: &str) -> Vec<String> {
        let mut v: Vec<String> = self.last_run().into_iter().filter(|(_, s)| s == state).map(|(n, _)| n).collect();
        v.sort();
        v
    }

    /// Every object in the store whose content does not match its name (must always be empty).
    pub fn bad_objects(&self) -> Vec<PathBuf> {
        let mut bad = Vec::new();
        let objects = self.store().join("objects");
        for d in std::fs::read_dir(&objects).into_iter().flatten().flatten() {
            for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
                let name = f.file_name().to_string_lossy().to_string();
                let hash = name.split('.').next().unwrap().to_string();
                let actual = blake3::hash(&std::fs::read(f.path()).unwrap()).to_hex().to_string();
                if actual != hash {
                    bad.push(f.path());
                }
            }
        }
        bad
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

pub fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// Bundled MNIST, normal class 0 (run with `--set params.data_dir=<repo>/data/bundled`): an
/// autoencoder with small batches, so an epoch lasts long enough to be stopped in
/// (`params.ae_epochs`, 6), and, with `svdd`, Deep SVDD on it (`params.svdd_epochs`, 6).
#[allow(dead_code)]
pub fn training_pipeline(svdd: bool) -> String {
    let mut p = String::from(
        "params: {ae_epochs: 6, svdd_epochs: 6, data_dir: data}
stages:
  ingest:
    kind: ingest
    matrix: {dataset: [mnist]}
    params: {normal_class: 0, data_dir: \"${params.data_dir}\", limit_test: 200}
  pretrain:
    kind: pretrain_ae
    inputs: {data: ingest.dataset}
    params: {epochs: \"${params.ae_epochs}\", batch_size: 4, lr: 0.001, milestones: [4]}
",
    );
    if svdd {
        p.push_str(
            "  train:
    kind: train_svdd
    inputs: {data: ingest.dataset, ae: pretrain.model}
    params: {epochs: \"${params.svdd_epochs}\", batch_size: 64, lr: 0.001, milestones: [2], mu2: 0.5}
",
        );
    }
    p
}

/// The epochs a training node's log says it trained (its `epoch N/E loss ...` lines).
#[allow(dead_code)]
pub fn trained(log: &str) -> Vec<usize> {
    log.lines().filter_map(|l| l.strip_prefix("epoch ")?.split('/').next()?.parse().ok()).collect()
}
