//! The engine on its own (no tch, no polars): an in-process stage kind that appends its node id to
//! a witness log OUTSIDE the store, so what ran is known independently of the engine's own record.
//! Tests compare the witness with the run record and with `plan::status`'s verdicts, and check the
//! red herrings: a comment, a reformatted file, reordered stages or an edit of an unrelated stage
//! rerun exactly nothing else. `allow_missing` gathers run with the upstream nodes that completed.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use engine::config;
use engine::exec::{Executor, RunOptions};
use engine::graph::{Graph, GraphBuilder};
use engine::report::{Recorder, Silent};
use engine::stage::{InputDecl, OutputSpec, ParamSpec, ParamType, Params, Registry, RunContext, StageError, StageKind};
use engine::store::Store;
use engine::Value;

/// `log`: writes `text` and its inputs' contents to `out.txt`; appends its node id to the witness.
/// `fail: true` fails the node (after logging it).
struct Log {
    witness: Arc<Mutex<Vec<String>>>,
}

impl StageKind for Log {
    fn name(&self) -> &'static str {
        "log"
    }
    fn version(&self) -> u32 {
        1
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::optional("text", ParamType::Str, Value::Str(String::new()), "what to write"),
            ParamSpec::optional("fail", ParamType::Bool, Value::Bool(false), "fail instead"),
        ]
    }
    fn inputs(&self) -> InputDecl {
        InputDecl::named(&[("in", false)])
    }
    fn outputs(&self, _: &Params) -> Result<Vec<OutputSpec>, String> {
        Ok(vec![OutputSpec::new("out", "out.txt")])
    }
    fn run(&self, ctx: &RunContext) -> Result<(), StageError> {
        self.witness.lock().unwrap().push(ctx.node.clone());
        if ctx.params.get("fail") == Some(&Value::Bool(true)) {
            return Err(StageError::failed("asked to fail"));
        }
        let mut text = ctx.params.str("text")?.to_string();
        for p in ctx.input_all("in") {
            text.push('|');
            text.push_str(&std::fs::read_to_string(p).map_err(|e| StageError::io("read input", e))?);
        }
        std::fs::write(ctx.output("out"), text).map_err(|e| StageError::io("write out.txt", e))
    }
}

struct Bench {
    dir: PathBuf,
    store: Store,
    registry: Registry,
    witness: Arc<Mutex<Vec<String>>>,
}

impl Bench {
    fn new(name: &str) -> Bench {
        let dir = std::env::temp_dir().join(format!("engine-witness-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let witness = Arc::new(Mutex::new(Vec::new()));
        let mut registry = Registry::new();
        registry.register(Log { witness: witness.clone() });
        let store = Store::open(dir.join("store")).unwrap();
        Bench { dir, store, registry, witness }
    }

    fn graph(&self, src: &str) -> Graph {
        let p = config::parse(Path::new("pipeline.yaml"), src, &self.registry, &[]).unwrap_or_else(|e| panic!("{e}"));
        GraphBuilder::from_nodes(p.nodes).seal().unwrap()
    }

    /// Nodes `plan::status` calls not fresh.
    fn stale(&self, src: &str) -> Vec<String> {
        let g = self.graph(src);
        let mut v: Vec<String> = engine::plan::status(&g, &self.store, "ns", &self.dir)
            .into_iter()
            .filter(|s| s.state != engine::plan::Freshness::Fresh)
            .map(|s| s.node)
            .collect();
        v.sort();
        v
    }

    /// Runs; returns (witness: nodes that really ran, sorted; the run record's nodes by state).
    fn run(&self, src: &str) -> (Vec<String>, Vec<(String, String)>) {
        self.witness.lock().unwrap().clear();
        let g = self.graph(src);
        let recorder = Recorder::new(&Silent);
        let ex = Executor {
            graph: &g,
            store: &self.store,
            pipeline: "ns",
            workspace: self.dir.clone(),
            options: RunOptions {
                jobs: 2,
                threads: 1,
                fail_fast: false,
                overwrite: false,
                pull_only: false,
                rerun: Default::default(),
                no_resume: false,
                claim_as: None,
            },
            reporter: &recorder,
            cancel: Arc::new(AtomicBool::new(false)),
            runner: &engine::exec::Local,
        };
        ex.run();
        let record: Vec<(String, String)> = recorder.nodes(&g).into_iter().map(|n| (n.node, n.state.to_string())).collect();
        let mut w = self.witness.lock().unwrap().clone();
        w.sort();
        (w, record)
    }
}

fn in_state(record: &[(String, String)], state: &str) -> Vec<String> {
    let mut v: Vec<String> = record.iter().filter(|(_, s)| s == state).map(|(n, _)| n.clone()).collect();
    v.sort();
    v
}

const BASE: &str = "
stages:
  a:
    kind: log
    matrix: {x: [1, 2]}
    params: {text: \"a${matrix.x}\"}
  b:
    kind: log
    inputs: {in: a.out}
    params: {text: b}
  c:
    kind: log
    params: {text: c}
  d:
    kind: log
    inputs: {in: c.out}
    params: {text: d}
";

#[test]
fn the_witness_agrees_with_the_run_record_and_with_status() {
    let b = Bench::new("agree");
    assert_eq!(b.stale(BASE).len(), 6);
    let (w, rec) = b.run(BASE);
    assert_eq!(w, in_state(&rec, "ran"));
    assert_eq!(w, ["a[x=1]", "a[x=2]", "b[x=1]", "b[x=2]", "c", "d"]);
    // A second run: nothing ran, every node cached, status all fresh.
    let (w, rec) = b.run(BASE);
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(in_state(&rec, "cached").len(), 6);
    assert!(b.stale(BASE).is_empty());
    // An edit: status names exactly what the next run runs.
    let edited = BASE.replace("text: c}", "text: c2}");
    let predicted = b.stale(&edited);
    let (w, _) = b.run(&edited);
    assert_eq!(predicted, w);
    assert_eq!(w, ["c", "d"]);
}

#[test]
fn red_herrings_rerun_nothing() {
    let b = Bench::new("herrings");
    b.run(BASE);
    let comment = format!("# a comment\n{}", BASE.replace("kind: log\n    inputs: {in: c.out}", "kind: log   # d reads c\n    inputs: {in: c.out}"));
    let reformatted = "
stages:
  a:
    params:
      text: \"a${matrix.x}\"
    matrix:
      x:
        - 1
        - 2
    kind: log
  b: {kind: log, params: {text: 'b'}, inputs: {in: {from: a.out}}}
  c: {kind: \"log\", params: {text: c}}
  d:
    inputs:
      in: c.out
    kind: log
    params: {text: d}
";
    let reordered = "
stages:
  d:
    kind: log
    inputs: {in: c.out}
    params: {text: d}
  c:
    kind: log
    params: {text: c}
  b:
    kind: log
    inputs: {in: a.out}
    params: {text: b}
  a:
    kind: log
    matrix: {x: [1, 2]}
    params: {text: \"a${matrix.x}\"}
";
    for (what, src) in [("comment", comment.as_str()), ("reformatted", reformatted), ("reordered", reordered)] {
        assert!(b.stale(src).is_empty(), "{what}: status says stale");
        let (w, rec) = b.run(src);
        assert!(w.is_empty(), "{what}: {w:?} ran");
        assert_eq!(in_state(&rec, "cached").len(), 6, "{what}");
    }
    // An unrelated stage edited: exactly it and its dependents.
    let (w, _) = b.run(&BASE.replace("text: b}", "text: b-edited}"));
    assert_eq!(w, ["b[x=1]", "b[x=2]"]);
    // An added stage: exactly it.
    let (w, _) = b.run(&format!("{}  e:\n    kind: log\n    params: {{text: e}}\n", BASE.replace("text: b}", "text: b-edited}")));
    assert_eq!(w, ["e"]);
}

#[test]
fn allow_missing_gathers_run_with_what_completed() {
    let b = Bench::new("missing");
    // x=2 fails (a per-cell override).
    let src = "
stages:
  a:
    kind: log
    matrix: {x: [1, 2, 3]}
    params: {text: \"a${matrix.x}\"}
    overrides:
      - when: {x: 2}
        params: {fail: true}
  all:
    kind: log
    inputs: {in: {from: a.out, gather: true, allow_missing: true}}
  strict:
    kind: log
    inputs: {in: {from: a.out, gather: true}}
";
    let (w, rec) = b.run(src);
    assert_eq!(w, ["a[x=1]", "a[x=2]", "a[x=3]", "all"]);
    assert_eq!(in_state(&rec, "failed"), ["a[x=2]"]);
    assert_eq!(in_state(&rec, "skipped"), ["strict"]);
    // The gather saw the two that completed, in grid order.
    let texts: Vec<String> = walk(&b.dir.join("store/objects")).iter().map(|p| std::fs::read_to_string(p).unwrap_or_default()).collect();
    assert!(texts.iter().any(|t| t == "|a1|a3"), "{texts:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
