//! A workspace moved (`mv`) or copied (`cp -a`) elsewhere stays pipe's: the files it published and
//! its HTML report are remembered by their path in the workspace, not by an absolute path, so a
//! run or `pipe status` in the new place names none of them as written by someone else (no
//! backup, no warning, no refusal), also while a copy and the original are both in use, each with
//! its own store or one shared store.

use std::path::{Path, PathBuf};
use std::process::Command;

const PIPELINE: &str = r#"
name: moved
report: out/report.html
stages:
  gen:
    kind: command
    params: {cmd: "echo one > ${outputs.o}", outputs: [o]}
    publish: {o: out/o.txt}
"#;

/// Scratch folders, removed at the end unless the test failed.
struct Dirs(Vec<PathBuf>);

impl Dirs {
    fn new(name: &str, n: usize) -> Dirs {
        let root = std::env::temp_dir().join(format!("pipe-it-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let mut dirs: Vec<PathBuf> = (0..n).map(|i| root.join(format!("ws{i}"))).collect();
        dirs.push(root);
        Dirs(dirs)
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(self.0.last().unwrap());
        }
    }
}

/// `pipe ARGS` in `dir`: the exit code and stdout + stderr.
fn pipe(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pipe")).args(args).current_dir(dir).env_remove("PIPE_STORE").env("RUST_LOG", "warn").output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// Runs `pipe ARGS` in `dir` and asserts it succeeded without a word about a file pipe did not
/// write; returns its output.
fn clean(dir: &Path, args: &[&str]) -> String {
    let (code, text) = pipe(dir, args);
    assert_eq!(code, 0, "pipe {args:?} in {}:\n{text}", dir.display());
    for said in ["warning", "not written", "did not write", "edited", "backup", "kept at"] {
        assert!(!text.contains(said), "pipe {args:?} in {} says `{said}`:\n{text}", dir.display());
    }
    text
}

fn read(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(rel).display()))
}

/// No file was set aside as someone else's.
fn no_backups(store: &Path) {
    let backups: Vec<_> = std::fs::read_dir(store.join("backups")).into_iter().flatten().collect();
    assert!(backups.is_empty(), "{} holds backups: {backups:?}", store.display());
}

fn mv(from: &Path, to: &Path) {
    assert!(Command::new("mv").arg(from).arg(to).status().unwrap().success());
    assert!(!from.exists());
}

fn cp_a(from: &Path, to: &Path) {
    assert!(Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap().success());
}

const TWO: &str = "gen.cmd=echo two > ${outputs.o}";
const THREE: &str = "gen.cmd=echo three > ${outputs.o}";

#[test]
fn a_moved_or_copied_workspace_with_its_own_store_stays_pipes() {
    let dirs = Dirs::new("moved", 3);
    let (a, b, c) = (&dirs.0[0], &dirs.0[1], &dirs.0[2]);
    std::fs::create_dir_all(a).unwrap();
    std::fs::write(a.join("p.yaml"), PIPELINE).unwrap();
    clean(a, &["run", "p.yaml"]);
    assert_eq!(read(a, "out/o.txt"), "one\n");

    mv(a, b);
    assert!(clean(b, &["status", "p.yaml", "-v"]).contains("1 of 1 nodes fresh"));
    // Another output at the published path (and a new report over the old one): pipe's own files.
    clean(b, &["run", "p.yaml", "--set", TWO]);
    assert_eq!(read(b, "out/o.txt"), "two\n");
    assert!(read(b, "out/report.html").contains("<title>moved"));
    let (code, st) = pipe(b, &["status", "p.yaml", "-v"]);
    assert_eq!(code, 0, "{st}");
    assert!(st.contains("out/o.txt holds another run's `o`") && !st.contains("did not write"), "{st}");
    clean(b, &["run", "p.yaml"]);
    assert_eq!(read(b, "out/o.txt"), "one\n");
    assert!(clean(b, &["status", "p.yaml", "-v"]).contains("1 of 1 nodes fresh"));

    // A copy beside the original, both in use, in turns.
    cp_a(b, c);
    clean(c, &["run", "p.yaml", "--set", THREE]);
    clean(b, &["run", "p.yaml", "--set", TWO]);
    clean(c, &["run", "p.yaml"]);
    clean(b, &["run", "p.yaml"]);
    for ws in [b, c] {
        assert_eq!(read(ws, "out/o.txt"), "one\n");
        assert!(clean(ws, &["status", "p.yaml", "-v"]).contains("1 of 1 nodes fresh"));
        no_backups(&ws.join("artifacts"));
    }

    // A hand edit is still one.
    std::fs::write(c.join("out/o.txt"), "mine\n").unwrap();
    let (code, out) = pipe(c, &["run", "p.yaml", "--set", TWO]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("out/o.txt: the file was edited since pipe published it"), "{out}");
    assert_eq!(read(c, "out/o.txt"), "mine\n");
}

#[test]
fn copies_sharing_one_store_outside_the_workspace_stay_pipes() {
    let dirs = Dirs::new("moved-shared", 4);
    let (a, b, c, store) = (&dirs.0[0], &dirs.0[1], &dirs.0[2], &dirs.0[3]);
    let s = store.to_str().unwrap();
    std::fs::create_dir_all(a).unwrap();
    std::fs::write(a.join("p.yaml"), PIPELINE).unwrap();
    clean(a, &["run", "p.yaml", "--store", s]);
    cp_a(a, b);
    // Each copy publishes its own outputs and reports at the same relative paths, in turns.
    clean(b, &["run", "p.yaml", "--store", s, "--set", TWO]);
    clean(a, &["run", "p.yaml", "--store", s, "--set", THREE]);
    clean(b, &["run", "p.yaml", "--store", s]);
    clean(a, &["run", "p.yaml", "--store", s]);
    mv(a, c);
    clean(c, &["run", "p.yaml", "--store", s, "--set", TWO]);
    clean(c, &["run", "p.yaml", "--store", s]);
    for ws in [b, c] {
        assert_eq!(read(ws, "out/o.txt"), "one\n");
        assert!(clean(ws, &["status", "p.yaml", "-v", "--store", s]).contains("1 of 1 nodes fresh"));
        assert!(!ws.join("artifacts").exists(), "the store is outside the workspace");
    }
    no_backups(store);
}
