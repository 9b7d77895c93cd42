//! The kinds served by `pipe-worker` (out of process) against the same kinds in process: the same
//! interface and the same key inputs for every node of the shipped pipelines; a node runs there
//! with its progress and log; cancelling kills the worker's process group; a worker that dies
//! fails its node with a message and the next node gets a fresh one; the cached environment is
//! asked again when a file it read changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use engine::stage::{NoProgress, Params, Registry, RunContext, StageError, StageKind};
use engine::value::Value;
use engine::worker::KindDesc;

/// Runs every test from the repository root (pipelines name `data/bundled` from there), with the
/// worker's answers cached in a private folder.
fn setup() -> &'static Path {
    static CACHE: OnceLock<PathBuf> = OnceLock::new();
    CACHE.get_or_init(|| {
        std::env::set_current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("..")).unwrap();
        let dir = std::env::temp_dir().join(format!("pipe-worker-test-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::env::set_var("XDG_CACHE_HOME", &dir);
        dir
    })
}

/// Tests that start and count or kill workers run one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn remote() -> Registry {
    setup();
    engine::worker::registry(Registry::new(), PathBuf::from(env!("CARGO_BIN_EXE_pipe-worker")))
}

#[test]
fn the_worker_describes_every_kind_as_it_is_in_process() {
    let _one = serial();
    let (local, remote) = (pipe_kinds::builtin(), remote());
    assert_eq!(remote.problem(), None);
    assert_eq!(remote.names(), local.names());
    for name in local.names() {
        let (l, r) = (local.get(name).unwrap(), remote.get(name).unwrap());
        assert_eq!(KindDesc::of(r.as_ref()), KindDesc::of(l.as_ref()), "{name}");
    }
}

/// Everything a node's key reads from its kind (expanded params, outputs, environment, version,
/// input identity) is the same through the worker for every node of the shipped pipelines, so a
/// store filled in process is fresh through the worker.
#[test]
fn every_shipped_node_keys_the_same_through_the_worker() {
    let _one = serial();
    let (local, remote) = (pipe_kinds::builtin(), remote());
    let mut checked = 0;
    for file in ["pipelines/quick.yaml", "pipelines/report.yaml", "pipelines/ruff-readme.yaml"] {
        let a = engine::config::load(Path::new(file), &local, &[]).unwrap_or_else(|e| panic!("{file}: {e}"));
        let b = engine::config::load(Path::new(file), &remote, &[]).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(a.nodes.len(), b.nodes.len(), "{file}");
        for (x, y) in a.nodes.iter().zip(&b.nodes) {
            assert_eq!(x.id, y.id);
            assert_eq!(x.params, y.params, "{}", x.id);
            assert_eq!(x.outputs, y.outputs, "{}", x.id);
            assert_eq!(x.kind.version(), y.kind.version(), "{}", x.id);
            assert_eq!(x.kind.reads_input_identity(), y.kind.reads_input_identity(), "{}", x.id);
            assert_eq!(x.kind.environment(&x.params), y.kind.environment(&y.params), "{}", x.id);
            checked += 1;
        }
    }
    assert!(checked > 400, "{checked} nodes");
}

fn params(kind: &dyn StageKind, set: &[(&str, Value)]) -> Params {
    let mut p: BTreeMap<String, Value> = kind.params().into_iter().filter_map(|s| Some((s.name.to_string(), s.default?))).collect();
    for (k, v) in set {
        p.insert(k.to_string(), v.clone());
    }
    Params(p)
}

fn context(kind: &dyn StageKind, p: Params, inputs: &[(&str, &Path)], dir: &Path, cancel: Arc<AtomicBool>) -> RunContext {
    std::fs::create_dir_all(dir).unwrap();
    RunContext::new(
        "test-node".into(),
        p.clone(),
        inputs.iter().map(|(n, path)| (n.to_string(), vec![path.to_path_buf()])).collect(),
        BTreeMap::new(),
        BTreeMap::new(),
        kind.outputs(&p).unwrap(),
        dir.to_path_buf(),
        std::env::current_dir().unwrap(),
        1,
        Arc::new(NoProgress),
        cancel,
    )
}

/// `ingest` of bundled MNIST through the worker: the dataset file it wrote.
fn ingest(remote: &Registry, dir: &Path) -> PathBuf {
    let kind = remote.get("ingest").unwrap();
    let p = params(
        kind.as_ref(),
        &[("dataset", Value::Str("mnist".into())), ("normal_class", Value::Int(0)), ("data_dir", Value::Str("data/bundled".into()))],
    );
    let ctx = context(kind.as_ref(), p, &[], dir, Arc::new(AtomicBool::new(false)));
    kind.run(&ctx).unwrap();
    ctx.output("dataset")
}

/// Processes this test process started whose command line names the worker.
fn workers() -> Vec<u32> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat.rsplit(')').next().and_then(|r| r.split_whitespace().nth(1)).unwrap_or("");
            let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            ppid == me && cmd.contains("pipe-worker")
        })
        .collect()
}

/// A long pretraining, started in a worker; returns (the result, seconds it took to return).
fn pretrain_interrupted(
    remote: &Registry,
    data: &Path,
    dir: &Path,
    interrupt: impl FnOnce(Arc<AtomicBool>) + Send + 'static,
) -> (Result<(), StageError>, f64) {
    let kind = remote.get("pretrain_ae").unwrap();
    let p = params(kind.as_ref(), &[("epochs", Value::Int(100_000)), ("batch_size", Value::Int(64)), ("milestones", Value::List(vec![]))]);
    let cancel = Arc::new(AtomicBool::new(false));
    let ctx = context(kind.as_ref(), p, &[("data", data)], dir, cancel.clone());
    let t = std::thread::spawn(move || interrupt(cancel));
    let start = Instant::now();
    let r = kind.run(&ctx);
    t.join().unwrap();
    (r, start.elapsed().as_secs_f64())
}

#[test]
fn cancel_kills_the_workers_process_group_and_a_fresh_worker_serves_the_next_node() {
    let _one = serial();
    let remote = remote();
    let tmp = tempdir("cancel");
    let data = ingest(&remote, &tmp.join("ingest"));
    let (r, seconds) = pretrain_interrupted(&remote, &data, &tmp.join("pretrain"), |cancel| {
        std::thread::sleep(Duration::from_secs(2));
        cancel.store(true, Ordering::SeqCst);
    });
    assert!(matches!(r, Err(StageError::Cancelled)), "{r:?}");
    // 100,000 epochs would take hours; the node returns as soon as the worker is killed.
    assert!(seconds < 10.0, "took {seconds} s");
    // The killed worker is gone (reaped, not a zombie); at most the idle one that ran `ingest` is left.
    let left = workers();
    assert!(left.len() <= 1, "workers left: {left:?}");
    // The next node runs (in an idle or fresh worker) and writes its output.
    let again = ingest(&remote, &tmp.join("ingest-again"));
    assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&data).unwrap(), "same node, same bytes");
}

#[test]
fn a_worker_that_dies_fails_its_node_with_a_message_and_the_next_node_gets_a_fresh_one() {
    let _one = serial();
    let remote = remote();
    let tmp = tempdir("crash");
    let data = ingest(&remote, &tmp.join("ingest"));
    let before = workers();
    let (r, seconds) = pretrain_interrupted(&remote, &data, &tmp.join("pretrain"), move |_| {
        std::thread::sleep(Duration::from_secs(2));
        // The worker started for the pretraining (the one that ran ingest is busy with it, or a new one).
        for pid in workers().into_iter().chain(before) {
            // SAFETY: a plain kill(2) of a worker this test started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    });
    let err = match r {
        Err(StageError::Failed(e)) => e,
        other => panic!("expected a failure, got {other:?}"),
    };
    // The worker (its executable and pid) and what it was doing are named.
    assert!(err.contains("stopped during `run of test-node") && err.contains("pipe-worker (pid "), "{err}");
    assert!(err.contains("signal: 9"), "{err}");
    assert!(seconds < 30.0, "took {seconds} s");
    let again = ingest(&remote, &tmp.join("ingest-again"));
    assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&data).unwrap());
}

/// The data's identity is cached with what it read: a changed `SHA256SUMS` is seen at once.
#[test]
fn a_cached_environment_is_asked_again_when_a_file_it_read_changes() {
    let _one = serial();
    let (local, remote) = (pipe_kinds::builtin(), remote());
    let tmp = tempdir("watch");
    let data = tmp.join("mnist");
    std::fs::create_dir_all(&data).unwrap();
    for e in std::fs::read_dir("data/bundled/mnist").unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), data.join(e.file_name())).unwrap();
    }
    let (l, r) = (local.get("ingest").unwrap(), remote.get("ingest").unwrap());
    let p = params(
        l.as_ref(),
        &[("dataset", Value::Str("mnist".into())), ("normal_class", Value::Int(0)), ("data_dir", Value::Str(data.display().to_string()))],
    );
    let first = r.environment(&p);
    assert_eq!(first, l.environment(&p));
    assert_eq!(r.environment(&p), first, "asked twice, same answer");
    // Declare another checksum for one file: another identity.
    let sums = std::fs::read_to_string(data.join("SHA256SUMS")).unwrap();
    let (first_hash, _) = sums.split_once(' ').unwrap();
    std::fs::write(data.join("SHA256SUMS"), sums.replacen(first_hash, &"0".repeat(64), 1)).unwrap();
    // A fresh registry (a later command), as in a new `pipe status`.
    drop(remote);
    let later = self::remote();
    let second = later.get("ingest").unwrap().environment(&p);
    assert_eq!(second, l.environment(&p));
    assert_ne!(second, first, "the identity follows SHA256SUMS");
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pipe-worker-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
