//! Engine overhead on a synthetic 10,000-node pipeline of trivial stages: cold plan/graph build,
//! cold run, `status` with everything fresh, and a no-op run. `cargo bench --bench engine`.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use pipe::exec::{Executor, RunOptions};
use pipe::graph::GraphBuilder;
use pipe::report::Silent;
use pipe::stage::{InputDecl, OutputSpec, ParamSpec, ParamType, Params, RunContext, StageError, StageKind};
use pipe::store::Store;

/// Writes its params and input hashes' paths to one small file.
struct Touch;
impl StageKind for Touch {
    fn name(&self) -> &'static str {
        "touch"
    }
    fn version(&self) -> u32 {
        1
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![ParamSpec::required("i", ParamType::Int, ""), ParamSpec::required("j", ParamType::Int, "")]
    }
    fn inputs(&self) -> InputDecl {
        InputDecl::named(&[("up", false)])
    }
    fn outputs(&self, _: &Params) -> Result<Vec<OutputSpec>, String> {
        Ok(vec![OutputSpec::new("out", "out.txt")])
    }
    fn run(&self, ctx: &RunContext) -> Result<(), StageError> {
        let text = format!("{} {:?}\n", ctx.node, ctx.params);
        std::fs::write(ctx.output("out"), text).map_err(|e| StageError::io("write", e))
    }
}

fn main() {
    let (ni, nj) = (100, 50);
    let is: Vec<String> = (0..ni).map(|i| i.to_string()).collect();
    let js: Vec<String> = (0..nj).map(|j| j.to_string()).collect();
    let yaml = format!(
        "stages:\n  first:\n    kind: touch\n    matrix:\n      i: [{}]\n      j: [{}]\n  second:\n    kind: touch\n    inputs: {{up: first.out}}\n    params: {{i: \"${{matrix.i}}\", j: \"${{matrix.j}}\"}}\n",
        is.join(", "),
        js.join(", ")
    );
    let mut registry = pipe::Registry::new();
    registry.register(Touch);
    let dir = std::env::temp_dir().join(format!("pipe-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(dir.join("artifacts")).unwrap();
    let jobs = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);

    let t = Instant::now();
    let pipeline = pipe::config::parse(Path::new("bench.yaml"), &yaml, &registry, &[]).unwrap();
    let graph = GraphBuilder::from_nodes(pipeline.nodes).seal().unwrap();
    let plan_s = t.elapsed().as_secs_f64();
    let n = graph.len();

    let run = || {
        let recorder = pipe::report::Recorder::new(&Silent);
        let ex = Executor {
            graph: &graph,
            store: &store,
            pipeline: "bench",
            workspace: dir.clone(),
            options: RunOptions {
                jobs,
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
            runner: &pipe::exec::Local,
        };
        let t = Instant::now();
        ex.run();
        let nodes = recorder.nodes(&graph);
        (t.elapsed().as_secs_f64(), nodes.iter().filter(|n| n.state == pipe::store::RunState::Ran).count())
    };
    let (cold_s, ran) = run();
    assert_eq!(ran, n);
    let t = Instant::now();
    let st = pipe::plan::status(&graph, &store, "bench", &dir);
    let status_s = t.elapsed().as_secs_f64();
    assert!(st.iter().all(|s| s.state == pipe::plan::Freshness::Fresh));
    let (noop_s, ran) = run();
    assert_eq!(ran, 0);

    println!("engine bench: {n} nodes, {jobs} jobs");
    println!("  plan + graph build (cold)   {:>8.3} s", plan_s);
    println!("  cold run (trivial stages)   {:>8.3} s  ({:.0} nodes/s)", cold_s, n as f64 / cold_s);
    println!("  status, all fresh           {:>8.3} s  (target < 1 s: {})", status_s, if status_s < 1.0 { "met" } else { "MISSED" });
    println!("  no-op run                   {:>8.3} s  (target < 1 s: {})", noop_s, if noop_s < 1.0 { "met" } else { "MISSED" });
    println!("  no-op run / cold run        {:>8.3}", noop_s / cold_s);
    let _ = std::fs::remove_dir_all(&dir);
}
