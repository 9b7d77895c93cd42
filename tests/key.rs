//! `pipe key`: a node's fingerprint, and exactly the fields that differ between two grid cells or
//! between the node now and in an earlier run.

mod common;
use common::Workspace;

fn pipeline(suffix: &str) -> String {
    format!(
        r#"
stages:
  make:
    kind: command
    matrix: {{n: [1, 2]}}
    params: {{cmd: "echo ${{matrix.n}}{suffix} > ${{outputs.out.txt}}", outputs: [out.txt]}}
  use:
    kind: command
    inputs: {{data: make.out.txt}}
    params: {{cmd: "cat ${{inputs.data}} > ${{outputs.copy.txt}}", outputs: [copy.txt]}}
"#
    )
}

fn stdout(ws: &Workspace, args: &[&str]) -> String {
    let out = ws.pipe(args);
    assert!(out.status.success(), "pipe {args:?}: {:?}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The rows of a textual diff (the header line left out): their field names.
fn fields(text: &str) -> Vec<String> {
    text.lines().skip(1).map(|l| l.split_whitespace().next().unwrap().to_string()).collect()
}

#[test]
fn two_grid_cells_differ_in_exactly_the_param_they_set() {
    let ws = Workspace::new("key-cells");
    ws.write("p.yaml", &pipeline(""));
    let text = stdout(&ws, &["key", "p.yaml", "make[n=1]", "make[n=2]"]);
    assert_eq!(fields(&text), ["params.cmd"], "{text}");
    assert!(text.lines().next().unwrap().contains("make[n=1]") && text.contains("\"echo 2 > ${outputs.out.txt}\""), "{text}");
    let json: serde_json::Value = serde_json::from_str(&stdout(&ws, &["key", "p.yaml", "make[n=1]", "make[n=2]", "--json"])).unwrap();
    assert_eq!(json["identical"], false);
    assert_eq!(
        json["differences"],
        serde_json::json!([{"field": "params.cmd", "left": "echo 1 > ${outputs.out.txt}", "right": "echo 2 > ${outputs.out.txt}"}])
    );

    // One node: every field of the manifest, and the key `pipe status` reports.
    let shown: serde_json::Value = serde_json::from_str(&stdout(&ws, &["key", "p.yaml", "make[n=1]", "--json"])).unwrap();
    let status: serde_json::Value = serde_json::from_str(&stdout(&ws, &["status", "p.yaml", "--json"])).unwrap();
    let key = status.as_array().unwrap().iter().find(|s| s["node"] == "make[n=1]").unwrap()["key"].clone();
    assert_eq!(shown["key"], key);
    assert_eq!(shown["fingerprint"]["kind"], "command");
    assert_eq!(shown["fingerprint"]["params"]["outputs"], serde_json::json!(["out.txt"]));
    let text = stdout(&ws, &["key", "p.yaml", "make[n=1]"]);
    for field in ["node", "key", "key_version", "kind", "stage_version", "params.cmd", "params.outputs", "inputs", "environment"] {
        assert!(text.lines().any(|l| l.split_whitespace().next() == Some(field)), "{field} missing:\n{text}");
    }

    // The same node twice: identical, exit 0.
    let same = stdout(&ws, &["key", "p.yaml", "make[n=1]", "make[n=1]"]);
    assert!(same.starts_with("identical: "), "{same}");
}

#[test]
fn an_edited_param_is_the_field_named_against_the_run_before() {
    let ws = Workspace::new("key-runs");
    ws.write("p.yaml", &pipeline(""));
    ws.ok(&["run", "p.yaml"]);
    ws.write("p.yaml", &pipeline(" again"));
    ws.ok(&["run", "p.yaml"]);
    let text = stdout(&ws, &["key", "p.yaml", "make[n=1]", "--run", "-2"]);
    assert_eq!(fields(&text), ["params.cmd"], "{text}");
    assert!(text.contains("\"echo 1 > ${outputs.out.txt}\"") && text.contains("\"echo 1 again > ${outputs.out.txt}\""), "{text}");
    // Downstream, the param is the same and the input's content is not.
    let text = stdout(&ws, &["key", "p.yaml", "use[n=2]", "--run", "-2"]);
    assert_eq!(fields(&text), ["inputs.data[0]"], "{text}");
    // The last run computed what the file says now.
    let same = stdout(&ws, &["key", "p.yaml", "make[n=1]", "--run", "-1"]);
    assert!(same.starts_with("identical: "), "{same}");
    // A run id works as well as a position.
    let runs: serde_json::Value = serde_json::from_slice(&ws.pipe(&["runs", "--json"]).stdout).unwrap();
    let first = runs[0]["run_id"].as_str().unwrap();
    assert_eq!(fields(&stdout(&ws, &["key", "p.yaml", "make[n=1]", "--run", first])), ["params.cmd"]);
    // No third run holds it.
    let out = ws.pipe(&["key", "p.yaml", "make[n=1]", "--run", "-3"]);
    assert_eq!(out.status.code(), Some(7), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 run(s) of p.yaml hold make[n=1]"));
}

#[test]
fn an_unknown_node_is_an_error_naming_it() {
    let ws = Workspace::new("key-unknown");
    ws.write("p.yaml", &pipeline(""));
    let out = ws.pipe(&["key", "p.yaml", "make[n=3]"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    assert!(stderr.contains("make[n=3]") && stderr.contains("matches no node"), "{stderr}");
    assert!(out.stdout.is_empty());
    // Inputs not computed yet: no key, and what to run.
    let out = ws.pipe(&["key", "p.yaml", "use[n=1]"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(stderr.contains("use[n=1] has no key yet") && stderr.contains("pipe run p.yaml 'use[n=1]'"), "{stderr}");
}
