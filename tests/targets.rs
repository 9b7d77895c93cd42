//! Targets as DVC and Snakemake users type them: `pipe run FILE train[mu2=0.5]` runs the matching
//! nodes with their upstream and nothing else; `-f` reruns the targets even when cached;
//! `--downstream` adds what depends on them; `-n` is `--dry-run`; `status` and `show` take the same
//! patterns; without a FILE, `pipe.yaml` or the last run's file is used.

mod common;
use common::{sorted, Workspace};

const GRID: &str = r#"
stages:
  prep:
    kind: command
    matrix: {dataset: [a, b]}
    params: {cmd: "echo ${matrix.dataset} > ${outputs.d}", outputs: [d]}
  train:
    kind: command
    matrix: {mu2: [0.0, 0.5]}
    inputs: {d: prep.d}
    params: {cmd: "cat ${inputs.d} > ${outputs.m}; echo ${matrix.mu2} >> ${outputs.m}", outputs: [m]}
  score:
    kind: command
    inputs: {m: train.m}
    params: {cmd: "wc -c < ${inputs.m} > ${outputs.s}", outputs: [s]}
"#;

#[test]
fn a_target_runs_with_its_upstream_and_nothing_else() {
    let ws = Workspace::new("targets");
    ws.write("grid.yaml", GRID);
    // Partial coordinates: every train node with mu2=0.5, with its prep.
    ws.ok(&["run", "grid.yaml", "train[mu2=0.5]"]);
    assert_eq!(ws.nodes_in("ran"), sorted(&["prep[dataset=a]", "prep[dataset=b]", "train[dataset=a,mu2=0.5]", "train[dataset=b,mu2=0.5]"]));
    assert_eq!(ws.last_run().len(), 4, "the run record holds the selected nodes only");

    // A stage name; mu2 given as 0 matches 0.0.
    ws.ok(&["run", "grid.yaml", "score[dataset=b,mu2=0]"]);
    assert_eq!(ws.nodes_in("ran"), sorted(&["train[dataset=b,mu2=0.0]", "score[dataset=b,mu2=0.0]"]));
    assert_eq!(ws.nodes_in("cached"), sorted(&["prep[dataset=b]"]));

    // -f reruns the target itself, not its upstream.
    ws.ok(&["run", "grid.yaml", "train[dataset=a,mu2=0.5]", "-f"]);
    assert_eq!(ws.nodes_in("ran"), sorted(&["train[dataset=a,mu2=0.5]"]));
    assert_eq!(ws.nodes_in("cached"), sorted(&["prep[dataset=a]"]));

    // --downstream: the target and what depends on it (with that node's own upstream).
    ws.ok(&["run", "grid.yaml", "prep[dataset=a]", "--downstream"]);
    assert_eq!(ws.nodes_in("ran"), sorted(&["train[dataset=a,mu2=0.0]", "score[dataset=a,mu2=0.0]", "score[dataset=a,mu2=0.5]"]));

    // -n: what would run, nothing runs.
    let out = ws.pipe(&["run", "grid.yaml", "score", "-n"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("would run score[dataset=b,mu2=0.5]") && text.contains("1 of 10 nodes would run"), "{text}");
    let forced = String::from_utf8(ws.pipe(&["run", "grid.yaml", "prep[dataset=a]", "-n", "-f"]).stdout).unwrap();
    assert!(forced.contains("would run prep[dataset=a]  (forced (-f)"), "{forced}");

    // A pattern matching nothing names the stage's nodes.
    let out = ws.pipe(&["run", "grid.yaml", "train[mu2=0.7]"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("matches no node") && err.contains("train[dataset=a,mu2=0.0]"), "{err}");
    let out = ws.pipe(&["run", "grid.yaml", "trian"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no stage `trian`; stages: prep, train, score"));
}

#[test]
fn status_and_show_take_patterns_and_the_file_defaults() {
    let ws = Workspace::new("targets-status");
    ws.write("grid.yaml", GRID);
    ws.ok(&["run", "grid.yaml", "train[dataset=a]"]);
    let status = String::from_utf8(ws.pipe(&["status", "grid.yaml", "train"]).stdout).unwrap();
    let lines: Vec<&str> = status.lines().filter(|l| l.contains('[')).collect();
    assert_eq!(lines.len(), 4, "{status}");
    assert!(status.contains("fresh   train[dataset=a,mu2=0.0]") && status.contains("missing train[dataset=b,mu2=0.5]"), "{status}");

    // show: one match is shown; several are listed.
    let show = String::from_utf8(ws.pipe(&["show", "grid.yaml", "train[dataset=a,mu2=0.5]"]).stdout).unwrap();
    assert!(show.starts_with("node    train[dataset=a,mu2=0.5]"), "{show}");
    let out = ws.pipe(&["show", "grid.yaml", "train[dataset=a]"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("2 nodes match") && err.contains("train[dataset=a,mu2=0.0]"), "{err}");

    // No FILE: the last run's file, then pipe.yaml when there is one.
    let status = String::from_utf8(ws.pipe(&["status", "train[dataset=a,mu2=0.0]"]).stdout).unwrap();
    assert!(status.contains("fresh   train[dataset=a,mu2=0.0]"), "{status}");
    ws.write("pipe.yaml", "stages:\n  only:\n    kind: command\n    params: {cmd: \"echo > ${outputs.o}\", outputs: [o]}\n");
    ws.ok(&["run"]);
    assert_eq!(ws.nodes_in("ran"), ["only"]);
}

#[test]
fn status_summarises_per_stage_and_lists_nodes_with_v() {
    let ws = Workspace::new("status-summary");
    ws.write("grid.yaml", GRID);
    ws.ok(&["run", "grid.yaml"]);
    // Both prep nodes change; prep[a] is rerun, so its train nodes see a changed input, while
    // prep[b]'s train nodes (and every score node) only wait on a stale upstream node.
    ws.write("grid.yaml", &GRID.replace("echo ${matrix.dataset} >", "echo ${matrix.dataset} data >"));
    ws.ok(&["run", "grid.yaml", "prep[dataset=a]"]);
    let out = String::from_utf8(ws.pipe(&["status", "grid.yaml"]).stdout).unwrap();
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "prep   1/2 fresh, 1 changed",
            "         params.cmd changed echo b > ${outputs.d} -> echo b data > ${outputs.d}",
            "train  0/4 fresh, 2 changed, 2 waiting on upstream",
            "         input d changed (from prep[dataset=a]) (2 nodes)",
            "score  0/4 fresh, 4 waiting on upstream",
            "1 of 10 nodes fresh (`pipe status FILE -v` lists each node and why)"
        ],
        "{out}"
    );
    let v = String::from_utf8(ws.pipe(&["status", "grid.yaml", "-v"]).stdout).unwrap();
    assert_eq!(v.lines().count(), 11, "{v}");
}

#[test]
fn dag_and_show_speak_json_and_dag_collapses_to_stages() {
    let ws = Workspace::new("dag-json");
    ws.write("grid.yaml", GRID);
    let stages = String::from_utf8(ws.pipe(&["dag", "grid.yaml", "--stages"]).stdout).unwrap();
    assert_eq!(
        stages.lines().collect::<Vec<_>>(),
        ["prep (command, 2 nodes)", "train (command, 4 nodes) <- prep.d", "score (command, 4 nodes) <- train.m"],
        "{stages}"
    );
    let v: serde_json::Value = serde_json::from_slice(&ws.pipe(&["dag", "grid.yaml", "--format", "json"]).stdout).unwrap();
    assert_eq!(v["nodes"].as_array().unwrap().len(), 10);
    assert_eq!(v["nodes"][2]["coords"]["mu2"], 0.0);
    assert!(v["edges"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["from"] == "prep[dataset=a]" && e["to"] == "train[dataset=a,mu2=0.5]" && e["input"] == "d"));
    let s: serde_json::Value = serde_json::from_slice(&ws.pipe(&["dag", "grid.yaml", "--stages", "--format", "json"]).stdout).unwrap();
    assert_eq!(s["stages"][1]["nodes"], 4);

    ws.ok(&["run", "grid.yaml", "prep[dataset=a]"]);
    let show: serde_json::Value = serde_json::from_slice(&ws.pipe(&["show", "grid.yaml", "prep[dataset=a]", "--json"]).stdout).unwrap();
    assert_eq!(show["node"], "prep[dataset=a]");
    assert_eq!(show["coords"]["dataset"], "a");
    assert_eq!(show["last_run"]["outputs"]["d"]["bytes"], 2);
    let never: serde_json::Value = serde_json::from_slice(&ws.pipe(&["show", "grid.yaml", "prep[dataset=b]", "--json"]).stdout).unwrap();
    assert!(never["last_run"].is_null());
}
