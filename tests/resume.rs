//! Training resumes from its checkpoints and never starts over: raising `epochs`, a `kill -9` and
//! a Ctrl-C mid-training each end with the BYTES of a cold run of the same params (same thread
//! count), and each training node's own log says which epochs it actually trained.

mod common;
use common::{trained, training_pipeline, Workspace};

use std::time::{Duration, Instant};

fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const AE: &str = "pretrain[dataset=mnist]";
const SVDD: &str = "train[dataset=mnist]";

struct Run<'a> {
    ws: &'a Workspace,
    store: &'a str,
}

impl Run<'_> {
    fn args<'b>(&'b self, extra: &[&'b str]) -> Vec<&'b str> {
        let mut a = vec!["--store", self.store];
        a.extend_from_slice(extra);
        a
    }
    fn cmd(&self, extra: &[&str]) -> std::process::Command {
        let data = format!("params.data_dir={}", repo().join("data/bundled").display());
        let mut args = self.args(extra);
        args.extend_from_slice(&["--set", &data]);
        let mut c = self.ws.cmd(&args);
        c.env("PIPE_CHECKPOINT_EVERY_S", "0");
        c
    }
    fn run(&self, extra: &[&str]) -> String {
        let mut full = vec!["run", "p.yaml", "--threads", "1", "-j", "1"];
        full.extend_from_slice(extra);
        let out = self.cmd(&full).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{full:?}: {err}");
        err
    }
    /// The node's output hashes by name, and its log, from `pipe show --json`.
    fn show(&self, node: &str, extra: &[&str]) -> (Vec<(String, String)>, String) {
        let mut full = vec!["show", "p.yaml", node, "--json"];
        full.extend_from_slice(extra);
        let out = self.cmd(&full).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        let last = &v["last_run"];
        let outputs = last["outputs"]
            .as_object()
            .unwrap_or_else(|| panic!("{node} has no last run: {v}"))
            .iter()
            .map(|(k, o)| (k.clone(), std::path::Path::new(o["path"].as_str().unwrap()).file_name().unwrap().to_string_lossy().to_string()))
            .collect();
        (outputs, last["log"].as_str().unwrap().to_string())
    }
    fn checkpoints(&self) -> Vec<String> {
        let dir = self.ws.dir.join(self.store).join("checkpoints");
        let mut out = Vec::new();
        for d in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
                let name = f.file_name().to_string_lossy().to_string();
                if name.ends_with(".safetensors") {
                    assert!(d.path().join(format!("{name}.sha256")).is_file(), "{name} has no checksum beside it");
                    out.push(name);
                }
            }
        }
        out.sort();
        out
    }
}

/// Starts a 6-epoch run, waits until `pipe status` has shown it training and the autoencoder has
/// saved epoch 3 (or a later one) on the way, then sends `signal`; returns the checkpoints left.
fn interrupt_during_epoch_4(r: &Run<'_>, signal: &str, cold_log: &str) -> Vec<String> {
    let mut child = r.cmd(&["run", "p.yaml", "--threads", "1", "-j", "1"]).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let t = Instant::now();
    let mut seen_live = false;
    // A partial checkpoint at epoch 3 or later (the status poll may have taken a while).
    let saved_3 = || {
        r.checkpoints().iter().any(|f| {
            f.strip_prefix("epoch-").and_then(|f| f.strip_suffix(".partial.safetensors")).and_then(|n| n.parse::<u32>().ok()).is_some_and(|n| n >= 3)
        })
    };
    while !seen_live || !saved_3() {
        assert!(t.elapsed() < Duration::from_secs(300), "no checkpoint at epoch 3: {:?}", r.checkpoints());
        if !seen_live {
            // While it trains, `pipe status` elsewhere shows its epoch and loss.
            let s = String::from_utf8_lossy(&r.cmd(&["status", "p.yaml", "-v"]).output().unwrap().stdout).to_string();
            seen_live = s.lines().any(|l| l.contains("running: epoch ") && l.contains("/6, loss "));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    live_curve_in_report(r, cold_log);
    assert!(std::process::Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap().success());
    let status = child.wait().unwrap();
    if signal == "-INT" {
        assert_eq!(status.code(), Some(130), "Ctrl-C: {status:?}");
    }
    assert!(seen_live, "pipe status never showed the running epoch and loss");
    let left = r.checkpoints();
    assert!(!left.iter().any(|f| f == "epoch-6.safetensors"), "the training finished before it was interrupted: {left:?}");
    left
}

/// While the autoencoder trains, `pipe report` shows its loss curve so far, marked running, and
/// the curve's points are the losses of the cold run's same epochs (its log, 6 decimals).
fn live_curve_in_report(r: &Run<'_>, cold_log: &str) {
    let html = r.ws.dir.join(format!("{}-live.html", r.store));
    let out = r.cmd(&["report", "p.yaml", "-o", html.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&html).unwrap();
    assert!(
        text.contains("<h3>Running now</h3>") && text.contains(&format!("{AE}: loss <span class='chip running'>running</span>")),
        "no live curve"
    );
    let live: Vec<serde_json::Value> = std::fs::read_dir(r.ws.dir.join(r.store).join("running"))
        .unwrap()
        .flatten()
        .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
        .filter(|v: &serde_json::Value| v["node"] == AE)
        .collect();
    let points = live[0]["curves"]["loss"].as_array().unwrap_or_else(|| panic!("no loss curve: {:?}", live[0]));
    assert!(points.len() >= 2, "{points:?}");
    for (i, p) in points.iter().enumerate() {
        let (epoch, loss) = (p[0].as_u64().unwrap(), p[1].as_f64().unwrap());
        assert_eq!(epoch, i as u64 + 1, "{points:?}");
        let line = format!("epoch {epoch}/6 loss {loss:.6}");
        assert!(cold_log.lines().any(|l| l == line), "live `{line}` is not the cold run's epoch {epoch}");
    }
}

#[test]
fn training_resumes_with_the_bytes_of_a_cold_run() {
    let ws = Workspace::new("resume");
    ws.write("p.yaml", &training_pipeline(true));

    // The reference: a cold run of 6 epochs.
    let cold = Run { ws: &ws, store: "cold" };
    cold.run(&[]);
    let (cold_ae, cold_ae_log) = cold.show(AE, &[]);
    let (cold_svdd, _) = cold.show(SVDD, &[]);
    assert_eq!(trained(&cold_ae_log), vec![1, 2, 3, 4, 5, 6]);

    // (a) 3 epochs, then `epochs: 6`: resumes at 3 and trains 4..6 only. Deep SVDD below it
    // starts over: its pretrained autoencoder changed, so its first epochs are another computation.
    let more = Run { ws: &ws, store: "more" };
    more.run(&["--set", "params.ae_epochs=3", "--set", "params.svdd_epochs=3"]);
    let three = ["--set", "params.svdd_epochs=3"];
    let status = String::from_utf8_lossy(&more.cmd(&["status", "p.yaml", "-v", three[0], three[1]]).output().unwrap().stdout).to_string();
    let line = status.lines().find(|l| l.contains(AE)).unwrap();
    assert!(line.contains("params.epochs changed 3 -> 6") && line.contains("resumes from epoch 3 of 6"), "{status}");
    let dry = more.cmd(&["run", "p.yaml", "-n", three[0], three[1]]).output().unwrap();
    let dry = String::from_utf8_lossy(&dry.stdout).to_string() + &String::from_utf8_lossy(&dry.stderr);
    assert!(dry.contains("resumes from epoch 3 of 6"), "{dry}");
    more.run(&three);
    let (ae, log) = more.show(AE, &three);
    assert_eq!(trained(&log), vec![4, 5, 6], "{log}");
    assert!(log.contains("resumed from epoch 3 of 6"), "{log}");
    assert_eq!(ae, cold_ae, "3 + 3 epochs differ from a cold 6");
    let (_, log) = more.show(SVDD, &three);
    assert_eq!(trained(&log), vec![1, 2, 3], "another autoencoder: no resume: {log}");
    // Now Deep SVDD's own horizon: 3 -> 6 resumes it at 3.
    more.run(&[]);
    let (svdd, log) = more.show(SVDD, &[]);
    assert_eq!(trained(&log), vec![4, 5, 6], "{log}");
    assert!(log.contains("resumed from epoch 3 of 6"), "{log}");
    assert_eq!(svdd, cold_svdd, "Deep SVDD 3 + 3 differs from a cold 6");
    // The run record keeps where it resumed.
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(ws.dir.join("more/runs/latest.json")).unwrap()).unwrap();
    let node = record["nodes"].as_array().unwrap().iter().find(|n| n["node"] == SVDD).unwrap();
    assert_eq!((node["state"].as_str(), node["resumed_from"].as_u64()), (Some("ran"), Some(3)), "{node}");
    // --no-resume (here with -f, which reruns a cached node) trains from scratch, to the same bytes.
    more.run(&["--no-resume", "-f", "pretrain"]);
    let (ae, log) = more.show(AE, &[]);
    assert_eq!(trained(&log), vec![1, 2, 3, 4, 5, 6], "{log}");
    assert_eq!(ae, cold_ae);

    // gc keeps the checkpoints of the results it keeps (the file at its defaults) and removes the
    // rest. Here: the autoencoder's folder holds epoch 6 (retrained from scratch above), Deep
    // SVDD's on the 6-epoch autoencoder epochs 3 and 6 (both kept), and Deep SVDD's on the 3-epoch
    // autoencoder epoch 3: a training nothing current continues, removed.
    assert_eq!(more.checkpoints().len(), 4, "{:?}", more.checkpoints());
    let dry = ws.cmd(&["--store", "more", "gc", "--records", "--keep-days", "0", "--dry-run"]).output().unwrap();
    let listed: Vec<String> =
        String::from_utf8_lossy(&dry.stdout).lines().filter(|l| l.starts_with("would remove checkpoints ")).map(str::to_string).collect();
    assert_eq!(listed.len(), 1, "the one folder nothing current continues: {listed:?}");
    assert!(listed[0].contains("(2 files, "), "its checkpoint and checksum: {listed:?}");
    let out = ws.cmd(&["--store", "more", "gc", "--records", "--keep-days", "0"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert_eq!(more.checkpoints(), ["epoch-3.safetensors", "epoch-6.safetensors", "epoch-6.safetensors"], "{text}");
    more.run(&[]);
    assert!(more.cmd(&["status", "p.yaml", "--check"]).output().unwrap().status.success(), "everything still fresh after gc");

    // (b) kill -9 during epoch 4 of 6, then run again: resumes at the last saved epoch.
    let killed = Run { ws: &ws, store: "killed" };
    let left = interrupt_during_epoch_4(&killed, "-KILL", &cold_ae_log);
    assert!(left.iter().any(|f| f.ends_with(".partial.safetensors")), "{left:?}");
    killed.run(&[]);
    let (ae, log) = killed.show(AE, &[]);
    let first = trained(&log)[0];
    assert!((4..=6).contains(&first), "resumed at epoch {first}: {log}");
    assert!(log.contains(&format!("resumed from epoch {} of 6", first - 1)), "{log}");
    assert_eq!(ae, cold_ae, "a killed and resumed training differs from a cold one");
    assert_eq!(killed.show(SVDD, &[]).0, cold_svdd);

    // (c) Ctrl-C (SIGINT) during epoch 4: pipe stops cleanly, the next run resumes.
    let stopped = Run { ws: &ws, store: "stopped" };
    interrupt_during_epoch_4(&stopped, "-INT", &cold_ae_log);
    stopped.run(&[]);
    let (ae, log) = stopped.show(AE, &[]);
    assert!(trained(&log)[0] >= 4, "{log}");
    assert_eq!(ae, cold_ae, "an interrupted and resumed training differs from a cold one");
    assert_eq!(stopped.show(SVDD, &[]).0, cold_svdd);
}
