//! `pipe runs` lists every run with its provenance; `pipe diff` names what changed between two
//! runs: the params per stage and the metrics per results row.

mod common;
use common::Workspace;

fn pipeline(metrics: &str) -> String {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    format!(
        r#"
stages:
  eval:
    kind: command
    matrix: {{model: [m1, m2]}}
    params: {{cmd: "cp {}/metrics-${{matrix.model}}.parquet ${{outputs.t.parquet}}", outputs: [t.parquet]}}
  results:
    kind: concat
    inputs: {{tables: {{from: eval.t.parquet, gather: true}}}}
"#,
        data.display()
    )
    .replace("metrics-${matrix.model}", metrics)
}

#[test]
fn runs_list_provenance_and_diff_names_params_and_metrics() {
    let ws = Workspace::new("runs");
    ws.write("p.yaml", &pipeline("metrics-a"));
    ws.ok(&["run", "p.yaml"]);
    // A second run: one param of `eval` edited (the file copied), via the file.
    ws.write("p.yaml", &pipeline("metrics-b"));
    ws.ok(&["run", "p.yaml", "--set", "eval.outputs=[t.parquet]"]);

    let list = String::from_utf8(ws.pipe(&["runs"]).stdout).unwrap();
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert!(lines[1].contains(" ok ") && lines[1].contains("p.yaml"), "{list}");
    assert!(lines[2].contains("[eval.outputs=[t.parquet]]"), "the overrides are listed: {list}");
    let json: serde_json::Value = serde_json::from_slice(&ws.pipe(&["runs", "--json", "-n", "1"]).stdout).unwrap();
    let last = &json[0];
    assert_eq!(json.as_array().unwrap().len(), 1);
    assert_eq!(last["pipe_version"], env!("CARGO_PKG_VERSION"));
    assert!(last["started"].as_str().unwrap().ends_with('Z') && !last["host"].as_str().unwrap().is_empty(), "{last}");

    let diff = String::from_utf8(ws.pipe(&["diff"]).stdout).unwrap();
    assert!(diff.contains("eval") && diff.contains("cmd: cp ") && diff.contains("metrics-a.parquet") && diff.contains("(2 nodes)"), "{diff}");
    assert!(diff.contains("results      inputs changed (upstream)  (1 node)"), "{diff}");
    assert!(diff.contains("eval[model=m1]: auc 0.9000 -> 0.9500 (+0.0500)"), "the metric change per row: {diff}");
    assert!(!diff.contains("f1 "), "unchanged metrics are not listed: {diff}");
    // By position and by id prefix; an unknown run is named.
    let runs: Vec<String> = json_ids(&ws);
    let same = String::from_utf8(ws.pipe(&["diff", &runs[0][..12], "-1"]).stdout).unwrap();
    assert_eq!(same, diff);
    let out = ws.pipe(&["diff", "nope", "-1"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no run `nope`"));
}

fn json_ids(ws: &Workspace) -> Vec<String> {
    let json: serde_json::Value = serde_json::from_slice(&ws.pipe(&["runs", "--json"]).stdout).unwrap();
    json.as_array().unwrap().iter().map(|r| r["run_id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn run_json_prints_the_run_record() {
    let ws = Workspace::new("run-json");
    ws.write("p.yaml", &pipeline("metrics-a"));
    let out = ws.pipe(&["run", "p.yaml", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "ok");
    let states: Vec<(&str, &str)> =
        v["nodes"].as_array().unwrap().iter().map(|n| (n["node"].as_str().unwrap(), n["state"].as_str().unwrap())).collect();
    assert_eq!(states, [("eval[model=m1]", "ran"), ("eval[model=m2]", "ran"), ("results", "ran")]);
    let again: serde_json::Value = serde_json::from_slice(&ws.pipe(&["run", "p.yaml", "--json"]).stdout).unwrap();
    assert!(again["nodes"].as_array().unwrap().iter().all(|n| n["state"] == "cached"));
}
