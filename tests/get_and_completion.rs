//! `pipe get` copies one output of a fresh node out of the store; `pipe completion SHELL` prints a
//! completion script.

mod common;
use common::Workspace;

const P: &str = r#"
stages:
  make:
    kind: command
    matrix: {x: [1, 2]}
    params: {cmd: "echo value-${matrix.x} > ${outputs.v.txt}", outputs: [v.txt]}
"#;

#[test]
fn get_copies_a_fresh_output_and_refuses_a_stale_one() {
    let ws = Workspace::new("get");
    ws.write("p.yaml", P);
    ws.ok(&["run", "p.yaml"]);
    std::fs::create_dir_all(ws.dir.join("out")).unwrap();
    ws.ok(&["get", "p.yaml", "make[x=2]", "v.txt", "out"]);
    assert_eq!(ws.read("out/v.txt"), "value-2\n");
    ws.ok(&["get", "p.yaml", "make[x=1]", "v.txt", "one.txt"]);
    assert_eq!(ws.read("one.txt"), "value-1\n");
    std::fs::write(ws.dir.join("one.txt"), "mine").unwrap();

    // Several matches, an unknown output, a stale node: errors that say what to do.
    let err = |args: &[&str]| String::from_utf8_lossy(&ws.pipe(args).stderr).to_string();
    assert!(err(&["get", "p.yaml", "make", "v.txt", "x"]).contains("2 nodes match"));
    assert!(err(&["get", "p.yaml", "make[x=1]", "nope", "x"]).contains("has no output `nope`"));
    ws.write("p.yaml", &P.replace("value-", "other-"));
    let e = err(&["get", "p.yaml", "make[x=1]", "v.txt", "x"]);
    assert!(e.contains("make[x=1] is stale") && e.contains("pipe run p.yaml 'make[x=1]'"), "{e}");
    assert!(!ws.dir.join("x").exists());
}

#[test]
fn completion_scripts_for_each_shell() {
    let ws = Workspace::new("completion");
    let script = |sh: &str| String::from_utf8(ws.pipe(&["completion", sh]).stdout).unwrap();
    assert!(script("bash").contains("complete -F _pipe") && script("bash").contains("runs"));
    assert!(script("zsh").starts_with("#compdef pipe"));
    assert!(script("fish").contains("complete -c pipe"));
}
