//! Per-cell settings (`overrides:`): a param that differs for some grid cells, e.g. CIFAR-10's
//! longer autoencoder schedule in Ruff et al.'s README settings. Adding one reruns exactly the cells
//! it matches (every other key is unchanged), a later override wins, and `--set` wins over both.

mod common;
use common::{sorted, Workspace};

const BASE: &str = r#"
stages:
  data:
    kind: command
    matrix: {dataset: [mnist, fashion, cifar10]}
    params: {cmd: "echo ${matrix.dataset} > ${outputs.d}", outputs: [d]}
  fit:
    kind: command
    matrix: {seed: [0, 1]}
    inputs: {data: data.d}
    params: {cmd: "echo epochs=150 seed=${matrix.seed} > ${outputs.m}", outputs: [m]}
"#;

const OVERRIDES: &str = r#"
    overrides:
      - when: {dataset: cifar10}
        params: {cmd: "echo epochs=350 seed=${matrix.seed} > ${outputs.m}"}
      - when: {dataset: cifar10, seed: 1}
        params: {cmd: "echo epochs=400 seed=${matrix.seed} > ${outputs.m}"}
"#;

fn out(ws: &Workspace, node: &str) -> String {
    out_with(ws, node, &[])
}

/// The node's output under these `--set` overrides (`pipe show` shows the result of the params it is given).
fn out_with(ws: &Workspace, node: &str, set: &[&str]) -> String {
    let mut args = vec!["show", "pipeline.yaml", node];
    args.extend_from_slice(set);
    let show = String::from_utf8(ws.pipe(&args).stdout).unwrap();
    let path = show.lines().find_map(|l| l.trim().strip_prefix("m: ")).unwrap_or_else(|| panic!("{show}"));
    std::fs::read_to_string(ws.dir.join(path.split(" (").next().unwrap())).unwrap().trim().to_string()
}

#[test]
fn an_override_reruns_exactly_the_cells_it_matches() {
    let ws = Workspace::new("overrides");
    ws.write("pipeline.yaml", BASE);
    ws.ok(&["run", "pipeline.yaml"]);
    assert_eq!(ws.nodes_in("ran").len(), 9);

    ws.write("pipeline.yaml", &format!("{BASE}{OVERRIDES}"));
    ws.ok(&["run", "pipeline.yaml"]);
    assert_eq!(ws.nodes_in("ran"), sorted(&["fit[dataset=cifar10,seed=0]", "fit[dataset=cifar10,seed=1]"]));
    assert_eq!(out(&ws, "fit[dataset=cifar10,seed=0]"), "epochs=350 seed=0");
    assert_eq!(out(&ws, "fit[dataset=cifar10,seed=1]"), "epochs=400 seed=1", "the later matching override wins");
    assert_eq!(out(&ws, "fit[dataset=mnist,seed=1]"), "epochs=150 seed=1");
    let show = String::from_utf8(ws.pipe(&["show", "pipeline.yaml", "fit[dataset=cifar10,seed=0]"]).stdout).unwrap();
    assert!(show.contains("param   cmd = echo epochs=350 seed=0 > ${outputs.m}"), "`pipe show` gives the cell's own value:\n{show}");

    // The command line wins over the file's overrides, for every cell.
    ws.ok(&["run", "pipeline.yaml", "--set", "fit.cmd=echo cli > ${outputs.m}"]);
    for d in ["mnist", "fashion", "cifar10"] {
        for seed in [0, 1] {
            assert_eq!(out_with(&ws, &format!("fit[dataset={d},seed={seed}]"), &["--set", "fit.cmd=echo cli > ${outputs.m}"]), "cli");
        }
    }

    // Removing the overrides again: every node is a cache hit (keys as before).
    ws.write("pipeline.yaml", BASE);
    ws.ok(&["run", "pipeline.yaml"]);
    assert_eq!(ws.nodes_in("ran"), Vec::<String>::new());
}
