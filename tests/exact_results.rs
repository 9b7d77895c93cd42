//! Exact results and safe caches, through the real binary: grid values keep their type, rows carry
//! the identity of the node they came from (never a cached neighbour's), no run forgets another's
//! results, the workspace is never harmed, and a cache filled on one machine serves another.

mod common;
use common::{sorted, Workspace};

use polars::prelude::*;

/// A one-row table every "evaluate" node copies: its rows are identical whatever the grid cell.
fn write_row(ws: &Workspace) {
    let mut df = df!("score" => [0.25f64]).unwrap();
    stages::table::write_parquet(&mut df, &ws.dir.join("row.parquet")).unwrap();
}

fn table(ws: &Workspace, rel: &str) -> DataFrame {
    stages::table::read_parquet(&ws.dir.join(rel)).unwrap()
}

fn strs(df: &DataFrame, col: &str) -> Vec<String> {
    df.column(col).unwrap().str().unwrap().into_iter().map(|s| s.unwrap().to_string()).collect()
}

#[test]
fn a_grid_written_with_ints_and_floats_is_a_float_axis_in_the_table() {
    let ws = Workspace::new("float-axis");
    write_row(&ws);
    ws.write(
        "p.yaml",
        r#"
stages:
  train:
    kind: command
    matrix: {mu2: [0, 0.5, 2]}
    params: {cmd: "echo ${matrix.mu2} > ${outputs.model}", outputs: [model]}
  evaluate:
    kind: command
    inputs: {model: train.model}
    params: {cmd: "cp row.parquet ${outputs.metrics}", outputs: [metrics]}
  results:
    kind: concat
    inputs: {tables: {from: evaluate.metrics, gather: true}}
    publish: {table: results/results.parquet}
"#,
    );
    ws.ok(&["run", "p.yaml"]);
    let df = table(&ws, "results/results.parquet");
    assert_eq!(df.height(), 3);
    assert_eq!(df.column("mu2").unwrap().dtype(), &DataType::Float64);
    let mu2: Vec<f64> = df.column("mu2").unwrap().f64().unwrap().into_no_null_iter().collect();
    assert_eq!(mu2, vec![0.0, 0.5, 2.0]);
    assert_eq!(strs(&df, "node"), vec!["evaluate[mu2=0.0]", "evaluate[mu2=0.5]", "evaluate[mu2=2.0]"]);
    // The command saw the canonical value too.
    let dag = String::from_utf8(ws.pipe(&["dag", "p.yaml"]).stdout).unwrap();
    assert!(dag.contains("train[mu2=0.0]") && !dag.contains("train[mu2=0]"), "{dag}");
}

const REPS: &str = r#"
stages:
  score:
    kind: command
    matrix: {rep: [1, 2]}
    params: {cmd: "cp row.parquet ${outputs.metrics}", outputs: [metrics]}
  results:
    kind: concat
    inputs: {tables: {from: score.metrics, gather: true}}
    publish: {table: results/results.parquet}
"#;

#[test]
fn cells_with_identical_bytes_keep_their_own_coordinates() {
    let ws = Workspace::new("reps");
    write_row(&ws);
    ws.write("p.yaml", REPS);
    ws.ok(&["run", "p.yaml", "--jobs", "1"]);
    // One key for both cells (identical inputs and params): the second is a cache hit...
    assert_eq!(ws.nodes_in("cached"), sorted(&["score[rep=2]"]));
    // ...yet each row says where it came from.
    let df = table(&ws, "results/results.parquet");
    let rep: Vec<i64> = df.column("rep").unwrap().i64().unwrap().into_no_null_iter().collect();
    assert_eq!(rep, vec![1, 2]);
    assert_eq!(strs(&df, "node"), vec!["score[rep=1]", "score[rep=2]"]);
    let score: Vec<f64> = df.column("score").unwrap().f64().unwrap().into_no_null_iter().collect();
    assert_eq!(score, vec![0.25, 0.25]);

    // Renaming the stage reruns nothing upstream (same keys), but the table says the new name.
    ws.write("p.yaml", &REPS.replace("score", "scoring"));
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(ws.nodes_in("ran"), sorted(&["results"]));
    assert_eq!(ws.nodes_in("cached"), sorted(&["scoring[rep=1]", "scoring[rep=2]"]));
    let df = table(&ws, "results/results.parquet");
    assert_eq!(strs(&df, "node"), vec!["scoring[rep=1]", "scoring[rep=2]"]);
}

#[test]
fn a_command_cannot_write_an_identity_its_key_lacks() {
    let ws = Workspace::new("pipe-node");
    ws.write(
        "p.yaml",
        r#"
stages:
  who:
    kind: command
    matrix: {x: [1, 2]}
    params: {cmd: "echo \"node=$PIPE_NODE x=${matrix.x}\" > ${outputs.o}", outputs: [o]}
    publish: {o: "out/${matrix.x}.txt"}
"#,
    );
    ws.ok(&["run", "p.yaml"]);
    // The node id is not exposed (it is not in the key); the matrix value is (it is).
    assert_eq!(ws.read("out/1.txt"), "node= x=1\n");
    assert_eq!(ws.read("out/2.txt"), "node= x=2\n");
}

#[test]
fn values_that_print_alike_are_refused_in_the_file_and_in_overrides() {
    let ws = Workspace::new("alike");
    ws.write("p.yaml", "stages:\n  a:\n    kind: command\n    matrix: {x: [1, 2]}\n    params: {cmd: \"true\"}\n");
    for set in ["a.matrix.x=[1,1]", "a.matrix.x=[1, 1.0]", "a.matrix.x=[1, \"1\"]"] {
        let out = ws.pipe(&["run", "p.yaml", "--set", set]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{set}: {err}");
        assert!(err.contains(&format!("override `{set}`")) && err.contains("hint:"), "{set}: {err}");
    }
    ws.write("q.yaml", "stages:\n  a:\n    kind: command\n    matrix: {x: [1, 1.0]}\n    params: {cmd: \"true\"}\n");
    let out = ws.pipe(&["run", "q.yaml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("q.yaml:4:") && err.contains("both print as `1.0`"), "{err}");
    assert!(!ws.store().join("runs/latest.json").exists(), "nothing ran");
}

/// prep -> train[mu2] -> score[mu2]: a small grid of real work.
fn grid(mu2: &str) -> String {
    format!(
        r#"
name: study
stages:
  prep:
    kind: command
    params: {{cmd: "echo data > ${{outputs.d}}", outputs: [d]}}
  train:
    kind: command
    matrix: {{mu2: {mu2}}}
    inputs: {{d: prep.d}}
    params: {{cmd: "cat ${{inputs.d}} > ${{outputs.m}}; echo ${{matrix.mu2}} >> ${{outputs.m}}", outputs: [m]}}
  score:
    kind: command
    inputs: {{m: train.m}}
    params: {{cmd: "md5sum < ${{inputs.m}} > ${{outputs.s}}", outputs: [s]}}
"#
    )
}

#[test]
fn an_exploratory_override_and_gc_lose_nothing_of_the_grid() {
    let ws = Workspace::new("explore");
    ws.write("p.yaml", &grid("[0.0, 0.5]"));
    ws.ok(&["run", "p.yaml"]);
    ws.ok(&["run", "p.yaml", "--set", "train.matrix.mu2=[2.0]"]);
    assert_eq!(ws.nodes_in("ran"), sorted(&["train[mu2=2.0]", "score[mu2=2.0]"]));

    let dry = String::from_utf8(ws.pipe(&["gc", "--records", "--dry-run"]).stdout).unwrap();
    assert!(dry.ends_with("would remove 0 objects and 0 records (0.0 MB); kept 7 objects\n"), "{dry}");
    let out = String::from_utf8(ws.pipe(&["gc", "--records"]).stdout).unwrap();
    assert!(out.starts_with("removed 0 objects and 0 records"), "{out}");
    let err = ws.ok(&["run", "p.yaml"]);
    assert!(err.contains("0 ran, 5 cached"), "{err}");

    // Past the keep window only what a workspace pipeline uses at its defaults stays: the
    // exploration's two results go (listed first by --dry-run), the grid's five stay.
    let dry = String::from_utf8(ws.pipe(&["gc", "--records", "--keep-days", "0", "--dry-run"]).stdout).unwrap();
    assert_eq!(dry.lines().filter(|l| l.starts_with("would remove record")).count(), 2, "{dry}");
    assert!(dry.contains("(train[mu2=2.0], ") && dry.contains("(score[mu2=2.0], "), "{dry}");
    assert!(dry.lines().filter(|l| l.starts_with("would remove object")).all(|l| l.ends_with(" bytes)")), "{dry}");
    ws.ok(&["gc", "--records", "--keep-days", "0"]);
    let err = ws.ok(&["run", "p.yaml"]);
    assert!(err.contains("0 ran, 5 cached"), "{err}");
    ws.ok(&["run", "p.yaml", "--set", "train.matrix.mu2=[2.0]"]);
    assert_eq!(ws.nodes_in("ran"), sorted(&["train[mu2=2.0]", "score[mu2=2.0]"]));
}

#[test]
fn two_pipeline_files_with_one_name_keep_each_others_results() {
    let ws = Workspace::new("two-files");
    ws.write("exp_a/pipeline.yaml", &grid("[0.0]"));
    ws.write("exp_b/pipeline.yaml", &grid("[1.0]"));
    ws.ok(&["run", "exp_a/pipeline.yaml"]);
    ws.ok(&["run", "exp_b/pipeline.yaml"]);
    ws.ok(&["gc", "--records", "--keep-days", "0"]);
    let err = ws.ok(&["run", "exp_a/pipeline.yaml"]);
    assert!(err.contains("0 ran, 3 cached"), "{err}");
    let err = ws.ok(&["run", "exp_b/pipeline.yaml"]);
    assert!(err.contains("0 ran, 3 cached"), "{err}");
    // status of one does not report the other's nodes as its own history.
    let st = String::from_utf8(ws.pipe(&["status", "exp_a/pipeline.yaml", "-v"]).stdout).unwrap();
    assert!(st.ends_with("3 of 3 nodes fresh\n"), "{st}");
}

#[test]
fn names_and_publish_paths_cannot_leave_the_workspace_or_clash() {
    let ws = Workspace::new("hostile-names");
    let readme = ws.write("README.md", "mine\n");
    for name in ["../..", "..", "../nodes", "a/b", ""] {
        ws.write("p.yaml", &format!("name: \"{name}\"\nstages:\n  a:\n    kind: command\n    params: {{cmd: \"true\"}}\n"));
        let out = ws.pipe(&["run", "p.yaml"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "name {name:?}: {err}");
        assert!(err.contains("invalid pipeline name") && err.contains("p.yaml:1:7") && err.contains("hint:"), "{err}");
    }
    assert_eq!(std::fs::read_to_string(&readme).unwrap(), "mine\n");
    assert!(ws.dir.join("p.yaml").exists());

    for (dest, why) in [("../x.txt", "leaves the workspace"), ("/tmp/x.txt", "is absolute"), ("", "is empty")] {
        ws.write(
            "p.yaml",
            &format!(
                "stages:\n  a:\n    kind: command\n    params: {{cmd: \"echo 1 > ${{outputs.o}}\", outputs: [o]}}\n    publish: {{o: \"{dest}\"}}\n"
            ),
        );
        let out = ws.pipe(&["run", "p.yaml"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{dest}: {err}");
        assert!(err.contains(why) && err.contains("p.yaml:5:"), "{dest}: {err}");
    }
    assert!(!ws.dir.parent().unwrap().join("x.txt").exists());

    ws.write(
        "p.yaml",
        "stages:\n  a:\n    kind: command\n    matrix: {model: [a, b]}\n    params: {cmd: \"echo ${matrix.model} > ${outputs.o}\", outputs: [o]}\n    publish: {o: results/score.txt}\n",
    );
    let out = ws.pipe(&["run", "p.yaml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("`results/score.txt` is published by both a[model=a] (o) and a[model=b] (o)") && err.contains("${matrix.AXIS}"), "{err}");
}

#[test]
fn a_file_input_that_a_stage_publishes_is_refused_with_the_edge_to_use() {
    let ws = Workspace::new("file-published");
    ws.write(
        "p.yaml",
        r#"
stages:
  prepare:
    kind: command
    params: {cmd: "echo new > ${outputs.out}", outputs: [out]}
    publish: {out: data/prepared.txt}
  use:
    kind: command
    inputs: {p: {file: ./data/prepared.txt}}
    params: {cmd: "cat ${inputs.p} > ${outputs.o}", outputs: [o]}
"#,
    );
    let out = ws.pipe(&["run", "p.yaml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("which prepare publishes") && err.contains("`p: prepare.out`") && err.contains("p.yaml:9:"), "{err}");
}

#[test]
fn a_symlinked_output_is_stored_by_content_and_the_users_file_is_untouched() {
    use std::os::unix::fs::PermissionsExt;
    let ws = Workspace::new("symlink-out");
    let raw = ws.write("data/raw.csv", "1,2\n");
    std::fs::set_permissions(&raw, std::fs::Permissions::from_mode(0o644)).unwrap();
    ws.write("p.yaml", "stages:\n  link:\n    kind: command\n    params: {cmd: \"ln -s $PWD/data/raw.csv ${outputs.out}\", outputs: [out]}\n");
    ws.ok(&["run", "p.yaml"]);
    let mut links = Vec::new();
    for d in std::fs::read_dir(ws.store().join("objects")).unwrap().flatten() {
        for f in std::fs::read_dir(d.path()).unwrap().flatten() {
            if f.file_type().unwrap().is_symlink() {
                links.push(f.path());
            }
        }
    }
    assert!(links.is_empty(), "symlinks in the store: {links:?}");
    assert!(ws.bad_objects().is_empty());
    assert_eq!(std::fs::metadata(&raw).unwrap().permissions().mode() & 0o777, 0o644);
    // Editing the user's file changes nothing the store holds: the node stays fresh.
    std::fs::write(&raw, "3,4\n").unwrap();
    let out = ws.pipe(&["status", "p.yaml", "--check"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(ws.bad_objects().is_empty());
}

#[test]
fn a_failed_publish_fails_the_run_and_names_the_path() {
    let ws = Workspace::new("publish-fails");
    ws.write(
        "p.yaml",
        "stages:\n  a:\n    kind: command\n    params: {cmd: \"echo 1 > ${outputs.o}\", outputs: [o]}\n    publish: {o: out/result.txt}\n",
    );
    std::fs::create_dir_all(ws.dir.join("out/result.txt")).unwrap();
    let out = ws.pipe(&["run", "p.yaml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("publish out/result.txt: a directory is in the way"), "{err}");
    let run = ws.read("artifacts/runs/latest.json");
    assert!(run.contains("publish out/result.txt"), "{run}");
    assert_eq!(ws.nodes_in("failed"), sorted(&["a"]));

    // A parent that is a file: also a failure naming the path, and no temp file left beside it.
    std::fs::remove_dir_all(ws.dir.join("out")).unwrap();
    ws.write("out", "a file\n");
    let out = ws.pipe(&["run", "p.yaml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("publish out/result.txt"), "{err}");
    assert_eq!(ws.read("out"), "a file\n");
}

#[test]
fn hand_edited_published_files_are_reported_and_never_silently_overwritten() {
    let ws = Workspace::new("hand-edit");
    ws.write(
        "p.yaml",
        "stages:\n  a:\n    kind: command\n    params: {cmd: \"echo 1 > ${outputs.o}\", outputs: [o]}\n    publish: {o: out/result.txt}\n",
    );
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(ws.pipe(&["status", "p.yaml", "--check"]).status.code(), Some(0));

    std::fs::remove_file(ws.dir.join("out/result.txt")).unwrap();
    let out = ws.pipe(&["status", "p.yaml", "--check"]);
    assert_eq!(out.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&out.stdout).contains("published file out/result.txt is missing"));
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(ws.read("out/result.txt"), "1\n");

    ws.write("out/result.txt", "my notes\n");
    let out = ws.pipe(&["status", "p.yaml", "--check"]);
    assert_eq!(out.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&out.stdout).contains("published file out/result.txt differs"));
    let out = ws.pipe(&["run", "p.yaml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("edited since pipe published it") && err.contains("--overwrite"), "{err}");
    assert_eq!(ws.read("out/result.txt"), "my notes\n");
    ws.ok(&["run", "p.yaml", "--overwrite"]);
    assert_eq!(ws.read("out/result.txt"), "1\n");

    // A run with --set publishes its own output there: the file's status says so (not "edited by
    // hand"), and a plain run puts the file's own output back without --overwrite.
    ws.ok(&["run", "p.yaml", "--set", "a.cmd=echo 2 > ${outputs.o}"]);
    assert_eq!(ws.read("out/result.txt"), "2\n");
    let said = String::from_utf8_lossy(&ws.pipe(&["status", "p.yaml", "-v"]).stdout).to_string();
    assert!(
        said.contains("published file out/result.txt holds another run's `o` (e.g. one with --set)") && !said.contains("edited by hand"),
        "{said}"
    );
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(ws.read("out/result.txt"), "1\n");

    // A file pipe never wrote there is kept in the store before it is replaced.
    let ws2 = Workspace::new("foreign-file");
    ws2.write("p.yaml", &ws.read("p.yaml"));
    ws2.write("out/result.txt", "someone else's\n");
    let err = ws2.ok(&["run", "p.yaml"]);
    assert!(err.contains("the previous file is kept at"), "{err}");
    let backups: Vec<_> = std::fs::read_dir(ws2.store().join("backups")).unwrap().flatten().collect();
    assert_eq!(backups.len(), 1);
    assert_eq!(std::fs::read_to_string(backups[0].path()).unwrap(), "someone else's\n");
}

/// A tiny dataset in MNIST's exact IDX format, with a SHA256SUMS of its own.
fn write_idx_mnist(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    let images = |n: u32, seed: u32| {
        let mut b = vec![0, 0, 8, 3];
        for d in [n, 28, 28] {
            b.extend(d.to_be_bytes());
        }
        b.extend((0..n * 784).map(|i| ((i.wrapping_mul(2_654_435_761).wrapping_add(seed)) >> 13) as u8));
        b
    };
    let labels = |n: u32| {
        let mut b = vec![0, 0, 8, 1];
        b.extend(n.to_be_bytes());
        b.extend((0..n).map(|i| (i % 10) as u8));
        b
    };
    std::fs::write(dir.join("train-images-idx3-ubyte"), images(60, 1)).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), labels(60)).unwrap();
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), images(30, 2)).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), labels(30)).unwrap();
    // Its own checksums (the official ones are MNIST's release): the data's identity.
    let ok = std::process::Command::new("sh").arg("-c").arg("sha256sum *-ubyte > SHA256SUMS").current_dir(dir).status().unwrap();
    assert!(ok.success());
}

#[test]
fn a_cache_filled_on_one_machine_serves_another_with_the_data_elsewhere_or_absent() {
    let ws = Workspace::new("travel");
    let pipeline = r#"
stages:
  ingest:
    kind: ingest
    params: {dataset: mnist, normal_class: 0, holdout: 0.5}
  count:
    kind: command
    inputs: {d: ingest.dataset}
    params: {cmd: "wc -c < ${inputs.d} > ${outputs.n}", outputs: [n]}
    publish: {n: out/n.txt}
"#;
    // A shared folder (an existing one: a missing share is an error, tests/edges.rs).
    std::fs::create_dir_all(ws.dir.join("remote")).unwrap();
    let remote = format!("file://{}", ws.dir.join("remote").display());
    let (a, b, c) = (ws.dir.join("a"), ws.dir.join("b"), ws.dir.join("c"));
    write_idx_mnist(&a.join("data-x"));
    write_idx_mnist(&ws.dir.join("elsewhere/y"));
    let run = |dir: &std::path::Path, data: &str| {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("p.yaml"), pipeline).unwrap();
        let out = ws
            .cmd(&["--store", &remote, "--cache", "cache", "run", "p.yaml", "--set", &format!("ingest.data_dir={data}")])
            .current_dir(dir)
            .env("HOME", dir)
            .env_remove("PIPE_DATA_DIR")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{}: {err}", dir.display());
        let rec: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("cache/runs/latest.json")).unwrap()).unwrap();
        let keys: Vec<(String, String, String)> = rec["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| (n["node"].as_str().unwrap().into(), n["state"].as_str().unwrap().into(), n["key"].as_str().unwrap().into()))
            .collect();
        (err, keys)
    };
    let (_, ka) = run(&a, "data-x");
    assert!(ka.iter().all(|k| k.1 == "ran"), "{ka:?}");
    // Another clone, the same data at another path, an empty cache: nothing recomputes.
    let (err, kb) = run(&b, &ws.dir.join("elsewhere/y").display().to_string());
    assert!(err.contains("0 ran, 2 cached"), "{err}");
    assert_eq!(ka.iter().map(|k| &k.2).collect::<Vec<_>>(), kb.iter().map(|k| &k.2).collect::<Vec<_>>(), "same keys");
    // A machine with no data at all: the identity the last run recorded serves; every result and
    // published file is restored.
    let (err, kc) = run(&c, "no-such-folder");
    assert!(err.contains("0 ran, 2 cached"), "{err}");
    assert_eq!(ka.iter().map(|k| &k.2).collect::<Vec<_>>(), kc.iter().map(|k| &k.2).collect::<Vec<_>>(), "same keys");
    assert_eq!(std::fs::read(c.join("out/n.txt")).unwrap(), std::fs::read(a.join("out/n.txt")).unwrap());
    // Different data is different: changing one byte reruns ingest.
    let f = a.join("data-x/t10k-labels-idx1-ubyte");
    let mut bytes = std::fs::read(&f).unwrap();
    bytes[8] = 9;
    std::fs::write(&f, bytes).unwrap();
    let ok = std::process::Command::new("sh").arg("-c").arg("sha256sum *-ubyte > SHA256SUMS").current_dir(a.join("data-x")).status().unwrap();
    assert!(ok.success());
    let (_, ka2) = run(&a, "data-x");
    assert_eq!(ka2[0].1, "ran", "{ka2:?}");
}

#[test]
fn push_uploads_an_existing_cache_and_pull_restores_without_running() {
    let ws = Workspace::new("push-pull");
    ws.write("p.yaml", &(grid("[0.5]") + "    publish: {s: out/score.txt}\n"));
    // Filled locally, with no remote at all.
    ws.ok(&["run", "p.yaml"]);
    // A shared folder (an existing one: a missing share is an error, tests/edges.rs).
    std::fs::create_dir_all(ws.dir.join("remote")).unwrap();
    let remote = format!("file://{}", ws.dir.join("remote").display());
    let out = ws.pipe(&["--store", &remote, "--cache", "artifacts", "push"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("pushed 3 records, 3 objects"), "{}", String::from_utf8_lossy(&out.stdout));
    let again = ws.pipe(&["--store", &remote, "--cache", "artifacts", "push"]);
    assert!(String::from_utf8_lossy(&again.stdout).starts_with("pushed 0 records, 0 objects"), "nothing twice");

    // Another clone: pull restores and publishes, running nothing.
    let other = Workspace::new("push-pull-other");
    other.write("p.yaml", &ws.read("p.yaml"));
    let out = other.pipe(&["--store", &remote, "--cache", "artifacts", "pull", "p.yaml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("0 ran, 3 cached"), "{err}");
    assert_eq!(other.read("out/score.txt"), ws.read("out/score.txt"));

    // What the store lacks is named, not computed.
    let out = other.pipe(&["--store", &remote, "--cache", "artifacts", "pull", "p.yaml", "--set", "train.matrix.mu2=[0.7]"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("failed: train[mu2=0.7]: not in") && err.contains("`pipe run` computes it"), "{err}");
    assert_eq!(other.nodes_in("ran"), Vec::<String>::new());
}
