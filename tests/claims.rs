//! Many runs, one store: each key is claimed by the run computing it; another run needing it
//! waits for THAT key and uses its result; disjoint work goes on in parallel; a killed run's
//! claims are taken over; `gc` waits for runs. Every node writes a line to a witness file OUTSIDE
//! the store when it starts and when it ends, so what ran (and when) is seen without the store.

mod common;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::Workspace;

/// prep[dataset] -> train[dataset,mu2] -> score[dataset,mu2]; every node sleeps `secs` between
/// its `start` and `end` witness lines (node, event, time in ms).
fn pipeline(witness: &Path, secs: f64) -> String {
    let w = witness.display();
    let step = |name: &str, body: &str| {
        format!("echo \"{name} start $(date +%s%3N)\" >> {w}; sleep {secs}; {body}; echo \"{name} end $(date +%s%3N)\" >> {w}")
    };
    format!(
        r#"
stages:
  prep:
    kind: command
    matrix:
      dataset: [a, b]
    params:
      cmd: '{prep}'
      outputs: [data.txt]
  train:
    kind: command
    matrix:
      mu2: [0.5, 1.0]
    inputs:
      data: prep.data.txt
    params:
      cmd: '{train}'
      outputs: [model.txt]
  score:
    kind: command
    inputs:
      model: train.model.txt
    params:
      cmd: '{score}'
      outputs: [score.txt]
    publish: {{score.txt: 'out/score-${{matrix.dataset}}-${{matrix.mu2}}.txt'}}
"#,
        prep = step("prep-${matrix.dataset}", "echo data-${matrix.dataset} > ${outputs.data.txt}"),
        train = step(
            "train-${matrix.dataset}-${matrix.mu2}",
            "cat ${inputs.data} > ${outputs.model.txt}; echo mu2=${matrix.mu2} >> ${outputs.model.txt}"
        ),
        score = step("score-${matrix.dataset}-${matrix.mu2}", "wc -c < ${inputs.model} > ${outputs.score.txt}"),
    )
}

/// Witness lines by node: (start ms, end ms) of each attempt, in order.
fn witnessed(witness: &Path) -> BTreeMap<String, Vec<(u64, Option<u64>)>> {
    let mut by: BTreeMap<String, Vec<(u64, Option<u64>)>> = BTreeMap::new();
    for line in std::fs::read_to_string(witness).unwrap_or_default().lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [node, event, t] = f[..] else { panic!("witness line {line:?}") };
        let t: u64 = t.parse().unwrap();
        let attempts = by.entry(node.to_string()).or_default();
        match event {
            "start" => attempts.push((t, None)),
            "end" => attempts.last_mut().expect("an end after its start").1 = Some(t),
            _ => panic!("witness line {line:?}"),
        }
    }
    by
}

fn run(ws: &Workspace, set: &str) -> Child {
    ws.cmd(&["run", "p.yaml", "--jobs", "2", "--set", set]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Waits until `pipe status -v` says `node` is running, and returns that line.
fn wait_running(ws: &Workspace, node: &str) -> String {
    let t0 = Instant::now();
    loop {
        let out = String::from_utf8(ws.pipe(&["status", "p.yaml", "-v"]).stdout).unwrap();
        let mut lines = out.lines().skip_while(|l| !l.contains(&format!(" {node} ")) && !l.ends_with(&format!(" {node}")));
        if let Some(line) = lines.nth(1).filter(|l| l.trim_start().starts_with("running:")) {
            return line.trim().to_string();
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "{node} never shown running:\n{out}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Two runs of overlapping grids started together (mu2 {0.5, 1.0} and {1.0, 2.0}): every node of
/// their union is computed exactly once, both exit 0 with the right results, and they computed
/// at the same time (their nodes' intervals overlap: disjoint work is not serialised).
#[test]
fn overlapping_runs_compute_each_node_once_and_in_parallel() {
    let ws = Workspace::new("claims-overlap");
    let witness = ws.dir.join("witness.log");
    ws.write("p.yaml", &pipeline(&witness, 0.4));
    let a = run(&ws, "train.matrix.mu2=[0.5,1.0]");
    let b = run(&ws, "train.matrix.mu2=[1.0,2.0]");
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", stderr(&a));
    assert!(b.status.success(), "{}", stderr(&b));

    let seen = witnessed(&witness);
    let mut union: Vec<String> = vec!["prep-a".into(), "prep-b".into()];
    for d in ["a", "b"] {
        for mu2 in ["0.5", "1.0", "2.0"] {
            union.push(format!("train-{d}-{mu2}"));
            union.push(format!("score-{d}-{mu2}"));
        }
    }
    union.sort();
    assert_eq!(seen.keys().cloned().collect::<Vec<_>>(), union, "the union of both grids ran");
    for (node, attempts) in &seen {
        assert_eq!(attempts.len(), 1, "{node} computed {} times: {attempts:?}", attempts.len());
        assert!(attempts[0].1.is_some(), "{node} never ended");
    }
    // Each run's record: its 10 nodes, each ran or cached; together they ran the 14 once.
    let ran = |o: &Output| -> usize {
        let s = stderr(o);
        let line = s.lines().find(|l| l.contains(" ran, ")).unwrap_or_else(|| panic!("no summary in {s}"));
        line.split(" ran,").next().unwrap().trim().parse().unwrap()
    };
    assert_eq!(ran(&a) + ran(&b), 14, "{}\n{}", stderr(&a), stderr(&b));
    // The shared nodes were waited for, and said so.
    let both = format!("{}{}", stderr(&a), stderr(&b));
    assert!(both.contains("is computing this node; waiting for its result"), "{both}");
    // The right results, published by both runs: wc -c of "data-X\nmu2=Y\n".
    for (d, mu2) in [("a", "0.5"), ("b", "1.0"), ("a", "2.0")] {
        let expected = format!("data-{d}\nmu2={mu2}\n").len();
        assert_eq!(ws.read(&format!("out/score-{d}-{mu2}.txt")).trim(), expected.to_string());
    }
    // In parallel: at some moment more nodes ran than one run's --jobs 2 allows, so both runs
    // computed at once (disjoint work is not serialised behind the other run).
    let mut events: Vec<(u64, i32)> = seen.values().flat_map(|a| [(a[0].0, 1), (a[0].1.unwrap(), -1)]).collect();
    events.sort();
    let most = events.iter().scan(0, |n, e| {
        *n += e.1;
        Some(*n)
    });
    let most = most.max().unwrap();
    assert!(most > 2, "never more than {most} nodes at once: the runs did not compute in parallel: {seen:?}");
    assert!(ws.bad_objects().is_empty());
    // Both grids are now whole in the store.
    for set in ["train.matrix.mu2=[0.5,1.0]", "train.matrix.mu2=[1.0,2.0]"] {
        ws.ok(&["run", "p.yaml", "--set", set]);
        assert_eq!(ws.nodes_in("cached").len(), 10);
    }
    assert_eq!(witnessed(&witness).values().map(Vec::len).sum::<usize>(), 14, "nothing ran again");
}

/// A run killed (-9) while it computes a node another run waits for: the other run takes its
/// claim over, computes the node and completes; `pipe status` named the first run as the holder.
#[test]
fn a_killed_runs_claim_is_taken_over_by_the_run_waiting_for_it() {
    let ws = Workspace::new("claims-kill");
    let witness = ws.dir.join("witness.log");
    // Train is slow while the file `slow` exists (not an input: the keys do not change).
    let slow = ws.write("slow", "");
    let sleeping = ws.dir.join("sleeping");
    let slow_train =
        format!("if [ -e {} ]; then touch {}-${{matrix.dataset}}-${{matrix.mu2}}; sleep 60; fi; cat", slow.display(), sleeping.display());
    ws.write("p.yaml", &pipeline(&witness, 0.2).replace("sleep 0.2; cat", &slow_train));
    // A computes prep, then train (60 s each, two at once).
    let mut a = ws.cmd(&["run", "p.yaml", "--jobs", "2"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let line = wait_running(&ws, "train[dataset=a,mu2=0.5]");
    let a_run = line.split("run ").nth(1).and_then(|r| r.split([' ', ',']).next()).unwrap_or_else(|| panic!("no run in {line:?}"));
    assert!(a_run.ends_with(&format!("-{}", a.id())), "status names the holding run (its id ends in its pid {}): {line}", a.id());
    // B needs the same nodes: it waits for those A computes (its own attempts are fast, once A's
    // attempt at train[a, 0.5] is past its check of `slow`).
    let t0 = Instant::now();
    while !ws.dir.join("sleeping-a-0.5").exists() {
        assert!(t0.elapsed() < Duration::from_secs(60), "A never started train[a, 0.5]'s sleep");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::remove_file(&slow).unwrap();
    let b = ws.cmd(&["run", "p.yaml", "--jobs", "2"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(witnessed(&witness)["train-a-0.5"].len() == 1, "B waits: it does not compute what A computes");
    a.kill().unwrap();
    a.wait().unwrap();
    let b = b.wait_with_output().unwrap();
    assert!(b.status.success(), "{}", stderr(&b));
    assert!(stderr(&b).contains(&format!("run {a_run} (pid {}", a.id())), "B said whom it waited for: {}", stderr(&b));
    let seen = witnessed(&witness);
    let mut taken_over = 0;
    for d in ["a", "b"] {
        for mu2 in ["0.5", "1.0"] {
            let attempts = &seen[&format!("train-{d}-{mu2}")];
            // Computed to its end exactly once: by B, after A's attempt (killed: no end) where A
            // had started it.
            match attempts[..] {
                [(_, Some(_))] => {}
                [(_, None), (_, Some(_))] => taken_over += 1,
                _ => panic!("train-{d}-{mu2}: {attempts:?}"),
            }
        }
    }
    assert!(seen["train-a-0.5"].len() == 2, "the node B waited for was taken over: {:?}", seen["train-a-0.5"]);
    assert!((1..=2).contains(&taken_over), "A ran at most 2 nodes at once: {taken_over}");
    assert_eq!(seen["prep-a"].len(), 1, "A's finished prep was used, not redone");
    assert_eq!(ws.read("out/score-a-0.5.txt").trim(), "data-a\nmu2=0.5\n".len().to_string());
    // Nothing is held now.
    let status = String::from_utf8(ws.pipe(&["status", "p.yaml", "-v"]).stdout).unwrap();
    assert!(!status.contains("running:"), "{status}");
    // A's orphaned `sleep 60` children may still run; they write nothing the test reads.
}

/// `pipe gc` started while a run computes waits for it (deleting nothing it needs), then
/// collects; the run completes with its results, and the store is whole.
#[test]
fn gc_waits_for_a_running_run() {
    let ws = Workspace::new("claims-gc");
    let witness = ws.dir.join("witness.log");
    ws.write("p.yaml", &pipeline(&witness, 0.5));
    // A --set variant: none of its results is live for gc (they are not the file's defaults).
    let a = run(&ws, "train.matrix.mu2=[3.0]");
    wait_running(&ws, "prep[dataset=a]");
    let gc = ws.cmd(&["gc", "--records", "--keep-days", "0"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let gc = gc.wait_with_output().unwrap();
    let a = a.wait_with_output().unwrap();
    assert!(a.status.success(), "{}", stderr(&a));
    assert!(gc.status.success(), "{}", stderr(&gc));
    assert!(stderr(&gc).contains("waiting for the runs on this store to end"), "{}", stderr(&gc));
    // The run's every node ran to its end, and published: wc -c of "data-b\nmu2=3.0\n".
    let seen = witnessed(&witness);
    assert_eq!(seen.len(), 6);
    assert!(seen.values().all(|a| a.len() == 1 && a[0].1.is_some()), "{seen:?}");
    assert_eq!(ws.read("out/score-b-3.0.txt").trim(), "data-b\nmu2=3.0\n".len().to_string());
    assert!(ws.bad_objects().is_empty());
    // gc ran after the run: it removed the variant's train and score records (prep is also the
    // file's defaults', so live), which exist only once the run has ended.
    let out = String::from_utf8_lossy(&gc.stdout).to_string();
    assert!(out.contains("and 4 records"), "gc collected after the run, not during it: {out}");
}

/// Two machines (two caches) on one shared-folder store (`file://`), started together on the
/// same grid: their claims meet in the shared folder, so every node is computed once, by one of
/// them, and both end with every result.
#[test]
fn two_caches_on_one_shared_folder_compute_each_node_once() {
    let ws = Workspace::new("claims-shared");
    let witness = ws.dir.join("witness.log");
    ws.write("p.yaml", &pipeline(&witness, 0.3));
    std::fs::create_dir_all(ws.dir.join("shared")).unwrap();
    let url = format!("file://{}", ws.dir.join("shared").display());
    let start = |cache: &str| {
        ws.cmd(&["--store", &url, "--cache", cache, "run", "p.yaml", "--jobs", "2"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
    };
    let (a, b) = (start("cache-a"), start("cache-b"));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", stderr(&a));
    assert!(b.status.success(), "{}", stderr(&b));
    let seen = witnessed(&witness);
    assert_eq!(seen.len(), 10, "{seen:?}");
    for (node, attempts) in &seen {
        assert_eq!(attempts.len(), 1, "{node} computed {} times: {attempts:?}", attempts.len());
    }
    let both = format!("{}{}", stderr(&a), stderr(&b));
    assert!(both.contains("is computing this node; waiting for its result"), "{both}");
    assert_eq!(ws.read("out/score-b-1.0.txt").trim(), "data-b\nmu2=1.0\n".len().to_string());
}
