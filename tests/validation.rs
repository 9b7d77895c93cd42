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
        ("param `epochs` of stage `pretrain`: 0 is out of range; it must be in [1, 100000]", "p.yaml:8:"),
        ("param `batch_size` of stage `pretrain`: 1 is out of range; it must be in [2, 1000000]", "p.yaml:8:"),
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

/// The error block of `err` whose first line holds `what`: its message, place, quoted line and hint.
fn block<'a>(err: &'a str, what: &str) -> &'a str {
    let b = err.split("\n\n").find(|b| b.contains(what)).unwrap_or_else(|| panic!("no error `{what}` in:\n{err}"));
    // The last block ends with the count (`2 errors in p.yaml`).
    match b.trim_end().rsplit_once('\n') {
        Some((head, last)) if !last.starts_with(' ') && last.contains(" in ") => head,
        _ => b,
    }
}

#[test]
fn pipeline_params_referring_to_themselves_are_a_cycle_named_at_its_place() {
    let ws = Workspace::new("param-cycles");
    ws.write("self.yaml", "params:\n  a: \"${params.a}\"\nstages:\n  s:\n    kind: command\n    params: {cmd: \"echo ${params.a}\"}\n");
    let err = fails(&ws, &["run", "self.yaml"]);
    let b = block(&err, "refers to itself");
    assert!(b.starts_with("error: pipeline param `a` refers to itself: `a` -> `a`\n  --> self.yaml:2:6\n"), "{b}");
    assert!(b.ends_with("= hint: a param's value cannot depend on itself: give `a` a literal value"), "{b}");
    assert_eq!(err.matches("error:").count(), 1, "{err}");

    // Three params around a loop, written out of order, with one bystander that refers into it.
    ws.write(
        "loop.yaml",
        "params:\n  x: 1\n  b: \"${params.c}/b\"\n  a: \"${params.b}\"\n  c: \"${params.a}-c\"\n  d: \"${params.a}\"\n\
         stages:\n  s:\n    kind: command\n    params: {cmd: \"echo ${params.d} ${params.x}\"}\n",
    );
    let err = fails(&ws, &["run", "loop.yaml"]);
    let b = block(&err, "cycle");
    assert!(b.starts_with("error: pipeline params refer to each other in a cycle: `b` -> `c` -> `a` -> `b`\n  --> loop.yaml:3:6\n"), "{b}");
    assert!(b.contains("= hint: a param's value cannot depend on itself: give one of these params a literal value"), "{b}");
    assert_eq!(err.matches("error:").count(), 1, "{err}");

    // A `--set` that closes the loop is refused too, and named as the command line's.
    ws.write("ok.yaml", "params:\n  a: 1\n  b: \"${params.a}\"\nstages:\n  s:\n    kind: command\n    params: {cmd: \"echo ${params.b}\"}\n");
    let err = fails(&ws, &["run", "ok.yaml", "--set", "params.a=${params.b}"]);
    assert!(err.contains("error: pipeline params refer to each other in a cycle: `a` -> `b` -> `a`\n  --> command line (--set)\n"), "{err}");
}

#[test]
fn pipeline_params_and_matrix_values_resolve_through_pipeline_params() {
    let ws = Workspace::new("param-chains");
    ws.write(
        "p.yaml",
        r#"params:
  greeting: "hi-${params.n}"
  n: 3
stages:
  a:
    kind: command
    matrix: {k: ["${params.n}", 4]}
    params: {cmd: "echo ${params.greeting} ${matrix.k} > ${outputs.o}", outputs: [o]}
    publish: {o: "out/${matrix.k}.txt"}
"#,
    );
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(ws.read("out/3.txt"), "hi-3 3\n");
    assert_eq!(ws.read("out/4.txt"), "hi-3 4\n");
    // `--set` reaches the params that refer to the one it sets.
    ws.ok(&["run", "p.yaml", "--set", "params.n=5"]);
    assert_eq!(ws.read("out/5.txt"), "hi-5 5\n");
}

#[test]
fn matrix_values_must_be_literal_or_resolve() {
    let ws = Workspace::new("matrix-refs");
    ws.write(
        "p.yaml",
        r#"params:
  seeds: 3
stages:
  a:
    kind: command
    matrix:
      x: ["${params.nope}", 2]
      y:
        - "${matrix.x}"
    params: {cmd: "echo ${matrix.x} ${matrix.y}"}
"#,
    );
    let err = fails(&ws, &["run", "p.yaml"]);
    let b = block(&err, "no pipeline param `nope`");
    assert!(b.starts_with("error: matrix axis `x` of stage `a`: `${params.nope}`: no pipeline param `nope`\n  --> p.yaml:7:11\n"), "{b}");
    assert!(b.ends_with("= hint: declare `nope` under the top-level `params:` (declared: seeds)"), "{b}");
    let b = block(&err, "matrix.x}`: a matrix value");
    assert!(b.starts_with("error: matrix axis `y` of stage `a`: `${matrix.x}`: a matrix value cannot refer to a matrix axis"), "{b}");
    assert!(b.contains("  --> p.yaml:9:11\n") && b.contains("= hint: write the value itself"), "{b}");
    assert_eq!(err.matches("error:").count(), 2, "{err}");
}

#[test]
fn params_that_count_work_have_upper_bounds_a_machine_can_finish() {
    let ws = Workspace::new("upper-bounds");
    ws.write(
        "p.yaml",
        r#"stages:
  ingest:
    kind: ingest
    params: {dataset: mnist, normal_class: 0, limit_train: -1}
  pretrain:
    kind: pretrain_ae
    inputs: {data: ingest.dataset}
    params: {epochs: 9223372036854775807, batch_size: 2000000}
  tsne:
    kind: tsne
    inputs: {scores: pretrain.history}
    params: {epochs: 1000001}
"#,
    );
    let err = fails(&ws, &["run", "p.yaml"]);
    for (what, place, hint) in [
        ("param `limit_train` of stage `ingest`: -1 is out of range; it must be in [0, 100000000]", "p.yaml:4:60", "`limit_train`: keep the first N"),
        (
            "param `epochs` of stage `pretrain`: 9223372036854775807 is out of range; it must be in [1, 100000]",
            "p.yaml:8:22",
            "`epochs`: training epochs",
        ),
        (
            "param `batch_size` of stage `pretrain`: 2000000 is out of range; it must be in [2, 1000000]",
            "p.yaml:8:55",
            "`batch_size`: mini-batch size",
        ),
        ("param `epochs` of stage `tsne`: 1000001 is out of range; it must be in [1, 1000000]", "p.yaml:12:22", "`epochs`: optimisation iterations"),
    ] {
        let b = block(&err, what);
        assert!(b.starts_with(&format!("error: {what}\n  --> {place}\n")), "{b}");
        assert!(b.contains(&format!("= hint: {hint}")), "{b}");
    }
    assert_eq!(err.matches("error:").count(), 4, "{err}");
    // The shipped pipelines stay valid, within every bound.
    let registry = pipe_kinds::builtin();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    for p in std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()) {
        if let Err(e) = pipe::config::load(&p, &registry, &[]) {
            panic!("{}: {e}", p.display());
        }
    }
}

#[test]
fn names_too_long_for_a_file_system_are_refused_at_their_line() {
    let ws = Workspace::new("long-names");
    let long = "o".repeat(300);
    ws.write(
        "p.yaml",
        &format!(
            "stages:\n  a:\n    kind: command\n    params: {{cmd: \"true\", outputs: [ok.txt, {long}]}}\n    publish: {{ok.txt: \"res/{long}/\"}}\n"
        ),
    );
    let err = fails(&ws, &["run", "p.yaml"]);
    let b = block(&err, "output name");
    assert!(
        b.starts_with(&format!(
            "error: stage `a`: output name `{}…` is 300 bytes long; an output's name may be at most 200\n  --> p.yaml:4:45\n",
            &long[..40]
        )),
        "{b}"
    );
    assert!(b.contains("= hint: shorten it: file systems allow 255 bytes per name"), "{b}");
    let b = block(&err, "publish `ok.txt`");
    assert!(b.contains("holds a name of 300 bytes") && b.contains("  --> p.yaml:5:23\n") && b.contains("names of at most 200 bytes"), "{b}");
    assert!(err.lines().all(|l| l.chars().count() < 400), "{err}");
}

#[test]
fn a_compare_block_names_axes_of_the_grid_and_every_mistake_in_it_is_placed() {
    let ws = Workspace::new("compare-block");
    // A misspelt baseline axis, the replicate in the baseline, a `within` that is no axis, an
    // unknown key, and a flag that is not a bool: each at its line, with what to write.
    ws.write(
        "p.yaml",
        &format!(
            "{GRID}compare:\n  metric: auc\n  baseline: {{datset: mnist, seed: 0}}\n  within: normal_class\n  lower_is_better: yes\n  replicat: seed\n"
        ),
    );
    let err = fails(&ws, &["run", "p.yaml"]);
    assert!(err.contains("`compare.baseline`: `datset` is not an axis of the grid") && err.contains("did you mean `dataset`?"), "{err}");
    assert!(err.contains("`compare.baseline` names `seed`, the replicate axis the cells are paired on"), "{err}");
    assert!(err.contains("`compare.lower_is_better` must be true or false, found string"), "{err}");
    assert!(err.contains("unknown key `replicat` in `compare`") && err.contains("did you mean `replicate`?"), "{err}");
    assert!(err.contains("p.yaml:15:"), "the baseline's line: {err}");
    // A compare block without its metric says what it lacks, at its key.
    ws.write("q.yaml", &format!("{GRID}compare:\n  baseline: {{dataset: mnist}}\n"));
    let err = fails(&ws, &["run", "q.yaml"]);
    assert!(err.contains("`compare` has no `metric`") && err.contains("q.yaml:13:1"), "{err}");
    // Each name in one role: `within` is not the replicate, the metric is not an axis; an empty
    // baseline says so.
    ws.write("w.yaml", &format!("{GRID}compare: {{metric: dataset, baseline: {{dataset: mnist}}, within: seed}}\n"));
    let err = fails(&ws, &["run", "w.yaml"]);
    assert!(err.contains("`compare.within` is `seed`, the replicate axis"), "{err}");
    assert!(err.contains("`compare.metric` is `dataset`, an axis of the grid"), "{err}");
    ws.write("e.yaml", &format!("{GRID}compare: {{metric: auc, baseline: {{}}}}\n"));
    assert!(fails(&ws, &["run", "e.yaml"]).contains("`compare.baseline` is empty"));
    // Without a `seed` axis, the default replicate is named as the default, with the way out.
    ws.write(
        "f.yaml",
        "stages:\n  t:\n    kind: command\n    matrix: {method: [a, b], fold: [0, 1, 2]}\n    params: {cmd: \"true\"}\ncompare: {metric: auc, baseline: {method: a}}\n",
    );
    let err = fails(&ws, &["run", "f.yaml"]);
    assert!(
        err.contains("pairs cells on the `seed` axis unless `replicate:` names another")
            && err.contains("add `replicate: AXIS`")
            && err.contains("fold, method"),
        "{err}"
    );
    // A metric may be any column name (`test/auc`), as `pipe compare --metric` takes it.
    ws.write("m.yaml", &format!("{GRID}compare: {{metric: test/auc, baseline: {{dataset: mnist}}}}\n"));
    assert!(ws.pipe(&["dag", "m.yaml"]).status.success());
    // A valid one (its values are not checked: narrowing an axis with --set keeps the file valid).
    ws.write("r.yaml", &format!("{GRID}compare:\n  metric: auc\n  baseline: {{dataset: mnist}}\n"));
    let out = ws.pipe(&["dag", "r.yaml"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
