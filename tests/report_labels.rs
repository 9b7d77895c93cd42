//! The report names each row by the loss weights its model really trained with (read back from
//! the training history), never by an assumed default: a run with mu1 = 2, or with mu2 set as a
//! plain param instead of a grid axis, is not filed under the published rows.

mod common;
use common::Workspace;

fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const PIPELINE: &str = r#"
name: labels
stages:
  ingest:
    kind: ingest
    matrix: {dataset: [mnist], normal_class: [0]}
    params: {data_dir: DATA}
  pretrain:
    kind: pretrain_ae
    inputs: {data: ingest.dataset}
    params: {epochs: 1, batch_size: 128, lr: 0.001, milestones: []}
  train:
    kind: train_svdd
    matrix: {seed: [0, 1]}
    inputs: {data: ingest.dataset, ae: pretrain.model}
    params: {seed: "${matrix.seed}", epochs: 2, batch_size: 128, lr: 0.001, milestones: [], mu1: 2.0, mu2: 0.5}
  threshold:
    kind: fit_threshold
    inputs: {scores: train.scores}
  evaluate:
    kind: evaluate
    inputs: {scores: threshold.scores, threshold: threshold.threshold}
  results:
    kind: concat
    inputs: {tables: {from: evaluate.metrics, gather: true}}
  report:
    kind: report
    inputs: {results: results.table, histories: {from: train.history, gather: true}}
    publish: {markdown: report.md}
"#;

#[test]
fn rows_are_named_by_the_weights_their_models_trained_with() {
    let ws = Workspace::new("report-labels");
    let data = repo().join("data/bundled");
    ws.write("pipeline.yaml", &PIPELINE.replace("DATA", &data.display().to_string()));
    ws.ok(&["run", "pipeline.yaml"]);
    let md = ws.read("report.md");
    // Two seeds of one configuration: mu1 = 2, mu2 = 0.5 (a param, not an axis), radius threshold.
    let row = md.lines().find(|l| l.starts_with("| hybrid mu1=2, mu2=0.5 |")).unwrap_or_else(|| panic!("{md}"));
    assert!(row.contains(" (2) |"), "both seeds in the row: {row}");
    assert!(!md.lines().any(|l| l.starts_with("| hybrid mu1=1, mu2=0.5 |") && !l.contains("not run")), "{md}");
    assert!(md.contains("| baseline Deep SVDD | 0.9814 / 0.9825 | not run |"), "mu2 = 0.5 is not the baseline:\n{md}");
}
