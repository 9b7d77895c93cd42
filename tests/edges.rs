//! The edges of the commands, tried as a user meets them: gc beside a pipeline file that does not
//! load, a failed node's whole story, a shared store that is not mounted, `--set` values with YAML
//! syntax in them, targets named like folders, overrides narrowed on the command line, gathers of
//! thousands, `pipe get` over an existing file, and the processes of a killed run.

mod common;
use common::Workspace;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}
fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

const TWO_NODES: &str =
    "stages:\n  a:\n    kind: command\n    matrix: {x: [1, 2]}\n    params: {cmd: \"echo ${matrix.x} > ${outputs.o}\", outputs: [o]}\n";

#[test]
fn gc_refuses_while_a_pipeline_file_does_not_load_and_deletes_nothing() {
    let ws = Workspace::new("gc-broken");
    ws.write("keep.yaml", TWO_NODES);
    ws.ok(&["run", "keep.yaml"]);
    let objects = |ws: &Workspace| walk_files(&ws.store().join("objects")).len();
    let before = objects(&ws);
    assert_eq!(before, 2);
    // Mid-edit: a key misspelt, and a YAML syntax error in a second copy; a CI file with a
    // `stages:` list and a plain YAML file beside them are not pipelines.
    ws.write("keep.yaml", &TWO_NODES.replace("params:", "parms:"));
    ws.write("other.yml", "stages:\n  b:\n    kind: command\n    params: {cmd: \"echo [\"\n  - broken\n");
    ws.write(".gitlab-ci.yml", "stages:\n  - build\n  - test\n");
    ws.write("data/config.yaml", "learning_rate: 0.1\n");
    for args in [&["gc", "--records", "--keep-days", "0"][..], &["gc", "--records", "--keep-days", "0", "--dry-run"][..]] {
        let out = ws.pipe(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {err}");
        assert!(err.contains("error: gc --records: keep.yaml looks like a pipeline (it has `stages:`) but does not load"), "{err}");
        assert!(err.contains("parms"), "the load error itself is shown: {err}");
        assert!(err.contains("error: gc --records: other.yml looks like a pipeline"), "{err}");
        assert!(!err.contains(".gitlab-ci.yml") && !err.contains("config.yaml"), "{err}");
        assert!(err.contains("--skip-invalid"), "{err}");
        assert!(!stdout(&out).contains("would remove object"), "{}", stdout(&out));
        assert_eq!(objects(&ws), before, "{args:?} deleted results");
    }
    // The user says so explicitly: what only the broken files used goes.
    let out = ws.pipe(&["gc", "--records", "--keep-days", "0", "--skip-invalid"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("skipping keep.yaml (--skip-invalid): it does not load"), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("removed 2 objects and 2 records"), "{}", stdout(&out));
}

fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(walk_files(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn a_failed_node_keeps_its_traceback_50_of_50() {
    let ws = Workspace::new("traceback");
    ws.write("p.yaml", "stages:\n  a:\n    kind: command\n    params: {cmd: \"python3 fail.py\", outputs: [o]}\n");
    ws.write(
        "fail.py",
        "import sys\nfor i in range(200):\n    print(f'progress {i}', flush=True)\nsys.stderr.write('Traceback (most recent call last):\\n  File \"fail.py\", line 5, in <module>\\nValueError: the input has no rows\\n')\nsys.exit(1)\n",
    );
    for i in 0..50 {
        let out = ws.pipe(&["run", "p.yaml"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(4), "run {i}: {err}");
        let end = err.find("--- end of stderr ---").unwrap_or_else(|| panic!("run {i}: the terminal shows stderr's end: {err}"));
        assert!(err[end..].contains("Traceback (most recent call last):"), "run {i}: {err}");
        assert!(err.contains("ValueError: the input has no rows"), "run {i}: {err}");
        let record = std::fs::read_to_string(ws.store().join("runs/latest.json")).unwrap();
        assert!(record.contains("ValueError: the input has no rows"), "run {i}: the run record keeps it");
        let show = stdout(&ws.pipe(&["show", "p.yaml", "a"]));
        assert!(show.contains("never completed") && show.contains("last attempt failed: key "), "run {i}: {show}");
        assert!(show.contains("error: command exited with status 1"), "run {i}: {show}");
        // The whole log: every progress line and the traceback.
        assert!(show.contains("\nprogress 0\n") && show.contains("\nprogress 199\n"), "run {i}: {show}");
        assert!(show.contains("ValueError: the input has no rows"), "run {i}: {show}");
    }
    let json: serde_json::Value = serde_json::from_slice(&ws.pipe(&["show", "p.yaml", "a", "--json"]).stdout).unwrap();
    let attempt = &json["last_failed_attempt"];
    assert_eq!(attempt["stderr_tail"].as_array().unwrap().last().unwrap(), "ValueError: the input has no rows");
    assert_eq!(attempt["log"].as_str().unwrap().lines().filter(|l| l.starts_with("progress ")).count(), 200);
    assert_eq!(json["last_run"], serde_json::Value::Null);
    // Control characters in a log are shown, not obeyed by the terminal.
    ws.write("esc.yaml", "stages:\n  e:\n    kind: command\n    params: {cmd: \"printf 'ab\\\\033[2J\\\\033]0;pwned\\\\007\\\\n' >&2; exit 1\"}\n");
    let out = ws.pipe(&["run", "esc.yaml"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(!stderr(&out).contains('\u{1b}') && stderr(&out).contains("ab\\x1b[2J\\x1b]0;pwned\\x07"), "{}", stderr(&out));
    let show = stdout(&ws.pipe(&["show", "esc.yaml", "e"]));
    assert!(!show.contains('\u{1b}') && show.contains("ab\\x1b[2J"), "{show}");
    // The report links the failure to its log.
    ws.ok(&["report", "p.yaml", "-o", "r.html"]);
    let html = ws.read("r.html");
    assert!(html.contains("<a href='#fail-0'>last attempt failed: its log</a>"), "the not-fresh row links to the log");
    let failure = &html[html.find("<div class=failure id='fail-0'>").expect("a failure section")..];
    assert!(
        failure.contains("command exited with status 1")
            && failure.contains("progress 199\n")
            && failure.contains("ValueError: the input has no rows")
    );
}

#[test]
fn a_shared_store_folder_that_is_not_there_is_an_error() {
    let ws = Workspace::new("no-share");
    ws.write("p.yaml", TWO_NODES);
    let missing = ws.dir.join("mnt/share/pipe");
    let url = format!("file://{}", missing.display());
    let t = Instant::now();
    for args in [&["run", "p.yaml"][..], &["status", "p.yaml"][..], &["pull", "p.yaml"][..]] {
        let mut full = vec!["--store", url.as_str(), "--cache", "cache"];
        full.extend_from_slice(args);
        let out = ws.pipe(&full);
        assert_eq!(out.status.code(), Some(5), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(&format!("{} does not exist", missing.display())), "{}", stderr(&out));
        assert!(stderr(&out).contains("mount the share"), "{}", stderr(&out));
    }
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(!ws.dir.join("mnt").exists(), "the missing share was created");
    // A URL with a slash missing is not a local folder named `file:`; a relative file:// is refused.
    for store in ["file:/tmp/x", "s3:/bucket", "file://relative/x"] {
        let out = ws.pipe(&["--store", store, "--cache", "cache", "status", "p.yaml"]);
        assert_eq!(out.status.code(), Some(5), "{store}: {}", stderr(&out));
        assert!(stderr(&out).contains("file:///"), "{store}: {}", stderr(&out));
    }
    assert!(!ws.dir.join("file:").exists() && !ws.dir.join("s3:").exists() && !ws.dir.join("relative").exists());
}

#[test]
fn set_values_arrive_byte_for_byte() {
    let ws = Workspace::new("set-bytes");
    ws.write(
        "p.yaml",
        "stages:\n  a:\n    kind: command\n    params: {cmd: \"printf '%s' \\\"$MSG\\\" > ${outputs.o}\", outputs: [o]}\n    publish: {o: out.txt}\n",
    );
    // The value reaches the command as its text: the stage's `cmd` is set whole.
    for value in ["a # not a comment", "key: value", "it's \"quoted\"", "'single'", "0.50", "007", "ünïcødé ✓", "[draft]x", "#start", "true"] {
        let cmd = format!("printf '%s' '{}' > ${{outputs.o}}", value.replace('\'', r"'\''"));
        let set = format!("a.cmd={cmd}");
        let out = ws.pipe(&["run", "p.yaml", "--set", &set]);
        assert!(out.status.success(), "{value:?}: {}", stderr(&out));
        assert_eq!(ws.read("out.txt"), value, "--set a.cmd=... changed the value");
    }
    // Only plain decimal numbers and the lowercase words are values: the rest stays text, as typed,
    // even for a pipeline param substituted into the command.
    ws.write("w.yaml", "params: {note: hello}\nstages:\n  a:\n    kind: command\n    params: {cmd: \"printf '%s' '${params.note}' > ${outputs.o}\", outputs: [o]}\n    publish: {o: w.txt}\n");
    for (value, arrives) in [
        ("~", "~"),
        ("Null", "Null"),
        ("True", "True"),
        ("007", "007"),
        ("+5", "+5"),
        (".5", ".5"),
        (".NaN", ".NaN"),
        ("1e3", "1000.0"),
        ("-2", "-2"),
        ("true", "true"),
    ] {
        let set = format!("params.note={value}");
        let out = ws.pipe(&["run", "w.yaml", "--set", &set]);
        assert!(out.status.success(), "{value:?}: {}", stderr(&out));
        assert_eq!(ws.read("w.txt"), arrives, "--set params.note={value}");
    }
    // A string param given a number keeps the digits as typed.
    let show = stdout(&ws.pipe(&["show", "p.yaml", "a", "--set", "a.cmd=0.50", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&show).unwrap();
    assert_eq!(v["params"]["cmd"], "0.50");
    // Numbers, booleans and lists are YAML where the param wants them.
    ws.write("g.yaml", "params: {n: 1}\nstages:\n  a:\n    kind: command\n    matrix: {x: [1]}\n    params: {cmd: \"echo ${params.n} ${matrix.x} > ${outputs.o}\", outputs: [o]}\n    publish: {o: \"out-${matrix.x}.txt\"}\n");
    ws.ok(&["run", "g.yaml", "--set", "params.n=3", "--set", "a.matrix.x=[5, 6]"]);
    assert_eq!((ws.read("out-5.txt"), ws.read("out-6.txt")), ("3 5\n".to_string(), "3 6\n".to_string()));
    // A `#` after a space inside a list would be a comment: refused with the rule, not truncated.
    let out = ws.pipe(&["status", "g.yaml", "--set", "a.matrix.x=[5, 6 # 7]"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("would be read as a YAML comment"), "{}", stderr(&out));
}

#[test]
fn a_target_named_like_a_folder_is_a_target() {
    let ws = Workspace::new("target-folder");
    ws.write(
        "p.yaml",
        "stages:\n  a:\n    kind: command\n    params: {cmd: \"echo a > ${outputs.o}\", outputs: [o]}\n  results:\n    kind: command\n    params: {cmd: \"echo r > ${outputs.o}\", outputs: [o]}\n    publish: {o: results/r.txt}\n",
    );
    std::fs::create_dir_all(ws.dir.join("results")).unwrap();
    ws.write("pipe.yaml", &std::fs::read_to_string(ws.dir.join("p.yaml")).unwrap());
    ws.ok(&["run", "p.yaml", "results"]);
    assert_eq!(ws.nodes_in("ran"), vec!["results".to_string()]);
    // Without the file: `results` is a target of the default pipe.yaml, not a pipeline folder.
    std::fs::remove_dir_all(ws.store()).unwrap();
    ws.ok(&["run", "results"]);
    assert_eq!(ws.nodes_in("ran"), vec!["results".to_string()]);
}

#[test]
fn narrowing_an_axis_keeps_the_files_own_overrides_valid() {
    let ws = Workspace::new("narrow");
    ws.write(
        "p.yaml",
        "stages:\n  ingest:\n    kind: command\n    matrix: {dataset: [mnist, cifar10]}\n    params: {cmd: \"echo ${matrix.dataset} > ${outputs.o}\", outputs: [o]}\n  train:\n    kind: command\n    inputs: {d: ingest.o}\n    params: {cmd: \"echo 10 > ${outputs.o}\", outputs: [o]}\n    overrides: [{when: {dataset: cifar10}, params: {cmd: \"echo 350 > ${outputs.o}\"}}]\n",
    );
    ws.ok(&["run", "p.yaml", "--set", "ingest.matrix.dataset=[mnist]"]);
    assert_eq!(ws.nodes_in("ran"), vec!["ingest[dataset=mnist]".to_string(), "train[dataset=mnist]".to_string()]);
    // A value the file never has is still an error.
    let out = ws.pipe(&["status", "p.yaml", "--set", "ingest.matrix.dataset=[mnist]", "--set", "train.nothing=1"]);
    assert_eq!(out.status.code(), Some(3));
    ws.write("q.yaml", &ws.read("p.yaml").replace("when: {dataset: cifar10}", "when: {dataset: cifar-10}"));
    let out = ws.pipe(&["status", "q.yaml", "--set", "ingest.matrix.dataset=[mnist]"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("`dataset` never takes the value cifar-10"), "{}", stderr(&out));
}

#[test]
fn a_gather_of_10000_inputs_meets_no_argument_limit() {
    let ws = Workspace::new("gather10k");
    let values: Vec<String> = (0..10_000).map(|i| i.to_string()).collect();
    ws.write(
        "p.yaml",
        &format!(
            "stages:\n  part:\n    kind: command\n    matrix: {{i: [{}]}}\n    params: {{cmd: \"echo ${{matrix.i}} > ${{outputs.o}}\", outputs: [o]}}\n  \
             direct:\n    kind: command\n    inputs: {{parts: {{from: part.o, gather: true}}}}\n    params: {{cmd: \"cat ${{inputs.parts}} | awk '{{s+=$1}} END {{print NR, s}}' > ${{outputs.o}}\", outputs: [o]}}\n    publish: {{o: direct.txt}}\n  \
             listed:\n    kind: command\n    inputs: {{parts: {{from: part.o, gather: true}}}}\n    params: {{cmd: \"xargs cat < ${{inputs.parts.list}} | awk '{{s+=$1}} END {{print NR, s}}' > ${{outputs.o}}\", outputs: [o]}}\n    publish: {{o: listed.txt}}\n",
            values.join(", ")
        ),
    );
    ws.ok(&["run", "p.yaml"]);
    // 10,000 lines holding 0..9999: their sum is 49,995,000.
    assert_eq!(ws.read("direct.txt"), "10000 49995000\n");
    assert_eq!(ws.read("listed.txt"), "10000 49995000\n");
}

#[test]
fn get_writes_like_cp() {
    let ws = Workspace::new("get-cp");
    ws.write("p.yaml", "stages:\n  a:\n    kind: command\n    params: {cmd: \"echo new > ${outputs.o}\", outputs: [o]}\n");
    ws.ok(&["run", "p.yaml"]);
    // A new file follows the umask (the test's own: 022 unless set otherwise).
    let umask = umask();
    ws.ok(&["get", "p.yaml", "a", "o", "fresh.txt"]);
    assert_eq!(std::fs::metadata(ws.dir.join("fresh.txt")).unwrap().permissions().mode() & 0o777, 0o666 & !umask);
    // An existing file keeps its mode (here executable and private).
    let old = ws.write("old.txt", "old\n");
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o700)).unwrap();
    ws.ok(&["get", "p.yaml", "a", "o", "old.txt"]);
    assert_eq!(ws.read("old.txt"), "new\n");
    assert_eq!(std::fs::metadata(&old).unwrap().permissions().mode() & 0o777, 0o700);
    // What cp refuses: a dangling symlink, a FIFO (never opened: that would block).
    std::os::unix::fs::symlink(ws.dir.join("nowhere/x"), ws.dir.join("dangling.txt")).unwrap();
    let out = ws.pipe(&["get", "p.yaml", "a", "o", "dangling.txt"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("dangling symlink"), "{}", stderr(&out));
    assert!(std::process::Command::new("mkfifo").arg(ws.dir.join("fifo")).status().unwrap().success());
    let out = ws.pipe(&["get", "p.yaml", "a", "o", "fifo"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("not a regular file"), "{}", stderr(&out));
    // A destination that cannot be written leaves neither a partial file nor a temporary one.
    let out = ws.pipe(&["get", "p.yaml", "a", "o", "no/such/dir/x.txt"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let leftovers: Vec<_> =
        std::fs::read_dir(&ws.dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().to_string()).filter(|n| n.contains("tmp")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// The umask a child of this test inherits, as `sh` reports it.
fn umask() -> u32 {
    let out = std::process::Command::new("sh").args(["-c", "umask"]).output().unwrap();
    u32::from_str_radix(String::from_utf8_lossy(&out.stdout).trim(), 8).unwrap()
}

#[test]
fn no_process_a_stage_started_outlives_a_killed_run_20_of_20() {
    let ws = Workspace::new("orphans");
    // A marker no other process has, so the test finds exactly this stage's children.
    let marker = 5_000_000 + std::process::id() % 1_000_000;
    ws.write(
        "p.yaml",
        &format!("stages:\n  a:\n    kind: command\n    params: {{cmd: \"sleep {marker} & sleep {marker}; echo > ${{outputs.o}}\", outputs: [o]}}\n"),
    );
    let alive = || {
        let out = std::process::Command::new("pgrep").args(["-f", &format!("^sleep {marker}$")]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    for i in 0..20 {
        let mut child = ws.cmd(&["run", "p.yaml"]).stderr(std::process::Stdio::null()).spawn().unwrap();
        let t = Instant::now();
        while alive() < 2 {
            assert!(t.elapsed() < Duration::from_secs(20), "try {i}: the stage's children never started");
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().unwrap(); // SIGKILL: no handler of pipe's runs
        child.wait().unwrap();
        let t = Instant::now();
        while alive() > 0 {
            assert!(t.elapsed() < Duration::from_secs(5), "try {i}: {} children outlived the killed run", alive());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn status_shows_a_running_node_and_forgets_a_killed_one() {
    let ws = Workspace::new("live");
    ws.write("p.yaml", "stages:\n  slow:\n    kind: command\n    params: {cmd: \"sleep 30; echo > ${outputs.o}\", outputs: [o]}\n");
    let mut child = ws.cmd(&["run", "p.yaml"]).stderr(std::process::Stdio::null()).spawn().unwrap();
    let t = Instant::now();
    let status = |ws: &Workspace| stdout(&ws.pipe(&["status", "p.yaml", "-v"]));
    let live = |ws: &Workspace| -> serde_json::Value { serde_json::from_slice(&ws.pipe(&["status", "p.yaml", "--json"]).stdout).unwrap() };
    loop {
        let s = status(&ws);
        if s.contains("running: ") {
            // From the moment it is claimed, before its progress is first written: who and how long.
            assert!(s.contains(&format!("(pid {} on ", child.id())), "{s}");
            assert!(s.contains("so far"), "{s}");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "never shown running: {s}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Its progress follows (written when the node starts): the JSON names the process.
    while live(&ws)[0]["running"].is_null() {
        assert!(t.elapsed() < Duration::from_secs(20), "no progress written: {}", live(&ws));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(live(&ws)[0]["running"]["pid"], child.id());
    child.kill().unwrap();
    child.wait().unwrap();
    // Its file stays behind (nothing ran its cleanup), but its process is gone: not running.
    assert_eq!(walk_files(&ws.store().join("running")).len(), 1);
    let s = status(&ws);
    assert!(!s.contains("running"), "{s}");
}

#[test]
fn show_says_when_its_last_run_is_of_other_params() {
    let ws = Workspace::new("show-other");
    ws.write("s.yaml", "params: {msg: default}\nstages:\n  a: {kind: command, params: {cmd: \"echo ${params.msg} > ${outputs.x}\", outputs: [x]}}\n");
    ws.ok(&["run", "s.yaml"]);
    ws.ok(&["run", "s.yaml", "--set", "params.msg=other"]);
    // The file's own params have a result: show it, not the --set run's.
    let v: serde_json::Value = serde_json::from_slice(&ws.pipe(&["show", "s.yaml", "a", "--json"]).stdout).unwrap();
    assert_eq!(v["last_run"]["current"], true);
    assert!(v["last_run"]["log"].as_str().unwrap().contains("echo default"), "{v}");
    // Params never run: the last run shown is labelled as another key's.
    let show = stdout(&ws.pipe(&["show", "s.yaml", "a", "--set", "params.msg=third"]));
    assert!(show.contains("of other params or inputs than the ones above"), "{show}");
}

#[test]
fn gc_finds_pipeline_files_at_any_depth_in_any_case_and_through_links() {
    let ws = Workspace::new("gc-find");
    let mk = |rel: &str, v: &str| {
        ws.write(rel, &format!("stages:\n  a:\n    kind: command\n    params: {{cmd: \"echo {v} > ${{outputs.x}}\", outputs: [x]}}\n"));
    };
    mk("deep/a/b/c/d/e/f/g/p.yaml", "4");
    mk("P.YAML", "3");
    mk("elsewhere/r.yml", "11");
    std::os::unix::fs::symlink(ws.dir.join("elsewhere/r.yml"), ws.dir.join("link.yaml")).unwrap();
    for f in ["deep/a/b/c/d/e/f/g/p.yaml", "P.YAML", "link.yaml"] {
        ws.ok(&["run", f]);
    }
    std::fs::rename(ws.dir.join("elsewhere"), ws.dir.join(".hidden")).unwrap();
    std::os::unix::fs::symlink(ws.dir.join(".hidden/r.yml"), ws.dir.join("link2.yaml")).unwrap();
    std::fs::remove_file(ws.dir.join("link.yaml")).unwrap();
    std::fs::rename(ws.dir.join("link2.yaml"), ws.dir.join("link.yaml")).unwrap();
    let out = ws.pipe(&["gc", "--records", "--keep-days", "0", "--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("would remove 0 objects and 0 records"), "{}\n{}", stdout(&out), stderr(&out));
}
