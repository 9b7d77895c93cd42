//! A corpus of malformed pipelines: each gives its documented error with line and column
//! (snapshotted), and none panics. The `train` kind here exercises typed params.

use std::path::Path;

use pipe::stage::{InputDecl, OutputSpec, ParamSpec, ParamType, Params, Registry, RunContext, StageError, StageKind};
use pipe::Value;

struct Train;
impl StageKind for Train {
    fn name(&self) -> &'static str {
        "train"
    }
    fn version(&self) -> u32 {
        1
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::required("epochs", ParamType::Int, "training epochs"),
            ParamSpec::optional("lr", ParamType::Float, Value::Float(1e-4), "Adam learning rate"),
            ParamSpec::optional(
                "objective",
                ParamType::choice(&["one-class", "soft-boundary"]),
                Value::Str("one-class".into()),
                "Deep SVDD objective",
            ),
            ParamSpec::optional("milestones", ParamType::List(Box::new(ParamType::Int)), Value::List(vec![]), "epochs at which lr drops 10x"),
        ]
    }
    fn inputs(&self) -> InputDecl {
        InputDecl::named(&[("data", true)])
    }
    fn outputs(&self, _: &Params) -> Result<Vec<OutputSpec>, String> {
        Ok(vec![OutputSpec::new("model", "model.bin")])
    }
    fn run(&self, _: &RunContext) -> Result<(), StageError> {
        Ok(())
    }
}

#[test]
fn every_malformed_pipeline_gives_a_located_error() {
    let mut registry: Registry = pipe_kinds::builtin();
    registry.register(Train);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/malformed");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 30, "the corpus must hold at least 30 cases");
    for path in files {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let src = std::fs::read_to_string(&path).unwrap();
        let rel = Path::new("tests/malformed").join(path.file_name().unwrap());
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pipe::config::parse(&rel, &src, &registry, &[])));
        let err = match result {
            Err(_) => panic!("{name}: validation panicked"),
            Ok(Ok(_)) => panic!("{name}: a malformed pipeline was accepted"),
            Ok(Err(e)) => e.to_string(),
        };
        assert!(err.contains("tests/malformed/") && err.contains("error: "), "{name}: {err}");
        // Every error says how to fix it: each block (blank-line separated) has its hint.
        for block in err.split("\n\n") {
            assert!(block.contains("\n  = hint: "), "{name}: an error without a hint:\n{block}");
        }
        insta::assert_snapshot!(name, err);
    }
}

#[test]
fn bad_overrides_are_reported() {
    let registry = pipe_kinds::builtin();
    let src = "stages:\n  a:\n    kind: command\n    params: {cmd: x}\n";
    let err = pipe::config::parse(Path::new("p.yaml"), src, &registry, &[("b.cmd".into(), "y".into()), ("nodot".into(), "1".into())])
        .unwrap_err()
        .to_string();
    insta::assert_snapshot!("bad_overrides", err);
}

#[test]
fn an_override_naming_no_stage_says_which_stages_there_are() {
    let registry = pipe_kinds::builtin();
    let src = "stages:\n  train:\n    kind: command\n    params: {cmd: x}\n  report:\n    kind: command\n    params: {cmd: y}\n";
    let set = |target: &str, value: &str| {
        pipe::config::parse(Path::new("p.yaml"), src, &registry, &[(target.into(), value.into())]).unwrap_err().to_string()
    };
    // A matrix axis of a stage that is not there, close to one that is, and far from any.
    assert_eq!(
        set("trian.matrix.seed", "[1, 2]"),
        "error: override `trian.matrix.seed`: no stage named `trian`\n  --> command line (--set)\n  = hint: did you mean `train`?\n1 error in p.yaml"
    );
    assert_eq!(
        set("zzz.cmd", "z"),
        "error: override `zzz.cmd`: no stage named `zzz`\n  --> command line (--set)\n  = hint: name a stage of the pipeline (stages: train, report) or `params`\n1 error in p.yaml"
    );
    // A `--set` that closes a cycle among the pipeline's params is refused like one in the file.
    let src = "params:\n  a: 1\n  b: \"${params.a}\"\nstages:\n  s:\n    kind: command\n    params: {cmd: \"echo ${params.b}\"}\n";
    let err = pipe::config::parse(Path::new("p.yaml"), src, &registry, &[("params.a".into(), "${params.b}".into())]).unwrap_err().to_string();
    assert_eq!(
        err,
        "error: pipeline params refer to each other in a cycle: `a` -> `b` -> `a`\n  --> command line (--set)\n  \
         = hint: a param's value cannot depend on itself: give one of these params a literal value\n1 error in p.yaml"
    );
}

#[test]
fn the_binary_exits_3_on_an_invalid_pipeline() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pipe"))
        .args(["status", "tests/malformed/24_cycle_two.yaml", "--store", &std::env::temp_dir().join("pipe-malformed-store").to_string_lossy()])
        .current_dir(dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(pipe::exit::INVALID_PIPELINE));
    assert!(String::from_utf8_lossy(&out.stderr).contains("dependency cycle: `a` -> `b` -> `a`"));
}
