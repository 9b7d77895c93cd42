//! A remote store this user may only read (read-only credentials, a read-only share): `pull`,
//! `status`, `get`, `report` and a fully cached `run` work from it, and nothing is written to it.
//! As root (who may write anywhere) the reading commands run as the user `nobody`; otherwise the
//! store's folder is made read-only.

mod common;
use common::Workspace;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every file under `dir` with its size and modification time.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let m = e.metadata().unwrap();
        if m.is_dir() {
            out.extend(snapshot(&e.path()));
        } else {
            out.insert(e.path(), (m.len(), m.modified().unwrap()));
        }
    }
    out
}

fn set_mode_recursive(dir: &Path, dir_mode: u32, file_mode: u32) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.metadata().unwrap().is_dir() {
            set_mode_recursive(&e.path(), dir_mode, file_mode);
        } else {
            std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(file_mode)).unwrap();
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(dir_mode)).unwrap();
}

#[test]
fn a_read_only_remote_serves_pull_status_get_report_and_a_cached_run() {
    let ws = Workspace::new("readonly-store");
    let pipeline = "stages:\n  a:\n    kind: command\n    matrix: {x: [1, 2]}\n    params: {cmd: \"echo ${matrix.x} > ${outputs.o}\", outputs: [o]}\n    publish: {o: \"out-${matrix.x}.txt\"}\n";
    ws.write("p.yaml", pipeline);
    let remote = ws.dir.join("share");
    std::fs::create_dir_all(&remote).unwrap();
    let url = format!("file://{}", remote.display());
    ws.ok(&["--store", &url, "--cache", "cache", "run", "p.yaml"]);

    // A second clone of the workspace, on a machine that may only read the share.
    let clone = ws.dir.join("clone");
    std::fs::create_dir_all(&clone).unwrap();
    std::fs::write(clone.join("p.yaml"), pipeline).unwrap();
    let root = is_root();
    // The binary where `nobody` may run it (the build folder may sit in a private home).
    let bin = ws.dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_pipe"), bin.join("pipe")).unwrap();
    set_mode_recursive(&remote, 0o555, 0o444);
    if root {
        for d in [&ws.dir, &bin, &clone] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
        }
    }
    let before = snapshot(&remote);
    assert!(before.len() >= 6, "the first run filled the share: {before:?}");
    let pipe = |args: &[&str]| {
        let mut c = if root {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(bin.join("pipe"));
            c
        } else {
            Command::new(bin.join("pipe"))
        };
        c.args(["--store", &url, "--cache", "cache"])
            .args(args)
            .current_dir(&clone)
            .env_remove("PIPE_STORE")
            .env("RUST_LOG", "warn")
            .env("HOME", &clone);
        let out = c.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "pipe {args:?} on a read-only store failed ({:?}):\n{err}", out.status);
        (String::from_utf8_lossy(&out.stdout).to_string(), err)
    };
    pipe(&["pull", "p.yaml"]);
    assert_eq!(std::fs::read_to_string(clone.join("out-2.txt")).unwrap(), "2\n");
    let (out, err) = pipe(&["status", "p.yaml", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    let states: Vec<&str> = status.as_array().unwrap().iter().map(|n| n["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["fresh", "fresh"], "{out}");
    let (_, err) = pipe(&["run", "p.yaml"]);
    assert!(err.contains("0 ran, 2 cached"), "{err}");
    pipe(&["get", "p.yaml", "a[x=1]", "o", "got.txt"]);
    assert_eq!(std::fs::read_to_string(clone.join("got.txt")).unwrap(), "1\n");
    pipe(&["report", "p.yaml", "-o", "report.html"]);
    let report = std::fs::read_to_string(clone.join("report.html")).unwrap();
    assert!(report.contains(">2 fresh") && report.contains("every node fresh"), "{}", &report[..report.len().min(2000)]);
    assert_eq!(snapshot(&remote), before, "a command wrote to the read-only store");
    // The local cache remembers what the share could not: the run is in this machine's history.
    assert!(clone.join("cache/runs/latest.json").is_file());
    set_mode_recursive(&remote, 0o755, 0o644);
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}
