//! `--executor slurm` and `--store s3://` against real daemons on loopback: a one-node Slurm
//! cluster (munged, slurmctld, slurmd) and an S3 server (s3s-fs), started by
//! `scripts/cluster-up.sh` (which `scripts/test.sh` and `.ci/run` call).

mod common;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{sorted, trained, training_pipeline, Workspace};

struct Cluster {
    bucket: String,
    /// Where s3s-fs keeps the buckets' objects as files.
    s3_root: PathBuf,
}

/// The loopback cluster's settings, or None (the test is skipped, saying so) when `cargo test` runs
/// without it. Under CI, or with PIPE_REQUIRE_CLUSTER=1 (`scripts/test.sh` sets it), a missing
/// cluster fails the test instead: those runs must run them all.
fn cluster(test: &str) -> Option<Cluster> {
    let vars = ["SLURM_CONF", "AWS_ENDPOINT_URL", "PIPE_TEST_S3_BUCKET", "PIPE_TEST_S3_ROOT"];
    let missing: Vec<&str> = vars.iter().copied().filter(|k| std::env::var_os(k).is_none()).collect();
    if missing.is_empty() {
        let var = |k: &str| std::env::var(k).unwrap();
        return Some(Cluster { bucket: var("PIPE_TEST_S3_BUCKET"), s3_root: PathBuf::from(var("PIPE_TEST_S3_ROOT")) });
    }
    let how = "these tests need the loopback Slurm cluster and S3 server: run `scripts/test.sh` (it starts and stops them), \
               or `scripts/cluster-up.sh && . /tmp/pipe-cluster/env` before `cargo test`";
    if std::env::var_os("CI").is_some() || std::env::var_os("PIPE_REQUIRE_CLUSTER").is_some() {
        panic!("{} not set: {how}", missing.join(", "));
    }
    // Straight to stderr: the test harness captures eprintln! of passing tests.
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIPPED cluster test `{test}`: {how}");
    None
}

impl Cluster {
    /// A store URL of its own for each test.
    fn url(&self, name: &str) -> String {
        format!("s3://{}/{name}-{}", self.bucket, std::process::id())
    }
    fn prefix_dir(&self, url: &str) -> PathBuf {
        self.s3_root.join(url.trim_start_matches("s3://"))
    }
}

/// prep[dataset] -> train[dataset, mu2] -> score[dataset, mu2] -> summary (a gather): 11 nodes.
const GRID: &str = r#"
stages:
  prep:
    kind: command
    matrix:
      dataset: [a, b]
    params:
      cmd: "echo data-${matrix.dataset} > ${outputs.data.txt}"
      outputs: [data.txt]
  train:
    kind: command
    matrix:
      mu2: [0.0, 0.5]
    inputs:
      data: prep.data.txt
    params:
      cmd: "cat ${inputs.data} > ${outputs.model.txt}; echo mu2=${matrix.mu2} >> ${outputs.model.txt}"
      outputs: [model.txt]
  score:
    kind: command
    inputs:
      model: train.model.txt
    params:
      cmd: "wc -c < ${inputs.model} > ${outputs.score.txt}"
      outputs: [score.txt]
  summary:
    kind: command
    inputs:
      scores: {from: score.score.txt, gather: true}
    params:
      cmd: "cat ${inputs.scores} > ${outputs.all.txt}"
      outputs: [all.txt]
"#;

/// Every file under `dir/objects`, by path relative to `dir`, with its bytes.
fn objects(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for d in std::fs::read_dir(dir.join("objects")).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
            let rel = f.path().strip_prefix(dir).unwrap().display().to_string();
            out.insert(rel, std::fs::read(f.path()).unwrap());
        }
    }
    out
}

/// (node, state, key) of the latest run recorded in a store or cache directory.
fn run_of(store: &Path) -> Vec<(String, String, Option<String>)> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(store.join("runs/latest.json")).unwrap()).unwrap();
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["node"].as_str().unwrap().into(), n["state"].as_str().unwrap().into(), n["key"].as_str().map(String::from)))
        .collect()
}

fn states(store: &Path, state: &str) -> Vec<String> {
    let mut v: Vec<String> = run_of(store).into_iter().filter(|(_, s, _)| s == state).map(|(n, _, _)| n).collect();
    v.sort();
    v
}

#[test]
fn slurm_with_s3_matches_the_local_run_and_a_fresh_cache_restores_from_s3() {
    let Some(c) = cluster("slurm_with_s3_matches_the_local_run_and_a_fresh_cache_restores_from_s3") else { return };
    let ws = Workspace::new("slurm-s3");
    ws.write("grid.yaml", GRID);
    let url = c.url("grid");

    ws.ok(&["--store", "local", "run", "grid.yaml"]);
    let local = run_of(&ws.dir.join("local"));
    assert_eq!(local.len(), 11);
    assert!(local.iter().all(|(_, s, _)| s == "ran"));

    let stderr = ws.ok(&["--store", &url, "--cache", "cache-a", "run", "grid.yaml", "--executor", "slurm", "--threads", "1"]);
    let slurm = run_of(&ws.dir.join("cache-a"));
    assert_eq!(slurm, local, "same nodes, states and keys as the local run\n{stderr}");
    // Every node ran as its own Slurm job: one job log each.
    let logs = std::fs::read_dir(ws.dir.join("cache-a/slurm")).unwrap().count();
    assert_eq!(logs, 11, "one sbatch job per node");

    // Same bytes locally, in the Slurm run's cache and on the S3 server.
    let want = objects(&ws.dir.join("local"));
    // 11 outputs, 8 distinct contents: the four scores are the same bytes, stored once.
    assert_eq!(want.len(), 8);
    assert_eq!(objects(&ws.dir.join("cache-a")), want);
    assert_eq!(objects(&c.prefix_dir(&url)), want);
    for (node, _, key) in &local {
        let key = key.as_ref().unwrap();
        assert!(c.prefix_dir(&url).join(format!("nodes/{key}.json")).is_file(), "record of {node} on S3");
    }

    // A second machine: an empty cache restores everything from S3, recomputing nothing.
    ws.ok(&["--store", &url, "--cache", "cache-b", "run", "grid.yaml"]);
    assert_eq!(states(&ws.dir.join("cache-b"), "cached").len(), 11);
    assert!(states(&ws.dir.join("cache-b"), "ran").is_empty());
    assert_eq!(objects(&ws.dir.join("cache-b")), want);

    // A byte flipped on the S3 server is caught by the hash check of the next download: that node
    // is recomputed and its object replaced; its dependents' keys are unchanged (cache hits).
    let prep_key = local.iter().find(|(n, _, _)| n == "prep[dataset=a]").unwrap().2.clone().unwrap();
    let rec: serde_json::Value = serde_json::from_slice(&std::fs::read(ws.dir.join(format!("local/nodes/{prep_key}.json"))).unwrap()).unwrap();
    let obj = rec["outputs"].as_object().unwrap().values().next().unwrap();
    let rel = format!("objects/{}/{}.txt", &obj["hash"].as_str().unwrap()[..2], obj["hash"].as_str().unwrap());
    let on_s3 = c.prefix_dir(&url).join(&rel);
    let mut bytes = std::fs::read(&on_s3).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&on_s3, &bytes).unwrap();
    let stderr = ws.ok(&["--store", &url, "--cache", "cache-d", "run", "grid.yaml"]);
    assert_eq!(states(&ws.dir.join("cache-d"), "ran"), sorted(&["prep[dataset=a]"]), "{stderr}");
    assert!(stderr.contains("corrupt"), "{stderr}");
    assert_eq!(objects(&c.prefix_dir(&url)), want, "the S3 object is whole again");

    // And `status` on a third agrees that everything is fresh.
    let out = ws.pipe(&["--store", &url, "--cache", "cache-c", "status", "grid.yaml", "--check"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(objects(&ws.dir.join("cache-c")).is_empty(), "status checks objects on S3 without downloading them");

    // An edit on one machine reruns exactly its nodes on Slurm (the scores come out byte-identical,
    // so the summary is a cache hit: early cutoff); the other machine then sees them.
    ws.write("grid.yaml", &GRID.replace("mu2: [0.0, 0.5]", "mu2: [0.0, 0.7]"));
    ws.ok(&["--store", &url, "--cache", "cache-a", "run", "grid.yaml", "--executor", "slurm", "--threads", "1"]);
    assert_eq!(
        states(&ws.dir.join("cache-a"), "ran"),
        sorted(&["score[dataset=a,mu2=0.7]", "score[dataset=b,mu2=0.7]", "train[dataset=a,mu2=0.7]", "train[dataset=b,mu2=0.7]"])
    );
    ws.ok(&["--store", &url, "--cache", "cache-b", "run", "grid.yaml"]);
    assert!(states(&ws.dir.join("cache-b"), "ran").is_empty());
}

/// Waits (up to a minute) until the job named `name` runs; returns its id.
fn wait_running(name: &str) -> String {
    let t0 = Instant::now();
    loop {
        if let Some((id, state)) = squeue_job(name) {
            if state == "RUNNING" {
                return id;
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "job {name} never started");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The job named `name` whose working directory is `dir` (tests run at once may share names).
fn squeue_job_in(name: &str, dir: &Path) -> Option<String> {
    let out = Command::new("squeue").args(["-h", "-o", "%i|%j|%Z"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let f: Vec<&str> = l.split('|').collect();
        (f.len() == 3 && f[1] == name && Path::new(f[2]) == dir).then(|| f[0].to_string())
    })
}

fn squeue_job(name: &str) -> Option<(String, String)> {
    let out = Command::new("squeue").args(["-h", "-o", "%i|%j|%T"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let f: Vec<&str> = l.split('|').collect();
        (f.len() == 3 && f[1] == name).then(|| (f[0].to_string(), f[2].to_string()))
    })
}

#[test]
fn a_job_killed_by_scancel_is_reported_and_rerun() {
    let Some(c) = cluster("a_job_killed_by_scancel_is_reported_and_rerun") else { return };
    let ws = Workspace::new("scancel");
    ws.write(
        "p.yaml",
        r#"
stages:
  slow:
    kind: command
    params:
      cmd: "sleep 4; echo slow > ${outputs.out.txt}"
      outputs: [out.txt]
  after:
    kind: command
    inputs:
      x: slow.out.txt
    params:
      cmd: "cat ${inputs.x} > ${outputs.out.txt}"
      outputs: [out.txt]
  other:
    kind: command
    params:
      cmd: "echo other > ${outputs.out.txt}"
      outputs: [out.txt]
"#,
    );
    let url = c.url("scancel");
    let args = ["--store", url.as_str(), "--cache", "cache", "run", "p.yaml", "--executor", "slurm", "--threads", "1"];
    let driver = ws.cmd(&args).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let job = wait_running("pipe:slow");
    assert!(Command::new("scancel").arg(&job).status().unwrap().success());
    let out = driver.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "exit code: nodes failed\n{stderr}");
    assert!(stderr.contains(&format!("Slurm job {job} ended")) && stderr.contains("scancel"), "{stderr}");
    let store = ws.dir.join("cache");
    assert_eq!(states(&store, "failed"), sorted(&["slow"]));
    assert_eq!(states(&store, "skipped"), sorted(&["after"]));
    assert_eq!(states(&store, "ran"), sorted(&["other"]));

    // The next run reruns the killed node and its dependent, and only them.
    ws.ok(&args);
    assert_eq!(states(&store, "ran"), sorted(&["after", "slow"]));
    assert_eq!(states(&store, "cached"), sorted(&["other"]));
}

#[test]
fn a_failing_job_fails_only_its_dependents_with_the_stage_error() {
    let Some(_) = cluster("a_failing_job_fails_only_its_dependents_with_the_stage_error") else { return };
    let ws = Workspace::new("slurm-fail");
    ws.write(
        "p.yaml",
        r#"
stages:
  bad:
    kind: command
    params:
      cmd: "echo about to fail; exit 3"
      outputs: [out.txt]
  after:
    kind: command
    inputs:
      x: bad.out.txt
    params:
      cmd: "cat ${inputs.x} > ${outputs.out.txt}"
      outputs: [out.txt]
  good:
    kind: command
    params:
      cmd: "echo good > ${outputs.out.txt}"
      outputs: [out.txt]
"#,
    );
    // A plain directory store, shared by the driver and the jobs (the shared-file-system setup).
    let out =
        ws.pipe(&["--store", "shared", "run", "p.yaml", "--executor", "slurm", "--threads", "1", "--partition", "debug", "--sbatch-arg=--time=5"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("command exited with status 3") && stderr.contains("about to fail"), "{stderr}");
    let store = ws.dir.join("shared");
    assert_eq!(states(&store, "failed"), sorted(&["bad"]));
    assert_eq!(states(&store, "skipped"), sorted(&["after"]));
    assert_eq!(states(&store, "ran"), sorted(&["good"]));
    // The job wrote the record into the shared directory itself.
    let good_key = run_of(&store).into_iter().find(|(n, _, _)| n == "good").unwrap().2.unwrap();
    assert!(store.join(format!("nodes/{good_key}.json")).is_file());
}

/// Runs `pipe status` against `url` with extra environment; returns (exit code, stderr, seconds).
fn status_with(ws: &Workspace, url: &str, env: &[(&str, &str)]) -> (Option<i32>, String, f64) {
    let mut cmd = ws.cmd(&["--store", url, "--cache", "cache", "status", "grid.yaml"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let t = Instant::now();
    let out = cmd.output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).to_string(), t.elapsed().as_secs_f64())
}

#[test]
fn wrong_credentials_a_missing_bucket_or_a_dead_endpoint_fail_within_seconds() {
    let Some(c) = cluster("wrong_credentials_a_missing_bucket_or_a_dead_endpoint_fail_within_seconds") else { return };
    let ws = Workspace::new("s3-errors");
    ws.write("grid.yaml", GRID);
    let url = c.url("errors");

    let (code, err, secs) = status_with(&ws, &url, &[("AWS_SECRET_ACCESS_KEY", "not-the-secret")]);
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains(&url) && err.contains("refused the credentials") && err.contains("AWS_SECRET_ACCESS_KEY"), "{err}");
    assert!(secs < 10.0, "{secs} s");

    let (code, err, secs) = status_with(&ws, "s3://no-such-bucket/x", &[]);
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains("bucket does not exist"), "{err}");
    assert!(secs < 10.0, "{secs} s");

    // Credentials from a config file (profile `ci`) when the environment has none.
    let creds = ws.write(
        "aws/credentials",
        &format!(
            "[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n[ci]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            std::env::var("AWS_ACCESS_KEY_ID").unwrap(),
            std::env::var("AWS_SECRET_ACCESS_KEY").unwrap()
        ),
    );
    let mut cmd = ws.cmd(&["--store", &url, "--cache", "cache", "status", "grid.yaml"]);
    cmd.env_remove("AWS_ACCESS_KEY_ID").env_remove("AWS_SECRET_ACCESS_KEY").env("AWS_SHARED_CREDENTIALS_FILE", &creds).env("AWS_PROFILE", "ci");
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = ws
        .cmd(&["--store", &url, "--cache", "cache", "status", "grid.yaml"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_SHARED_CREDENTIALS_FILE", &creds)
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "the default profile's wrong key is refused");

    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = format!("http://127.0.0.1:{port}");
    let (code, err, secs) = status_with(&ws, &url, &[("AWS_ENDPOINT_URL", &dead)]);
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains("unreachable") && err.contains("AWS_ENDPOINT_URL"), "{err}");
    assert!(secs < 10.0, "{secs} s");
}

#[test]
fn ctrl_c_cancels_the_runs_slurm_jobs() {
    let Some(c) = cluster("ctrl_c_cancels_the_runs_slurm_jobs") else { return };
    let ws = Workspace::new("slurm-int");
    ws.write(
        "p.yaml",
        r#"
stages:
  long:
    kind: command
    params:
      cmd: "sleep 60; echo done > ${outputs.out.txt}"
      outputs: [out.txt]
"#,
    );
    let url = c.url("interrupt");
    let driver =
        ws.cmd(&["--store", &url, "--cache", "cache", "run", "p.yaml", "--executor", "slurm"]).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let job = wait_running("pipe:long");
    let t0 = Instant::now();
    assert!(Command::new("kill").args(["-INT", &driver.id().to_string()]).status().unwrap().success());
    let out = driver.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(t0.elapsed() < Duration::from_secs(40), "the driver waited for the job instead of cancelling it");
    // The job is cancelled, not left running on the cluster.
    let gone = (0..50).any(|_| {
        let state = squeue_job("pipe:long").map(|(_, s)| s);
        if state.as_deref().is_none_or(|s| s == "CANCELLED") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
        false
    });
    assert!(gone, "Slurm job {job} still queued or running after Ctrl-C");
    let run: serde_json::Value = serde_json::from_slice(&std::fs::read(ws.dir.join("cache/runs/latest.json")).unwrap()).unwrap();
    assert_eq!(run["status"], "interrupted");
    assert_eq!(states(&ws.dir.join("cache"), "cancelled"), sorted(&["long"]));
}

#[test]
fn real_training_on_slurm_with_s3_gives_the_local_bytes() {
    let Some(c) = cluster("real_training_on_slurm_with_s3_gives_the_local_bytes") else { return };
    let ws = Workspace::new("slurm-ml");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/bundled");
    ws.write(
        "ml.yaml",
        &format!(
            r#"
stages:
  ingest:
    kind: ingest
    matrix: {{dataset: [mnist], normal_class: [0]}}
    params: {{data_dir: "{}"}}
  pretrain:
    kind: pretrain_ae
    matrix: {{seed: [0]}}
    inputs: {{data: ingest.dataset}}
    params: {{epochs: 1, batch_size: 128, lr: 0.001, milestones: []}}
  train:
    kind: train_svdd
    matrix: {{mu2: [0.0, 0.5]}}
    inputs: {{data: ingest.dataset, ae: pretrain.model}}
    params: {{seed: "${{matrix.seed}}", epochs: 1, batch_size: 128, lr: 0.0001, milestones: []}}
  threshold:
    kind: fit_threshold
    matrix: {{method: [radius, mahalanobis]}}
    inputs: {{scores: train.scores}}
  evaluate:
    kind: evaluate
    inputs: {{scores: threshold.scores, threshold: threshold.threshold}}
  results:
    kind: concat
    inputs: {{tables: {{from: evaluate.metrics, gather: true}}}}
"#,
            data.display()
        ),
    );
    let url = c.url("ml");
    ws.ok(&["--store", "local", "run", "ml.yaml", "-j", "2", "--threads", "1"]);
    ws.ok(&["--store", &url, "--cache", "cache", "run", "ml.yaml", "--executor", "slurm", "--threads", "1"]);
    let local = run_of(&ws.dir.join("local"));
    assert_eq!(local.len(), 13);
    assert_eq!(run_of(&ws.dir.join("cache")), local, "same nodes and keys");
    assert_eq!(objects(&ws.dir.join("cache")), objects(&ws.dir.join("local")), "same weights, scores and tables, byte for byte");
    assert_eq!(objects(&c.prefix_dir(&url)), objects(&ws.dir.join("local")));
}

#[test]
fn gc_remote_deletes_only_what_no_current_node_uses_and_nothing_recent() {
    let Some(c) = cluster("gc_remote_deletes_only_what_no_current_node_uses_and_nothing_recent") else { return };
    let ws = Workspace::new("gc-remote");
    ws.write("grid.yaml", GRID);
    let url = c.url("gc");
    ws.ok(&["--store", &url, "--cache", "cache", "run", "grid.yaml"]);
    ws.write("grid.yaml", &GRID.replace("mu2: [0.0, 0.5]", "mu2: [0.0, 0.7]"));
    ws.ok(&["--store", &url, "--cache", "cache", "run", "grid.yaml"]);
    let before = objects(&c.prefix_dir(&url));

    // Within the grace period nothing goes, even what is unreferenced.
    let out = ws.pipe(&["--store", &url, "--cache", "cache", "gc", "--remote", "--records", "--keep-days", "0"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("removed 0 objects and 0 records"), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(objects(&c.prefix_dir(&url)), before);

    // Without it: exactly the two mu2=0.5 models go (their scores are shared bytes, still used).
    let out = ws.pipe(&["--store", &url, "--cache", "cache", "gc", "--remote", "--records", "--keep-days", "0", "--older-than", "0"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("removed 2 objects and 4 records"), "{stdout}");
    let after = objects(&c.prefix_dir(&url));
    assert_eq!(before.len() - after.len(), 2);
    assert!(after.keys().all(|k| before.contains_key(k)));

    // Another machine still gets every current result from S3 without recomputing.
    ws.ok(&["--store", &url, "--cache", "fresh", "run", "grid.yaml"]);
    assert!(states(&ws.dir.join("fresh"), "ran").is_empty());
    assert_eq!(states(&ws.dir.join("fresh"), "cached").len(), 11);
}

#[test]
fn a_job_whose_machine_differs_refuses_to_run_under_another_key() {
    let Some(_) = cluster("a_job_whose_machine_differs_refuses_to_run_under_another_key") else { return };
    let ws = Workspace::new("slurm-env");
    // The job's machine finds OTHER data under the same name (here the Fashion-MNIST subset where
    // MNIST is expected): `ingest` keys the data by its checksums, so the job's key differs and it
    // must not run under the submitted one. (The same data at another path gives the same key.)
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/bundled");
    for (d, src) in [("here", "mnist"), ("there", "fashion-mnist")] {
        let dest = ws.dir.join(d).join("mnist");
        std::fs::create_dir_all(&dest).unwrap();
        for f in std::fs::read_dir(bundled.join(src)).unwrap().flatten() {
            std::fs::copy(f.path(), dest.join(f.file_name())).unwrap();
        }
    }
    ws.write("p.yaml", "stages:\n  ingest:\n    kind: ingest\n    params: {dataset: mnist, normal_class: 0}\n");
    // The job's key is even in the store already (a local run on "their" side): still refused.
    let out = ws.cmd(&["--store", "shared", "run", "p.yaml"]).env("PIPE_DATA_DIR", ws.dir.join("there")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let there = format!("--sbatch-arg=--export=ALL,PIPE_DATA_DIR={}", ws.dir.join("there").display());
    let out =
        ws.cmd(&["--store", "shared", "run", "p.yaml", "--executor", "slurm", &there]).env("PIPE_DATA_DIR", ws.dir.join("here")).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("not the submitted") && stderr.contains("environment.data") && stderr.contains("pin it in the pipeline"), "{stderr}");
    assert_eq!(std::fs::read_dir(ws.dir.join("shared/nodes")).unwrap().count(), 1, "nothing recorded under the submitted key");
}

#[test]
fn jobs_outlive_a_killed_driver_and_the_next_run_reuses_their_results() {
    let Some(c) = cluster("jobs_outlive_a_killed_driver_and_the_next_run_reuses_their_results") else { return };
    let ws = Workspace::new("slurm-kill9");
    ws.write(
        "p.yaml",
        "stages:\n  orphan:\n    kind: command\n    params:\n      cmd: \"sleep 3; echo done > ${outputs.out.txt}\"\n      outputs: [out.txt]\n",
    );
    let url = c.url("kill9");
    let args = ["--store", url.as_str(), "--cache", "cache", "run", "p.yaml", "--executor", "slurm"];
    let mut driver = ws.cmd(&args).stderr(std::process::Stdio::null()).spawn().unwrap();
    wait_running("pipe:orphan");
    let t0 = Instant::now();
    assert!(Command::new("kill").args(["-9", &driver.id().to_string()]).status().unwrap().success());
    let _ = driver.wait();
    while squeue_job("pipe:orphan").is_some() {
        assert!(t0.elapsed() < Duration::from_secs(60), "the orphaned job never ended");
        std::thread::sleep(Duration::from_millis(200));
    }
    ws.ok(&args);
    assert_eq!(states(&ws.dir.join("cache"), "cached"), sorted(&["orphan"]), "the orphaned job's result is reused");
}

/// A driver killed (-9) while its jobs run, then started again while they still run: it adopts
/// each job its claim names (Slurm still lists it) instead of submitting the node again; the run
/// completes with the same bytes. Each node writes a line to a witness file outside the store
/// when its command starts.
#[test]
fn a_restarted_driver_adopts_the_jobs_still_running() {
    let Some(c) = cluster("a_restarted_driver_adopts_the_jobs_still_running") else { return };
    let ws = Workspace::new("slurm-adopt");
    let witness = ws.dir.join("witness.log");
    let w = witness.display();
    ws.write(
        "p.yaml",
        &format!(
            r#"
stages:
  adopt_slow:
    kind: command
    matrix: {{part: [x, y]}}
    params:
      cmd: "echo ${{matrix.part}} >> {w}; sleep 6; echo part-${{matrix.part}} > ${{outputs.out.txt}}"
      outputs: [out.txt]
  adopt_join:
    kind: command
    inputs: {{parts: {{from: adopt_slow.out.txt, gather: true}}}}
    params:
      cmd: "cat ${{inputs.parts}} > ${{outputs.all.txt}}"
      outputs: [all.txt]
    publish: {{all.txt: all.txt}}
"#
        ),
    );
    let url = c.url("adopt");
    let args = ["--store", url.as_str(), "--cache", "cache", "run", "p.yaml", "--executor", "slurm"];
    let mut driver = ws.cmd(&args).stderr(std::process::Stdio::null()).spawn().unwrap();
    let t0 = Instant::now();
    let jobs: Vec<String> = loop {
        let q = Command::new("squeue").args(["-h", "-o", "%i|%j|%Z|%T"]).output().unwrap();
        let running: Vec<String> = String::from_utf8_lossy(&q.stdout)
            .lines()
            .filter_map(|l| match l.split('|').collect::<Vec<_>>()[..] {
                [id, "pipe:adopt_slow", dir, "RUNNING"] if Path::new(dir) == ws.dir => Some(id.to_string()),
                _ => None,
            })
            .collect();
        if running.len() == 2 {
            break running;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "the jobs never appeared");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(Command::new("kill").args(["-9", &driver.id().to_string()]).status().unwrap().success());
    let _ = driver.wait();
    let out = ws.cmd(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for job in &jobs {
        assert!(stderr.contains(&format!("adopting Slurm job {job},")), "job {job} adopted:\n{stderr}");
    }
    let mut started: Vec<String> = std::fs::read_to_string(&witness).unwrap().lines().map(str::to_string).collect();
    started.sort();
    assert_eq!(started, ["x", "y"], "each node's command ran once: nothing was submitted twice");
    assert_eq!(ws.read("all.txt"), "part-x\npart-y\n");
    assert_eq!(states(&ws.dir.join("cache"), "ran"), sorted(&["adopt_join", "adopt_slow[part=x]", "adopt_slow[part=y]"]));
}

#[test]
fn large_objects_move_in_parts_and_arrive_whole() {
    let Some(c) = cluster("large_objects_move_in_parts_and_arrive_whole") else { return };
    let ws = Workspace::new("s3-parts");
    // 12 MiB in 5 MiB parts: a three-part multipart upload, then three ranged GETs.
    ws.write(
        "p.yaml",
        "stages:\n  big:\n    kind: command\n    params:\n      cmd: \"yes pipe-artifact | head -c 12582912 > ${outputs.blob.bin}\"\n      outputs: [blob.bin]\n",
    );
    let url = c.url("parts");
    let part = ("PIPE_S3_PART_SIZE", "5242880");
    let out = ws.cmd(&["--store", &url, "--cache", "a", "run", "p.yaml"]).env(part.0, part.1).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let local = objects(&ws.dir.join("a"));
    assert_eq!(local.values().next().map(Vec::len), Some(12582912));
    assert_eq!(objects(&c.prefix_dir(&url)), local, "the parts were assembled into the same bytes");

    let out = ws.cmd(&["--store", &url, "--cache", "b", "run", "p.yaml"]).env(part.0, part.1).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(states(&ws.dir.join("b"), "cached"), sorted(&["big"]));
    assert_eq!(objects(&ws.dir.join("b")), local);

    let out = ws.cmd(&["--store", &url, "--cache", "c", "status", "p.yaml"]).env(part.0, "1000").output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PIPE_S3_PART_SIZE"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn jobs_with_their_own_caches_hand_everything_back_through_s3() {
    let Some(c) = cluster("jobs_with_their_own_caches_hand_everything_back_through_s3") else { return };
    let ws = Workspace::new("slurm-own-cache");
    ws.write("grid.yaml", GRID);
    let url = c.url("own-cache");
    // Every job uses a cache the driver never reads (as on node-local disks): records, failure
    // markers and objects can only reach the driver through S3.
    let node_local = format!("--sbatch-arg=--export=ALL,PIPE_JOB_CACHE={}", ws.dir.join("node-local").display());
    ws.ok(&["--store", &url, "--cache", "driver", "run", "grid.yaml", "--executor", "slurm", &node_local]);
    assert_eq!(states(&ws.dir.join("driver"), "ran").len(), 11);
    assert!(objects(&ws.dir.join("driver")).is_empty(), "the driver downloads nothing it does not publish");
    assert_eq!(objects(&ws.dir.join("node-local")), objects(&c.prefix_dir(&url)));

    // A failure crosses the same way, with its message.
    ws.write("grid.yaml", &GRID.replace("wc -c <", "exit 7; wc -c <"));
    let out = ws.pipe(&["--store", &url, "--cache", "driver", "run", "grid.yaml", "--executor", "slurm", &node_local]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("command exited with status 7"), "{stderr}");
    assert_eq!(states(&ws.dir.join("driver"), "failed").len(), 4);
}

/// The pretrain node's output objects (name -> object file name) and its log, from `pipe show`.
fn pretrain_show(ws: &Workspace, store: &[&str], set: &[&str]) -> (Vec<(String, String)>, String) {
    let mut args = store.to_vec();
    args.extend_from_slice(&["show", "p.yaml", "pretrain[dataset=mnist]", "--json"]);
    args.extend_from_slice(set);
    let out = ws.pipe(&args);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let last = &v["last_run"];
    let outputs = last["outputs"]
        .as_object()
        .unwrap_or_else(|| panic!("no last run: {v}"))
        .iter()
        .map(|(k, o)| (k.clone(), Path::new(o["path"].as_str().unwrap()).file_name().unwrap().to_string_lossy().to_string()))
        .collect();
    (outputs, last["log"].as_str().unwrap().to_string())
}

/// The latest partial checkpoint epoch whole on the S3 side (the file and its `.sha256`).
fn partial_in_s3(prefix_dir: &Path) -> Option<usize> {
    let mut best = None;
    for d in std::fs::read_dir(prefix_dir.join("checkpoints")).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
            let name = f.file_name().to_string_lossy().to_string();
            let Some(n) = name.strip_prefix("epoch-").and_then(|n| n.strip_suffix(".partial.safetensors")).and_then(|n| n.parse().ok()) else {
                continue;
            };
            if d.path().join(format!("{name}.sha256")).is_file() {
                best = best.max(Some(n));
            }
        }
    }
    best
}

/// Waits (up to 5 minutes) until S3 holds a partial checkpoint at `epoch` or later; returns it.
fn wait_partial_in_s3(prefix_dir: &Path, epoch: usize) -> usize {
    let t0 = Instant::now();
    loop {
        if let Some(n) = partial_in_s3(prefix_dir).filter(|n| *n >= epoch) {
            return n;
        }
        assert!(t0.elapsed() < Duration::from_secs(300), "no checkpoint at epoch {epoch} reached S3");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_training_job_stopped_on_the_cluster_resumes_from_its_checkpoint_in_s3() {
    let Some(c) = cluster("a_training_job_stopped_on_the_cluster_resumes_from_its_checkpoint_in_s3") else { return };
    let ws = Workspace::new("slurm-resume");
    ws.write("p.yaml", &training_pipeline(false));
    let data = format!("params.data_dir={}", Path::new(env!("CARGO_MANIFEST_DIR")).join("data/bundled").display());
    let local = |store: &str, extra: &[&str]| {
        let mut a = vec!["--store", store, "run", "p.yaml", "--threads", "1", "-j", "1", "--set", &data];
        a.extend_from_slice(extra);
        ws.ok(&a);
    };
    // The reference: a cold 6 epochs here.
    local("cold", &[]);
    let (cold, _) = pretrain_show(&ws, &["--store", "cold"], &["--set", &data]);

    // A job is stopped (as by its time limit: `scancel` sends the same SIGTERM) after saving
    // epoch 3 or later, and its machine is lost with its node-local cache.
    let url = c.url("resume");
    let prefix = c.prefix_dir(&url);
    let slurm = |cache: &str, extra: &[&str]| {
        let node_local = format!("--sbatch-arg=--export=ALL,PIPE_JOB_CACHE={}", ws.dir.join(cache).display());
        let mut a: Vec<String> = ["--store", &url, "--cache", "driver", "run", "p.yaml", "--executor", "slurm", "--threads", "1", "--set", &data]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.push(node_local);
        a.extend(extra.iter().map(|s| s.to_string()));
        let mut cmd = ws.cmd(&a.iter().map(String::as_str).collect::<Vec<_>>());
        cmd.env("PIPE_CHECKPOINT_EVERY_S", "0").stderr(std::process::Stdio::piped());
        cmd
    };
    let driver = slurm("machine-a", &[]).spawn().unwrap();
    let saved = wait_partial_in_s3(&prefix, 3);
    let job = squeue_job_in("pipe:pretrain", &ws.dir).expect("the training job is in the queue");
    assert!(Command::new("scancel").arg(&job).status().unwrap().success());
    let out = driver.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    let saved = partial_in_s3(&prefix).unwrap_or(saved);
    assert!(saved < 6, "the training finished before it was stopped");
    std::fs::remove_dir_all(ws.dir.join("machine-a")).unwrap();

    // `pipe status` says where it resumes (from what S3 holds), and the next run, on another
    // machine, resumes there: the epochs after it trained, the bytes of the cold run.
    let st = ws.pipe(&["--store", &url, "--cache", "driver", "status", "p.yaml", "-v", "--set", &data]);
    let st = String::from_utf8_lossy(&st.stdout);
    assert!(st.contains(&format!("resumes from epoch {saved} of 6")), "{st}");
    let out = slurm("machine-b", &[]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (resumed, log) = pretrain_show(&ws, &["--store", &url, "--cache", "driver"], &["--set", &data]);
    assert_eq!(trained(&log), (saved + 1..=6).collect::<Vec<_>>(), "{log}");
    assert!(log.contains(&format!("resumed from epoch {saved} of 6")), "{log}");
    assert_eq!(resumed, cold, "same weights and history objects as the cold run");

    // `--requeue`: 12 epochs resume from the 6 in S3; the job stopped after epoch 7 or later is
    // submitted again within the run, which ends with the bytes of a 6 -> 12 resume here.
    local("cold", &["--set", "params.ae_epochs=12"]);
    let (cold12, _) = pretrain_show(&ws, &["--store", "cold"], &["--set", &data, "--set", "params.ae_epochs=12"]);
    let driver = slurm("machine-c", &["--set", "params.ae_epochs=12", "--requeue", "1"]).spawn().unwrap();
    let saved = wait_partial_in_s3(&prefix, 7);
    let job = squeue_job_in("pipe:pretrain", &ws.dir).expect("the training job is in the queue");
    assert!(Command::new("scancel").arg(&job).status().unwrap().success());
    let out = driver.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("Slurm job {job} ended")) && stderr.contains("submitting it again (1 of --requeue 1)"), "{stderr}");
    let (requeued, log) = pretrain_show(&ws, &["--store", &url, "--cache", "driver"], &["--set", &data, "--set", "params.ae_epochs=12"]);
    let first = *trained(&log).first().expect("the last job trained");
    assert!(
        first > saved && log.contains(&format!("resumed from epoch {} of 12", first - 1)),
        "the resubmitted job resumed after epoch {saved}: {log}"
    );
    assert_eq!(*trained(&log).last().unwrap(), 12, "{log}");
    assert_eq!(requeued, cold12, "same bytes as the 6 -> 12 resume here");
}
