//! The command line as clap types: [`Cli`], its subcommands [`Cmd`] and the arguments they share.
//! What each command does is in [`crate::commands`].

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::graph::RenderFormat;

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
impl PipelineArgs {
    /// The pipeline file (resolved by [`crate::commands::common::resolve_file`] before any command
    /// uses it).
    pub fn path(&self) -> &Path {
        self.file.as_deref().unwrap_or(Path::new(DEFAULT_FILE))
    }
}

/// The pipeline file used when none is given (and no run recorded one).
pub const DEFAULT_FILE: &str = "pipe.yaml";
#[cfg(test)]
mod tests {
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
