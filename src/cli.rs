//! The command line: `pipe run | status | dag | show | gc`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use crate::config::{self, LoadError, Pipeline};
use crate::error::{render, Hint};
use crate::exec::{Executor, NodeEnd, RunOptions};
use crate::exit;
use crate::graph::{Graph, GraphBuilder, RenderFormat};
use crate::plan::{self, Freshness};
use crate::report::Terminal;
use crate::stage::Registry;
use crate::store::{now, RunRecord, RunState, RunStatus, Store, Tally};

#[derive(Parser, Debug)]
#[command(name = "pipe", version, about = "Incremental, content-addressed, parallel pipelines for ML experiment grids")]
pub struct Cli {
    /// Artifact store: a directory, `s3://BUCKET/PREFIX` (endpoint and credentials from the AWS_*
    /// variables or ~/.aws) or `file:///DIR` (a shared directory), the last two cached in --cache.
    #[arg(long, global = true, env = "PIPE_STORE", default_value = "artifacts", value_name = "DIR|URL")]
    pub store: String,
    /// This machine's cache in front of a remote store.
    #[arg(long, global = true, env = "PIPE_CACHE", default_value = "artifacts")]
    pub cache: PathBuf,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(clap::Args, Debug, Clone)]
pub struct PipelineArgs {
    /// Pipeline file (YAML). Default: `pipe.yaml` here, else the file of this store's last run.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Override a param: `stage.param=value` or `params.name=value` (repeatable).
    #[arg(long = "set", value_name = "STAGE.PARAM=VALUE")]
    pub set: Vec<String>,
}

/// How `pipe run` runs (everything but the pipeline file and the targets); `pipe pull` is a run
/// with the defaults that restores only.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RunArgs {
    /// Rerun the targets (every node, without targets) even where their results are cached;
    /// their training starts over instead of resuming from a checkpoint.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Train from scratch even where a node could resume from a checkpoint of the same
    /// training (`pipe status` says which would).
    #[arg(long)]
    pub no_resume: bool,
    /// With targets: also run everything that depends on them.
    #[arg(long)]
    pub downstream: bool,
    /// Nodes run at once (default: CPU count; with Slurm, jobs in flight, default 64).
    #[arg(short, long)]
    pub jobs: Option<usize>,
    /// CPU threads per node (default: CPU count / jobs; with Slurm, --cpus-per-task, default 1).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Stop everything at the first failure (default: only the failed node's dependents stop).
    #[arg(long)]
    pub fail_fast: bool,
    /// Print what would run, run nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Overwrite published files that were edited by hand since pipe wrote them.
    #[arg(long)]
    pub overwrite: bool,
    /// Also list cached nodes.
    #[arg(short, long)]
    pub verbose: bool,
    /// Print the run record (every node's state, duration and key; provenance) as JSON on
    /// stdout when the run ends.
    #[arg(long)]
    pub json: bool,
    /// Where nodes run: here, or one Slurm job each (`sbatch`; `--jobs` caps the jobs in
    /// flight, `--threads` is each job's --cpus-per-task).
    #[arg(long, value_enum, default_value = "local")]
    pub executor: ExecutorKind,
    /// Slurm partition for the jobs.
    #[arg(long)]
    pub partition: Option<String>,
    /// Extra `sbatch` option for every job, e.g. `--sbatch-arg=--time=2:00:00` (repeatable).
    #[arg(long = "sbatch-arg", allow_hyphen_values = true, value_name = "OPTION")]
    pub sbatch_args: Vec<String>,
    /// With Slurm: submit a node again, up to N times (default 3), when its job ends without a
    /// result (time limit, preemption, `scancel`, a lost machine); training resumes from the
    /// checkpoints the job left in the store.
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "3")]
    pub requeue: Option<u32>,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run every node that is not fresh, in dependency order, independent nodes in parallel.
    Run {
        #[command(flatten)]
        p: PipelineArgs,
        /// Run only these, with everything upstream: a stage (`train`) or a node pattern
        /// (`train[mu2=0.5]`: partial coordinates match every node that has them).
        #[arg(value_name = "TARGET")]
        targets: Vec<String>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Restore a pipeline's results from the store (a remote one: `--store s3://...`) and publish
    /// them, running nothing; nodes the store lacks fail (exit 4) and are named.
    Pull {
        #[command(flatten)]
        p: PipelineArgs,
        /// Overwrite published files that were edited by hand.
        #[arg(long)]
        overwrite: bool,
        /// Also list restored nodes.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Upload every record and object this machine's cache holds that the remote store lacks.
    Push,
    /// Run one node of a pipeline (what a Slurm job of `pipe run --executor slurm` runs).
    #[command(hide = true)]
    RunNode {
        #[command(flatten)]
        p: PipelineArgs,
        /// The node to run (its id, as `pipe status -v` prints it).
        #[arg(long)]
        node: String,
        /// The key the submitter computed; the job refuses to run under another.
        #[arg(long)]
        key: String,
        /// CPU threads the node may use.
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// Every node's state (fresh / stale / missing) and why.
    Status {
        #[command(flatten)]
        p: PipelineArgs,
        /// Only these nodes: stages or node patterns, as for `run`.
        #[arg(value_name = "TARGET")]
        targets: Vec<String>,
        /// Print a JSON array of {node, stage, state, reasons}.
        #[arg(long)]
        json: bool,
        /// Exit with code 6 when any node is not fresh.
        #[arg(long)]
        check: bool,
        /// One line per node with its state and why (the default with targets); without it, one
        /// line per stage.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Print the node graph.
    Dag {
        #[command(flatten)]
        p: PipelineArgs,
        /// text, dot (Graphviz), mermaid or json.
        #[arg(long, value_enum, default_value = "text")]
        format: RenderFormat,
        /// One vertex per stage (with its node count) instead of one per node.
        #[arg(long)]
        stages: bool,
    },
    /// A node's fingerprint: what its cache key hashes (kind, version, params, inputs' content,
    /// environment). With a second node, or with `--run -2` (the node in an earlier run), only
    /// the fields that differ, with both values.
    Key(crate::commands::key::KeyArgs),
    /// Show a node's params, inputs, outputs and last record.
    Show {
        #[command(flatten)]
        p: PipelineArgs,
        /// The node: its id or a pattern matching it alone, e.g. `train[dataset=mnist,mu2=0.5]`.
        #[arg(value_name = "NODE")]
        targets: Vec<String>,
        /// Print {node, stage, kind, version, coords, params, outputs, last_run} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Copy one output of a node out of the store, e.g. `pipe get pipelines/quick.yaml
    /// 'train[dataset=mnist,mu2=0.5]' model svdd.safetensors`. The node must be fresh (its cached
    /// result matches the file as it is now); a remote store's object is downloaded.
    Get {
        /// Pipeline file (YAML).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Override a param: `stage.param=value` or `params.name=value` (repeatable).
        #[arg(long = "set", value_name = "STAGE.PARAM=VALUE")]
        set: Vec<String>,
        /// The node: its id or a pattern matching it alone.
        #[arg(value_name = "NODE")]
        node: String,
        /// The output's name (`pipe show FILE NODE` lists them).
        #[arg(value_name = "OUTPUT")]
        output: String,
        /// Where to copy it: a file, or a folder (the output keeps its file name there).
        #[arg(value_name = "DEST")]
        dest: PathBuf,
    },
    /// Write ONE self-contained HTML report (open it in any browser, send it as one file): the
    /// results tables (sortable, filterable, mean ± std over seeds), the published figures and
    /// text, per-epoch loss curves, the stage graph coloured by state, why nodes are not fresh,
    /// and the run history. Runs nothing; a node that is not fresh shows its last run's results,
    /// marked stale.
    Report {
        #[command(flatten)]
        p: PipelineArgs,
        /// Where to write it (default: `NAME-report.html` here, NAME the pipeline's name).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Replace a file at --output that `pipe report` did not write (or that was edited since).
        #[arg(long)]
        overwrite: bool,
    },
    /// Print a shell completion script: `pipe completion bash > ~/.local/share/bash-completion/completions/pipe`.
    Completion {
        /// The shell: bash, zsh, fish, elvish or powershell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Run polars SQL on the results table (`results`), e.g.
    /// `pipe query "SELECT dataset, mu2, avg(auc) FROM results GROUP BY dataset, mu2"`.
    Query {
        /// The query; the table is `results`.
        sql: String,
        /// The results table written by the pipeline's `results` stage.
        #[arg(long, default_value = "results/results.parquet")]
        results: PathBuf,
        /// How to print the rows.
        #[arg(long, value_enum, default_value = "table")]
        format: crate::query::QueryFormat,
    },
    /// Compare every cell of a results table with a baseline cell, paired over seeds: per cell
    /// mean ± sample std and n; per comparison the mean difference, its 95% t interval, the paired
    /// t-test and Wilcoxon signed-rank p, and the Holm-adjusted t-test p with a verdict, e.g.
    /// `pipe compare results/results.parquet --metric auc --baseline 'method=radius,mu2=0'`.
    Compare {
        /// The results table (Parquet).
        #[arg(value_name = "TABLE")]
        table: PathBuf,
        /// The metric to compare: a float column that is not a grid axis.
        #[arg(long)]
        metric: String,
        /// The baseline cell, `COLUMN=VALUE,...`: each cell is compared with the cell that has
        /// these values and the cell's own values in every other identifying column.
        #[arg(long, value_name = "COLUMN=VALUE,...")]
        baseline: String,
        /// The replicate column: a cell and its baseline are paired on its values.
        #[arg(long, default_value = "seed", value_name = "COLUMN")]
        replicate: String,
        /// Holm-adjust the p-values within each value of this column instead of over all
        /// comparisons (one family per value).
        #[arg(long, value_name = "AXIS")]
        within: Option<String>,
        /// Lower values of the metric are better (a loss, a false-positive rate).
        #[arg(long)]
        lower_is_better: bool,
        /// Print a JSON array, one object per comparison with every number.
        #[arg(long)]
        json: bool,
    },
    /// The run history, oldest first: id, start (UTC), status, nodes ran / cached / failed, wall
    /// time, git commit (`+`: uncommitted changes), file and `--set` overrides.
    Runs {
        /// Print the run records as a JSON array.
        #[arg(long)]
        json: bool,
        /// Only the last N runs.
        #[arg(long, short = 'n', value_name = "N")]
        last: Option<usize>,
    },
    /// What changed between two runs: params per stage, metrics per results row. RUN is an id (or
    /// its prefix) or `-1` (the last run), `-2`, ...; default: the last two runs.
    Diff {
        /// The earlier run.
        #[arg(value_name = "RUN_A", default_value = "-2", allow_hyphen_values = true)]
        a: String,
        /// The later run.
        #[arg(value_name = "RUN_B", default_value = "-1", allow_hyphen_values = true)]
        b: String,
    },
    /// Download (`fetch`) or check (`verify`) a dataset: mnist, fashion-mnist or cifar10
    /// (`pipe data fetch mnist`, `pipe data verify mnist --dir DIR`; `pipe data --help` for more).
    /// Runs in the stage worker, where the dataset readers are.
    #[command(disable_help_flag = true)]
    Data {
        /// `fetch DATASET [--dir DIR] [--mirror URL]` or `verify DATASET [--dir DIR]`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ACTION")]
        args: Vec<std::ffi::OsString>,
    },
    /// Delete objects no record references. With --records, also the records (and their objects)
    /// that no pipeline file in the workspace uses at its defaults and no run of the last
    /// --keep-days days used.
    Gc {
        /// Also remove records (and their objects) nothing current uses (see above).
        #[arg(long)]
        records: bool,
        /// With --records: keep every result a run started in the last DAYS days used.
        #[arg(long, default_value_t = 30.0, value_name = "DAYS")]
        keep_days: f64,
        /// List what would be removed, with sizes; remove nothing.
        #[arg(long, short = 'n')]
        dry_run: bool,
        /// Collect the remote store (--store s3://... or file://...) instead of the local cache.
        #[arg(long)]
        remote: bool,
        /// With --remote: keep anything uploaded less than this many hours ago (runs elsewhere
        /// upload objects before the record that names them).
        #[arg(long, default_value_t = 24.0, value_name = "HOURS")]
        older_than: f64,
        /// With --records: go on when a workspace file that looks like a pipeline (a top-level
        /// `stages:` mapping) does not load; what only that file uses is then collected. Without
        /// it, such a file stops gc (exit 3), naming the file and its error.
        #[arg(long)]
        skip_invalid: bool,
    },
}

impl Cmd {
    /// Commands that only read and print (no store writes, no child processes, no sockets).
    pub fn prints_only(&self) -> bool {
        matches!(
            self,
            Cmd::Status { .. }
                | Cmd::Dag { .. }
                | Cmd::Show { .. }
                | Cmd::Key(_)
                | Cmd::Query { .. }
                | Cmd::Runs { .. }
                | Cmd::Diff { .. }
                | Cmd::Compare { .. }
        )
    }
}

/// Where `pipe run` runs nodes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExecutorKind {
    /// In this process and its stage workers.
    #[default]
    Local,
    /// One Slurm job per node.
    Slurm,
}

/// `pipe data ...` runs in the stage worker, where the dataset readers are: the same arguments.
fn data(args: &[std::ffi::OsString]) -> Result<i32, i32> {
    let worker = engine::worker::locate();
    match std::process::Command::new(&worker).arg("data").args(args).status() {
        Ok(s) => Ok(s.code().unwrap_or(exit::INTERNAL)),
        Err(e) => {
            eprintln!("error: {}", render(&engine::worker::WorkerError::CannotStart { exe: worker, source: e }));
            Err(exit::INTERNAL)
        }
    }
}

fn parse_sets(sets: &[String]) -> Result<Vec<(String, String)>, String> {
    sets.iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .ok_or_else(|| format!("--set `{s}`: expected STAGE.PARAM=VALUE, e.g. --set train.mu2=0.5"))
        })
        .collect()
}

impl PipelineArgs {
    /// The pipeline file (resolved by [`resolve_file`] before any command uses it).
    pub fn path(&self) -> &Path {
        self.file.as_deref().unwrap_or(Path::new(DEFAULT_FILE))
    }
}

/// The pipeline file used when none is given (and no run recorded one).
const DEFAULT_FILE: &str = "pipe.yaml";

/// Fills in the pipeline file when none is given: `pipe.yaml` here, else the file of the store's
/// last run. A first word that is no file but reads as a target (`pipe run train`) is a target,
/// even where a folder of that name exists (quick.yaml's stage `results` beside `results/`): a
/// folder is never a pipeline file. Every word after the file is a target.
fn resolve_file(p: &mut PipelineArgs, targets: &mut Vec<String>, store: &str, cache: &Path) -> Result<(), i32> {
    if let Some(f) = &p.file {
        let looks_like_file = f.is_file() || f.extension().is_some_and(|e| e == "yaml" || e == "yml") || (!f.is_dir() && f.components().count() > 1);
        if looks_like_file {
            return Ok(());
        }
        targets.insert(0, f.to_string_lossy().to_string());
        p.file = None;
    }
    if Path::new(DEFAULT_FILE).is_file() {
        p.file = Some(PathBuf::from(DEFAULT_FILE));
        return Ok(());
    }
    let dir = if is_url(store) { cache } else { Path::new(store) };
    let last = Store::latest_run_in(dir).map(|r| PathBuf::from(r.file)).filter(|f| f.is_file());
    match last {
        Some(f) => {
            eprintln!("(pipeline file: {}, from the last run)", f.display());
            p.file = Some(f);
            Ok(())
        }
        None => {
            eprintln!("error: {}", render(&CliError::NoPipelineFile { store: dir.to_path_buf() }));
            Err(exit::USAGE)
        }
    }
}

/// The graph narrowed to `targets` (with their upstream; `downstream`: and their dependents), and
/// the ids of the nodes the targets matched.
fn select(nodes: &[crate::config::NodeSpec], targets: &[String], downstream: bool) -> Result<(Graph, Vec<String>), i32> {
    let hit = crate::targets::matching(nodes, targets).map_err(|e| {
        eprintln!("error: {}", render(&e));
        exit::NOT_FOUND
    })?;
    let ids = hit.iter().map(|&i| nodes[i].id.clone()).collect();
    let graph = GraphBuilder::from_nodes(crate::targets::select(nodes, &hit, downstream)).seal().map_err(|e| {
        eprintln!("error: {e}");
        exit::INVALID_PIPELINE
    })?;
    Ok((graph, ids))
}

/// The one node `targets` name: an exact node id first (ids may hold characters a pattern reads
/// differently), else the patterns' single match; several matches are listed (exit 2).
pub(crate) fn one_node(nodes: &[crate::config::NodeSpec], graph: &Graph, targets: &[String]) -> Result<String, i32> {
    if let ([t], Some(_)) = (targets, targets.first().and_then(|t| graph.find(t))) {
        return Ok(t.clone());
    }
    let hit = crate::targets::matching(nodes, targets).map_err(|e| {
        eprintln!("error: {}", render(&e));
        exit::NOT_FOUND
    })?;
    if let [one] = hit.as_slice() {
        return Ok(nodes[*one].id.clone());
    }
    eprintln!("error: {} nodes match {}; name one:", hit.len(), targets.join(" "));
    for &i in &hit {
        eprintln!("  {}", nodes[i].id);
    }
    Err(exit::USAGE)
}

pub(crate) fn load(p: &PipelineArgs, registry: &Registry) -> Result<(Pipeline, Graph), i32> {
    let sets = parse_sets(&p.set).map_err(|e| {
        eprintln!("error: {e}");
        exit::USAGE
    })?;
    let pipeline = config::load(p.path(), registry, &sets).map_err(|e| {
        eprintln!("{}", render(&e));
        match e {
            LoadError::Read { .. } | LoadError::Invalid(_) => exit::INVALID_PIPELINE,
        }
    })?;
    let graph = GraphBuilder::from_nodes(pipeline.nodes.clone()).seal().map_err(|e| {
        eprintln!("error: {e}");
        exit::INVALID_PIPELINE
    })?;
    Ok((pipeline, graph))
}

/// Where a pipeline's refs (the last key of each node) live: the pipeline FILE, by its path relative
/// to the workspace (absolute when outside it), hashed. Not its free-text `name:`, which two files
/// may share; relative, so another clone of the workspace (with a shared remote store) finds them.
pub fn ref_namespace(file: &Path) -> String {
    let abs = std::fs::canonicalize(file).unwrap_or_else(|_| absolute(file));
    let ws = std::fs::canonicalize(workspace()).unwrap_or_else(|_| workspace());
    let id = match abs.strip_prefix(&ws) {
        Ok(rel) => rel.to_string_lossy().to_string(),
        Err(_) => abs.to_string_lossy().to_string(),
    };
    blake3::hash(id.as_bytes()).to_hex()[..32].to_string()
}

/// `status` without -v: one line per stage, in pipeline order: how many nodes are fresh, how many
/// changed themselves (a param, an input file, the stage version), how many only wait on a changed
/// upstream node, and how many never ran; then the total.
fn stage_summary(st: &[plan::NodeStatus]) -> String {
    use std::fmt::Write as _;
    let mut order: Vec<&str> = Vec::new();
    let mut counts: std::collections::HashMap<&str, [usize; 5]> = std::collections::HashMap::new();
    // Per stage, why its nodes changed (not why they wait): reason -> nodes.
    let mut why: std::collections::HashMap<&str, Vec<(&str, usize)>> = std::collections::HashMap::new();
    for s in st {
        if !counts.contains_key(s.stage.as_str()) {
            order.push(&s.stage);
        }
        let c = counts.entry(&s.stage).or_default();
        c[0] += 1;
        match s.state {
            Freshness::Fresh => c[1] += 1,
            _ if s.waiting => c[3] += 1,
            Freshness::Missing => c[4] += 1,
            Freshness::Stale => c[2] += 1,
        }
        if s.state == Freshness::Stale && !s.waiting {
            let reasons = why.entry(&s.stage).or_default();
            for r in &s.reasons {
                match reasons.iter_mut().find(|(x, _)| x == r) {
                    Some((_, n)) => *n += 1,
                    None => reasons.push((r, 1)),
                }
            }
        }
    }
    let width = order.iter().map(|s| s.len()).max().unwrap_or(5).max(5);
    let mut out = String::new();
    for stage in &order {
        let [n, fresh, changed, waiting, never] = counts[stage];
        let mut parts = vec![format!("{fresh}/{n} fresh")];
        for (k, what) in [(changed, "changed"), (waiting, "waiting on upstream"), (never, "never run")] {
            if k > 0 {
                parts.push(format!("{k} {what}"));
            }
        }
        let _ = writeln!(out, "{stage:<width$}  {}", parts.join(", "));
        let reasons = why.get(stage).map(Vec::as_slice).unwrap_or_default();
        for (r, n) in reasons.iter().take(3) {
            let _ = writeln!(out, "{:width$}    {r}{}", "", if *n > 1 { format!(" ({n} nodes)") } else { String::new() });
        }
        if reasons.len() > 3 {
            let _ = writeln!(out, "{:width$}    ... {} more reasons", "", reasons.len() - 3);
        }
    }
    let fresh = st.iter().filter(|s| s.state == Freshness::Fresh).count();
    let _ = writeln!(out, "{fresh} of {} nodes fresh (`pipe status FILE -v` lists each node and why)", st.len());
    out
}

/// The workspace's git commit and whether tracked files differ from it; (None, None) outside git.
fn git_state(dir: &Path) -> (Option<String>, Option<bool>) {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "HEAD"]) {
        Some(commit) => (Some(commit), git(&["status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty())),
        None => (None, None),
    }
}

/// Seconds since the epoch as RFC 3339 UTC, to the second.
fn rfc3339(secs: f64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(secs.max(0.0));
    humantime::format_rfc3339_seconds(t).to_string()
}

fn is_url(store: &str) -> bool {
    store.contains("://")
}

/// `--store file:/x` or `s3:/bucket`: a URL missing a slash, which would otherwise become a local
/// folder named `file:`. A scheme is a letter, then letters, digits, `+`, `-` or `.`, then `:`.
fn mistyped_url(store: &str) -> Option<&str> {
    let (scheme, _) = store.split_once(':')?;
    let looks = !store.contains("://")
        && scheme.len() > 1
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    looks.then_some(scheme)
}

/// The store named by --store (and --cache in front of a remote one).
pub(crate) fn open_store(cli_store: &str, cache: &Path) -> Result<Store, i32> {
    if let Some(scheme) = mistyped_url(cli_store) {
        eprintln!(
            "error: --store {cli_store}: `{scheme}:` reads as a URL, but a store URL is s3://BUCKET/PREFIX or file:///ABSOLUTE/DIR\n  = hint: for a local folder whose name holds `:`, write it as ./{cli_store}"
        );
        return Err(exit::STORE);
    }
    let dir = if is_url(cli_store) { cache } else { Path::new(cli_store) };
    let store = Store::open(dir).map_err(|e| {
        eprintln!("error: {}", render(&CliError::StoreUnopenable(e)));
        exit::STORE
    })?;
    if !is_url(cli_store) {
        return Ok(store);
    }
    let remote = crate::remote::Remote::open(cli_store).map_err(|e| {
        eprintln!("error: {}", render(&e));
        exit::STORE
    })?;
    Ok(store.with_remote(remote))
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        workspace().join(p)
    }
}

pub(crate) fn workspace() -> PathBuf {
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
}

/// Whether a YAML file's text declares a top-level `stages:` mapping, as every pipeline file does
/// (a CI file's `stages:` list, e.g. GitLab's, does not count). Judged on the text, so a file
/// that does not parse (a typo in the middle of an edit) still counts.
fn looks_like_pipeline(text: &str) -> bool {
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix("stages").map(str::trim_start).and_then(|r| r.strip_prefix(':')) else { continue };
        let rest = rest.trim();
        if rest.starts_with('[') {
            return false;
        }
        let next = lines.by_ref().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#'));
        return !next.is_some_and(|l| l.starts_with("- ") || l == "-");
    }
    false
}

/// What `gc --records` keeps: every key a run of the last `keep_days` days used, and every key
/// that a pipeline file in the workspace (`*.yaml` / `*.yml` in any case, a link to one included,
/// at any depth outside hidden folders, the store, `target/` and `node_modules/`) resolves to at its defaults. Returns the keys and a note per file considered.
/// Errors: the files that look like pipelines ([`looks_like_pipeline`]) but do not load, each
/// with its rendered error; gc must not guess what they use. With `skip_invalid` they are
/// noted and skipped instead.
#[allow(clippy::type_complexity)]
fn live_keys(
    store: &Store,
    registry: &Registry,
    keep_days: f64,
    skip_invalid: bool,
) -> Result<(std::collections::HashSet<String>, Vec<String>), Vec<(PathBuf, String)>> {
    let mut keys = store.run_keys_since(now() - keep_days.max(0.0) * 86_400.0);
    let mut notes = vec![format!("keeping {} results used by runs of the last {keep_days} days", keys.len())];
    let mut broken = Vec::new();
    let ws = workspace();
    let store_dir = std::fs::canonicalize(store.root()).ok();
    let mut stack = vec![(ws.clone(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                // Folders linked in are not followed (no cycles); hidden ones, build output and
                // the store hold no pipeline a user edits.
                let skip = name.starts_with('.')
                    || name == "target"
                    || name == "node_modules"
                    || std::fs::canonicalize(&path).ok() == store_dir
                    || depth >= 64;
                if !skip {
                    stack.push((path, depth + 1));
                }
                continue;
            }
            let lower = name.to_ascii_lowercase();
            let yaml = lower.ends_with(".yaml") || lower.ends_with(".yml");
            // A file linked in counts as the file it names.
            if !yaml || !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
                continue;
            }
            let rel = path.strip_prefix(&ws).unwrap_or(&path).to_path_buf();
            let loaded = config::load(&rel, registry, &[])
                .map_err(|e| render(&e))
                .and_then(|p| GraphBuilder::from_nodes(p.nodes).seal().map_err(|e| e.to_string()));
            let graph = match loaded {
                Ok(graph) => graph,
                Err(error) => {
                    // Bytes that are not UTF-8 or cannot be read are no pipeline anyone edits.
                    let text = std::fs::read(&path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
                    if looks_like_pipeline(&text) {
                        if skip_invalid {
                            notes.push(format!("skipping {} (--skip-invalid): it does not load", rel.display()));
                        } else {
                            broken.push((rel, error));
                        }
                    }
                    continue;
                }
            };
            let st = plan::status(&graph, store, &ref_namespace(&rel), &ws);
            let before = keys.len();
            keys.extend(st.into_iter().filter_map(|s| s.key));
            notes.push(format!("keeping the results of {} at its defaults ({} more)", rel.display(), keys.len() - before));
        }
    }
    if broken.is_empty() {
        Ok((keys, notes))
    } else {
        Err(broken)
    }
}

/// `gc --records` when [`live_keys`] found pipeline files it cannot load: names each with its
/// error and says how to go on. Returns the exit code (the pipeline file is invalid).
fn refuse_gc(broken: &[(PathBuf, String)]) -> i32 {
    for (file, error) in broken {
        eprintln!(
            "error: gc --records: {} looks like a pipeline (it has `stages:`) but does not load, so gc cannot tell which results it uses:",
            file.display()
        );
        for line in error.lines() {
            eprintln!("  {line}");
        }
    }
    eprintln!(
        "hint: fix the file (`pipe status FILE` shows its errors) and run gc again, or pass --skip-invalid to collect without it (results only it uses are then deleted); nothing was removed"
    );
    exit::INVALID_PIPELINE
}

/// Runs the command; returns the process exit code.
pub fn main(cli: Cli, registry: &Registry, cancel: Arc<AtomicBool>) -> i32 {
    match run(cli, registry, cancel) {
        Ok(code) | Err(code) => code,
    }
}

/// What every command may use: the store arguments, the stage kinds, the interrupt flag.
pub(crate) struct Ctx<'a> {
    pub(crate) store: &'a str,
    pub(crate) cache: &'a Path,
    pub(crate) registry: &'a Registry,
    cancel: &'a Arc<AtomicBool>,
    /// `pipe pull`: restore cached results only.
    pull_only: bool,
}

fn run(mut cli: Cli, registry: &Registry, cancel: Arc<AtomicBool>) -> Result<i32, i32> {
    let mut none = Vec::new();
    let (p, targets) = match &mut cli.command {
        Cmd::Run { p, targets, .. } | Cmd::Status { p, targets, .. } | Cmd::Show { p, targets, .. } => (Some(p), targets),
        Cmd::Key(k) => (Some(&mut k.p), &mut k.nodes),
        Cmd::Pull { p, .. } | Cmd::Dag { p, .. } | Cmd::RunNode { p, .. } | Cmd::Report { p, .. } => (Some(p), &mut none),
        _ => (None, &mut none),
    };
    if let Some(p) = p {
        resolve_file(p, targets, &cli.store, &cli.cache)?;
    }
    let g = Ctx { store: &cli.store, cache: &cli.cache, registry, cancel: &cancel, pull_only: false };
    match cli.command {
        Cmd::Push => cmd_push(&g),
        Cmd::Pull { p, overwrite, verbose } => cmd_pull(&g, p, overwrite, verbose),
        Cmd::Run { p, targets, run } => cmd_run(&g, p, targets, run),
        Cmd::RunNode { p, node, key, threads } => cmd_run_node(&g, p, node, key, threads),
        Cmd::Completion { shell } => cmd_completion(shell),
        Cmd::Report { p, output, overwrite } => cmd_report(&g, p, output, overwrite),
        Cmd::Get { file, set, node, output, dest } => cmd_get(&g, file, set, node, output, dest),
        Cmd::Runs { json, last } => cmd_runs(&g, json, last),
        Cmd::Diff { a, b } => cmd_diff(&g, a, b),
        Cmd::Status { p, targets, json, check, verbose } => cmd_status(&g, p, targets, json, check, verbose),
        Cmd::Dag { p, format, stages } => cmd_dag(&g, p, format, stages),
        Cmd::Show { p, targets, json } => cmd_show(&g, p, targets, json),
        Cmd::Key(args) => crate::commands::key::run(&g, args),
        Cmd::Query { sql, results, format } => cmd_query(sql, results, format),
        Cmd::Compare { table, metric, baseline, replicate, within, lower_is_better, json } => {
            cmd_compare(&table, metric, &baseline, replicate, within, lower_is_better, json)
        }
        Cmd::Data { args } => data(&args),
        Cmd::Gc { records, keep_days, dry_run, remote, older_than, skip_invalid } => {
            cmd_gc(&g, GcArgs { records, keep_days, dry_run, remote, older_than, skip_invalid })
        }
    }
}

/// `pipe push`.
fn cmd_push(g: &Ctx<'_>) -> Result<i32, i32> {
    let store = open_store(g.store, g.cache)?;
    if store.remote().is_none() {
        eprintln!("error: {}", render(&CliError::PushNeedsRemote));
        return Err(exit::USAGE);
    }
    let _lock = store.lock(|h| eprintln!("waiting for the store lock ({h})")).map_err(|e| {
        eprintln!("error: {}", render(&e));
        exit::STORE
    })?;
    let stats = store.push().map_err(|e| {
        eprintln!("error: {}", render(&e));
        exit::STORE
    })?;
    for n in &stats.incomplete {
        eprintln!("warning: not pushed: {n}");
    }
    println!("pushed {} records, {} objects ({:.1} MB), {} refs to {}", stats.records, stats.objects, stats.bytes as f64 / 1e6, stats.refs, g.store);
    Ok(exit::OK)
}

/// `pipe pull`: a run that restores from the store and computes nothing.
fn cmd_pull(g: &Ctx<'_>, p: PipelineArgs, overwrite: bool, verbose: bool) -> Result<i32, i32> {
    let g = Ctx { pull_only: true, ..*g };
    cmd_run(&g, p, Vec::new(), RunArgs { overwrite, verbose, ..RunArgs::default() })
}

/// `pipe run`.
fn cmd_run(g: &Ctx<'_>, p: PipelineArgs, targets: Vec<String>, run: RunArgs) -> Result<i32, i32> {
    let RunArgs {
        force,
        no_resume,
        downstream,
        jobs,
        threads,
        fail_fast,
        dry_run,
        overwrite,
        verbose,
        json,
        executor,
        partition,
        sbatch_args,
        requeue,
    } = run;
    let (pipeline, graph) = load(&p, g.registry)?;
    let (graph, rerun) = if targets.is_empty() {
        let rerun = if force { pipeline.nodes.iter().map(|n| n.id.clone()).collect() } else { Vec::new() };
        (graph, rerun)
    } else {
        let (g, hit) = select(&pipeline.nodes, &targets, downstream)?;
        (g, if force { hit } else { Vec::new() })
    };
    let rerun: std::collections::HashSet<String> = rerun.into_iter().collect();
    let store = open_store(g.store, g.cache)?;
    let ns = ref_namespace(p.path());
    if dry_run {
        let st = plan::status(&graph, &store, &ns, &workspace());
        let todo: Vec<_> = st.iter().filter(|s| s.state != Freshness::Fresh || rerun.contains(&s.node)).collect();
        for s in &todo {
            let why = if s.state == Freshness::Fresh { "forced (-f); its result is cached".to_string() } else { s.reasons.join("; ") };
            println!("would run {}  ({why})", s.node);
        }
        println!("{} of {} nodes would run", todo.len(), st.len());
        return Ok(exit::OK);
    }
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let slurm = match executor {
        ExecutorKind::Local if requeue.is_some() => {
            eprintln!("error: --requeue resubmits Slurm jobs: it needs --executor slurm");
            return Err(exit::USAGE);
        }
        ExecutorKind::Local => None,
        ExecutorKind::Slurm => {
            let exe = std::env::current_exe().map_err(|e| {
                eprintln!("error: cannot locate the pipe binary for the Slurm jobs: {e}");
                exit::USAGE
            })?;
            let store_arg = if is_url(g.store) { g.store.to_string() } else { absolute(Path::new(g.store)).display().to_string() };
            let mut s =
                crate::slurm::Slurm::new(exe, p.path().to_path_buf(), p.set.clone(), store_arg, absolute(store.root()), partition, sbatch_args);
            s.requeue = requeue.unwrap_or(0);
            s.check().map_err(|e| {
                eprintln!("error: {}", render(&e));
                exit::USAGE
            })?;
            Some(s)
        }
    };
    // Slurm: up to 64 jobs in flight, one CPU each unless --threads says otherwise.
    let jobs = jobs.unwrap_or(if slurm.is_some() { 64 } else { cpus }).max(1);
    let threads = threads.unwrap_or(if slurm.is_some() { 1 } else { (cpus / jobs).max(1) });
    let _lock = store.lock(|holder| eprintln!("waiting for another `pipe` on store {} ({holder})", store.describe())).map_err(|e| {
        eprintln!("error: {}", render(&e));
        exit::STORE
    })?;
    store.clean_scratch();
    let terminal = Terminal::new(verbose);
    let reporter = crate::report::Recorder::new(&terminal);
    let started_at = now();
    let t0 = Instant::now();
    let ex = Executor {
        graph: &graph,
        store: &store,
        pipeline: &ns,
        workspace: workspace(),
        options: RunOptions { jobs, threads, fail_fast, overwrite, pull_only: g.pull_only, rerun, no_resume },
        reporter: &reporter,
        cancel: g.cancel.clone(),
        runner: match &slurm {
            Some(s) => s as &dyn crate::exec::NodeRunner,
            None => &crate::exec::Local,
        },
    };
    // The declared report is rewritten while the run goes ([`report_every`]), so it shows the
    // running nodes' curves so far and what has finished; the last write, below, is the one said.
    let running = AtomicBool::new(true);
    let full = GraphBuilder::from_nodes(pipeline.nodes.clone()).seal().map_err(|e| {
        eprintln!("error: {e}");
        exit::INVALID_PIPELINE
    })?;
    std::thread::scope(|scope| {
        if let Some(out) = &pipeline.report {
            let (running, full, store, pipeline, file) = (&running, &full, &store, &pipeline, p.path());
            let every = report_every();
            scope.spawn(move || {
                let mut last = Instant::now();
                while running.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(200));
                    if last.elapsed() >= every && running.load(Ordering::SeqCst) {
                        // What cannot be written now is said by the write at the end.
                        let _ = write_html_report(pipeline, full, store, file, out, overwrite, crate::exec::Foreign::Backup);
                        last = Instant::now();
                    }
                }
            });
        }
        ex.run();
        running.store(false, Ordering::SeqCst);
    });
    let nodes = reporter.nodes(&graph);
    if let Some(s) = &slurm {
        s.cancel_all();
    }
    // Nothing is forgotten here: a run that leaves nodes out (`--set`, another file) keeps
    // their refs; `pipe gc` decides what is live.
    terminal.finish();
    let tally = Tally::of(&nodes);
    let status = tally.status(g.cancel.load(Ordering::SeqCst) && !(fail_fast && tally.failed > 0));
    let (git_commit, git_dirty) = git_state(&workspace());
    let record = RunRecord {
        run_id: format!("{}-{}", (started_at * 1000.0) as u64, std::process::id()),
        pipeline: pipeline.name.clone(),
        file: p.path().display().to_string(),
        started_at,
        started: rfc3339(started_at),
        git_commit,
        git_dirty,
        pipe_version: env!("CARGO_PKG_VERSION").to_string(),
        host: crate::live::hostname(),
        overrides: p.set.clone(),
        duration_s: t0.elapsed().as_secs_f64(),
        jobs,
        status: status.as_str().into(),
        nodes,
    };
    let path = store.write_run(&record).map_err(|e| {
        eprintln!("error: {}", render(&e));
        exit::STORE
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&record).expect("run records serialise"));
    }
    eprintln!("{tally} in {:.1}s; run record {}", record.duration_s, path.display());
    if let Some(out) = &pipeline.report {
        // The whole pipeline's report, also after a run narrowed to targets.
        match write_html_report(&pipeline, &full, &store, p.path(), out, overwrite, crate::exec::Foreign::Backup) {
            Ok(said) => eprintln!("{said}"),
            Err(e) => {
                eprintln!("error: {}", render(&e));
                return Ok(status.exit_code().max(exit::NODES_FAILED));
            }
        }
    }
    if status == RunStatus::Failed {
        for n in record.nodes.iter().filter(|n| n.state == RunState::Failed) {
            let first = n.error.as_deref().and_then(|e| e.lines().next()).unwrap_or("");
            eprintln!("failed: {}: {first}", n.node);
        }
    }
    Ok(status.exit_code())
}

/// How often `pipe run` rewrites the pipeline's declared report while it runs: every 20 s, or
/// `PIPE_REPORT_EVERY_S` seconds (at least 0.1).
fn report_every() -> Duration {
    let secs = std::env::var("PIPE_REPORT_EVERY_S").ok().and_then(|v| v.trim().parse::<f64>().ok()).filter(|s| s.is_finite() && *s >= 0.1);
    Duration::from_secs_f64(secs.unwrap_or(20.0))
}

/// `pipe run-node`: one node, in a Slurm job.
fn cmd_run_node(g: &Ctx<'_>, p: PipelineArgs, node: String, key: String, threads: usize) -> Result<i32, i32> {
    let (_, graph) = load(&p, g.registry)?;
    let store = open_store(g.store, g.cache)?;
    let failed = |error: String, failure: Option<crate::store::FailureRecord>| {
        eprintln!("error: {node}: {error}");
        let marker = crate::slurm::TaskFailure { node: node.clone(), error, failure };
        if let Err(e) = store.put_meta(&crate::slurm::failure_rel(&key), &serde_json::to_vec_pretty(&marker).expect("serialises")) {
            eprintln!("error: could not record the failure: {e}");
        }
        exit::NODES_FAILED
    };
    let Some(i) = graph.find(&node) else {
        return Err(failed(format!("no such node in {} (was the file edited since submission?)", p.path().display()), None));
    };
    let task: crate::slurm::Task = match store.get_meta(&crate::slurm::task_rel(&key)) {
        Ok(Some(bytes)) => serde_json::from_slice(&bytes).map_err(|e| failed(format!("task file unreadable: {e}"), None))?,
        Ok(None) => return Err(failed(format!("no task {} in {}", crate::slurm::task_rel(&key), store.describe()), None)),
        Err(e) => return Err(failed(e.to_string(), None)),
    };
    let mut outputs = vec![None; graph.len()];
    for (id, outs) in task.upstream {
        let Some(j) = graph.find(&id) else { return Err(failed(format!("upstream node {id} is not in the pipeline"), None)) };
        outputs[j.index()] = Some(outs);
    }
    let ns = ref_namespace(p.path());
    let ex = Executor {
        graph: &graph,
        store: &store,
        pipeline: &ns,
        workspace: workspace(),
        options: RunOptions { jobs: 1, threads, fail_fast: false, overwrite: false, pull_only: false, rerun: Default::default(), no_resume: false },
        reporter: &crate::report::Silent,
        cancel: g.cancel.clone(),
        runner: &crate::exec::Local,
    };
    let t0 = Instant::now();
    if task.key != key || task.fingerprint.key() != key {
        return Err(failed(format!("task {} does not describe key {key}", crate::slurm::task_rel(&key)), None));
    }
    let done = |state: RunState| {
        println!("{node}: {state} in {:.1}s (key {key})", t0.elapsed().as_secs_f64());
        Ok(exit::OK)
    };
    match crate::exec::run_node(&ex, i.index(), outputs, &task.fingerprint) {
        NodeEnd::Ran { .. } => done(RunState::Ran),
        NodeEnd::Cached(_) => done(RunState::Cached),
        // Cancelled (`scancel`, a time limit): no failure marker; the driver reports the job as
        // ended without a result, and the next `pipe run` reruns it.
        NodeEnd::Cancelled { reason, .. } => {
            eprintln!("interrupted: {node}: {reason}");
            Err(exit::INTERRUPTED)
        }
        NodeEnd::Failed { failure, .. } if g.cancel.load(Ordering::SeqCst) => {
            eprintln!("interrupted: {node}: {}", failure.text());
            Err(exit::INTERRUPTED)
        }
        NodeEnd::Failed { failure, .. } => Err(failed(failure.text(), Some(failure.record()))),
    }
}

/// `pipe completion`.
fn cmd_completion(shell: clap_complete::Shell) -> Result<i32, i32> {
    use clap::CommandFactory;
    clap_complete::generate(shell, &mut Cli::command(), "pipe", &mut std::io::stdout());
    Ok(exit::OK)
}

/// `pipe get`.
fn cmd_get(g: &Ctx<'_>, file: PathBuf, set: Vec<String>, node: String, output: String, dest: PathBuf) -> Result<i32, i32> {
    let p = PipelineArgs { file: Some(file), set };
    let (pipeline, graph) = load(&p, g.registry)?;
    let id = &one_node(&pipeline.nodes, &graph, std::slice::from_ref(&node))?;
    // Only the node and its upstream decide whether it is fresh.
    let (graph, _) = select(&pipeline.nodes, std::slice::from_ref(id), false)?;
    let store = open_store(g.store, g.cache)?;
    let st = plan::status(&graph, &store, &ref_namespace(p.path()), &workspace());
    let s = st.iter().find(|s| &s.node == id).expect("every node has a status");
    let (Some(key), Freshness::Fresh) = (&s.key, s.state) else {
        let e = CliError::NotFresh { node: id.clone(), state: s.state, reasons: s.reasons.join("; "), file: p.path().to_path_buf() };
        eprintln!("error: {}", render(&e));
        return Err(exit::NOT_FOUND);
    };
    let rec = match plan::lookup(&store, key, true) {
        plan::Lookup::Hit(rec) => rec,
        _ => {
            let e = CliError::Unreadable { node: id.clone(), key: key[..12].to_string(), store: store.describe(), file: p.path().to_path_buf() };
            eprintln!("error: {}", render(&e));
            return Err(exit::STORE);
        }
    };
    let Some(obj) = rec.outputs.get(&output) else {
        let e = CliError::NoSuchOutput { node: id.clone(), output: output.clone(), outputs: rec.outputs.keys().cloned().collect() };
        eprintln!("error: {}", render(&e));
        return Err(exit::NOT_FOUND);
    };
    let file =
        graph.node(graph.find(id).expect("found above")).outputs.iter().find(|o| o.name == output).map(|o| o.file.clone()).unwrap_or(output.clone());
    let target = if dest.is_dir() { dest.join(&file) } else { dest.clone() };
    write_like_cp(&store.object_path(obj), &target).map_err(|e| {
        eprintln!("error: cannot write {}: {e}", target.display());
        exit::STORE
    })?;
    println!("{} ({} bytes) -> {}", output, obj.size, target.display());
    Ok(exit::OK)
}

/// Copies `src` to `dest` as `cp` does, but never leaves a partial file: a new file gets the
/// umask's mode (0666 masked), an existing one keeps its mode (a symlink is written through, to
/// its target); the bytes go to a temporary file beside it, synced, then renamed over it (so a
/// hard link to the old file keeps the old bytes, and the new file is owned by the user).
/// Errors, as `cp`'s: an existing file this user may not write, a dangling symlink, a destination
/// that is not a regular file; reading `src`; creating, writing or renaming in `dest`'s folder.
fn write_like_cp(src: &Path, dest: &Path) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let refuse = |what: &str| Err(std::io::Error::other(what.to_string()));
    let dest = match std::fs::symlink_metadata(dest) {
        Ok(m) if m.file_type().is_symlink() => match std::fs::canonicalize(dest) {
            Ok(target) => target,
            Err(_) => return refuse("it is a symlink to nothing (cp does not write through a dangling symlink)"),
        },
        _ => dest.to_path_buf(),
    };
    let existing = std::fs::metadata(&dest).ok();
    if let Some(m) = &existing {
        if !m.is_file() {
            return refuse("it exists and is not a regular file (a pipe, socket, device or folder); give a file path");
        }
        // What `cp` would be refused: opening the file for writing (nothing is written here).
        std::fs::OpenOptions::new().write(true).open(&dest)?;
    }
    let keep_mode = existing.map(|m| m.permissions().mode() & 0o7777);
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = dest.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "file".into());
    let tmp = dir.join(format!(".{name}.pipe-get.{}.tmp", std::process::id()));
    let written = (|| {
        let mut input = std::fs::File::open(src)?;
        let mut out = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o666).open(&tmp)?;
        std::io::copy(&mut input, &mut out)?;
        if let Some(mode) = keep_mode {
            out.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        out.flush()?;
        out.sync_all()?;
        std::fs::rename(&tmp, &dest)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// `pipe report`.
fn cmd_report(g: &Ctx<'_>, p: PipelineArgs, output: Option<PathBuf>, overwrite: bool) -> Result<i32, i32> {
    let (pipeline, graph) = load(&p, g.registry)?;
    let store = open_store(g.store, g.cache)?;
    let default = crate::html_report::default_output(&pipeline.name);
    // `-o DIR` (an existing folder) writes NAME-report.html into it, as `cp FILE DIR` would.
    let out = match output {
        Some(o) if o.is_dir() => o.join(default),
        Some(o) => o,
        None => default,
    };
    // Never over a file a stage publishes (its next run would find it edited by hand).
    let norm = |p: &Path| -> PathBuf { absolute(p).components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect() };
    let target = norm(&out);
    if let Some(n) = pipeline.nodes.iter().find(|n| n.publish.iter().any(|(_, d)| norm(d) == target)) {
        eprintln!("error: {}", render(&CliError::ReportOverPublished { path: out.clone(), node: n.id.clone() }));
        return Err(exit::USAGE);
    }
    match write_html_report(&pipeline, &graph, &store, p.path(), &out, overwrite, crate::exec::Foreign::Refuse) {
        Ok(said) => {
            println!("{said}");
            Ok(exit::OK)
        }
        Err(e) => {
            eprintln!("error: {}", render(&e));
            Err(match e {
                CliError::Report(crate::exec::PublishError {
                    what: crate::exec::PublishFailure::Write(_) | crate::exec::PublishFailure::Backup(_),
                    ..
                }) => exit::STORE,
                _ => exit::USAGE,
            })
        }
    }
}

/// What a command refuses to do, and how to get past it ([`Hint`]).
#[derive(Debug)]
enum CliError {
    /// No FILE argument, no `pipe.yaml` here, and no run recorded in the store.
    NoPipelineFile { store: PathBuf },
    /// The store directory cannot be opened or created.
    StoreUnopenable(crate::store::StoreError),
    /// `pipe push` with a local store.
    PushNeedsRemote,
    /// `pipe get` of a node whose stored result is not the current one.
    NotFresh { node: String, state: Freshness, reasons: String, file: PathBuf },
    /// `pipe get` of a fresh node whose objects cannot be read.
    Unreadable { node: String, key: String, store: String, file: PathBuf },
    /// `pipe get` of an output the node does not have.
    NoSuchOutput { node: String, output: String, outputs: Vec<String> },
    /// `pipe runs` on a store without runs (not an error: exit 0).
    NoRuns { store: String },
    /// `pipe show` without a node.
    NameANode { file: PathBuf },
    /// `pipe report -o PATH` names a file a stage publishes.
    ReportOverPublished { path: PathBuf, node: String },
    /// The HTML report could not be written (the publish rule refused, or the write failed).
    Report(crate::exec::PublishError),
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::NoPipelineFile { store } => {
                write!(f, "no pipeline file given, no {DEFAULT_FILE} here, and no earlier run in {}", store.display())
            }
            CliError::StoreUnopenable(e) => write!(f, "{e}"),
            CliError::PushNeedsRemote => f.write_str("push needs a remote store"),
            CliError::NotFresh { node, state, reasons, .. } => write!(f, "{node} is {state}: {reasons}"),
            CliError::Unreadable { node, key, store, .. } => write!(f, "{node}: its result (key {key}) cannot be read from {store}"),
            CliError::NoSuchOutput { node, output, .. } => write!(f, "{node} has no output `{output}`"),
            CliError::NoRuns { store } => write!(f, "no runs in {store} yet"),
            CliError::NameANode { file } => write!(f, "name the node to show, e.g. `pipe show {} 'train[mu2=0.5]'`", file.display()),
            CliError::ReportOverPublished { path, node } => write!(f, "{} is published by {node}; the report does not replace it", path.display()),
            // The same rule as a published output, said as what the user ran.
            CliError::Report(e) => write!(f, "report {}: {}", e.path.display(), e.what),
        }
    }
}

impl Hint for CliError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            CliError::NoPipelineFile { .. } => "name one, e.g. `pipe run pipelines/quick.yaml`".into(),
            CliError::StoreUnopenable(_) => "check that the directory is writable, or pass --store DIR / --cache DIR".into(),
            CliError::PushNeedsRemote => "pass --store s3://BUCKET/PREFIX or file:///DIR (this machine's cache is --cache)".into(),
            CliError::NotFresh { node, file, .. } => {
                format!("its stored result is not the one the file describes now; `pipe run {} '{node}'` computes it", file.display())
            }
            CliError::Unreadable { node, file, .. } => {
                format!("check the store (its connection and credentials for a remote), or recompute it: `pipe run {} '{node}' -f`", file.display())
            }
            CliError::NoSuchOutput { outputs, .. } => format!("its outputs: {}", outputs.join(", ")),
            CliError::NoRuns { .. } => "`pipe run FILE` records one".into(),
            CliError::NameANode { file } => format!("`pipe dag {}` lists the nodes", file.display()),
            CliError::ReportOverPublished { .. } => "name another file with `-o FILE`".into(),
            CliError::Report(e) => return e.hint(),
        })
    }
}

/// Writes the HTML report of the whole pipeline to `out` (relative to the workspace); returns the
/// line to print, or why nothing was written (naming the file and the way out).
/// `foreign`: what to do with a file pipe did not write at `out` (`pipe report -o` refuses it, a
/// pipeline's `report:` backs it up, as a published output).
fn write_html_report(
    pipeline: &Pipeline,
    graph: &Graph,
    store: &Store,
    file: &Path,
    out: &Path,
    overwrite: bool,
    foreign: crate::exec::Foreign,
) -> Result<String, CliError> {
    let ns = ref_namespace(file);
    let status = plan::status(graph, store, &ns, &workspace());
    let runs: Vec<RunRecord> = store.runs().into_iter().filter(|r| ref_namespace(Path::new(&r.file)) == ns).collect();
    let generated = rfc3339(now());
    let html = crate::html_report::render(&crate::html_report::Inputs {
        name: &pipeline.name,
        file,
        graph,
        status: &status,
        store,
        namespace: &ns,
        runs: &runs,
        generated: &generated,
    });
    let dest = absolute(out);
    let hash = blake3::hash(html.as_bytes()).to_hex().to_string();
    let kept = crate::exec::publish_file(store, out, &dest, &hash, || Ok(html.clone().into_bytes()), overwrite, foreign).map_err(CliError::Report)?;
    if let Some(kept) = kept {
        eprintln!("warning: {} was not written by pipe; the previous file is kept at {}", out.display(), kept.display());
    }
    let fresh = status.iter().filter(|s| s.state == Freshness::Fresh).count();
    Ok(format!("wrote {} ({} KiB; {fresh} of {} nodes fresh)", out.display(), html.len() / 1024, status.len()))
}

/// `pipe runs`.
fn cmd_runs(g: &Ctx<'_>, json: bool, last: Option<usize>) -> Result<i32, i32> {
    let store = open_store(g.store, g.cache)?;
    let mut runs = store.runs();
    if let Some(n) = last {
        runs.drain(..runs.len().saturating_sub(n));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&runs).expect("runs serialise"));
    } else if runs.is_empty() {
        eprintln!("{}", render(&CliError::NoRuns { store: store.describe() }));
    } else {
        print!("{}", crate::runs::table(&runs));
    }
    Ok(exit::OK)
}

/// `pipe diff`.
fn cmd_diff(g: &Ctx<'_>, a: String, b: String) -> Result<i32, i32> {
    let store = open_store(g.store, g.cache)?;
    let runs = store.runs();
    let pick = |w: &str| {
        crate::runs::find(&runs, w).map_err(|e| {
            eprintln!("error: {e}");
            exit::NOT_FOUND
        })
    };
    let (ra, rb) = (pick(&a)?, pick(&b)?);
    print!("{}", crate::runs::diff(&store, ra, rb));
    Ok(exit::OK)
}

/// `pipe status`.
fn cmd_status(g: &Ctx<'_>, p: PipelineArgs, targets: Vec<String>, json: bool, check: bool, verbose: bool) -> Result<i32, i32> {
    let per_node = verbose || !targets.is_empty();
    let (pipeline, graph) = load(&p, g.registry)?;
    let (graph, shown) = if targets.is_empty() {
        (graph, None)
    } else {
        let (g, hit) = select(&pipeline.nodes, &targets, false)?;
        (g, Some(hit.into_iter().collect::<std::collections::HashSet<String>>()))
    };
    let store = open_store(g.store, g.cache)?;
    let mut st = plan::status(&graph, &store, &ref_namespace(p.path()), &workspace());
    if let Some(shown) = &shown {
        st.retain(|s| shown.contains(&s.node));
    }
    // Nodes some run computes now (this one's key): their epoch, loss and time to go.
    let live = crate::live::running(store.root());
    for s in st.iter_mut() {
        s.running = live.iter().find(|r| Some(&r.key) == s.key.as_ref() || (s.key.is_none() && r.node == s.node)).cloned();
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&st).expect("status serialises"));
    } else if !per_node {
        print!("{}", stage_summary(&st));
        for s in st.iter().filter(|s| s.running.is_some()) {
            println!("running {}: {}", s.node, s.running.as_ref().map(|r| r.describe()).unwrap_or_default());
        }
    } else {
        let width = st.iter().map(|s| s.node.len()).max().unwrap_or(0);
        for s in &st {
            if s.reasons.is_empty() {
                println!("{:<7} {}", s.state, s.node);
            } else {
                println!("{:<7} {:<width$}  {}", s.state, s.node, s.reasons.join("; "));
            }
            if let Some(r) = &s.running {
                println!("{:<7} {:<width$}  running: {}", "", "", r.describe());
            }
        }
        let fresh = st.iter().filter(|s| s.state == Freshness::Fresh).count();
        println!("{fresh} of {} nodes fresh", st.len());
    }
    Ok(if check && st.iter().any(|s| s.state != Freshness::Fresh) { exit::STALE } else { exit::OK })
}

/// `pipe dag`.
fn cmd_dag(g: &Ctx<'_>, p: PipelineArgs, format: RenderFormat, stages: bool) -> Result<i32, i32> {
    let (_, graph) = load(&p, g.registry)?;
    print!("{}", if stages { graph.render_stages(format) } else { graph.render(format) });
    Ok(exit::OK)
}

/// `pipe show`.
fn cmd_show(g: &Ctx<'_>, p: PipelineArgs, targets: Vec<String>, json: bool) -> Result<i32, i32> {
    let (pipeline, graph) = load(&p, g.registry)?;
    if targets.is_empty() {
        eprintln!("error: {}", render(&CliError::NameANode { file: p.path().to_path_buf() }));
        return Err(exit::USAGE);
    }
    let node = one_node(&pipeline.nodes, &graph, &targets)?;
    let i = graph.find(&node).expect("one_node names a node of the graph");
    let store = open_store(g.store, g.cache)?;
    let n = graph.node(i);
    // The node's key now; a failed attempt at it is shown with its error and log, even when the
    // node never succeeded. (A key whose inputs are not computed yet has none.)
    let now_key = plan::status(&graph, &store, &ref_namespace(p.path()), &workspace()).into_iter().find(|s| s.node == n.id).and_then(|s| s.key);
    // The result of these params if there is one, else the node's last run (of other params or
    // inputs, which is said).
    let last = now_key
        .as_deref()
        .and_then(|k| store.record(k).ok().flatten())
        .or_else(|| store.get_ref(&ref_namespace(p.path()), &n.id).and_then(|k| store.record(&k).ok().flatten()));
    let current = last.as_ref().is_some_and(|r| Some(&r.key) == now_key.as_ref());
    let attempt =
        now_key.as_deref().and_then(|k| store.attempt(k)).filter(|a| last.as_ref().is_none_or(|r| r.key != a.key || a.finished_at > r.finished_at));
    if json {
        let v = serde_json::json!({
            "node": n.id,
            "stage": n.stage,
            "kind": n.kind.name(),
            "version": n.kind.version(),
            "coords": n.coords.iter().map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or_default())).collect::<serde_json::Map<_, _>>(),
            "params": n.params.0,
            "outputs": n.outputs.iter().map(|o| serde_json::json!({"name": o.name, "file": o.file})).collect::<Vec<_>>(),
            "last_run": last.as_ref().map(|rec| serde_json::json!({
                "key": rec.key,
                "current": current,
                "duration_s": rec.duration_s,
                "outputs": rec.outputs.iter().map(|(name, obj)| (name.clone(), serde_json::json!({"path": store.object_path(obj), "bytes": obj.size}))).collect::<serde_json::Map<_, _>>(),
                "log": rec.log,
            })),
            "last_failed_attempt": attempt.as_ref().map(|a| serde_json::json!({
                "key": a.key,
                "finished_at": a.finished_at,
                "duration_s": a.duration_s,
                "error": a.error,
                "stderr_tail": a.stderr_tail,
                "log": a.log,
                "cancelled": a.cancelled,
            })),
        });
        println!("{}", serde_json::to_string_pretty(&v).expect("serialises"));
        return Ok(exit::OK);
    }
    println!("node    {}\nstage   {} (kind {} v{})", n.id, n.stage, n.kind.name(), n.kind.version());
    for (k, v) in &n.params.0 {
        println!("param   {k} = {v}");
    }
    for o in &n.outputs {
        println!("output  {} ({})", o.name, o.file);
    }
    match last {
        Some(rec) => {
            if current {
                println!("last run: key {} ({:.2}s)", rec.key, rec.duration_s);
            } else {
                println!(
                    "last run: key {} ({:.2}s), of other params or inputs than the ones above (`pipe status {}` says what changed)",
                    rec.key,
                    rec.duration_s,
                    p.path().display()
                );
            }
            for (name, obj) in &rec.outputs {
                println!("  {name}: {} ({} bytes)", store.object_path(obj).display(), obj.size);
            }
            if !rec.log.is_empty() {
                println!("log:\n{}", crate::log::printable(&rec.log));
            }
        }
        None if attempt.is_some() => println!("never completed"),
        None => println!("never run"),
    }
    if let Some(a) = attempt {
        let what = if a.cancelled { "was interrupted" } else { "failed" };
        println!(
            "last attempt {what}: key {} at {} ({:.2}s)\nerror: {}",
            a.key,
            rfc3339(a.finished_at),
            a.duration_s,
            crate::log::printable(&a.error)
        );
        if !a.log.is_empty() {
            println!("log:\n{}", crate::log::printable(a.log.trim_end_matches('\n')));
        }
    }
    Ok(exit::OK)
}

/// `pipe query`.
fn cmd_query(sql: String, results: PathBuf, format: crate::query::QueryFormat) -> Result<i32, i32> {
    let run = crate::query::run(&sql, &results).and_then(|mut df| crate::query::render(&mut df, format));
    match run {
        Ok(text) => {
            print!("{text}");
            Ok(exit::OK)
        }
        Err(e) => {
            eprintln!("error: {}", render(&e));
            Err(exit::NOT_FOUND)
        }
    }
}

/// `pipe compare`.
fn cmd_compare(
    table: &Path,
    metric: String,
    baseline: &str,
    replicate: String,
    within: Option<String>,
    lower_is_better: bool,
    json: bool,
) -> Result<i32, i32> {
    let df = crate::query::load(table).map_err(|e| {
        eprintln!("error: {}", render(&e));
        exit::NOT_FOUND
    })?;
    let fail = |e: crate::compare::CompareError| {
        eprintln!("error: {}", render(&e));
        e.exit_code()
    };
    let baseline = crate::compare::parse_baseline(baseline).map_err(fail)?;
    let opts = crate::compare::Options { metric, baseline, replicate, within, lower_is_better };
    let outcome = crate::compare::compare(&df, &opts).map_err(fail)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&crate::compare::to_json(&outcome)).unwrap_or_default());
        for c in &outcome.unmatched {
            let at = outcome.columns.iter().zip(&c.coords).map(|(k, v)| format!("{k}={}", v.text)).collect::<Vec<_>>().join(" ");
            eprintln!("note: {at}: no baseline cell holds its other coordinates; not compared");
        }
    } else {
        print!("{}", crate::compare::render_table(&outcome));
    }
    Ok(exit::OK)
}

/// `pipe gc`'s arguments.
struct GcArgs {
    records: bool,
    keep_days: f64,
    dry_run: bool,
    remote: bool,
    older_than: f64,
    skip_invalid: bool,
}

/// `pipe gc`.
/// The checkpoint prefixes of the results `keys` (those of training kinds).
fn live_prefixes(store: &Store, registry: &Registry, keys: &std::collections::HashSet<String>) -> std::collections::HashSet<String> {
    keys.iter()
        .filter_map(|k| {
            let fp = store.record(k).ok().flatten()?.fingerprint;
            let params = registry.get(&fp.kind)?.params();
            Some(crate::checkpoint::prefix_key(&fp, crate::checkpoint::horizon(&params)?))
        })
        .collect()
}

fn cmd_gc(g: &Ctx<'_>, a: GcArgs) -> Result<i32, i32> {
    let GcArgs { records, keep_days, dry_run, remote, older_than, skip_invalid } = a;
    let store = open_store(g.store, g.cache)?;
    if remote {
        if store.remote().is_none() {
            eprintln!("error: --remote needs a remote store: --store s3://BUCKET/PREFIX or file:///DIR");
            return Err(exit::USAGE);
        }
        let live = if records {
            let (keys, notes) = live_keys(&store, g.registry, keep_days, skip_invalid).map_err(|b| refuse_gc(&b))?;
            notes.iter().for_each(|n| eprintln!("{n}"));
            Some(keys)
        } else {
            None
        };
        let prefixes = live.as_ref().map(|keys| live_prefixes(&store, g.registry, keys));
        let stats = store.gc_remote(live.as_ref(), (older_than.max(0.0) * 3600.0) as u64).map_err(|e| {
            eprintln!("error: {}", render(&e));
            exit::STORE
        })?;
        println!(
            "removed {} objects and {} records ({:.1} MB) from {}; kept {} objects",
            stats.objects_removed,
            stats.records_removed,
            stats.bytes_freed as f64 / 1e6,
            g.store,
            stats.objects_kept
        );
        // The remote's checkpoints that no kept result continues and nothing wrote lately.
        if let (Some(prefixes), Some(r)) = (&prefixes, store.remote()) {
            let (folders, freed) = crate::checkpoint::collect_remote(r, prefixes, now() - older_than.max(0.0) * 3600.0).map_err(|e| {
                eprintln!("error: {}", render(&e));
                exit::STORE
            })?;
            println!("removed {folders} checkpoint folders ({:.1} MB) from {}", freed as f64 / 1e6, g.store);
        }
        return Ok(exit::OK);
    }
    let _lock = store.lock(|h| eprintln!("waiting for the store lock ({h})")).map_err(|e| {
        eprintln!("error: {}", render(&e));
        exit::STORE
    })?;
    let live = if records {
        let (keys, notes) = live_keys(&store, g.registry, keep_days, skip_invalid).map_err(|b| refuse_gc(&b))?;
        for n in notes {
            eprintln!("{n}");
        }
        Some(keys)
    } else {
        None
    };
    // The checkpoint folders of the results kept (computed before their records may go).
    let live_prefixes = live.as_ref().map(|keys| live_prefixes(&store, g.registry, keys));
    let mut stats = store.gc(live.as_ref(), dry_run).map_err(|e| {
        eprintln!("error: {}", render(&e));
        exit::STORE
    })?;
    if let Some(prefixes) = &live_prefixes {
        let (lines, freed) = crate::checkpoint::collect(store.root(), prefixes, now() - keep_days.max(0.0) * 86_400.0, dry_run);
        stats.removed.extend(lines);
        stats.bytes_freed += freed;
    }
    if dry_run {
        for line in &stats.removed {
            println!("would remove {line}");
        }
    }
    println!(
        "{} {} objects and {} records ({:.1} MB); kept {} objects",
        if dry_run { "would remove" } else { "removed" },
        stats.objects_removed,
        stats.records_removed,
        stats.bytes_freed as f64 / 1e6,
        stats.objects_kept
    );
    Ok(exit::OK)
}

#[cfg(test)]
mod cli_tests {
    use clap::CommandFactory;

    /// clap's own consistency checks (positional order, conflicting names) for every subcommand.
    #[test]
    fn the_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }

    /// Every subcommand and every argument says what it is in `--help` (clap's own `--help` and
    /// `--version` aside).
    #[test]
    fn every_command_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if a.get_help().is_none() && !matches!(id, "help" | "version") {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                let p = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    missing.push(p.clone());
                }
                walk(sub, &p, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "pipe", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }
}
