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
    // Both evals run the same command (metrics-a): one key, computed once under its claim; the
    // other node finds its result.
    let mut evals: Vec<&str> = states[..2].iter().map(|s| s.1).collect();
    evals.sort();
    assert_eq!(evals, ["cached", "ran"], "{states:?}");
    assert_eq!(states[2], ("results", "ran"));
    let again: serde_json::Value = serde_json::from_slice(&ws.pipe(&["run", "p.yaml", "--json"]).stdout).unwrap();
    assert!(again["nodes"].as_array().unwrap().iter().all(|n| n["state"] == "cached"));
}

/// One node's table: a row per (class, epoch) with two metrics, written as pipelines write theirs.
fn write_table(ws: &Workspace, rel: &str, rows: &[(&str, i64, f64, f64)]) {
    use polars::prelude::*;
    let mut df = df!(
        "class" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        "epoch" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        "auc" => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        "f1" => rows.iter().map(|r| r.3).collect::<Vec<_>>(),
    )
    .unwrap();
    let path = ws.dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    ParquetWriter::new(std::fs::File::create(path).unwrap()).finish(&mut df).unwrap();
}

/// `eval` copies `tables/<model>-a.parquet`, except where `overrides` (a YAML list) says otherwise.
fn multi_row_pipeline(overrides: &str) -> String {
    format!(
        r#"
stages:
  eval:
    kind: command
    matrix: {{model: [m1, m2]}}
    params: {{cmd: "cp tables/${{matrix.model}}-a.parquet ${{outputs.t.parquet}}", outputs: [t.parquet]}}
    overrides: {overrides}
  results:
    kind: concat
    inputs: {{tables: {{from: eval.t.parquet, gather: true}}}}
"#
    )
}

/// The metric lines of `pipe diff`'s section for `results`.
fn metric_lines(diff: &str) -> Vec<String> {
    let section = diff.split("\nmetrics (results").nth(1).unwrap_or_else(|| panic!("no metrics section: {diff}"));
    section.lines().skip(1).take_while(|l| l.starts_with("  ")).map(|l| l.trim().to_string()).collect()
}

#[test]
fn diff_matches_each_row_of_a_multi_row_node_by_its_full_key() {
    let ws = Workspace::new("runs-rows");
    let rows = [("cat", 1, 0.61, 0.50), ("cat", 2, 0.72, 0.55), ("dog", 1, 0.63, 0.52), ("dog", 2, 0.80, 0.60)];
    write_table(&ws, "tables/m1-a.parquet", &rows);
    write_table(&ws, "tables/m2-a.parquet", &[("cat", 1, 0.41, 0.30), ("cat", 2, 0.52, 0.35), ("dog", 1, 0.43, 0.32), ("dog", 2, 0.60, 0.40)]);
    // m1's second version: cat at epoch 2 scores better; the rows come in another order.
    write_table(&ws, "tables/m1-b.parquet", &[rows[3], rows[2], ("cat", 2, 0.77, 0.55), rows[0]]);
    ws.write("p.yaml", &multi_row_pipeline("[]"));
    ws.ok(&["run", "p.yaml"]);
    // One node's `cmd` param changed (a per-cell override): its table is m1-b.
    ws.write("p.yaml", &multi_row_pipeline(r#"[{when: {model: m1}, params: {cmd: "cp tables/m1-b.parquet ${outputs.t.parquet}"}}]"#));
    ws.ok(&["run", "p.yaml"]);
    let diff = String::from_utf8(ws.pipe(&["diff"]).stdout).unwrap();
    assert!(
        diff.contains("eval         cmd: cp tables/m1-a.parquet ${outputs.t.parquet} -> cp tables/m1-b.parquet ${outputs.t.parquet}  (1 node)"),
        "{diff}"
    );
    assert!(diff.contains("metrics (results; rows by node, model, class, epoch):"), "the key columns are named: {diff}");
    assert_eq!(metric_lines(&diff), ["eval[model=m1] class=cat epoch=2: auc 0.7200 -> 0.7700 (+0.0500)"], "{diff}");

    // m2 loses a row and gains one: each named, nothing else.
    write_table(&ws, "tables/m2-c.parquet", &[("cat", 1, 0.41, 0.30), ("cat", 2, 0.52, 0.35), ("dog", 1, 0.43, 0.32), ("bird", 1, 0.70, 0.50)]);
    ws.write(
        "p.yaml",
        &multi_row_pipeline(
            r#"[{when: {model: m1}, params: {cmd: "cp tables/m1-b.parquet ${outputs.t.parquet}"}},
                {when: {model: m2}, params: {cmd: "cp tables/m2-c.parquet ${outputs.t.parquet}"}}]"#,
        ),
    );
    ws.ok(&["run", "p.yaml"]);
    let diff = String::from_utf8(ws.pipe(&["diff"]).stdout).unwrap();
    assert_eq!(metric_lines(&diff), ["eval[model=m2] class=bird epoch=1: row added", "eval[model=m2] class=dog epoch=2: row removed"], "{diff}");
    // From the first run to the last: both changes, in the newer table's row order.
    let both = String::from_utf8(ws.pipe(&["diff", "-3", "-1"]).stdout).unwrap();
    assert_eq!(
        metric_lines(&both),
        [
            "eval[model=m1] class=cat epoch=2: auc 0.7200 -> 0.7700 (+0.0500)",
            "eval[model=m2] class=bird epoch=1: row added",
            "eval[model=m2] class=dog epoch=2: row removed"
        ],
        "{both}"
    );
}

/// What a node cost in CPU is measured, not its wall time relabelled: a command that counts to
/// 200,000 in `sh` uses 0.23-0.5 CPU seconds on this machine (idle to loaded; never more than its
/// wall time), one that sleeps a second a few milliseconds; the run record keeps it, and `pipe
/// runs` adds it up per run.
#[test]
fn runs_record_each_nodes_cpu_seconds() {
    let ws = Workspace::new("runs-cpu");
    ws.write(
        "p.yaml",
        r#"
stages:
  busy:
    kind: command
    params: {cmd: "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; echo $i > ${outputs.n.txt}", outputs: [n.txt]}
  idle:
    kind: command
    params: {cmd: "sleep 1; echo slept > ${outputs.s.txt}", outputs: [s.txt]}
"#,
    );
    ws.ok(&["run", "p.yaml", "--jobs", "1"]);
    let runs: serde_json::Value = serde_json::from_slice(&ws.pipe(&["runs", "--json"]).stdout).unwrap();
    let node = |id: &str| runs[0]["nodes"].as_array().unwrap().iter().find(|n| n["node"] == id).unwrap().clone();
    let (busy, idle) = (node("busy"), node("idle"));
    let (busy_cpu, busy_wall) = (busy["cpu_s"].as_f64().unwrap(), busy["duration_s"].as_f64().unwrap());
    assert!(busy_cpu > 0.1 && busy_cpu <= busy_wall + 0.05, "{busy}");
    let (idle_cpu, idle_wall) = (idle["cpu_s"].as_f64().unwrap(), idle["duration_s"].as_f64().unwrap());
    assert!(idle_wall >= 1.0 && idle_cpu < 0.05, "{idle}");
    let table = String::from_utf8(ws.pipe(&["runs"]).stdout).unwrap();
    assert!(table.lines().next().unwrap().contains(" cpu "), "{table}");
    assert!(table.contains(&format!("{:.1}s", busy_cpu + idle_cpu)), "{table}");
    // The threads each node was given are kept with it (results such as trained weights depend
    // on them): in the run record and the node's own record, which `pipe show` prints.
    ws.ok(&["run", "p.yaml", "-f", "--jobs", "1", "--threads", "3"]);
    let runs: serde_json::Value = serde_json::from_slice(&ws.pipe(&["runs", "--json"]).stdout).unwrap();
    let last = runs.as_array().unwrap().iter().max_by(|a, b| a["started_at"].as_f64().partial_cmp(&b["started_at"].as_f64()).unwrap()).unwrap();
    assert_eq!(last["threads"], 3, "{last}");
    let show: serde_json::Value = serde_json::from_slice(&ws.pipe(&["show", "p.yaml", "busy", "--json"]).stdout).unwrap();
    assert_eq!(show["last_run"]["threads"], 3, "{show}");
    let text = String::from_utf8(ws.pipe(&["show", "p.yaml", "busy"]).stdout).unwrap();
    assert!(text.contains("CPU s, 3 threads)"), "{text}");
}
