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

#[test]
fn hostile_yaml_is_bounded_and_located() {
    let ws = Workspace::new("hostile-yaml");
    // Nested aliases that would expand to 10^9 values.
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        bomb.push_str(&format!("a{i}: &a{i} [{}]\n", vec![format!("*a{}", i - 1); 10].join(", ")));
    }
    bomb.push_str("stages: {}\n");
    ws.write("bomb.yaml", &bomb);
    let err = fails(&ws, &["run", "bomb.yaml"]);
    assert!(err.contains("aliases (`*name`) expand to more than 100000 values") && err.contains("bomb.yaml:"), "{err}");

    // 10,000 nested sequences on one line, flow and block style: an error, not a stack overflow,
    // and the 20,000-character line is shown as a window around the spot.
    for (name, text) in [
        ("deep.yaml", format!("stages: {}{}\n", "[".repeat(10_000), "]".repeat(10_000))),
        ("dash.yaml", format!("stages:\n  {}x\n", "- ".repeat(10_000))),
    ] {
        ws.write(name, &text);
        let err = fails(&ws, &["run", name]);
        assert!((err.contains("nested more than 128 levels") || err.contains("recursion limit")) && err.contains(&format!("{name}:")), "{err}");
        assert!(err.lines().all(|l| l.chars().count() < 200), "{err}");
    }

    // A second document is not silently ignored.
    ws.write("two.yaml", "stages:\n  a:\n    kind: command\n    params: {cmd: \"true\"}\n---\nstages: {b: {kind: nope}}\n");
    let err = fails(&ws, &["run", "two.yaml"]);
    assert!(err.contains("a second YAML document") && err.contains("two.yaml:5:") && err.contains("remove the `---`"), "{err}");

    // An integer literal beyond 64 bits is not rounded into a float.
    ws.write("big.yaml", "stages:\n  a:\n    kind: command\n    matrix: {seed: [99999999999999999999]}\n    params: {cmd: \"true\"}\n");
    let err = fails(&ws, &["run", "big.yaml"]);
    assert!(err.contains("integer `99999999999999999999` is out of range") && err.contains("quote it") && err.contains("big.yaml:4:21"), "{err}");

    // A directory where the file should be.
    std::fs::create_dir_all(ws.dir.join("dir.yaml")).unwrap();
    let err = fails(&ws, &["run", "dir.yaml"]);
    assert!(err.contains("it is a directory"), "{err}");
}

#[test]
fn a_literal_dollar_brace_reaches_the_shell_escaped_as_double_dollar() {
    let ws = Workspace::new("dollar-escape");
    ws.write(
        "p.yaml",
        "stages:\n  a:\n    kind: command\n    params: {cmd: \"f=report.txt; echo $${f%.txt} $${UNSET_VAR:-dflt} > ${outputs.o}\", outputs: [o]}\n    publish: {o: out.txt}\n",
    );
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(ws.read("out.txt"), "report dflt\n");
    // Unescaped, it is an unknown reference whose hint names the escape.
    let ws = Workspace::new("dollar-unescaped");
    ws.write("q.yaml", "stages:\n  a:\n    kind: command\n    params: {cmd: \"echo ${UNSET_VAR:-dflt}\"}\n");
    let err = fails(&ws, &["run", "q.yaml"]);
    assert!(err.contains("unknown reference") && err.contains("$${UNSET_VAR:-dflt}"), "{err}");
}
