//! Engine behaviour through the real binary: incremental reruns, early cutoff, failures,
//! corruption, concurrent runs, interrupts and crashes.

mod common;
use common::{sorted, Workspace};

/// 3 stages over a 2x2 matrix: prep[dataset] -> train[dataset,mu2] -> score[dataset,mu2].
fn grid_pipeline(mu2: &str, score_tag: &str) -> String {
    format!(
        r#"
stages:
  prep:
    kind: command
    matrix:
      dataset: [a, b]
    params:
      cmd: "echo data-${{matrix.dataset}} > ${{outputs.data.txt}}"
      outputs: [data.txt]
  train:
    kind: command
    matrix:
      mu2: {mu2}
    inputs:
      data: prep.data.txt
    params:
      cmd: "cat ${{inputs.data}} > ${{outputs.model.txt}}; echo mu2=${{matrix.mu2}} >> ${{outputs.model.txt}}"
      outputs: [model.txt]
  score:
    kind: command
    inputs:
      model: train.model.txt
    params:
      cmd: "wc -c < ${{inputs.model}} > ${{outputs.score.txt}} {score_tag}"
      outputs: [score.txt]
"#
    )
}

#[test]
fn changing_one_matrix_value_reruns_exactly_its_nodes() {
    let ws = Workspace::new("incremental");
    ws.write("p.yaml", &grid_pipeline("[0.5, 1.0]", ""));
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(ws.nodes_in("ran").len(), 10);
    assert!(ws.nodes_in("cached").is_empty());

    ws.ok(&["run", "p.yaml"]);
    assert!(ws.nodes_in("ran").is_empty(), "a second run must be a no-op");

    // mu2 = 1.0 -> 2.0: only the nodes of that matrix value (and their dependents) rerun.
    ws.write("p.yaml", &grid_pipeline("[0.5, 2.0]", ""));
    let status = String::from_utf8(ws.pipe(&["status", "p.yaml", "-v"]).stdout).unwrap();
    assert!(status.contains("missing train[dataset=a,mu2=2.0]  never run"), "{status}");
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(
        ws.nodes_in("ran"),
        sorted(&["train[dataset=a,mu2=2.0]", "train[dataset=b,mu2=2.0]", "score[dataset=a,mu2=2.0]", "score[dataset=b,mu2=2.0]"])
    );
    assert_eq!(
        ws.nodes_in("cached"),
        sorted(&[
            "prep[dataset=a]",
            "prep[dataset=b]",
            "train[dataset=a,mu2=0.5]",
            "train[dataset=b,mu2=0.5]",
            "score[dataset=a,mu2=0.5]",
            "score[dataset=b,mu2=0.5]",
        ])
    );
}

#[test]
fn override_reports_the_changed_param_and_reruns_one_value() {
    let ws = Workspace::new("override");
    ws.write("p.yaml", &grid_pipeline("[0.5, 1.0]", ""));
    ws.ok(&["run", "p.yaml"]);
    let out = ws.pipe(&["status", "p.yaml", "--json", "--set", "score.cmd=wc -l < ${inputs.model} > ${outputs.score.txt}"]);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let score = st.as_array().unwrap().iter().find(|n| n["node"] == "score[dataset=a,mu2=0.5]").unwrap();
    assert_eq!(score["state"], "stale");
    let reason = score["reasons"][0].as_str().unwrap();
    assert!(reason.starts_with("params.cmd changed wc -c"), "{reason}");
    let prep = st.as_array().unwrap().iter().find(|n| n["node"] == "prep[dataset=a]").unwrap();
    assert_eq!(prep["state"], "fresh");
    // --check turns staleness into an exit code.
    assert_eq!(ws.pipe(&["status", "p.yaml", "--check"]).status.code(), Some(0));
    assert_eq!(ws.pipe(&["status", "p.yaml", "--check", "--set", "score.cmd=exit 0"]).status.code(), Some(6));
}

#[test]
fn identical_upstream_output_stops_the_cascade() {
    let ws = Workspace::new("cutoff");
    ws.write("p.yaml", &grid_pipeline("[0.5, 1.0]", ""));
    ws.ok(&["run", "p.yaml"]);
    // A comment in prep's command changes its key but not its output bytes.
    let edited = grid_pipeline("[0.5, 1.0]", "").replace("> ${outputs.data.txt}\"", "> ${outputs.data.txt} # reformatted\"");
    ws.write("p.yaml", &edited);
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(ws.nodes_in("ran"), sorted(&["prep[dataset=a]", "prep[dataset=b]"]));
    assert_eq!(ws.nodes_in("cached").len(), 8, "train and score must be cached (early cutoff)");
}

#[test]
fn a_failure_stops_only_its_dependents() {
    let ws = Workspace::new("failure");
    ws.write(
        "p.yaml",
        r#"
stages:
  a:
    kind: command
    matrix: {x: [1, 2]}
    params:
      cmd: "test ${matrix.x} = 1 && echo ok > ${outputs.o}"
      outputs: [o]
  b:
    kind: command
    inputs: {i: a.o}
    params: {cmd: "cp ${inputs.i} ${outputs.o}", outputs: [o]}
"#,
    );
    let out = ws.pipe(&["run", "p.yaml", "--jobs", "1"]);
    assert_eq!(out.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("failed: a[x=2]"), "{stderr}");
    assert!(stderr.contains("command exited with status 1"), "{stderr}");
    assert_eq!(ws.nodes_in("ran"), sorted(&["a[x=1]", "b[x=1]"]));
    assert_eq!(ws.nodes_in("failed"), sorted(&["a[x=2]"]));
    assert_eq!(ws.nodes_in("skipped"), sorted(&["b[x=2]"]));
    assert_eq!(ws.last_run_status(), "failed");
}

#[test]
fn fail_fast_starts_nothing_after_a_failure() {
    let ws = Workspace::new("failfast");
    ws.write(
        "p.yaml",
        r#"
stages:
  bad:
    kind: command
    params: {cmd: "exit 3"}
  slow:
    kind: command
    matrix: {i: [1, 2, 3]}
    params: {cmd: "sleep 0.2; echo ${matrix.i} > ${outputs.o}", outputs: [o]}
"#,
    );
    let out = ws.pipe(&["run", "p.yaml", "--jobs", "1", "--fail-fast"]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(ws.nodes_in("failed"), sorted(&["bad"]));
    assert_eq!(ws.nodes_in("ran").len(), 0, "{:?}", ws.last_run());
    assert_eq!(ws.nodes_in("cancelled").len(), 3);
}

#[test]
fn a_corrupt_object_is_detected_reported_and_recomputed() {
    let ws = Workspace::new("corrupt");
    ws.write("p.yaml", &grid_pipeline("[0.5]", ""));
    ws.ok(&["run", "p.yaml"]);
    // Flip one byte of train[dataset=a]'s output object.
    let show = String::from_utf8(ws.pipe(&["show", "p.yaml", "train[dataset=a,mu2=0.5]"]).stdout).unwrap();
    let rel = show.lines().find_map(|l| l.trim().strip_prefix("model.txt: ")).unwrap().split(" (").next().unwrap().to_string();
    let path = ws.dir.join(rel);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 0x01;
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&path, perms).unwrap();
    std::fs::write(&path, &bytes).unwrap();

    let status = String::from_utf8(ws.pipe(&["status", "p.yaml", "-v"]).stdout).unwrap();
    assert!(status.contains("stale   train[dataset=a,mu2=0.5]  object ") && status.contains("(model.txt) corrupt"), "{status}");
    let stderr = ws.ok(&["run", "p.yaml"]);
    assert!(stderr.contains("is corrupt; moved to"), "{stderr}");
    // The recomputed object is byte-identical, so score stays cached (early cutoff).
    assert_eq!(ws.nodes_in("ran"), sorted(&["train[dataset=a,mu2=0.5]"]));
    assert!(ws.bad_objects().is_empty());
    assert_eq!(std::fs::read_dir(ws.store().join("quarantine")).unwrap().count(), 1);
}

#[test]
fn gc_removes_only_unreferenced_objects() {
    let ws = Workspace::new("gc");
    ws.write("p.yaml", &grid_pipeline("[0.5]", ""));
    ws.ok(&["run", "p.yaml"]);
    ws.write("p.yaml", &grid_pipeline("[0.7]", ""));
    ws.ok(&["run", "p.yaml"]);
    let out = String::from_utf8(ws.pipe(&["gc"]).stdout).unwrap();
    assert!(out.starts_with("removed 0 objects"), "every object is still referenced by a record: {out}");
    let out = String::from_utf8(ws.pipe(&["gc", "--records"]).stdout).unwrap();
    assert!(out.starts_with("removed 0 objects and 0 records"), "the mu2=0.5 run is recent: kept for 30 days: {out}");
    let out = String::from_utf8(ws.pipe(&["gc", "--records", "--keep-days", "0"]).stdout).unwrap();
    // The mu2=0.5 train and score records are not used by p.yaml at its defaults (4 records); their
    // train objects go (2); the score objects are byte-identical to mu2=0.7's ("15\n") and stay.
    assert!(out.starts_with("removed 2 objects and 4 records"), "{out}");
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(ws.nodes_in("cached").len(), 6);
}

#[test]
fn interrupt_keeps_finished_nodes_and_the_next_run_resumes() {
    let ws = Workspace::new("sigint");
    ws.write(
        "p.yaml",
        r#"
stages:
  step:
    kind: command
    matrix: {i: [1, 2, 3, 4, 5, 6]}
    params: {cmd: "sleep 0.3; echo ${matrix.i} > ${outputs.o}", outputs: [o]}
"#,
    );
    let child = ws.cmd(&["run", "p.yaml", "--jobs", "1"]).spawn().unwrap();
    // Interrupt once the first node has finished (its record is in the store), however loaded the machine.
    let nodes = ws.store().join("nodes");
    let t0 = std::time::Instant::now();
    while std::fs::read_dir(&nodes).map(|d| d.count()).unwrap_or(0) == 0 {
        assert!(t0.elapsed().as_secs() < 60, "no node finished within 60 s");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    unsafe_kill(child.id(), "INT");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert_eq!(ws.last_run_status(), "interrupted");
    let done = ws.nodes_in("ran").len();
    assert!((1..6).contains(&done), "{:?}", ws.last_run());
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(ws.nodes_in("cached").len(), done);
    assert_eq!(ws.nodes_in("ran").len(), 6 - done);
}

fn unsafe_kill(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status().unwrap();
    assert!(ok.success());
}

/// kill -9 at many points of a run; every next run completes with the same outputs as an
/// uninterrupted run, and no object in the store ever has content other than its hash.
#[test]
fn kill_9_at_any_point_never_corrupts_and_resumes() {
    let pipeline = r#"
stages:
  gen:
    kind: command
    matrix: {i: [1, 2, 3, 4]}
    params:
      # Writes its output in two halves with a pause, so kills land mid-write.
      cmd: "seq 1 20000 > ${outputs.o}; sleep 0.05; echo ${matrix.i} >> ${outputs.o}"
      outputs: [o]
  fold:
    kind: command
    inputs: {parts: {from: gen.o, gather: true}}
    params: {cmd: "cat ${inputs.parts} | md5sum > ${outputs.sum}; sleep 0.05", outputs: [sum]}
    publish: {sum: out/sum.txt}
"#;
    let reference = Workspace::new("kill-ref");
    reference.write("p.yaml", pipeline);
    reference.ok(&["run", "p.yaml", "--jobs", "2"]);
    let expected = reference.read("out/sum.txt");

    let ws = Workspace::new("kill");
    ws.write("p.yaml", pipeline);
    for delay_ms in [5u64, 20, 40, 60, 80, 110, 150, 200] {
        let child = ws.cmd(&["run", "p.yaml", "--jobs", "2"]).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        unsafe_kill(child.id(), "KILL");
        let _ = child.wait_with_output();
        assert!(ws.bad_objects().is_empty(), "partial object after kill at {delay_ms} ms");
        // Start over for the next kill point, keeping what finished.
        if delay_ms % 40 == 0 {
            ws.ok(&["run", "p.yaml"]);
            assert_eq!(ws.read("out/sum.txt"), expected, "after kill at {delay_ms} ms");
            let _ = std::fs::remove_dir_all(ws.store());
        }
    }
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(ws.read("out/sum.txt"), expected);
    assert!(ws.bad_objects().is_empty());
    let st = String::from_utf8(ws.pipe(&["status", "p.yaml", "-v"]).stdout).unwrap();
    assert!(st.ends_with("5 of 5 nodes fresh\n"), "{st}");
}

#[test]
fn dag_renders_all_formats() {
    let ws = Workspace::new("dag");
    ws.write("p.yaml", &grid_pipeline("[0.5]", ""));
    let text = String::from_utf8(ws.pipe(&["dag", "p.yaml"]).stdout).unwrap();
    insta::assert_snapshot!("dag_text", text);
    let dot = String::from_utf8(ws.pipe(&["dag", "p.yaml", "--format", "dot"]).stdout).unwrap();
    insta::assert_snapshot!("dag_dot", dot);
    let mermaid = String::from_utf8(ws.pipe(&["dag", "p.yaml", "--format", "mermaid"]).stdout).unwrap();
    insta::assert_snapshot!("dag_mermaid", mermaid);
}

#[test]
fn external_file_inputs_are_tracked_by_content() {
    let ws = Workspace::new("files");
    ws.write("data/raw.csv", "1,2\n");
    ws.write(
        "p.yaml",
        r#"
stages:
  count:
    kind: command
    inputs: {raw: {file: data/raw.csv}}
    params: {cmd: "wc -l < ${inputs.raw} > ${outputs.n}", outputs: [n]}
"#,
    );
    ws.ok(&["run", "p.yaml"]);
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(ws.nodes_in("cached"), sorted(&["count"]));
    ws.write("data/raw.csv", "1,2\n3,4\n");
    let st = String::from_utf8(ws.pipe(&["status", "p.yaml", "-v"]).stdout).unwrap();
    assert!(st.contains("input raw changed (from data/raw.csv)"), "{st}");
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(ws.nodes_in("ran"), sorted(&["count"]));
}
