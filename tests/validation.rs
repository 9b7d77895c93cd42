//! Every mistake is found before anything runs, once, with its place and a hint.

mod common;
use common::Workspace;

const GRID: &str = r#"params:
  epochs: 3
stages:
  ingest:
    kind: ingest
    matrix: {dataset: [mnist, fashion-mnist]}
    params: {normal_class: 0}
  pretrain:
    kind: pretrain_ae
    matrix: {seed: [0, 1]}
    inputs: {data: ingest.dataset}
    params: {epochs: "${params.epochs}"}
"#;

fn fails(ws: &Workspace, args: &[&str]) -> String {
    let out = ws.pipe(args);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(3), "{args:?}: {err}");
    assert!(!ws.store().join("runs/latest.json").exists(), "nothing may run: {err}");
    err
}

#[test]
fn an_unknown_pipeline_param_override_is_an_error_with_a_suggestion() {
    let ws = Workspace::new("unknown-param-override");
    ws.write("p.yaml", GRID);
    let err = fails(&ws, &["run", "p.yaml", "--set", "params.epoch=5"]);
    assert!(err.contains("override `params.epoch`: the pipeline declares no param `epoch`") && err.contains("epochs"), "{err}");
}

#[test]
fn one_bad_override_over_a_grid_is_reported_once() {
    let ws = Workspace::new("bad-set-once");
    ws.write("p.yaml", GRID);
    let err = fails(&ws, &["run", "p.yaml", "--set", "pretrain.lr=fast"]);
    assert_eq!(err.matches("error:").count(), 1, "{err}");
    assert!(err.contains("param `lr` of stage `pretrain`"), "{err}");
}

#[test]
fn out_of_range_params_are_caught_at_validation_with_their_place() {
    let ws = Workspace::new("ranges");
    ws.write(
        "p.yaml",
        r#"stages:
  ingest:
    kind: ingest
    params: {dataset: mnist, normal_class: 10}
  pretrain:
    kind: pretrain_ae
    inputs: {data: ingest.dataset}
    params: {epochs: 0, batch_size: 1, lr: -1}
  train:
    kind: train_svdd
    inputs: {data: ingest.dataset, ae: pretrain.model}
    params: {objective: soft-boundary, nu: 0}
  threshold:
    kind: fit_threshold
    inputs: {scores: train.scores}
    params: {level: 1.5}
"#,
    );
    let err = fails(&ws, &["run", "p.yaml"]);
    for (what, place) in [
        ("param `normal_class` of stage `ingest`: 10 is out of range; it must be in [0, 9]", "p.yaml:4:"),
        ("param `epochs` of stage `pretrain`: 0 is out of range; it must be >= 1", "p.yaml:8:"),
        ("param `batch_size` of stage `pretrain`: 1 is out of range; it must be >= 2", "p.yaml:8:"),
        ("param `lr` of stage `pretrain`: -1.0 is out of range; it must be > 0", "p.yaml:8:"),
        ("param `nu` of stage `train`: 0.0 is out of range; it must be in (0, 1]", "p.yaml:12:"),
        ("param `level` of stage `threshold`: 1.5 is out of range; it must be in (0, 1)", "p.yaml:16:"),
    ] {
        let at = err.find(what).unwrap_or_else(|| panic!("missing `{what}` in:\n{err}"));
        assert!(err[at..].lines().nth(1).is_some_and(|l| l.contains(place)), "{what} at {place}:\n{err}");
    }
    assert_eq!(err.matches("error:").count(), 6, "{err}");
}

#[test]
fn a_file_with_a_byte_order_mark_is_accepted() {
    let ws = Workspace::new("bom");
    ws.write("p.yaml", "\u{FEFF}stages:\n  a:\n    kind: command\n    params: {cmd: \"echo hi > ${outputs.o}\", outputs: [o]}\n");
    let err = ws.ok(&["run", "p.yaml"]);
    assert!(err.contains("1 ran"), "{err}");
}
